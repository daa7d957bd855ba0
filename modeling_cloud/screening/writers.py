# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Screening output files: Parquet, JSON Lines or CSV by suffix, resumable after a kill at any moment.

How a run is written (one layout for every format, and for the Ray path):

1. Rows go to `<output>.parts/`, one Parquet file per chunk of consecutive input positions,
   `part-<start>-<stop>.parquet` (positions `start <= p < stop`, 12 digits each), beside `run.json` (what the run
   is: command, model, inputs, options; see [`ScreeningOutput`]). A part is written under a temporary name and
   renamed (`os.replace`, atomic on POSIX), so a part either exists whole or not at all: a SIGKILL at any moment
   leaves only finished parts (and perhaps a `*.tmp` that the next run deletes).
   The folder also holds `batching.json` (the chunk and batch size, which a resumed run keeps) and `lock`, which the
   running process holds (`fcntl.lockf`) so that a second run of the same output is refused.
2. Run again, the same command reads which positions the parts hold ([`ScreeningOutput.done_ranges`]) and computes
   only the others. Positions, not names, are the key: ids may repeat.
3. When every position is done, the parts are merged, in order, into a temporary file renamed to `<output>`
   (Parquet: one row group per part; JSON Lines / CSV: streamed, part by part), then `<output>.meta.json` is written
   beside a CSV or JSON Lines file, and the parts folder is removed. A kill during the merge leaves the parts and no
   `<output>`: the next run merges again. An `<output>` that exists is always complete.

A power cut can lose parts that the page cache had not written yet; the next run finds them missing (or unreadable,
and deletes them) and computes them again.

The metadata (`cloud_crystal` key of the Parquet schema metadata, and the `.meta.json` file) holds `run` (the resume
fingerprint), `columns` (the unit of each column, `null` where it has none), `versions` (of cloud-crystal,
transformers, torch, pymatgen, spglib), `rows`, `failed` and `created` (UTC, ISO 8601). Parquet fields also carry
their unit in the field metadata (`unit`).

Cost: memory is one part (a chunk of rows) at a time, whatever the number of inputs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "FORMATS",
    "METADATA_KEY",
    "OutputBusyError",
    "ResumeMismatchError",
    "ScreeningOutput",
    "output_format",
    "read_metadata",
    "read_rows",
]

#: Output suffix -> format.
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".csv": "csv"}
#: Key of the run's metadata in the Parquet schema metadata.
METADATA_KEY = b"cloud_crystal"
_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")


class ResumeMismatchError(ValueError):
    """The output (or its unfinished parts) was written by another run: another command, model, inputs or options.

    Attributes:
        path (`Path`): the output file.
        differences (`list[str]`): what differs, e.g. `"model: 'a' != 'b'"`.
    """

    def __init__(self, path: Path, differences: list[str]):
        self.path = path
        self.differences = differences
        parts = parts_folder(path)
        written = f"{path} exists and was" if path.exists() else f"the unfinished parts in {parts} were"
        found = " and ".join(str(kept) for kept in (path, parts) if kept.exists()) or "them"
        super().__init__(
            f"{written} written by another run ({'; '.join(differences)}); remove {found} or choose another --output"
        )


class OutputBusyError(ValueError):
    """Another process is writing the same output now (it holds the lock of its parts folder).

    Attributes:
        path (`Path`): the output file.
    """

    def __init__(self, path: Path):
        self.path = path
        super().__init__(
            f"another run is writing {path} now (it holds {parts_folder(path) / 'lock'}); wait for it to finish, "
            "or choose another --output"
        )


def output_format(path: str | Path) -> str:
    """`"parquet"`, `"jsonl"` or `"csv"` from the suffix of `path` (a `ValueError` for anything else)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: the output must end in {', '.join(FORMATS)} (the suffix chooses the format)"
        )
    return FORMATS[suffix]


def parts_folder(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _differences(expected: dict, found: dict | None) -> list[str]:
    if found is None:
        return ["it holds no cloud-crystal run metadata"]
    keys = sorted(set(expected) | set(found))
    return [
        f"{key}: {found.get(key)!r} != {expected.get(key)!r}"
        for key in keys
        if found.get(key) != expected.get(key)
    ]


def read_metadata(path: str | Path) -> dict | None:
    """The run metadata of a finished output (Parquet schema metadata, or `<output>.meta.json`), or `None`."""
    path = Path(path)
    if output_format(path) == "parquet":
        try:
            raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
        except (OSError, ValueError):
            return None
        return json.loads(raw) if raw else None
    meta = meta_path(path)
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else None


def read_rows(path: str | Path) -> list[dict]:
    """All rows of a finished output as dicts (for tests and small files; Parquet lists and JSON lists as lists)."""
    path = Path(path)
    kind = output_format(path)
    if kind == "parquet":
        return pq.read_table(path).to_pylist()
    if kind == "jsonl":
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    import pandas as pd

    return (
        pd.read_csv(path, keep_default_na=False, na_values=[""])
        .astype(object)
        .where(lambda frame: frame.notna(), None)
        .to_dict(orient="records")
    )


def _write_atomically(path: Path, write, folder: Path | None = None) -> None:
    """`write(temporary)`, then rename the temporary file (in `folder`, default beside `path`) to `path`."""
    temporary = (folder or path.parent) / f"{path.name}.{os.getpid()}.tmp"
    write(temporary)
    os.replace(temporary, path)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ScreeningOutput:
    """The output of one screening run, resumable (see the module docstring).

    Args:
        path (`str` or `Path`): `<output>.parquet`, `.jsonl` or `.csv`.
        schema (`pa.Schema`): the row schema (every part and the output have exactly these columns).
        run (`dict`): the resume fingerprint (JSON-serialisable): a run with another `run` refuses to continue this
            one ([`ResumeMismatchError`]).
        columns (`dict[str, str | None]`): the unit of each column, for the metadata.
        versions (`dict[str, str]`): package versions, for the metadata.
        batching (`dict`, *optional*): how the run groups crystals (`chunk_size`, `batch_size`): not part of the
            fingerprint, but recorded with the parts (`batching.json`) so that a resumed run can keep the grouping
            it started with (other batch shapes move values by float rounding).

    Attributes:
        complete (`bool`): the output already exists, finished, from the same run: nothing to do.
        batching (`dict` or `None`): the grouping recorded by the run that wrote the parts (else the one given).
        done_ranges (`list[tuple[int, int]]`): positions `[start, stop)` already written, sorted.

    Raises:
        ResumeMismatchError: `path` or its parts come from another run.
        OutputBusyError: another process is writing `path` now. A run holds an advisory lock (`fcntl.lockf`) on
            `<output>.parts/lock` from its start to the merge; the system releases it when the process ends, a
            SIGKILL included. Where `fcntl` is missing (Windows) there is no lock.
    """

    def __init__(
        self,
        path: str | Path,
        schema: pa.Schema,
        run: dict,
        columns: dict[str, str | None] | None = None,
        versions: dict[str, str] | None = None,
        batching: dict | None = None,
    ):
        self.path = Path(path)
        self.format = output_format(self.path)
        self.schema = schema
        self.run = json.loads(json.dumps(run))  # as it reads back
        self.columns = dict(columns or {})
        self.versions = dict(versions or {})
        self.parts = parts_folder(self.path)
        self.complete = False
        self.batching = dict(batching) if batching else None
        self.done_ranges: list[tuple[int, int]] = []
        self._open()

    # -- resume --------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.path.exists():
            found = read_metadata(self.path)
            differences = _differences(self.run, (found or {}).get("run") if found else None)
            if differences:
                raise ResumeMismatchError(self.path, differences)
            self.complete = True
            self.metadata = found
            # Parts left by a run killed after its merge, while removing them (not those of a run merging now).
            if self.parts.exists() and self._lock():
                self.close()
                shutil.rmtree(self.parts, ignore_errors=True)
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        if not self._lock():
            raise OutputBusyError(self.path)
        run_file = self.parts / "run.json"
        if run_file.is_file():
            differences = _differences(self.run, json.loads(run_file.read_text(encoding="utf-8")))
            if differences:
                raise ResumeMismatchError(self.path, differences)
        else:
            _write_atomically(
                run_file, lambda tmp: tmp.write_text(json.dumps(self.run, indent=1), encoding="utf-8")
            )
        for leftover in self.parts.glob("*.tmp"):
            leftover.unlink()
        batching_file = self.parts / "batching.json"
        if batching_file.is_file():
            self.batching = json.loads(batching_file.read_text(encoding="utf-8"))
        elif self.batching is not None:
            _write_atomically(
                batching_file, lambda tmp: tmp.write_text(json.dumps(self.batching), encoding="utf-8")
            )
        for part in self.parts.iterdir():
            match = _PART.match(part.name)
            if not match:
                continue
            start, stop = int(match.group(1)), int(match.group(2))
            try:
                rows = pq.read_metadata(part).num_rows
            except (OSError, ValueError):
                rows = -1
            if rows != stop - start:
                part.unlink()  # unreadable (a power cut): computed again
                continue
            self.done_ranges.append((start, stop))
        self.done_ranges.sort()
        for (_, stop), (start, _) in zip(self.done_ranges, self.done_ranges[1:], strict=False):
            if start < stop:
                raise ValueError(
                    f"{self.parts}: parts overlap at position {start}; remove the folder to start over"
                )

    def _lock(self) -> bool:
        """Take the parts folder's lock without waiting; `False` when another process holds it."""
        try:
            import fcntl
        except ImportError:  # no advisory locks here: one run per output is the user's to ensure
            return True
        handle = open(self.parts / "lock", "ab")  # noqa: SIM115 (held open for the run's lifetime)
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_handle = handle
        return True

    def close(self) -> None:
        """Release the run's lock without merging (a run that stops on an error; [`finish`] releases it too). The
        parts stay for the next run."""
        handle = getattr(self, "_lock_handle", None)
        if handle is not None:
            handle.close()  # releases the lock
            self._lock_handle = None

    @property
    def rows_done(self) -> int:
        return sum(stop - start for start, stop in self.done_ranges)

    def is_done(self, position: int) -> bool:
        """Whether `position` is already written (a binary search over `done_ranges`)."""
        import bisect

        index = bisect.bisect_right(self.done_ranges, (position, math.inf)) - 1
        return index >= 0 and self.done_ranges[index][0] <= position < self.done_ranges[index][1]

    def last_done(self) -> tuple[int, str] | None:
        """`(position, source)` of the last row written contiguously from position 0, to check that a resumed run
        reads the same inputs; `None` when nothing is written."""
        stop, start_of_last = 0, None
        for start, end in self.done_ranges:
            if start != stop:
                break
            start_of_last, stop = start, end
        if start_of_last is None:
            return None
        part = self.parts / f"part-{start_of_last:012d}-{stop:012d}.parquet"
        sources = pq.read_table(part, columns=["source"]).column("source")
        return stop - 1, sources[len(sources) - 1].as_py()

    # -- writing -------------------------------------------------------------------------------------------------
    def write_part(self, start: int, rows: list[dict] | pa.Table) -> None:
        """Write the rows of positions `start ... start + len(rows) - 1` as one part (atomically)."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=self.schema)
        if table.schema.remove_metadata() != self.schema.remove_metadata():
            table = table.select(self.schema.names).cast(self.schema)
        stop = start + table.num_rows
        if table.num_rows == 0:
            return
        name = self.parts / f"part-{start:012d}-{stop:012d}.parquet"
        _write_atomically(name, lambda tmp: pq.write_table(table, tmp))
        self.done_ranges.append((start, stop))
        self.done_ranges.sort()

    def _ordered_parts(self, total: int) -> list[Path]:
        expected = 0
        for start, stop in self.done_ranges:
            if start != expected:
                raise ValueError(
                    f"{self.parts}: positions {expected}..{start - 1} are missing; run again to finish"
                )
            expected = stop
        if expected != total:
            raise ValueError(
                f"{self.parts}: {expected} of {total} positions are written; run again to finish"
            )
        return [self.parts / f"part-{start:012d}-{stop:012d}.parquet" for start, stop in self.done_ranges]

    def finish(self, total: int, extra: dict | None = None) -> dict:
        """Merge the parts of positions `0 ... total - 1` into the output; returns the metadata written."""
        if self.complete:
            return self.metadata
        parts = self._ordered_parts(total)
        failed = 0
        if "error_reason" in self.schema.names:
            succeeded = sum(
                pq.read_table(part, columns=["error_reason"]).column("error_reason").null_count
                for part in parts
            )
            failed = total - succeeded
        metadata = {
            "format": "cloud-crystal screening output",
            "format_version": 1,
            "run": self.run,
            "columns": self.columns,
            "versions": self.versions,
            "rows": total,
            "failed": failed,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        if self.format == "parquet":
            fields = [
                field.with_metadata({"unit": self.columns[field.name]})
                if self.columns.get(field.name)
                else field
                for field in self.schema
            ]
            schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata).encode()})

            def merge(tmp: Path) -> None:
                with pq.ParquetWriter(tmp, schema) as writer:
                    for part in parts:
                        writer.write_table(pq.read_table(part).cast(schema))

        elif self.format == "jsonl":

            def merge(tmp: Path) -> None:
                with open(tmp, "w", encoding="utf-8") as handle:
                    for part in parts:
                        for row in pq.read_table(part).to_pylist():
                            row = {key: _json_value(value) for key, value in row.items()}
                            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

        else:

            def merge(tmp: Path) -> None:
                with open(tmp, "w", encoding="utf-8", newline="") as handle:
                    for index, part in enumerate(parts):
                        frame = pq.read_table(part).to_pandas()
                        for name in frame.columns:
                            if pa.types.is_list(self.schema.field(name).type) or pa.types.is_fixed_size_list(
                                self.schema.field(name).type
                            ):
                                frame[name] = [
                                    None if value is None else json.dumps([float(v) for v in value])
                                    for value in frame[name]
                                ]
                        frame.to_csv(handle, header=index == 0, index=False)

        if self.format != "parquet":
            _write_atomically(
                meta_path(self.path),
                lambda tmp: tmp.write_text(json.dumps(metadata, indent=1), encoding="utf-8"),
                self.parts,
            )
        _write_atomically(self.path, merge, self.parts)  # a merge killed midway leaves its file in the parts
        self.close()
        shutil.rmtree(self.parts)
        self.complete = True
        self.metadata = metadata
        return metadata
