# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The "crystal-property" pipeline: crystal structures in, predicted properties with units out.

This file is remote code: `pipeline.save_pretrained` copies it into the checkpoint, and it imports only pip packages.
Structures are read and encoded by the tokenizer object's own methods (`tokenizer.load_structure`,
`tokenizer.scope_from_structure` / `tokenizer.encode_structure`), never by importing the tokenizer package.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
from pymatgen.core.periodic_table import Element
from transformers import Pipeline
from transformers.utils import logging

logger = logging.get_logger(__name__)


_THERMO_FIELDS = (
    ("heat_capacity", "J/(K·mol)"),
    ("internal_energy", "J/mol"),
    ("entropy", "J/(K·mol)"),
    ("free_energy", "J/mol"),
)
_NO_TRAINED_HEAD = ("CloudModel", "CloudForMaskedLM")
_ERROR_POLICIES = ("raise", "return")


class CrystalInputError(ValueError):
    """An input of the pipeline could not be read, encoded or tokenized.

    Attributes:
        index: position of the item in the call's inputs.
        item: short description of the item (formula, path, first characters of the text).
        reason: the underlying error's message; the error itself is chained as `__cause__`.
        error_type: class name of the underlying error, e.g. `DisorderedStructureError`.
    """

    def __init__(self, index: int, item: str, reason: str, error_type: str):
        super().__init__(f"crystal-property input {index} ({item}): {error_type}: {reason}")
        self.index = index
        self.item = item
        self.reason = reason
        self.error_type = error_type

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "item": self.item, "type": self.error_type, "message": self.reason}


# Set in each preprocessing worker process (inherited through fork, never pickled).
_WORKER_PIPELINE = None


def _init_preprocess_worker(pipeline_instance) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = pipeline_instance


def _preprocess_in_worker(job: tuple[int, Any, Any]):
    index, item, n_atoms = job
    try:
        return index, _WORKER_PIPELINE.preprocess(item, n_atoms=n_atoms, index=index), None
    except CrystalInputError as error:
        # Exceptions with custom constructors do not survive pickling; send the fields and rebuild.
        return index, None, (error.index, error.item, error.reason, error.error_type)


_V2_START = re.compile(r"SG\d{1,3} ")


def _is_scope_string(item: Any) -> bool:
    # SCOPE strings are single lines with v1's " | " separators or v2's leading "SG<n>" token; CIF/POSCAR texts
    # span lines and paths have neither.
    return isinstance(item, str) and "\n" not in item and ("|" in item or _V2_START.match(item) is not None)


def _describe(item: Any) -> str:
    if isinstance(item, str):
        if _is_scope_string(item):
            return f"SCOPE {item[:60]!r}" + ("..." if len(item) > 60 else "")
        if "\n" not in item and os.path.exists(item):
            return f"file {item}"
        first_line = item.strip().splitlines()[0] if item.strip() else ""
        return f"text starting {first_line[:40]!r}"
    if isinstance(item, os.PathLike):
        return f"file {os.fspath(item)}"
    for attribute in ("formula", "get_chemical_formula"):
        value = getattr(item, attribute, None)
        if value is not None:
            try:
                return f"{type(item).__name__} {value() if callable(value) else value}"
            except (TypeError, ValueError):
                break
    return type(item).__name__


class CrystalPropertyPipeline(Pipeline):
    """
    Predict crystal properties with a CLOUD checkpoint.

    Inputs: a pymatgen `Structure`, an ASE `Atoms`, CIF or POSCAR text, a path to such a file, a SCOPE string, or a
    dict `{"structure": ..., "n_atoms": ...}` / `{"scope": ..., "n_atoms": ...}`; one item or a list of items. (A
    tuple is one `(lattice, frac_coords, species)` structure, not a list.)

    Output: one dict per input with `scope`, `n_atoms` and `properties`, a list of `{"name", "value", "unit"}`:

    - regression heads: one entry per target, in the checkpoint's units;
    - classification heads: `value` is the predicted label (bool) and `score` its probability;
    - Debye models: `theta_debye` (K), then `heat_capacity`, `internal_energy`, `entropy` and `free_energy`, each
      with a list of values at `temperatures` and a `basis`: "per mole of cells" when the number of atoms is known
      (from the structure, or `n_atoms=` for a SCOPE string), otherwise "per mole of atoms";
    - with `return_embeddings=True`, the pooled crystal embedding under `embedding`.

    Call options: `batch_size` (items per forward pass; items are sorted by length and padded per batch),
    `num_workers` (processes that parse and encode structures in parallel, Linux/fork only; default: in process),
    `temperatures` (K, Debye models; default `config.debye_temperatures`), `n_atoms` (int, or one entry per input),
    `return_embeddings`, and `errors`: `"raise"` (default) raises a [`CrystalInputError`] naming the first bad item;
    `"return"` puts `{"error": {...}}` in that item's place and predicts the others.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> import modeling_cloud  # registers the task when the package is installed
    >>> predictor = pipeline("crystal-property", model="path/to/cloud-debye", device="cpu")  # doctest: +SKIP
    >>> predictor("1 0 0 | 1a | Cu 1.0", n_atoms=1, temperatures=[100, 300])  # doctest: +SKIP
    {'scope': '1 0 0 | 1a | Cu 1.0', 'n_atoms': 1, 'properties': [{'name': 'theta_debye', 'value': ..., 'unit': 'K'},
     {'name': 'heat_capacity', 'value': [..., ...], 'unit': 'J/(K·mol)', 'temperatures': [100.0, 300.0], ...}, ...]}

    ```
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for method in ("load_structure", "encode_structure"):
            if not callable(getattr(self.tokenizer, method, None)):
                raise TypeError(
                    f"crystal-property needs the CLOUD tokenizer (with `{method}`), got {type(self.tokenizer).__name__}"
                )
        tokenizer_version = getattr(self.tokenizer, "scope_version", None)
        model_version = getattr(self.model.config, "scope_version", None)
        if tokenizer_version is not None and model_version is not None and tokenizer_version != model_version:
            raise ValueError(
                f"the tokenizer writes SCOPE {tokenizer_version} but the model was trained on SCOPE {model_version}"
            )
        architectures = getattr(self.model.config, "architectures", None) or []
        # A pretrained encoder (or MLM) checkpoint opened through the property-head Auto class gets an untrained
        # head: predict nothing from it, only embeddings.
        self.has_trained_head = not (architectures and architectures[0] in _NO_TRAINED_HEAD) and hasattr(
            self.model, "head"
        )
        self.is_debye = callable(getattr(self.model, "theta_from_head", None))
        self._vocabulary: set[str] | None = None
        self._scope_version_name = f"SCOPE {tokenizer_version}" if tokenizer_version else "tokenizer's"
        if not self.has_trained_head:
            logger.warning(
                "crystal-property: %s has no trained property head (architectures=%s); returning embeddings only",
                getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__,
                architectures,
            )

    # -- Pipeline API ------------------------------------------------------------------------------------------
    def _sanitize_parameters(
        self, temperatures=None, n_atoms=None, return_embeddings=None, errors=None, **unused
    ) -> tuple[dict, dict, dict]:
        if unused:
            raise TypeError(f"crystal-property got unknown options: {sorted(unused)}")
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if n_atoms is not None:
            preprocess_params["n_atoms"] = n_atoms
        if temperatures is not None:
            forward_params["temperatures"] = temperatures
        if return_embeddings is not None:
            forward_params["return_embeddings"] = bool(return_embeddings)
        if errors is not None:
            if errors not in _ERROR_POLICIES:
                raise ValueError(f"errors must be one of {_ERROR_POLICIES}, got {errors!r}")
            postprocess_params["errors"] = errors
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, item: Any, n_atoms: int | None = None, index: int = 0) -> dict[str, Any]:
        """Read one input and return its SCOPE string, atom count and token ids (raises [`CrystalInputError`])."""
        description = _describe(item)
        try:
            if isinstance(item, dict) and ("scope" in item or "structure" in item):
                n_atoms = item.get("n_atoms", n_atoms)
                item = item["scope"] if "scope" in item else item["structure"]
                description = _describe(item)
            if _is_scope_string(item):
                scope = item.strip()
            else:
                structure = self.tokenizer.load_structure(item)
                n_atoms = len(structure)
                encode = (
                    getattr(self.tokenizer, "scope_from_structure", None) or self.tokenizer.encode_structure
                )
                scope = encode(structure)
            if n_atoms is not None and not (isinstance(n_atoms, (int, float)) and n_atoms > 0):
                raise ValueError(f"n_atoms must be a positive number, got {n_atoms!r}")
            if _is_scope_string(item):
                self._check_scope_words(scope)
            input_ids = self.tokenizer(scope)["input_ids"]
            unknown = self.tokenizer.unk_token_id
            if unknown is not None and unknown in input_ids:
                raise ValueError(f"SCOPE string has tokens outside the vocabulary: {scope!r}")
        except (ValueError, TypeError, OSError, KeyError) as error:
            raise CrystalInputError(index, description, str(error), type(error).__name__) from error
        return {"scope": scope, "n_atoms": n_atoms, "input_ids": input_ids}

    def _check_scope_words(self, scope: str) -> None:
        # The v1 WordPiece vocabulary splits any unknown word into pieces instead of [UNK] ("Xq" -> "X", "##q"), so
        # check the words of a caller's SCOPE string: each must be a vocabulary token or an element symbol (the
        # heaviest elements are legitimately split into pieces in v1).
        if self._vocabulary is None:
            self._vocabulary = set(self.tokenizer.get_vocab())
        unknown = [w for w in scope.split() if w not in self._vocabulary and not Element.is_valid_symbol(w)]
        if unknown:
            raise ValueError(
                f"SCOPE string has words outside the {self._scope_version_name} vocabulary: {unknown}"
            )

    def _forward(self, model_inputs: dict[str, Any], temperatures=None, return_embeddings: bool = False):
        wants_embeddings = return_embeddings or not self.has_trained_head
        kwargs = {"return_embeddings": wants_embeddings} if hasattr(self.model, "head") else {}
        if self.is_debye:
            n_atoms = model_inputs["n_atoms"]
            kwargs["n_atoms"] = torch.tensor(
                [1.0 if n is None else float(n) for n in n_atoms], device=self.device
            )
            if temperatures is not None:
                kwargs["temperatures"] = torch.as_tensor(
                    temperatures, dtype=torch.float32, device=self.device
                )
        outputs = self.model(
            input_ids=model_inputs["input_ids"].to(self.device),
            attention_mask=model_inputs["attention_mask"].to(self.device),
            **kwargs,
        )
        return outputs

    def postprocess(self, model_outputs, row: int = 0, features: dict | None = None, return_embeddings=False):
        """One output dict for batch row `row`.

        `model_outputs` maps output names to nested lists (see `_outputs_to_lists`); `features` is the item's
        `preprocess` result.
        """
        features = features or {}
        result: dict[str, Any] = {"scope": features.get("scope"), "n_atoms": features.get("n_atoms")}
        config = self.model.config
        properties: list[dict[str, Any]] = []
        if not self.has_trained_head:
            pass
        elif self.is_debye:
            per_cell = features.get("n_atoms") is not None
            basis = "per mole of cells" if per_cell else "per mole of atoms"
            properties.append(
                {"name": "theta_debye", "value": model_outputs["theta_debye"][row], "unit": "K"}
            )
            temperatures = model_outputs["temperatures"][row]
            for name, unit in _THERMO_FIELDS:
                properties.append(
                    {
                        "name": name,
                        "value": model_outputs[name][row],
                        "unit": unit if per_cell else unit.replace("mol", "mol-atoms"),
                        "temperatures": temperatures,
                        "temperature_unit": "K",
                        "basis": basis,
                    }
                )
        elif "predictions" in model_outputs:
            for name, unit, value in zip(
                config.target_names, config.target_units, model_outputs["predictions"][row], strict=True
            ):
                properties.append({"name": name, "value": value, "unit": unit})
        elif "logits" in model_outputs:
            for name, unit, logit in zip(
                config.target_names, config.target_units, model_outputs["logits"][row], strict=True
            ):
                score = float(torch.sigmoid(torch.tensor(logit, dtype=torch.float64)))
                properties.append({"name": name, "value": score >= 0.5, "score": score, "unit": unit})
        result["properties"] = properties
        if return_embeddings or not self.has_trained_head:
            embedding = model_outputs.get("embeddings", model_outputs.get("pooler_output"))
            if embedding is not None:
                result["embedding"] = embedding[row]
        return result

    @staticmethod
    def _outputs_to_lists(model_outputs) -> dict[str, list]:
        # One device-to-host copy per output tensor, then plain Python numbers for the output dicts.
        return {
            name: value.detach().float().cpu().tolist()
            for name, value in model_outputs.items()
            if isinstance(value, torch.Tensor) and name not in ("loss", "last_hidden_state")
        }

    def _preprocess_all(self, items: list, per_item_atoms: list, num_workers: int):
        """Yield (index, features, error) for every item, in order; errors are [`CrystalInputError`]s.

        Parsing CIF/POSCAR text and the symmetry search are CPU-bound Python (GIL-bound), so with `num_workers` > 1
        they run in forked worker processes while the parent keeps the model; small calls stay in process.
        """
        jobs = [
            (index, item, atoms)
            for index, (item, atoms) in enumerate(zip(items, per_item_atoms, strict=True))
        ]
        use_workers = (
            num_workers > 1
            and len(jobs) >= 2 * num_workers
            and "fork" in multiprocessing.get_all_start_methods()
        )
        if not use_workers:
            for index, item, atoms in jobs:
                try:
                    yield index, self.preprocess(item, n_atoms=atoms, index=index), None
                except CrystalInputError as error:
                    yield index, None, error
            return
        # The tokenizers library warns in forked children once its thread pool has been used; the children only
        # tokenize one string at a time, so that pool is not needed there.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        chunksize = max(1, len(jobs) // (4 * num_workers))
        with ProcessPoolExecutor(
            max_workers=num_workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_preprocess_worker,
            initargs=(self,),
        ) as executor:
            for index, item_features, error_fields in executor.map(
                _preprocess_in_worker, jobs, chunksize=chunksize
            ):
                yield index, item_features, None if error_fields is None else CrystalInputError(*error_fields)

    # -- batched call --------------------------------------------------------------------------------------------
    def __call__(self, inputs, **kwargs):
        """Predict properties for one input (returns a dict) or a list of inputs (returns a list of dicts)."""
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or 64
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        num_workers = kwargs.pop("num_workers", None)
        num_workers = int(num_workers if num_workers is not None else (self._num_workers or 0))
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        errors = {**self._postprocess_params, **postprocess_params}.get("errors", "raise")
        return_embeddings = forward_params.get("return_embeddings", False)

        single = not isinstance(inputs, list)
        items = [inputs] if single else inputs
        n_atoms = preprocess_params.get("n_atoms")
        if isinstance(n_atoms, (list, tuple)):
            if single or len(n_atoms) != len(items):
                raise ValueError(f"n_atoms has {len(n_atoms)} entries for {len(items)} inputs")
            per_item_atoms = list(n_atoms)
        else:
            per_item_atoms = [n_atoms] * len(items)

        results: list[dict[str, Any] | None] = [None] * len(items)
        features: dict[int, dict[str, Any]] = {}
        for index, item_features, error in self._preprocess_all(items, per_item_atoms, num_workers):
            if error is None:
                features[index] = item_features
            elif errors == "raise":
                raise error
            else:
                results[index] = {"error": error.to_dict()}

        # Length-sorted batches padded to their own longest item: less padding, fewer wasted FLOPs.
        order = sorted(features, key=lambda i: len(features[i]["input_ids"]))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with self.device_placement(), torch.inference_mode():
            for start in range(0, len(order), int(batch_size)):
                rows = order[start : start + int(batch_size)]
                longest = max(len(features[i]["input_ids"]) for i in rows)
                input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
                for position, i in enumerate(rows):
                    ids = features[i]["input_ids"]
                    input_ids[position, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                    attention_mask[position, : len(ids)] = 1
                batch = {
                    "input_ids": input_ids,
                    "attention_mask": attention_mask,
                    "n_atoms": [features[i]["n_atoms"] for i in rows],
                }
                outputs = self._outputs_to_lists(self._forward(batch, **forward_params))
                for position, i in enumerate(rows):
                    results[i] = self.postprocess(
                        outputs, row=position, features=features[i], return_embeddings=return_embeddings
                    )
        return results[0] if single else results


__all__ = ["CrystalInputError", "CrystalPropertyPipeline"]
