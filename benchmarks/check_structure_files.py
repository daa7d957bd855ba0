"""Run every structure file under a folder through the reader and SCOPE v2, one line per crystal.

A local check, outside the test suite, for files that may not be copied into the repository (for example other
projects' test CIFs under their databases' terms)::

    python -m benchmarks.check_structure_files ../shared/data/peer-cifs

Each line gives the file (or ``file#block``), then the v2 string, or the error type and message; reader notes
follow on indented lines. Exit code 0 always: the output is for a person to judge against the files' documented
right outcomes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokenization import ScopeError, structure_to_scope
from tokenization.structure_files import is_structure_file
from tokenization.structure_io import load_structures


def check(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_structure_file(p)):
        try:
            crystals = load_structures(path)
        except ScopeError as exc:
            crystals = [(str(path), exc)]
        for source, result in crystals:
            row = {
                "source": str(Path(source).relative_to(folder)) if source.startswith(str(folder)) else source
            }
            if isinstance(result, ScopeError):
                row["error"] = f"{type(result).__name__}: {result.message}"
            else:
                try:
                    row["scope_v2"] = structure_to_scope(result, version="v2", source=source)
                except ScopeError as exc:
                    row["error"] = f"{type(exc).__name__}: {exc.message}"
                row["notes"] = result.properties.get("reader_notes", [])
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    for row in check(args.folder):
        outcome = row.get("scope_v2") or row.get("error")
        print(f"{row['source']}: {outcome}")
        for note in row.get("notes", []):
            print(f"    note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
