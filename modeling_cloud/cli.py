"""The ``cloud-crystal`` command line.

Each subcommand lives in its own function and imports what it needs lazily, so ``--help`` stays quick.

Exit codes: 0 success, 1 some inputs failed (reported per input), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
#: Show a progress bar on stderr from this many inputs on.
PROGRESS_MIN_ITEMS = 5


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_command(
    subparsers, name: str, handler: Callable[[argparse.Namespace], int], help_text: str, example: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=_HelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


# -- encode -------------------------------------------------------------------------------------------------------
def run_encode(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from tokenization import CloudTokenizerFast, ScopeError, load_structure
    from tokenization.structure_files import iter_structure_inputs

    tokenizer = CloudTokenizerFast.from_scope_version(
        args.scope_version, symprec=args.symprec, angle_tolerance=args.angle_tolerance
    )
    items = list(iter_structure_inputs(args.inputs))
    failures = 0
    out = sys.stdout
    progress = tqdm(
        items, desc="encoding", unit="structure", file=sys.stderr, disable=len(items) < PROGRESS_MIN_ITEMS
    )
    for source, item in progress:
        try:
            if isinstance(item, ScopeError):
                raise item
            structure = load_structure(item, source=source)
            scope = tokenizer.scope_from_structure(structure)
            input_ids = tokenizer(scope, truncation=False, max_length=args.max_length)["input_ids"]
            row = {"source": source, "scope": scope, "input_ids": input_ids}
        except ScopeError as exc:
            failures += 1
            row = {"source": source, "error": exc.to_dict()}
        if args.jsonl:
            out.write(json.dumps(row) + "\n")
        elif "error" in row:
            out.write(f"{source}\tERROR {row['error']['type']}: {row['error']['message']}\n")
        else:
            out.write(f"{source}\t{row['scope']}\n")
    if failures:
        print(f"{failures} of {len(items)} inputs failed to encode", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _add_encode(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "encode",
        run_encode,
        "Encode crystal structures (CIF, POSCAR, JSON/JSONL of pymatgen dicts or CIF strings, or directories) "
        "as SCOPE strings and token ids.",
        "cloud-crystal encode examples/structures/ --scope-version v2 --jsonl",
    )
    parser.add_argument("inputs", nargs="+", help="structure files or directories")
    parser.add_argument("--scope-version", choices=("v1", "v2"), default="v2", help="SCOPE encoding version")
    parser.add_argument("--symprec", type=float, default=0.01, help="symmetry tolerance in Angstrom")
    parser.add_argument("--angle-tolerance", type=float, default=5.0, help="angle tolerance in degrees")
    parser.add_argument(
        "--max-length", type=int, default=64, help="maximum tokens; longer strings are errors"
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help='one JSON line per structure: {"source","scope","input_ids"} or {"source","error":{"type","message"}}',
    )


# -- entry point --------------------------------------------------------------------------------------------------
_COMMAND_BUILDERS: list[Callable] = [_add_encode]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-crystal",
        description="CLOUD: a crystal language model over SCOPE strings (encode, train, predict, publish).",
        formatter_class=_HelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMAND_BUILDERS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "symprec", 1.0) <= 0:
        parser.error("--symprec must be positive")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
