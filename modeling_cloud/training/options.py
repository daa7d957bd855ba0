# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Run settings of the training commands, declared once and parsed by `transformers.HfArgumentParser`.

As in transformers' `run_mlm.py` example, each command parses three dataclasses:
`HfArgumentParser((model arguments, data arguments, TrainingArguments))`. CLOUD's own settings (sizes, the
checkpoint to start from, data files, targets and units, SCOPE version, head) live in the two small dataclasses
below; everything the Trainer knows (learning rate, schedule, batch sizes, precision, evaluation and saving, `torch
compile`, ...) is a field of `transformers.TrainingArguments` itself, so any Trainer flag works on `pretrain`,
`finetune` and `train-debye` without code here. Each command only changes some `TrainingArguments` defaults to the
authors' recipe ([`COMMANDS`]).

The value used for a run is, by increasing priority: the command's default, the `--config` file (YAML or JSON; keys
are the field names, `learning_rate` or `learning-rate`), then the command line. Flags take either spelling
(`--learning_rate` or `--learning-rate`). The resolved settings are written to `training_config.json` in the output
folder, so a run can be repeated with `--config` on that file.

This module imports only the standard library; `transformers` (and with it torch) is imported when a parser is
built, so registering the commands costs nothing.

Example:

```python
>>> from modeling_cloud.training.options import parse_settings
>>> settings = parse_settings("finetune", ["--train", "a.csv", "--target", "n", "--output-dir", "out",
...                                        "--learning-rate", "1e-4", "--adam-beta2", "0.98"])
>>> settings.training.learning_rate, settings.training.adam_beta2, settings.data.target
(0.0001, 0.98, ['n'])
>>> settings.training.weight_decay, settings.training.max_grad_norm  # finetune's defaults (the authors')
(0.01, 1.0)

```
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

#: Exit codes of the training commands: success, bad data/checkpoint/upload, bad settings.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Data sets shipped with `dataset_builders`, usable as `bundled:NAME` (see `modeling_cloud.training.data`).
BUNDLED_SET_NAMES = (
    "cloud-pretrain",
    "cloud-dielectric",
    "cloud-dielectric-test",
    "cloud-cv",
    "cloud-cv-test",
    "materials-project",
)


class TrainingConfigError(ValueError):
    """A run setting is missing, unknown or inconsistent (the message names the setting)."""


# -- model sizes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSize:
    """Encoder sizes of a named preset; `parameters` is the encoder's parameter count over the SCOPE v1 vocabulary
    (564 tokens) with 64 positions, without a head (a property head adds about `hidden_size**2`)."""

    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    parameters: str
    note: str


#: `--model-size` presets. `base` is the authors' BERT-base; the default for a new model is `small` (see
#: `DEFAULT_MODEL_SIZE_REASON`). Explicit `--hidden-size` and related flags override a preset.
MODEL_SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(2, 128, 2, 512, "0.5 M", "smoke tests and debugging"),
    "small": ModelSize(4, 256, 4, 1024, "3.3 M", "CPU-sized; the default for a new model"),
    "base": ModelSize(12, 768, 12, 3072, "86 M", "the authors' BERT-base"),
    "large": ModelSize(24, 1024, 16, 4096, "303 M", "BERT-large, for GPUs and large pretraining corpora"),
}
DEFAULT_MODEL_SIZE = "small"
DEFAULT_MODEL_SIZE_REASON = (
    "default for a new model: small, because on a 2-core CPU fine-tuning base for 40 epochs on 2,800 structures "
    "takes about 6 h, while small takes 8.5 min and was the more accurate of the two on that data (formation "
    "energy MAE 0.243 eV/atom; a composition random forest: 0.252). Choose base for the authors' architecture, "
    "on GPUs or with large data"
)
SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def _size_help() -> str:
    presets = "; ".join(
        f"{name}: {size.num_hidden_layers} layers x {size.hidden_size} ({size.parameters} parameters, {size.note})"
        for name, size in MODEL_SIZES.items()
    )
    return f"size of a new model. {presets}. The {DEFAULT_MODEL_SIZE_REASON}"


# -- CLOUD's own settings ------------------------------------------------------------------------------------


def _arg(default: Any = None, help: str = "", **argparse_kwargs) -> Any:  # noqa: A002  (argparse's keyword)
    """A dataclass field whose metadata `HfArgumentParser` passes to `add_argument` (help, metavar, ...)."""
    metadata = {"help": help.replace("%", "%%"), **argparse_kwargs}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class CloudModelArguments:
    """Which model to train: a checkpoint to start from, or the size of a new one."""

    _argument_group_name: ClassVar[str] = "model (CLOUD)"

    pretrained: str | None = _arg(
        None,
        "start from this checkpoint: a folder or a Hub repo id (e.g. ChangwenXu/CLOUD), a CLOUD checkpoint or the "
        "authors' BertForMaskedLM layout (converted on the fly, with their SCOPE v1 tokenizer). A missing or "
        "unreadable checkpoint is an error, never a silent start from scratch. Default: a new model",
        metavar="DIR_OR_REPO",
    )
    pretrained_subfolder: str | None = _arg(
        None,
        "folder inside --pretrained that holds config.json (the authors' repo: ckpt); default: the top level, else "
        "the one sub-folder that holds a config.json",
        metavar="FOLDER",
    )
    pretrained_revision: str | None = _arg(
        None, "branch, tag or commit of a Hub --pretrained; None: its default branch", metavar="REVISION"
    )
    scope_version: Literal["v1", "v2"] | None = _arg(
        None,
        "SCOPE encoding of a new model; default: the pretrained model's, else v1 when the data are SCOPE strings "
        "(the authors' format) and v2 for structures",
    )
    model_size: Literal["tiny", "small", "base", "large"] | None = _arg(None, _size_help())
    hidden_size: int | None = _arg(None, "hidden size of a new model (overrides --model-size)")
    num_hidden_layers: int | None = _arg(None, "transformer layers of a new model (overrides --model-size)")
    num_attention_heads: int | None = _arg(None, "attention heads of a new model (overrides --model-size)")
    intermediate_size: int | None = _arg(None, "feed-forward size of a new model (overrides --model-size)")
    max_position_embeddings: int = _arg(64, "longest token sequence of a new model (the authors': 64)")
    license: str = _arg("mit", "licence of the published weights (model-card metadata)")

    def encoder_sizes(self) -> dict[str, int]:
        """The sizes of a new model: the `model_size` preset (default `small`) with explicit sizes on top."""
        preset = MODEL_SIZES[self.model_size or DEFAULT_MODEL_SIZE]
        sizes = {name: getattr(preset, name) for name in SIZE_FIELDS}
        sizes.update({name: getattr(self, name) for name in SIZE_FIELDS if getattr(self, name) is not None})
        return sizes


@dataclass
class PretrainModelArguments(CloudModelArguments):
    mlm_probability: float = _arg(0.15, "fraction of tokens selected for masking (80/10/10 mask/random/keep)")


@dataclass
class PropertyModelArguments(CloudModelArguments):
    head_num_layers: int = _arg(1, "hidden Linear+SiLU layers of the head (authors: 1 MatBench, 3 MP)")
    head_dropout: float = _arg(0.1, "dropout on the pooled embedding")
    loss: Literal["l1", "mse", "huber"] = _arg("l1", "loss on the z-scored targets")


@dataclass
class DebyeModelArguments(CloudModelArguments):
    theta_head: Literal["affine", "softplus"] = _arg(
        "affine",
        "map from head output s to θ_D: affine (1200 s + 1500 K, the authors') or softplus (always positive)",
    )
    head_num_layers: int = _arg(3, "hidden Linear+SiLU layers of the head (authors: 3)")
    head_dropout: float = _arg(0.1, "dropout on the pooled embedding")
    loss: Literal["l1", "mse", "huber"] = _arg("l1", "loss on Cv in J/(K mol)")


@dataclass
class CloudDataArguments:
    """What to train on, how validation rows are chosen, and run control the Trainer has no flag for."""

    _argument_group_name: ClassVar[str] = "data and run control (CLOUD)"

    train: list[str] | None = _arg(
        None,
        "training data: CSV, JSONL or Parquet files (optionally .gz) with a `structure` column (pymatgen dict or "
        "CIF text) or a `scope` column, or bundled:NAME (listed below). Required",
        metavar="FILE",
    )
    validation: list[str] | None = _arg(
        None,
        "validation data (same formats); default: --validation-fraction of the training rows",
        metavar="FILE",
    )
    validation_fraction: float = _arg(0.1, "fraction of the training rows held out for validation")
    input_column: str | None = _arg(
        None, "column holding the crystals; default: `structure` if present, else `scope`", metavar="COLUMN"
    )
    skip_invalid_rows: bool = _arg(
        False,
        "leave out rows that cannot be encoded (or lack labels), list them in OUTPUT_DIR/skipped_rows.jsonl and "
        "go on; without it the first bad row stops the run with an error naming it",
    )
    preprocessing_num_workers: int = _arg(1, "processes used to encode structures to SCOPE strings")
    dataset_name: str | None = _arg(
        None, "name of the training data for the model card (default: derived from the data sources)"
    )
    early_stopping_patience: int = _arg(
        0, "stop after this many evaluations without improvement of the selection metric (0: never)"
    )
    overwrite_output_dir: bool = _arg(
        False, "delete existing checkpoints in OUTPUT_DIR and start from scratch (otherwise that is an error)"
    )


@dataclass
class PretrainDataArguments(CloudDataArguments):
    validation_fraction: float = _arg(0.05, "fraction of the training rows held out for validation")
    streaming: bool = _arg(
        False,
        "stream --train hub:ORG/NAME (e.g. a `cloud-crystal corpus` dataset) instead of reading it whole: each "
        "rank reads its own Parquet files (split_dataset_by_node); needs --max-steps",
    )


#: Fraction of the training rows (after the validation hold-out) that `--ensemble K` holds out to calibrate σ.
DEFAULT_CALIBRATION_FRACTION = 0.1
#: The default hold-out takes at least this many rows (at most `CALIBRATION_MAX_FRACTION` of them): the coverage of
#: ±1σ measured on n rows has a binomial standard error of sqrt(0.683 · 0.317 / n), 4.5 points on the 109 rows that
#: 10 % gave for Cv(300 K), about the issue's whole 5-point tolerance; 200 rows bring it to 3.3 points.
CALIBRATION_MIN_ROWS = 200
CALIBRATION_MAX_FRACTION = 0.25


def default_calibration_fraction(num_rows: int) -> float:
    """The default calibration hold-out of `num_rows` training rows: `DEFAULT_CALIBRATION_FRACTION`, raised to
    `CALIBRATION_MIN_ROWS` rows when that is fewer, but never above `CALIBRATION_MAX_FRACTION`.

    Example:

    ```python
    >>> default_calibration_fraction(2551), round(default_calibration_fraction(1090), 3), default_calibration_fraction(400)
    (0.1, 0.183, 0.25)

    ```
    """
    floor = CALIBRATION_MIN_ROWS / max(num_rows, 1)
    return max(DEFAULT_CALIBRATION_FRACTION, min(floor, CALIBRATION_MAX_FRACTION))


@dataclass
class PropertyDataArguments(CloudDataArguments):
    """Settings shared by the property commands (`finetune`, `train-debye`): test data, ensembles, calibration."""

    test: list[str] | None = _arg(
        None,
        "held-out test data, evaluated once with the selected model (never used for selection)",
        metavar="FILE",
    )
    ensemble: int = _arg(
        1,
        "train K models with seeds SEED, SEED+1, ... on the same split (each kept at its best validation "
        "checkpoint, in OUTPUT_DIR/member-<i>) and save them as one checkpoint that predicts their mean, their "
        "spread (`std_raw`) and a calibrated σ (`std`, see --calibration-fraction); 1: a single model",
        metavar="K",
    )
    calibration: list[str] | None = _arg(
        None,
        "calibration data for --ensemble (same formats): rows used only to fit the factor that turns the "
        "members' spread into a calibrated σ, never for training or early stopping. Default: "
        "--calibration-fraction of the training rows",
        metavar="FILE",
    )
    calibration_fraction: float | None = _arg(
        None,
        "with --ensemble K > 1 and no --calibration: fraction of the training rows left after the validation "
        f"hold-out that is held out again (seeded) to calibrate σ. Default: {DEFAULT_CALIBRATION_FRACTION} for an "
        f"ensemble, raised to at least {CALIBRATION_MIN_ROWS} rows (at most {CALIBRATION_MAX_FRACTION}) so that the "
        "coverage it fits is not mostly sampling noise; 0 keeps every row for training and leaves σ uncalibrated "
        "(std = std_raw)",
    )

    def resolved_calibration_fraction(self, num_rows: int | None = None) -> float:
        """The calibration hold-out fraction of this run (0 for a single model or with --calibration); the default
        depends on the `num_rows` training rows it is taken from ([`default_calibration_fraction`])."""
        if self.ensemble <= 1 or self.calibration:
            return 0.0
        if self.calibration_fraction is None:
            if num_rows is None:
                return DEFAULT_CALIBRATION_FRACTION
            return default_calibration_fraction(num_rows)
        return self.calibration_fraction


@dataclass
class FinetuneDataArguments(PropertyDataArguments):
    target: list[str] | None = _arg(None, "label column(s) to predict. Required", metavar="COLUMN")
    target_unit: list[str] | None = _arg(
        None, "physical unit of each target, for the model card and config (e.g. eV/atom)", metavar="UNIT"
    )
    cv_folds: int | None = _arg(
        None,
        "k-fold cross-validation over the training data (KFold, shuffle, random_state 18012019 as MatBench): "
        "trains k models, reports mean and spread of the held-out-fold metrics",
        metavar="K",
    )
    early_stopping_patience: int | None = _arg(
        None, "stop after this many evaluations without a lower validation MAE (0: never)"
    )


@dataclass
class DebyeDataArguments(PropertyDataArguments):
    target: list[str] = _arg(["cv"], "column with Cv in J/(K mol of cells)", metavar="COLUMN")
    n_atoms_column: str = _arg("n_atoms", "column with the number of atoms in the cell")
    temperature_column: str | None = _arg(None, "column with the temperature (K) of each Cv value")
    temperature: float = _arg(
        300.0, "temperature (K) of every Cv value when there is no --temperature-column"
    )
    early_stopping_patience: int | None = _arg(
        None, "stop after this many evaluations without a lower validation MAE (0: never)"
    )


# -- the commands --------------------------------------------------------------------------------------------

#: `TrainingArguments` defaults shared by the three commands: AdamW (unfused, it runs on CPUs), 5 % warm-up then
#: cosine decay, evaluation and a checkpoint every epoch with the best one kept, length-grouped batches, and the
#: data columns CLOUD's collators need.
_TRAINER_DEFAULTS: dict[str, Any] = {
    "optim": "adamw_torch",
    "warmup_steps": 0.05,  # v5: below 1 it is a fraction of the total steps
    "lr_scheduler_type": "cosine",
    "weight_decay": 0.01,
    "per_device_eval_batch_size": 128,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "logging_steps": 10,
    "train_sampling_strategy": "group_by_length",
    "remove_unused_columns": False,
    "label_names": ["labels"],
    "restore_callback_states_from_checkpoint": True,
    "ddp_find_unused_parameters": False,
    "report_to": "none",
}
_COSINE_TO_MIN_LR = {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr": 1e-7}}


@dataclass(frozen=True)
class CommandSpec:
    """A training command: its dataclasses, its `TrainingArguments` defaults, and where its code lives."""

    name: str
    module: str
    model_arguments: type[CloudModelArguments]
    data_arguments: type[CloudDataArguments]
    trainer_defaults: dict[str, Any]
    help: str
    example: str


COMMANDS: dict[str, CommandSpec] = {
    "pretrain": CommandSpec(
        "pretrain",
        "pretrain",
        PretrainModelArguments,
        PretrainDataArguments,
        # The authors: AdamW lr 1e-4, no weight decay, cosine, 5 % warm-up, 50 epochs, batch 128.
        {
            **_TRAINER_DEFAULTS,
            "num_train_epochs": 50.0,
            "per_device_train_batch_size": 128,
            "learning_rate": 1e-4,
            "weight_decay": 0.0,
        },
        "Pretrain a CLOUD encoder by masked-language modelling (15 %, 80/10/10) on SCOPE strings and/or crystal "
        "structures; saves a base checkpoint in Hub layout.",
        "cloud-crystal pretrain --train bundled:cloud-pretrain bundled:materials-project --scope-version v1 "
        "--output-dir cloud-base --num-train-epochs 50",
    ),
    "finetune": CommandSpec(
        "finetune",
        "finetune",
        PropertyModelArguments,
        FinetuneDataArguments,
        # Learning rate, warm-up, epochs, batch size and early stopping: by starting point (`defaults.DEFAULTS`).
        {**_TRAINER_DEFAULTS, **_COSINE_TO_MIN_LR},
        "Fine-tune CLOUD on crystal properties (regression on z-scored targets, best checkpoint by validation MAE, "
        "early stopping); with --cv-folds K, K-fold cross-validation.",
        "cloud-crystal finetune --train train.csv --validation val.csv --target band_gap --target-unit eV "
        "--pretrained cloud-base --output-dir band-gap-model --num-train-epochs 100",
    ),
    "train-debye": CommandSpec(
        "train-debye",
        "train_debye",
        DebyeModelArguments,
        DebyeDataArguments,
        # The authors clip gradients at 5. Learning rate, warm-up, epochs, batch size and early stopping: by starting
        # point (`defaults.DEFAULTS`).
        {**_TRAINER_DEFAULTS, **_COSINE_TO_MIN_LR, "max_grad_norm": 5.0},
        "Train CLOUD-DEBYE: a Debye temperature fitted to heat capacities through the Debye model (then predicts "
        "Cv, U, S and F at any temperature).",
        "cloud-crystal train-debye --train bundled:cloud-cv --scope-version v1 --temperature 300 "
        "--output-dir cloud-debye --num-train-epochs 400",
    ),
}

#: Commands whose learning rate, warm-up, epochs, batch size and early stopping come from `defaults.DEFAULTS`.
TABLE_COMMANDS = ("finetune", "train-debye")
TABLE_HELP_PREFIX = "default: by starting point"

BUNDLED_HELP = (
    "bundled data for --train/--validation/--test (slice rows with [a:b], e.g. bundled:cloud-cv[:500]):\n  "
    + ("\n  ".join(f"bundled:{name}" for name in BUNDLED_SET_NAMES))
)
TRAINING_GROUP_TITLE = (
    "training (any transformers.TrainingArguments flag; the defaults shown are this command's)"
)


def _spec(command: str) -> CommandSpec:
    if command not in COMMANDS:
        raise TrainingConfigError(
            f"unknown training command {command!r}; expected one of {', '.join(COMMANDS)}"
        )
    return COMMANDS[command]


def command_parser(command: str, **parser_kwargs):
    """The `HfArgumentParser` of `command`, with its defaults, a `--config` flag and grouped help.

    Args:
        command: `"pretrain"`, `"finetune"` or `"train-debye"`.
        parser_kwargs: `argparse.ArgumentParser` keywords (`prog`, `description`, `epilog`, `formatter_class`).

    Returns:
        `transformers.HfArgumentParser` over (model arguments, data arguments, `TrainingArguments`). Building it
        imports transformers and torch (about 2 s).
    """
    from transformers import HfArgumentParser, TrainingArguments

    spec = _spec(command)
    parser_kwargs.setdefault("formatter_class", _HelpFormatter)
    if not issubclass(parser_kwargs["formatter_class"], _TableDefaultsHelp):
        parser_kwargs["formatter_class"] = type(
            "TableDefaultsHelpFormatter", (_TableDefaultsHelp, parser_kwargs["formatter_class"]), {}
        )
    parser_kwargs.setdefault("allow_abbrev", False)  # ~130 flags: a prefix must not silently pick one
    parser_kwargs.setdefault("description", spec.help.replace("%", "%%"))
    parser_kwargs.setdefault("epilog", f"example:\n  {spec.example}\n\n{BUNDLED_HELP}")
    parser = HfArgumentParser((spec.model_arguments, spec.data_arguments, TrainingArguments), **parser_kwargs)
    # HfArgumentParser puts the TrainingArguments flags in the general group; name it.
    parser._optionals.title = TRAINING_GROUP_TITLE
    parser.add_argument_group("settings file").add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML or JSON file of settings (keys: the flag names, with _ or -); the command line overrides it",
    )
    parser.set_defaults(**spec.trainer_defaults)
    if command in TABLE_COMMANDS:
        # None means "the defaults table's value for this run's starting point" (filled in `_build_settings`).
        from .defaults import TABLE_FIELDS, table_help

        actions = _actions_by_dest(parser)
        for name in TABLE_FIELDS:
            actions[name].help = table_help(command, name).replace("%", "%%")
        parser.set_defaults(**dict.fromkeys(TABLE_FIELDS))
    return parser


class _TableDefaultsHelp:
    """Help-formatter mixin: a flag whose default comes from the defaults table spells its own default (the table
    by starting point) instead of argparse's "(default: None)"."""

    def _get_help_string(self, action):
        if action.default is None and (action.help or "").startswith(TABLE_HELP_PREFIX):
            return action.help
        return super()._get_help_string(action)


class _HelpFormatter(
    _TableDefaultsHelp, argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Keeps the epilog's line breaks and shows every default."""


# -- resolved settings ---------------------------------------------------------------------------------------


@dataclass
class RunSettings:
    """The resolved settings of one run.

    Attributes:
        command: `"pretrain"`, `"finetune"` or `"train-debye"`.
        model: the command's [`CloudModelArguments`] subclass.
        data: the command's [`CloudDataArguments`] subclass.
        training: `transformers.TrainingArguments` as given (the Trainer gets a copy adjusted per run, see
            `engine.trainer_arguments`).
        explicit: the names set by the user (config file or command line), as opposed to defaults.
        defaults_note: which settings came from the defaults table (`defaults.DEFAULTS`), its row and source.
    """

    command: str
    model: CloudModelArguments
    data: CloudDataArguments
    training: Any
    explicit: frozenset[str] = frozenset()
    defaults_note: str = ""

    @property
    def output_dir(self) -> str:
        return self.training.output_dir

    def to_dict(self) -> dict[str, Any]:
        """The settings as `--config` takes them: CLOUD's fields, then the `TrainingArguments` fields that the user
        set or the command defaults (values transformers derives from others are left to derive again).
        `resume_from_checkpoint` and `overwrite_output_dir` are cleared: how a run was started is not part of its
        recipe."""
        chosen = self.explicit | set(COMMANDS[self.command].trainer_defaults) | {"output_dir"}
        if self.command in TABLE_COMMANDS:
            chosen |= {"learning_rate", "warmup_steps", "num_train_epochs", "per_device_train_batch_size"}
        training = {
            name: value
            for name, value in self.training.to_dict().items()
            if name in chosen and not name.endswith("_token") and _json_safe(value)
        }
        settings = {
            "command": self.command,
            **dataclasses.asdict(self.model),
            **dataclasses.asdict(self.data),
            **training,
        }
        settings.update(resume_from_checkpoint=None, overwrite_output_dir=False)
        return settings

    def validate(self) -> None:
        """Raise [`TrainingConfigError`] for settings that cannot work together."""
        model, data, training = self.model, self.data, self.training
        _check_required(dataclasses.asdict(data), training.output_dir)
        if not 0.0 < data.validation_fraction < 1.0:
            raise TrainingConfigError(
                f"--validation-fraction must be in (0, 1), got {data.validation_fraction}"
            )
        if training.push_to_hub and not training.hub_model_id:
            raise TrainingConfigError("--push-to-hub needs --hub-model-id ORG/NAME")
        if training.num_train_epochs <= 0 and training.max_steps <= 0:
            raise TrainingConfigError("set --num-train-epochs > 0 or --max-steps > 0")
        for name in ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size"):
            if getattr(training, name) <= 0:
                raise TrainingConfigError(
                    f"--{name.replace('_', '-')} must be > 0, got {getattr(training, name)}"
                )
        min_lr = (training.lr_scheduler_kwargs or {}).get("min_lr")
        if min_lr is not None and min_lr >= training.learning_rate:
            raise TrainingConfigError(
                f"--lr-scheduler-kwargs min_lr ({min_lr}) must be below --learning-rate ({training.learning_rate}); "
                "use --lr-scheduler-type cosine to decay to 0"
            )
        if training.remove_unused_columns:
            raise TrainingConfigError(
                "--remove-unused-columns must stay false: CLOUD's collators read columns the model does not take"
            )
        if training.resume_from_checkpoint and data.overwrite_output_dir:
            raise TrainingConfigError(
                "--resume-from-checkpoint and --overwrite-output-dir contradict each other"
            )
        if model.pretrained_subfolder and not model.pretrained:
            raise TrainingConfigError("--pretrained-subfolder needs --pretrained")
        if model.pretrained:
            sizes = [
                name
                for name in ("model_size", *SIZE_FIELDS, "max_position_embeddings")
                if name in self.explicit
            ]
            if sizes:
                raise TrainingConfigError(
                    f"--{sizes[0].replace('_', '-')} sets the size of a new model, but --pretrained "
                    f"{model.pretrained} brings its own; drop one of them"
                )
        else:
            sizes = model.encoder_sizes()
            if min(sizes.values()) <= 0:
                raise TrainingConfigError(f"model sizes must be > 0, got {sizes}")
            if sizes["hidden_size"] % sizes["num_attention_heads"]:
                raise TrainingConfigError(
                    f"--hidden-size {sizes['hidden_size']} must be a multiple of --num-attention-heads "
                    f"{sizes['num_attention_heads']}"
                )
        getattr(self, f"_validate_{self.command.replace('-', '_')}")()

    def _validate_pretrain(self) -> None:
        if not 0.0 < self.model.mlm_probability < 1.0:
            raise TrainingConfigError(
                f"--mlm-probability must be in (0, 1), got {self.model.mlm_probability}"
            )

    def _validate_finetune(self) -> None:
        data, training = self.data, self.training
        if not data.target:
            raise TrainingConfigError("--target is required: the label column(s) to predict")
        if data.target_unit is not None and len(data.target_unit) != len(data.target):
            raise TrainingConfigError(
                f"--target-unit has {len(data.target_unit)} entries but --target has {len(data.target)}"
            )
        self._validate_ensemble()
        if data.ensemble > 1 and data.cv_folds is not None:
            raise TrainingConfigError("--ensemble and --cv-folds cannot be combined; run them apart")
        if data.cv_folds is not None:
            if data.cv_folds < 2:
                raise TrainingConfigError(f"--cv-folds must be >= 2, got {data.cv_folds}")
            if training.push_to_hub:
                raise TrainingConfigError(
                    "--cv-folds evaluates a recipe and trains one model per fold; train the model to publish "
                    "without --cv-folds"
                )
            if data.validation:
                raise TrainingConfigError(
                    "--cv-folds carves validation rows out of each fold's training part; drop --validation"
                )
            if training.resume_from_checkpoint:
                raise TrainingConfigError("--resume-from-checkpoint is not supported with --cv-folds")

    def _validate_ensemble(self) -> None:
        data = self.data
        if data.ensemble < 1:
            raise TrainingConfigError(f"--ensemble must be >= 1, got {data.ensemble}")
        if data.ensemble > 1 and self.training.resume_from_checkpoint:
            raise TrainingConfigError("--resume-from-checkpoint is not supported with --ensemble")
        if data.calibration_fraction is not None and not 0.0 <= data.calibration_fraction < 1.0:
            raise TrainingConfigError(
                f"--calibration-fraction must be in [0, 1), got {data.calibration_fraction}"
            )
        if data.ensemble == 1 and (data.calibration or data.calibration_fraction):
            raise TrainingConfigError(
                "--calibration and --calibration-fraction calibrate an ensemble's spread; add --ensemble K (K >= 2)"
            )
        if data.calibration and data.calibration_fraction:
            raise TrainingConfigError("give --calibration or --calibration-fraction, not both")

    def _validate_train_debye(self) -> None:
        self._validate_ensemble()
        if len(self.data.target) != 1:
            raise TrainingConfigError(f"train-debye fits one Cv column, got --target {self.data.target}")
        if not self.data.temperature > 0:
            raise TrainingConfigError(f"--temperature must be > 0 K, got {self.data.temperature}")


def distributed_without_gpu() -> bool:
    """Whether this is one of several processes (`WORLD_SIZE` > 1) on a machine without CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch

    return not torch.cuda.is_available()


def _check_required(values: dict[str, Any], output_dir: str | None) -> None:
    if not values.get("train"):
        raise TrainingConfigError("--train is required (in the command line or the --config file)")
    if not output_dir:
        raise TrainingConfigError("--output-dir is required (in the command line or the --config file)")


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


# -- parsing -------------------------------------------------------------------------------------------------


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (`.yaml`/`.yml`) or JSON settings file into a dict with underscore keys.

    Raises:
        TrainingConfigError: the file is missing, unreadable, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingConfigError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TrainingConfigError(f"--config {path}: unreadable YAML ({error})") from error
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TrainingConfigError(f"--config {path}: unreadable JSON ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainingConfigError(f"--config {path}: expected a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _actions_by_dest(parser) -> dict[str, Any]:
    """The first (positive) action of every destination (`--flag`, not its `--no_flag` complement)."""
    actions = {}
    for action in parser._actions:
        if action.dest not in actions and action.option_strings and action.dest != "help":
            actions[action.dest] = action
    return actions


def _coerce(action, name: str, value: Any, origin: str) -> Any:
    """A value from a settings file, checked and converted as the command line would convert it."""
    if value is None:
        return None
    if action.nargs in ("+", "*"):
        return [
            _coerce_scalar(action, name, item, origin)
            for item in (value if isinstance(value, list) else [value])
        ]
    return _coerce_scalar(action, name, value, origin)


def _coerce_scalar(action, name: str, value: Any, origin: str) -> Any:
    kind = action.type
    if isinstance(value, (dict, list)):
        if kind in (
            None,
            str,
        ):  # dict-valued TrainingArguments fields (lr_scheduler_kwargs, fsdp_config, ...)
            return value
        raise TrainingConfigError(f"{origin}: {name} must be a single value, got {value!r}")
    expected = {int: "int", float: "float"}.get(
        kind, "true or false" if action.nargs == "?" else "a valid value"
    )
    if kind is float and isinstance(value, bool) or kind is int and isinstance(value, (bool, float)):
        raise TrainingConfigError(f"{origin}: {name} must be {expected}, got {value!r}")
    try:
        converted = kind(value if isinstance(value, str) else str(value)) if kind is not None else value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise TrainingConfigError(f"{origin}: {name} must be {expected}, got {value!r}") from error
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise TrainingConfigError(f"{origin}: {name} must be one of {choices}, got {value!r}")
    return converted


def _explicit_dests(parser, argv: list[str]) -> set[str]:
    """Destinations of the flags present in `argv`."""
    by_option = {option: action.dest for action in parser._actions for option in action.option_strings}
    return {by_option[token.split("=", 1)[0]] for token in argv if token.split("=", 1)[0] in by_option}


def parse_settings(command: str, argv: list[str] | None = None, **parser_kwargs) -> RunSettings:
    """Parse a command line (and its `--config` file) into validated [`RunSettings`].

    Args:
        command: `"pretrain"`, `"finetune"` or `"train-debye"`.
        argv: the arguments after the command name (default: `sys.argv[1:]`).
        parser_kwargs: passed to [`command_parser`] (`prog`, `description`, `epilog`).

    Raises:
        TrainingConfigError: unknown, mistyped or inconsistent settings (the message names them).
        SystemExit: `--help`, or a malformed command line (argparse prints the usage; exit code 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = command_parser(command, **parser_kwargs)
    actions = _actions_by_dest(parser)
    from_file: dict[str, Any] = {}
    config_path = _config_path(argv)
    if config_path:
        from_file = load_config_file(config_path)
        origin = f"--config {config_path}"
        named = from_file.pop("command", command)  # training_config.json names its command
        if named != command:
            raise TrainingConfigError(f"{origin} holds settings of `{named}`, not `{command}`")
        unknown = sorted(name for name in from_file if name not in actions or name == "config")
        if unknown:
            raise TrainingConfigError(f"{origin}: unknown option(s) {', '.join(unknown)} for `{command}`")
        parser.set_defaults(
            **{name: _coerce(actions[name], name, value, origin) for name, value in from_file.items()}
        )
    namespace = parser.parse_args(argv)
    values = {name: value for name, value in vars(namespace).items() if name != "config"}
    return _build_settings(
        command, values, frozenset(set(from_file) | _explicit_dests(parser, argv)) - {"config"}
    )


def _config_path(argv: list[str]) -> str | None:
    path = None
    for index, token in enumerate(argv):
        if token == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
    return path


def settings_from_dict(command: str, values: dict[str, Any]) -> RunSettings:
    """Validated [`RunSettings`] from a flat dict of field names (the Python counterpart of the command line).

    Example:

    ```python
    >>> from modeling_cloud.training.options import settings_from_dict
    >>> settings = settings_from_dict("train-debye", {"train": ["bundled:cloud-cv"], "output_dir": "out",
    ...                                               "model_size": "tiny", "fp16": False})
    >>> settings.model.encoder_sizes()["hidden_size"], settings.training.max_grad_norm, settings.data.target
    (128, 5.0, ['cv'])

    ```
    """
    parser = command_parser(command)
    actions = _actions_by_dest(parser)
    unknown = sorted(name for name in values if name not in actions or name == "config")
    if unknown:
        raise TrainingConfigError(f"unknown option(s) {', '.join(unknown)} for `{command}`")
    merged = {name: action.default for name, action in actions.items() if name != "config"}
    for name, value in values.items():
        if actions[name].nargs in ("+", "*") and isinstance(value, str):
            value = [value]
        merged[name] = value
    return _build_settings(command, merged, frozenset(values))


def _build_settings(command: str, values: dict[str, Any], explicit: frozenset[str]) -> RunSettings:
    from transformers import TrainingArguments

    spec = _spec(command)
    values = dict(values)
    _check_required(values, values.get("output_dir"))  # before TrainingArguments puts in its own output_dir
    # One strategy for evaluating and saving unless both are given (the best checkpoint must have been evaluated).
    if "save_strategy" not in explicit:
        values["save_strategy"] = values["eval_strategy"]
    if "save_steps" not in explicit and values.get("eval_steps"):
        values["save_steps"] = values["eval_steps"]
    # The command's min_lr belongs to its cosine_with_min_lr default; another schedule given alone drops it.
    if "lr_scheduler_kwargs" not in explicit and values["lr_scheduler_type"] != "cosine_with_min_lr":
        values["lr_scheduler_kwargs"] = {}
    defaults_note = ""
    if command in TABLE_COMMANDS:
        from .defaults import recipe_for

        recipe, row = recipe_for(
            command, values.get("pretrained"), values.get("model_size"), values.get("pretrained_subfolder")
        )
        filled = [name for name, value in recipe.values().items() if values.get(name) is None]
        for name in filled:
            values[name] = recipe.values()[name]
        defaults_note = (
            f"{', '.join(filled)} from the defaults table, row '{row}': {recipe.source}" if filled else ""
        )
    parts = []
    for dtype in (spec.model_arguments, spec.data_arguments):
        names = {f.name for f in dataclasses.fields(dtype) if f.init}
        parts.append(dtype(**{name: values.pop(name) for name in names if name in values}))
    if distributed_without_gpu():
        # Several processes (torchrun / accelerate launch) and no CUDA: Accelerate forms the gloo process group only
        # when told to use the CPU, and the first TrainingArguments built sets the process group up.
        values["use_cpu"] = True
    try:
        training = TrainingArguments(**values)
    except (TypeError, ValueError) as error:
        raise TrainingConfigError(f"invalid Trainer settings: {error}") from error
    settings = RunSettings(command, parts[0], parts[1], training, explicit, defaults_note)
    settings.validate()
    return settings


def PretrainOptions(**values) -> RunSettings:  # noqa: N802  (kept for callers of the earlier class)
    """`settings_from_dict("pretrain", values)`."""
    return settings_from_dict("pretrain", values)


def FinetuneOptions(**values) -> RunSettings:  # noqa: N802
    """`settings_from_dict("finetune", values)`."""
    return settings_from_dict("finetune", values)


def DebyeOptions(**values) -> RunSettings:  # noqa: N802
    """`settings_from_dict("train-debye", values)`."""
    return settings_from_dict("train-debye", values)
