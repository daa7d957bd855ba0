# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The screening loop: stream inputs -> encode (in worker processes) -> model on encoded batches -> rows -> file.

[`Screener`] turns crystals into output rows with one `crystal-property` pipeline, in two steps that any driver can
call (this module's loop, and the Ray path): `encode` (the pipeline's `preprocess`: read, validate, symmetry, SCOPE,
token ids; plain picklable values out), `rows` (the pipeline's `forward_features` and `postprocess` on a chunk of
encoded crystals, then one flat row per crystal). The pipeline stays the one place where a crystal becomes a
prediction; this module only schedules it and lays out the rows.

[`run_screening`] is the loop behind `cloud-crystal predict --output` and `cloud-crystal embed`:

- inputs are streamed ([`iter_inputs`]) in chunks: the positions of the aligned blocks `[k * chunk_size,
  (k + 1) * chunk_size)` not written yet, so a resumed run forms the same batches as an uninterrupted one;
- with `num_proc` N > 1, N forked worker processes encode the chunks (at most 2N chunks in flight) while the main
  process runs the model on the chunks already encoded; a crystal that kills its worker (a crash in a native
  library) becomes a `worker_died` row and the run goes on. With N = 1 everything runs in the calling process
  (where such a crash ends the run; run again to resume);
- rows are written in input order, one part per chunk ([`ScreeningOutput`]), so a run killed at any moment resumes
  where it stopped, and memory stays flat in the number of inputs (a few chunks are held at once);
- a progress bar (tqdm, on stderr) shows the rate and, when the number of inputs is cheap to count, the ETA.

Row layout ([`Screener.schema`]): `source`, `formula` (reduced), `space_group` (ITA number, read off the SCOPE
string), `n_atoms` (atoms in the input cell), `scope`; then

- `predict`, regression: one column per target, named after it, in `config.target_units`, and `<name>_std` beside
  it for a seed ensemble (the members' population standard deviation, same unit);
- `predict`, classification: `<name>` (bool) and `<name>_score` (probability);
- `predict`, Debye: `theta_debye` (K), then `<field>@<T>K` for each thermodynamic field and temperature asked, and
  `basis` (the mole of each row's values: `formula_unit`, `atom` or `cell`);
- `embed`: `embedding`, the pooled crystal embedding (float32, `config.hidden_size` values; for an ensemble the mean
  of the members' pooled embeddings, [`pooled_embedding`]);

then `notes` (what a reader changed, `"; "`-joined) and `error_reason`, `error_type`, `error_message` (`null` unless
the crystal failed; then the value columns are `null`). Exactly one row per input crystal, in input order.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..scope_defaults import DEFAULT_DISORDER
from .inputs import InputItem, count_inputs, iter_inputs
from .writers import ResumeMismatchError, ScreeningOutput

__all__ = [
    "TASKS",
    "Screener",
    "ScreeningSummary",
    "embed_to_file",
    "model_reference",
    "package_versions",
    "pooled_embedding",
    "predict_to_file",
    "run_screening",
    "space_group_from_scope",
]

logger = logging.getLogger(__name__)

TASKS = ("predict", "embed")
#: Crystals per chunk (one encode task, one part of the output) unless the caller says otherwise.
DEFAULT_CHUNK_SIZE = 256
_V2_GROUP = re.compile(r"^SG(\d{1,3}) ")
_ERROR_COLUMNS = ("error_reason", "error_type", "error_message")
_V1_GROUPS: dict[str, int] | None = None


def space_group_from_scope(scope: str | None) -> int | None:
    """The ITA space-group number a SCOPE string states: v2's leading `SG<n>` token, or v1's generator encoding
    (the authors' table, one string per group: `tokenization.scope_tables.GENERATOR_STRINGS`).

    Example:

    ```python
    >>> space_group_from_scope("SG225 Na 0.5 4a Cl 0.5 4b")
    225
    >>> space_group_from_scope("1 4 b O O O c O O O d O O O e O O O 0 | 1a 1b 3d | Sr 0.2 Ti 0.2 O 0.6")
    221

    ```
    """
    global _V1_GROUPS
    if not scope:
        return None
    match = _V2_GROUP.match(scope)
    if match:
        return int(match.group(1))
    if " | " not in scope:
        return None
    if _V1_GROUPS is None:
        from tokenization.scope_tables import GENERATOR_STRINGS

        _V1_GROUPS = {generators: number for number, generators in GENERATOR_STRINGS.items()}
    return _V1_GROUPS.get(scope.split(" | ", 1)[0].replace(" ", ""))


def pooled_embedding(result: dict) -> np.ndarray | None:
    """The pooled crystal embedding of one pipeline result (`pipeline(..., return_embeddings=True)`), float32 of
    shape `(hidden_size,)`: a single model's `[CLS]`-pooled vector, or for a seed ensemble (whose result holds one
    vector per member) the mean of the members' vectors. `None` for a failed item."""
    embedding = result.get("embedding")
    if embedding is None:
        return None
    vectors = np.asarray(embedding, dtype=np.float32)
    return vectors.mean(axis=0, dtype=np.float32) if vectors.ndim == 2 else vectors


def package_versions() -> dict[str, str]:
    """Versions of the packages that make a prediction, for the output metadata."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("cloud-crystal", "transformers", "torch", "tokenizers", "pymatgen", "spglib", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


#: Bytes read from each end of an input file for its content digest.
_DIGEST_SPAN = 1 << 20


def inputs_digest(inputs: Sequence[str | Path]) -> str | None:
    """sha256 over each input given as a file (not folders or Hub datasets): its path as given, size, modification
    time (ns) and its first and last MiB. Part of the resume fingerprint, so that a table rewritten in place (the
    next round of a generative model's candidates, say) is neither resumed into nor taken for the finished output
    of its previous content; the first and last MiB catch a rewrite within the file system's timestamp granularity.
    `None` when no input is a file. Cost: one `stat` and at most 2 MiB read per input file."""
    digest, files = hashlib.sha256(), 0
    for raw in inputs:
        path = Path(raw)
        if not path.is_file():
            continue
        files += 1
        stat = path.stat()
        digest.update(f"{raw}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read(_DIGEST_SPAN))
                if stat.st_size > 2 * _DIGEST_SPAN:
                    handle.seek(-_DIGEST_SPAN, os.SEEK_END)
                    digest.update(handle.read(_DIGEST_SPAN))
                else:
                    digest.update(handle.read())
        except OSError as error:  # unreadable: its rows are failure rows, and the reason is part of the run
            digest.update(type(error).__name__.encode())
    return digest.hexdigest() if files else None


def model_reference(model: str | Path) -> str:
    """How the output metadata names a model: a local checkpoint folder as its absolute path (so that `similar`
    finds the index's model from any working directory, and Ray workers from theirs), a Hub id as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model)


def model_sha256(model) -> str:
    """sha256 over the model's parameters and buffers (names, shapes, float32 values): the model's identity in the
    resume fingerprint, whatever folder or repo it was loaded from. Time: one pass over the weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").float().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Screener:
    """Crystals -> output rows with one `crystal-property` pipeline (see the module docstring for the columns).

    Args:
        pipeline ([`CrystalPropertyPipeline`]): the loaded pipeline.
        task (`str`): `"predict"` (property columns) or `"embed"` (the pooled embedding).
        temperatures (`list[float]`, *optional*): Debye models: temperatures in K (default `config.debye_temperatures`).
        basis (`str`): Debye models: `"formula_unit"`, `"atom"` or `"cell"` (see the pipeline).
        disorder (`str`, *optional*): `"encode"` or `"raise"` for partially occupied sites (the pipeline's default).
        batch_size (`int`): crystals per forward pass.
        model_name (`str`, *optional*): the model's folder or Hub id, recorded in the metadata.

    Raises:
        ValueError: an unknown task, or `embed` with a model that cannot give embeddings.
    """

    def __init__(
        self,
        pipeline,
        task: str = "predict",
        temperatures: Sequence[float] | None = None,
        basis: str = "formula_unit",
        disorder: str | None = None,
        batch_size: int = 32,
        model_name: str | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.pipeline = pipeline
        self.task = task
        self.config = pipeline.model.config
        self.batch_size = batch_size
        self.model_name = (
            model_name or getattr(self.config, "_name_or_path", None) or type(pipeline.model).__name__
        )
        self.basis = basis
        self.disorder = disorder or DEFAULT_DISORDER  # spelled out, so the API and the CLI make the same run
        self.temperatures = (
            [float(t) for t in (temperatures or self.config.debye_temperatures)]
            if pipeline.is_debye
            else None
        )
        options: dict[str, Any] = {"errors": "return", "disorder": self.disorder}
        if pipeline.is_debye:
            options["basis"] = basis
            options["temperatures"] = self.temperatures
        if task == "embed":
            options["return_embeddings"] = True
        self.call_options = options
        self._params = pipeline._sanitize_parameters(**options)
        self.columns = self._columns()
        self.schema = pa.schema([(name, kind) for name, kind, _ in self.columns])
        self.units = {name: unit for name, _, unit in self.columns}

    # -- layout --------------------------------------------------------------------------------------------------
    def _columns(self) -> list[tuple[str, pa.DataType, str | None]]:
        columns: list[tuple[str, pa.DataType, str | None]] = [
            ("source", pa.string(), None),
            ("formula", pa.string(), None),
            ("space_group", pa.int32(), None),
            ("n_atoms", pa.float64(), "atoms per input cell"),
            ("scope", pa.string(), None),
        ]
        config, pipeline = self.config, self.pipeline
        if self.task == "embed":
            columns.append(("embedding", pa.list_(pa.float32(), config.hidden_size), None))
        elif pipeline.is_debye:
            from ..modeling_cloud import CloudDebyeOutput

            columns.append(("theta_debye", pa.float64(), CloudDebyeOutput.unit("theta_debye")))
            for field in CloudDebyeOutput.THERMODYNAMIC_FIELDS:
                for temperature in self.temperatures:
                    columns.append(
                        (f"{field}@{temperature:g}K", pa.float64(), CloudDebyeOutput.unit(field, self.basis))
                    )
            columns.append(("basis", pa.string(), None))
        elif pipeline.architecture == "CloudForPropertyClassification":
            for name, unit in zip(config.target_names, config.target_units, strict=True):
                columns += [(name, pa.bool_(), unit), (f"{name}_score", pa.float64(), "probability")]
        elif pipeline.has_trained_head:
            ensemble = getattr(config, "num_ensemble_members", 1) > 1
            for name, unit in zip(config.target_names, config.target_units, strict=True):
                columns.append((name, pa.float64(), unit))
                if ensemble:
                    columns.append((f"{name}_std", pa.float64(), unit))
        else:
            raise ValueError(
                f"{self.model_name} has no trained property head ({pipeline.architecture}): use `embed` for its "
                "embeddings"
            )
        columns += [("notes", pa.string(), None), *((name, pa.string(), None) for name in _ERROR_COLUMNS)]
        return columns

    def run_fingerprint(self, inputs: Sequence[str | Path], id_column: str | None) -> dict:
        """What makes two runs the same run (a resumed output must match it): task, model weights, inputs as
        given (and the content of each input file, [`inputs_digest`]), id column and the
        options that change values."""
        options = {key: value for key, value in self.call_options.items() if key not in ("errors",)}
        return {
            "command": self.task,
            "model_sha256": model_sha256(self.pipeline.model),
            "inputs": [str(raw) for raw in inputs],
            "inputs_sha256": inputs_digest(inputs),
            "id_column": id_column,
            "options": options,
        }

    # -- the three steps -----------------------------------------------------------------------------------------
    def encode(self, item: Any) -> dict[str, Any]:
        """The pipeline's `preprocess` of one crystal input, as plain picklable values (numpy arrays for tensors,
        no exception objects), so it can cross a process boundary. Never raises for a bad crystal: the failure
        is in the result (`"failure"`)."""
        features = self.pipeline.preprocess(item, **self._params[0])
        if features["crystals"] is not None:  # several crystals in one table cell or record
            count = len(features["crystals"])
            features["crystals"] = None
            features["failure"] = {
                "reason": "parse_error",
                "type": "StructureParseError",
                "message": f"holds {count} crystals; give each its own row or file",
            }
        if features["failure"] is not None:
            features["failure"] = {**features["failure"], "cause": None}
        return {key: value.numpy() if hasattr(value, "numpy") else value for key, value in features.items()}

    def failed_features(self, reason: str, error_type: str, message: str) -> dict[str, Any]:
        """What `encode` returns for a crystal that could not be encoded outside the pipeline's own checks (a dead
        encoding process): `rows` turns it into a failure row with this reason, type and message."""
        # The pipeline's own features of an item it refuses (an exception in place of a crystal), then this failure.
        features = self.encode(ValueError(message))
        features["failure"] = {"reason": reason, "type": error_type, "message": message, "cause": None}
        return features

    def encode_chunk(self, items: Sequence[InputItem]) -> list[dict[str, Any] | None]:
        """`encode` for each item that holds a crystal; `None` for an item that is already an error."""
        return [None if isinstance(item.item, Exception) else self.encode(item.item) for item in items]

    def rows(self, items: Sequence[InputItem], encoded: Sequence[dict[str, Any] | None]) -> list[dict]:
        """One output row per item, in order: the model runs on the encoded ones (`forward_features`), then
        `postprocess` and the row layout."""
        import torch

        features = [
            {
                key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                for key, value in one.items()
            }
            for one in encoded
            if one is not None
        ]
        _, forward_params, postprocess_params = self._params
        outputs = iter(self.pipeline.forward_features(features, self.batch_size, forward_params))
        rows = []
        for item, one in zip(items, encoded, strict=True):
            if one is None:
                result = {"error": _failure_record(item.item, item.source)}
            else:
                result = self.pipeline.postprocess(next(outputs), **postprocess_params)
            rows.append(self.row(item.source, result))
        return rows

    def row(self, source: str, result: dict) -> dict:
        """The flat output row of one pipeline result (see the module docstring)."""
        row: dict[str, Any] = dict.fromkeys(self.schema.names)
        row["source"] = source
        if "error" in result:
            error = result["error"]
            row.update(error_reason=error["reason"], error_type=error["type"], error_message=error["message"])
            return row
        scope = result.get("scope")
        row.update(
            formula=result.get("formula"),
            scope=scope,
            space_group=space_group_from_scope(scope),
            n_atoms=result.get("n_atoms"),
            notes="; ".join(result["notes"]) if result.get("notes") else None,
        )
        if self.task == "embed":
            embedding = pooled_embedding(result)
            row["embedding"] = None if embedding is None else embedding.tolist()
            return row
        for prop in result["properties"]:
            name = prop["name"]
            if "temperatures" in prop:
                for temperature, value in zip(prop["temperatures"], prop["value"], strict=True):
                    row[f"{name}@{temperature:g}K"] = value
                row["basis"] = prop.get("basis")
                continue
            row[name] = prop["value"]
            if "std" in prop:
                row[f"{name}_std"] = prop["std"]
            if "score" in prop:
                row[f"{name}_score"] = prop["score"]
        return row


@dataclass
class ScreeningSummary:
    """What a run did.

    Attributes:
        output (`str`): the file written.
        rows (`int`): rows in the file (one per input crystal).
        failed (`int`): rows with an error.
        computed (`int`): rows computed by this call (the others were done by an earlier, killed run).
        seconds (`float`): wall time of this call.
        already_complete (`bool`): the file was already finished by the same run; nothing was computed.
    """

    output: str
    rows: int
    failed: int
    computed: int
    seconds: float
    already_complete: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 2)}


def _failure_record(error: Exception, source: str) -> dict:
    """The failure record of an input that was an error before it reached the pipeline (a `ScopeError` gives its
    own; any other error the pipeline's generic reason)."""
    if hasattr(error, "to_dict"):
        return error.to_dict(source)
    from ..pipeline_crystal_property import GENERIC_REASON

    return {"source": source, "reason": GENERIC_REASON, "type": type(error).__name__, "message": str(error)}


# -- worker processes --------------------------------------------------------------------------------------------
_WORKER_SCREENER: Screener | None = None
#: The reason code of a crystal whose encoding process died (a crash in a native library, say).
WORKER_DIED = "worker_died"


def _worker_init(parent: int) -> None:
    import torch

    # Encoding is Python and spglib: leave the cores to the other workers and the model.
    torch.set_num_threads(1)
    # A parent killed with SIGKILL cannot stop its workers, and a forked worker may hold both ends of its task pipe
    # (so it would wait forever): each worker leaves on its own once its parent is gone.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _worker_encode(items: list[InputItem]) -> list[dict[str, Any] | None]:
    return _WORKER_SCREENER.encode_chunk(items)


def _encode_in_child(connection, item: InputItem) -> None:
    connection.send(_WORKER_SCREENER.encode_chunk([item])[0])
    connection.close()


def _encode_isolated(screener: Screener, items: Sequence[InputItem]) -> list[dict[str, Any] | None]:
    """Encode each item in its own forked process (after a worker died on one of them): an item whose process dies
    gets a `worker_died` failure, and the others their features. About a fork per item: used for such chunks only."""
    context = multiprocessing.get_context("fork")
    encoded = []
    for item in items:
        if isinstance(item.item, Exception):
            encoded.append(None)
            continue
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_encode_in_child, args=(sender, item), daemon=True)
        process.start()
        sender.close()
        try:
            features = receiver.recv()
        except EOFError:  # the process died before it could answer
            features = None
        process.join()
        receiver.close()
        if features is None:
            features = screener.failed_features(
                WORKER_DIED, "WorkerDiedError",
                f"the encoding process died (exit code {process.exitcode}) on this crystal",
            )  # fmt: skip
        encoded.append(features)
    return encoded


class _EncodingPool:
    """`num_proc` forked encoding processes (`concurrent.futures`, which reports a dead worker instead of waiting
    for it). When a worker dies, the pool is started again, the chunks in flight are submitted again, and the chunk
    being collected is encoded item by item in isolated processes, so the crystal that killed it becomes a
    `worker_died` row and the run goes on."""

    def __init__(self, screener: Screener, num_proc: int):
        self.screener = screener
        self.num_proc = num_proc
        self.executor = self._start()

    def _start(self):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            self.num_proc,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    def submit(self, chunk: list[InputItem]):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.executor.submit(_worker_encode, chunk)
        except BrokenProcessPool as error:
            # A worker died since the last submit: this chunk waits, failed, for `result` to restart the pool in
            # input order (the executor refuses new work once broken).
            failed = Future()
            failed.set_exception(error)
            return failed

    def result(self, chunk: list[InputItem], future, in_flight: collections.deque) -> list:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._start()
            # Resubmit what the dead pool did not finish; finished chunks keep their features.
            for index, (waiting, pending) in enumerate(in_flight):
                if not pending.done() or pending.exception() is not None:
                    in_flight[index] = (waiting, self.submit(waiting))
            return _encode_isolated(self.screener, chunk)

    def close(self) -> None:
        # Workers still encoding chunks that nobody will collect (an error upstream) are stopped, not awaited.
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
            process.join()


def _chunks(
    items: Iterator[InputItem], output: ScreeningOutput, chunk_size: int, check: tuple[int, str] | None
) -> Iterator[list[InputItem]]:
    """Runs of consecutive positions that are not written yet, within the aligned blocks `[k * chunk_size,
    (k + 1) * chunk_size)`. Aligned blocks make a resumed run batch its crystals exactly as an uninterrupted run
    with the same `chunk_size` does (batches are formed per chunk, by string length), so it gives the same values
    bit for bit; with another chunk size, padding in other batch shapes can move a value by float rounding."""
    chunk: list[InputItem] = []
    for item in items:
        if check is not None and item.position == check[0] and item.source != check[1]:
            raise ResumeMismatchError(
                output.path,
                [f"the inputs changed: position {item.position} is now {item.source!r}, was {check[1]!r}"],
            )
        if item.item is None or output.is_done(item.position):
            if chunk:
                yield chunk
                chunk = []
            continue
        if chunk and (
            item.position // chunk_size != chunk[0].position // chunk_size
            or chunk[-1].position + 1 != item.position
        ):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def run_screening(
    screener: Screener,
    inputs: Sequence[str | Path],
    output: str | Path,
    id_column: str | None = None,
    num_proc: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> ScreeningSummary:
    """Screen `inputs` into `output` (`.parquet`, `.jsonl` or `.csv`), resuming a killed run of the same command.

    Args:
        screener ([`Screener`]): the pipeline and what to compute.
        inputs: files, folders and `hub:ORG/NAME` datasets ([`iter_inputs`]).
        output: the output file; its suffix chooses the format.
        id_column: the table column that names rows (default `id`, else `material_id`).
        num_proc: encoding processes; 1 encodes in this process, N > 1 in N forked workers while this process runs
            the model.
        chunk_size: crystals per chunk (one part of the output, one encode task). A resumed run keeps the chunk
            size and the screener's batch size that the run started with (a warning says so when they differ).
        progress: show a progress bar on stderr.

    Returns:
        [`ScreeningSummary`].

    Raises:
        ResumeMismatchError: `output` (or its unfinished parts) comes from another model, inputs or options.
        ValueError: a bad suffix or argument.
    """
    from tqdm.auto import tqdm

    if num_proc < 1 or chunk_size < 1:
        raise ValueError("num_proc and chunk_size must be positive")
    start_time = time.perf_counter()
    inputs = list(inputs)
    asked = {"chunk_size": chunk_size, "batch_size": screener.batch_size}
    writer = ScreeningOutput(
        output,
        screener.schema,
        screener.run_fingerprint(inputs, id_column),
        screener.units,
        package_versions(),
        batching=asked,
    )
    if writer.batching and writer.batching != asked and not writer.complete:
        # Resume with the grouping the parts were written with: the file then equals an uninterrupted run's.
        chunk_size, screener.batch_size = writer.batching["chunk_size"], writer.batching["batch_size"]
        logger.warning(
            "%s: continuing with --chunk-size %d --batch-size %d, as the run started (asked: %d, %d)",
            output, chunk_size, screener.batch_size, asked["chunk_size"], asked["batch_size"],
        )  # fmt: skip
    if writer.complete:
        rows, failed = writer.metadata.get("rows", 0), writer.metadata.get("failed", 0)
        return ScreeningSummary(str(output), rows, failed, 0, time.perf_counter() - start_time, True)
    check = writer.last_done()  # (position, source) of the last row of the done prefix
    prefix = check[0] + 1 if check is not None else 0
    bar = tqdm(
        total=count_inputs(inputs),
        initial=writer.rows_done,
        desc=screener.task,
        unit="crystal",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    stream = iter_inputs(inputs, id_column, skip=prefix)
    counted = _Counted(stream)
    computed = 0

    def finish(chunk: list[InputItem], encoded: list) -> None:
        nonlocal computed
        writer.write_part(chunk[0].position, screener.rows(chunk, encoded))
        computed += len(chunk)
        bar.update(len(chunk))

    global _WORKER_SCREENER
    pool = None
    try:
        if num_proc == 1:
            for chunk in _chunks(counted, writer, chunk_size, check):
                finish(chunk, screener.encode_chunk(chunk))
        else:
            _WORKER_SCREENER = screener  # inherited by the forked workers
            pool = _EncodingPool(screener, num_proc)
            in_flight: collections.deque = collections.deque()
            for chunk in _chunks(counted, writer, chunk_size, check):
                in_flight.append((chunk, pool.submit(chunk)))
                if len(in_flight) >= 2 * num_proc:
                    chunk, pending = in_flight.popleft()
                    finish(chunk, pool.result(chunk, pending, in_flight))
            while in_flight:
                chunk, pending = in_flight.popleft()
                finish(chunk, pool.result(chunk, pending, in_flight))
    except BaseException:
        writer.close()  # the lock goes now, not when the writer is collected (a traceback keeps it alive)
        raise
    finally:
        _WORKER_SCREENER = None
        if pool is not None:
            pool.close()
        bar.close()
    metadata = writer.finish(counted.count, extra={"model": screener.model_name, "task": screener.task})
    return ScreeningSummary(
        str(output), metadata["rows"], metadata["failed"], computed, time.perf_counter() - start_time
    )


class _Counted:
    """An iterator of input items that remembers how many it gave (the number of positions of the run)."""

    def __init__(self, items: Iterable[InputItem]):
        self._items = iter(items)
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> InputItem:
        item = next(self._items)
        self.count = item.position + 1
        return item


def _screen(
    task: str,
    model: str | Any,
    inputs: Sequence[str | Path],
    output: str | Path,
    trust_remote_code: bool = False,
    id_column: str | None = None,
    num_proc: int = 1,
    batch_size: int = 32,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    device: str | None = None,
    **options,
) -> ScreeningSummary:
    if isinstance(model, (str, Path)):
        import torch

        from ..loading import load_property_pipeline

        name = model_reference(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipeline = load_property_pipeline(name, trust_remote_code=trust_remote_code, device=device)
    else:
        pipeline, name = model, None
    screener = Screener(pipeline, task=task, batch_size=batch_size, model_name=name, **options)
    return run_screening(screener, inputs, output, id_column, num_proc, chunk_size, progress)


def predict_to_file(
    model: str | Any,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    temperatures: Sequence[float] | None = None,
    basis: str = "formula_unit",
    disorder: str | None = None,
    id_column: str | None = None,
    num_proc: int = 1,
    batch_size: int = 32,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    trust_remote_code: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> ScreeningSummary:
    """`cloud-crystal predict --output`: one row of predicted properties per input crystal (see the module).

    Args:
        model: a checkpoint folder, a Hub repo id, or a loaded `crystal-property` pipeline.
        inputs, output, id_column, num_proc, chunk_size, progress: see [`run_screening`].
        temperatures, basis, disorder, batch_size: see [`Screener`].
        trust_remote_code: run the checkpoint's own code.
        device: where the model runs when `model` is a name (`"cpu"`, `"cuda:1"`, ...; default: CUDA when there is
            a GPU, else the CPU). The encoding workers always run on the CPU.

    Example:

    ```python
    >>> from modeling_cloud.screening import predict_to_file
    >>> predict_to_file("cloud-demo/formation-energy", ["structures/"], "predictions.parquet")  # doctest: +SKIP
    ScreeningSummary(output='predictions.parquet', rows=..., failed=..., computed=..., seconds=...)

    ```
    """
    return _screen(
        "predict", model, inputs, output, trust_remote_code, id_column, num_proc, batch_size, chunk_size, progress,
        device, temperatures=temperatures, basis=basis, disorder=disorder,
    )  # fmt: skip


def embed_to_file(
    model: str | Any,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    disorder: str | None = None,
    id_column: str | None = None,
    num_proc: int = 1,
    batch_size: int = 32,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    trust_remote_code: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> ScreeningSummary:
    """`cloud-crystal embed`: one row with the pooled embedding per input crystal, with the same row identity as
    [`predict_to_file`]; the file is an index for [`EmbeddingIndex`] (`cloud-crystal similar`)."""
    return _screen(
        "embed", model, inputs, output, trust_remote_code, id_column, num_proc, batch_size, chunk_size, progress,
        device, disorder=disorder,
    )  # fmt: skip
