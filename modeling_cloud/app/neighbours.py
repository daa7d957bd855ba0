# Copyright 2026 the cloud-crystal developers. MIT licence.
""" "Crystals like this one": nearest neighbours of a crystal's pooled embedding among the 6,317 bundled Materials
Project structures (`dataset_builders.load_materials_project`), by cosine similarity.

The embedding is the pipeline's (`return_embeddings=True`): the pooled `[CLS]` state that the property head reads;
for a seed ensemble, the mean of its members' pooled embeddings. The index is built once per model and kept on disk:

- `mp-scope-<settings>.json`: the SCOPE strings of the bundled structures for one tokenizer setting (version,
  symprec, angle tolerance, disorder policy), shared by every model with that setting;
- `neighbours-<fingerprint>.npz`: the unit-normalised embeddings (float32, `(n_structures, hidden_size)`) and their
  material ids, keyed by a sha256 of the model's weights, config and tokenizer settings.

A small numpy search (one matrix-vector product, O(n_structures × hidden_size) per query). The screening subpackage
is to offer the same index for any set of crystals; until then the app keeps this one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..screening.runner import pooled_embedding  # one definition of the crystal embedding (screening, app)
from .crystal_reading import EncodingSettings

logger = logging.getLogger("cloud_crystal.app")

#: Labels of the bundled table shown with each neighbour, with their units.
LABEL_UNITS = {
    "formation_energy_per_atom": "eV/atom",
    "e_above_hull": "eV/atom",
    "band_gap": "eV",
    "K_VRH": "GPa",
    "G_VRH": "GPa",
    "n": "",
    "eij_max": "C/m²",
    "debye_temperature": "K",
}


def default_cache_dir() -> Path:
    """`$CLOUD_CRYSTAL_CACHE`, else `<HF_HOME>/cloud-crystal` (HF_HOME as huggingface_hub resolves it)."""
    if os.environ.get("CLOUD_CRYSTAL_CACHE"):
        return Path(os.environ["CLOUD_CRYSTAL_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "cloud-crystal"


def _checkpoint_folder(name_or_path: str) -> Path | None:
    """The local folder holding a checkpoint's weights: the folder itself, or its Hub cache snapshot."""
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "model.safetensors.index.json"):
        cached = try_to_load_from_cache(name_or_path, filename)
        if isinstance(cached, str):
            return Path(cached).parent
    return None


def model_fingerprint(predictor) -> str:
    """sha256 of a checkpoint's weight files and config.json as saved, and its tokenizer's settings.

    The saved files, not the loaded model: a pretrained encoder loaded with a fresh (random) property head embeds
    the same way every time, and a folder and its Hub copy are the same model. A model with no files (built in
    memory) is hashed by its parameters.
    """
    digest = hashlib.sha256()
    folder = _checkpoint_folder(getattr(predictor.model, "name_or_path", "") or "")
    files = sorted(folder.glob("*.safetensors")) if folder is not None else []
    if files:
        for path in [*files, folder / "config.json"]:
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    else:
        import torch

        for name, tensor in sorted(predictor.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digest.update(EncodingSettings.of(predictor.tokenizer).key.encode())
    return digest.hexdigest()


def _encode_rows(pairs: list[tuple[str, str]], fields: dict) -> list[dict[str, Any]]:
    """SCOPE rows of `(material_id, structure JSON)` pairs with one tokenizer setting (runs in a worker process)."""
    from tokenization import ScopeAnalyzer, ScopeError, load_structure

    settings = EncodingSettings(**fields)
    rows = []
    for material_id, structure_json in pairs:
        try:
            structure = load_structure(structure_json, source=material_id, disorder=settings.disorder)
            analyzer = ScopeAnalyzer(
                structure,
                source=material_id,
                symprec=settings.symprec,
                angle_tolerance=settings.angle_tolerance,
                disorder=settings.disorder,
                validated=True,
            )
            composition = structure.composition
            rows.append(
                {
                    "material_id": material_id,
                    "scope": analyzer.get_scope(settings.scope_version),
                    "n_atoms": float(composition.num_atoms),
                    "formula": composition.formula,
                }
            )
        except ScopeError as error:
            rows.append({"material_id": material_id, "scope": None, "error": error.to_dict(material_id)})
    return rows


def _bundled_scopes(
    settings: EncodingSettings, cache_dir: Path, processes: int | None = None
) -> list[dict[str, Any]]:
    """`[{"material_id", "scope", "n_atoms", "formula"}]` of the bundled structures (cached per setting); a structure
    that cannot be encoded gets `"scope": None` and its failure record under `"error"`.

    Encoded in `processes` worker processes (default: the CPU count, at most 4), in chunks, in table order.
    """
    name = "mp-scope-" + settings.key.replace("/", "-") + ".json"
    path = cache_dir / name
    if path.is_file():
        return json.loads(path.read_text())
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from dataset_builders import load_materials_project

    from .crystal_reading import _start_method

    table = load_materials_project()
    pairs = list(zip(table["material_id"], table["structure"], strict=True))
    started = time.perf_counter()
    processes = processes or min(4, os.cpu_count() or 1)
    chunks = [pairs[i : i + 250] for i in range(0, len(pairs), 250)]
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        rows = [
            row for chunk in pool.map(_encode_rows, chunks, [vars(settings)] * len(chunks)) for row in chunk
        ]
    logger.info(
        "encoded %d bundled structures in %.1f s (%d processes)",
        len(rows),
        time.perf_counter() - started,
        processes,
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(rows))
    temporary.replace(path)
    return rows


class NeighbourIndex:
    """Unit-normalised embeddings of the bundled structures for one model, and what to show of each.

    Attributes:
        material_ids (`list[str]`), embeddings (`np.ndarray` of shape `(n, hidden_size)`, float32, unit rows),
        built (`bool`: built in this call, not read from the cache), seconds (`float`: time to build or load).
    """

    def __init__(self, material_ids: list[str], embeddings: np.ndarray, built: bool, seconds: float):
        self.material_ids = material_ids
        self.embeddings = embeddings
        self.built = built
        self.seconds = seconds
        self._table = None
        self._position = {material_id: i for i, material_id in enumerate(material_ids)}

    @classmethod
    def for_model(
        cls, predictor, cache_dir: str | Path | None = None, batch_size: int = 128
    ) -> NeighbourIndex:
        """Load the model's index from `cache_dir`, or build it (encode, embed, normalise) and save it there."""
        started = time.perf_counter()
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = cache_dir / f"neighbours-{model_fingerprint(predictor)[:24]}.npz"
        if path.is_file():
            with np.load(path) as stored:
                index = cls(stored["material_ids"].tolist(), stored["embeddings"], False, 0.0)
            index.seconds = time.perf_counter() - started
            logger.info("neighbour index of %d structures read from %s", len(index.material_ids), path)
            return index
        rows = [
            row
            for row in _bundled_scopes(EncodingSettings.of(predictor.tokenizer), cache_dir)
            if row["scope"]
        ]
        items = [{"scope": r["scope"], "n_atoms": r["n_atoms"], "formula": r["formula"], "source": r["material_id"]}
                 for r in rows]  # fmt: skip
        results = predictor(items, batch_size=batch_size, return_embeddings=True, errors="return")
        kept, vectors = [], []
        for row, result in zip(rows, results, strict=True):
            vector = pooled_embedding(result) if "error" not in result else None
            if vector is not None and np.isfinite(vector).all():
                kept.append(row["material_id"])
                vectors.append(vector)
        if not vectors:
            raise ValueError("the model gave no embedding for any bundled structure")
        embeddings = np.stack(vectors).astype(np.float32)
        embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(temporary, material_ids=np.asarray(kept), embeddings=embeddings)
        temporary.replace(path)
        seconds = time.perf_counter() - started
        logger.info("neighbour index of %d structures built in %.1f s, saved to %s", len(kept), seconds, path)
        return cls(kept, embeddings, True, seconds)

    def search(self, embedding: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The `k` most similar bundled structures: `[(material_id, cosine similarity)]`, most similar first."""
        query = np.asarray(embedding, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        scores = self.embeddings @ query
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.material_ids[i], float(scores[i])) for i in top]

    def describe(self, hits: list[tuple[str, float]]) -> list[dict[str, Any]]:
        """Rows for the page: material id, formula, space group (number and symbol), similarity, labels."""
        from pymatgen.core import Structure
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        if self._table is None:
            from dataset_builders import load_materials_project

            self._table = load_materials_project().to_pandas().set_index("material_id")
        rows = []
        for material_id, similarity in hits:
            record = self._table.loc[material_id]
            structure = Structure.from_dict(json.loads(record["structure"]))
            analyzer = SpacegroupAnalyzer(structure)
            labels = [
                f"{name} {float(record[name]):.3g}{' ' + unit if unit else ''}"
                for name, unit in LABEL_UNITS.items()
                if record.get(name) is not None
                and not (isinstance(record[name], float) and math.isnan(record[name]))
            ]
            rows.append(
                {
                    "material_id": material_id,
                    "formula": structure.composition.reduced_formula,
                    "space_group": f"{analyzer.get_space_group_number()} {analyzer.get_space_group_symbol()}",
                    "similarity": round(similarity, 5),
                    "labels": "; ".join(labels),
                }
            )
        return rows
