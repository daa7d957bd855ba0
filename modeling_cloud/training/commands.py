# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Registers `pretrain`, `finetune`, `train-debye` and `push` on the `cloud-crystal` command line.

`modeling_cloud/cli.py` calls [`add_training_commands`] with its sub-parsers and its `_add_command` helper. This
module imports only the option definitions; the training stack is imported when a command runs, so
`cloud-crystal --help` stays fast.

Example:

```python
>>> import argparse
>>> from modeling_cloud.training.commands import add_training_commands
>>> def add_command(subparsers, name, handler, help_text, example):
...     parser = subparsers.add_parser(name, help=help_text, epilog=f"example:\\n  {example}")
...     parser.set_defaults(handler=handler)
...     return parser
>>> parser = argparse.ArgumentParser(prog="cloud-crystal")
>>> add_training_commands(parser.add_subparsers(dest="command"), add_command)
>>> args = parser.parse_args(["finetune", "--train", "a.csv", "--target", "n", "--output-dir", "out"])
>>> args.command, args.target
('finetune', ['n'])

```
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from .options import (
    BUNDLED_SET_NAMES,
    DebyeOptions,
    FinetuneOptions,
    PretrainOptions,
    TrainingConfigError,
    TrainingOptions,
    add_options_arguments,
    resolve_options,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

BUNDLED_HELP = (
    "bundled data for --train/--validation/--test (slice rows with [a:b], e.g. bundled:cloud-cv[:500]):\n  "
    + ("\n  ".join(f"bundled:{name}" for name in BUNDLED_SET_NAMES))
)

#: name -> (module, run function, options class, help, example)
TRAINING_COMMANDS: dict[str, tuple[str, str, type[TrainingOptions], str, str]] = {
    "pretrain": (
        "pretrain",
        "run_pretrain",
        PretrainOptions,
        "Pretrain a CLOUD encoder by masked-language modelling (15 %, 80/10/10) on SCOPE strings and/or crystal "
        "structures; saves a base checkpoint in Hub layout.",
        "cloud-crystal pretrain --train bundled:cloud-pretrain bundled:materials-project --scope-version v1 "
        "--output-dir cloud-base --num-train-epochs 50",
    ),
    "finetune": (
        "finetune",
        "run_finetune",
        FinetuneOptions,
        "Fine-tune CLOUD on crystal properties (regression on z-scored targets, best checkpoint by validation MAE, "
        "early stopping); with --cv-folds K, K-fold cross-validation.",
        "cloud-crystal finetune --train train.csv --validation val.csv --target band_gap --target-unit eV "
        "--pretrained cloud-base --output-dir band-gap-model --num-train-epochs 100",
    ),
    "train-debye": (
        "train_debye",
        "run_train_debye",
        DebyeOptions,
        "Train CLOUD-DEBYE: a Debye temperature fitted to heat capacities through the Debye model (then predicts "
        "Cv, U, S and F at any temperature).",
        "cloud-crystal train-debye --train bundled:cloud-cv --scope-version v1 --temperature 300 "
        "--output-dir cloud-debye --num-train-epochs 400",
    ),
}
PUSH_HELP = (
    "Publish a trained CLOUD checkpoint folder (model, tokenizer, remote code, model card) to the Hub."
)
PUSH_EXAMPLE = "cloud-crystal push band-gap-model --hub-model-id my-org/cloud-band-gap"


def handle_errors(function: Callable[[], Any]) -> int:
    """Run a command; expected failures become one clear line on stderr and an exit code (2: bad settings,
    1: bad data, checkpoint or upload)."""
    from dataset_builders.reporting import RowEncodingError
    from tokenization import ScopeError

    from .engine import CheckpointError
    from .hub import HubLayoutError

    try:
        function()
    except TrainingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, HubLayoutError, RowEncodingError, ScopeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def command_handler(name: str) -> Callable[[argparse.Namespace], int]:
    """The argparse handler of a training command: resolve options, set up logging, import and run."""
    module_name, function_name, options_class, _, _ = TRAINING_COMMANDS[name]

    def handler(args: argparse.Namespace) -> int:
        def go():
            options = resolve_options(options_class, args)
            from .engine import configure_logging, process_index_from_environment

            configure_logging(process_index_from_environment())
            module = importlib.import_module(f"{__package__}.{module_name}")
            getattr(module, function_name)(options)

        return handle_errors(go)

    return handler


def push_handler(args: argparse.Namespace) -> int:
    from .push import run_push

    return run_push(args)


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="checkpoint folder in Hub layout (a training output folder)")
    parser.add_argument("--hub-model-id", required=True, metavar="ORG/NAME", help="Hub repository to push to")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit-message", default="Upload CLOUD model", help="commit message of the upload")


def add_training_commands(subparsers, add_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the training commands to `subparsers`; `add_command(subparsers, name, handler, help_text, example)`
    creates each sub-parser (the lead's `_add_command` in `modeling_cloud/cli.py`)."""
    for name, (_, _, options_class, help_text, example) in TRAINING_COMMANDS.items():
        parser = add_command(subparsers, name, command_handler(name), help_text, example)
        parser.epilog = (parser.epilog or "") + "\n\n" + BUNDLED_HELP
        add_options_arguments(parser, options_class)
    parser = add_command(subparsers, "push", push_handler, PUSH_HELP, PUSH_EXAMPLE)
    add_push_arguments(parser)


def standalone_main(name: str, argv=None) -> int:
    """`python -m modeling_cloud.training.<module>` (also under `torchrun` / `accelerate launch`)."""
    module_name, _, options_class, help_text, example = TRAINING_COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=f"python -m modeling_cloud.training.{module_name}",
        description=help_text,
        epilog=f"example:\n  {example}\n\n{BUNDLED_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options_arguments(parser, options_class)
    return command_handler(name)(parser.parse_args(argv))
