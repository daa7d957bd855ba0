# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Run settings of the training commands: dataclasses, a YAML/JSON ``--config`` file and command-line overrides.

Every setting is a field of [`PretrainOptions`], [`FinetuneOptions`] or [`DebyeOptions`]. The value used for a run
is, by increasing priority: the dataclass default, the `--config` file (YAML or JSON; keys are the field names,
`learning_rate` or `learning-rate`), then the command line (`--learning-rate 1e-4`). The resolved settings are
written to `training_config.json` in the output folder, so a run can be repeated with `--config` on that file.

Example:

```python
>>> import argparse
>>> from modeling_cloud.training.options import FinetuneOptions, add_options_arguments, resolve_options
>>> parser = argparse.ArgumentParser()
>>> add_options_arguments(parser, FinetuneOptions)
>>> args = parser.parse_args(["--train", "a.csv", "--target", "n", "--output-dir", "out", "--learning-rate", "1e-4"])
>>> options = resolve_options(FinetuneOptions, args)
>>> options.learning_rate, options.weight_decay, options.target
(0.0001, 0.01, ['n'])

```
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _option(default: Any, help: str, **metadata) -> Any:  # noqa: A002  (mirrors argparse's keyword)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(kw_only=True)
class TrainingOptions:
    """Settings shared by `pretrain`, `finetune` and `train-debye`."""

    # -- data ------------------------------------------------------------------------------------------------
    train: list[str] | None = _option(
        None,
        "training data: CSV, JSONL or Parquet files (optionally .gz) with a `structure` column (pymatgen dict or "
        "CIF text) or a `scope` column, or bundled:NAME (listed below)",
        metavar="FILE",
        required=True,
    )
    validation: list[str] | None = _option(
        None,
        "validation data (same formats); default: --validation-fraction of the training rows",
        metavar="FILE",
    )
    validation_fraction: float = _option(0.1, "fraction of the training rows held out for validation")
    input_column: str | None = _option(
        None, "column holding the crystals; default: `structure` if present, else `scope`", metavar="COLUMN"
    )
    skip_invalid_rows: bool = _option(
        False,
        "leave out rows that cannot be encoded (or lack labels), list them in OUTPUT_DIR/skipped_rows.jsonl and "
        "go on; without it the first bad row stops the run with an error naming it",
    )
    preprocessing_num_workers: int = _option(1, "processes used to encode structures to SCOPE strings")

    # -- model -----------------------------------------------------------------------------------------------
    pretrained: str | None = _option(
        None,
        "start from this checkpoint (folder or Hub repo id): a CLOUD checkpoint or the authors' BertForMaskedLM "
        "layout; default: a new model of the size given below",
        metavar="DIR_OR_REPO",
    )
    scope_version: str | None = _option(
        None,
        "SCOPE encoding of a new model; default: the pretrained model's, else v1 when the data are SCOPE strings "
        "(the authors' format) and v2 for structures",
        choices=("v1", "v2"),
    )
    hidden_size: int = _option(768, "hidden size of a new model")
    num_hidden_layers: int = _option(12, "transformer layers of a new model")
    num_attention_heads: int = _option(12, "attention heads of a new model")
    intermediate_size: int = _option(3072, "feed-forward size of a new model")
    max_position_embeddings: int = _option(64, "longest token sequence of a new model")

    # -- optimisation ----------------------------------------------------------------------------------------
    num_train_epochs: float = _option(3.0, "training epochs")
    max_steps: int = _option(
        -1, "stop after this many optimiser steps (overrides --num-train-epochs when > 0)"
    )
    per_device_train_batch_size: int = _option(32, "training batch size per device")
    per_device_eval_batch_size: int = _option(128, "evaluation batch size per device")
    gradient_accumulation_steps: int = _option(1, "batches accumulated per optimiser step")
    learning_rate: float = _option(5e-5, "peak AdamW learning rate")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    warmup_ratio: float = _option(0.05, "fraction of the steps with linear warm-up")
    lr_scheduler_type: str = _option(
        "cosine", "learning-rate decay after warm-up", choices=("cosine", "linear", "constant_with_warmup")
    )
    min_learning_rate: float = _option(0.0, "learning rate the cosine decay ends at")
    max_grad_norm: float = _option(1.0, "gradient clipping norm (0 disables)")
    early_stopping_patience: int = _option(
        0, "stop after this many evaluations without improvement of the selection metric (0: never)"
    )
    eval_strategy: str = _option("epoch", "when to evaluate and save", choices=("epoch", "steps"))
    eval_steps: int | None = _option(None, "evaluate and save every N steps (with --eval-strategy steps)")
    save_total_limit: int = _option(2, "checkpoints kept in OUTPUT_DIR (the best one is always kept)")
    logging_steps: int = _option(10, "log the training loss every N steps")
    group_by_length: bool = _option(True, "batch sequences of similar length together (less padding)")
    seed: int = _option(42, "random seed (initialisation, data order, splits, dropout)")
    bf16: bool = _option(False, "bfloat16 mixed precision (GPUs with bf16 support)")
    fp16: bool = _option(False, "float16 mixed precision (CUDA GPUs)")
    use_cpu: bool = _option(False, "train on the CPU even when a GPU is present")
    dataloader_num_workers: int = _option(0, "data-loading worker processes per device")

    # -- run control -----------------------------------------------------------------------------------------
    output_dir: str | None = _option(
        None, "folder for checkpoints, the final model and its card", required=True
    )
    resume_from_checkpoint: str | None = _option(
        None,
        "continue an interrupted run: a checkpoint folder, or `last` for the newest complete checkpoint in "
        "OUTPUT_DIR (an error if there is none)",
        metavar="DIR|last",
    )
    overwrite_output_dir: bool = _option(
        False, "delete existing checkpoints in OUTPUT_DIR and start from scratch (otherwise that is an error)"
    )

    # -- publishing ------------------------------------------------------------------------------------------
    push_to_hub: bool = _option(False, "upload the final model, tokenizer, remote code and card to the Hub")
    hub_model_id: str | None = _option(None, "Hub repository for --push-to-hub", metavar="ORG/NAME")
    hub_private_repo: bool = _option(False, "create the Hub repository as private")
    dataset_name: str | None = _option(
        None, "name of the training data for the model card (default: derived from the data sources)"
    )
    license: str = _option("mit", "licence of the published weights (model-card metadata)")

    # command-specific defaults overridden in subclasses
    COMMAND: typing.ClassVar[str] = ""

    def validate(self) -> None:
        """Raise `TrainingConfigError` for settings that cannot work together."""
        if not self.train:
            raise TrainingConfigError("--train is required (in the command line or the --config file)")
        if not self.output_dir:
            raise TrainingConfigError("--output-dir is required (in the command line or the --config file)")
        if self.bf16 and self.fp16:
            raise TrainingConfigError("choose one of --bf16 and --fp16")
        if not 0.0 < self.validation_fraction < 1.0:
            raise TrainingConfigError(
                f"--validation-fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise TrainingConfigError("--eval-strategy steps needs --eval-steps N")
        if self.push_to_hub and not self.hub_model_id:
            raise TrainingConfigError("--push-to-hub needs --hub-model-id ORG/NAME")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise TrainingConfigError("set --num-train-epochs > 0 or --max-steps > 0")
        for name in ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size"):
            if getattr(self, name) <= 0:
                raise TrainingConfigError(
                    f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}"
                )
        if self.min_learning_rate and self.min_learning_rate >= self.learning_rate:
            raise TrainingConfigError(
                f"--min-learning-rate ({self.min_learning_rate}) must be below --learning-rate ({self.learning_rate})"
            )
        if self.resume_from_checkpoint and self.overwrite_output_dir:
            raise TrainingConfigError(
                "--resume-from-checkpoint and --overwrite-output-dir contradict each other"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class PretrainOptions(TrainingOptions):
    """`pretrain`: masked-language modelling on SCOPE strings (the authors' recipe, scaled by the sizes given)."""

    COMMAND: typing.ClassVar[str] = "pretrain"
    mlm_probability: float = _option(
        0.15, "fraction of tokens selected for masking (80/10/10 mask/random/keep)"
    )
    validation_fraction: float = _option(0.05, "fraction of the training rows held out for validation")
    num_train_epochs: float = _option(50.0, "training epochs")
    per_device_train_batch_size: int = _option(128, "training batch size per device")
    learning_rate: float = _option(1e-4, "peak AdamW learning rate")
    weight_decay: float = _option(0.0, "AdamW weight decay")

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.mlm_probability < 1.0:
            raise TrainingConfigError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}")


@dataclass(kw_only=True)
class FinetuneOptions(TrainingOptions):
    """`finetune`: property regression with the authors' head, on z-scored targets."""

    COMMAND: typing.ClassVar[str] = "finetune"
    target: list[str] | None = _option(None, "label column(s) to predict", metavar="COLUMN", required=True)
    target_unit: list[str] | None = _option(
        None, "physical unit of each target, for the model card and config (e.g. eV/atom)", metavar="UNIT"
    )
    test: list[str] | None = _option(
        None,
        "held-out test data, evaluated once with the selected model (never used for selection)",
        metavar="FILE",
    )
    cv_folds: int | None = _option(
        None,
        "k-fold cross-validation over the training data (KFold, shuffle, random_state 18012019 as MatBench): "
        "trains k models, reports mean and spread of the held-out-fold metrics",
        metavar="K",
    )
    head_num_layers: int = _option(1, "hidden Linear+SiLU layers of the head (authors: 1 MatBench, 3 MP)")
    head_dropout: float = _option(0.1, "dropout on the pooled embedding")
    loss: str = _option("l1", "loss on the z-scored targets", choices=("l1", "mse", "huber"))
    num_train_epochs: float = _option(200.0, "training epochs")
    per_device_train_batch_size: int = _option(64, "training batch size per device")
    learning_rate: float = _option(5e-5, "peak AdamW learning rate")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    min_learning_rate: float = _option(1e-7, "learning rate the cosine decay ends at")
    early_stopping_patience: int = _option(
        20, "stop after this many evaluations without a lower validation MAE (0: never)"
    )

    def validate(self) -> None:
        super().validate()
        if not self.target:
            raise TrainingConfigError("--target is required: the label column(s) to predict")
        if self.target_unit is not None and len(self.target_unit) != len(self.target):
            raise TrainingConfigError(
                f"--target-unit has {len(self.target_unit)} entries but --target has {len(self.target)}"
            )
        if self.cv_folds is not None:
            if self.cv_folds < 2:
                raise TrainingConfigError(f"--cv-folds must be >= 2, got {self.cv_folds}")
            if self.push_to_hub:
                raise TrainingConfigError(
                    "--cv-folds evaluates a recipe and trains one model per fold; train the model to publish "
                    "without --cv-folds"
                )
            if self.validation:
                raise TrainingConfigError(
                    "--cv-folds carves validation rows out of each fold's training part; drop --validation"
                )
            if self.resume_from_checkpoint:
                raise TrainingConfigError("--resume-from-checkpoint is not supported with --cv-folds")


@dataclass(kw_only=True)
class DebyeOptions(TrainingOptions):
    """`train-debye`: CLOUD-DEBYE, a Debye temperature fitted to heat capacities (Cv) through the Debye model."""

    COMMAND: typing.ClassVar[str] = "train-debye"
    target: list[str] = _option(["cv"], "column with Cv in J/(K mol of cells)", metavar="COLUMN")
    n_atoms_column: str = _option("n_atoms", "column with the number of atoms in the cell")
    temperature_column: str | None = _option(None, "column with the temperature (K) of each Cv value")
    temperature: float = _option(
        300.0, "temperature (K) of every Cv value when there is no --temperature-column"
    )
    test: list[str] | None = _option(
        None,
        "held-out test data, evaluated once with the selected model (never used for selection)",
        metavar="FILE",
    )
    theta_head: str = _option(
        "affine",
        "map from head output s to θ_D: affine (1200 s + 1500 K, the authors') or softplus (always positive)",
        choices=("affine", "softplus"),
    )
    head_num_layers: int = _option(3, "hidden Linear+SiLU layers of the head (authors: 3)")
    head_dropout: float = _option(0.1, "dropout on the pooled embedding")
    loss: str = _option("l1", "loss on Cv in J/(K mol)", choices=("l1", "mse", "huber"))
    num_train_epochs: float = _option(400.0, "training epochs")
    per_device_train_batch_size: int = _option(128, "training batch size per device")
    learning_rate: float = _option(1e-4, "peak AdamW learning rate")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    min_learning_rate: float = _option(1e-7, "learning rate the cosine decay ends at")
    max_grad_norm: float = _option(5.0, "gradient clipping norm (authors: 5)")
    early_stopping_patience: int = _option(
        40, "stop after this many evaluations without a lower validation MAE (0: never)"
    )

    def validate(self) -> None:
        super().validate()
        if len(self.target) != 1:
            raise TrainingConfigError(f"train-debye fits one Cv column, got --target {self.target}")
        if not self.temperature > 0:
            raise TrainingConfigError(f"--temperature must be > 0 K, got {self.temperature}")


# -- argparse from the dataclasses ------------------------------------------------------------------------------


def _unwrap_optional(annotation) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _field_kind(options_class: type, name: str) -> tuple[type, bool]:
    """(scalar type, is_list) of a field."""
    annotation, _ = _unwrap_optional(typing.get_type_hints(options_class)[name])
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_options_arguments(parser: argparse.ArgumentParser, options_class: type[TrainingOptions]) -> None:
    """Add `--config` and one `--flag` per field of `options_class` to `parser`.

    Unset flags stay out of the parsed namespace (`argparse.SUPPRESS`), so the config file can fill them.
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML or JSON file of settings (keys: the option names below); command-line flags override it",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in dataclasses.fields(options_class):
        if not spec.init:
            continue
        scalar, is_list = _field_kind(options_class, spec.name)
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        help_text = spec.metadata.get("help", "")
        if spec.metadata.get("required"):
            help_text += " (required)"
        elif default not in (None, [], False):
            help_text += (
                f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
            )
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": spec.name}
        if "choices" in spec.metadata:
            kwargs["choices"] = spec.metadata["choices"]
        if "metavar" in spec.metadata:
            kwargs["metavar"] = spec.metadata["metavar"]
        if scalar is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = scalar
            if is_list:
                kwargs["nargs"] = "+"
        section = _section_of(spec.name)
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        groups[section].add_argument(flag, **kwargs)


_SECTIONS = {
    "data": {
        "train",
        "validation",
        "validation_fraction",
        "test",
        "input_column",
        "target",
        "target_unit",
        "n_atoms_column",
        "temperature_column",
        "temperature",
        "skip_invalid_rows",
        "preprocessing_num_workers",
        "cv_folds",
    },
    "model": {
        "pretrained",
        "scope_version",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "head_num_layers",
        "head_dropout",
        "loss",
        "theta_head",
        "mlm_probability",
    },
    "run control": {"output_dir", "resume_from_checkpoint", "overwrite_output_dir", "seed", "use_cpu"},
    "publishing": {"push_to_hub", "hub_model_id", "hub_private_repo", "dataset_name", "license"},
}


def _section_of(name: str) -> str:
    for section, names in _SECTIONS.items():
        if name in names:
            return section
    return "optimisation"


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (`.yaml`/`.yml`) or JSON settings file into a dict with underscore keys."""
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


def _coerce(options_class: type, name: str, value: Any, origin: str) -> Any:
    scalar, is_list = _field_kind(options_class, name)
    if value is None:
        return None
    if is_list:
        values = value if isinstance(value, list) else [value]
        return [_coerce_scalar(scalar, item, name, origin) for item in values]
    return _coerce_scalar(scalar, value, name, origin)


def _coerce_scalar(scalar: type, value: Any, name: str, origin: str) -> Any:
    if scalar is bool:
        if isinstance(value, bool):
            return value
        raise TrainingConfigError(f"{origin}: {name} must be true or false, got {value!r}")
    if scalar is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if scalar is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if scalar is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if scalar in (int, float) and isinstance(value, str):
        try:
            return scalar(value)
        except ValueError:
            pass
    raise TrainingConfigError(f"{origin}: {name} must be {scalar.__name__}, got {value!r}")


def resolve_options(options_class: type[TrainingOptions], args: argparse.Namespace) -> TrainingOptions:
    """Merge defaults, the `--config` file and the command-line flags in `args`; validate the result."""
    names = {spec.name for spec in dataclasses.fields(options_class) if spec.init}
    values: dict[str, Any] = {}
    config_path = getattr(args, "config", None)
    if config_path:
        from_file = load_config_file(config_path)
        command = from_file.pop("command", options_class.COMMAND)  # training_config.json names its command
        if command != options_class.COMMAND:
            raise TrainingConfigError(
                f"--config {config_path} holds settings of `{command}`, not `{options_class.COMMAND}`"
            )
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise TrainingConfigError(
                f"--config {config_path}: unknown option(s) {', '.join(unknown)} for `{options_class.COMMAND}`"
            )
        for name, value in from_file.items():
            values[name] = _coerce(options_class, name, value, f"--config {config_path}")
    for name in names:
        if name in vars(args):
            values[name] = getattr(args, name)
    options = options_class(**values)
    options.validate()
    return options


def options_from_dict(options_class: type[TrainingOptions], values: dict[str, Any]) -> TrainingOptions:
    """Build and validate options from a plain dict (Python API; same checks as the command line)."""
    names = {spec.name for spec in dataclasses.fields(options_class) if spec.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TrainingConfigError(f"unknown option(s) {', '.join(unknown)} for `{options_class.COMMAND}`")
    coerced = {name: _coerce(options_class, name, value, "options") for name, value in values.items()}
    options = options_class(**coerced)
    options.validate()
    return options
