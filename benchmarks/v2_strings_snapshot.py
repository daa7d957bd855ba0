"""SCOPE v2 strings of the 6,317 bundled Materials Project structures, written once and compared across commits.

Run under the code to be checked (``PYTHONPATH`` decides which ``tokenization`` is imported), once before and once
after a change to the encoder, then compare the two files:

    PYTHONPATH=/tmp/before python -m benchmarks.v2_strings_snapshot --output /tmp/v2_before.json
    PYTHONPATH=$PWD python -m benchmarks.v2_strings_snapshot --output /tmp/v2_after.json
    python -m benchmarks.v2_strings_snapshot --compare /tmp/v2_before.json /tmp/v2_after.json

Each structure goes through the v2 tokenizer's ``encode_structure`` (the path of the command line, the pipeline and
the dataset builders, with the tokenizer's length limit), so a crystal newly refused as too long shows as a change
from a string to a ``too_long`` record. The comparison lists every material whose string changes or that is newly
refused, with both outcomes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def snapshot(output: Path) -> None:
    """Encode every bundled structure; write ``{material_id: string or failure record}`` as JSON."""
    from dataset_builders import load_materials_project, structure_from_json
    from tokenization import CloudTokenizerFast, ScopeError

    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    table = load_materials_project()
    results: dict[str, object] = {}
    start = time.perf_counter()
    for material_id, text in zip(table["material_id"], table["structure"], strict=True):
        try:
            results[material_id] = tokenizer.encode_structure(structure_from_json(text, source=material_id))
        except ScopeError as error:
            results[material_id] = error.to_dict()
    output.write_text(json.dumps(results, indent=0, sort_keys=True))
    print(f"{len(results)} structures in {time.perf_counter() - start:.0f} s -> {output}")


def compare(before: Path, after: Path) -> int:
    """Print every material whose outcome differs; return the number of differences."""
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    changed = 0
    for material_id in sorted(set(old) | set(new)):
        if old.get(material_id) != new.get(material_id):
            changed += 1
            print(f"{material_id}\n  before: {old.get(material_id)}\n  after:  {new.get(material_id)}")
    print(f"{changed} of {len(new)} outcomes differ")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, help="write this snapshot")
    parser.add_argument(
        "--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), help="compare two snapshots"
    )
    args = parser.parse_args(argv)
    if args.compare:
        return 1 if compare(*args.compare) else 0
    if args.output is None:
        parser.error("give --output or --compare")
    snapshot(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
