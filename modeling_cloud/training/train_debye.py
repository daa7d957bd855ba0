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
from .engine import resolve_resume_checkpoint, trainer_arguments
from .hub import attach_pipeline
from .launch import run_main
from .model_setup import build_model, pretrained_source, resolve_tokenizer
from .options import RunSettings, TrainingConfigError

logger = logging.getLogger("modeling_cloud.training")

CV_UNIT = "J/(K mol)"


def load_debye_data(settings: RunSettings, tokenizer, tables) -> RunData:
    train_tables, validation_tables, test_tables = tables
    data_args = settings.data
    report = EncodingReport() if data_args.skip_invalid_rows else None
    columns = {"labels": data_args.target[0], "n_atoms": data_args.n_atoms_column}
    if data_args.temperature_column:
        columns["temperatures"] = data_args.temperature_column
    encode = dict(
        tokenizer=tokenizer,
        numeric_columns=columns,
        label_names=["labels"],
        report=report,
        num_proc=data_args.preprocessing_num_workers,
    )

    def encoded(tables, purpose):
        if not tables:
            return None
        dataset = encode_tables(tables, purpose=purpose, **encode)
        if not data_args.temperature_column:
            dataset = dataset.add_column("temperatures", [data_args.temperature] * len(dataset))
        bad = [
            i
            for i, (n, t) in enumerate(zip(dataset["n_atoms"], dataset["temperatures"], strict=True))
            if n <= 0 or t <= 0
        ]
        if bad:
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
    data.train, data.validation, data.validation_note = split_validation(train, validation, settings)
    return data


def run_train_debye(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Run `train-debye` with resolved settings (and extra Trainer `callbacks`); returns the metrics."""
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = resolve_resume_checkpoint(settings, output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_debye_data(settings, tokenizer, tables)
    data_args, model_settings = settings.data, settings.model
    target = data_args.target[0]
    targets = [(target, CV_UNIT)]
    temperature_note = (
        f"the temperatures of column `{data_args.temperature_column}`"
        if data_args.temperature_column
        else f"{data_args.temperature:g} K"
    )

    set_seed(settings.training.seed)
    model = build_model(
        CloudDebyeModel,
        settings,
        tokenizer,
        pretrained,
        head_num_layers=model_settings.head_num_layers,
        head_dropout=model_settings.head_dropout,
        loss=model_settings.loss,
        debye_theta_head=model_settings.theta_head,
        debye_temperatures=[data_args.temperature],
    )
    attach_pipeline(model)
    args = trainer_arguments(settings, output_dir, metric_for_best_model="mae")

    def card_for(evaluations: list[EvaluationRecord], summary: str) -> ModelCardContext:
        return ModelCardContext(
            model_id=settings.training.hub_model_id or output_dir.name,
            kind="debye",
            **model_architecture(model),
            head_num_layers=model_settings.head_num_layers,
            targets=[{"name": f"heat capacity Cv (`{target}`)", "unit": CV_UNIT}],
            loss=model_settings.loss,
            debye_theta_head=model.config.debye_theta_head,
            debye_theta_scale=model.config.debye_theta_scale,
            debye_theta_shift=model.config.debye_theta_shift,
            temperature_note=temperature_note,
            base_model=model_settings.pretrained,
            license=model_settings.license,
            dataset_name=data_args.dataset_name,
            datasets=dataset_entries(
                {
                    "training": (data.train_tables, len(data.train)),
                    "validation": (data.validation_tables or data.train_tables, len(data.validation)),
                    "test": (data.test_tables, len(data.test) if data.test is not None else 0),
                }
            ),
            skipped_rows=data.report.report.num_failed if data.report else 0,
            hyperparameters=hyperparameters(
                settings,
                args.world_size,
                {"loss": f"{model_settings.loss} on Cv", "validation": data.validation_note},
            ),
            training_summary=summary,
            evaluations=evaluations,
        )

    trainer = property_trainer(
        model,
        args,
        settings,
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
            test_metrics, "test", "test", len(data.test), targets, ", ".join(data_args.test)
        )
    card = card_for(records, training_summary(trainer.state, "Cv MAE"))
    finish_run(trainer, output_dir, settings, card, True, data.report, metrics)
    logger.info(
        "Cv metrics: %s",
        ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if k.endswith(("_mae", "_mae_over_mad", "_r2"))
        ),
    )
    return {"validation": {k: v for k, v in metrics.items() if k.startswith("eval_")}, "metrics": metrics}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python -m modeling_cloud.training.train_debye [flags]`; returns the exit code."""
    return run_main("train-debye", run_train_debye, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
