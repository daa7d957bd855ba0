# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Registers `pretrain`, `finetune`, `train-debye` and `push` on the `cloud-crystal` command line.

`modeling_cloud/cli.py` calls [`add_training_commands`] with its sub-parsers and its `_add_command` helper.
Registering costs nothing: this module imports only the standard library and the option declarations. The flags of a
training command come from `transformers.HfArgumentParser` over `TrainingArguments`, which imports torch (about 2 s),
so a training sub-parser is built only when its command is chosen: `cloud-crystal --help` stays instant and
`cloud-crystal finetune --help` pays the import once.

Imports run one way: `commands` -> `push`, `options`; `commands` -> a run module (`pretrain`, ...), when its command
runs -> `launch` -> `options`, `engine`.

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
>>> args.command, args.target, args.training_argv[:2]
('finetune', ['n'], ['--train', 'a.csv'])

```
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from .options import BUNDLED_HELP, COMMANDS
from .push import PUSH_EXAMPLE, PUSH_HELP, add_push_arguments, run_push

#: name -> (module, help, example) of every training command (the dataclasses are in `options.COMMANDS`).
TRAINING_COMMANDS: dict[str, tuple[str, str, str]] = {
    name: (spec.module, spec.help, spec.example) for name, spec in COMMANDS.items()
}


class DeferredCommandParser(argparse.ArgumentParser):
    """The sub-parser of a training command, whose flags are those of `options.command_parser(command)`.

    That parser is built on first use (help, usage or parsing), that is only once the command was chosen. Parsing
    checks the command line with it (so `--help`, typos and bad values behave as usual) and keeps the raw arguments
    in `training_argv`; the command's handler resolves them, with the `--config` file, into settings.
    """

    training_command: str

    def full_parser(self) -> argparse.ArgumentParser:
        from .options import command_parser

        return command_parser(
            self.training_command,
            prog=self.prog,
            description=self.description,
            epilog=self.epilog,
            formatter_class=self.formatter_class,
        )

    def format_help(self) -> str:
        return self.full_parser().format_help()

    def format_usage(self) -> str:
        return self.full_parser().format_usage()

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        namespace = argparse.Namespace() if namespace is None else namespace
        parsed = self.full_parser().parse_args(args)  # --help and malformed flags exit here, as usual
        for name, value in vars(parsed).items():
            setattr(namespace, name, value)
        namespace.handler = self.get_default("handler")
        namespace.training_argv = args
        return namespace, []


def command_handler(name: str) -> Callable[[argparse.Namespace], int]:
    """The argparse handler of a training command: the run module's `main` on the command's arguments."""

    def handler(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"{__package__}.{COMMANDS[name].module}")
        return module.main(args.training_argv, prog=f"cloud-crystal {name}")

    return handler


def push_handler(args: argparse.Namespace) -> int:
    return run_push(args)


def add_training_commands(subparsers, add_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the training commands and `push` to `subparsers`.

    Args:
        subparsers: the `add_subparsers()` action of the `cloud-crystal` parser.
        add_command: `add_command(subparsers, name, handler, help_text, example)` creates each sub-parser (the
            lead's `_add_command` in `modeling_cloud/cli.py`); the training ones then defer their flags to
            [`DeferredCommandParser`].
    """
    for name, (_, help_text, example) in TRAINING_COMMANDS.items():
        parser = add_command(subparsers, name, command_handler(name), help_text, example)
        parser.epilog = (parser.epilog or "") + "\n\n" + BUNDLED_HELP
        parser.__class__ = (
            DeferredCommandParser  # same object and settings; only parsing and help are deferred
        )
        parser.training_command = name
    parser = add_command(subparsers, "push", push_handler, PUSH_HELP, PUSH_EXAMPLE)
    add_push_arguments(parser)
