# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The "crystal-property" pipeline: crystal structures in, predicted properties with units out.

Written on [`~transformers.Pipeline`]'s contract, like `TextClassificationPipeline`: `preprocess` reads one item and
returns tensors, `_forward` runs the model, `postprocess` returns one dict. The base class handles single items,
`KeyDataset`s, generators, `batch_size` (padding per batch) and `num_workers` (DataLoader worker processes that
read and encode structures); a list is batched by string length (`get_iterator`) and answered in input order.

This file is remote code: `save_pretrained` copies it into property checkpoints, and it imports only pip packages
and its siblings (`from .x import y`). Structures are read and encoded by the tokenizer object's own methods
(`tokenizer.load_structure`, `tokenizer.scope_from_structure`), never by importing the tokenizer package.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from typing import Any

import torch
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.base import PipelineDataset, PipelineIterator, no_collate_fn, pad_collate_fn
from transformers.utils import logging

from .input_names import describe_source
from .modeling_cloud import CloudDebyeOutput

logger = logging.get_logger(__name__)

_ERROR_POLICIES = ("raise", "return")
#: Bases of the Debye outputs: per mole of formula units (reduced formula), of atoms, or of the input's cells.
BASES = ("formula_unit", "atom", "cell")
#: Output formatter of each architecture (`config.architectures[0]`); `None`: no trained head, embeddings only.
_FORMATTERS = {
    "CloudForPropertyRegression": "_format_regression",
    "CloudForPropertyClassification": "_format_classification",
    "CloudDebyeModel": "_format_debye",
    "CloudModel": None,
    "CloudForMaskedLM": None,
}
_MODEL_OUTPUTS_SKIPPED = ("loss", "last_hidden_state", "hidden_states", "attentions")
#: The reason code of a failure that is not one of the tokenizer's typed errors (those carry their own code).
GENERIC_REASON = "invalid_input"
_V2_START = re.compile(r"SG\d{1,3} ")
_WYCKOFF = re.compile(r"^(\d+)[a-zA-Z]$")


class CrystalInputError(ValueError):
    """An input of the pipeline could not be read, encoded or tokenized.

    Attributes:
        index (`int`): position of the item in the call's inputs.
        item (`str`): short description of the item (path, formula, first characters of the text).
        reason (`str`): machine code of the failure, e.g. `"disordered_structure"` (see the README's table).
        error_type (`str`): class name of the underlying error, e.g. `"DisorderedStructureError"`.
        message (`str`): the underlying error's message; the error itself is chained as `__cause__`.
    """

    def __init__(self, index: int, item: str, reason: str, error_type: str, message: str):
        super().__init__(f"crystal-property input {index} ({item}): {error_type}: {message}")
        self.index = index
        self.item = item
        self.reason = reason
        self.error_type = error_type
        self.message = message

    @property
    def source(self) -> str:
        """The item's name in failure records: `"input <index> (<description>)"`."""
        return f"input {self.index} ({self.item})"

    def to_dict(self) -> dict[str, str]:
        """The failure record `{"source", "reason", "type", "message"}` shared by every CLOUD output."""
        return {
            "source": self.source,
            "reason": self.reason,
            "type": self.error_type,
            "message": self.message,
        }


def _is_scope_string(item: Any) -> bool:
    # SCOPE strings are single lines with v1's " | " separators or v2's leading "SG<n>" token; CIF/POSCAR texts
    # span lines and paths have neither.
    return isinstance(item, str) and "\n" not in item and ("|" in item or _V2_START.match(item) is not None)


def _v2_formula(scope: str) -> Composition | None:
    """The conventional-cell composition that a SCOPE v2 string spells out (one Wyckoff token per orbit)."""
    if not _V2_START.match(scope):
        return None
    counts: dict[str, int] = {}
    element = None
    for token in scope.split()[1:]:
        wyckoff = _WYCKOFF.match(token)
        if wyckoff and element is not None:
            counts[element] = counts.get(element, 0) + int(wyckoff.group(1))
        elif token[:1].isalpha() and Element.is_valid_symbol(token):
            element = token
    return Composition(counts) if counts else None


def _failure(error: Exception) -> dict[str, Any]:
    """The picklable failure marker that `preprocess` returns for an item it could not read."""
    reason = getattr(error, "reason", None)
    # In a DataLoader worker the marker crosses a process boundary by pickling, which not every third-party
    # exception survives: there only its fields travel (the typed error is rebuilt from them in postprocess).
    cause: Exception | None = error if torch.utils.data.get_worker_info() is None else None
    return {
        "reason": reason if isinstance(reason, str) else GENERIC_REASON,
        "type": type(error).__name__,
        "message": str(getattr(error, "message", None) or error),
        "cause": cause,
    }


def _unexpected_failure(error: Exception) -> dict[str, Any]:
    """The failure marker of an exception that no reader or encoder typed, in the shape of the tokenizer's
    `scope_errors.typed_error` (this file cannot import it): a `MemoryError` is a `ResourceLimitError`
    (`resource_limit`), anything else an `InternalEncodingError` (`internal_error`) naming the original class."""
    if isinstance(error, MemoryError):
        marker = {
            "reason": "resource_limit",
            "type": "ResourceLimitError",
            "message": f"ran out of memory ({error})",
        }
    else:
        message = f"unexpected {type(error).__name__}: {error}"
        marker = {"reason": "internal_error", "type": "InternalEncodingError", "message": message}
    return {**marker, "cause": error if torch.utils.data.get_worker_info() is None else None}


class CrystalPropertyPipeline(Pipeline):
    """
    Predict crystal properties with a CLOUD checkpoint.

    Inputs: a pymatgen `Structure`, an ASE `Atoms`, CIF or POSCAR text, a path to such a file, a SCOPE string, or a
    dict `{"structure": ..., "n_atoms": ..., "formula": ..., "source": ...}` / `{"scope": ..., ...}` (a row of a
    `datasets.Dataset`, say; `source`, `material_id` or `id` names the row in errors). One item, a list, a
    `KeyDataset`, a generator or a `datasets.Dataset` of items. A tuple is one `(lattice, frac_coords, species)`
    structure, not a list.

    Output: one dict per input with `scope`, `n_atoms` (atoms in the input's cell; `None` for a bare SCOPE string),
    `formula` (reduced formula, when known), `notes` (reader notes, when there are any) and `properties`, a list of
    `{"name", "value", "unit"}`. What `properties` holds is chosen by `config.architectures[0]`:

    - `CloudForPropertyRegression`: one entry per target, in the checkpoint's units (`config.target_units`). A seed
      ensemble (`config.num_ensemble_members` > 1) gives the members' mean as `value`, and in the same unit: `std`,
      the predictive σ, calibrated on held-out rows when the checkpoint carries `config.uncertainty_calibration`
      (`calibrated: true`; ±`std` then covers about 68 % of errors and ±`interval_95` about 95 %), else the raw
      spread (`calibrated: false`); and `std_raw`, the members' population standard deviation. A single model has
      none of these;
    - `CloudForPropertyClassification`: `value` is the predicted label (bool) and `score` its probability;
    - `CloudDebyeModel`: `theta_debye` (K), then `heat_capacity`, `internal_energy`, `entropy` and `free_energy`,
      each a list of values at `temperatures` (K) with a `basis` and a unit that names it. The basis is, by default,
      one mole of formula units (`"formula_unit"`, the reduced formula, as JANAF and handbooks tabulate), so the
      primitive and the conventional cell of a crystal give the same numbers. `basis="atom"` gives per mole of atoms
      and `basis="cell"` per mole of the input's cells. A bare SCOPE v1 string does not fix its formula (its
      fractions are rounded): give `{"scope": ..., "formula": ...}`, or it is reported per mole of atoms and its
      `basis` says `"atom"`. A Debye ensemble adds `std`, `std_raw`, `calibrated` (and `interval_95`) to each
      entry, as above, a list per temperature for Cv, U, S and F: spreads of the members' values, each computed
      from the member's own θ_D;
    - `CloudModel` / `CloudForMaskedLM` (a pretrained encoder, no trained head): `properties` is empty and the
      pooled crystal embedding is returned under `embedding`, as it is for every model with `return_embeddings=True`
      (an ensemble gives one embedding per member).

    An input that holds several crystals (a CIF with several data blocks, a multi-frame extxyz), when the tokenizer
    can read them all (`tokenizer.load_structures`), gives a list in its place: one result per crystal, in file order,
    each with the crystal's `source` (`file.cif#KCl`, `frames.extxyz@3`).

    Call options: `batch_size` and `num_workers` (the base class's; a `datasets.Dataset` passed directly uses the
    pipeline's own, set with `pipeline(..., batch_size=N)`), `temperatures` (K, Debye models; default
    `config.debye_temperatures`), `basis` (Debye models, see above), `n_atoms` (atoms per cell for SCOPE-string
    inputs; per item through dict inputs), `return_embeddings`, and `errors`: `"raise"` (default) raises a
    [`CrystalInputError`] naming the first bad item's index; `"return"` puts `{"error": {"source", "reason", "type",
    "message"}}` in that item's place and predicts the others.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> predictor = pipeline("crystal-property", model="path/to/cloud-debye", trust_remote_code=True)  # doctest: +SKIP
    >>> predictor("NaCl.cif", temperatures=[100, 300])  # doctest: +SKIP
    {'scope': 'SG225 Na 0.5 4a Cl 0.5 4b', 'n_atoms': 8, 'formula': 'NaCl', 'properties': [{'name': 'theta_debye',
     'value': ..., 'unit': 'K'}, {'name': 'heat_capacity', 'value': [..., ...], 'unit': 'J/(K·mol-fu)',
     'temperatures': [100.0, 300.0], 'temperature_unit': 'K', 'basis': 'formula_unit'}, ...]}
    >>> from transformers.pipelines.pt_utils import KeyDataset  # doctest: +SKIP
    >>> results = list(predictor(KeyDataset(dataset, "structure"), batch_size=64, errors="return"))  # doctest: +SKIP

    ```
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for method in ("load_structure", "scope_from_structure"):
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
        architectures = getattr(self.model.config, "architectures", None) or [type(self.model).__name__]
        self.architecture = architectures[0]
        if self.architecture not in _FORMATTERS:
            raise ValueError(
                f"crystal-property does not know the architecture {self.architecture!r} "
                f"(config.architectures); expected one of {sorted(_FORMATTERS)}"
            )
        formatter = _FORMATTERS[self.architecture]
        self._format = getattr(self, formatter) if formatter else None
        self.has_trained_head = self._format is not None
        self.is_debye = self.architecture == "CloudDebyeModel"
        self._accepts_return_embeddings = (
            "return_embeddings" in inspect.signature(self.model.forward).parameters
        )
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
        self,
        temperatures=None,
        n_atoms=None,
        basis=None,
        return_embeddings=None,
        errors=None,
        disorder=None,
        **unused,
    ) -> tuple[dict, dict, dict]:
        if unused:
            raise TypeError(f"crystal-property got unknown options: {sorted(unused)}")
        preprocess_params: dict[str, Any] = {}
        forward_params: dict[str, Any] = {}
        # A fresh counter per call numbers the items in `postprocess`, which sees them in input order.
        postprocess_params: dict[str, Any] = {"counter": itertools.count()}
        if n_atoms is not None:
            if isinstance(n_atoms, (list, tuple)):
                raise TypeError(
                    "n_atoms= is one number for every SCOPE-string input; give per-item counts in dict inputs, "
                    '{"scope": ..., "n_atoms": ...}'
                )
            preprocess_params["n_atoms"] = n_atoms
        if basis is not None:
            if basis not in BASES:
                raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
            preprocess_params["basis"] = basis
        if disorder is not None:
            if disorder not in ("encode", "raise"):
                raise ValueError(f"disorder must be 'encode' or 'raise', got {disorder!r}")
            preprocess_params["disorder"] = disorder
        if temperatures is not None:
            forward_params["temperatures"] = temperatures
        if return_embeddings is not None:
            forward_params["return_embeddings"] = bool(return_embeddings)
            postprocess_params["return_embeddings"] = bool(return_embeddings)
        if errors is not None:
            if errors not in _ERROR_POLICIES:
                raise ValueError(f"errors must be one of {_ERROR_POLICIES}, got {errors!r}")
            postprocess_params["errors"] = errors
        postprocess_params["call_options"] = {
            name: value
            for name, value in dict(
                temperatures=temperatures, basis=basis, return_embeddings=return_embeddings
            ).items()
            if value is not None
        }
        return preprocess_params, forward_params, postprocess_params

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        """As the base class, but a list (which `__call__` consumes eagerly anyway) runs the model on batches of
        strings of similar length and returns the outputs in input order.

        The base class pads each batch of `batch_size` items, in input order, to its longest string. SCOPE strings
        vary a lot in length (v2: 12.8 tokens on average, up to 60), so a batch usually carries several times the
        tokens it needs; at BERT-base size the encoder is over 90 % of the time, and sorting by length cuts it by
        about that ratio (`benchmarks/bench_inference.py`). Every item is read and encoded first (in `num_workers`
        processes when set), then sorted by token count; `postprocess` still sees the items in input order.
        Datasets, generators and `batch_size=1` keep the base class's streaming path.
        """
        if not isinstance(inputs, list) or batch_size <= 1 or len(inputs) <= batch_size:
            return super().get_iterator(
                inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params
            )
        reader = DataLoader(
            PipelineDataset(inputs, self.preprocess, preprocess_params),
            num_workers=num_workers,
            batch_size=1,
            collate_fn=no_collate_fn,
        )
        outputs = self.forward_features(list(reader), batch_size, forward_params)
        return PipelineIterator(outputs, self.postprocess, postprocess_params)

    def forward_features(
        self, features: list[dict[str, Any]], batch_size: int, forward_params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Run the model on items that `preprocess` already encoded, in batches of strings of similar length.

        Args:
            features: `preprocess` outputs, one per item.
            batch_size: items per forward pass.
            forward_params: the `_forward` options (the second dict of `_sanitize_parameters`).

        Returns:
            One model output per item, in the order of `features`, for `postprocess`. `get_iterator` and the
            screening runner (`modeling_cloud.screening`, which encodes in its own worker processes) both call it.
        """
        if not features:
            return []
        if batch_size == 1:
            # As the base `__call__` runs batch_size=1: each item as `preprocess` gave it, not collated (transformers'
            # `PipelineIterator` does not unroll batches of one, so collated items would reach `postprocess` as lists).
            return [self.forward(feature, **forward_params) for feature in features]
        order = sorted(range(len(features)), key=lambda index: features[index]["input_ids"].shape[-1])
        batches = DataLoader(
            [features[index] for index in order],
            batch_size=batch_size,
            collate_fn=pad_collate_fn(self.tokenizer, None),
        )
        sorted_outputs = list(
            PipelineIterator(batches, self.forward, forward_params, loader_batch_size=batch_size)
        )
        outputs: list[Any] = [None] * len(features)
        for position, index in enumerate(order):
            outputs[index] = sorted_outputs[position]
        return outputs

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        # A `datasets.Dataset` / `IterableDataset` is not a torch Dataset, so the base `__call__` sees one item; read
        # it row by row through the same iterator as a `KeyDataset` (the pipeline's own batch_size and num_workers).
        if type(inputs).__module__.startswith("datasets.") and hasattr(inputs, "column_names"):
            return self.get_iterator(
                inputs,
                self._num_workers or 0,
                self._batch_size or 1,
                preprocess_params,
                forward_params,
                postprocess_params,
            )
        return super().run_single(inputs, preprocess_params, forward_params, postprocess_params)

    def preprocess(
        self, item: Any, n_atoms: int | None = None, basis: str = "formula_unit", disorder: str | None = None
    ) -> dict[str, Any]:
        """Read one input and return its token ids and what the output needs.

        Returns:
            `dict`: `input_ids` and `attention_mask` (`torch.LongTensor` of shape `(1, sequence_length)`),
            `atoms_per_unit` (`torch.FloatTensor` of shape `(1,)`: atoms in one mole-unit of the Debye `basis`), and
            plain values `scope`, `n_atoms`, `formula`, `basis`, `notes`, `description`, `crystals` (several
            crystals read from one input) and `failure` (`None`, or the failure marker of an unreadable item: a
            bad item never raises here, `postprocess` reports it at its index).
        """
        features: dict[str, Any] = {
            "scope": None,
            "n_atoms": None,
            "formula": None,
            "basis": basis,
            "notes": [],
            "description": describe_source(item),
            "crystals": None,
            "failure": None,
        }
        units = 1.0
        try:
            units = self._read(item, n_atoms, basis, features, disorder)
            input_ids = self.tokenizer(features["scope"])["input_ids"]
            unknown = self.tokenizer.unk_token_id
            if unknown is not None and unknown in input_ids:
                raise ValueError(f"SCOPE string has tokens outside the vocabulary: {features['scope']!r}")
        except _SeveralCrystals:
            input_ids = [
                self.tokenizer.cls_token_id,
                self.tokenizer.sep_token_id,
            ]  # postprocess reads each crystal
        except (ValueError, TypeError, OSError, KeyError) as error:
            features["failure"] = _failure(error)
            input_ids = [self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]  # a placeholder row
        except Exception as error:  # MemoryError, or a bug: a typed record for this item, the rest go on
            features["failure"] = _unexpected_failure(error)
            input_ids = [self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "attention_mask": torch.ones((1, len(input_ids)), dtype=torch.long),
            "atoms_per_unit": torch.tensor([units], dtype=torch.float32),
            **features,
        }

    def _warn_if_disorder_is_new(self, ordered: bool) -> None:
        """A disordered crystal given to a model trained on ordered crystals only: allowed, but said once."""
        if ordered or getattr(self.model.config, "trained_with_disorder", False) or self._warned_disorder:
            return
        self._warned_disorder = True
        logger.warning(
            "a disordered crystal was given to a model trained on ordered crystals only "
            "(config.trained_with_disorder is False); its prediction is an extrapolation"
        )

    _warned_disorder = False

    def _read(
        self,
        item: Any,
        n_atoms: int | None,
        basis: str,
        features: dict[str, Any],
        disorder: str | None = None,
    ) -> float:
        """Fill `features` (scope, n_atoms, formula, basis, notes) for `item`; return atoms per basis unit."""
        if isinstance(item, Exception):  # an input that a reader already refused (e.g. one crystal of a file)
            raise item
        formula = None
        if isinstance(item, dict) and ("scope" in item or "structure" in item):
            n_atoms = item.get("n_atoms", n_atoms)
            formula = item.get("formula")
            name = next(
                (item[key] for key in ("source", "material_id", "id") if item.get(key) is not None), None
            )
            item = item["scope"] if item.get("scope") is not None else item["structure"]
            features["description"] = str(name) if name is not None else describe_source(item)
        composition = Composition(formula) if formula else None
        if _is_scope_string(item):
            scope = item.strip()
            self._check_scope_words(scope)
            composition = composition or _v2_formula(scope)
        else:
            load_all = getattr(self.tokenizer, "load_structures", None)
            analyze = getattr(self.tokenizer, "analyze", None)  # tokenizers older than the analyser lack it
            policy = {"disorder": disorder} if disorder is not None else {}
            analyzer = None
            if load_all is not None and (isinstance(item, str) or hasattr(item, "__fspath__")):
                crystals = load_all(item, source=features["description"], **policy)
                if len(crystals) > 1:
                    features["crystals"] = crystals
                    raise _SeveralCrystals()
                (_, structure), *_ = crystals
                if isinstance(structure, Exception):
                    raise structure
                if analyze is not None:
                    analyzer = analyze(structure, source=features["description"], validated=True, **policy)
            elif analyze is not None:
                analyzer = analyze(item, source=features["description"], **policy)  # read and validated once
                structure = analyzer.structure
            else:
                structure = self.tokenizer.load_structure(item, **policy)
            # Atoms per cell: occupancies summed, so a disordered site counts its occupied share.
            n_atoms = float(structure.composition.num_atoms)
            self._warn_if_disorder_is_new(structure.is_ordered)
            composition = structure.composition
            if analyzer is not None:
                scope = analyzer.get_scope(self.tokenizer.scope_version)
            else:
                scope = self.tokenizer.scope_from_structure(structure)
            features["notes"] = list((getattr(structure, "properties", None) or {}).get("reader_notes", []))
        if n_atoms is not None and not (isinstance(n_atoms, (int, float)) and n_atoms > 0):
            raise ValueError(f"n_atoms must be a positive number, got {n_atoms!r}")
        features.update(scope=scope, n_atoms=n_atoms)
        if composition is not None:
            reduced = composition.reduced_composition
            features["formula"] = reduced.reduced_formula
        if basis == "cell":
            if n_atoms is None:
                raise ValueError(
                    'basis="cell" needs the atoms per cell: a structure, or n_atoms for a SCOPE string'
                )
            return float(n_atoms)
        if basis == "formula_unit" and composition is not None:
            return float(composition.reduced_composition.num_atoms)
        features["basis"] = "atom"
        return 1.0

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
        kwargs: dict[str, Any] = {}
        if self._accepts_return_embeddings:
            kwargs["return_embeddings"] = return_embeddings or not self.has_trained_head
        if self.is_debye:
            kwargs["n_atoms"] = model_inputs["atoms_per_unit"]
            if temperatures is not None:
                kwargs["temperatures"] = torch.as_tensor(
                    temperatures, dtype=torch.float32, device=self.device
                )
        outputs = self.model(
            input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"], **kwargs
        )
        # Tensors first: the base iterator reads the batch size from the first entry.
        record = {
            name: value
            for name, value in outputs.items()
            if isinstance(value, torch.Tensor) and name not in _MODEL_OUTPUTS_SKIPPED
        }
        for name in ("scope", "n_atoms", "formula", "basis", "notes", "description", "crystals", "failure"):
            record[name] = model_inputs[name]
        return record

    def postprocess(
        self,
        model_outputs,
        errors: str = "raise",
        return_embeddings: bool = False,
        counter=None,
        call_options=None,
    ):
        """The result dict of one item (or a list of them for an input holding several crystals).

        Raises:
            [`CrystalInputError`]: with `errors="raise"`, for an item that could not be read; it names the item's
            index and description and chains the original error.
        """
        index = next(counter) if counter is not None else 0
        failure = model_outputs["failure"]
        if model_outputs["crystals"] is not None:
            return self._several_crystals(index, model_outputs, errors, call_options or {})
        if failure is not None:
            error = CrystalInputError(
                index, model_outputs["description"], failure["reason"], failure["type"], failure["message"]
            )
            if errors == "raise":
                raise error from failure["cause"]
            return {"error": error.to_dict()}
        result: dict[str, Any] = {
            "scope": model_outputs["scope"],
            "n_atoms": model_outputs["n_atoms"],
            "formula": model_outputs["formula"],
        }
        if model_outputs["notes"]:
            result["notes"] = list(model_outputs["notes"])
        result["properties"] = self._format(model_outputs) if self._format is not None else []
        if return_embeddings or not self.has_trained_head:
            embedding = model_outputs.get("embeddings", model_outputs.get("pooler_output"))
            if embedding is not None:
                result["embedding"] = embedding[0].float().tolist()
        return result

    def _several_crystals(self, index: int, model_outputs, errors: str, call_options: dict) -> list[dict]:
        items = []
        for source, crystal in model_outputs["crystals"]:
            if isinstance(crystal, Exception):
                items.append(crystal)
            else:
                items.append({"structure": crystal, "source": source})
        results = self(items, errors="return", **call_options)
        for (source, _), result in zip(model_outputs["crystals"], results, strict=True):
            if "error" in result:
                result["error"]["source"] = source
                if errors == "raise":
                    error = result["error"]
                    raise CrystalInputError(index, source, error["reason"], error["type"], error["message"])
            else:
                result["source"] = source
        return results

    # -- output formatters, one per architecture ----------------------------------------------------------------
    def _format_regression(self, model_outputs) -> list[dict[str, Any]]:
        config = self.model.config
        values = model_outputs["predictions"][0].float().tolist()
        properties = [
            {"name": name, "value": value, "unit": unit}
            for name, unit, value in zip(config.target_names, config.target_units, values, strict=True)
        ]
        spread = model_outputs.get("predictions_std_raw")
        if spread is not None:  # an ensemble: σ and the members' raw spread, in the value's unit
            sigma = model_outputs["predictions_std"][0].float().tolist()
            for prop, std, raw in zip(properties, sigma, spread[0].float().tolist(), strict=True):
                self._add_uncertainty(prop, prop["name"], std, raw)
        return properties

    def _add_uncertainty(self, prop: dict[str, Any], calibrated_name: str, std, raw) -> None:
        """`std` (σ: calibrated when the checkpoint is), `std_raw` (the members' spread), `calibrated` and, when
        calibrated, `interval_95` (half-width of the 95.45 % interval, = 2σ for the Gaussian calibration)."""
        factors = self.model.config.uncertainty_factors(calibrated_name)
        prop["std"] = std
        prop["std_raw"] = raw
        prop["calibrated"] = factors is not None
        if factors is not None:
            k95, a95 = factors[1], self.model.config.uncertainty_floors(calibrated_name)[1]
            prop["interval_95"] = (
                [math.hypot(a95, k95 * v) for v in raw]
                if isinstance(raw, list)
                else math.hypot(a95, k95 * raw)
            )

    def _format_classification(self, model_outputs) -> list[dict[str, Any]]:
        config = self.model.config
        scores = torch.sigmoid(model_outputs["logits"][0].double()).tolist()
        return [
            {"name": name, "value": score >= 0.5, "score": score, "unit": unit}
            for name, unit, score in zip(config.target_names, config.target_units, scores, strict=True)
        ]

    def _format_debye(self, model_outputs) -> list[dict[str, Any]]:
        basis = model_outputs["basis"]
        theta = float(model_outputs["theta_debye"][0])
        properties = [{"name": "theta_debye", "value": theta, "unit": CloudDebyeOutput.unit("theta_debye")}]
        temperatures = model_outputs["temperatures"][0].float().tolist()
        for name in CloudDebyeOutput.THERMODYNAMIC_FIELDS:
            values = model_outputs[name][0].float().tolist()
            properties.append(
                {
                    "name": name,
                    "value": values,
                    "unit": CloudDebyeOutput.unit(name, basis),
                    "temperatures": temperatures,
                    "temperature_unit": CloudDebyeOutput.unit("temperatures"),
                    "basis": basis,
                }
            )
        if (
            model_outputs.get("theta_debye_std_raw") is not None
        ):  # an ensemble: σ of every field from θ_D's spread
            for prop in properties:
                std = model_outputs[f"{prop['name']}_std"][0].float().tolist()
                raw = model_outputs[f"{prop['name']}_std_raw"][0].float().tolist()
                self._add_uncertainty(prop, CloudDebyeOutput.CALIBRATED_FIELD, std, raw)
        if not all(math.isfinite(v) for p in properties[1:] for v in p["value"]):
            logger.warning("crystal-property: non-finite thermodynamic values for θ_D = %s K", theta)
        return properties


class _SeveralCrystals(ValueError):
    """Internal: the input holds several crystals (`preprocess` hands them to `postprocess`, never raised out)."""


__all__ = ["BASES", "CrystalInputError", "CrystalPropertyPipeline"]
