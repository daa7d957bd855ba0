# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Evaluation metrics in physical units: MAE, RMSE, R², MAD and MAE/MAD, for `Trainer(compute_metrics=...)`.

Metric names: with one target, `mae`, `rmse`, `r2`, `mad`, `mae_over_mad`; with several, each gets the target name
as suffix (`mae_band_gap`) and `mae_over_mad` is the mean over targets (the selection metric, since MAEs in
different units cannot be averaged). NaN labels (missing values) are left out per target.

Example:

```python
>>> import numpy as np
>>> metrics = regression_metrics(np.array([[1.0], [2.0], [4.0]]), np.array([[1.5], [2.0], [3.0]]), ["n"])
>>> round(metrics["mae"], 4), round(metrics["mae_over_mad"], 4)
(0.5, 0.9)

```
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SINGLE_TARGET_SELECTION_METRIC = "mae"
MULTI_TARGET_SELECTION_METRIC = "mae_over_mad"


def selection_metric(num_targets: int) -> str:
    """The metric that picks the best checkpoint (lower is better)."""
    return SINGLE_TARGET_SELECTION_METRIC if num_targets == 1 else MULTI_TARGET_SELECTION_METRIC


def _target_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    error = prediction - truth
    mae = float(np.mean(np.abs(error)))
    rmse = float(np.sqrt(np.mean(error**2)))
    mad = float(np.mean(np.abs(truth - truth.mean())))
    total = float(np.sum((truth - truth.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan")
    return {
        "mae": mae,
        "rmse": rmse,
        "r2": r2,
        "mad": mad,
        "mae_over_mad": mae / mad if mad > 0 else float("nan"),
    }


def regression_metrics(
    predictions: np.ndarray, labels: np.ndarray, target_names: Sequence[str]
) -> dict[str, float]:
    """Metrics of `predictions` against `labels`, both `(rows, targets)` in physical units."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    if predictions.shape != labels.shape or predictions.shape[1] != len(target_names):
        raise ValueError(
            f"predictions {predictions.shape} and labels {labels.shape} must both be (rows, {len(target_names)})"
        )
    per_target = []
    for column in range(labels.shape[1]):
        observed = ~np.isnan(labels[:, column])
        if not observed.any():
            per_target.append(None)
            continue
        per_target.append(_target_metrics(predictions[observed, column], labels[observed, column]))
    if len(target_names) == 1:
        return per_target[0] or {}
    metrics: dict[str, float] = {}
    for name, values in zip(target_names, per_target, strict=True):
        for metric, value in (values or {}).items():
            metrics[f"{metric}_{name}"] = value
    ratios = [
        values["mae_over_mad"] for values in per_target if values and math.isfinite(values["mae_over_mad"])
    ]
    metrics["mae_over_mad"] = float(np.mean(ratios)) if ratios else float("nan")
    return metrics


class RegressionMetrics:
    """`compute_metrics` for [`CloudForPropertyRegression`] (`predictions`) and [`CloudDebyeModel`] (`heat_capacity`)."""

    def __init__(self, target_names: Sequence[str]):
        self.target_names = list(target_names)

    def __call__(self, eval_prediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return regression_metrics(predictions, eval_prediction.label_ids, self.target_names)


def masked_token_accuracy(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for masked-LM evaluation; expects argmax ids (see [`argmax_logits`])."""
    predictions = np.asarray(eval_prediction.predictions)
    labels = np.asarray(eval_prediction.label_ids)
    masked = labels != -100
    accuracy = float((predictions[masked] == labels[masked]).mean()) if masked.any() else float("nan")
    return {"accuracy": accuracy}


def argmax_logits(logits, labels):
    """`preprocess_logits_for_metrics`: keep the argmax id per position instead of the full vocabulary logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)
