# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`pretrain`: masked-language-model pretraining of a CLOUD encoder on SCOPE strings and/or structures.

15 % of the tokens of each string are selected (special tokens never), 80 % of those become `[MASK]`, 10 % a random
token and 10 % stay (`DataCollatorForLanguageModeling`, with masks that are a function of seed, epoch and example
so that a resumed run sees the same masks). The authors pretrained BERT-base (12 x 768) with AdamW lr 1e-4, cosine
schedule, 5 % warm-up, no weight decay, for 50 epochs; those are the defaults here. A new model is `--model-size
small` unless told otherwise (`base` is the authors' 12 x 768; see `options.MODEL_SIZES`).

The result is a base checkpoint in Hub layout: `AutoModel.from_pretrained(dir, trust_remote_code=True)` gives the
bare [`CloudModel`] (pooled crystal embeddings), `AutoModelForMaskedLM` the MLM model, and
`CloudForPropertyRegression.from_pretrained(dir)` (or `cloud-crystal finetune --pretrained dir`) starts a
fine-tune.

Run as `cloud-crystal pretrain ...`, `python -m modeling_cloud.training.pretrain ...`, or on several processes:
`torchrun --nproc_per_node 2 -m modeling_cloud.training.pretrain ...` or
`accelerate launch --config_file modeling_cloud/training/accelerate_configs/ddp_multi_gpu.yaml -m
modeling_cloud.training.pretrain ...`.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed
from transformers.modeling_outputs import MaskedLMOutput

from model_cards import EvaluationRecord, ModelCardContext
from modeling_cloud import CloudForMaskedLM

from .common import (
    RunData,
    any_scope_strings,
    checkpoint_callbacks,
    dataset_entries,
    encode_tables,
    finish_run,
    hyperparameters,
    last_evaluation,
    model_architecture,
    padding_multiple,
    read_run_tables,
    split_validation,
    training_summary,
)
from .data import EncodingReport, ReproducibleMaskingCollator
from .engine import CloudTrainer, MaskingEpochCallback, resolve_resume_checkpoint, trainer_arguments
from .launch import run_main
from .metrics import argmax_logits, masked_token_accuracy
from .model_setup import build_model, pretrained_source, resolve_tokenizer
from .options import RunSettings

logger = logging.getLogger("modeling_cloud.training")

MLM_TARGET = "masked tokens"


def load_pretrain_data(settings: RunSettings, tokenizer, tables) -> RunData:
    train_tables, validation_tables, _ = tables
    report = EncodingReport() if settings.data.skip_invalid_rows else None
    encode = dict(
        tokenizer=tokenizer,
        numeric_columns={},
        label_names=[],
        report=report,
        num_proc=settings.data.preprocessing_num_workers,
    )
    train = encode_tables(train_tables, purpose="training", **encode)
    validation = (
        encode_tables(validation_tables, purpose="validation", **encode) if validation_tables else None
    )
    train, validation, note = split_validation(train, validation, settings)
    # Non-negative indices key the training masks by example and epoch; negative ones mark validation rows, which
    # are masked the same way at every evaluation so that validation losses are comparable.
    train = train.add_column("example_index", list(range(len(train))))
    validation = validation.add_column("example_index", [-(i + 1) for i in range(len(validation))])
    return RunData(train, validation, None, train_tables, validation_tables, None, report, note)


def mlm_records(metrics: dict[str, float], prefix: str, split: str, rows: int) -> list[EvaluationRecord]:
    records = []
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        records.append(EvaluationRecord(split, rows, MLM_TARGET, None, "loss", float(loss)))
        records.append(
            EvaluationRecord(split, rows, MLM_TARGET, None, "perplexity", float(math.exp(min(loss, 50))))
        )
    accuracy = metrics.get(f"{prefix}_accuracy")
    if accuracy is not None:
        records.append(EvaluationRecord(split, rows, MLM_TARGET, None, "accuracy", float(accuracy)))
    return records


def run_pretrain(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Run `pretrain` with resolved settings (and extra Trainer `callbacks`); returns the validation metrics.

    `--pretrained` continues pretraining from a checkpoint (CLOUD's, or the authors' BERT layout such as
    `ChangwenXu/CLOUD`)."""
    if getattr(settings.data, "streaming", False):
        from .streaming import run_streaming_pretrain

        return run_streaming_pretrain(settings, callbacks)
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = resolve_resume_checkpoint(settings, output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_pretrain_data(settings, tokenizer, tables)
    mlm_probability = settings.model.mlm_probability

    set_seed(settings.training.seed)
    model = build_model(CloudForMaskedLM, settings, tokenizer, pretrained)
    # Same loss, but the MLM head runs on the ~15 % masked positions only during training.
    model.config.sparse_prediction = True
    args = trainer_arguments(settings, output_dir, metric_for_best_model="loss")
    collator = ReproducibleMaskingCollator(
        tokenizer,
        mlm_probability=mlm_probability,
        seed=settings.training.seed,
        pad_to_multiple_of=padding_multiple(settings),
    )

    def card_for(evaluations: list[EvaluationRecord], summary: str) -> ModelCardContext:
        return ModelCardContext(
            model_id=settings.training.hub_model_id or output_dir.name,
            kind="base",
            **model_architecture(model),
            mlm_probability=mlm_probability,
            base_model=settings.model.pretrained,
            license=settings.model.license,
            dataset_name=settings.data.dataset_name,
            datasets=dataset_entries(
                {
                    "training": (data.train_tables, len(data.train)),
                    "validation": (data.validation_tables or data.train_tables, len(data.validation)),
                }
            ),
            skipped_rows=data.report.report.num_failed if data.report else 0,
            hyperparameters=hyperparameters(
                settings,
                args.world_size,
                {
                    "masking": f"{mlm_probability:.0%} of tokens, 80/10/10",
                    "validation": data.validation_note,
                },
            ),
            training_summary=summary,
            evaluations=evaluations,
        )

    callbacks = checkpoint_callbacks(
        settings,
        card_for,
        lambda state: mlm_records(last_evaluation(state), "eval", "validation", len(data.validation)),
        with_pipeline=False,
        extra=callbacks,
        leading=[MaskingEpochCallback(collator)],
    )
    trainer = CloudTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=masked_token_accuracy,
        preprocess_logits_for_metrics=argmax_logits,
        callbacks=callbacks,
        prediction_output="logits",
        output_fields=tuple(MaskedLMOutput.__dataclass_fields__),
    )
    trainer.train(resume_from_checkpoint=resume)
    metrics = dict(trainer.evaluate(data.validation, metric_key_prefix="eval"))
    if "eval_loss" in metrics:
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50))
    records = mlm_records(metrics, "eval", "validation", len(data.validation))
    card = card_for(records, training_summary(trainer.state, "masked-LM loss"))
    finish_run(trainer, output_dir, settings, card, False, data.report, metrics)
    logger.info(
        "validation masked-LM loss %.4f, perplexity %.3f, accuracy %.3f",
        metrics.get("eval_loss", float("nan")),
        metrics.get("eval_perplexity", float("nan")),
        metrics.get("eval_accuracy", float("nan")),
    )
    return {"validation": metrics}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python -m modeling_cloud.training.pretrain [flags]`; returns the exit code."""
    return run_main("pretrain", run_pretrain, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
