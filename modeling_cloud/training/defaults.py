# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Training defaults by starting point: what `finetune` and `train-debye` use when the user does not say.

The learning rate, warm-up, maximum epochs, early-stopping patience and batch size of a run come from [`DEFAULTS`],
keyed by (command, starting point, size):

- starting point `"scratch"`: a new model (no `--pretrained`), of the `--model-size` preset (default `small`;
  explicit `--hidden-size` and related flags keep the preset's recipe);
- `"cloud"`: a CLOUD checkpoint (a local folder whose `config.json` has `model_type` "cloud"), sized by matching its
  layers and hidden size to a preset;
- `"authors"`: the authors' BERT-layout checkpoint (`ChangwenXu/CLOUD` or a local copy), any Hub repo id (its size
  is not known without downloading it), and CLOUD checkpoints of sizes `base` / `large` or of no preset size.

Every entry carries its `source`: a sweep on validation rows (`benchmarks/sweep_defaults.py`, results in
`benchmarks/RESULTS.md`), or the authors' recipe, marked "not measured here" (a sweep of base or large is hours per
run on the 2-core machine where these defaults were chosen, and the authors' weights cannot be downloaded there).
A flag given on the command line or in `--config` always wins over the table.

This module imports only the standard library (it is read when `--help` is built).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The run settings the table sets; each is a flag of its command (`--learning-rate`, ...).
TABLE_FIELDS = (
    "learning_rate",
    "warmup_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "early_stopping_patience",
)
STARTS = ("scratch", "cloud", "authors")
MEASURED_SIZES = ("tiny", "small")


@dataclass(frozen=True)
class Recipe:
    """Defaults of one (command, starting point, size). `warmup_steps` below 1 is a fraction of the steps."""

    learning_rate: float
    warmup_steps: float
    num_train_epochs: float
    per_device_train_batch_size: int
    early_stopping_patience: int
    source: str

    def values(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in TABLE_FIELDS}


_AUTHORS_FINETUNE = Recipe(
    5e-5,
    0.05,
    200.0,
    64,
    20,
    "the authors' fine-tuning recipe (lr 5e-5, 10 warm-up epochs of 200, i.e. 5 %, 200 epochs); not measured here",
)
_AUTHORS_DEBYE = Recipe(
    1e-4,
    0.05,
    400.0,
    128,
    40,
    "the authors' CLOUD-DEBYE recipe (lr 1e-4, batch 128, 400 epochs); not measured here",
)

_SWEEP = "benchmarks/sweep_defaults.py, validation rows only, see RESULTS.md 'Defaults'"

#: (command, starting point, size) -> defaults. Sizes not listed for a start fall back to ("authors", None).
DEFAULTS: dict[tuple[str, str, str | None], Recipe] = {
    ("finetune", "scratch", "small"): Recipe(
        3e-4,
        0.05,
        60.0,
        32,
        10,
        f"chosen on validation MAE, from scratch ({_SWEEP}): rate after 10 epochs (warm-up 5 %, batch 64), "
        "formation energy (eV/atom) / dielectric fold (n) 3e-4 0.302 / 0.567, 1e-4 0.421 / 0.576, 5e-5 "
        "0.495 / 0.617, 1e-3 0.575 / 0.657; at 3e-4 warm-up 5 % 0.302 / 0.567, 10 % 0.309 / 0.557, 0 % "
        "0.354 / 0.59 and batch 32 0.251 / 0.548, 64 0.302 / 0.567, 128 0.333 / 0.557; 60-epoch curves at "
        "3e-4, warm-up 5 %, batch 64 (best 0.219 at epoch 51 / 0.523 at epoch 46): patience 10 is the "
        "smallest that keeps each within 1 % (0.219 at epoch 51 / 0.523 at epoch 46)",
    ),
    ("finetune", "scratch", "tiny"): Recipe(
        3e-4,
        0.1,
        60.0,
        32,
        5,
        f"chosen on validation MAE, from scratch ({_SWEEP}): rate after 10 epochs (warm-up 5 %, batch 64), "
        "formation energy (eV/atom) / dielectric fold (n) 3e-4 0.417 / 0.567, 1e-3 0.422 / 0.594, 1e-4 "
        "0.496 / 0.622, 5e-5 0.55 / 0.728; at 3e-4 warm-up 10 % 0.378 / 0.563, 5 % 0.417 / 0.567, 0 % "
        "0.453 / 0.566 and batch 32 0.286 / 0.564, 64 0.417 / 0.567, 128 0.466 / 0.606; 60-epoch curves at "
        "3e-4, warm-up 5 %, batch 64 (best 0.222 at epoch 53 / 0.527 at epoch 48): patience 5 is the smallest "
        "that keeps each within 1 % (0.223 at epoch 32 / 0.53 at epoch 26)",
    ),
    ("finetune", "cloud", "small"): Recipe(
        3e-4,
        0.1,
        60.0,
        32,
        10,
        f"chosen on validation MAE, from the small v1 checkpoint pretrained here (1,500 steps) ({_SWEEP}): "
        "rate after 10 epochs (warm-up 5 %, batch 64), formation energy (eV/atom) / dielectric fold (n) 3e-4 "
        "0.456 / 0.541, 1e-4 0.504 / 0.569, 5e-5 0.544 / 0.596, 1e-3 0.908 / 0.614; at 3e-4 warm-up 10 % "
        "0.441 / 0.538, 5 % 0.456 / 0.541, 0 % 0.502 / 0.518 and batch 32 0.451 / 0.515, 64 0.456 / 0.541; "
        "60-epoch curves at 3e-4, warm-up 5 %, batch 64 (best 0.239 at epoch 41 / 0.499 at epoch 34): "
        "patience 10 is the smallest that keeps each within 1 % (0.239 at epoch 41 / 0.499 at epoch 34)",
    ),
    ("finetune", "cloud", "tiny"): Recipe(
        1e-3,
        0.1,
        60.0,
        64,
        10,
        f"chosen on validation MAE, from the tiny v1 checkpoint pretrained here (3,000 steps) ({_SWEEP}): rate "
        "after 10 epochs (warm-up 5 %, batch 64), formation energy (eV/atom) / dielectric fold (n) 1e-3 "
        "0.464 / 0.551, 3e-4 0.543 / 0.543, 1e-4 0.679 / 0.606, 5e-5 0.774 / 0.687; at 1e-3 warm-up 10 % "
        "0.475 / 0.534, 5 % 0.464 / 0.551, 0 % 0.486 / 0.545 and batch 64 0.464 / 0.551, 128 0.494 / 0.531, "
        "32 0.557 / 0.517; 60-epoch curves at 1e-3, warm-up 5 %, batch 64 (best 0.318 at epoch 52 / 0.495 at "
        "epoch 50): patience 10 is the smallest that keeps each within 1 % (0.318 at epoch 52 / 0.495 at "
        "epoch 50)",
    ),
    ("finetune", "authors", None): _AUTHORS_FINETUNE,
    ("train-debye", "scratch", "small"): Recipe(
        3e-4,
        0.05,
        100.0,
        64,
        20,
        f"chosen on validation MAE, from scratch ({_SWEEP}): rate after 10 epochs (warm-up 5 %, batch 64), "
        "C_v(300 K) 3e-4 8.47, 1e-4 16, 5e-5 16, 1e-3 27.4 J/(K mol); at 3e-4 warm-up 5 % 8.47, 0 % 8.8, 10 % "
        "8.85 and batch 64 8.47, 32 8.73, 128 16; a 100-epoch curve at 3e-4, warm-up 5 %, batch 64 (best 4.7 "
        "at epoch 80): patience 20 is the smallest that keeps it within 1 % (4.7 at epoch 80)",
    ),
    ("train-debye", "scratch", "tiny"): Recipe(
        1e-3,
        0.0,
        100.0,
        64,
        20,
        f"chosen on validation MAE, from scratch ({_SWEEP}): rate after 10 epochs (warm-up 5 %, batch 64), "
        "C_v(300 K) 1e-3 9.62, 3e-4 16, 1e-4 16.1, 5e-5 60.5 J/(K mol); at 1e-3 warm-up 0 % 8.45, 5 % 9.62, "
        "10 % 27.4 and batch 64 9.62, 128 11, 32 27.4; a 100-epoch curve at 1e-3, warm-up 5 %, batch 64 (best "
        "6.46 at epoch 74): patience 20 is the smallest that keeps it within 1 % (6.46 at epoch 74)",
    ),
    ("train-debye", "cloud", "small"): Recipe(
        3e-4,
        0.0,
        100.0,
        64,
        20,
        f"chosen on validation MAE, from the small v1 checkpoint pretrained here (1,500 steps) ({_SWEEP}): "
        "rate after 10 epochs (warm-up 5 %, batch 64), C_v(300 K) 3e-4 7.98, 1e-4 11.1, 5e-5 14.9, 1e-3 27.4 "
        "J/(K mol); at 3e-4 warm-up 0 % 6.41, 5 % 7.98, 10 % 11.5 and batch 64 7.98, 32 9.34, 128 14; a "
        "100-epoch curve at 3e-4, warm-up 5 %, batch 64 (best 3.54 at epoch 76): patience 20 is the smallest "
        "that keeps it within 1 % (3.54 at epoch 76)",
    ),
    ("train-debye", "cloud", "tiny"): Recipe(
        3e-4,
        0.1,
        100.0,
        32,
        20,
        f"chosen on validation MAE, from the tiny v1 checkpoint pretrained here (3,000 steps) ({_SWEEP}): rate "
        "after 10 epochs (warm-up 5 %, batch 64), C_v(300 K) 3e-4 9.56, 1e-3 10.1, 1e-4 16, 5e-5 67.6 J/(K "
        "mol); at 3e-4 warm-up 10 % 8.72, 5 % 9.56, 0 % 9.78 and batch 32 8.26, 64 9.56, 128 15.1; a "
        "100-epoch curve at 3e-4, warm-up 5 %, batch 64 (best 3.95 at epoch 99): patience 20 is the smallest "
        "that keeps it within 1 % (3.95 at epoch 99)",
    ),
    ("train-debye", "authors", None): _AUTHORS_DEBYE,
}

_PRESET_SHAPES = {"tiny": (2, 128), "small": (4, 256), "base": (12, 768), "large": (24, 1024)}


def _local_config(pretrained: str, subfolder: str | None) -> dict | None:
    """The `config.json` of a local checkpoint folder (its `subfolder`, else the top level, else the one sub-folder
    that holds one); `None` for a Hub repo id or an unreadable folder."""
    folder = Path(pretrained)
    if not folder.is_dir():
        return None
    candidates = [folder / subfolder / "config.json"] if subfolder else [folder / "config.json"]
    if not subfolder and not candidates[0].is_file():
        candidates = sorted(folder.glob("*/config.json"))
    if len(candidates) != 1 or not candidates[0].is_file():
        return None
    try:
        return json.loads(candidates[0].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def starting_point(
    pretrained: str | None, model_size: str | None, subfolder: str | None = None
) -> tuple[str, str | None]:
    """(start, size) of a run: see the module docstring. `model_size` is the `--model-size` of a new model."""
    if not pretrained:
        return "scratch", model_size or "small"
    config = _local_config(pretrained, subfolder)
    if config is None or config.get("model_type") != "cloud":
        return "authors", None
    shape = (config.get("num_hidden_layers"), config.get("hidden_size"))
    size = next((name for name, preset in _PRESET_SHAPES.items() if preset == shape), None)
    return "cloud", size


def recipe_for(
    command: str, pretrained: str | None, model_size: str | None, subfolder: str | None = None
) -> tuple[Recipe, str]:
    """The defaults of a run and a sentence naming the row of the table they come from."""
    start, size = starting_point(pretrained, model_size, subfolder)
    key = (command, start, size)
    if key not in DEFAULTS:
        key = (command, "authors", None)
    recipe = DEFAULTS[key]
    where = {
        "scratch": "from scratch",
        "cloud": "from a CLOUD checkpoint",
        "authors": "from another checkpoint",
    }
    row = f"{command} {where[start]}" + (f", size {size}" if size else "")
    if key[1] == "authors" and start != "authors":
        row += " (no measured entry: the authors' recipe)"
    return recipe, row


def table_help(command: str, field: str) -> str:
    """The `--help` text of a table field: its value per starting point, with sources."""
    parts = []
    for (name, start, size), recipe in DEFAULTS.items():
        if name != command:
            continue
        label = {"scratch": "from scratch", "cloud": "from a CLOUD checkpoint pretrained here"}.get(
            start, "base, large, the authors' ChangwenXu/CLOUD and other checkpoints"
        )
        label += f" ({size})" if size else ""
        parts.append(f"{label}: {getattr(recipe, field):g} [{recipe.source}]")
    return "default: by starting point (modeling_cloud/training/defaults.py): " + "; ".join(parts)


def markdown_table() -> str:
    """The table as Markdown, for the README."""
    lines = [
        "| command | starting point | size | learning rate | warm-up | max epochs | early-stopping patience "
        "| batch | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (command, start, size), recipe in DEFAULTS.items():
        lines.append(
            f"| `{command}` | {start} | {size or 'base, large, other'} | {recipe.learning_rate:g} | "
            f"{recipe.warmup_steps:.0%} | {recipe.num_train_epochs:g} | {recipe.early_stopping_patience} | "
            f"{recipe.per_device_train_batch_size} | {recipe.source} |"
        )
    return "\n".join(lines)


__all__ = [
    "DEFAULTS",
    "TABLE_FIELDS",
    "Recipe",
    "markdown_table",
    "recipe_for",
    "starting_point",
    "table_help",
]
