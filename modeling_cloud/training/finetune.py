# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`finetune`: train a CLOUD property-regression model on a table of crystals and labels.

The authors' recipe: the `[CLS]` embedding through Dropout, k x (Linear + SiLU) and a Linear output; L1 loss on
targets z-scored with the training-set mean and standard deviation (stored in the config, so the model predicts in
physical units); AdamW with warm-up and cosine decay; the checkpoint with the lowest validation MAE is kept.
`--cv-folds K` runs K-fold cross-validation instead (MatBench's KFold seed 18012019) and reports mean and spread.
`--ensemble K` trains K models with seeds seed, seed + 1, ... on the same split and saves them as one checkpoint
that predicts their mean and standard deviation (`config.num_ensemble_members`).

Run as `cloud-crystal finetune ...`, `python -m modeling_cloud.training.finetune ...`, or under `torchrun` /
`accelerate launch -m modeling_cloud.training.finetune ...`.

Example (Python):

```python
>>> from modeling_cloud.training.finetune import run_finetune
>>> from modeling_cloud.training.options import settings_from_dict
>>> settings = settings_from_dict("finetune", {"train": ["bundled:cloud-dielectric[:200]"], "target": ["n"],
...     "output_dir": "out-n", "model_size": "tiny", "num_train_epochs": 2})
>>> results = run_finetune(settings)  # doctest: +SKIP
>>> sorted(results["validation"])  # doctest: +SKIP
['eval_mae', 'eval_mad', 'eval_mae_over_mad', 'eval_r2', 'eval_rmse', ...]

```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, set_seed

from dataset_builders.splits import MATBENCH_SEED, kfold_indices
from model_cards import EvaluationRecord, ModelCardContext
from modeling_cloud import CloudForPropertyRegression, CloudPropertyRegressionOutput

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
from .data import EncodingReport, PropertyCollator, target_statistics
from .engine import resolve_resume_checkpoint, trainer_arguments
from .hub import attach_pipeline
from .launch import run_main
from .metrics import selection_metric
from .model_setup import build_model, pretrained_source, resolve_tokenizer
from .options import RunSettings

logger = logging.getLogger("modeling_cloud.training")


def _label_columns(settings: RunSettings) -> dict[str, str]:
    return {f"label:{name}": name for name in settings.data.target}


def load_finetune_data(settings: RunSettings, tokenizer, tables) -> RunData:
    train_tables, validation_tables, test_tables = tables
    report = EncodingReport() if settings.data.skip_invalid_rows else None
    columns = _label_columns(settings)
    encode = dict(
        tokenizer=tokenizer,
        numeric_columns=columns,
        label_names=list(columns),
        report=report,
        num_proc=settings.data.preprocessing_num_workers,
    )
    train = encode_tables(train_tables, purpose="training", **encode)
    validation = (
        encode_tables(validation_tables, purpose="validation", **encode) if validation_tables else None
    )
    test = encode_tables(test_tables, purpose="test", **encode) if test_tables else None
    data = RunData(train, validation, test, train_tables, validation_tables, test_tables, report)
    if settings.data.cv_folds is None:
        data.train, data.validation, data.validation_note = split_validation(train, validation, settings)
        split_calibration(
            data, settings, lambda tables, purpose: encode_tables(tables, purpose=purpose, **encode)
        )
    return data


def _targets(settings: RunSettings) -> list[tuple[str, str | None]]:
    data = settings.data
    units = data.target_unit or [None] * len(data.target)
    return [(name, unit or None) for name, unit in zip(data.target, units, strict=True)]


def train_one_model(
    settings: RunSettings,
    output_dir: Path,
    tokenizer,
    pretrained,
    data: RunData,
    resume: str | None,
    fold_note: str = "",
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train, select, evaluate and save one model on `data.train` / `data.validation`; return its metrics."""
    targets = _targets(settings)
    model_settings = settings.model
    labels = np.asarray(data.train["labels"], dtype=np.float64)
    means, stds = target_statistics(labels, settings.data.target)
    logger.info(
        "targets (z-scored with training statistics): %s",
        ", ".join(
            f"{name} mean {m:.4g} std {s:.4g}" for (name, _), m, s in zip(targets, means, stds, strict=True)
        ),
    )
    set_seed(settings.training.seed)
    model = build_model(
        CloudForPropertyRegression,
        settings,
        tokenizer,
        pretrained,
        target_names=list(settings.data.target),
        target_units=[unit for _, unit in targets],
        target_means=means,
        target_stds=stds,
        head_num_layers=model_settings.head_num_layers,
        head_dropout=model_settings.head_dropout,
        loss=model_settings.loss,
    )
    attach_pipeline(model)
    trainer, args, metric, card_for = _regression_trainer(
        settings, output_dir, model, data, tokenizer, targets, data.validation_note + fold_note, callbacks
    )
    trainer.train(resume_from_checkpoint=resume)
    metrics, records = _evaluate(trainer, settings, data, targets, output_dir)
    summary = training_summary(trainer.state, metric)
    finish_run(trainer, output_dir, settings, card_for(records, summary), True, data.report, metrics)
    _log_metrics(metrics, targets)
    return metrics


def _regression_trainer(
    settings: RunSettings, output_dir: Path, model, data: RunData, tokenizer, targets, note: str, callbacks=()
):
    """The `Trainer` of a regression run (one model or an assembled ensemble), with its arguments, its selection
    metric (validation MAE of every target) and the model-card builder (written with `note`)."""
    metric = selection_metric(len(targets))
    args = trainer_arguments(settings, output_dir, metric_for_best_model=metric)
    card_for = _card_builder(settings, output_dir, model, data, args.world_size, note)
    trainer = property_trainer(
        model,
        args,
        settings,
        data,
        tokenizer,
        card_for,
        targets,
        metric_targets=settings.data.target,
        prediction_output="predictions",
        output_class=CloudPropertyRegressionOutput,
        callbacks=callbacks,
    )
    return trainer, args, metric, card_for


def _evaluate(trainer, settings: RunSettings, data: RunData, targets, output_dir: Path):
    """Metrics and card records on the validation split and, when given, the test split (whose predictions are
    written to `test_predictions.csv` by the main process)."""
    metrics = dict(trainer.evaluate(data.validation, metric_key_prefix="eval"))
    records = regression_records(metrics, "eval", "validation", len(data.validation), targets)
    if data.test is not None:
        test_output = trainer.predict(data.test, metric_key_prefix="test")
        metrics.update(test_output.metrics)
        records += regression_records(
            test_output.metrics, "test", "test", len(data.test), targets, ", ".join(settings.data.test or [])
        )
        if trainer.is_world_process_zero():
            _write_predictions(
                output_dir / "test_predictions.csv", data.test, test_output.predictions, targets
            )
    return metrics, records


def _card_builder(
    settings: RunSettings, output_dir: Path, model, data: RunData, world_size: int, validation: str
):
    """`card_for(evaluations, summary)`: the model card of `model` (a single model or an ensemble) trained on
    `data`; `validation` says how the validation rows were chosen."""
    model_settings = settings.model
    config = model.config
    targets = list(zip(config.target_names, config.target_units, strict=True))
    extra = {"loss": f"{model_settings.loss} on z-scored targets", "validation": validation}
    if config.num_ensemble_members > 1:
        seeds = ensemble_seeds(settings)
        extra["ensemble"] = (
            f"{len(seeds)} members, seeds {', '.join(map(str, seeds))}; predictions are the members' mean"
        )
        if data.calibration_note:
            extra["σ calibration rows"] = data.calibration_note

    def card_for(evaluations: list[EvaluationRecord], summary: str) -> ModelCardContext:
        return ModelCardContext(
            model_id=settings.training.hub_model_id or output_dir.name,
            kind="property",
            **model_architecture(model),
            head_num_layers=model_settings.head_num_layers,
            targets=[
                {"name": name, "unit": unit or "", "mean": f"{m:.4g}", "std": f"{s:.4g}"}
                for (name, unit), m, s in zip(targets, config.target_means, config.target_stds, strict=True)
            ],
            loss=model_settings.loss,
            base_model=model_settings.pretrained,
            license=model_settings.license,
            dataset_name=settings.data.dataset_name,
            datasets=dataset_entries(
                {
                    "training": (data.train_tables, len(data.train)),
                    "validation": (data.validation_tables or data.train_tables, len(data.validation)),
                    "test": (data.test_tables, len(data.test) if data.test is not None else 0),
                }
            ),
            skipped_rows=data.report.report.num_failed if data.report else 0,
            hyperparameters=hyperparameters(settings, world_size, extra),
            training_summary=summary,
            evaluations=evaluations,
        )

    return card_for


def _write_predictions(path: Path, dataset, predictions, targets) -> None:
    import pandas as pd

    predictions = np.asarray(predictions).reshape(len(dataset), -1)
    labels = np.asarray(dataset["labels"], dtype=np.float64).reshape(len(dataset), -1)
    frame = pd.DataFrame({"source": list(dataset["source"]), "scope": list(dataset["scope"])})
    for column, (name, _) in enumerate(targets):
        frame[name] = labels[:, column]
        frame[f"predicted_{name}"] = predictions[:, column]
    frame.to_csv(path, index=False)


def _log_metrics(metrics: dict[str, float], targets) -> None:
    shown = {
        key: value
        for key, value in metrics.items()
        if key.split("_", 1)[-1].startswith(("mae", "rmse", "r2"))
    }
    logger.info("metrics: %s", ", ".join(f"{key} {value:.4g}" for key, value in sorted(shown.items())))


def run_finetune(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Run `finetune` (or its cross-validation) with resolved settings (and extra Trainer `callbacks`); returns the
    metrics."""
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if settings.data.cv_folds:
        return run_cross_validation(settings, callbacks)
    if settings.data.ensemble > 1:
        return run_ensemble(settings, callbacks)
    resume = resolve_resume_checkpoint(settings, output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_finetune_data(settings, tokenizer, tables)
    metrics = train_one_model(settings, output_dir, tokenizer, pretrained, data, resume, callbacks=callbacks)
    return {"validation": {k: v for k, v in metrics.items() if k.startswith("eval_")}, "metrics": metrics}


def ensemble_seeds(settings: RunSettings) -> list[int]:
    """The seeds of the `--ensemble K` members: `--seed`, `--seed` + 1, ..., `--seed` + K - 1."""
    return [settings.training.seed + index for index in range(settings.data.ensemble)]


def train_members(
    settings: RunSettings,
    output_dir: Path,
    tokenizer,
    pretrained,
    data,
    train_one: Callable[..., dict[str, Any]],
    callbacks: Sequence[TrainerCallback] = (),
    **data_overrides: Any,
) -> list[dict[str, Any]]:
    """Train the `--ensemble K` members, one per seed of `ensemble_seeds(settings)`, each through `train_one`
    (`train_one_model` or `train_debye.train_one_debye`) on the same `data`, into OUTPUT_DIR/member-<i> (resumable,
    never pushed). `data_overrides` are further `DataSettings` fields of a member (besides `ensemble=1`).

    Returns:
        `[{"folder", "seed", "metrics"}]`, one per member in seed order.
    """
    seeds = ensemble_seeds(settings)
    members = []
    for index, seed in enumerate(seeds):
        logger.info("ensemble member %d/%d: seed %d", index + 1, len(seeds), seed)
        member_dir = output_dir / f"member-{index}"
        member_settings = dataclasses.replace(
            settings,
            data=dataclasses.replace(settings.data, ensemble=1, **data_overrides),
            training=dataclasses.replace(
                settings.training, seed=seed, output_dir=str(member_dir), push_to_hub=False
            ),
        )
        member_dir.mkdir(parents=True, exist_ok=True)
        resolve_resume_checkpoint(member_settings, member_dir)
        metrics = train_one(
            member_settings,
            member_dir,
            tokenizer,
            pretrained,
            data,
            None,
            f"; ensemble member {index} of {len(seeds)} (seed {seed})",
            callbacks,
        )
        members.append({"folder": member_dir.name, "seed": seed, "metrics": metrics})
    return members


def run_ensemble(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """`--ensemble K`: K members trained through the usual Trainer path with seeds `ensemble_seeds(settings)`, on one
    training/validation split (drawn with `--seed`), each kept at its own best validation checkpoint in
    OUTPUT_DIR/member-<i>; then assembled into one checkpoint in OUTPUT_DIR (`config.num_ensemble_members` = K)
    whose predictions are the members' mean, with their standard deviation beside them. With calibration rows
    (`--calibration`, or `--calibration-fraction` of the training rows, by default 10 % but at least 200 rows, held
    out from the members' training and validation) the calibration turning the spread into σ is fitted on them and
    stored in the config (`uncertainty_calibration`). The ensemble is evaluated like a single model (validation, and --test when given);
    `ensemble_results.json` lists every member's validation and test metrics, the ensemble's, the calibration and
    the uncertainty scores (coverage of ±1σ / ±2σ, Spearman |error| vs σ, miscalibration area; raw and calibrated)
    on the validation and test rows."""
    output_dir = Path(settings.output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_finetune_data(settings, tokenizer, tables)  # one split for every member
    targets = _targets(settings)
    seeds = ensemble_seeds(settings)
    members = train_members(settings, output_dir, tokenizer, pretrained, data, train_one_model, callbacks)

    model = CloudForPropertyRegression.from_members(
        [CloudForPropertyRegression.from_pretrained(output_dir / member["folder"]) for member in members]
    )
    attach_pipeline(model)
    uncertainty = calibrate_ensemble(
        model,
        data,
        PropertyCollator(tokenizer),
        settings.training.per_device_eval_batch_size,
        model.config.target_names,
        "predictions",
        "predictions_std_raw",
        "member_predictions",
        output_dir / UNCERTAINTY_ROWS_FILE,
    )
    trainer, args, metric, card_for = _regression_trainer(
        settings, output_dir, model, data, tokenizer, targets, data.validation_note
    )
    metrics, records = _evaluate(trainer, settings, data, targets, output_dir)
    chosen = args.metric_for_best_model or metric  # the user's --metric-for-best-model, if any
    key = chosen.removeprefix("eval_")
    metric = f"eval_{key}"
    summary = (
        f"A seed ensemble of {len(members)} models (seeds {', '.join(map(str, seeds))}), trained on the same "
        f"training and validation rows, each kept at its own lowest validation {key}; predictions are the members' "
        f"mean, with their standard deviation. Validation {key} per member: "
        + ", ".join(f"{member['metrics'].get(metric, float('nan')):.4g}" for member in members)
        + f"; of the ensemble: {metrics.get(metric, float('nan')):.4g}."
    )
    finish_run(trainer, output_dir, settings, card_for(records, summary), True, data.report, metrics)
    payload = write_ensemble_results(trainer, output_dir, members, metrics, uncertainty)
    for member in members:
        logger.info(
            "member %s (seed %d): %s %.4g",
            member["folder"],
            member["seed"],
            metric,
            member["metrics"].get(metric, float("nan")),
        )
    _log_metrics(metrics, targets)
    return {
        "validation": {k: v for k, v in metrics.items() if k.startswith("eval_")},
        "metrics": metrics,
        "members": payload["members"],
        **uncertainty,
    }


def run_cross_validation(settings: RunSettings, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """K-fold cross-validation over the training data: per fold, a model trained on the other folds (with a seeded
    validation hold-out for model selection) is evaluated on the held-out fold."""
    output_dir = Path(settings.output_dir)
    pretrained = pretrained_source(settings)  # a wrong checkpoint fails before any data is read
    tables = read_run_tables(settings)
    tokenizer = resolve_tokenizer(settings, pretrained, any_scope_strings(*tables))
    data = load_finetune_data(settings, tokenizer, tables)
    targets = _targets(settings)
    folds = kfold_indices(len(data.train), n_splits=settings.data.cv_folds, seed=MATBENCH_SEED)
    results = []
    for fold, (train_indices, test_indices) in enumerate(folds):
        logger.info(
            "fold %d/%d: %d training rows, %d held out",
            fold + 1,
            len(folds),
            len(train_indices),
            len(test_indices),
        )
        fold_dir = output_dir / f"fold-{fold}"
        fold_settings = dataclasses.replace(
            settings,
            data=dataclasses.replace(settings.data, test=None, cv_folds=None),
            training=dataclasses.replace(settings.training, output_dir=str(fold_dir)),
        )
        fold_dir.mkdir(parents=True, exist_ok=True)
        resolve_resume_checkpoint(fold_settings, fold_dir)
        train, validation, note = split_validation(data.train.select(train_indices), None, fold_settings)
        fold_data = RunData(
            train,
            validation,
            data.train.select(test_indices),
            data.train_tables,
            None,
            None,
            data.report,
            note,
        )
        fold_data.test_tables = data.train_tables
        metrics = train_one_model(
            fold_settings,
            fold_dir,
            tokenizer,
            pretrained,
            fold_data,
            None,
            f"; fold {fold} of {len(folds)}",
            callbacks,
        )
        results.append(metrics)
    summary = _summarise_folds(results, targets)
    payload = {
        "folds": settings.data.cv_folds,
        "seed": MATBENCH_SEED,
        "rows": len(data.train),
        "per_fold": results,
        "summary": summary,
    }
    (output_dir / "cv_results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    for key, value in summary.items():
        logger.info("cross-validation %s: %.4g ± %.4g", key, value["mean"], value["std"])
    return payload


def _summarise_folds(results: list[dict[str, float]], targets) -> dict[str, dict[str, float]]:
    keys = sorted({key for metrics in results for key in metrics if key.startswith("test_")})
    summary = {}
    for key in keys:
        if key.endswith(("_runtime", "_samples_per_second", "_steps_per_second", "_loss")):
            continue
        values = np.asarray([metrics[key] for metrics in results if key in metrics], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values):
            summary[key.removeprefix("test_")] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "values": [float(value) for value in values],
            }
    return summary


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python -m modeling_cloud.training.finetune [flags]`; returns the exit code."""
    return run_main("finetune", run_finetune, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
