# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Training data: table files and bundled sets -> encoded `datasets.Dataset`s, splits, collators.

A data source is a file (`.csv`, `.jsonl`, `.json`, `.parquet`; `.csv.gz` and `.jsonl.gz` too) whose rows hold one
crystal each, in a `structure` column (pymatgen `Structure.as_dict()` as an object or JSON text, or CIF/POSCAR text)
or a `scope` column (SCOPE strings), plus label columns. A bundled set is named `bundled:NAME`, optionally sliced
(`bundled:materials-project[:500]`):

| name | rows | crystals | labels |
|---|---|---|---|
| `cloud-pretrain` | 10,000 | SCOPE v1 strings (the authors' pretraining sample) | none |
| `cloud-dielectric` / `cloud-dielectric-test` | 3,811 / 953 | SCOPE v1 | `n` (refractive index; MatBench) |
| `cloud-cv` / `cloud-cv-test` | 1,213 / 299 | SCOPE v1 | `cv` (J/(K mol), 300 K), `n_atoms` |
| `materials-project` | 6,317 | structures | `formation_energy_per_atom`, `band_gap`, `n`, ... (None when absent) |

The `*-test` sets are for final evaluation only (`--test`); the commands refuse them for training or validation.

Rows that cannot be used (unreadable crystals, SCOPE strings with tokens outside the vocabulary, missing or
non-numeric labels) stop the run with an error naming the file and row, or, with `skip_invalid_rows`, are left out
and listed in a report. No row is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch
from transformers import DataCollatorForLanguageModeling

from dataset_builders.encoding import ERROR_COLUMN, StructureEncoder
from dataset_builders.reporting import FailedRow, FailureReport, MissingLabelError, RowEncodingError
from tokenization import ScopeError

from .options import BUNDLED_SET_NAMES, TrainingConfigError

logger = logging.getLogger(__name__)

CRYSTAL_COLUMN = "crystal"
ROW_NAME_COLUMN = "source"
INPUT_COLUMN_CANDIDATES = ("structure", "scope")
_SLICE = re.compile(r"^(?P<name>.+?)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


# -- sources -------------------------------------------------------------------------------------------------


@dataclass
class BundledSet:
    """A data set shipped with `dataset_builders`, and what a model card must say about it."""

    description: str
    citations: tuple[str, ...]
    license: str
    evaluation_only: bool = False
    hub_dataset_id: str | None = None


BUNDLED_SETS: dict[str, BundledSet] = {
    "cloud-pretrain": BundledSet(
        "CLOUD authors' 10k SCOPE pretraining sample (OPTIMADE crystals)", ("cloud",), "mit"
    ),
    "cloud-dielectric": BundledSet(
        "MatBench matbench_dielectric, one fold (train+val), as SCOPE v1 strings by the CLOUD authors",
        ("cloud", "matbench", "materials_project", "petousis2017"),
        "mit",
        hub_dataset_id="matbench_dielectric",
    ),
    "cloud-dielectric-test": BundledSet(
        "MatBench matbench_dielectric, one fold (test), as SCOPE v1 strings by the CLOUD authors",
        ("cloud", "matbench", "materials_project", "petousis2017"),
        "mit",
        evaluation_only=True,
        hub_dataset_id="matbench_dielectric",
    ),
    "cloud-cv": BundledSet(
        "CLOUD authors' heat capacities at 300 K (train+val), SCOPE v1 strings",
        ("cloud", "materials_project"),
        "mit",
    ),
    "cloud-cv-test": BundledSet(
        "CLOUD authors' heat capacities at 300 K (test), SCOPE v1 strings",
        ("cloud", "materials_project"),
        "mit",
        evaluation_only=True,
    ),
    "materials-project": BundledSet(
        "Materials Project crystals with DFT labels, from the matminer 0.3.9 data sets",
        ("materials_project", "matminer"),
        "cc-by-4.0",
    ),
}

assert tuple(BUNDLED_SETS) == BUNDLED_SET_NAMES, "keep options.BUNDLED_SET_NAMES in step with BUNDLED_SETS"


def _load_bundled(name: str) -> pd.DataFrame:
    from dataset_builders import load_cloud_example, load_materials_project

    if name == "materials-project":
        return load_materials_project().to_pandas()
    base, _, split = name.removeprefix("cloud-").partition("-")
    example = load_cloud_example(base)
    if isinstance(example, datasets.DatasetDict):
        example = example["test" if split == "test" else "train"]
    return example.to_pandas()


@dataclass
class SourceTable:
    """One data source read into a DataFrame, with the column that holds its crystals."""

    spec: str
    frame: pd.DataFrame
    input_column: str
    bundled: BundledSet | None = None

    @property
    def display_name(self) -> str:
        return self.spec if self.bundled is not None else Path(self.spec).name


def _read_file(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    # Crystal columns stay text in CSV (no number or NaN guessing); JSON values keep their JSON types (a pymatgen
    # dict stays a dict).
    text_columns = {column: str for column in ("scope", "structure", "cif", "material_id")}
    try:
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=text_columns, keep_default_na=True)
        if name.endswith((".jsonl", ".jsonl.gz")):
            return pd.read_json(path, lines=True, dtype=False)
        if name.endswith(".json"):
            return pd.read_json(path, dtype=False)
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise TrainingConfigError(f"{path}: unreadable table ({type(error).__name__}: {error})") from error
    raise TrainingConfigError(
        f"{path}: unsupported file type; expected .csv, .csv.gz, .jsonl, .jsonl.gz, .json or .parquet"
    )


def read_source(spec: str, input_column: str | None = None, purpose: str = "training") -> SourceTable:
    """Read one `--train`/`--validation`/`--test` entry (a file or `bundled:NAME[a:b]`)."""
    bundled = None
    match = _SLICE.match(spec)
    base_spec, row_slice = (match["name"], match) if match and spec.startswith("bundled:") else (spec, None)
    if base_spec.startswith("bundled:"):
        name = base_spec.removeprefix("bundled:")
        if name not in BUNDLED_SETS:
            raise TrainingConfigError(
                f"{spec}: unknown bundled data set; choose one of {', '.join(BUNDLED_SETS)}"
            )
        bundled = BUNDLED_SETS[name]
        if bundled.evaluation_only and purpose != "test":
            raise TrainingConfigError(
                f"{spec} is for final evaluation only; pass it with --test, never for training or validation"
            )
        frame = _load_bundled(name)
        if row_slice is not None:
            start = int(row_slice["start"]) if row_slice["start"] else None
            stop = int(row_slice["stop"]) if row_slice["stop"] else None
            frame = frame.iloc[start:stop]
    else:
        path = Path(spec)
        if not path.is_file():
            raise TrainingConfigError(f"{spec}: no such file")
        frame = _read_file(path)
    frame = frame.reset_index(drop=True)
    if input_column is not None:
        if input_column not in frame.columns:
            raise TrainingConfigError(
                f"{spec}: no column {input_column!r} (columns: {', '.join(map(str, frame.columns))})"
            )
        column = input_column
    else:
        present = [name for name in INPUT_COLUMN_CANDIDATES if name in frame.columns]
        if not present:
            raise TrainingConfigError(
                f"{spec}: no `structure` or `scope` column (columns: {', '.join(map(str, frame.columns))}); "
                "name the crystal column with --input-column"
            )
        column = present[0]
    if len(frame) == 0:
        raise TrainingConfigError(f"{spec}: no rows")
    return SourceTable(spec=spec, frame=frame, input_column=column, bundled=bundled)


def read_sources(
    specs: Sequence[str], input_column: str | None = None, purpose: str = "training"
) -> list[SourceTable]:
    return [read_source(spec, input_column, purpose) for spec in specs]


def sources_hold_scope_strings(tables: Sequence[SourceTable]) -> bool:
    """True when any source gives SCOPE strings (whose version is fixed) rather than structures."""
    return any(table.input_column == "scope" for table in tables)


# -- rows -> model inputs --------------------------------------------------------------------------------------


@dataclass
class EncodingReport:
    """Rows read and rows left out, per purpose (training, validation, test)."""

    report: FailureReport = field(default_factory=FailureReport)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, purpose: str, read: int, kept: int) -> None:
        entry = self.counts.setdefault(purpose, {"read": 0, "kept": 0})
        entry["read"] += read
        entry["kept"] += kept


def _crystal_text(value: Any) -> Any:
    # Arrow needs one type per column: pymatgen dicts (JSONL/Parquet objects) travel as their JSON text, which
    # `tokenization.load_structure` reads back.
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _float_or_error(value: Any, column: str, row_name: str) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise MissingLabelError(f"no value for {column!r}", row_name)
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise MissingLabelError(f"{column!r} is not a number: {value!r}", row_name) from error
    if not math.isfinite(number):
        raise MissingLabelError(f"{column!r} is not finite: {value!r}", row_name)
    return number


def _fail(report: EncodingReport | None, failure: FailedRow) -> None:
    if report is None:
        raise RowEncodingError(
            f"{failure.message} [{failure.error_type}]; fix the row or pass --skip-invalid-rows to leave such rows "
            "out (they are then listed in OUTPUT_DIR/skipped_rows.jsonl)",
            failure.source,
        )
    report.report.extend([failure])


def tables_to_rows(
    tables: Sequence[SourceTable],
    numeric_columns: dict[str, str],
    report: EncodingReport | None,
) -> pd.DataFrame:
    """One DataFrame with the crystal, a row name and the numeric columns (`{output name: source column}`).

    Rows lacking a crystal or a numeric value are failures (raised, or recorded in `report`).
    """
    parts = []
    for table in tables:
        frame = table.frame
        missing = [column for column in numeric_columns.values() if column not in frame.columns]
        if missing:
            raise TrainingConfigError(
                f"{table.spec}: no column(s) {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))})"
            )
        rows: dict[str, list] = {
            CRYSTAL_COLUMN: [],
            ROW_NAME_COLUMN: [],
            **{name: [] for name in numeric_columns},
        }
        for index, crystal in enumerate(frame[table.input_column].tolist()):
            row_name = f"{table.display_name} row {index}"
            try:
                text = _crystal_text(crystal)
                if text is None or (isinstance(text, str) and not text.strip()):
                    raise MissingLabelError(f"empty {table.input_column!r} cell", row_name)
                values = {
                    name: _float_or_error(frame[column].iat[index], column, row_name)
                    for name, column in numeric_columns.items()
                }
            except ScopeError as error:
                _fail(report, FailedRow.from_exception(row_name, error))
                continue
            rows[CRYSTAL_COLUMN].append(text)
            rows[ROW_NAME_COLUMN].append(row_name)
            for name, value in values.items():
                rows[name].append(value)
        parts.append(pd.DataFrame(rows))
    return pd.concat(parts, ignore_index=True)


def encode_rows(
    rows: pd.DataFrame,
    tokenizer,
    purpose: str,
    report: EncodingReport | None,
    num_proc: int = 1,
) -> datasets.Dataset:
    """Encode the crystals of `rows` (structures -> SCOPE with the tokenizer's version; SCOPE strings as they are).

    Returns a `datasets.Dataset` with `input_ids`, `attention_mask`, `length`, `scope`, the row name and every other
    column of `rows`. A row whose SCOPE string holds a token outside the vocabulary (`[UNK]`) is a failure: it
    usually means the strings are of another SCOPE version than the tokenizer.
    """
    dataset = datasets.Dataset.from_pandas(rows, preserve_index=False)
    encoder = StructureEncoder(
        tokenizer, structure_column=CRYSTAL_COLUMN, id_column=ROW_NAME_COLUMN, keep_scope=True
    )
    encoded = dataset.map(
        encoder.map_function,
        batched=True,
        with_indices=True,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=[CRYSTAL_COLUMN],
        desc=f"Encoding {purpose} crystals",
    )
    errors = encoded[ERROR_COLUMN]
    input_ids = encoded["input_ids"]
    row_names = encoded[ROW_NAME_COLUMN]
    unk_id = tokenizer.unk_token_id
    keep = []
    for index, (error, ids) in enumerate(zip(errors, input_ids, strict=True)):
        if error is not None:
            record = json.loads(error)
            failure = FailedRow(
                source=row_names[index],
                reason=record["reason"],
                error_type=record["type"],
                message=record["message"],
            )
            _fail(report, failure)
            continue
        if unk_id is not None and unk_id in ids:
            unknown = [
                token
                for token in encoded[index]["scope"].split()
                if tokenizer.convert_tokens_to_ids(token) == unk_id
                and token not in tokenizer.all_special_tokens
            ]
            _fail(
                report,
                FailedRow(
                    source=row_names[index],
                    reason="unknown_token",
                    error_type="UnknownTokenError",
                    message=(
                        f"the SCOPE string has tokens outside the {tokenizer.scope_version} vocabulary "
                        f"({' '.join(unknown[:5]) or '[UNK]'}); are the strings of another SCOPE version? "
                        "(--scope-version)"
                    ),
                ),
            )
            continue
        keep.append(index)
    if report is not None:
        report.record(purpose, len(errors), len(keep))
    encoded = encoded.remove_columns([ERROR_COLUMN])
    if len(keep) != len(encoded):
        encoded = encoded.select(keep)
    if len(encoded) == 0:
        raise TrainingConfigError(f"no usable {purpose} rows left (see the errors above)")
    return encoded.add_column("length", [len(ids) for ids in encoded["input_ids"]])


# -- splits -----------------------------------------------------------------------------------------------------


def holdout_split(num_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) index arrays: a seeded random `fraction` of the rows for validation."""
    order = np.random.RandomState(seed).permutation(num_rows)
    num_validation = max(1, round(num_rows * fraction))
    if num_validation >= num_rows:
        raise TrainingConfigError(f"{num_rows} rows are too few to hold out {fraction:.0%} for validation")
    return np.sort(order[num_validation:]), np.sort(order[:num_validation])


def target_statistics(values: np.ndarray, names: Sequence[str]) -> tuple[list[float], list[float]]:
    """Means and (population) standard deviations of the training targets, for z-scoring inside the model."""
    means = [float(value) for value in np.mean(values, axis=0)]
    stds = [float(value) for value in np.std(values, axis=0)]
    for name, std in zip(names, stds, strict=True):
        if not std > 0:
            raise TrainingConfigError(f"target {name!r} is constant in the training data; nothing to learn")
    return means, stds


# -- collators --------------------------------------------------------------------------------------------------


class PropertyCollator:
    """Pads token ids dynamically (to the longest in the batch) and stacks the float columns.

    `labels` becomes `(batch, num_targets)`; `n_atoms` `(batch,)`; `temperatures` `(batch, 1)` (one temperature per
    crystal, which [`CloudDebyeModel`] also uses for its labels).
    """

    float_columns = ("labels", "n_atoms", "temperatures")

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokens = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        batch = dict(
            self.tokenizer.pad(
                tokens, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
            )
        )
        for name in self.float_columns:
            if name in features[0]:
                values = torch.tensor([f[name] for f in features], dtype=torch.float32)
                if name == "temperatures":
                    values = values.reshape(-1, 1)
                batch[name] = values
        return batch


class ReproducibleMaskingCollator(DataCollatorForLanguageModeling):
    """`DataCollatorForLanguageModeling` (15 % of tokens; 80 % `[MASK]`, 10 % random, 10 % kept) with masks that
    are a pure function of (seed, epoch, example indices).

    The stock collator draws from one generator that advances with every batch; a run resumed from a checkpoint
    skips the batches already seen without calling the collator, so its masks would differ from the uninterrupted
    run. Seeding each batch from the indices of its examples and the epoch (set by [`MaskingEpochCallback`])
    makes a resumed run see the same masks, on any number of processes.

    Example:

    ```python
    >>> from tokenization import CloudTokenizerFast
    >>> tok = CloudTokenizerFast.from_scope_version("v1")
    >>> collator = ReproducibleMaskingCollator(tok, mlm_probability=0.5, seed=0)
    >>> rows = [{"input_ids": ids, "example_index": i}
    ...         for i, ids in enumerate(tok(["0 0 0 | 1a | Si 1.0", "1 0 0 | 1a 2i | Na 0.33 Cl 0.67"])["input_ids"])]
    >>> first, again = collator([dict(r) for r in rows]), collator([dict(r) for r in rows])
    >>> bool((first["input_ids"] == again["input_ids"]).all())
    True

    ```
    """

    def __init__(
        self, tokenizer, mlm_probability: float = 0.15, seed: int = 42, pad_to_multiple_of: int | None = None
    ):
        super().__init__(
            tokenizer=tokenizer,
            mlm=True,
            mlm_probability=mlm_probability,
            seed=seed,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors="pt",
        )
        self.epoch = 0

    def batch_seed(self, example_indices: Sequence[int]) -> int:
        key = np.asarray([self.seed, self.epoch, *example_indices], dtype=np.int64).tobytes()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & (2**63 - 1)

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        indices = [int(example["example_index"]) for example in examples]
        tokens = [{"input_ids": example["input_ids"]} for example in examples]
        self.generator = torch.Generator().manual_seed(self.batch_seed(indices))
        self._generator_pid = os.getpid()
        return super().torch_call(tokens)
