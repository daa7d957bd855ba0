# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`train-debye`: train CLOUD-DEBYE, which predicts a Debye temperature θ_D and gets Cv, U, S and F from it.

The data hold a crystal, its heat capacity Cv in J/(K mol of cells), the number of atoms in the cell (`n_atoms`)
and the temperature, from a column (`--temperature-column`) or fixed (`--temperature`, 300 K by default as in the
authors' data). The loss is L1 on Cv computed from θ_D through the Debye model (authors: lr 1e-4, batch 128,
400 epochs, gradient clipping 5); the checkpoint with the lowest validation Cv MAE is kept.

Run as `cloud-crystal train-debye ...` or `python -m modeling_cloud.training.train_debye ...`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed

from model_cards import EvaluationRecord, ModelCardContext
from modeling_cloud import CloudDebyeModel, CloudDebyeOutput

from .common import (
    RunData,
    any_scope_strings,
    dataset_entries,
    encode_tables,
    finish_run,
    hyperparameters,
    model_architecture,
    property_trainer,
    read_run_tables,
    regression_records,
    split_validation,
    training_summary,
)
from .data import EncodingReport
from .engine import build_training_arguments, resolve_resume_checkpoint
from .hub import attach_pipeline
from .model_setup import build_model, inspect_pretrained, resolve_tokenizer
from .options import DebyeOptions

logger = logging.getLogger("modeling_cloud.training")

CV_UNIT = "J/(K mol)"


def load_debye_data(options: DebyeOptions, tokenizer, tables) -> RunData:
    train_tables, validation_tables, test_tables = tables
    report = EncodingReport() if options.skip_invalid_rows else None
    columns = {"labels": options.target[0], "n_atoms": options.n_atoms_column}
    if options.temperature_column:
        columns["temperatures"] = options.temperature_column
    encode = dict(
        tokenizer=tokenizer,
        numeric_columns=columns,
        label_names=["labels"],
        report=report,
        num_proc=options.preprocessing_num_workers,
    )

    def encoded(tables, purpose):
        if not tables:
            return None
        dataset = encode_tables(tables, purpose=purpose, **encode)
        if not options.temperature_column:
            dataset = dataset.add_column("temperatures", [options.temperature] * len(dataset))
        bad = [
            i
            for i, (n, t) in enumerate(zip(dataset["n_atoms"], dataset["temperatures"], strict=True))
            if n <= 0 or t <= 0
        ]
        if bad:
            from .options import TrainingConfigError

            row = dataset[bad[0]]
            raise TrainingConfigError(
                f"{row['source']}: n_atoms and temperature must be > 0, got {row['n_atoms']} and {row['temperatures']}"
                f" ({len(bad)} such {purpose} rows)"
            )
        return dataset

    train = encoded(train_tables, "training")
    validation = encoded(validation_tables, "validation")
    test = encoded(test_tables, "test")
    data = RunData(train, validation, test, train_tables, validation_tables, test_tables, report)
    data.train, data.validation, data.validation_note = split_validation(train, validation, options)
    return data


def run_train_debye(options: DebyeOptions, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Run `train-debye` with resolved options (and extra Trainer `callbacks`); returns the metrics."""
    output_dir = Path(options.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = resolve_resume_checkpoint(options, output_dir)
    tables = read_run_tables(options)
    pretrained = inspect_pretrained(options.pretrained) if options.pretrained else None
    tokenizer = resolve_tokenizer(options, pretrained, any_scope_strings(*tables))
    data = load_debye_data(options, tokenizer, tables)
    target = options.target[0]
    targets = [(target, CV_UNIT)]
    temperature_note = (
        f"the temperatures of column `{options.temperature_column}`"
        if options.temperature_column
        else f"{options.temperature:g} K"
    )

    set_seed(options.seed)
    model = build_model(
        CloudDebyeModel,
        options,
        tokenizer,
        pretrained,
        head_num_layers=options.head_num_layers,
        head_dropout=options.head_dropout,
        loss=options.loss,
        debye_theta_head=options.theta_head,
        debye_temperatures=[options.temperature],
    )
    attach_pipeline(model)
    args = build_training_arguments(options, str(output_dir), metric_for_best_model="mae")

    def card_for(evaluations: list[EvaluationRecord], summary: str) -> ModelCardContext:
        return ModelCardContext(
            model_id=options.hub_model_id or output_dir.name,
            kind="debye",
            **model_architecture(model),
            head_num_layers=options.head_num_layers,
            targets=[{"name": f"heat capacity Cv (`{target}`)", "unit": CV_UNIT}],
            loss=options.loss,
            debye_theta_head=model.config.debye_theta_head,
            debye_theta_scale=model.config.debye_theta_scale,
            debye_theta_shift=model.config.debye_theta_shift,
            temperature_note=temperature_note,
            base_model=options.pretrained,
            license=options.license,
            dataset_name=options.dataset_name,
            datasets=dataset_entries(
                {
                    "training": (data.train_tables, len(data.train)),
                    "validation": (data.validation_tables or data.train_tables, len(data.validation)),
                    "test": (data.test_tables, len(data.test) if data.test is not None else 0),
                }
            ),
            skipped_rows=data.report.report.num_failed if data.report else 0,
            hyperparameters=hyperparameters(
                options,
                args.world_size,
                {"loss": f"{options.loss} on Cv", "validation": data.validation_note},
            ),
            training_summary=summary,
            evaluations=evaluations,
        )

    trainer = property_trainer(
        model,
        args,
        options,
        data,
        tokenizer,
        card_for,
        targets,
        metric_targets=[target],
        prediction_output="heat_capacity",
        output_class=CloudDebyeOutput,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume)
    metrics = dict(trainer.evaluate(data.validation, metric_key_prefix="eval"))
    records = regression_records(metrics, "eval", "validation", len(data.validation), targets)
    if data.test is not None:
        test_metrics = trainer.evaluate(data.test, metric_key_prefix="test")
        metrics.update(test_metrics)
        records += regression_records(
            test_metrics, "test", "test", len(data.test), targets, ", ".join(options.test)
        )
    card = card_for(records, training_summary(trainer.state, "Cv MAE"))
    finish_run(trainer, output_dir, options, card, True, data.report, metrics)
    logger.info(
        "Cv metrics: %s",
        ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if k.endswith(("_mae", "_mae_over_mad", "_r2"))
        ),
    )
    return {"validation": {k: v for k, v in metrics.items() if k.startswith("eval_")}, "metrics": metrics}


def main(argv=None) -> int:
    from .commands import standalone_main

    return standalone_main("train-debye", argv)


if __name__ == "__main__":
    sys.exit(main())
