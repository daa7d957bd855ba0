# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`pretrain --train hub:ORG/NAME --streaming`: masked-LM pretraining straight from a Hub dataset's stream.

Made for the corpora `cloud-crystal corpus --push-to-hub` publishes (a `scope` column, Parquet shards), and for any
Hub dataset with a `scope` or `structure` column. Nothing is downloaded whole:

* `datasets.load_dataset(repo, split="train", streaming=True)`, then `split_dataset_by_node(stream, rank,
  world_size)`: each rank reads its own Parquet files (whole files when there are at least as many as ranks);
* rows are encoded lazily (`dataset_builders.encode_on_the_fly`); rows that fail are left out and counted;
* the first `--validation-rows` rows of rank 0's part are held out (read once, kept in memory) and skipped by the
  training stream of every rank, so no validation row is trained on;
* the DataLoader reads the rank's stream as it is: it is not handed to accelerate's sharding, which would shard
  the already split stream a second time and lose rows.

Memory does not grow with the corpus: a few batches and the held-out rows are all that is held. A stream has no
length, so `--max-steps` is required; an exhausted stream starts its next pass (the Trainer's next epoch).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import datasets
from torch.utils.data import DataLoader
from transformers import set_seed

from modeling_cloud import CloudForMaskedLM

from .data import ReproducibleMaskingCollator
from .engine import CloudTrainer, trainer_arguments
from .model_setup import build_model, resolve_tokenizer
from .options import RunSettings, TrainingConfigError

logger = logging.getLogger("modeling_cloud.training")

HUB_PREFIX = "hub:"
#: Rows of the stream held out for validation when no --validation file is given.
DEFAULT_VALIDATION_ROWS = 256


def hub_repo(spec: str) -> str:
    """`hub:org/name` -> `org/name` (a `TrainingConfigError` for anything else)."""
    if not spec.startswith(HUB_PREFIX) or "/" not in spec:
        raise TrainingConfigError(f"{spec}: --streaming reads a Hub dataset, given as hub:ORG/NAME")
    return spec.removeprefix(HUB_PREFIX)


class _StreamingTrainer(CloudTrainer):
    def get_train_dataloader(self) -> DataLoader:
        # The stream is already this rank's part (split_dataset_by_node): a plain DataLoader, not accelerate's
        # prepare (which would shard it again); the Trainer moves each batch to the device.
        return DataLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )


def _column(first_row: dict, spec: str, input_column: str | None) -> str:
    for name in [input_column] if input_column else ["scope", "structure"]:
        if name in first_row:
            return name
    raise TrainingConfigError(f"{spec}: no `scope` or `structure` column (columns: {sorted(first_row)})")


def run_streaming_pretrain(settings: RunSettings, callbacks=()) -> dict[str, Any]:
    """Pretrain from `--train hub:ORG/NAME` streamed; returns `{"validation": metrics}`. Saves the model and
    tokenizer in `--output-dir` (no model card: the corpus card describes the data)."""
    from datasets.distributed import split_dataset_by_node

    from dataset_builders.encoding import encode_on_the_fly
    from dataset_builders.reporting import FailureReport

    if len(settings.data.train or []) != 1:
        raise TrainingConfigError("--streaming takes one --train hub:ORG/NAME")
    if settings.training.max_steps <= 0:
        raise TrainingConfigError("--streaming needs --max-steps: a stream has no length")
    spec = settings.data.train[0]
    repo = hub_repo(spec)
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    args = trainer_arguments(settings, output_dir, metric_for_best_model="loss")
    stream = datasets.load_dataset(repo, split="train", streaming=True)
    first = next(iter(stream))
    column = _column(first, spec, settings.data.input_column)
    if settings.model.scope_version is None and column == "scope":
        settings.model.scope_version = "v2" if str(first["scope"]).startswith("SG") else "v1"
    tokenizer = resolve_tokenizer(settings, None, column == "scope")

    held_out = DEFAULT_VALIDATION_ROWS
    report = FailureReport(errors_path=output_dir / "skipped_rows.jsonl")
    # Each rank reads its own files; rank 0's first rows are the validation set (every rank reads those few).
    rank_stream = split_dataset_by_node(stream, rank=args.process_index, world_size=args.world_size)
    first_part = split_dataset_by_node(stream, rank=0, world_size=args.world_size)
    validation = datasets.Dataset.from_list(list(first_part.take(held_out)))
    validation = encode_on_the_fly(
        validation, tokenizer, structure_column=column, prevalidate=True, report=report
    )
    validation = datasets.Dataset.from_list(
        [{**dict(row), "example_index": -(i + 1)} for i, row in enumerate(validation)]
    )
    if args.process_index == 0:
        rank_stream = rank_stream.skip(held_out)
    train = encode_on_the_fly(rank_stream, tokenizer, structure_column=column, report=report)
    # Masks keyed by (seed, epoch, example): a running index of the rank's rows, so every rank's masks differ.
    offset = args.process_index * 1_000_000_000
    train = train.map(lambda row, index: {"example_index": offset + index}, with_indices=True)

    set_seed(args.seed)
    model = build_model(CloudForMaskedLM, settings, tokenizer, None)
    model.config.sparse_prediction = True
    collator = ReproducibleMaskingCollator(
        tokenizer, mlm_probability=settings.model.mlm_probability, seed=args.seed
    )
    args = dataclasses.replace(
        args,
        eval_strategy="no",
        load_best_model_at_end=False,
        save_strategy="steps" if args.save_strategy != "no" else "no",
    )
    trainer = _StreamingTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=list(callbacks),
        prediction_output="logits",
        output_fields=("loss", "logits"),
    )
    result = trainer.train()
    metrics = dict(trainer.evaluate(validation, metric_key_prefix="eval"))
    if "eval_loss" in metrics:
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50))
    metrics["train_loss"] = result.training_loss
    metrics["skipped_rows"] = report.num_failed
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics, combined=False)
    logger.info(
        "streamed %s: %d steps, validation masked-LM loss %.4f",
        repo,
        result.global_step,
        metrics.get("eval_loss", float("nan")),
    )
    return {"validation": metrics}
