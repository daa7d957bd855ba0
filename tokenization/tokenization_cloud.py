"""The CLOUD tokenizer: SCOPE strings (or structures, encoded on the fly) -> token ids.

One class serves both SCOPE versions; a saved tokenizer records its version in ``tokenizer_config.json``:

* ``"v1"``: the authors' BERT WordPiece vocabulary, id for id (564 tokens: 463 WordPiece entries plus 101 added
  fraction tokens ``0.0 ... 1.0``), so their released checkpoint sees exactly the ids it was trained on.
* ``"v2"``: a closed word-level vocabulary generated from the v2 grammar (``SCOPE_V2.md``); any ordered crystal
  with elements H-Og encodes without ``[UNK]``.

Both use ``[CLS]``=0, ``[PAD]``=1, ``[SEP]``=2, ``[UNK]``=3, ``[MASK]``=4, wrap inputs as ``[CLS] ... [SEP]``, return no
token type ids and have ``model_max_length`` 64.

This module is remote code: it is copied flat into checkpoints with its siblings and must not import this project's
packages by absolute name.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from .scope_defaults import (
    DEFAULT_ANGLE_TOLERANCE,
    DEFAULT_DISORDER,
    DEFAULT_MAX_LENGTH,
    DEFAULT_SCOPE_VERSION,
    DEFAULT_SYMPREC,
    DISORDER_POLICIES,
)
from .scope_encoding import SCOPE_VERSIONS, ScopeAnalyzer
from .scope_errors import ScopeError, ScopeTooLongError, UnsupportedScopeVersionError
from .scope_tables import V1_ADDED_TOKENS, V1_WORDPIECE_VOCAB
from .structure_io import describe_source, load_structure, load_structures

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")
OVERLENGTH_POLICIES = ("error", "warn")


def _post_processor() -> processors.TemplateProcessing:
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 0), ("[SEP]", 2)],
    )


def build_v1_backend() -> Tokenizer:
    """The authors' BERT WordPiece tokenizer (``do_lower_case=False``), rebuilt from their vocabulary table."""
    vocab = {token: index for index, token in enumerate(V1_WORDPIECE_VOCAB)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    # The fraction tokens are "added tokens" in the authors' tokenizer: matched whole before WordPiece, which
    # would otherwise split "0.5" at the dot. Their ids follow the WordPiece vocabulary (463-563).
    backend.add_tokens([AddedToken(t, normalized=True, special=False) for t in V1_ADDED_TOKENS])
    backend.post_processor = _post_processor()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def build_v2_backend() -> Tokenizer:
    """A closed word-level vocabulary over the v2 grammar; tokens are separated by single spaces."""
    from .scope_v2 import V2_TOKENS

    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *V2_TOKENS):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    backend.post_processor = _post_processor()
    return backend


_V2_START = re.compile(r"SG\d{1,3} ")


def is_scope_string(item: Any) -> bool:
    """True for a SCOPE string, False for structures, paths and CIF/POSCAR text.

    A SCOPE string is one line that holds v1's `` | `` separators or starts with v2's space-group token ``SG<n>``.
    """
    return isinstance(item, str) and "\n" not in item and ("|" in item or _V2_START.match(item) is not None)


class CloudTokenizerFast(PreTrainedTokenizerFast):
    """Tokenizer for CLOUD: SCOPE strings, or crystal structures encoded to SCOPE on the fly.

    Inputs may be SCOPE strings or anything :func:`load_structure` reads (pymatgen ``Structure``, ASE ``Atoms``,
    CIF/POSCAR text, a file path, a pymatgen dict, ``(lattice, frac_coords, species)``). Structures are encoded with
    the tokenizer's ``scope_version``, ``symprec``, ``angle_tolerance`` and ``disorder`` policy (``"encode"``
    partially occupied and mixed sites, the default, or ``"raise"``), which are saved with it.

    Inputs longer than ``model_max_length`` are never cut silently: with ``overlength="error"`` (default) they raise
    :class:`ScopeTooLongError` naming the item; with ``"warn"`` they are truncated with a logged warning.

    Example:
        >>> from tokenization import CloudTokenizerFast
        >>> tok = CloudTokenizerFast.from_scope_version("v1")
        >>> tok("1 4 b O O O c O O O d O O O e O O O 0 | 1a 1b 3d | Sr 0.2 Ti 0.2 O 0.6")["input_ids"][:4]
        [0, 7, 10, 41]
        >>> batch = tok(["0 0 0 | 1a | Si 1.0", "1 0 0 | 1a 2i | Na 0.33 Cl 0.67"], padding=True, return_tensors="pt")
        >>> tuple(batch["input_ids"].shape)
        (2, 13)
    """

    vocab_files_names: dict[str, str] = {}
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = None

    def __init__(
        self,
        *args,
        scope_version: str = DEFAULT_SCOPE_VERSION,
        symprec: float = DEFAULT_SYMPREC,
        angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
        overlength: str = "error",
        disorder: str = DEFAULT_DISORDER,
        **kwargs,
    ):
        if scope_version not in SCOPE_VERSIONS:
            raise UnsupportedScopeVersionError(
                f"unknown SCOPE version {scope_version!r}; choose one of {', '.join(SCOPE_VERSIONS)}"
            )
        if overlength not in OVERLENGTH_POLICIES:
            raise ValueError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {overlength!r}")
        if kwargs.get("tokenizer_object") is None and not kwargs.get("tokenizer_file"):
            kwargs["tokenizer_object"] = build_v1_backend() if scope_version == "v1" else build_v2_backend()
        for name, token in zip(
            ("cls_token", "pad_token", "sep_token", "unk_token", "mask_token"), SPECIAL_TOKENS, strict=True
        ):
            kwargs.setdefault(name, token)
        kwargs.setdefault("model_max_length", DEFAULT_MAX_LENGTH)
        self.scope_version = scope_version
        self.symprec = float(symprec)
        self.angle_tolerance = float(angle_tolerance)
        self.overlength = overlength
        if disorder not in DISORDER_POLICIES:
            raise ValueError(f"disorder must be one of {DISORDER_POLICIES}, got {disorder!r}")
        self.disorder = disorder
        super().__init__(
            *args,
            scope_version=scope_version,
            symprec=self.symprec,
            angle_tolerance=self.angle_tolerance,
            overlength=overlength,
            disorder=disorder,
            **kwargs,
        )

    @classmethod
    def from_scope_version(cls, version: str = DEFAULT_SCOPE_VERSION, **kwargs) -> CloudTokenizerFast:
        """Build the tokenizer for a SCOPE version with no files at hand (``"v1"``: the authors' ids)."""
        return cls(scope_version=version, **kwargs)

    # -- structures -> SCOPE ---------------------------------------------------------------------------------
    def load_structure(self, structure: Any, source: str | None = None, disorder: str | None = None):
        """Parse and validate a structure input (see :func:`load_structure`) with this tokenizer's (or the given)
        disorder policy."""
        return load_structure(structure, source=source, disorder=disorder or self.disorder)

    def load_structures(self, structure: Any, source: str | None = None, disorder: str | None = None) -> list:
        """Every crystal of an input, validated, failures in place (see :func:`structure_io.load_structures`):
        ``[(source, Structure or ScopeError)]``, one per CIF data block or extxyz frame."""
        return load_structures(structure, source=source, disorder=disorder or self.disorder)

    def analyze(
        self,
        structure: Any,
        source: str | None = None,
        validated: bool = False,
        disorder: str | None = None,
        max_length: int | None = None,
        check_length: bool = True,
    ) -> ScopeAnalyzer:
        """A :class:`ScopeAnalyzer` of ``structure`` with this tokenizer's tolerances and disorder policy (or the
        given one): the input is read and validated once; its SCOPE strings, space group and atom count are views
        of it.

        With ``overlength="error"`` and ``check_length``, a v2 string longer than ``max_length`` (default
        ``model_max_length``, ``[CLS]`` and ``[SEP]`` included) is refused with :class:`ScopeTooLongError` right
        after the first symmetry search, before the costlier tolerance-edge search (``encode_v2``)."""
        limit = None
        if check_length and self.overlength == "error":
            limit = max_length or self.model_max_length
            limit = limit if limit is not None and limit <= 10**6 else None
        return ScopeAnalyzer(
            structure,
            source=source,
            symprec=self.symprec,
            angle_tolerance=self.angle_tolerance,
            disorder=disorder or self.disorder,
            validated=validated,
            max_length=limit,
        )

    def encode_structure(self, structure: Any, source: str | None = None) -> str:
        """The SCOPE string of ``structure`` with this tokenizer's version and tolerances (a v2 string too long for
        ``model_max_length`` raises :class:`ScopeTooLongError` under ``overlength="error"``, as in :meth:`analyze`)."""
        return self.analyze(structure, source=source).get_scope(self.scope_version)

    def scope_from_structure(self, structure) -> str:
        """The SCOPE string of an already validated pymatgen ``Structure`` (skips parsing and validation; lengths
        checked as in :meth:`analyze`)."""
        return self.analyze(structure, validated=True).get_scope(self.scope_version)

    def as_scope(
        self,
        item: Any,
        index: int | None = None,
        disorder: str | None = None,
        max_length: int | None = None,
        check_length: bool = True,
    ) -> str:
        """``item`` itself if it is a SCOPE string, else its SCOPE encoding (with this tokenizer's disorder policy,
        or ``disorder``; lengths checked as in :meth:`analyze`). Errors name the item and its index."""
        if is_scope_string(item):
            return item
        source = describe_source(item) if index is None else f"item {index} ({describe_source(item)})"
        analyzer = self.analyze(
            item, source=source, disorder=disorder, max_length=max_length, check_length=check_length
        )
        return analyzer.get_scope(self.scope_version)

    # -- calling ----------------------------------------------------------------------------------------------
    def __call__(self, text=None, text_pair=None, *args, disorder: str | None = None, **kwargs):
        if text is not None:
            # Structures too long for the model are refused at their first symmetry search unless truncated.
            limits = {"max_length": kwargs.get("max_length"), "check_length": not kwargs.get("truncation")}
            if isinstance(text, (list, tuple)):
                text = [self.as_scope(item, index, disorder, **limits) for index, item in enumerate(text)]
            else:
                text = self.as_scope(text, disorder=disorder, **limits)
            self._check_length(text, kwargs)
        return super().__call__(text, text_pair, *args, **kwargs)

    def _check_length(self, text: str | Sequence[str], call_kwargs: dict) -> None:
        """Refuse (or warn about) SCOPE strings longer than the maximum, so truncation is never silent."""
        max_length = call_kwargs.get("max_length") or self.model_max_length
        if max_length is None or max_length > 10**6:
            return
        texts = [text] if isinstance(text, str) else list(text)
        add_special = call_kwargs.get("add_special_tokens", True)
        encodings = self.backend_tokenizer.encode_batch(texts, add_special_tokens=add_special)
        too_long = [(i, len(e.ids)) for i, e in enumerate(encodings) if len(e.ids) > max_length]
        if not too_long:
            return
        index, length = too_long[0]
        message = (
            f"SCOPE string has {length} tokens, above the maximum {max_length} "
            f"({len(too_long)} of {len(texts)} inputs are too long)"
        )
        if self.overlength == "error" and not call_kwargs.get("truncation"):
            raise ScopeTooLongError(
                message + "; raise model_max_length, or pass truncation=True to cut them with a warning",
                f"item {index}",
            )
        logger.warning("item %d: %s; truncating to %d tokens", index, message, max_length)
        call_kwargs["truncation"] = True
        call_kwargs.setdefault("max_length", max_length)

    def batch_structures_to_scope(
        self, structures: Sequence[Any], errors: str = "raise"
    ) -> list[str | ScopeError]:
        """SCOPE strings for many inputs; ``errors="return"`` puts each failure in place as its ``ScopeError``."""
        out: list[str | ScopeError] = []
        for index, item in enumerate(structures):
            try:
                out.append(self.as_scope(item, index))
            except ScopeError as exc:
                if errors == "raise":
                    raise
                out.append(exc)
        return out

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        # Record the SCOPE settings so that a reloaded tokenizer encodes structures identically.
        self.init_kwargs.update(
            scope_version=self.scope_version,
            symprec=self.symprec,
            angle_tolerance=self.angle_tolerance,
            overlength=self.overlength,
        )
        return super().save_pretrained(save_directory, *args, **kwargs)
