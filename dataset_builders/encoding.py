"""Structure datasets -> model inputs (``input_ids``, ``attention_mask``, ``labels``) with a CLOUD tokenizer.

Three ways, all built on :class:`StructureEncoder`:

* :func:`encode_on_the_fly` on a map-style :class:`datasets.Dataset`: a ``with_transform`` that encodes each batch
  when it is read (nothing is stored). A row that cannot be encoded raises :class:`RowEncodingError` naming the row
  (a transform cannot drop rows without breaking the sampler's length); pass ``prevalidate=True`` (with a
  ``report``) to find and leave out such rows up front.
* :func:`encode_on_the_fly` on an :class:`datasets.IterableDataset` (streaming): a lazy ``.map`` that leaves out
  bad rows and records each one in the ``report`` (or raises without one).
* :func:`pre_encode`: encodes everything once (``num_proc`` worker processes) into an Arrow cache file whose name is
  a fingerprint of the *content* (every value of the used columns), the tokenizer (vocabulary, SCOPE version,
  tolerances, length limit), the encoder's code and the pymatgen/spglib versions. Changed data, settings or code
  give a new file, so a stale cache cannot be served.

The structure column may hold anything ``tokenization.load_structure`` reads (pymatgen dict JSON, CIF/POSCAR text,
a path) or ready SCOPE strings (e.g. ``load_cloud_example``'s ``scope`` column).

Example:
    >>> from tokenization import CloudTokenizerFast
    >>> from dataset_builders import load_materials_project
    >>> tok = CloudTokenizerFast.from_scope_version("v1")
    >>> ds = load_materials_project().filter(lambda r: r["n"] is not None).select(range(8))
    >>> encoded = encode_on_the_fly(ds, tok, label_columns="n")
    >>> sorted(encoded[0])
    ['attention_mask', 'input_ids', 'labels']
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import datasets

import tokenization
from tokenization import ScopeError, typed_error

from .reporting import FailedRow, FailureReport, MissingLabelError, RowEncodingError

logger = logging.getLogger(__name__)

ID_COLUMN_CANDIDATES = ("material_id", "source", "id")
ERROR_COLUMN = "__encoding_error__"
#: Bump when the encoder's output format changes (it is part of the cache fingerprint, as is its source code).
ENCODER_FORMAT_VERSION = 1


def _label_list(label_columns: str | Sequence[str] | None) -> list[str]:
    if label_columns is None:
        return []
    return [label_columns] if isinstance(label_columns, str) else list(label_columns)


class StructureEncoder:
    """Encodes batches of structure rows with a :class:`tokenization.CloudTokenizerFast`.

    Args:
        tokenizer: the CLOUD tokenizer (its SCOPE version and tolerances decide the encoding).
        structure_column: the column holding structures or SCOPE strings.
        label_columns: one column (-> a float ``labels``) or several (-> a list of floats ``labels``); a row with a
            missing (None / NaN) label fails with ``missing_label``.
        id_column: the column that names a row in error messages (default: the first of ``material_id``,
            ``source``, ``id`` present, else the row index).
        keep_scope: also return the SCOPE string as ``scope``.
    """

    def __init__(
        self,
        tokenizer,
        structure_column: str = "structure",
        label_columns: str | Sequence[str] | None = None,
        id_column: str | None = None,
        keep_scope: bool = False,
    ):
        self.tokenizer = tokenizer
        self.structure_column = structure_column
        self.label_columns = _label_list(label_columns)
        self.single_label = isinstance(label_columns, str)
        self.id_column = id_column
        self.keep_scope = keep_scope

    def output_columns(self) -> list[str]:
        """The model columns this encoder produces, in order."""
        columns = ["input_ids", "attention_mask"]
        columns += ["labels"] if self.label_columns else []
        columns += ["scope"] if self.keep_scope else []
        return columns

    def features(self, base: datasets.Features | None = None, with_error: bool = False) -> datasets.Features:
        """Arrow types of the output (fixed up front, so a batch of failed rows cannot change the schema)."""
        features = datasets.Features(dict(base or {}))
        features["input_ids"] = datasets.List(datasets.Value("int32"))
        features["attention_mask"] = datasets.List(datasets.Value("int8"))
        if self.label_columns:
            label = datasets.Value("float32")
            features["labels"] = label if self.single_label else datasets.List(label)
        if self.keep_scope:
            features["scope"] = datasets.Value("string")
        if with_error:
            features[ERROR_COLUMN] = datasets.Value("string")
        return features

    def _row_name(self, batch: dict, position: int, index: int | None) -> str:
        if self.id_column and self.id_column in batch:
            return f"{self.id_column}={batch[self.id_column][position]}"
        for column in ID_COLUMN_CANDIDATES:
            if column in batch:
                return f"{column}={batch[column][position]}"
        return f"row {index}" if index is not None else f"batch position {position}"

    def _labels(self, batch: dict, position: int, name: str):
        values = []
        for column in self.label_columns:
            if column not in batch:
                raise KeyError(f"label column {column!r} is not in the dataset (columns: {sorted(batch)})")
            value = batch[column][position]
            if value is None or (isinstance(value, float) and value != value):
                raise MissingLabelError(f"no value for label {column!r}", name)
            values.append(float(value))
        return values[0] if self.single_label else values

    def encode_row(self, batch: dict, position: int, index: int | None = None) -> dict:
        """Encode one row of a batch; raises a ``ScopeError`` (or ``RowEncodingError``) naming the row."""
        name = self._row_name(batch, position, index)
        item = batch[self.structure_column][position]
        try:
            scope = self.tokenizer.as_scope(item)
        except ScopeError as error:
            raise type(error)(error.message, f"{name} ({error.source})" if error.source else name) from error
        except (KeyError, TypeError, AttributeError) as error:
            raise RowEncodingError(
                f"cannot read the structure ({type(error).__name__}: {error})", name
            ) from error
        except Exception as error:  # MemoryError, or a bug: a typed failure of this row, the batch goes on
            raise typed_error(error, name) from error
        try:
            encoded = self.tokenizer(scope)
        except ScopeError as error:
            raise type(error)(error.message, name) from error
        row = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if self.label_columns:
            row["labels"] = self._labels(batch, position, name)
        if self.keep_scope:
            row["scope"] = scope
        return row

    def encode_batch(self, batch: dict, indices: Sequence[int] | None = None) -> tuple[dict, list[FailedRow]]:
        """Encode what can be encoded; return the output columns and the rows that failed."""
        size = len(batch[self.structure_column])
        output: dict[str, list] = {"input_ids": [], "attention_mask": []}
        if self.label_columns:
            output["labels"] = []
        if self.keep_scope:
            output["scope"] = []
        failures = []
        self.last_failed_positions = []
        for position in range(size):
            index = indices[position] if indices is not None else None
            try:
                row = self.encode_row(batch, position, index)
            except (ValueError, KeyError, TypeError) as error:
                failures.append(FailedRow.from_exception(self._row_name(batch, position, index), error))
                self.last_failed_positions.append(position)
                continue
            for key, value in row.items():
                output[key].append(value)
        return output, failures

    # -- set_transform / with_transform: all rows or an error naming the bad one -----------------------------
    def __call__(self, batch: dict) -> dict:
        output, failures = self.encode_batch(batch)
        if failures:
            first = failures[0]
            raise RowEncodingError(
                f"{first.message} [{first.error_type}]; {len(failures)} of {len(batch[self.structure_column])} rows "
                "in this batch failed. Use prevalidate=True with a FailureReport, or pre_encode(), to leave bad rows "
                "out and report them",
                first.source,
            )
        return output

    # -- datasets.map (pre-encoding, streaming): bad rows go to an error column -------------------------------
    def map_function(self, batch: dict, indices: Sequence[int] | None = None) -> dict:
        """For ``Dataset.map(batched=True, with_indices=True)``: one output row per input row, with an error column.

        Failed rows keep their place with empty ids and a JSON error in ``ERROR_COLUMN``; the caller filters and
        reports them (worker processes cannot share a report).
        """
        size = len(batch[self.structure_column])
        output: dict[str, list] = {"input_ids": [], "attention_mask": [], ERROR_COLUMN: []}
        if self.label_columns:
            output["labels"] = []
        if self.keep_scope:
            output["scope"] = []
        for position in range(size):
            index = indices[position] if indices is not None else None
            try:
                row = self.encode_row(batch, position, index)
                error = None
            except (ValueError, KeyError, TypeError) as exc:
                failure = FailedRow.from_exception(self._row_name(batch, position, index), exc)
                row = {
                    "input_ids": [],
                    "attention_mask": [],
                    "labels": (None if self.single_label else [None] * len(self.label_columns)),
                    "scope": None,
                }
                error = json.dumps(failure.to_dict())
            for key in output:
                output[key].append(error if key == ERROR_COLUMN else row[key])
        return output


def _check_columns(dataset, encoder: StructureEncoder) -> None:
    names = dataset.column_names
    if names is None:  # an IterableDataset of unknown schema: checked row by row
        return
    missing = [name for name in [encoder.structure_column, *encoder.label_columns] if name not in names]
    if missing:
        raise KeyError(f"columns {missing} are not in the dataset (columns: {names})")


def validate_rows(
    dataset: datasets.Dataset,
    tokenizer,
    structure_column: str = "structure",
    label_columns: str | Sequence[str] | None = None,
    id_column: str | None = None,
    num_proc: int | None = None,
    report: FailureReport | None = None,
) -> datasets.Dataset:
    """The rows of ``dataset`` that encode, with every other row recorded in ``report`` (raises without one).

    Encodes each row once (the full SCOPE cost) and keeps nothing of the encoding.
    """
    encoder = StructureEncoder(tokenizer, structure_column, label_columns, id_column)
    _check_columns(dataset, encoder)
    checked = dataset.map(
        encoder.map_function,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        features=encoder.features(with_error=True),
        desc="Validating structures",
    )
    errors = checked[ERROR_COLUMN]
    _report_errors(errors, report)
    good = [index for index, error in enumerate(errors) if error is None]
    return dataset.select(good) if len(good) != len(dataset) else dataset


def _report_errors(errors: Sequence[str | None], report: FailureReport | None) -> None:
    failures = [FailedRow(**_failure_kwargs(json.loads(error))) for error in errors if error is not None]
    if report is not None:
        report.rows_seen += len(errors)
        report.extend(failures)
    elif failures:
        first = failures[0]
        raise RowEncodingError(
            f"{first.message} [{first.error_type}] ({len(failures)} of {len(errors)} rows failed; pass a "
            "FailureReport to leave them out and report them)",
            first.source,
        )


def _failure_kwargs(record: dict) -> dict:
    return {
        "source": record["source"],
        "reason": record["reason"],
        "error_type": record["type"],
        "message": record["message"],
    }


def encode_on_the_fly(
    dataset: datasets.Dataset | datasets.IterableDataset,
    tokenizer,
    structure_column: str = "structure",
    label_columns: str | Sequence[str] | None = None,
    id_column: str | None = None,
    keep_scope: bool = False,
    prevalidate: bool = False,
    report: FailureReport | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Encode structures lazily, as rows are read.

    * Map-style: returns ``dataset.with_transform(...)`` (the transform encodes each batch on access; use
      ``TrainingArguments(remove_unused_columns=False)`` with it). Bad rows raise :class:`RowEncodingError` when
      read, unless ``prevalidate=True``, which encodes every row once now (``num_proc`` processes), leaves the bad
      ones out and records them in ``report``.
    * Streaming: returns a lazily mapped ``IterableDataset`` with only the model columns; bad rows are left out
      and recorded in ``report`` (in the process that reads the stream; set ``report.errors_path`` to also collect
      them from DataLoader workers), or raise without a report. For multi-process training, give the stream at least as
      many files as ranks (e.g. ``push_to_hub(..., num_shards=world_size)``): ``split_dataset_by_node`` then hands
      each rank whole files, while with fewer files it keeps every ``world_size``-th row *after* the map, so every
      rank would encode every row.
    """
    encoder = StructureEncoder(tokenizer, structure_column, label_columns, id_column, keep_scope)
    if isinstance(dataset, datasets.IterableDataset):
        _check_columns(dataset, encoder)

        def stream_function(batch: dict) -> dict:
            output, failures = encoder.encode_batch(batch)
            # A batched map that drops rows must return every input column at the new length.
            failed_positions = set(encoder.last_failed_positions)
            for column, values in batch.items():
                if column not in output:
                    output[column] = [v for i, v in enumerate(values) if i not in failed_positions]
            if report is None and failures:
                first = failures[0]
                raise RowEncodingError(f"{first.message} [{first.error_type}]", first.source)
            if report is not None:
                report.rows_seen += len(batch[structure_column])
                report.extend(failures)
            return output

        mapped = dataset.map(stream_function, batched=True, batch_size=64)
        return mapped.select_columns(encoder.output_columns())
    _check_columns(dataset, encoder)
    if prevalidate:
        dataset = validate_rows(
            dataset, tokenizer, structure_column, label_columns, id_column, num_proc, report
        )
    return dataset.with_transform(encoder)


# ----- pre-encoding with a content-addressed cache ---------------------------------------------------------


def _source_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of everything that decides the ids of a structure: vocabulary and post-processing, SCOPE version and
    tolerances, length limit and overflow policy, the tokenization package's code, and pymatgen/spglib versions."""
    package_dir = Path(tokenization.__file__).resolve().parent
    settings = {
        "backend": tokenizer.backend_tokenizer.to_str(),
        "scope_version": getattr(tokenizer, "scope_version", None),
        "symprec": getattr(tokenizer, "symprec", None),
        "angle_tolerance": getattr(tokenizer, "angle_tolerance", None),
        "overlength": getattr(tokenizer, "overlength", None),
        "model_max_length": tokenizer.model_max_length,
        "tokenization_code": _source_digest(list(package_dir.glob("*.py"))),
        "encoder_code": _source_digest([Path(__file__).resolve()]),
        "encoder_format": ENCODER_FORMAT_VERSION,
        "versions": {name: _version(name) for name in ("pymatgen", "spglib", "moyopy", "tokenizers")},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def dataset_content_fingerprint(
    dataset: datasets.Dataset, columns: Sequence[str], batch_size: int = 4096
) -> str:
    """sha256 over every value of ``columns`` (in row order) and their types: equal iff the content is equal."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[name, str(dataset.features[name])] for name in columns]).encode())
    table = dataset.with_format("arrow").select_columns(list(columns))
    for start in range(0, len(dataset), batch_size):
        batch = table[start : start + batch_size]
        for name in columns:
            digest.update(
                json.dumps(batch.column(name).to_pylist(), separators=(",", ":"), default=str).encode()
            )
    digest.update(str(len(dataset)).encode())
    return digest.hexdigest()


def encoding_fingerprint(
    dataset: datasets.Dataset,
    tokenizer,
    encoder: StructureEncoder,
    extra_columns: Sequence[str] = (),
) -> str:
    id_column = encoder.id_column or next(
        (c for c in ID_COLUMN_CANDIDATES if c in dataset.column_names), None
    )
    candidates = [encoder.structure_column, *encoder.label_columns, id_column, *extra_columns]
    columns = list(dict.fromkeys(c for c in candidates if c))
    settings = {
        "data": dataset_content_fingerprint(dataset, columns),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "encoder": [
            encoder.structure_column,
            encoder.label_columns,
            encoder.single_label,
            id_column,
            encoder.keep_scope,
        ],
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:40]


def default_cache_dir() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "cloud_encoded"


def pre_encode(
    dataset: datasets.Dataset,
    tokenizer,
    structure_column: str = "structure",
    label_columns: str | Sequence[str] | None = None,
    id_column: str | None = None,
    keep_columns: Sequence[str] = (),
    keep_scope: bool = False,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    report: FailureReport | None = None,
) -> datasets.Dataset:
    """Encode every row now (optionally in ``num_proc`` processes) and return a dataset of model inputs.

    Output columns: ``input_ids``, ``attention_mask``, ``labels`` (with ``label_columns``), ``scope`` (with
    ``keep_scope``), and ``keep_columns``. Rows that fail are left out and recorded in ``report``; without a report
    the call raises :class:`RowEncodingError` naming the first failed row and the count.

    The result is cached in ``cache_dir`` (default ``$HF_DATASETS_CACHE/cloud_encoded``) under a name derived from
    :func:`encoding_fingerprint`: the same content with the same tokenizer and code reuses the file; any change in
    a used value, a tokenizer setting or the encoder code encodes again.

    Example:
        >>> from tokenization import CloudTokenizerFast
        >>> from dataset_builders import load_cloud_example
        >>> tok = CloudTokenizerFast.from_scope_version("v1")
        >>> train = load_cloud_example("dielectric")["train"].select(range(16))
        >>> encoded = pre_encode(train, tok, structure_column="scope", label_columns="n", use_cache=False)
        >>> encoded.column_names
        ['input_ids', 'attention_mask', 'labels']
    """
    encoder = StructureEncoder(tokenizer, structure_column, label_columns, id_column, keep_scope)
    _check_columns(dataset, encoder)
    cache_file = None
    fingerprint = None
    if use_cache:
        fingerprint = encoding_fingerprint(dataset, tokenizer, encoder, extra_columns=keep_columns)
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        cache_file = str(directory / f"encoded-{fingerprint}.arrow")
    mapped = dataset.map(
        encoder.map_function,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        remove_columns=[name for name in dataset.column_names if name not in keep_columns],
        features=encoder.features({c: dataset.features[c] for c in keep_columns}, with_error=True),
        cache_file_name=cache_file,
        load_from_cache_file=use_cache,
        new_fingerprint=fingerprint,
        desc="Encoding structures",
    )
    errors = mapped[ERROR_COLUMN]
    _report_errors(errors, report)
    good = [index for index, error in enumerate(errors) if error is None]
    if len(good) != len(mapped):
        mapped = mapped.select(good)
    output_columns = encoder.output_columns()
    return mapped.select_columns([*output_columns, *[c for c in keep_columns if c not in output_columns]])


__all__ = [
    "StructureEncoder",
    "dataset_content_fingerprint",
    "encode_on_the_fly",
    "encoding_fingerprint",
    "pre_encode",
    "tokenizer_fingerprint",
    "validate_rows",
]
