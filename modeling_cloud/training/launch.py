# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Running a training command from a command line: parse, set up logging, run, turn known failures into exit codes.

Each run module's `main(argv)` calls [`run_main`]; so do `cloud-crystal pretrain|finetune|train-debye` (through the
module) and `python -m modeling_cloud.training.<module>` (also under `torchrun` and `accelerate launch`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .options import (
    COMMANDS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RunSettings,
    TrainingConfigError,
    parse_settings,
)


def run_main(
    command: str,
    run_function: Callable[[RunSettings], Any],
    argv: list[str] | None = None,
    prog: str | None = None,
) -> int:
    """Parse `argv` for `command` and call `run_function(settings)`.

    Returns:
        `int`: 0 on success; 2 for bad settings; 1 for bad data, an unusable checkpoint or a failed upload. Each
        failure prints one `error: ...` line on stderr.
    """
    from dataset_builders.reporting import RowEncodingError
    from tokenization import ScopeError

    from . import engine
    from .hub import HubLayoutError

    prog = prog or f"python -m modeling_cloud.training.{COMMANDS[command].module}"
    try:
        settings = parse_settings(command, argv, prog=prog)
        engine.configure_logging(engine.process_index_from_environment())
        run_function(settings)
    except TrainingConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (engine.CheckpointError, HubLayoutError, RowEncodingError, ScopeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
