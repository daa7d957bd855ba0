# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`train-debye`: train CLOUD-DEBYE, which predicts a Debye temperature θ_D and gets Cv, U, S and F from it.

The data hold a crystal, its heat capacity Cv in J/(K mol of cells), the number of atoms in the cell (`n_atoms`)
and the temperature, from a column (`--temperature-column`) or fixed (`--temperature`, 300 K by default as in the
authors' data). The loss is L1 on Cv computed from θ_D through the Debye model (authors: lr 1e-4, batch 128,
400 epochs, gradient clipping 5); the checkpoint with the lowest validation Cv MAE is kept. `--ensemble K` trains K
seeds and saves one ensemble checkpoint whose θ_D, Cv, U, S and F come with a calibrated σ ([`run_debye_ensemble`]).

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
    UNCERTAINTY_ROWS_FILE,
    RunData,
    any_scope_strings,
    calibrate_ensemble,
    dataset_entries,
    encode_tables,
    finish_run,
    hyperparameters,
    model_architecture,
    property_trainer,
    read_run_tables,
    regression_records,
    split_calibration,
    split_validation,
    training_summary,
    write_ensemble_results,
)
from .data import EncodingReport, PropertyCollator
from .engine import resolve_resume_checkpoint, trainer_arguments
from .finetune import ensemble_seeds, train_members
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
    split_calibration(data, settings, lambda tables, purpose: encoded(tables, purpose))
    return data


def run_train_debye(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Run `train-debye` with resolved settings (and extra Trainer `callbacks`); returns the metrics. With
    `--ensemble K`, K members and their calibrated ensemble ([`run_debye_ensemble`])."""
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if settings.data.ensemble > 1:
        return run_debye_ensemble(settings, callbacks)
    resume = resolve_resume_checkpoint(settings, output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_debye_data(settings, tokenizer, tables)
    metrics = train_one_debye(settings, output_dir, tokenizer, pretrained, data, resume, callbacks=callbacks)
    return {"validation": {k: v for k, v in metrics.items() if k.startswith("eval_")}, "metrics": metrics}


def train_one_debye(
    settings: RunSettings,
    output_dir: Path,
    tokenizer,
    pretrained,
    data: RunData,
    resume: str | None,
    note: str = "",
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train, select, evaluate and save one CLOUD-DEBYE model on `data.train` / `data.validation`; its metrics."""
    data_args, model_settings = settings.data, settings.model
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
    trainer = _debye_trainer(
        settings, output_dir, model, data, tokenizer, data.validation_note + note, callbacks
    )
    trainer.train(resume_from_checkpoint=resume)
    metrics, records = _evaluate_debye(trainer, settings, data)
    card = trainer.card_for(records, training_summary(trainer.state, "Cv MAE"))
    finish_run(trainer, output_dir, settings, card, True, data.report, metrics)
    _log_metrics(metrics)
    return metrics


def _debye_trainer(
    settings, output_dir: Path, model, data: RunData, tokenizer, validation: str, callbacks=()
):
    """The `Trainer` of a Debye run (one model or an assembled ensemble), its model-card builder as `card_for`."""
    data_args, model_settings = settings.data, settings.model
    target = data_args.target[0]
    targets = [(target, CV_UNIT)]
    temperature_note = (
        f"the temperatures of column `{data_args.temperature_column}`"
        if data_args.temperature_column
        else f"{data_args.temperature:g} K"
    )
    args = trainer_arguments(settings, output_dir, metric_for_best_model="mae")
    extra = {"loss": f"{model_settings.loss} on Cv", "validation": validation}
    if model.config.num_ensemble_members > 1:
        seeds = ensemble_seeds(settings)
        extra["ensemble"] = (
            f"{len(seeds)} members, seeds {', '.join(map(str, seeds))}; predictions are the members' means"
        )
        if data.calibration_note:
            extra["σ calibration rows"] = data.calibration_note

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
            hyperparameters=hyperparameters(settings, args.world_size, extra),
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
    trainer.card_for = card_for
    return trainer


def _evaluate_debye(trainer, settings: RunSettings, data: RunData):
    targets = [(settings.data.target[0], CV_UNIT)]
    metrics = dict(trainer.evaluate(data.validation, metric_key_prefix="eval"))
    records = regression_records(metrics, "eval", "validation", len(data.validation), targets)
    if data.test is not None:
        test_metrics = trainer.evaluate(data.test, metric_key_prefix="test")
        metrics.update(test_metrics)
        records += regression_records(
            test_metrics, "test", "test", len(data.test), targets, ", ".join(settings.data.test)
        )
    return metrics, records


def _log_metrics(metrics: dict[str, float]) -> None:
    logger.info(
        "Cv metrics: %s",
        ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if k.endswith(("_mae", "_mae_over_mad", "_r2"))
        ),
    )


def run_debye_ensemble(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """`train-debye --ensemble K`: K members with seeds `ensemble_seeds(settings)` on one training/validation split,
    each kept at its own best validation checkpoint in OUTPUT_DIR/member-<i>, assembled into one
    [`CloudDebyeModel`] checkpoint in OUTPUT_DIR (`config.num_ensemble_members` = K). Its outputs are the members'
    means with the spread of θ_D and of Cv, U, S, F at every temperature, each computed from the members' own θ_D.
    σ is calibrated on Cv over the calibration rows (see `finetune.run_ensemble`), and `ensemble_results.json`
    lists every member's validation and test metrics, the ensemble's, the calibration and the uncertainty scores."""
    output_dir = Path(settings.output_dir)
    pretrained = pretrained_source(settings)
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_debye_data(settings, tokenizer, tables)
    seeds = ensemble_seeds(settings)
    members = train_members(
        settings,
        output_dir,
        tokenizer,
        pretrained,
        data,
        train_one_debye,
        callbacks,
        calibration=None,
        calibration_fraction=None,
    )

    model = CloudDebyeModel.from_members(
        [CloudDebyeModel.from_pretrained(output_dir / member["folder"]) for member in members]
    )
    attach_pipeline(model)
    uncertainty = calibrate_ensemble(
        model,
        data,
        PropertyCollator(tokenizer),
        settings.training.per_device_eval_batch_size,
        [CloudDebyeOutput.CALIBRATED_FIELD],
        "heat_capacity",
        "heat_capacity_std_raw",
        "member_theta_debye",
        output_dir / UNCERTAINTY_ROWS_FILE,
        floor=False,  # one factor scales θ_D, Cv, U, S and F alike; a floor in Cv's unit would not carry over
    )
    trainer = _debye_trainer(settings, output_dir, model, data, tokenizer, data.validation_note)
    metrics, records = _evaluate_debye(trainer, settings, data)
    summary = (
        f"A seed ensemble of {len(members)} CLOUD-DEBYE models (seeds {', '.join(map(str, seeds))}), trained on the "
        "same training and validation rows, each kept at its own lowest validation Cv MAE. Validation Cv MAE per "
        "member: "
        + ", ".join(f"{member['metrics'].get('eval_mae', float('nan')):.4g}" for member in members)
        + f"; of the ensemble: {metrics.get('eval_mae', float('nan')):.4g}."
    )
    finish_run(trainer, output_dir, settings, trainer.card_for(records, summary), True, data.report, metrics)
    payload = write_ensemble_results(trainer, output_dir, members, metrics, uncertainty)
    _log_metrics(metrics)
    return {
        "validation": {k: v for k, v in metrics.items() if k.startswith("eval_")},
        "metrics": metrics,
        "members": payload["members"],
        **uncertainty,
    }


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python -m modeling_cloud.training.train_debye [flags]`; returns the exit code."""
    return run_main("train-debye", run_train_debye, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
