# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Similar crystals: nearest neighbours by cosine distance in an embedding file that `cloud-crystal embed` wrote.

The index is a maintained one: `datasets`' FAISS integration (`Dataset.add_faiss_index_from_external_arrays`, an
exact inner-product `IndexFlatIP` over L2-normalised vectors), with `faiss-cpu` from the optional extra `faiss`
(`pip install 'cloud-crystal[faiss]'`). FAISS finds the candidates in float32; they are then scored again in float64
and ordered by (distance, row), so the answer is that of an exact brute-force search, ties broken by position in
the file.

Cosine distance: `1 - u·v / (|u| |v|)`, from 0 (same direction) to 2. A crystal of the index, queried, comes back
first at distance 0 (up to float rounding, about 1e-7).

Cost: the index holds the embeddings in memory (rows × hidden_size × 4 bytes, twice while it is built); a query
costs rows × hidden_size multiply-adds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .runner import pooled_embedding
from .writers import read_metadata

__all__ = [
    "EmbeddingIndex",
    "MissingExtraError",
    "Neighbour",
    "SimilarCrystals",
    "find_similar",
    "pooled_embedding",
    "require_faiss",
]

#: The optional extra that provides FAISS.
FAISS_EXTRA = "faiss"
_INDEX_NAME = "embedding"
#: FAISS candidates fetched beyond k, then rescored exactly.
_CANDIDATE_MARGIN = 16


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require_faiss():
    """`import faiss`, or a [`MissingExtraError`] naming the extra (`pip install 'cloud-crystal[faiss]'`)."""
    try:
        import faiss
    except ImportError as error:
        raise MissingExtraError(
            f"similar-crystal search needs faiss-cpu, in the optional extra {FAISS_EXTRA!r}: "
            f"pip install 'cloud-crystal[{FAISS_EXTRA}]'"
        ) from error
    return faiss


@dataclass(frozen=True)
class Neighbour:
    """One crystal found near a query.

    Attributes:
        rank (`int`): 1 for the nearest.
        source (`str`): the row's name in the index file.
        formula (`str`): reduced formula.
        space_group (`int`): ITA number.
        distance (`float`): cosine distance, in [0, 2].
        row (`int`): the row's position in the index file.
    """

    rank: int
    source: str
    formula: str | None
    space_group: int | None
    distance: float
    row: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EmbeddingIndex:
    """The rows of an embedding file with a FAISS index over their vectors.

    Args:
        path (`str` or `Path`): a Parquet file that `cloud-crystal embed` (or [`embed_to_file`]) wrote. Rows that
            failed (no embedding) are left out of the search.

    Attributes:
        metadata (`dict`): the file's run metadata; `model` is the model it was made with.
        rows (`datasets.Dataset`): `source`, `formula`, `space_group` and `row` (position in the file) of each
            searchable row, with the FAISS index `"embedding"`.
        dimension (`int`): the embedding size.

    Raises:
        MissingExtraError: faiss is not installed.
        ValueError: the file is not Parquet, has no `embedding` column, or no row with one.
    """

    def __init__(self, path: str | Path):
        import datasets
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        faiss = require_faiss()
        self.path = Path(path)
        if self.path.suffix.lower() != ".parquet":
            raise ValueError(
                f"{self.path}: an index is a Parquet file; write it with `cloud-crystal embed ... --output "
                f"{self.path.with_suffix('.parquet').name}`"
            )
        self.metadata = read_metadata(self.path) or {}
        names = pq.read_schema(self.path).names
        wanted = [name for name in ("source", "formula", "space_group", "embedding") if name in names]
        table = pq.read_table(self.path, columns=wanted)  # not the SCOPE strings, notes or errors
        if "embedding" not in table.column_names:
            raise ValueError(f"{self.path}: no 'embedding' column; write one with `cloud-crystal embed`")
        positions = np.flatnonzero(pc.is_valid(table.column("embedding")).to_numpy(zero_copy_only=False))
        if positions.size == 0:
            raise ValueError(f"{self.path}: no row has an embedding")
        table = table.take(positions)
        embeddings = table.column("embedding").combine_chunks()
        self.dimension = embeddings.type.list_size
        self._vectors = (
            embeddings.flatten().to_numpy().astype(np.float32, copy=False).reshape(-1, self.dimension)
        )
        self._norms = np.linalg.norm(self._vectors.astype(np.float64), axis=1)
        self.rows = datasets.Dataset(
            table.select(
                [name for name in ("source", "formula", "space_group") if name in table.column_names]
            )
        ).add_column("row", positions.tolist())
        unit = self._vectors / np.maximum(self._norms, np.finfo(np.float64).tiny)[:, None]
        self.rows.add_faiss_index_from_external_arrays(
            unit.astype(np.float32), _INDEX_NAME, metric_type=faiss.METRIC_INNER_PRODUCT
        )
        self._sources = self.rows["source"]

    @property
    def model(self) -> str | None:
        """The model the index was made with (folder or Hub id), as its metadata records it."""
        return self.metadata.get("model")

    @property
    def model_sha256(self) -> str | None:
        return (self.metadata.get("run") or {}).get("model_sha256")

    def __len__(self) -> int:
        return len(self._sources)

    def vector(self, source: str) -> np.ndarray:
        """The embedding of the first row named `source` (a `KeyError` when there is none)."""
        try:
            index = self._sources.index(source)
        except ValueError:
            raise KeyError(f"{self.path}: no row named {source!r} with an embedding") from None
        return self._vectors[index]

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Neighbour]]:
        """The `k` nearest rows of each query by cosine distance, nearest first (ties: lower row first).

        Args:
            queries (`np.ndarray` of shape `(num_queries, dimension)` or `(dimension,)`): embeddings.
            k (`int`): neighbours per query.

        Returns:
            One list of [`Neighbour`] per query.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dimension:
            raise ValueError(
                f"queries have {queries.shape[1]} values, the index {self.dimension}: made with another model?"
            )
        k = max(1, min(k, len(self)))
        norms = np.linalg.norm(queries.astype(np.float64), axis=1)
        unit = queries / np.maximum(norms, np.finfo(np.float64).tiny)[:, None]
        candidates = min(len(self), k + _CANDIDATE_MARGIN)
        _, found = self.rows.search_batch(_INDEX_NAME, unit.astype(np.float32), k=candidates)
        answers = []
        for query, query_norm, indices in zip(queries, norms, found, strict=True):
            indices = np.asarray([i for i in indices if i >= 0], dtype=np.int64)
            similarity = (self._vectors[indices].astype(np.float64) @ query.astype(np.float64)) / np.maximum(
                self._norms[indices] * query_norm, np.finfo(np.float64).tiny
            )
            distance = 1.0 - similarity
            order = np.lexsort((indices, distance))[:k]
            chosen = [int(indices[i]) for i in order]
            records = self.rows[chosen]  # columns of the chosen rows, in that order
            answers.append(
                [
                    Neighbour(
                        rank=rank,
                        source=records["source"][at],
                        formula=records["formula"][at] if "formula" in records else None,
                        space_group=records["space_group"][at] if "space_group" in records else None,
                        distance=float(min(max(distance[i], 0.0), 2.0)),  # rounding can leave -1e-16
                        row=int(records["row"][at]),
                    )
                    for at, (rank, i) in enumerate(enumerate(order, start=1))
                ]
            )
        return answers


def embed_queries(
    queries: list[str], model: str | None, index: EmbeddingIndex, trust_remote_code: bool = False
) -> tuple[list[tuple[str, np.ndarray | None, dict | None]], str | None]:
    """Embed structure files (every crystal of each) with `model`, or the index's own model.

    Returns:
        `([(source, embedding or None, failure row or None)], warning or None)`: a warning when the model is not
        the one the index was made with (its weights differ).
    """
    from ..loading import load_property_pipeline
    from .inputs import iter_inputs
    from .runner import Screener, model_sha256

    name = model or index.model
    if not name:
        raise ValueError(f"{index.path} does not record its model: give --model")
    if model is None and Path(name).is_absolute() and not Path(name).is_dir():
        raise ValueError(f"{index.path} was made with {name}, which is not there any more: give --model")
    pipeline = load_property_pipeline(name, trust_remote_code=trust_remote_code)
    warning = None
    if index.model_sha256 and model_sha256(pipeline.model) != index.model_sha256:
        warning = (
            f"{name} is not the model {index.path} was made with ({index.model}): distances may mean little"
        )
    screener = Screener(pipeline, task="embed", model_name=name)
    items = list(iter_inputs(queries))
    rows = screener.rows(items, screener.encode_chunk(items))
    embedded = []
    for row in rows:
        if row["embedding"] is None:
            embedded.append((row["source"], None, row))
        else:
            embedded.append((row["source"], np.asarray(row["embedding"], dtype=np.float32), None))
    return embedded, warning


@dataclass
class SimilarCrystals:
    """The answer to one query of [`find_similar`].

    Attributes:
        query (`str`): the query's name (`--row SOURCE`, or the crystal's name in a structure file).
        neighbours (`list[Neighbour]`): nearest first; empty when the query failed.
        error (`dict`, *optional*): the failure record `{"source", "reason", "type", "message"}` of a query crystal
            that could not be embedded.
    """

    query: str
    neighbours: list[Neighbour]
    error: dict | None = None


def find_similar(
    index: EmbeddingIndex | str | Path,
    queries: list[str] = (),
    rows: list[str] = (),
    k: int = 10,
    model: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[list[SimilarCrystals], str | None]:
    """`cloud-crystal similar`: the `k` nearest crystals of `index` to each query.

    Args:
        index: an [`EmbeddingIndex`] or the path of an `embed` Parquet file.
        queries: structure files (every crystal of each is a query), embedded with `model` or the index's model.
        rows: names of the index's own rows to use as queries (the first row of each name).
        k: neighbours per query.

    Returns:
        `(answers, warning)`: one [`SimilarCrystals`] per query (rows first, then the files' crystals), and a
        warning when `model` is not the one the index was made with.

    Raises:
        KeyError: a name in `rows` that the index does not hold.
        MissingExtraError: faiss is not installed.
    """
    index = index if isinstance(index, EmbeddingIndex) else EmbeddingIndex(index)
    named: list[tuple[str, np.ndarray | None, dict | None]] = [(row, index.vector(row), None) for row in rows]
    warning = None
    if queries:
        embedded, warning = embed_queries(list(queries), model, index, trust_remote_code)
        named += embedded
    vectors = [vector for _, vector, _ in named if vector is not None]
    found = iter(index.search(np.stack(vectors), k=k) if vectors else [])
    answers = []
    for source, vector, failure in named:
        if vector is None:
            error = {"source": source, "reason": failure["error_reason"], "type": failure["error_type"],
                     "message": failure["error_message"]}  # fmt: skip
            answers.append(SimilarCrystals(source, [], error))
        else:
            answers.append(SimilarCrystals(source, next(found)))
    return answers, warning
