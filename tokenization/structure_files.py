"""Walk the files a user points the command line at and yield one structure input per crystal.

Accepted: CIF files, POSCAR/CONTCAR/``.vasp`` files, JSON (one pymatgen dict or OPTIMADE entry, an OPTIMADE
response document (one crystal per entry, ``path@i``), or a list of dicts / CIF strings / ``{"structure": ...}``
records), JSONL (one such record per line), tables (CSV/Parquet) with a ``structure`` or
``scope`` column, and directories of any of these. Records and rows that carry a SCOPE string instead of a structure
are yielded as ``{"scope": ..., "n_atoms": ...}`` (``n_atoms`` when the record has it). Every yielded
item carries a ``source`` name (``path``, ``path#3`` for the fourth record of a list, ``path:12`` for line 12 of a
JSONL file, ``file.cif#block`` for a data block of a CIF holding several crystals, ``file.extxyz@3`` for a frame).
A record that cannot even be read is yielded as a :class:`StructureParseError` in its place, so callers
report it instead of losing it.

Not remote code: only the CLI and dataset builders use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .optimade_structure import document_entries, is_optimade_document
from .scope_errors import StructureParseError
from .structure_io import crystal_sources, is_optimade_entry

#: The failure of a records file (JSON Lines, JSON, table) that holds none: it still gives one row.
NO_RECORDS_MESSAGE = "the file holds no structure records (no lines, entries or rows)"

STRUCTURE_SUFFIXES = (".cif", ".mcif", ".vasp", ".poscar", ".json", ".jsonl", ".extxyz", ".xyz")
TABLE_SUFFIXES = (".csv", ".parquet")
_RECORD_KEYS = ("structure", "cif", "poscar")


def is_structure_file(path: Path) -> bool:
    name = path.name.upper()
    return path.suffix.lower() in STRUCTURE_SUFFIXES or name.startswith(("POSCAR", "CONTCAR"))


def _record_to_input(record: Any, source: str) -> Any:
    """A JSON record -> something ``load_structure`` reads: a pymatgen dict, CIF/POSCAR text, or an error."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        if "lattice" in record and "sites" in record:
            return record
        if is_optimade_entry(record):
            return record
        if isinstance(record.get("scope"), str) and not any(record.get(k) is not None for k in _RECORD_KEYS):
            scope_record = {"scope": record["scope"]}
            if record.get("n_atoms") is not None:
                scope_record["n_atoms"] = record["n_atoms"]
            return scope_record
        for key in _RECORD_KEYS:
            if key in record:
                return record[key]
        return StructureParseError(
            f"JSON record has neither a pymatgen structure nor one of the keys {', '.join(_RECORD_KEYS)}",
            source,
        )
    return StructureParseError(f"JSON record of type {type(record).__name__} is not a structure", source)


def _iter_json_file(path: Path) -> Iterator[tuple[str, Any]]:
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        yield source, StructureParseError(f"unreadable JSON ({type(exc).__name__}: {exc})", source)
        return
    if isinstance(data, list):
        for index, record in enumerate(data):
            yield from _record_inputs(record, f"{source}#{index}")
    else:
        yield from _record_inputs(data, source)


def _record_inputs(record: Any, source: str) -> Iterator[tuple[str, Any]]:
    """``(source, input)`` for each crystal of one JSON record: an OPTIMADE response document (a provider's page,
    ``{"data": [...]}``, as saved whole or one page per JSON line) gives one per entry, anything else one."""
    if isinstance(record, dict) and is_optimade_document(record):
        yield from document_entries(record, source)
    else:
        yield source, _record_to_input(record, source)


def _iter_jsonl_file(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        yield str(path), StructureParseError(f"unreadable file ({type(exc).__name__}: {exc})", str(path))
        return
    for _, source, record in jsonl_records(lines, str(path)):
        if isinstance(record, StructureParseError):
            yield source, record
        else:
            yield from _record_inputs(record, source)


def jsonl_records(lines: Iterable[str], name: str) -> Iterator[tuple[int, str, Any]]:
    """`(line number, source "name:number", parsed record)` for every non-blank line of a JSON Lines text; a line
    that is not JSON gives a `StructureParseError` in place of its record, so a reader reports it and goes on."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            yield number, source, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, source, StructureParseError(f"line is not valid JSON ({exc})", source)


def _iter_table(path: Path) -> Iterator[tuple[str, Any]]:
    import pandas as pd

    source = str(path)
    try:
        table = (
            pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, comment=None)
        )
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        yield source, StructureParseError(f"unreadable table ({type(exc).__name__}: {exc})", source)
        return
    if not any(column in table.columns for column in (*_RECORD_KEYS, "scope")):
        yield (
            source,
            StructureParseError("table has no 'structure', 'cif', 'poscar' or 'scope' column", source),
        )
        return
    for row_number, record in enumerate(table.to_dict(orient="records")):
        record = {
            k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()
        }  # NaN -> None
        yield f"{source}#{row_number}", _record_to_input(record, f"{source}#{row_number}")


def _iter_records_file(path: Path) -> Iterator[tuple[str, Any]]:
    """The records of a JSON Lines, JSON or table file (one per line, list entry, OPTIMADE entry or row)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _iter_jsonl_file(path)
    if suffix == ".json":
        return _iter_json_file(path)
    return _iter_table(path)


def at_least_one_row(
    items: Iterator[tuple[str, Any]], source: str, skipped: bool = False
) -> Iterator[tuple[str, Any]]:
    """``items``, or one ``StructureParseError`` naming ``source`` when it yields none (an empty JSON Lines file, a
    JSON ``[]``, an OPTIMADE page without entries, a table without rows): every input file gives at least one row.
    With ``skipped`` (a resumed run past this file) that row is ``(source, None)``, as for rows already written."""
    empty = True
    for item in items:
        empty = False
        yield item
    if empty:
        yield source, None if skipped else StructureParseError(NO_RECORDS_MESSAGE, source)


def iter_structure_inputs(inputs: Iterable[str | Path]) -> Iterator[tuple[str, Any]]:
    """Yield ``(source, structure_input_or_error)`` for every crystal in the given files and directories."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_structure_file(p))
            if not files:
                yield (
                    str(path),
                    StructureParseError("directory holds no CIF, POSCAR, JSON or JSONL files", str(path)),
                )
            yield from iter_structure_inputs(files)
        elif path.suffix.lower() in (".jsonl", ".json", *TABLE_SUFFIXES):
            yield from at_least_one_row(_iter_records_file(path), str(path))
        else:
            # One item per crystal: CIF data blocks (file.cif#block) and extxyz frames (file.extxyz@3).
            yield from crystal_sources(path)
