# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Steps shared by `pretrain`, `finetune` and `train-debye`: data loading, model-card context, finishing a run.

Each command module (`pretrain.py`, `finetune.py`, `train_debye.py`) reads like a recipe built from these steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import EarlyStoppingCallback, TrainerCallback

from model_cards import EvaluationRecord, ModelCardContext, write_model_card

from .data import (
    EncodingReport,
    PropertyCollator,
    SourceTable,
    encode_rows,
    holdout_split,
    read_sources,
    sources_hold_scope_strings,
    tables_to_rows,
)
from .engine import CloudTrainer, HubLayoutCallback, TimeEstimateCallback, process_index_from_environment
from .hub import copy_pipeline_code, publish
from .metrics import RegressionMetrics
from .options import RunSettings

logger = logging.getLogger("modeling_cloud.training")

REGRESSION_CARD_METRICS = ("mae", "rmse", "r2", "mae_over_mad")


# -- data ----------------------------------------------------------------------------------------------------


@dataclass
class RunData:
    """Encoded splits of a run and where they came from."""

    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset | None
    train_tables: list[SourceTable]
    validation_tables: list[SourceTable] | None
    test_tables: list[SourceTable] | None
    report: EncodingReport | None
    validation_note: str = ""
    #: Rows that calibrate an ensemble's σ (held out from training and validation); `None`: no calibration.
    calibration: datasets.Dataset | None = None
    calibration_note: str = ""


def read_run_tables(settings: RunSettings) -> tuple[list, list | None, list | None]:
    data = settings.data
    train = read_sources(data.train, data.input_column, "training")
    validation = read_sources(data.validation, data.input_column, "validation") if data.validation else None
    test_specs = getattr(data, "test", None)
    test = read_sources(test_specs, data.input_column, "test") if test_specs else None
    return train, validation, test


def any_scope_strings(*table_lists) -> bool:
    tables = [table for tables in table_lists if tables for table in tables]
    return sources_hold_scope_strings(tables)


def encode_tables(
    tables: Sequence[SourceTable],
    tokenizer,
    purpose: str,
    numeric_columns: dict[str, str],
    label_names: Sequence[str],
    report: EncodingReport | None,
    num_proc: int,
) -> datasets.Dataset:
    """Rows of `tables` -> encoded dataset; `label_names` (keys of `numeric_columns`) become a `labels` list."""
    started = time.perf_counter()
    rows = tables_to_rows(tables, numeric_columns, report)
    if label_names:
        rows["labels"] = rows[list(label_names)].to_numpy(dtype=np.float64).tolist()
        rows = rows.drop(columns=[name for name in label_names if name != "labels"])
    dataset = encode_rows(rows, tokenizer, purpose, report, num_proc=num_proc)
    logger.info(
        "%s: %d rows from %s encoded in %.1f s",
        purpose,
        len(dataset),
        ", ".join(table.display_name for table in tables),
        time.perf_counter() - started,
    )
    return dataset


def split_validation(
    train: datasets.Dataset, validation: datasets.Dataset | None, settings: RunSettings
) -> tuple[datasets.Dataset, datasets.Dataset, str]:
    """The validation set given, or a seeded `validation_fraction` of the training rows."""
    if validation is not None:
        return train, validation, "given with --validation"
    fraction, seed = settings.data.validation_fraction, settings.training.seed
    train_indices, validation_indices = holdout_split(len(train), fraction, seed)
    note = f"{fraction:.0%} of the training rows (seed {seed})"
    logger.info("validation: %d of %d training rows held out (%s)", len(validation_indices), len(train), note)
    return train.select(train_indices), train.select(validation_indices), note


def split_calibration(data: RunData, settings: RunSettings, encode) -> None:
    """Set `data.calibration` for an ensemble: the rows of `--calibration` (read and encoded by
    `encode(tables, purpose)`), or a seeded `--calibration-fraction` of the training rows left after the validation
    hold-out (removed from `data.train`). Neither the members' training nor their early stopping sees these rows."""
    options = settings.data
    if options.ensemble <= 1:
        return
    if options.calibration:
        tables = read_sources(options.calibration, options.input_column, "calibration")
        data.calibration = encode(tables, "calibration")
        data.calibration_note = f"given with --calibration ({len(data.calibration)} rows)"
        return
    fraction = options.resolved_calibration_fraction(len(data.train))
    if fraction <= 0:
        return
    seed = settings.training.seed + 1  # not the validation draw's seed
    train_indices, calibration_indices = holdout_split(len(data.train), fraction, seed)
    data.calibration = data.train.select(calibration_indices)
    data.train = data.train.select(train_indices)
    data.calibration_note = (
        f"{fraction:.0%} of the training rows left after the validation hold-out (seed {seed}, "
        f"{len(calibration_indices)} rows)"
    )
    logger.info("calibration: %s", data.calibration_note)


def ensemble_outputs(model, dataset: datasets.Dataset, collator, batch_size: int, fields: Sequence[str]):
    """Run `model` (in eval mode, no gradients) over `dataset` in batches of `collator`; return the named output
    `fields` and the `labels`, each concatenated over rows as a float64 array."""
    import torch

    model.eval()
    collected: dict[str, list] = {name: [] for name in (*fields, "labels")}
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
            batch = collator([rows[i] for i in range(len(rows))])
            batch = {name: value.to(model.device) for name, value in batch.items()}
            outputs = model(**batch)
            for name in fields:
                collected[name].append(outputs[name].double().cpu().numpy())
            collected["labels"].append(batch["labels"].double().cpu().numpy())
    return {name: np.concatenate(values) for name, values in collected.items()}


UNCERTAINTY_ROWS_FILE = "uncertainty_rows.json"


def calibrate_ensemble(
    model,
    data: RunData,
    collator,
    batch_size: int,
    names: Sequence[str],
    value_field: str,
    spread_field: str,
    member_field: str | None = None,
    rows_path: Path | None = None,
    floor: bool = True,
) -> dict[str, Any]:
    """Fit `model.config.uncertainty_calibration` on `data.calibration` (when there are calibration rows), then
    score the uncertainty on the validation and test rows, raw and calibrated.

    `names` are the calibrated property names, one per column of `value_field` / `spread_field` (the model outputs
    holding the ensemble's mean and its members' raw spread, in physical units, shape `(rows, len(names))`).
    With `rows_path` (OUTPUT_DIR/uncertainty_rows.json in a run), every row's label, ensemble mean and raw spread
    on the calibration, validation and test splits is written there as JSON, with the members' own values of
    `member_field` (shape `(rows, members, ...)`), so that a calibration can be refitted and rescored later without
    the model: `{"names": [...], "member_field": ..., split: {"label", "prediction", "spread": [[per name]],
    "members": [...]}}`. `floor=False` allows only the one-factor variance model
    ([`~modeling_cloud.training.uncertainty.fit_calibration`]).

    Returns:
        `{"calibration": the config entry or None, "calibration_rows": how they were chosen, "uncertainty":
        {split: {name: {"raw": metrics, "calibrated": metrics}}}}` with the metrics of
        [`~modeling_cloud.training.uncertainty.uncertainty_metrics`] (coverage as fractions).
    """
    from .uncertainty import calibrated_report, calibration_config, fit_calibration

    saved: dict[str, Any] = {"names": list(names), "member_field": member_field}

    def columns(dataset, split):
        fields = (value_field, spread_field) + ((member_field,) if member_field else ())
        outputs = ensemble_outputs(model, dataset, collator, batch_size, fields)
        width = len(names)
        values = outputs[value_field].reshape(len(dataset), width)
        spread = outputs[spread_field].reshape(len(dataset), width)
        labels = outputs["labels"].reshape(len(dataset), width)
        saved[split] = {"label": labels.tolist(), "prediction": values.tolist(), "spread": spread.tolist()}
        if member_field:
            saved[split]["members"] = outputs[member_field].tolist()
        return values - labels, spread

    result: dict[str, Any] = {"calibration": None, "calibration_rows": data.calibration_note or None}
    if data.calibration is not None:
        errors, spread = columns(data.calibration, "calibration")
        fits = {
            name: fit_calibration(errors[:, j], spread[:, j], floor=floor) for j, name in enumerate(names)
        }
        model.config.uncertainty_calibration = calibration_config(fits)
        result["calibration"] = model.config.uncertainty_calibration
        for name, fit in fits.items():
            logger.info(
                "calibration of %s on %d rows: %s, σ = hypot(%.3g, %.3g × spread) (the Gaussian fit, %s, "
                "σ = hypot(%.3g, %.3g × spread), covers %.1f %% / %.1f %% of these rows within ±1σ / ±2σ)",
                name,
                fit["rows"],
                fit["method"],
                fit["std_floor"],
                fit["std_factor"],
                fit["variance_model"],
                fit["gaussian_floor"],
                fit["gaussian_factor"],
                100 * fit["gaussian_coverage_1sigma"],
                100 * fit["gaussian_coverage_2sigma"],
            )
    scores: dict[str, Any] = {}
    for split, dataset in (("validation", data.validation), ("test", data.test)):
        if dataset is None:
            continue
        errors, spread = columns(dataset, split)
        scores[split] = {
            name: {
                "raw": calibrated_report(errors[:, j], spread[:, j], None),
                "calibrated": calibrated_report(
                    errors[:, j],
                    spread[:, j],
                    model.config.uncertainty_factors(name),
                    model.config.uncertainty_floors(name),
                ),
            }
            for j, name in enumerate(names)
        }
    result["uncertainty"] = scores
    if rows_path is not None and process_index_from_environment() == 0:
        Path(rows_path).write_text(json.dumps(saved) + "\n", encoding="utf-8")
    return result


# -- model card ----------------------------------------------------------------------------------------------


def regression_records(
    metrics: dict[str, float],
    prefix: str,
    split: str,
    rows: int,
    targets: Sequence[tuple[str, str | None]],
    source: str | None = None,
) -> list[EvaluationRecord]:
    """Model-card records from Trainer metrics (`eval_mae` or `eval_mae_<target>` with several targets)."""
    records = []
    for name, unit in targets:
        for metric in REGRESSION_CARD_METRICS:
            key = f"{prefix}_{metric}" if len(targets) == 1 else f"{prefix}_{metric}_{name}"
            value = metrics.get(key)
            if value is not None and math.isfinite(value):
                records.append(EvaluationRecord(split, rows, name, unit, metric, float(value), source))
    return records


def dataset_entries(
    tables_by_purpose: dict[str, tuple[list[SourceTable] | None, int]],
) -> list[dict[str, Any]]:
    """Model-card rows for the data sources; `rows` is the number of encoded rows each purpose used."""
    entries = []
    for purpose, (tables, rows_used) in tables_by_purpose.items():
        if not tables:
            continue
        for table in tables:
            bundled = table.bundled
            entries.append(
                {
                    "name": f"{table.display_name} ({purpose})",
                    "rows": rows_used if len(tables) == 1 else f"{len(table.frame)} read",
                    "license": bundled.license if bundled else "see the data source",
                    "description": bundled.description if bundled else "user-provided file",
                    "citations": list(bundled.citations) if bundled else [],
                    "hub_dataset_id": bundled.hub_dataset_id if bundled else None,
                }
            )
    return entries


def hyperparameters(
    settings: RunSettings, world_size: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The model card's hyperparameter table, from the run's `TrainingArguments`."""
    training = settings.training
    scheduler = getattr(training.lr_scheduler_type, "value", training.lr_scheduler_type)
    min_lr = (training.lr_scheduler_kwargs or {}).get("min_lr")
    warmup = training.warmup_steps
    warmup_text = f"{warmup:.0%} linear warm-up" if 0 < warmup < 1 else f"{int(warmup)} warm-up steps"
    table = {
        "optimiser": f"{getattr(training.optim, 'value', training.optim)} (weight decay {training.weight_decay})",
        "learning rate": training.learning_rate,
        "schedule": f"{warmup_text}, then {scheduler}" + (f" to {min_lr}" if min_lr else ""),
        "batch size": f"{training.per_device_train_batch_size} per device × {world_size} device(s) × "
        f"{training.gradient_accumulation_steps} accumulation",
        "epochs (maximum)": training.num_train_epochs
        if training.max_steps <= 0
        else f"{training.max_steps} steps",
        "gradient clipping": training.max_grad_norm,
        "precision": "bf16" if training.bf16 else "fp16" if training.fp16 else "fp32",
        "batch sampling": training.train_sampling_strategy,
        "seed": training.seed,
    }
    if settings.data.early_stopping_patience > 0:
        table["early stopping"] = f"patience {settings.data.early_stopping_patience} evaluations"
    if settings.defaults_note:
        table["defaults"] = settings.defaults_note
    table.update(extra or {})
    return table


def training_summary(state, selection_metric: str) -> str:
    """A sentence on how the run went, from the Trainer state."""
    parts = [f"Trained for {state.global_step:,} optimiser steps ({state.epoch or 0:.4g} epochs)."]
    if state.best_metric is not None:
        best = (
            Path(state.best_model_checkpoint).name if state.best_model_checkpoint else "the best checkpoint"
        )
        parts.append(
            f"The published weights are those of {best}, the lowest validation {selection_metric} "
            f"({state.best_metric:.4g})."
        )
    if state.max_steps and state.global_step < state.max_steps:
        parts.append("Training stopped early: the validation metric stopped improving.")
    return " ".join(parts)


def model_architecture(model) -> dict[str, Any]:
    config = model.config
    return {
        "architecture_class": type(model).__name__,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "num_parameters": model.num_parameters(),
        "pooling": config.pooling,
        "scope_version": config.scope_version,
    }


# -- finishing -----------------------------------------------------------------------------------------------


def write_run_files(output_dir: Path, settings: RunSettings, report: EncodingReport | None) -> None:
    """`training_config.json` (the resolved settings, reusable with `--config`) and `skipped_rows.jsonl`."""
    (output_dir / "training_config.json").write_text(
        json.dumps(settings.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    if report is not None and report.report.failures:
        report.report.write_jsonl(output_dir / "skipped_rows.jsonl")
        logger.warning("%s; listed in %s", report.report.summary(), output_dir / "skipped_rows.jsonl")


def finish_run(
    trainer,
    output_dir: Path,
    settings: RunSettings,
    card: ModelCardContext,
    with_pipeline: bool,
    report: EncodingReport | None,
    metrics: dict[str, float],
) -> None:
    """Save the selected model in Hub layout with its card, the run files and metrics; push if asked."""
    trainer.save_model(str(output_dir))
    if not trainer.is_world_process_zero():
        return
    # The Trainer also pickles its arguments there; training_config.json holds the same settings as plain JSON.
    (output_dir / "training_args.bin").unlink(missing_ok=True)
    if with_pipeline:
        copy_pipeline_code(output_dir)
    write_model_card(output_dir, card)
    write_run_files(output_dir, settings, report)
    trainer.save_metrics("all", metrics, combined=False)
    logger.info("saved the model, tokenizer, remote code and card to %s", output_dir)
    if settings.training.push_to_hub:
        publish(
            output_dir,
            settings.training.hub_model_id,
            private=bool(settings.training.hub_private_repo),
            commit_message=card_commit(card),
        )


def write_ensemble_results(
    trainer, output_dir: Path, members: list[dict], metrics: dict[str, float], uncertainty: dict
) -> dict:
    """The results of an ensemble run, written to `ensemble_results.json` by the main process and returned: each
    member's record with its validation and test metrics, the ensemble's, and the calibration and uncertainty scores
    (`uncertainty`)."""

    def scores(values: dict) -> dict:
        return {k: v for k, v in values.items() if k.startswith(("eval_", "test_"))}

    payload = {
        "members": [{**member, "metrics": scores(member["metrics"])} for member in members],
        "ensemble": scores(metrics),
        **uncertainty,
    }
    if trainer.is_world_process_zero():
        (output_dir / "ensemble_results.json").write_text(
            json.dumps(payload, indent=2) + "\n", encoding="utf-8"
        )
    return payload


def card_commit(card: ModelCardContext) -> str:
    headline = ", ".join(
        f"{record.split} {record.metric} {record.value:.4g}"
        for record in card.evaluations
        if record.metric == "mae"
    )
    return f"Upload CLOUD {card.kind} model" + (f" ({headline})" if headline else "")


def last_evaluation(state) -> dict[str, float]:
    """The latest `eval_*` metrics in the Trainer's log history."""
    for entry in reversed(state.log_history):
        if any(key.startswith("eval_") for key in entry):
            return entry
    return {}


def checkpoint_callbacks(
    settings: RunSettings,
    card_for,
    records_for,
    with_pipeline: bool,
    extra: Sequence[TrainerCallback] = (),
    leading: Sequence[TrainerCallback] = (),
) -> list[TrainerCallback]:
    """Callbacks every command uses: each saved checkpoint gets the Hub layout (pipeline code when the model has a
    head, and a model card built by ``card_for(records_for(state), summary)``), a time estimate after the first steps,
    then early stopping if asked."""

    def complete_checkpoint(folder: Path, state) -> None:
        if with_pipeline:
            copy_pipeline_code(folder)
        summary = f"Intermediate checkpoint at step {state.global_step:,}."
        write_model_card(folder, card_for(records_for(state), summary))

    callbacks = [*leading, HubLayoutCallback(complete_checkpoint), TimeEstimateCallback(), *extra]
    patience = settings.data.early_stopping_patience
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def padding_multiple(settings: RunSettings) -> int | None:
    """Pad batches to a multiple of 8 under mixed precision (tensor-core friendly shapes), not at all otherwise."""
    return 8 if settings.training.bf16 or settings.training.fp16 else None


def property_trainer(
    model,
    args,
    settings: RunSettings,
    data,
    tokenizer,
    card_for,
    targets,
    metric_targets: Sequence[str],
    prediction_output: str,
    output_class,
    callbacks: Sequence[TrainerCallback] = (),
) -> CloudTrainer:
    """The `CloudTrainer` of a property command (finetune, train-debye): property collator, regression metrics in
    physical units for `metric_targets`, Hub-layout checkpoints with cards that carry the latest validation metrics.
    `prediction_output` is the model output field that holds the predictions (`output_class` lists the fields)."""
    return CloudTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        data_collator=PropertyCollator(tokenizer, pad_to_multiple_of=padding_multiple(settings)),
        compute_metrics=RegressionMetrics(metric_targets),
        callbacks=checkpoint_callbacks(
            settings,
            card_for,
            lambda state: regression_records(
                last_evaluation(state), "eval", "validation", len(data.validation), targets
            ),
            with_pipeline=True,
            extra=callbacks,
        ),
        prediction_output=prediction_output,
        output_fields=tuple(field.name for field in dataclasses.fields(output_class)),
    )
