"""Structure -> SCOPE string.

SCOPE (Xu, Zhu & Viswanathan, arXiv 2506.17345) writes a crystal as three parts joined by `` | ``::

    <space-group generator characters> | <Wyckoff symbols> | <element fraction pairs>

``"v1"`` is the authors' encoding, reproduced exactly (it is what their released tokenizer and weights saw):

* the generator string of the space group (authors' 230-entry table), one character per token;
* spglib's Wyckoff letter of every input site, written multiplicity+letter (conventional-cell multiplicity),
  de-duplicated in order of first appearance over the sites;
* ``El frac`` for the fractional composition in order of first appearance, ``frac = str(round(x, 2))``.

Symmetry uses pymatgen's ``SpacegroupAnalyzer`` defaults: symprec 0.01 A, angle tolerance 5 degrees. v1 depends
on the site order and merges orbits that share a Wyckoff letter; ``"v2"`` (see ``SCOPE_V2.md``) is the canonical
encoding for new models.

This module is remote code (copied flat into checkpoints): it imports only pip packages and its siblings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pymatgen.core import Structure

from .scope_defaults import (
    DEFAULT_ANGLE_TOLERANCE,
    DEFAULT_DISORDER,
    DEFAULT_SCOPE_VERSION,
    DEFAULT_SYMPREC,
    DISORDER_POLICIES,
)
from .scope_errors import ScopeError, UnsupportedScopeVersionError, typed_error
from .scope_tables import GENERATOR_STRINGS, WYCKOFF_MULTIPLICITIES
from .structure_io import DEFAULT_OVERLAP_TOLERANCE, describe_source, load_structure
from .symmetry_search import check_tolerances, search_symmetry, searched_tolerance

SCOPE_VERSIONS = ("v1", "v2")
PART_SEPARATOR = " | "


def spglib_cell(structure: Structure) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The (lattice, fractional positions, type ids) cell that pymatgen's SpacegroupAnalyzer hands to spglib.

    Types are numbered by order of first appearance of each species, as pymatgen does; only equality of types
    matters to spglib, so this gives the same symmetry as atomic numbers would.
    """
    type_of: dict[Any, int] = {}
    # site.species (a Composition) rather than site.specie: a mixed or partially occupied site is its own type,
    # one per distinct mixture, as in pymatgen's SpacegroupAnalyzer.
    types = [type_of.setdefault(site.species, len(type_of) + 1) for site in structure]
    return structure.lattice.matrix, structure.frac_coords, types


def symmetry_dataset(
    structure: Structure,
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    source: str | None = None,
):
    """spglib's symmetry dataset for ``structure`` on the cell of :func:`spglib_cell`.

    Args:
        structure: an ordered pymatgen ``Structure``.
        symprec: distance tolerance in Å (default 0.01, pymatgen's).
        angle_tolerance: angle tolerance in degrees (default 5, pymatgen's). If spglib finds nothing at it, the
            search is repeated once with spglib's automatic angle tolerance (``-1``), as spglib recommends.
        source: name of the input for error messages.

    Raises:
        ValueError: ``symprec`` is not a positive number or ``angle_tolerance`` is not finite.
        SymmetrySearchError: spglib found no space group at either angle tolerance (the message names both).
    """
    return search_symmetry(
        spglib_cell(structure), symprec, angle_tolerance, source or describe_source(structure)
    ).dataset


def format_fraction(x: float) -> str:
    """The authors' fraction format: ``str(round(x, 2))``, e.g. ``0.5``, ``0.12``, ``1.0``, ``0.0``."""
    return str(round(x, 2))


def encode_v1(
    structure: Structure,
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    source: str | None = None,
) -> str:
    """The authors' SCOPE string of a validated ``structure`` (site order matters, as in their code).

    A structure read from a file whose coordinates are coarser than ``symprec`` is searched at its coordinate
    uncertainty instead (``symmetry_search.searched_tolerance``).
    """
    symprec = searched_tolerance(structure, symprec)
    dataset = symmetry_dataset(structure, symprec, angle_tolerance, source)
    number = int(dataset.number)
    multiplicities = WYCKOFF_MULTIPLICITIES[number]
    wyckoff_symbols: dict[str, None] = {}  # an ordered set: first appearance over the input sites
    for letter in dataset.wyckoffs:
        wyckoff_symbols.setdefault(f"{multiplicities[letter]}{letter}", None)
    composition = structure.composition.fractional_composition
    composition_part = " ".join(f"{el} {format_fraction(x)}" for el, x in composition.items())
    return PART_SEPARATOR.join(
        (" ".join(GENERATOR_STRINGS[number]), " ".join(wyckoff_symbols), composition_part)
    )


def _encoder_for(version: str):
    if version == "v1":
        return encode_v1
    if version == "v2":
        from .scope_v2 import encode_v2

        return encode_v2
    raise UnsupportedScopeVersionError(
        f"unknown SCOPE version {version!r}; choose one of {', '.join(SCOPE_VERSIONS)}"
    )


class ScopeAnalyzer:
    """One crystal, validated once, and its SCOPE views, each computed on first use and cached.

    In the manner of pymatgen's `SpacegroupAnalyzer`: the input is read and validated once (`load_structure`); the
    symmetry search runs once per site ordering a view needs (v1 searches the sites in input order, as the authors'
    code does; v2 in its canonical order) and is kept. The tokenizer, the pipeline, the command line and the
    dataset builders all encode through this object.

    Args:
        structure: anything `load_structure` accepts, or an already validated pymatgen `Structure` with
            `validated=True`.
        source: the input's name in errors (defaults to `describe_source(structure)`).
        symprec: symmetry tolerance in Å (0.01, pymatgen's and the authors' default).
        angle_tolerance: angle tolerance in degrees (5).
        disorder: `"encode"` (default) or `"raise"` for partially occupied and mixed sites.
        overlap_tolerance: minimum distance between sites, Å (0.5).
        validated: skip reading and validation (`structure` is a `Structure` that `load_structure` returned).
        max_length: the longest model input, `[CLS]` and `[SEP]` included, or `None`: a v2 string longer than this
            after the first symmetry search is refused there (`encode_v2`), before the tolerance-edge search.

    Raises:
        ScopeError: a typed subclass naming `source`, from reading and validation (at construction) or from the
            symmetry search (when a view first needs it). An exception that is no `ScopeError` becomes one for this
            item (`scope_errors.typed_error`): a `MemoryError` a `ResourceLimitError`, any other unexpected one (in
            encoding, or in reading other than the readers' `ValueError`, `TypeError`, `KeyError` and `OSError`) an
            `InternalEncodingError`, so that a batch reports the item and goes on.

    Example:

    ```python
    >>> from tokenization import ScopeAnalyzer
    >>> analyzer = ScopeAnalyzer("dataset_builders/data/examples/NaCl.cif")
    >>> analyzer.get_scope("v2"), analyzer.get_space_group_number(), analyzer.n_atoms
    ('SG225 Na 0.5 4a Cl 0.5 4b', 225, 8.0)

    ```
    """

    def __init__(
        self,
        structure: Any,
        source: str | None = None,
        symprec: float = DEFAULT_SYMPREC,
        angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
        disorder: str = DEFAULT_DISORDER,
        overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
        validated: bool = False,
        max_length: int | None = None,
    ):
        self._input, self._source = structure, source
        if source is None and not isinstance(structure, Structure):
            self._source = describe_source(structure)  # a path or a text: cheap to name
        # A pymatgen Structure is named on first use (`source`): its formula costs a pass over the sites.
        self.symprec = symprec
        self.angle_tolerance = angle_tolerance
        self.disorder = disorder
        self.max_length = max_length
        if validated:
            self.structure: Structure = structure
        else:
            try:
                self.structure = load_structure(
                    structure, source=self._source, overlap_tolerance=overlap_tolerance, disorder=disorder
                )
            except (ScopeError, ValueError, TypeError, KeyError, OSError):
                raise  # typed, or an input or option the readers do not take ("invalid_input")
            except Exception as error:  # a reader's crash fails this item only
                raise typed_error(error, self.source) from error
        self._scopes: dict[str, str] = {}

    @property
    def source(self) -> str:
        """The input's name in messages and records: the `source` given, else a description of the input
        (`describe_source`), worked out on first use."""
        if self._source is None:
            self._source = describe_source(self._input)
        return self._source

    def get_scope(self, version: str = DEFAULT_SCOPE_VERSION) -> str:
        """The SCOPE string of this crystal in `version` (`"v1"`, the authors', or `"v2"`, canonical)."""
        if version not in self._scopes:
            encoder = _encoder_for(version)
            # A bad option is the caller's ValueError, not this item's failure.
            check_tolerances(self.symprec, self.angle_tolerance)
            if self.disorder not in DISORDER_POLICIES:
                raise ValueError(f"disorder must be one of {DISORDER_POLICIES}, got {self.disorder!r}")
            options = {"disorder": self.disorder, "max_length": self.max_length} if version == "v2" else {}
            try:
                self._scopes[version] = encoder(
                    self.structure,
                    symprec=self.symprec,
                    angle_tolerance=self.angle_tolerance,
                    source=self._source,  # None: the encoder names the structure only if it fails
                    **options,
                )
            except ScopeError as error:
                if error.source is None:
                    raise error.with_source(self.source) from error
                raise
            except Exception as error:  # MemoryError, or a bug: this item fails, typed
                raise typed_error(error, self.source) from error
        return self._scopes[version]

    def get_space_group_number(self) -> int:
        """The International Tables number of the space group, as SCOPE v2 finds it (canonical site order)."""
        return int(self.get_scope("v2").split(maxsplit=1)[0][2:])

    @property
    def n_atoms(self) -> float:
        """Atoms per cell: occupancies summed (a disordered site counts its occupied share)."""
        return float(self.structure.composition.num_atoms)

    @property
    def reader_notes(self) -> list[str]:
        """What the file reader did that the user should know (occupancies counted as full, merged images...)."""
        return list((getattr(self.structure, "properties", None) or {}).get("reader_notes", []))

    @property
    def is_ordered(self) -> bool:
        return bool(self.structure.is_ordered)


def structure_to_scope(
    structure: Any,
    version: str = "v1",
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    source: str | None = None,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    disorder: str = DEFAULT_DISORDER,
) -> str:
    """Encode one crystal as a SCOPE string.

    Args:
        structure: anything :func:`load_structure` accepts (pymatgen ``Structure``, ASE ``Atoms``, CIF/POSCAR text,
            a file path, a pymatgen dict, or ``(lattice, frac_coords, species)``).
        version: ``"v1"`` (the authors' encoding) or ``"v2"`` (canonical).
        symprec: symmetry tolerance in Angstrom (pymatgen/spglib default 0.01).
        angle_tolerance: angle tolerance in degrees (default 5).
        source: a name for the input used in error messages.
        overlap_tolerance: minimum distance (A) between two sites.
        disorder: ``"encode"`` (default) encodes partially occupied and mixed sites (v2: the disorder section of
            ``SCOPE_V2.md``; v1: pymatgen's atom types, as the authors' code); ``"raise"`` refuses them.

    Raises:
        ScopeError: a typed subclass naming the input and the reason (parse, empty, disorder, species,
            overlap, geometry, symmetry, unknown version).

    Example:
        >>> from tokenization import structure_to_scope
        >>> cell = ([[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        ...         [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
        ...          [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]],
        ...         ["Na"] * 4 + ["Cl"] * 4)
        >>> structure_to_scope(cell, version="v1")
        '1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5'
    """
    _encoder_for(version)  # an unknown version is refused before any reading
    analyzer = ScopeAnalyzer(
        structure,
        source=source,
        symprec=symprec,
        angle_tolerance=angle_tolerance,
        disorder=disorder,
        overlap_tolerance=overlap_tolerance,
    )
    return analyzer.get_scope(version)


def structures_to_scope(
    structures: Iterable[Any],
    version: str = "v1",
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    errors: str = "raise",
    sources: Sequence[str] | None = None,
    disorder: str = DEFAULT_DISORDER,
) -> list[str | ScopeError]:
    """Encode many crystals.

    With ``errors="raise"`` (default) the first failure is re-raised with its index in the source name. With
    ``errors="return"`` every failure is returned in place as its :class:`ScopeError`, so the output always has one
    entry per input and never holds an empty or partial string.
    """
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    _encoder_for(version)  # an unknown version is refused before any reading
    out: list[str | ScopeError] = []
    for index, item in enumerate(structures):
        name = sources[index] if sources is not None else f"item {index} ({describe_source(item)})"
        try:
            analyzer = ScopeAnalyzer(
                item, source=name, symprec=symprec, angle_tolerance=angle_tolerance, disorder=disorder
            )
            out.append(analyzer.get_scope(version))
        except ScopeError as exc:
            if errors == "raise":
                raise
            out.append(exc)
    return out
