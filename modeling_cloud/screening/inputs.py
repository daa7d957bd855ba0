# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The inputs of a screening run as one stream of crystals, each with a stable position and name.

[`iter_inputs`] walks what the user points `cloud-crystal predict --output` / `embed` at and yields one
[`InputItem`] per crystal, lazily: nothing is read whole that can be read in pieces, so memory does not grow with the
number of inputs. Accepted:

- **folders**, searched recursively (files sorted by path): every file below that `cloud-crystal encode` reads, plus
  CSV/Parquet tables and compressed dumps, but not screening outputs (files with the run metadata, or beside their
  `.meta.json`) or their `.parts` folders. A folder that `cloud-crystal corpus` wrote
  (`train-XXXXX-of-YYYYY.parquet` shards beside `failures.jsonl` and a card) is read as its shards only;
- **tables**: Parquet (read in record batches), CSV (read in chunks), JSON Lines (read line by line), with a
  `structure`, `cif`, `poscar` or `scope` column (the reader of `tokenization.structure_files`);
- **dumps**: Materials Project / Alexandria / OPTIMADE JSON (a list, `{"entries": [...]}`, `{"data": [...]}`) and
  JSON Lines, optionally `.gz`, `.bz2` or `.xz` (`dataset_builders.corpus_sources`); a `.json` file is parsed whole,
  since the standard library has no streaming JSON parser (use JSON Lines for large dumps);
- **structure files**: CIF (one item per data block), POSCAR, extxyz (one item per frame), pymatgen JSON;
- **`hub:ORG/NAME`**: a Hub dataset's `train` split, streamed (`datasets.load_dataset(..., streaming=True)`).

Row names (`InputItem.source`): a table's or dump record's own id (`--id-column NAME`, else an `id` or
`material_id` column; for dump records also `entry_id`/`data.mat_id` as Alexandria writes them) when it has one;
otherwise the name `cloud-crystal encode` gives: `path`, `path#N` (row N of a table or a JSON list, from 0),
`path:LINE` (JSON Lines, from 1), `file.cif#block`, `frames.extxyz@3`, `hub:ORG/NAME#N`. Ids may repeat, so a run
is keyed by `position` (0, 1, 2, ... over all inputs in the order given), never by name.

An input that cannot be read yields its typed `ScopeError` in place of the crystal, so it becomes a failure row.

Not remote code: only the screening runner imports it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenization.scope_errors import StructureParseError
from tokenization.structure_files import (
    TABLE_SUFFIXES,
    _record_to_input,
    at_least_one_row,
    is_structure_file,
    jsonl_records,
)
from tokenization.structure_io import crystal_sources

__all__ = ["HUB_PREFIX", "InputItem", "count_inputs", "iter_inputs"]

#: `hub:ORG/NAME` names a Hub dataset, streamed.
HUB_PREFIX = "hub:"
#: Columns that name a table row, in order of preference (`--id-column` comes first).
ID_COLUMNS = ("id", "material_id")
#: Extra keys that name a dump record (Materials Project summary docs, Alexandria `ComputedStructureEntry`).
_DUMP_ID_KEYS = (*ID_COLUMNS, "entry_id", "mat_id")
#: The columns a table reader needs besides the ids (the rest of a wide table is never read).
_INPUT_COLUMNS = ("structure", "cif", "poscar", "scope", "n_atoms", "formula")
_COMPRESSED = (".gz", ".bz2", ".xz")
_CORPUS_SHARD = "train-*-of-*.parquet"
#: How a screening output is recognised (`writers.METADATA_KEY`, `writers.parts_folder`, `writers.meta_path`).
_OUTPUT_METADATA_KEY = b"cloud_crystal"
_PARTS_SUFFIX = ".parts"
_META_SUFFIX = ".meta.json"
#: Rows per record batch read from Parquet and CSV tables.
TABLE_BATCH_ROWS = 1024


@dataclass(frozen=True)
class InputItem:
    """One crystal of a screening run.

    Attributes:
        position (`int`): 0-based position over all inputs, in the order given; the key of resuming.
        source (`str`): the row's name (see the module docstring).
        item: what the `crystal-property` pipeline reads (a path, CIF/POSCAR text, a pymatgen dict or `Structure`,
            `{"scope": ..., "n_atoms": ...}`), or the `ScopeError` that reading it gave.
    """

    position: int
    source: str
    item: Any


def _clean(value: Any) -> Any:
    """NaN and missing -> None; numpy scalars -> Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _record_input(record: dict, source: str) -> Any:
    """A table row / JSON record -> a pipeline input (the `encode` command's reading, plus a SCOPE row's formula)."""
    item = _record_to_input(record, source)
    if isinstance(item, dict) and "scope" in item and record.get("formula") is not None:
        item = {**item, "formula": record["formula"]}
    return item


def _record_id(record: Any, id_column: str | None, dump: bool) -> str | None:
    if not isinstance(record, dict):
        return None
    if id_column is not None:
        value = _clean(record.get(id_column))
        return None if value is None else str(value)
    keys = _DUMP_ID_KEYS if dump else ID_COLUMNS
    data = record.get("data") if dump and isinstance(record.get("data"), dict) else {}
    for key in keys:
        for holder in (record, data):
            value = _clean(holder.get(key))
            if isinstance(value, (str, int)) and str(value):
                return str(value)
    return None


def _table_columns(
    names: Sequence[str], path: Path, id_column: str | None
) -> list[str] | StructureParseError:
    if id_column is not None and id_column not in names:
        return StructureParseError(
            f"table has no id column {id_column!r} (columns: {', '.join(names)})", str(path)
        )
    if not any(name in names for name in ("structure", "cif", "poscar", "scope")):
        return StructureParseError("table has no 'structure', 'cif', 'poscar' or 'scope' column", str(path))
    wanted = [*_INPUT_COLUMNS, *([id_column] if id_column else ID_COLUMNS)]
    return [name for name in names if name in wanted]


def _table_rows(path: Path, id_column: str | None, skip: int) -> Iterator[tuple[str, Any]]:
    """`(name, input)` per row of a Parquet or CSV table, in record batches. The first `skip` rows give
    `(name, None)`: only their id columns are read (a Parquet batch of skipped rows is never decoded)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        if path.suffix.lower() == ".parquet":
            parquet = pq.ParquetFile(path)
            columns = _table_columns(parquet.schema_arrow.names, path, id_column)
            if isinstance(columns, Exception):
                yield name, columns
                return
            batches = parquet.iter_batches(TABLE_BATCH_ROWS, columns=columns)
        else:
            header = pd.read_csv(path, nrows=0).columns
            columns = _table_columns(list(header), path, id_column)
            if isinstance(columns, Exception):
                yield name, columns
                return
            batches = pd.read_csv(
                path, usecols=columns, chunksize=TABLE_BATCH_ROWS,
                dtype={c: str for c in columns if c != "n_atoms"},
            )  # fmt: skip
        id_names = [c for c in columns if c in ([id_column] if id_column else ID_COLUMNS)]
        offset = 0
        for batch in batches:
            rows = len(batch)
            # Names from the id columns alone, read the same way for skipped and computed rows.
            ids = {c: (batch.column(c).to_pylist() if isinstance(batch, pa.RecordBatch) else list(batch[c]))
                   for c in id_names}  # fmt: skip
            names = [
                _record_id({c: values[index] for c, values in ids.items()}, id_column, dump=False)
                or f"{name}#{offset + index}"
                for index in range(rows)
            ]
            skipped = min(rows, max(0, skip - offset))
            yield from ((names[index], None) for index in range(skipped))
            if skipped < rows:
                frame = batch.to_pandas() if isinstance(batch, pa.RecordBatch) else batch
                for index, record in enumerate(frame.iloc[skipped:].to_dict(orient="records"), start=skipped):
                    record = {key: _clean(value) for key, value in record.items()}
                    yield names[index], _record_input(record, f"{name}#{offset + index}")
            offset += rows
    except (OSError, ValueError, UnicodeDecodeError) as error:  # pyarrow's errors subclass OSError/ValueError
        yield name, StructureParseError(f"unreadable table ({type(error).__name__}: {error})", name)


def _open_text(path: Path):
    from dataset_builders.corpus_sources import _open_text as open_text

    return open_text(path)


def _json_lines(path: Path, id_column: str | None) -> Iterator[tuple[str, Any]]:
    """JSON Lines, line by line (optionally compressed): records of structures, SCOPE rows or dump entries."""
    name = str(path)
    try:
        with _open_text(path) as handle:
            for _, source, record in jsonl_records(handle, name):
                if isinstance(record, Exception):
                    yield source, record
                else:
                    yield _record_id(record, id_column, dump=True) or source, _record_input(record, source)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        yield name, StructureParseError(f"unreadable file ({type(error).__name__}: {error})", name)


def _json_file(path: Path, id_column: str | None) -> Iterator[tuple[str, Any]]:
    """One JSON document (optionally compressed): a record, a list, `{"entries": [...]}` or `{"data": [...]}`."""
    import lzma

    name = str(path)
    try:
        with _open_text(path) as handle:
            data = json.load(handle)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, lzma.LZMAError) as error:
        yield name, StructureParseError(f"unreadable JSON ({type(error).__name__}: {error})", name)
        return
    if isinstance(data, dict):
        listed = next((data[key] for key in ("entries", "data") if isinstance(data.get(key), list)), None)
        data = listed if listed is not None else data
    if not isinstance(data, list):
        yield _record_id(data, id_column, dump=True) or name, _record_input(data, name)
        return
    for index, record in enumerate(data):
        source = f"{name}#{index}"
        yield _record_id(record, id_column, dump=True) or source, _record_input(record, source)


def _kind(path: Path) -> str:
    """`"table"`, `"jsonl"`, `"json"` or `"structure"` (CIF, POSCAR, extxyz...)."""
    suffix = path.suffix.lower()
    inner = path.with_suffix("").suffix.lower() if suffix in _COMPRESSED else suffix
    if suffix in TABLE_SUFFIXES:
        return "table"
    if inner == ".jsonl":
        return "jsonl"
    if inner == ".json":
        return "json"
    return "structure"


def _wanted(path: Path) -> bool:
    return is_structure_file(path) or _kind(path) in ("table", "jsonl", "json")


def _walk_sorted(folder: Path) -> Iterator[Path]:
    """The files below `folder` in `sorted(folder.rglob("*"))` order (paths compare by their parts, so this is a
    walk with each folder's entries sorted by name), holding one folder listing in memory at a time."""
    try:
        with os.scandir(folder) as listing:
            keyed = sorted((entry.name, entry) for entry in listing)
    except OSError:
        return
    for _, entry in keyed:
        if entry.name.startswith("."):
            continue  # hidden files and folders (.git, editors' files)
        if entry.is_dir():
            if entry.name.endswith(_PARTS_SUFFIX) and os.path.isfile(os.path.join(entry.path, "run.json")):
                continue  # the unfinished parts of a screening output (perhaps this run's own)
            yield from _walk_sorted(Path(entry.path))
        elif entry.is_file():
            yield Path(entry.path)


def _is_screening_output(path: Path) -> bool:
    """Whether `path` is what `predict --output` / `embed` wrote: a Parquet file with the run metadata, a CSV or
    JSON Lines file with its `.meta.json`, or that `.meta.json` itself. Such files in an input folder (the output
    written into the folder it screens, say) are results, not crystals."""
    import pyarrow.parquet as pq

    name = path.name
    if name.endswith(_META_SUFFIX):
        return path.with_name(name.removesuffix(_META_SUFFIX)).is_file()
    if path.suffix.lower() in (".csv", ".jsonl"):
        return path.with_name(name + _META_SUFFIX).is_file()
    if path.suffix.lower() == ".parquet":
        try:
            return _OUTPUT_METADATA_KEY in (pq.read_schema(path).metadata or {})
        except (OSError, ValueError):
            return False  # unreadable: read as an input, which reports it
    return False


def _folder_files(folder: Path) -> Iterator[Path]:
    """The input files of a folder, searched recursively in path order; a `cloud-crystal corpus` output folder gives
    its shards only (not `failures.jsonl` or the card). Screening outputs and their unfinished parts are left out
    ([`_is_screening_output`])."""
    shards = sorted(folder.glob(_CORPUS_SHARD))
    if shards:
        yield from shards
        return
    yield from (path for path in _walk_sorted(folder) if _wanted(path) and not _is_screening_output(path))


def _hub_rows(spec: str, id_column: str | None, skip: int) -> Iterator[tuple[str, Any]]:
    """Rows of a Hub dataset's `train` split, streamed; the first `skip` rows are read for their names only."""
    import datasets

    stream = datasets.load_dataset(spec.removeprefix(HUB_PREFIX), split="train", streaming=True)
    for index, record in enumerate(stream):
        record = {key: _clean(value) for key, value in record.items()}
        source = f"{spec}#{index}"
        name = _record_id(record, id_column, dump=False) or source
        yield name, None if index < skip else _record_input(record, source)


def _named_inputs(raw: str | Path, id_column: str | None, skip: int) -> Iterator[tuple[str, Any]]:
    """`(name, input or error)` for one command-line input; `None` in place of an input that is skipped."""
    if isinstance(raw, str) and raw.startswith(HUB_PREFIX):
        yield from _hub_rows(raw, id_column, skip)
        return
    path = Path(raw)
    if path.is_dir():
        given = 0
        for file in _folder_files(path):
            for named in _named_inputs(file, id_column, max(0, skip - given)):
                given += 1
                yield named
        if given == 0:
            yield (
                str(path),
                StructureParseError("folder holds no structure files, tables or dumps", str(path)),
            )
        return
    if not path.exists():
        yield str(path), StructureParseError("no such file or folder", str(path))
        return
    kind = _kind(path)
    if kind == "structure":
        yield from crystal_sources(path)  # one item per CIF data block or extxyz frame
        return
    if kind == "table":
        rows = _table_rows(path, id_column, skip)
    else:
        rows = _json_lines(path, id_column) if kind == "jsonl" else _json_file(path, id_column)
    yield from at_least_one_row(
        rows, str(path), skipped=skip > 0
    )  # skipped on resume: the row was written then


def iter_inputs(
    inputs: Iterable[str | Path], id_column: str | None = None, skip: int = 0
) -> Iterator[InputItem]:
    """Every crystal of `inputs` as an [`InputItem`], in order, streamed.

    Args:
        inputs: paths (files, folders) and `hub:ORG/NAME` datasets, as on the command line.
        id_column: the column (or record key) that names a row; default `id`, else `material_id`.
        skip: pass over the first `skip` crystals cheaply (a resumed run): their items are `None` and not read
            (a Parquet batch of skipped rows is not decoded, only its id columns), but they are still yielded
            with their positions and names, as in a full run.

    Cost: time linear in the number of crystals; memory bounded by one record batch (1,024 rows) of a table, or
    one JSON document for `.json` files.
    """
    position = 0
    for raw in inputs:
        # A table read from the start skips its rows itself; other inputs are cheap to pass over.
        for source, item in _named_inputs(raw, id_column, max(0, skip - position)):
            yield InputItem(position, source, None if position < skip else item)
            position += 1


def count_inputs(inputs: Iterable[str | Path]) -> int | None:
    """The number of crystals in `inputs` when it is cheap to know (for a progress bar's ETA), else `None`.

    Parquet: from the file metadata; CSV and JSON Lines: lines (an upper bound with quoted line breaks); CIF files
    count one crystal each (a CIF with several blocks makes this a lower bound); `.json` documents and Hub datasets:
    unknown.
    """
    import pyarrow.parquet as pq

    total = 0
    for raw in inputs:
        if isinstance(raw, str) and raw.startswith(HUB_PREFIX):
            return None
        path = Path(raw)
        files = _folder_files(path) if path.is_dir() else [path]
        for file in files:
            kind = _kind(file)
            if not file.exists():
                total += 1
            elif kind == "table" and file.suffix.lower() == ".parquet":
                try:
                    total += pq.ParquetFile(file).metadata.num_rows
                except (OSError, ValueError):
                    total += 1
            elif (kind == "table" or kind == "jsonl") and file.suffix.lower() not in _COMPRESSED:
                with open(file, "rb") as handle:
                    lines = sum(1 for line in handle if line.strip())
                total += max(1, lines - (kind == "table"))
            elif kind == "structure" and file.suffix.lower() not in (".extxyz", ".xyz"):
                total += 1
            else:
                return None
    return total
