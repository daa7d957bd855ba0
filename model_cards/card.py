# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Model cards (README.md) for CLOUD checkpoints, rendered from the Jinja template in `templates/` (re-exported by
`model_cards/__init__.py`).

The training commands fill a [`ModelCardContext`] from the run (data, hyperparameters, metrics) and call
[`write_model_card`]. The card's YAML header carries the Hub metadata: licence, library, tags, datasets, base model
and a `model-index` with the evaluation metrics, built with `huggingface_hub.ModelCardData` / `EvalResult` so it
validates like any other model card.

Example:

```python
>>> from model_cards import EvaluationRecord, ModelCardContext, render_model_card
>>> context = ModelCardContext(
...     model_id="me/cloud-n", kind="property", scope_version="v2", architecture_class="CloudForPropertyRegression",
...     targets=[{"name": "n", "unit": "", "mean": 2.1, "std": 0.6}],
...     datasets=[{"name": "bundled:cloud-dielectric", "rows": 3430, "license": "mit", "description": "MatBench",
...                "citations": ["cloud", "matbench"], "hub_dataset_id": "matbench_dielectric"}],
...     evaluations=[EvaluationRecord(split="validation", rows=381, target="n", unit="", metric="mae", value=0.31)],
... )
>>> card = render_model_card(context)
>>> "model-index" in card and "matbench_dielectric" in card and "value: 0.31" in card
True

```
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "cloud_model_card.md"

KINDS = ("base", "property", "debye")

#: Metric ids (model-index `type`) and how the card names them.
METRIC_NAMES = {
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "mae_over_mad": "MAE/MAD",
    "mad": "MAD",
    "loss": "loss",
    "accuracy": "masked-token accuracy",
    "perplexity": "perplexity",
}
_UNITLESS_METRICS = ("r2", "mae_over_mad", "loss", "accuracy", "perplexity")

CITATIONS: dict[str, tuple[str, str]] = {
    "cloud": (
        "CLOUD model and SCOPE encoding: Xu, Zhu & Viswanathan, arXiv 2506.17345.",
        """@article{xu2026cloud,
  title   = {CLOUD: A Scalable and Physics-Informed Foundation Model for Crystal Representation Learning},
  author  = {Xu, Changwen and Zhu, Shang and Viswanathan, Venkatasubramanian},
  journal = {Nature Communications},
  volume  = {17},
  pages   = {4074},
  year    = {2026},
  note    = {arXiv:2506.17345}
}""",
    ),
    "materials_project": (
        "Materials Project data (CC BY 4.0): Jain et al., APL Materials 1, 011002 (2013).",
        """@article{jain2013materials,
  title   = {Commentary: The Materials Project: A materials genome approach to accelerating materials innovation},
  author  = {Jain, Anubhav and Ong, Shyue Ping and Hautier, Geoffroy and Chen, Wei and Richards, William Davidson
             and Dacek, Stephen and Cholia, Shreyas and Gunter, Dan and Skinner, David and Ceder, Gerbrand
             and Persson, Kristin A.},
  journal = {APL Materials},
  volume  = {1},
  pages   = {011002},
  year    = {2013}
}""",
    ),
    "matminer": (
        "Data sets as distributed with matminer: Ward et al., Comput. Mater. Sci. 152, 60 (2018).",
        """@article{ward2018matminer,
  title   = {Matminer: An open source toolkit for materials data mining},
  author  = {Ward, Logan and Dunn, Alexander and Faghaninia, Alireza and Zimmermann, Nils E. R. and Bajaj, Saurabh
             and Wang, Qi and Montoya, Joseph and Chen, Jiming and Bystrom, Kyle and Dylla, Maxwell and Chard, Kyle
             and Asta, Mark and Persson, Kristin A. and Snyder, G. Jeffrey and Foster, Ian and Jain, Anubhav},
  journal = {Computational Materials Science},
  volume  = {152},
  pages   = {60--69},
  year    = {2018}
}""",
    ),
    "matbench": (
        "MatBench tasks and folds: Dunn et al., npj Comput. Mater. 6, 138 (2020).",
        """@article{dunn2020benchmarking,
  title   = {Benchmarking materials property prediction methods: the Matbench test set and Automatminer reference
             algorithm},
  author  = {Dunn, Alexander and Wang, Qi and Ganose, Alex and Dopp, Daniel and Jain, Anubhav},
  journal = {npj Computational Materials},
  volume  = {6},
  pages   = {138},
  year    = {2020}
}""",
    ),
    "petousis2017": (
        "Dielectric data: Petousis et al., Scientific Data 4, 160134 (2017).",
        """@article{petousis2017high,
  title   = {High-throughput screening of inorganic compounds for the discovery of novel dielectric and optical
             materials},
  author  = {Petousis, Ioannis and Mrdjenovich, David and Ballouz, Eric and Liu, Miao and Winston, Donald
             and Chen, Wei and Graf, Tanja and Schladt, Thomas D. and Persson, Kristin A. and Prinz, Fritz B.},
  journal = {Scientific Data},
  volume  = {4},
  pages   = {160134},
  year    = {2017}
}""",
    ),
}


@dataclass
class EvaluationRecord:
    """One metric of one target on one split, in the target's physical unit (MAE, RMSE) or unitless."""

    split: str
    rows: int
    target: str
    unit: str | None
    metric: str
    value: float
    source: str | None = None


@dataclass
class ModelCardContext:
    """Everything the card says about a checkpoint. Fields left at their defaults are shown as unknown or omitted.

    `kind` is `"base"` (masked-LM pretrained encoder), `"property"` (regression head) or `"debye"` (CLOUD-DEBYE).
    `datasets` entries hold `name` ("source (purpose)"), `rows`, `license`, `description`, `citations` (keys of
    [`CITATIONS`]) and optionally `hub_dataset_id`. `base_model` goes into the metadata only when it is a Hub repo id
    (not a local folder). `cross_validation` holds `folds`, `seed` and `records` (per-fold
    [`EvaluationRecord`]s with `split="fold k"`).
    """

    model_id: str
    kind: str
    scope_version: str
    architecture_class: str
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int = 64
    num_parameters: int | None = None
    pooling: str = "cls"
    head_num_layers: int | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    loss: str = "l1"
    debye_theta_head: str | None = None
    debye_theta_scale: float | None = None
    debye_theta_shift: float | None = None
    temperature_note: str = "300 K"
    mlm_probability: float = 0.15
    base_model: str | None = None
    license: str = "mit"
    datasets: list[dict[str, Any]] = field(default_factory=list)
    dataset_name: str | None = None
    skipped_rows: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training_summary: str = ""
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    cross_validation: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def format_number(value: Any) -> str:
    """Four significant digits for floats; ints and strings as they are."""
    if isinstance(value, bool) or not isinstance(value, float):
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def metric_label(metric: str, target: str | None, unit: str | None, multi_target: bool) -> str:
    name = METRIC_NAMES.get(metric, metric)
    if multi_target and target:
        name = f"{name} {target}"
    if unit and metric not in _UNITLESS_METRICS:
        name = f"{name} [{unit}]"
    return name


def _task(kind: str) -> tuple[str, str]:
    if kind == "base":
        return "fill-mask", "Masked-token prediction on SCOPE strings"
    if kind == "debye":
        return "tabular-regression", "Heat capacity (CLOUD-DEBYE)"
    return "tabular-regression", "Crystal property regression"


def _dataset_identity(context: ModelCardContext) -> tuple[str, str]:
    """(`type`, `name`) of the model-index dataset: a Hub data-set id when the data have one, else a slug of the
    given name (or "custom")."""
    ids = [d.get("hub_dataset_id") for d in context.datasets if d.get("hub_dataset_id")]
    if context.dataset_name:
        name = context.dataset_name
    else:
        sources = []
        for entry in context.datasets:
            source = entry["name"].rsplit(" (", 1)[0]
            if source not in sources:
                sources.append(source)
        name = ", ".join(sources) or "custom"
    slug = re.sub(r"[^a-z0-9]+", "-", (context.dataset_name or "custom").lower()).strip("-") or "custom"
    return (ids[0] if ids else slug), name


def build_card_data(context: ModelCardContext):
    """The YAML header: `huggingface_hub.ModelCardData` with a `model-index` built from the evaluations."""
    from huggingface_hub import EvalResult, ModelCardData

    task_type, task_name = _task(context.kind)
    dataset_type, dataset_name = _dataset_identity(context)
    multi_target = len({record.target for record in context.evaluations}) > 1
    eval_results = [
        EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=record.split,
            metric_type=record.metric,
            metric_name=f"{metric_label(record.metric, record.target, record.unit, multi_target)} ({record.split})",
            metric_value=float(record.value),
        )
        for record in context.evaluations
        if math.isfinite(record.value)
    ]
    hub_datasets = sorted({d["hub_dataset_id"] for d in context.datasets if d.get("hub_dataset_id")})
    tags = ["cloud", "crystal", "materials-science", "chemistry", "scope", f"scope-{context.scope_version}"]
    tags += {
        "base": ["fill-mask", "feature-extraction"],
        "property": ["regression"],
        "debye": ["thermodynamics"],
    }[context.kind]
    tags += [tag for tag in context.tags if tag not in tags]
    return ModelCardData(
        license=context.license,
        library_name="transformers",
        tags=tags,
        datasets=hub_datasets or None,
        base_model=context.base_model if _is_repo_id(context.base_model) else None,
        model_name=context.model_id,
        eval_results=eval_results or None,
    )


def _is_repo_id(name: str | None) -> bool:
    return bool(name) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not Path(name).exists()


def _citations(context: ModelCardContext) -> list[dict[str, str]]:
    keys = ["cloud"]
    for dataset in context.datasets:
        for key in dataset.get("citations", ()):
            if key not in keys:
                keys.append(key)
    unknown = [key for key in keys if key not in CITATIONS]
    if unknown:
        raise ValueError(f"unknown citation keys {unknown}; known: {sorted(CITATIONS)}")
    return [{"text": CITATIONS[key][0], "bibtex": CITATIONS[key][1]} for key in keys]


def _metric_tables(context: ModelCardContext) -> dict[str, dict[str, Any]]:
    multi_target = len({record.target for record in context.evaluations}) > 1
    tables: dict[str, dict[str, Any]] = {}
    for record in context.evaluations:
        entry = tables.setdefault(record.split, {"rows": record.rows, "source": record.source, "table": []})
        entry["table"].append(
            {
                "name": metric_label(record.metric, record.target, record.unit, multi_target),
                "value": format_number(float(record.value)),
            }
        )
    return tables


def _cross_validation_table(context: ModelCardContext) -> dict[str, Any] | None:
    cv = context.cross_validation
    if not cv:
        return None
    records: list[EvaluationRecord] = cv["records"]
    multi_target = len({record.target for record in records}) > 1
    grouped: dict[tuple[str, str | None, str | None], list[float]] = {}
    for record in records:
        grouped.setdefault((record.metric, record.target, record.unit), []).append(float(record.value))
    table = []
    for (metric, target, unit), values in grouped.items():
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        table.append(
            {
                "name": metric_label(metric, target, unit, multi_target),
                "value": f"{format_number(mean)} ± {format_number(std)}",
                "folds": ", ".join(format_number(v) for v in values),
            }
        )
    return {"folds": cv["folds"], "seed": cv["seed"], "table": table}


def render_model_card(context: ModelCardContext, template_path: str | Path = TEMPLATE_PATH) -> str:
    """The README.md text for a checkpoint described by `context`."""
    from huggingface_hub import ModelCard

    card_data = build_card_data(context)
    values = dataclasses.asdict(context)
    values.update(
        num_parameters=format_number(context.num_parameters) if context.num_parameters else "unknown",
        hyperparameters={name: format_number(value) for name, value in context.hyperparameters.items()},
        metrics=_metric_tables(context),
        cross_validation=_cross_validation_table(context),
        citations=_citations(context),
        mlm_percent=format_number(100 * context.mlm_probability),
        base_model_url=(
            f"https://huggingface.co/{context.base_model}" if _is_repo_id(context.base_model) else None
        ),
        datasets=[{**d, "rows": format_number(d.get("rows", "unknown"))} for d in context.datasets],
    )
    card = ModelCard.from_template(card_data, template_path=str(template_path), **values)
    return str(card)


def write_model_card(folder: str | Path, context: ModelCardContext) -> Path:
    """Render the card and write it to `folder/README.md`; returns the path."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(context), encoding="utf-8")
    return path


__all__ = [
    "CITATIONS",
    "EvaluationRecord",
    "ModelCardContext",
    "build_card_data",
    "format_number",
    "metric_label",
    "render_model_card",
    "write_model_card",
]
