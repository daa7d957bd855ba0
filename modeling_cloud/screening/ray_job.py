# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`cloud-crystal predict --ray [ADDRESS]`: the screening run as a Ray Data job, writing the same resumable file.

The job reuses [`Screener`]'s steps and [`ScreeningOutput`]'s parts, so its output file, its row order and its
resuming are those of the single-process run ([`run_screening`]); either can finish what the other started.

1. **Plan (driver).** Open the output as the single-process run does (same run fingerprint). The positions not yet
   written are cut into the single-process run's chunks (runs within the aligned blocks of `chunk_size` positions,
   so every batch and every value is the same), and the chunks into spans (about four per
   encoding CPU). The Ray dataset holds one row per span (`start`, `stop` and the chunk bounds): small, whatever the
   number of crystals.
2. **Read and encode (CPU tasks).** `map_batches` with a function: each task reads its span's inputs itself
   ([`iter_inputs`] with `skip`; Parquet row groups before the span are not decoded) and runs [`Screener.encode`]
   (structure reading, symmetry, SCOPE, token ids) chunk by chunk, yielding one row per chunk. A task builds its
   encoder once per worker process (the pipeline's tokenizer and config; the model is loaded with it).
3. **Model (actors).** `map_batches` with a callable class holding the pipeline: one actor per GPU where the cluster
   has GPUs (`num_gpus=1` each), else `model_actors` CPU actors. Each chunk becomes its rows ([`Screener.rows`]),
   sent back as an Arrow IPC stream.
4. **Write (driver).** The driver streams the chunks' rows as they finish and writes each as a Parquet part of the
   output; when all positions are written it merges them in input order. Only the driver writes files, so the
   cluster needs no shared file system; the inputs and the model must be readable from every node.

A driver killed at any moment leaves finished parts only; the same command (with or without `--ray`) resumes.

Ray and the network: `ray.init()` (measured with ray 2.60) probes the cloud-metadata address 169.254.169.254, looks
up `metadata.google.internal` and probes a route to 8.8.8.8, even with the dashboard off and usage statistics
disabled; no setting turns this off. The tests run Ray only inside a loopback-only network namespace.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .inputs import InputItem, iter_inputs
from .runner import DEFAULT_CHUNK_SIZE, Screener, ScreeningSummary, model_reference, package_versions
from .writers import ResumeMismatchError, ScreeningOutput

__all__ = ["RAY_EXTRA", "ModelSpec", "require_ray", "run_screening_ray", "screen_with_ray"]

#: The optional extra that installs Ray Data.
RAY_EXTRA = "ray"
#: Spans (encode tasks) per encoding CPU: enough to balance uneven spans, few enough that each skips little.
SPANS_PER_CPU = 4


def require_ray():
    """`import ray` (with Ray Data), or a `MissingExtraError` naming the extra (`pip install 'cloud-crystal[ray]'`)."""
    from .embeddings import MissingExtraError

    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(
            f"--ray needs Ray Data, in the optional extra {RAY_EXTRA!r}: pip install 'cloud-crystal[{RAY_EXTRA}]'"
        ) from error
    return ray


class ModelSpec:
    """How a Ray worker builds its own [`Screener`]: the checkpoint (folder or Hub id, readable from every node) or
    a loaded pipeline (shipped through Ray's object store), and the screener's options."""

    def __init__(self, model: str | Any, trust_remote_code: bool, task: str, batch_size: int, options: dict):
        self.model = model
        self.trust_remote_code = trust_remote_code
        self.task = task
        self.batch_size = batch_size
        self.options = options

    def build(self, device: str | None = None) -> Screener:
        """This worker's screener, with the model on `device` (`None`: where it loads, the CPU)."""
        if isinstance(self.model, (str, Path)):
            from ..cli import load_property_pipeline

            name = str(self.model)
            pipeline = load_property_pipeline(name, trust_remote_code=self.trust_remote_code, device=device)
        else:
            pipeline, name = self.model, None
            if device is not None:
                import torch

                pipeline.model.to(device)
                pipeline.device = torch.device(device)
        return Screener(pipeline, task=self.task, batch_size=self.batch_size, model_name=name, **self.options)


_ENCODERS: dict[tuple, Screener] = {}


def _encoder(spec: ModelSpec) -> Screener:
    """One encoder per worker process and spec (Ray reuses worker processes across tasks); a loaded pipeline
    arrives with each task's arguments and is used as it is."""
    import torch

    torch.set_num_threads(1)  # encoding is Python and spglib
    if not isinstance(spec.model, (str, Path)):
        return spec.build()
    key = (
        str(spec.model),
        spec.trust_remote_code,
        spec.task,
        spec.batch_size,
        repr(sorted(spec.options.items())),
    )
    if key not in _ENCODERS:
        _ENCODERS[key] = spec.build()
    return _ENCODERS[key]


def _read_and_encode(batch: dict, spec: ModelSpec, inputs: list[str], id_column: str | None):
    """One span -> one output batch per chunk: `start` and the chunk (its input items and their encodings)."""
    import numpy as np

    encoder = _encoder(spec)
    (start,), (stop,) = batch["start"].tolist(), batch["stop"].tolist()
    bounds = [int(b) for b in batch["bounds"][0]]
    items: list[InputItem] = []
    stream = iter_inputs(inputs, id_column, skip=start)
    for item in stream:
        if item.position < start:
            continue
        if item.position >= stop:
            break
        items.append(item)
    if len(items) != stop - start:
        raise RuntimeError(
            f"the inputs hold {start + len(items)} crystals, the plan expected at least {stop}"
        )
    for chunk_start, chunk_stop in zip(bounds[:-1], bounds[1:], strict=True):
        chunk = items[chunk_start - start : chunk_stop - start]
        chunk_data = np.empty(1, dtype=object)
        chunk_data[0] = (chunk, encoder.encode_chunk(chunk))
        yield {"start": np.array([chunk_start]), "chunk": chunk_data}


class _ModelActor:
    """The callable class of the model step: holds the pipeline, turns encoded chunks into their rows."""

    def __init__(self, spec: ModelSpec, device: str | None):
        self.screener = spec.build(device)

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        import pyarrow as pa

        starts, payloads = [], []
        for start, (items, encoded) in zip(batch["start"].tolist(), batch["chunk"], strict=True):
            table = pa.Table.from_pylist(self.screener.rows(items, encoded), schema=self.screener.schema)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as stream:
                stream.write_table(table)
            starts.append(start)
            payloads.append(sink.getvalue().to_pybytes())
        rows = np.empty(len(payloads), dtype=object)
        rows[:] = payloads
        return {"start": np.array(starts), "rows": rows}


def _one_cpu() -> dict:
    return {"num_cpus": 1}


def _undone_chunks(writer: ScreeningOutput, total: int, chunk_size: int) -> list[tuple[int, int]]:
    """`[start, stop)` of each run of positions not written yet within the aligned blocks `[k * chunk_size,
    (k + 1) * chunk_size)`: the chunks of the single-process run (`runner._chunks`), so the model sees the same
    batches and gives the same values bit for bit."""
    chunks, position = [], 0
    for start, stop in [*writer.done_ranges, (total, total)]:
        begin, end = position, min(start, total)
        while begin < end:
            chunk_stop = min(end, (begin // chunk_size + 1) * chunk_size)
            chunks.append((begin, chunk_stop))
            begin = chunk_stop
        position = max(position, stop)
    return chunks


def _count(inputs: list[str], id_column: str | None) -> int:
    """The exact number of crystals: one pass over the inputs' names that decodes no crystal (`count_inputs` is
    only a bound for some formats, and the plan needs every position)."""
    total = 0
    for item in iter_inputs(inputs, id_column, skip=sys.maxsize):
        total = item.position + 1
    return total


def run_screening_ray(
    screener: Screener,
    spec: ModelSpec,
    inputs: Sequence[str | Path],
    output: str | Path,
    id_column: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    address: str | None = None,
    model_actors: int | None = None,
    init_options: dict | None = None,
    progress: bool = True,
) -> ScreeningSummary:
    """Screen `inputs` into `output` as a Ray Data job (see the module docstring); same file as [`run_screening`].

    Args:
        screener ([`Screener`]): the driver's screener (row layout and the run fingerprint).
        spec ([`ModelSpec`]): how each Ray worker builds its own screener.
        inputs, output, id_column, chunk_size, progress: as for [`run_screening`].
        address: a running Ray cluster (`ray://host:10001`, `host:6379`, `auto`); `None` connects to the cluster
            this process already joined (`ray.init` done by the caller) or starts a local one.
        model_actors: model actors; default one per GPU of the cluster, or one per 16 CPUs (at least one) where
            it has none.
        init_options: more keyword arguments for `ray.init` (when this call starts or joins Ray).

    Returns:
        [`ScreeningSummary`].

    Raises:
        MissingExtraError: Ray Data is not installed.
        ResumeMismatchError: `output` comes from another model, inputs or options.
    """
    ray = require_ray()
    from tqdm.auto import tqdm

    start_time = time.perf_counter()
    inputs = [str(raw) for raw in inputs]
    writer = ScreeningOutput(
        output,
        screener.schema,
        screener.run_fingerprint(inputs, id_column),
        screener.units,
        package_versions(),
    )
    if writer.complete:
        rows, failed = writer.metadata.get("rows", 0), writer.metadata.get("failed", 0)
        return ScreeningSummary(str(output), rows, failed, 0, time.perf_counter() - start_time, True)
    check = writer.last_done()
    if check is not None:
        position, source = check
        found = next(
            item for item in iter_inputs(inputs, id_column, skip=position) if item.position == position
        )
        if found.source != source:
            writer.close()
            raise ResumeMismatchError(
                writer.path,
                [f"the inputs changed: position {position} is now {found.source!r}, was {source!r}"],
            )
    total = _count(inputs, id_column)
    chunks = _undone_chunks(writer, total, chunk_size)
    started_here = False
    if not ray.is_initialized():
        ray.init(address=address, **(init_options or {}))
        started_here = True
    computed = 0
    bar = tqdm(
        total=total, initial=writer.rows_done, desc=f"{screener.task} (ray)", unit="crystal", file=sys.stderr,
        disable=not progress, dynamic_ncols=True,
    )  # fmt: skip
    try:
        if chunks:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            cpus = max(1, int(resources.get("CPU", 1)))
            actors = model_actors or (gpus if gpus else max(1, cpus // 16))
            n_spans = min(len(chunks), SPANS_PER_CPU * cpus)
            per_span = math.ceil(len(chunks) / n_spans)
            spans = []
            for first in range(0, len(chunks), per_span):
                group = chunks[first : first + per_span]
                # A span holds consecutive undone positions only, so it is cut where a done range lies between.
                runs, run = [], [group[0]]
                for chunk in group[1:]:
                    if chunk[0] == run[-1][1]:
                        run.append(chunk)
                    else:
                        runs.append(run)
                        run = [chunk]
                runs.append(run)
                for run in runs:
                    bounds = [run[0][0]] + [stop for _, stop in run]
                    spans.append({"start": run[0][0], "stop": run[-1][1], "bounds": bounds})
            dataset = ray.data.from_items(spans, override_num_blocks=len(spans))
            dataset = dataset.map_batches(
                _read_and_encode,
                batch_size=1,
                fn_kwargs={"spec": spec, "inputs": inputs, "id_column": id_column},
                # Given as a function, the task's resources keep Ray Data from fusing the encode tasks into the
                # model actors: encoding then runs on every CPU, beside the model.
                ray_remote_args_fn=_one_cpu,
            )
            dataset = dataset.map_batches(
                _ModelActor,
                batch_size=1,
                fn_constructor_kwargs={"spec": spec, "device": "cuda" if gpus else None},
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=1 if gpus else 0,
                num_cpus=0 if gpus else 1,
            )
            import pyarrow as pa

            for row in dataset.iter_rows():
                table = pa.ipc.open_stream(row["rows"]).read_all()
                writer.write_part(int(row["start"]), table)
                computed += table.num_rows
                bar.update(table.num_rows)
    except BaseException:
        writer.close()  # the parts stay for the next run; the lock goes now
        raise
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    extra = {"model": screener.model_name, "task": screener.task}
    metadata = writer.finish(total, extra=extra)
    return ScreeningSummary(
        str(output), metadata["rows"], metadata["failed"], computed, time.perf_counter() - start_time
    )


def screen_with_ray(
    task: str,
    model: str | Any,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    address: str | None = None,
    trust_remote_code: bool = False,
    id_column: str | None = None,
    batch_size: int = 32,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    model_actors: int | None = None,
    init_options: dict | None = None,
    progress: bool = True,
    **options,
) -> ScreeningSummary:
    """`cloud-crystal predict|embed --output FILE --ray [ADDRESS]`: [`predict_to_file`] / [`embed_to_file`] as a
    Ray Data job (see the module docstring).

    Args:
        task: `"predict"` or `"embed"`.
        model: a checkpoint folder or Hub id that every node can read, or a loaded pipeline (shipped to the workers
            through Ray's object store).
        address: the Ray cluster to join (`auto`, `host:6379`, `ray://host:10001`); `None` starts a local Ray unless
            this process has already called `ray.init`.
        options: the [`Screener`] options (`temperatures`, `basis`, `disorder`).
        Others: see [`run_screening_ray`].

    Example (on the head node of a running cluster, inputs and model on a shared path):

    ```python
    >>> from modeling_cloud.screening.ray_job import screen_with_ray
    >>> screen_with_ray("predict", "/shared/model", ["/shared/alexandria"], "/shared/out.parquet", address="auto")  # doctest: +SKIP
    ScreeningSummary(output='/shared/out.parquet', rows=..., failed=..., computed=..., seconds=...)

    ```
    """
    if isinstance(model, (str, Path)):
        from ..cli import load_property_pipeline

        model = model_reference(model)  # a local folder by its absolute path, for workers in other folders
        pipeline, name = load_property_pipeline(model, trust_remote_code=trust_remote_code), model
    else:
        pipeline, name = model, None
    screener = Screener(pipeline, task=task, batch_size=batch_size, model_name=name, **options)
    spec = ModelSpec(model, trust_remote_code, task, batch_size, options)
    return run_screening_ray(
        screener, spec, inputs, output, id_column, chunk_size, address, model_actors, init_options, progress
    )
