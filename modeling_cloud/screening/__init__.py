# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Screening: many crystals -> predictions or embeddings in a resumable file, and similar-crystal search.

- [`predict_to_file`] (`cloud-crystal predict --output FILE`) and [`embed_to_file`] (`cloud-crystal embed`) run the
  `crystal-property` pipeline over streamed inputs ([`iter_inputs`]: folders, tables, dumps, corpus shards,
  `hub:ORG/NAME`) with `num_proc` encoding processes, and write Parquet, JSON Lines or CSV that a killed run resumes
  ([`ScreeningOutput`]);
- [`Screener`] holds the pipeline and the row layout, in steps that other drivers reuse: [`screen_with_ray`]
  (`--ray`) runs the same screening as a Ray Data job, with Ray from the optional extra `ray`;
- [`EmbeddingIndex`] (`cloud-crystal similar`) finds the nearest rows of an embedding file by cosine distance, with
  FAISS from the optional extra `faiss`.

Importing this package is light: each name loads its module (and torch, pyarrow, faiss) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InputItem": ".inputs",
    "count_inputs": ".inputs",
    "iter_inputs": ".inputs",
    "OutputBusyError": ".writers",
    "ResumeMismatchError": ".writers",
    "ScreeningOutput": ".writers",
    "output_format": ".writers",
    "read_metadata": ".writers",
    "read_rows": ".writers",
    "Screener": ".runner",
    "ScreeningSummary": ".runner",
    "embed_to_file": ".runner",
    "pooled_embedding": ".runner",
    "predict_to_file": ".runner",
    "run_screening": ".runner",
    "space_group_from_scope": ".runner",
    "screen_with_ray": ".ray_job",
    "EmbeddingIndex": ".embeddings",
    "MissingExtraError": ".embeddings",
    "Neighbour": ".embeddings",
    "SimilarCrystals": ".embeddings",
    "find_similar": ".embeddings",
    "embed_queries": ".embeddings",
    "require_faiss": ".embeddings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
