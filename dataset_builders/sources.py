"""Turn common structure collections into ``datasets`` tables with one validated crystal per row.

Every loader returns a :class:`datasets.Dataset` (or an :class:`datasets.IterableDataset` with ``streaming=True``)
with the columns

* ``structure``: the crystal as compact JSON of pymatgen ``Structure.as_dict()`` (read it back with
  ``tokenization.load_structure(text)`` or :func:`dataset_builders.structure_from_json`);
* ``source``: where the row came from (``path``, ``path#3`` for the 4th record of a file, ``path:12`` for line 12);
* one column per label (scalars found in the records, ASE ``key_value_pairs`` / ``info``, or a label table).

Each structure goes through :func:`tokenization.load_structure`, so what ends up in a row is parseable, ordered,
made of real elements, without overlapping sites and with a sane lattice. A record that fails is never dropped
silently: without a ``report`` the first failure raises a typed :class:`tokenization.ScopeError` naming the record;
with a :class:`~dataset_builders.reporting.FailureReport` the record is left out and recorded there (and in its
``errors_path`` JSONL file, if set).

Example:
    >>> from dataset_builders.sources import dataset_from_files
    >>> report = FailureReport()
    >>> ds = dataset_from_files("my_cifs/", report=report)          # doctest: +SKIP
    >>> print(report.summary())                                     # doctest: +SKIP
    no failed rows
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow.parquet as pq

from tokenization import StructureParseError, load_structure
from tokenization.scope_defaults import DEFAULT_DISORDER
from tokenization.structure_files import iter_structure_inputs

from .reporting import FailureReport, MissingLabelError, handle_failure

STRUCTURE_COLUMN = "structure"
SOURCE_COLUMN = "source"
# Record keys that may hold the structure itself (never treated as labels).
_STRUCTURE_KEYS = ("structure", "cif", "poscar", "atoms")


def structure_json(structure) -> str:
    """Compact JSON of ``structure.as_dict()``: the ``structure`` column format."""
    return json.dumps(structure.as_dict(), separators=(",", ":"), allow_nan=False)


def _is_scalar_label(value: Any) -> bool:
    # bool, int, float, str, or a numpy scalar
    return isinstance(value, (bool, int, float, str)) or (
        hasattr(value, "item") and getattr(value, "ndim", None) == 0
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(
    source: str, structure_input: Any, labels: Mapping[str, Any], disorder: str = DEFAULT_DISORDER
) -> dict:
    """Validate one structure input; return the output row (raises a ScopeError naming ``source``)."""
    if isinstance(structure_input, Exception):
        raise structure_input
    structure = load_structure(structure_input, source=source, disorder=disorder)
    row = {STRUCTURE_COLUMN: structure_json(structure), SOURCE_COLUMN: source}
    for key, value in labels.items():
        row[key] = _plain(value)
    return row


def _collect(
    records: Iterable[tuple[str, Any, Mapping[str, Any]]],
    report: FailureReport | None,
    disorder: str = DEFAULT_DISORDER,
) -> Iterator[dict]:
    for source, structure_input, labels in records:
        if report is not None:
            report.rows_seen += 1
        try:
            yield _row(source, structure_input, labels, disorder)
        except (ValueError, KeyError, TypeError, OSError) as error:
            # ScopeError is a ValueError; the others come from malformed records in third-party readers.
            handle_failure(report, source, error)


def _build(
    make_records: Callable[[], Iterable[tuple[str, Any, Mapping[str, Any]]]],
    report: FailureReport | None,
    streaming: bool,
    label_columns: list[str] | None,
    disorder: str = DEFAULT_DISORDER,
) -> datasets.Dataset | datasets.IterableDataset:
    if streaming:
        columns = None if label_columns is None else [STRUCTURE_COLUMN, SOURCE_COLUMN, *label_columns]

        def generate():
            for row in _collect(make_records(), report, disorder):
                if columns is not None:
                    extra = set(row) - set(columns)
                    if extra:
                        raise ValueError(
                            f"{row[SOURCE_COLUMN]}: label columns {sorted(extra)} are not in label_columns={label_columns}"
                        )
                    row = {name: row.get(name) for name in columns}
                yield row

        return datasets.IterableDataset.from_generator(generate)
    rows = list(_collect(make_records(), report, disorder))
    names = [STRUCTURE_COLUMN, SOURCE_COLUMN]
    for row in rows:
        names.extend(name for name in row if name not in names)
    if label_columns is not None:
        unexpected = [name for name in names[2:] if name not in label_columns]
        if unexpected:
            raise ValueError(
                f"label columns {unexpected} found in the records are not in label_columns={label_columns}"
            )
        names = [STRUCTURE_COLUMN, SOURCE_COLUMN, *label_columns]
    return datasets.Dataset.from_dict({name: [row.get(name) for row in rows] for name in names})


# ----- label tables --------------------------------------------------------------------------------------


def _label_lookup(labels, id_column: str) -> dict[str, dict] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, Path)):
        labels = pd.read_csv(labels, dtype={id_column: str})
    if isinstance(labels, pd.DataFrame):
        if id_column not in labels.columns:
            raise ValueError(f"label table has no id column {id_column!r} (columns: {list(labels.columns)})")
        if labels[id_column].duplicated().any():
            duplicate = labels.loc[labels[id_column].duplicated(), id_column].iloc[0]
            raise ValueError(f"label table: id {duplicate!r} appears more than once")
        return {
            str(record.pop(id_column)): record
            for record in labels.astype(object).where(labels.notna(), None).to_dict("records")
        }
    return {str(key): dict(value) for key, value in dict(labels).items()}


def _file_id(source: str) -> str:
    """The id of a file-derived row in a label table: the file name without its (last) suffix."""
    name = Path(source.split("#")[0]).name
    return name.rsplit(".", 1)[0] if "." in name else name


# ----- loaders -------------------------------------------------------------------------------------------


def dataset_from_files(
    paths: str | Path | Iterable[str | Path],
    labels: str | Path | pd.DataFrame | Mapping[str, Mapping[str, Any]] | None = None,
    id_column: str = "id",
    report: FailureReport | None = None,
    streaming: bool = False,
    label_columns: list[str] | None = None,
    disorder: str = DEFAULT_DISORDER,
) -> datasets.Dataset | datasets.IterableDataset:
    """Crystals from CIF / POSCAR / CONTCAR / ``.vasp`` / pymatgen JSON / JSONL files and directories of them.

    Args:
        paths: files and/or directories (searched recursively; see ``tokenization.structure_files``).
        labels: optional label table: a CSV path, a DataFrame or a ``{id: {label: value}}`` mapping. The id of a
            file is its name without the suffix (``mp-149.cif`` -> ``mp-149``); a file without a label row is a
            ``missing_label`` failure.
        id_column: the id column of a CSV/DataFrame label table.
        report: collect failures here instead of raising on the first one.
        streaming: return a lazy :class:`datasets.IterableDataset`.
        disorder: ``"encode"`` (default) keeps partially occupied and mixed sites; ``"raise"`` reports such
            crystals as ``disordered_structure`` failures.
        label_columns: the label columns to expect (required to pin the schema of a stream whose first rows
            lack some labels).

    Example:
        >>> ds = dataset_from_files(["Si.cif", "poscars/"], labels="labels.csv")   # doctest: +SKIP
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    lookup = _label_lookup(labels, id_column)

    def records():
        for source, item in iter_structure_inputs(paths):
            if lookup is None:
                yield source, item, {}
                continue
            key = _file_id(source)
            if key not in lookup:
                yield (
                    source,
                    MissingLabelError(f"no row with {id_column}={key!r} in the label table", source),
                    {},
                )
            else:
                yield source, item, lookup[key]

    return _build(records, report, streaming, label_columns, disorder)


def _record_parts(record: Mapping[str, Any], structure_column: str, source: str) -> tuple[Any, dict]:
    if structure_column not in record:
        return StructureParseError(f"record has no {structure_column!r} field", source), {}
    labels = {
        key: value
        for key, value in record.items()
        if key != structure_column
        and key not in _STRUCTURE_KEYS
        and (value is None or _is_scalar_label(value))
    }
    return record[structure_column], labels


def dataset_from_records(
    path: str | Path,
    structure_column: str = "structure",
    report: FailureReport | None = None,
    streaming: bool = False,
    label_columns: list[str] | None = None,
    disorder: str = DEFAULT_DISORDER,
) -> datasets.Dataset | datasets.IterableDataset:
    """Crystals from a JSON list, a JSONL file or a Parquet file of records.

    The ``structure_column`` of each record holds a pymatgen ``Structure.as_dict()`` (as an object or JSON text) or
    CIF / POSCAR text; every other scalar field becomes a label column (nested values such as tensors are left out
    of the table, since they are not labels a regression head can use).

    Example:
        >>> ds = dataset_from_records("structures.jsonl", report=FailureReport())   # doctest: +SKIP
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".parquet"):
        raise ValueError(f"{path}: expected a .json, .jsonl or .parquet file")

    def records():
        if suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            offset = 0
            for batch in parquet.iter_batches(batch_size=1024):
                for index, record in enumerate(batch.to_pylist()):
                    source = f"{path}#{offset + index}"
                    structure_input, labels = _record_parts(record, structure_column, source)
                    yield source, structure_input, labels
                offset += batch.num_rows
            return
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                yield str(path), StructureParseError(f"unreadable JSON ({error})", str(path)), {}
                return
            items = enumerate(data if isinstance(data, list) else [data])
            numbered = ((f"{path}#{index}", record) for index, record in items)
        else:
            numbered = _jsonl_records(path)
        for source, record in numbered:
            if isinstance(record, Exception):
                yield source, record, {}
            elif not isinstance(record, dict):
                yield (
                    source,
                    StructureParseError(f"record of type {type(record).__name__} is not an object", source),
                    {},
                )
            else:
                structure_input, labels = _record_parts(record, structure_column, source)
                yield source, structure_input, labels

    return _build(records, report, streaming, label_columns, disorder)


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path}:{number}"
            try:
                yield source, json.loads(line)
            except json.JSONDecodeError as error:
                yield source, StructureParseError(f"line is not valid JSON ({error})", source)


def dataset_from_ase(
    path: str | Path,
    report: FailureReport | None = None,
    streaming: bool = False,
    label_columns: list[str] | None = None,
    index: str = ":",
    disorder: str = DEFAULT_DISORDER,
) -> datasets.Dataset | datasets.IterableDataset:
    """Crystals from an ASE database (``.db``) or an extended XYZ file (``.xyz`` / ``.extxyz``).

    Labels: for a database, each row's ``key_value_pairs`` plus its ``energy`` (when stored); for extxyz, the
    scalar entries of ``atoms.info`` plus the calculator's ``energy`` (when present). Only periodic crystals
    make sense for SCOPE: a frame without a cell fails with ``InvalidGeometryError`` (a degenerate lattice).

    Example:
        >>> ds = dataset_from_ase("relaxed.db")                        # doctest: +SKIP
    """
    import ase.db
    import ase.io

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".db", ".xyz", ".extxyz"):
        raise ValueError(f"{path}: expected an ASE database (.db) or an extended XYZ file (.xyz, .extxyz)")

    def records():
        if suffix == ".db":
            with ase.db.connect(str(path)) as database:
                for row in database.select():
                    source = f"{path}#id={row.id}"
                    labels = {
                        key: value for key, value in row.key_value_pairs.items() if _is_scalar_label(value)
                    }
                    if row.get("energy") is not None:
                        labels.setdefault("energy", row.energy)
                    yield source, row.toatoms(), labels
            return
        for frame_index, atoms in enumerate(ase.io.iread(str(path), index=index, format="extxyz")):
            source = f"{path}#{frame_index}"
            labels = {key: value for key, value in atoms.info.items() if _is_scalar_label(value)}
            if atoms.calc is not None and "energy" in atoms.calc.results:
                labels.setdefault("energy", float(atoms.calc.results["energy"]))
            yield source, atoms, labels

    return _build(records, report, streaming, label_columns, disorder)
