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

* spglib gets the sites with a reference atom chosen from the geometry placed first
  (``symmetry_idealisation.reference_first_order``), so
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
modules ``scope_v2_tables``, ``scope_errors``, ``symmetry_search`` and ``symmetry_idealisation``.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from .input_names import describe_source
from .scope_errors import (
    DisorderedStructureError,
    EmptyStructureError,
    ScopeError,
    ScopeTooLongError,
    SymmetrySearchError,
    UnknownSpeciesError,
)
from .scope_v2_tables import ELEMENT_ORDER, WYCKOFF_LETTERS, WYCKOFF_MULTIPLICITIES, WYCKOFF_RELABELINGS
from .symmetry_idealisation import canonical_symmetry
from .symmetry_search import searched_tolerance

__all__ = ["V2_TOKENS", "count_v2_tokens", "encode_v2", "parse_v2", "parse_v2_disorder", "site_types"]

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

#: Starts the section of disordered orbits (mixed or partially occupied sites); absent for ordered crystals.
DISORDER_SEPARATOR = "|"
#: The vacant share of a partially occupied orbit.
VACANCY_TOKEN = "Vac"
#: Tokens of the disorder extension, appended after the ordered grammar so that ordered ids never move.
DISORDER_TOKENS: tuple[str, ...] = (DISORDER_SEPARATOR, VACANCY_TOKEN)

#: The closed v2 vocabulary (no special tokens): space groups, elements, fractions, Wyckoff symbols, then the two
#: disorder tokens.
V2_TOKENS: tuple[str, ...] = (
    SPACE_GROUP_TOKENS + ELEMENT_ORDER + FRACTION_TOKENS + WYCKOFF_TOKENS + DISORDER_TOKENS
)

#: Site types above this are mixtures (``site_types``); at or below it they are atomic numbers.
MAX_ATOMIC_NUMBER = 118

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


@lru_cache(maxsize=4096)
def _relabelings_of_letters(number: int, letters: tuple[int, ...]) -> np.ndarray:
    """The distinct images of the Wyckoff letter indices ``letters`` under the relabelings of space group ``number``:
    ``(R, len(letters))``, one row per distinct relabeling of those letters (``_relabeling_array(number)`` restricted
    to their columns). P-1 has 1,344 relabelings, but a crystal whose orbits are all general positions sees one."""
    return np.unique(_relabeling_array(number)[:, list(letters)], axis=0)


@cache
def _letter_index(number: int) -> dict[str, int]:
    return {letter: i for i, letter in enumerate(WYCKOFF_LETTERS[number])}


def encode_v2(
    structure,
    symprec: float = 0.01,
    angle_tolerance: float = 5.0,
    source: str | None = None,
    disorder: str = "encode",
    max_length: int | None = None,
    symmetry_backend: str = "spglib",
) -> str:
    """Encode a pymatgen ``Structure`` as a canonical SCOPE v2 string.

    Args:
        structure: an ordered ``pymatgen.core.Structure`` (validate untrusted input with ``load_structure`` first).
        symprec: spglib distance tolerance in Å (v1 and pymatgen default: 0.01).
        angle_tolerance: spglib angle tolerance in degrees (v1 and pymatgen default: 5).
        source: name of the input for error messages (file name, row id); defaults to the reduced formula.
        disorder: ``"encode"`` writes partially occupied and mixed sites in the disorder section (``SCOPE_V2.md``);
            ``"raise"`` refuses them with ``DisorderedStructureError``. Ordered crystals give the same string either
            way.
        max_length: the longest model input, ``[CLS]`` and ``[SEP]`` included (a tokenizer's ``model_max_length``),
            or ``None`` for no limit. A string longer than this in the group of the first symmetry search is refused
            there, before the tolerance-edge search (``symmetry_idealisation``), which could only rarely shorten it
            and costs more than the first search.
        symmetry_backend: ``"spglib"``, the v2 backend. ``"moyopy"`` (moyopy first, spglib where it gives no
            answer or the check fails; ``symmetry_search.search_symmetry``) exists to re-run the measurement
            ``benchmarks/report_moyopy.py``: it is not string-identical (1 of the 6,317 bundled crystals differs),
            it hangs or aborts the process on 4 of them (worker processes only), and it encodes only 1.7x faster
            (``benchmarks/RESULTS.md``, "moyopy as the v2 backend"). Do not encode data with it.

    Returns:
        The v2 string, tokens separated by single spaces.

    Raises:
        ScopeTooLongError: with ``max_length``, the string of the first symmetry search is longer.
        SymmetrySearchError: spglib finds no space group at this tolerance, nor with spglib's automatic angle
            tolerance (``angle_tolerance=-1``), which is tried next.
        DisorderedStructureError: a site is disordered and ``disorder="raise"``.
        UnknownSpeciesError, EmptyStructureError: the structure is not a crystal of elements H-Og.
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
    if disorder not in ("encode", "raise"):
        raise ValueError(f"disorder must be 'encode' or 'raise', got {disorder!r}")
    symprec = searched_tolerance(structure, symprec)
    # Site types: atomic numbers, and one type per distinct mixture of a disordered site (above 118).
    atomic_numbers, mixtures = site_types(structure, source)  # the structure is described only on failure
    if disorder == "raise" and mixtures:  # at SCOPE's resolution: an occupancy of 0.996 is a full site
        raise DisorderedStructureError(
            "a site is partially occupied or mixed; refused with disorder='raise'",
            source or describe_source(structure),
        )
    element_fractions = None
    if mixtures:
        composition = structure.composition.fractional_composition  # occupancies summed, vacancies excluded
        element_fractions = {element.symbol: float(amount) for element, amount in composition.items()}
    check_first = None
    if max_length is not None:

        def check_first(number: int, first_orbits: np.ndarray) -> None:
            length = _token_count(first_orbits, atomic_numbers, mixtures, element_fractions) + 2
            if length > max_length:
                raise ScopeTooLongError(
                    f"SCOPE string has {length} tokens with [CLS] and [SEP] in space group {number} of the first "
                    f"symmetry search, above the maximum {max_length}; refused before the tolerance-edge search",
                    source or describe_source(structure),
                )

    # Detect, symmetrise to the group found and detect again until stable (symmetry_idealisation.py).
    try:
        number, wyckoffs, orbits = canonical_symmetry(
            structure.lattice.matrix,
            structure.frac_coords,
            atomic_numbers,
            symprec,
            angle_tolerance,
            source,
            check_first=check_first,
            backend=symmetry_backend,
        )
    except SymmetrySearchError as exc:
        if source is None:  # described only on failure
            raise SymmetrySearchError(exc.message, describe_source(structure)) from None
        raise
    unknown = set(wyckoffs) - set(WYCKOFF_LETTERS[number])
    if unknown:
        raise SymmetrySearchError(
            f"spglib returned Wyckoff letters {sorted(unknown)} unknown in space group {number}",
            source or describe_source(structure),
        )
    return _scope_from_symmetry(
        number,
        wyckoffs,
        orbits,
        atomic_numbers,
        mixtures=mixtures,
        element_fractions=element_fractions,
    )


def _token_count(
    orbits: np.ndarray,
    types: np.ndarray,
    mixtures: dict[int, tuple[tuple[str, str], ...]],
    element_fractions: dict[str, float] | None,
) -> int:
    """Tokens of the v2 string (without ``[CLS]``/``[SEP]``) for per-site orbit labels ``orbits`` and site ``types``.

    One space-group token, two per element block, one per ordered orbit; a disordered crystal adds ``|`` and, per
    disordered orbit, its Wyckoff token and two per entry of its mixture (:func:`_scope_from_symmetry`).
    """
    orbit_types = types[np.unique(orbits)]
    if not mixtures:
        return 1 + 2 * len(np.unique(types)) + len(orbit_types)
    disordered = orbit_types > MAX_ATOMIC_NUMBER
    return (
        2
        + 2 * len(element_fractions or {})
        + int(np.count_nonzero(~disordered))
        + sum(1 + 2 * len(mixtures[int(t)]) for t in orbit_types[disordered])
    )


def occupancy_token(occupancy: float) -> str:
    """The two-decimal token of an occupancy or fraction: ``str(round(x, 2))`` (``0.33``, ``0.5``, ``1.0``)."""
    return str(round(float(occupancy), 2))


def site_types(
    structure, source: str | None = None
) -> tuple[np.ndarray, dict[int, tuple[tuple[str, str], ...]]]:
    """Atom types for the symmetry search, and the mixture behind each type above ``MAX_ATOMIC_NUMBER``.

    An ordered site's type is its atomic number. A disordered site (several elements, or an occupancy below 1) is
    described by its mixture: its elements in ``ELEMENT_ORDER`` with their occupancies as two-decimal tokens, then
    ``("Vac", share)`` when the rounded vacant share is above zero. Sites with the same mixture are one type (as in
    pymatgen's ``SpacegroupAnalyzer``, at SCOPE's resolution); a site whose mixture rounds to one element at 1.0 is
    ordered. Mixture types are numbered ``MAX_ATOMIC_NUMBER + 1, ...`` in the order of their tokens, so the numbering
    depends on the crystal, not on the site order.

    Returns:
        ``(types (n_sites,) int64, {type: ((element or "Vac", occupancy token), ...)})``.

    Raises:
        UnknownSpeciesError: a site holds something that is not an element (a dummy species).
    """
    compositions = [site.species for site in structure]
    # Ordered crystals first, in one pass: one species at occupancy exactly 1 on every site.
    if all(len(species) == 1 and species.num_atoms == 1 for species in compositions):
        numbers = [getattr(next(iter(species)), "Z", 0) for species in compositions]
        if min(numbers) < 1 or max(numbers) > MAX_ATOMIC_NUMBER:
            raise UnknownSpeciesError(
                "every site must hold an element H-Og", source or describe_source(structure)
            )
        return np.array(numbers, dtype=np.int64), {}
    keys: list = []
    for index, (site, species) in enumerate(zip(structure, compositions, strict=True)):
        if any(getattr(specie, "symbol", None) not in _ELEMENT_RANK for specie in species):
            raise UnknownSpeciesError(
                f"site {index} holds {site.species}, not only elements H-Og",
                source or describe_source(structure),
            )
        if len(species) == 1:
            ((specie, occupancy),) = species.items()
            if occupancy_token(occupancy) == "1.0":
                keys.append(int(specie.Z))
                continue
        entries = sorted(
            (
                (_ELEMENT_RANK[specie.symbol], occupancy_token(occupancy))
                for specie, occupancy in species.items()
            ),
        )
        mixture = tuple((ELEMENT_ORDER[rank], token) for rank, token in entries)
        vacancy = occupancy_token(max(0.0, 1.0 - sum(species.values())))
        if vacancy != "0.0":
            mixture += ((VACANCY_TOKEN, vacancy),)
        keys.append(mixture)
    mixtures = sorted({key for key in keys if isinstance(key, tuple)}, key=_mixture_order)
    type_of = {mixture: MAX_ATOMIC_NUMBER + 1 + k for k, mixture in enumerate(mixtures)}
    types = np.array([key if isinstance(key, int) else type_of[key] for key in keys], dtype=np.int64)
    return types, {type_id: mixture for mixture, type_id in type_of.items()}


def _mixture_order(mixture: tuple[tuple[str, str], ...]) -> tuple:
    """Mixtures sort by their elements (``ELEMENT_ORDER``, vacancy last), then by decreasing occupancy."""
    return tuple((_ELEMENT_RANK.get(name, len(ELEMENT_ORDER)), -float(token)) for name, token in mixture)


def _scope_from_symmetry(
    number: int,
    wyckoffs: list[str],
    orbits: np.ndarray,
    atomic_numbers: np.ndarray,
    relabelings: np.ndarray | None = None,
    mixtures: dict[int, tuple[tuple[str, str], ...]] | None = None,
    element_fractions: dict[str, float] | None = None,
) -> str:
    """Build the v2 string from spglib's per-site Wyckoff letters and orbit ids.

    ``atomic_numbers`` are the site types of :func:`site_types`: atomic numbers, and for a disordered crystal mixture
    types described by ``mixtures``, whose element fractions (occupancies summed, vacancies excluded) are
    ``element_fractions``. ``relabelings`` defaults to all of the group's (``_relabeling_array(number)``, reduced to
    the distinct images of the letters present); passing only its first row (the identity) gives spglib's raw
    labelling, which ``benchmarks/report_scope_v2.py`` uses to show what canonicalisation changes.
    """
    mixtures = mixtures or {}
    letter_index = _letter_index(number)
    symbols = _symbols_by_atomic_number()
    n_elements = len(ELEMENT_ORDER)
    # One entry per crystallographic orbit: (rank, Wyckoff letter index). Elements rank in ELEMENT_ORDER; mixtures
    # rank after every element, in their canonical order (their type numbering).
    # Plain Python sets and dicts: a few dozen orbits at most in a short string, where numpy's calls cost more.
    representatives = sorted(set(np.asarray(orbits).tolist()))
    letter_list = [letter_index[wyckoffs[i]] for i in representatives]
    site_type = np.asarray(atomic_numbers).tolist()
    orbit_letters = np.array(letter_list, dtype=np.int64)
    orbit_ranks = np.array(
        [
            _ELEMENT_RANK[symbols[t]] if t <= MAX_ATOMIC_NUMBER else n_elements + t - MAX_ATOMIC_NUMBER - 1
            for t in (site_type[i] for i in representatives)
        ],
        dtype=np.int64,
    )

    # Canonical labelling: apply every normalizer relabeling, sort each candidate by (rank, letter), and keep the
    # lexicographically smallest. Ranks dominate the key, so sorting keeps element blocks in ELEMENT_ORDER.
    if relabelings is None:
        present = sorted(set(letter_list))
        position = {letter: k for k, letter in enumerate(present)}
        column = np.array([position[letter] for letter in letter_list], dtype=np.int64)
        images = _relabelings_of_letters(number, tuple(present))[:, column]
    else:
        images = relabelings[:, orbit_letters]
    # Each relabeling's sorted keys; the lexicographically smallest list wins (equal lists are the same string).
    best = min(sorted(row) for row in (orbit_ranks[None, :] * 64 + images).tolist())

    letters = WYCKOFF_LETTERS[number]
    multiplicities = WYCKOFF_MULTIPLICITIES[number]
    tokens = [f"{SPACE_GROUP_PREFIX}{number}"]
    if not mixtures:
        counts = np.bincount(atomic_numbers, minlength=MAX_ATOMIC_NUMBER + 1)
        n_sites = len(atomic_numbers)
        previous_rank = -1
        for key in best:
            rank, letter = divmod(key, 64)
            if rank != previous_rank:
                element = ELEMENT_ORDER[rank]
                tokens += [element, str(round(int(counts[_atomic_number(element)]) / n_sites, 2))]
                previous_rank = rank
            tokens.append(f"{multiplicities[letter]}{letters[letter]}")
        return " ".join(tokens)

    # Disordered crystal: every element's block (its fraction, then its fully occupied orbits, possibly none), then
    # the separator and each disordered orbit followed by its mixture.
    ordered_orbits: dict[str, list[str]] = {}
    disordered_orbits: list[str] = []
    mixture_of_rank = {n_elements + t - MAX_ATOMIC_NUMBER - 1: mixture for t, mixture in mixtures.items()}
    for key in best:
        rank, letter = divmod(key, 64)
        symbol = f"{multiplicities[letter]}{letters[letter]}"
        if rank < n_elements:
            ordered_orbits.setdefault(ELEMENT_ORDER[rank], []).append(symbol)
        else:
            disordered_orbits.append(symbol)
            for name, token in mixture_of_rank[rank]:
                disordered_orbits += [name, token]
    for element in sorted(element_fractions or {}, key=_ELEMENT_RANK.__getitem__):
        tokens += [element, occupancy_token(element_fractions[element]), *ordered_orbits.get(element, [])]
    return " ".join([*tokens, DISORDER_SEPARATOR, *disordered_orbits])


def count_v2_tokens(scope: str) -> int:
    """Number of tokens of a v2 string, without ``[CLS]``/``[SEP]`` (add 2 for the model input length).

    >>> count_v2_tokens("SG225 Na 0.5 4a Cl 0.5 4b")
    7
    """
    return len(scope.split())


def parse_v2(scope: str) -> tuple[int, list[tuple[str, str, list[str]]]]:
    """Split a v2 string into ``(space_group_number, [(element, fraction, [wyckoff, ...]), ...])``.

    Checks the grammar and that every Wyckoff symbol exists in that space group; raises ``ScopeError`` otherwise.
    The disordered orbits after ``|`` are checked too; :func:`parse_v2_disorder` returns them.

    >>> parse_v2("SG225 Na 0.5 4a Cl 0.5 4b")
    (225, [('Na', '0.5', ['4a']), ('Cl', '0.5', ['4b'])])
    """
    number, blocks, _ = _parse_v2(scope)
    return number, blocks


def parse_v2_disorder(scope: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The disordered orbits of a v2 string: ``[(wyckoff, [(element or "Vac", occupancy), ...]), ...]``.

    >>> parse_v2_disorder("SG225 Au 0.5 Cu 0.5 | 4a Cu 0.5 Au 0.5")
    [('4a', [('Cu', '0.5'), ('Au', '0.5')])]
    >>> parse_v2_disorder("SG225 Na 0.5 4a Cl 0.5 4b")
    []
    """
    return _parse_v2(scope)[2]


def _parse_v2(scope: str):
    tokens = scope.split()
    head = tokens[0] if tokens else ""
    if not (head.startswith(SPACE_GROUP_PREFIX) and head[2:].isdigit() and 1 <= int(head[2:]) <= 230):
        raise ScopeError(f"a SCOPE v2 string starts with SG1..SG230, not {head!r}", source=repr(scope))
    number = int(head[2:])
    valid = {f"{m}{c}" for m, c in zip(WYCKOFF_MULTIPLICITIES[number], WYCKOFF_LETTERS[number], strict=True)}
    disordered = DISORDER_SEPARATOR in tokens
    end = tokens.index(DISORDER_SEPARATOR) if disordered else len(tokens)
    blocks: list[tuple[str, str, list[str]]] = []
    position = 1
    while position < end:
        element = tokens[position]
        fraction = tokens[position + 1] if position + 1 < end else ""
        if element not in _ELEMENT_RANK or fraction not in FRACTION_TOKENS:
            raise ScopeError(f"expected '<element> <fraction>' at token {position}", source=repr(scope))
        position += 2
        wyckoffs = []
        while position < end and tokens[position] not in _ELEMENT_RANK:
            if tokens[position] not in valid:
                raise ScopeError(
                    f"{tokens[position]!r} is not a Wyckoff position of space group {number}",
                    source=repr(scope),
                )
            wyckoffs.append(tokens[position])
            position += 1
        if not wyckoffs and not disordered:
            raise ScopeError(f"element {element} has no Wyckoff position", source=repr(scope))
        blocks.append((element, fraction, wyckoffs))
    if not blocks:
        raise ScopeError("a SCOPE v2 string needs at least one element block", source=repr(scope))
    orbits: list[tuple[str, list[tuple[str, str]]]] = []
    position = end + 1
    while disordered and position < len(tokens):
        wyckoff = tokens[position]
        if wyckoff not in valid:
            raise ScopeError(
                f"{wyckoff!r} after '|' is not a Wyckoff position of space group {number}", source=repr(scope)
            )
        position += 1
        mixture = []
        while position + 1 < len(tokens) + 1 and position < len(tokens) and tokens[position] not in valid:
            name = tokens[position]
            share = tokens[position + 1] if position + 1 < len(tokens) else ""
            if (name not in _ELEMENT_RANK and name != VACANCY_TOKEN) or share not in FRACTION_TOKENS:
                raise ScopeError(f"expected '<element> <occupancy>' at token {position}", source=repr(scope))
            mixture.append((name, share))
            position += 2
        if not mixture:
            raise ScopeError(f"disordered orbit {wyckoff} has no occupants", source=repr(scope))
        orbits.append((wyckoff, mixture))
    if disordered and not orbits:
        raise ScopeError("'|' must be followed by at least one disordered orbit", source=repr(scope))
    return number, blocks, orbits
