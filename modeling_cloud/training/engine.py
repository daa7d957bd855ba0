# Copyright 2026 the cloud-crystal developers. MIT licence.
"""What the three training commands share: the Trainer's copy of `TrainingArguments`, a small `Trainer` subclass,
callbacks (Hub-layout checkpoints, epoch-keyed masking, a time estimate), checkpoint checks for resuming, and logging
set-up.

Training runs on `transformers.Trainer` (Accelerate underneath: DDP, FSDP, mixed precision, `torchrun` and
`accelerate launch` work unchanged). [`CloudTrainer`] changes only how batches are sampled and which model outputs
are gathered for metrics:

* length-grouped sampling whose shuffle is seeded by (seed, epoch) instead of the global RNG, so that a run resumed
  in the middle of an epoch sees the same batches as an uninterrupted one (the stock `LengthGroupedSampler` draws
  from the global RNG, whose state at the start of an epoch differs between the two runs);
* evaluation in dataset order (the stock evaluation sampler length-groups too, which would reorder predictions);
* the models' mean losses are used as they are (not rescaled as if they were summed over tokens);
* evaluation gathers one named model output (`predictions`, `heat_capacity`, `logits`) instead of every tensor of the
  output (the Debye model also returns θ_D, U, S and F).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .options import RunSettings, TrainingConfigError, distributed_without_gpu

logger = logging.getLogger("modeling_cloud.training")

TRAINER_STATE_NAME = "trainer_state.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint to resume from is missing, incomplete or corrupt (the message says which file and why)."""


# -- logging -------------------------------------------------------------------------------------------------


def configure_logging(process_index: int = 0) -> None:
    """Concise logs: our progress lines on the main process, warnings from libraries, no per-batch noise."""
    import datasets
    import transformers

    level = logging.INFO if process_index == 0 else logging.WARNING
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=level
    )
    logging.getLogger("modeling_cloud").setLevel(level)
    logging.getLogger("dataset_builders").setLevel(logging.WARNING if process_index == 0 else logging.ERROR)
    transformers.utils.logging.set_verbosity_warning()
    # Only the Trainer's own training/evaluation bars are wanted; not one per weights file written or read.
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    # spglib 2.5+ warns at every call until its error-handling default changes; not actionable for users.
    warnings.filterwarnings("ignore", message="Set OLD_ERROR_HANDLING to false", category=DeprecationWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers.trainer_utils").addFilter(_DropMessages(("mtime may not be reliable",)))


class _DropMessages(logging.Filter):
    """Drops log records that start with known, harmless texts."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def process_index_from_environment() -> int:
    """The global rank set by `torchrun` / `accelerate launch` (0 for a single process)."""
    return int(os.environ.get("RANK", os.environ.get("PROCESS_INDEX", "0")))


# -- arguments -----------------------------------------------------------------------------------------------


def trainer_arguments(
    settings: RunSettings,
    output_dir: str | Path,
    metric_for_best_model: str,
    greater_is_better: bool = False,
) -> TrainingArguments:
    """The `TrainingArguments` the Trainer of one run gets: the user's, adjusted to the run.

    * `output_dir` is the run's (a fold's folder under cross-validation);
    * the best checkpoint is chosen by `metric_for_best_model` unless the user named a metric;
    * `push_to_hub` is off: the final model is published once, with its model card (see `hub.py`);
    * `data_seed` follows `seed`; several processes without a GPU train on the CPU (gloo), and memory is pinned only
      for a GPU.
    """
    training = settings.training
    changes: dict = {
        "output_dir": str(output_dir),
        "push_to_hub": False,
        "data_seed": training.seed if training.data_seed is None else training.data_seed,
        "use_cpu": training.use_cpu or distributed_without_gpu(),
        "dataloader_pin_memory": training.dataloader_pin_memory
        and torch.cuda.is_available()
        and not training.use_cpu,
    }
    if "metric_for_best_model" not in settings.explicit:
        changes["metric_for_best_model"] = metric_for_best_model
        if "greater_is_better" not in settings.explicit:
            changes["greater_is_better"] = greater_is_better
    return dataclasses.replace(training, **changes)


# -- trainer -------------------------------------------------------------------------------------------------


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` whose order depends only on (seed, epoch); the epoch is set through `set_epoch`."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class CloudTrainer(Trainer):
    """`Trainer` with reproducible length grouping, ordered evaluation and one gathered output (module docstring)."""

    def __init__(self, *args, prediction_output: str, output_fields: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        # The CLOUD models take **kwargs (attention options for the encoder) but return mean losses and ignore
        # `num_items_in_batch`; the Trainer would otherwise take them for token-count-normalised losses and scale the
        # loss by the number of processes.
        self.model_accepts_loss_kwargs = False
        self.prediction_output = prediction_output
        self.ignored_output_keys = [name for name in output_fields if name != prediction_output]
        self._record_disorder()

    def _record_disorder(self) -> None:
        """Set `config.trained_with_disorder` when a SCOPE v2 training row has a disorder section (`|`)."""
        tokenizer = self.processing_class
        dataset = self.train_dataset
        columns = getattr(dataset, "column_names", None) or []
        if getattr(tokenizer, "scope_version", None) != "v2" or "input_ids" not in columns:
            return  # v1 strings do not mark disorder; streamed datasets are not scanned
        separator = tokenizer.convert_tokens_to_ids("|")
        if separator is None or separator == tokenizer.unk_token_id:
            return
        if any(separator in ids for ids in dataset["input_ids"]):
            self.model.config.trained_with_disorder = True

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=list(dataset[self.args.length_column_name]),
            seed=seed,
        )

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None:
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def _issue_warnings_after_load(self, load_result) -> None:
        # Tied weights (the MLM decoder shares the input embeddings) are not stored in safetensors, so reloading the
        # best checkpoint reports them missing; they are restored by tying, which is not worth a warning.
        tied = set(getattr(self.model, "_tied_weights_keys", None) or {})
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) != len(load_result.missing_keys):
            self.model.tie_weights()
        load_result = type(load_result)(missing, load_result.unexpected_keys)
        super()._issue_warnings_after_load(load_result)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if ignore_keys is None:
            ignore_keys = self.ignored_output_keys
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


class TimeEstimateCallback(TrainerCallback):
    """Logs, once the first steps are done, how long each step takes and the estimated time of the whole run.

    The estimate is `seconds per step x max_steps`, measured over the steps after the first (which pays for
    start-up); evaluation and checkpoint time come on top. It is logged after `after_steps` steps, or after 60 s of
    training if that comes first (at least 2 steps).
    """

    def __init__(self, after_steps: int = 20):
        self.after_steps = after_steps
        self.first_step_done: tuple[float, int] | None = None
        self.reported = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.reported or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        if self.first_step_done is None:
            self.first_step_done = (now, state.global_step)
            return
        started, first_step = self.first_step_done
        steps, elapsed = state.global_step - first_step, now - started
        if (
            steps >= self.after_steps
            or (elapsed >= 60.0 and steps >= 1)
            or state.global_step >= state.max_steps
        ):
            self.reported = True
            per_step = elapsed / steps
            logger.info(
                "%.3g s per optimiser step: about %s for all %d steps (evaluation and saving not included)",
                per_step,
                format_duration(per_step * state.max_steps),
                state.max_steps,
            )


def format_duration(seconds: float) -> str:
    """A duration in seconds as people read it.

    Example:

    ```python
    >>> from modeling_cloud.training.engine import format_duration
    >>> format_duration(4.2), format_duration(95.0), format_duration(3725.0)
    ('4.2 s', '1 min 35 s', '1 h 02 min')

    ```
    """
    if seconds < 60:
        return f"{seconds:.2g} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class MaskingEpochCallback(TrainerCallback):
    """Tells [`ReproducibleMaskingCollator`] the epoch, so that masks change from epoch to epoch."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(math.floor(state.epoch + 1e-6)) if state.epoch else 0


class HubLayoutCallback(TrainerCallback):
    """Completes every saved checkpoint to the Hub layout: the pipeline code and a README.md model card.

    The model and tokenizer (with their remote code) are written by the Trainer; this adds what it does not know
    about, so any `checkpoint-N` folder can be pushed or loaded with `trust_remote_code=True` as it is.
    """

    def __init__(self, complete_folder):
        # complete_folder(folder: Path, state) -> None, provided by the command
        self.complete_folder = complete_folder

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                self.complete_folder(folder, state)


# -- checkpoints ---------------------------------------------------------------------------------------------


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """`checkpoint-N` folders in `output_dir`, oldest (lowest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        prefix, _, step = path.name.partition("-")
        if path.is_dir() and prefix == PREFIX_CHECKPOINT_DIR and step.isdigit():
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def validate_checkpoint(folder: str | Path) -> None:
    """Raise [`CheckpointError`] unless `folder` is a complete, readable Trainer checkpoint.

    The Trainer writes `trainer_state.json` last, so a checkpoint without it (or with a truncated one) was
    interrupted while being saved. The weights file must open and every tensor must be readable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} does not exist")
    state_file = folder / TRAINER_STATE_NAME
    if not state_file.is_file():
        raise CheckpointError(
            f"checkpoint {folder} is incomplete: no {TRAINER_STATE_NAME} (the run was probably stopped while saving "
            "it); resume from an earlier checkpoint"
        )
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {folder}: {TRAINER_STATE_NAME} is corrupt ({error})") from error
    if "global_step" not in state:
        raise CheckpointError(f"checkpoint {folder}: {TRAINER_STATE_NAME} has no global_step")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {WEIGHTS_NAME}")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open has no __iter__)
                handle.get_tensor(name)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {folder}: {WEIGHTS_NAME} is corrupt or truncated ({error})"
        ) from error
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (folder / name).is_file():
            raise CheckpointError(
                f"checkpoint {folder} has no {name}; it holds weights only and cannot resume training (use it with "
                "--pretrained instead)"
            )


def latest_complete_checkpoint(output_dir: str | Path) -> Path:
    """The newest checkpoint in `output_dir` that passes [`validate_checkpoint`]; skipped ones are logged."""
    candidates = checkpoint_folders(output_dir)
    if not candidates:
        raise CheckpointError(
            f"--resume-from-checkpoint last: no checkpoint-N folder in {output_dir}; nothing to resume (start a "
            "new run without --resume-from-checkpoint)"
        )
    problems = []
    for folder in reversed(candidates):
        try:
            validate_checkpoint(folder)
        except CheckpointError as error:
            problems.append(str(error))
            logger.warning("skipping %s", error)
            continue
        return folder
    raise CheckpointError("no usable checkpoint in " + str(output_dir) + ":\n  " + "\n  ".join(problems))


def resolve_resume_checkpoint(settings: RunSettings, output_dir: str | Path) -> str | None:
    """The checkpoint to resume from (validated), or None for a fresh run.

    A fresh run refuses an output folder that already holds checkpoints, unless `overwrite_output_dir`, so an
    interrupted run is never silently restarted from scratch.
    """
    output_dir = Path(output_dir)
    request = settings.training.resume_from_checkpoint
    if request:
        folder = latest_complete_checkpoint(output_dir) if request == "last" else Path(request)
        validate_checkpoint(folder)
        logger.info("resuming from %s", folder)
        return str(folder)
    existing = checkpoint_folders(output_dir)
    if existing:
        if not settings.data.overwrite_output_dir:
            raise TrainingConfigError(
                f"{output_dir} already holds checkpoints ({', '.join(p.name for p in existing)}); pass "
                "--resume-from-checkpoint last to continue that run, or --overwrite-output-dir to start over"
            )
        if process_index_from_environment() == 0:  # one process deletes; the others never read them
            for folder in existing:
                shutil.rmtree(folder, ignore_errors=True)
            logger.info(
                "removed %d old checkpoints from %s (--overwrite-output-dir)", len(existing), output_dir
            )
    return None
