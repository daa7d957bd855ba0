"""SCOPE v2: a canonical, coordinate-free text encoding of an ordered crystal.

A v2 string is the space-group number followed by one block per element::

    SG<number> ( <element> <fraction> <wyckoff> <wyckoff> ... )+

* ``SG225``: the space-group type (International Tables number), one token.
* ``<element>``: element symbol; blocks follow a fixed element order (Pauling electronegativity, then Z;
  ``ELEMENT_ORDER`` in ``scope_v2_tables.py``), so ``Na`` comes before ``Cl`` and ``Sr Ti`` before ``O``.
* ``<fraction>``: atomic fraction of that element, ``str(round(x, 2))`` (``0.5``, ``0.12``, ``1.0``), exactly the
  composition tokens of SCOPE v1.
* ``<wyckoff>``: one token per crystallographic orbit occupied by that element: the multiplicity in the conventional
  cell and the Wyckoff letter (``4a``, ``96h``, ``8A``), ordered by letter. Two orbits of the same element on the same
  Wyckoff position give the token twice.

Two steps make the string a property of the crystal, not of its description:

* spglib gets the sites with a reference atom chosen from the geometry placed first (``_spglib_site_order``), so
  crystals within about symprec of a higher symmetry get the same space group whatever the site order;
* Wyckoff letters are fixed only up to the affine normalizer of the space group (origin choice, axis permutation,
  cell choice); the encoder tries every labelling the normalizer allows (``WYCKOFF_RELABELINGS``) and writes the
  lexicographically smallest.

See ``SCOPE_V2.md`` for the grammar, the reasons behind it and measured guarantees.

Examples:

    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> encode_v2(nacl)
    'SG225 Na 0.5 4a Cl 0.5 4b'
    >>> encode_v2(nacl.get_primitive_structure()) == encode_v2(nacl * (2, 1, 1))
    True

This module is remote code (copied into checkpoints): it imports only numpy, spglib and pymatgen, plus its sibling
modules ``scope_v2_tables``, ``scope_errors`` and ``symmetry_search``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

from .scope_errors import (
    DisorderedStructureError,
    EmptyStructureError,
    ScopeError,
    SymmetrySearchError,
    UnknownSpeciesError,
)
from .scope_v2_tables import ELEMENT_ORDER, WYCKOFF_LETTERS, WYCKOFF_MULTIPLICITIES, WYCKOFF_RELABELINGS
from .symmetry_search import search_symmetry

__all__ = ["V2_TOKENS", "count_v2_tokens", "encode_v2", "parse_v2"]

SPACE_GROUP_PREFIX = "SG"

# Composition tokens: the 101 strings ``str(round(x, 2))`` can produce for 0 <= x <= 1 (same spelling as v1).
FRACTION_TOKENS: tuple[str, ...] = tuple(str(round(k / 100, 2)) for k in range(101))


def _wyckoff_tokens() -> tuple[str, ...]:
    """Every multiplicity+letter symbol of the 230 space groups, ordered by multiplicity, then letter."""
    symbols = set()
    for number, letters in WYCKOFF_LETTERS.items():
        symbols.update(
            (mult, letter) for mult, letter in zip(WYCKOFF_MULTIPLICITIES[number], letters, strict=True)
        )
    alphabet = "abcdefghijklmnopqrstuvwxyzA"
    return tuple(
        f"{mult}{letter}" for mult, letter in sorted(symbols, key=lambda s: (s[0], alphabet.index(s[1])))
    )


SPACE_GROUP_TOKENS: tuple[str, ...] = tuple(f"{SPACE_GROUP_PREFIX}{n}" for n in range(1, 231))
WYCKOFF_TOKENS: tuple[str, ...] = _wyckoff_tokens()

#: The closed v2 vocabulary (no special tokens): space groups, elements, fractions, Wyckoff symbols.
V2_TOKENS: tuple[str, ...] = SPACE_GROUP_TOKENS + ELEMENT_ORDER + FRACTION_TOKENS + WYCKOFF_TOKENS

_ELEMENT_RANK: dict[str, int] = {symbol: rank for rank, symbol in enumerate(ELEMENT_ORDER)}


@cache
def _symbols_by_atomic_number() -> tuple[str, ...]:
    from pymatgen.core.periodic_table import Element

    return ("",) + tuple(Element.from_Z(z).symbol for z in range(1, 119))


@cache
def _atomic_number(symbol: str) -> int:
    return _symbols_by_atomic_number().index(symbol)


@cache
def _relabeling_array(number: int) -> np.ndarray:
    """Relabelings of space group ``number`` as an int array: row r maps letter index i to ``out[r, i]``."""
    letters = WYCKOFF_LETTERS[number]
    index = {letter: i for i, letter in enumerate(letters)}
    return np.array([[index[c] for c in images] for images in WYCKOFF_RELABELINGS[number]], dtype=np.int64)


@cache
def _letter_index(number: int) -> dict[str, int]:
    return {letter: i for i, letter in enumerate(WYCKOFF_LETTERS[number])}


def _describe(structure) -> str:
    """A short name for a structure in error messages (it has no file name at this point)."""
    try:
        return f"Structure {structure.composition.reduced_formula} ({len(structure)} sites)"
    except (AttributeError, ValueError, TypeError):
        return f"{type(structure).__name__} object"


def _spglib_site_order(structure, atomic_numbers: np.ndarray) -> np.ndarray:
    """The order in which to hand the sites to spglib: a canonically chosen reference atom first.

    spglib searches translations relative to the first atom of the least frequent species. For a crystal within
    about symprec of a higher symmetry, which atom that is can decide the space group (on the matminer set, 13 of
    6,317 structures change group under a random site permutation). Choosing it from the geometry instead of the
    input order makes the result a property of the crystal: among the atoms of the least frequent species (lowest
    Z on a tie), take the one whose sorted distances to its neighbours are lexicographically smallest.
    """
    counts = np.bincount(atomic_numbers)[atomic_numbers]
    candidates = np.flatnonzero(counts == counts.min())
    candidates = candidates[atomic_numbers[candidates] == atomic_numbers[candidates].min()]
    if len(candidates) > 1:
        # Neighbours within about 2.5 mean atomic spacings (dozens of them), over all periodic images, so the key is
        # intrinsic to the crystal and does not depend on the cell the input happens to use.
        # Wrapped into the cell first: find_points_in_spheres can miss neighbours of points outside it.
        cart = np.ascontiguousarray((structure.frac_coords % 1.0) @ structure.lattice.matrix, dtype=float)
        radius = max(3.0, 2.5 * (abs(structure.volume) / len(atomic_numbers)) ** (1 / 3))
        centre, _, _, distances = find_points_in_spheres(
            cart,
            np.ascontiguousarray(cart[candidates]),
            radius,
            np.ones(3, dtype=np.int64),
            np.ascontiguousarray(structure.lattice.matrix, dtype=float),
            1e-8,
        )
        keep = distances > 1e-6  # the atom itself
        centre, distances = centre[keep], distances[keep]
        # Sort by (centre, distance); every candidate then owns a contiguous run of increasing distances.
        by_centre = np.lexsort((distances, centre))
        centre, distances = centre[by_centre], distances[by_centre]
        neighbour_counts = np.bincount(centre, minlength=len(candidates))
        n_common = int(neighbour_counts.min())
        if n_common == 0:
            reference = candidates[
                0
            ]  # no neighbour within reach (a gas-like cell): nothing to tell atoms apart
        else:
            starts = np.concatenate(([0], np.cumsum(neighbour_counts)[:-1]))
            # Rounded to 1e-6 Å so that floating-point noise (1e-14) cannot break ties between equivalent atoms.
            keys = np.round(distances[starts[:, None] + np.arange(n_common)[None, :]], 6)
            reference = candidates[np.lexsort(keys.T[::-1])[0]]
    else:
        reference = candidates[0]
    order = np.arange(len(atomic_numbers))
    order[[0, reference]] = order[[reference, 0]]
    return order


def _symmetry_dataset(
    structure, order: np.ndarray, symprec: float, angle_tolerance: float, source: str | None
):
    """spglib's dataset of the sites in ``order``, through the shared wrapper (with its angle-tolerance retry)."""
    cell = (
        structure.lattice.matrix,
        structure.frac_coords[order],
        np.asarray(structure.atomic_numbers)[order],
    )
    try:
        return search_symmetry(cell, symprec, angle_tolerance, source).dataset
    except SymmetrySearchError as exc:
        if source is None:  # described only on failure
            raise SymmetrySearchError(exc.message, _describe(structure)) from None
        raise


def encode_v2(
    structure,
    symprec: float = 0.01,
    angle_tolerance: float = 5.0,
    source: str | None = None,
) -> str:
    """Encode an ordered pymatgen ``Structure`` as a canonical SCOPE v2 string.

    Args:
        structure: an ordered ``pymatgen.core.Structure`` (validate untrusted input with ``load_structure`` first).
        symprec: spglib distance tolerance in Å (v1 and pymatgen default: 0.01).
        angle_tolerance: spglib angle tolerance in degrees (v1 and pymatgen default: 5).
        source: name of the input for error messages (file name, row id); defaults to the reduced formula.

    Returns:
        The v2 string, tokens separated by single spaces.

    Raises:
        SymmetrySearchError: spglib finds no space group at this tolerance, nor with spglib's automatic angle
            tolerance (``angle_tolerance=-1``), which is tried next.
        DisorderedStructureError, UnknownSpeciesError, EmptyStructureError: the structure is not an ordered
            crystal of elements H-Og.
        ValueError: ``symprec`` is not a positive number or ``angle_tolerance`` is not finite.

    Example:

        >>> from pymatgen.core import Lattice, Structure
        >>> srtio3 = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
        ...                    [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])
        >>> encode_v2(srtio3)
        'SG221 Sr 0.2 1a Ti 0.2 1b O 0.6 3c'
    """
    if not (np.isfinite(symprec) and symprec > 0 and np.isfinite(angle_tolerance)):
        # spglib crashes the interpreter on a negative symprec: refuse it before the call.
        raise ValueError(
            f"symprec must be > 0 Å and angle_tolerance finite, got {symprec!r}, {angle_tolerance!r}"
        )
    if len(structure) == 0:
        raise EmptyStructureError(
            "the structure has no sites", source or f"{type(structure).__name__} object"
        )
    if not structure.is_ordered:
        raise DisorderedStructureError(
            "SCOPE v2 encodes ordered structures only (a site is disordered)", source or _describe(structure)
        )
    atomic_numbers = np.asarray(structure.atomic_numbers, dtype=np.int64)
    if atomic_numbers.min() < 1 or atomic_numbers.max() > 118:
        raise UnknownSpeciesError("every site must hold an element H-Og", source or _describe(structure))
    order = _spglib_site_order(structure, atomic_numbers)
    dataset = _symmetry_dataset(structure, order, symprec, angle_tolerance, source)
    number = int(dataset.number)
    unknown = set(dataset.wyckoffs) - set(WYCKOFF_LETTERS[number])
    if unknown:
        raise SymmetrySearchError(
            f"spglib returned Wyckoff letters {sorted(unknown)} unknown in space group {number}",
            source or _describe(structure),
        )
    return _scope_from_symmetry(
        number,
        dataset.wyckoffs,
        dataset.crystallographic_orbits,
        atomic_numbers[order],
        _relabeling_array(number),
    )


def _scope_from_symmetry(
    number: int,
    wyckoffs: list[str],
    orbits: np.ndarray,
    atomic_numbers: np.ndarray,
    relabelings: np.ndarray,
) -> str:
    """Build the v2 string from spglib's per-site Wyckoff letters and orbit ids.

    ``relabelings`` is ``_relabeling_array(number)``; passing only its first row (the identity) gives spglib's raw
    labelling, which ``benchmarks/report_scope_v2.py`` uses to show what canonicalisation changes.
    """
    letter_index = _letter_index(number)
    symbols = _symbols_by_atomic_number()
    # One entry per crystallographic orbit: (element rank, Wyckoff letter index).
    representatives = np.unique(np.asarray(orbits))
    orbit_letters = np.array([letter_index[wyckoffs[i]] for i in representatives], dtype=np.int64)
    orbit_ranks = np.array(
        [_ELEMENT_RANK[symbols[atomic_numbers[i]]] for i in representatives], dtype=np.int64
    )

    # Canonical labelling: apply every normalizer relabeling, sort each candidate by (element rank, letter), and keep
    # the lexicographically smallest. Ranks dominate the key, so sorting keeps element blocks in ELEMENT_ORDER.
    keys = np.sort(orbit_ranks[None, :] * 64 + relabelings[:, orbit_letters], axis=1)
    best = keys[np.lexsort(keys.T[::-1])[0]] if len(keys) > 1 else keys[0]

    letters = WYCKOFF_LETTERS[number]
    multiplicities = WYCKOFF_MULTIPLICITIES[number]
    counts = np.bincount(atomic_numbers, minlength=119)
    n_sites = len(atomic_numbers)
    tokens = [f"{SPACE_GROUP_PREFIX}{number}"]
    previous_rank = -1
    for key in best.tolist():
        rank, letter = divmod(key, 64)
        if rank != previous_rank:
            element = ELEMENT_ORDER[rank]
            tokens += [element, str(round(int(counts[_atomic_number(element)]) / n_sites, 2))]
            previous_rank = rank
        tokens.append(f"{multiplicities[letter]}{letters[letter]}")
    return " ".join(tokens)


def count_v2_tokens(scope: str) -> int:
    """Number of tokens of a v2 string, without ``[CLS]``/``[SEP]`` (add 2 for the model input length).

    >>> count_v2_tokens("SG225 Na 0.5 4a Cl 0.5 4b")
    7
    """
    return len(scope.split())


def parse_v2(scope: str) -> tuple[int, list[tuple[str, str, list[str]]]]:
    """Split a v2 string into ``(space_group_number, [(element, fraction, [wyckoff, ...]), ...])``.

    Checks the grammar and that every Wyckoff symbol exists in that space group; raises ``ScopeError`` otherwise.

    >>> parse_v2("SG225 Na 0.5 4a Cl 0.5 4b")
    (225, [('Na', '0.5', ['4a']), ('Cl', '0.5', ['4b'])])
    """
    tokens = scope.split()
    head = tokens[0] if tokens else ""
    if not (head.startswith(SPACE_GROUP_PREFIX) and head[2:].isdigit() and 1 <= int(head[2:]) <= 230):
        raise ScopeError(f"a SCOPE v2 string starts with SG1..SG230, not {head!r}", source=repr(scope))
    number = int(head[2:])
    valid = {f"{m}{c}" for m, c in zip(WYCKOFF_MULTIPLICITIES[number], WYCKOFF_LETTERS[number], strict=True)}
    blocks: list[tuple[str, str, list[str]]] = []
    position = 1
    while position < len(tokens):
        element = tokens[position]
        fraction = tokens[position + 1] if position + 1 < len(tokens) else ""
        if element not in _ELEMENT_RANK or fraction not in FRACTION_TOKENS:
            raise ScopeError(f"expected '<element> <fraction>' at token {position}", source=repr(scope))
        position += 2
        wyckoffs = []
        while position < len(tokens) and tokens[position] not in _ELEMENT_RANK:
            if tokens[position] not in valid:
                raise ScopeError(
                    f"{tokens[position]!r} is not a Wyckoff position of space group {number}",
                    source=repr(scope),
                )
            wyckoffs.append(tokens[position])
            position += 1
        if not wyckoffs:
            raise ScopeError(f"element {element} has no Wyckoff position", source=repr(scope))
        blocks.append((element, fraction, wyckoffs))
    if not blocks:
        raise ScopeError("a SCOPE v2 string needs at least one element block", source=repr(scope))
    return number, blocks
