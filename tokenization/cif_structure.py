"""CIF text -> one pymatgen ``Structure`` per crystal, built from what the file declares, or a typed refusal.

Every data block that lists atom sites is one crystal. For each block this reader

1. reads the cell (``_cell_length_*``, ``_cell_angle_*``) and refuses a cell too thin to hold atoms;
2. reads the symmetry (see :mod:`cif_symmetry`): the operation list under any of its spellings (CIF 1.1
   ``_symmetry_equiv_pos_as_xyz``, ``_space_group_symop_operation_xyz``, the dotted DDLm/CIF 2.0 names, magnetic
   CIF operations and centrings with their time-reversal part dropped), closed under composition; or, when no list
   is given, the operations of the declared Hall symbol, H-M name (with its setting or origin suffix) or IT number
   in the declared setting, among the settings it allows those whose rotations preserve the cell's metric. A file
   whose operations build another space group than the one it declares contradicts itself and is refused, naming
   both groups; so is an operation list whose closure holds a translation that is not a lattice vector of the
   declared lattice (of a conventional lattice when none is declared), more operations than the declared group, or
   rotations that do not fit the cell, naming the mistyped operation (never repaired). A file that declares no
   symmetry at all is refused: assuming P1 would invent data. An H-M name written with its IT number in brackets
   (``'P 21/c (No. 14)'``) is read as both, which must agree. A cell that no setting of the declared group fits,
   with no operations listed (CASTEP's primitive diamond cell named 'Fd-3m'), is read as the whole cell and kept
   only if its sites form the declared group. A name that leaves the setting open (no origin choice) keeps the
   settings whose sites are plausible; where they differ, the file's own Z, volume or density decides, else the
   file is refused as ambiguous. Blocks that cod-tools cut out as one molecule (``_cod_molecule_*``)
   are no crystal and are refused;
3. reads each atom-site row: the element from ``_atom_site_type_symbol`` (a Pauling File mixed site
   ``'0.56(4)Mg + 0.29(3)Ta + 0.15(5)Zr'`` is read with its shares; a group with implicit H, ``'OH2'``, is refused
   as such) or from the label (:func:`_label_element`: an element symbol and a site name, ``'MgT'``, ``'NaI'``,
   ``'HO1'``, where the label's case or the declared formula tells them apart), fractional (``_atom_site_fract_*``)
   or Cartesian (``_atom_site_Cartn_*``) coordinates, and the occupancy. Without type symbols, the hydroxyl and
   water labels of mineral databases (``OH``, ``Ow1``, ``Wat``, ``Hw1``) are read as their O or H where the file
   places H atoms or declares a formula (which ``file_claims`` then checks), and are refused otherwise (they may
   stand for the whole group). A row whose element cannot be read is refused for that reason, whatever else the
   crystal holds. A loop whose values do not fill whole rows is refused naming the loop;
4. expands the rows by the operations and merges symmetry images closer than :data:`IMAGE_MERGE_DISTANCE` into one
   site (coordinates written with 3-4 decimals put the images of a special position a few mÅ apart; images of a
   partial row further apart than the coordinates' rounding are distinct positions, whose occupancies add), rows
   at the same position into one mixed site, and a row that repeats another's symmetry image ('O1A*' beside 'O1',
   same element and occupancy, written at an image of O1's position or overfilling it) into that row's site.

The common case (one block, an explicit operation list, fully occupied sites of plain elements, nothing to merge
beyond pymatgen's own de-duplication) is built by :mod:`cif_reader`'s fast path, which gives exactly pymatgen's
``CifParser`` structure, so SCOPE v1 strings stay the authors'. Everything else is built here instead of by
``CifParser``, because on real files that parser silently defaults to P1 when it cannot read a space-group name,
drops sites whose type symbol it maps to nothing (Pauling-file ``OH2``), reads rhombohedral names in hexagonal axes
and ignores declared groups that contradict the operation list.

Tolerances (measured quantities are not exact):

* :data:`OCCUPANCY_TOLERANCE`: an occupancy within 0.005 of 1 (refinements report 0.9999 or 1.0001) counts as
  full, below SCOPE's two-decimal resolution; the structure records a note.
* :data:`IMAGE_MERGE_DISTANCE`: 0.1 Å. Rounding to 3 decimals moves a coordinate by up to 5e-4 of a cell length,
  so images of one special position in a 30 Å cell can lie up to ~0.09 Å apart; distinct atoms are never closer
  than 0.5 Å (the overlap check of ``structure_io``). Merged images are replaced by their centroid, which is the
  special position itself.

Notes on what was done (occupancies counted as full, merged images, ignored magnetic moments) are stored in
``structure.properties["reader_notes"]``.

This module is remote code (copied flat into checkpoints): it imports only numpy, pymatgen and its siblings.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Callable

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from .cif_reader import (
    _CELL_KEYS,
    _IDEAL_FRACTIONS,
    FRAC_TOLERANCE,
    SITE_TOLERANCE,
    _build_structure,
    _Operations,
    _parse_block,
    _parse_symmetry_operation,
    _species_of,
    _to_float,
    _tokenize,
)
from .cif_symmetry import (
    METRIC_TOLERANCE,
    centred_variant,
    close_operations,
    hall_number_for_symbol,
    hall_numbers_for_it_number,
    hall_numbers_for_name,
    hall_symbol,
    is_rhombohedral_axes,
    it_number,
    it_number_is_unambiguous,
    lattice_fault,
    lattice_letter,
    metric_deviation,
    operations_of_hall_number,
    preserves_metric,
    setting_choice,
    space_group_label,
    space_group_type_of_operations,
)
from .file_claims import (
    SU_BAND,
    FileClaims,
    Measured,
    SiteClaim,
    UnlocatedRow,
    attach_claims,
    check_file_claims,
    parse_formula,
    shares_fill_site,
)
from .scope_defaults import OCCUPANCY_TOLERANCE
from .scope_errors import (
    EmptyStructureError,
    ImplicitHydrogenGroupError,
    InconsistentFileError,
    InvalidGeometryError,
    NonPeriodicStructureError,
    OverlappingSitesError,
    ScopeError,
    StructureParseError,
    UnknownSpeciesError,
)

__all__ = ["IMAGE_MERGE_DISTANCE", "OCCUPANCY_TOLERANCE", "cif_crystal_blocks", "read_cif_structures"]

#: An occupancy that is not written: a full site, exactly.
_FULL = Measured(1.0, None, "1")
#: Symmetry images (or rows) closer than this, in Å, are one site.
IMAGE_MERGE_DISTANCE = 0.1
#: Coordinates with fewer decimals than this are taken as exact (hand-written 0.1, 0.25, 0.3): only files written
#: at 3 or more decimals tell their precision. The uncertainty is capped at IMAGE_MERGE_DISTANCE.
MIN_DECIMALS_FOR_UNCERTAINTY = 3
#: Coordinate uncertainties (Å) above this are worth a note: they exceed the default symprec (0.01 Å).
COORDINATE_UNCERTAINTY_NOTE = 0.01
#: Operation translations within this of a multiple of 1/24 are that multiple (0.667 -> 2/3).
_TRANSLATION_SNAP = 2e-3
#: The listed operations are searched for a mistyped one (each left out in turn) only up to this many.
_MAX_OPERATIONS_TO_BLAME = 192
#: A cell thinner than this (Å) along any lattice direction cannot hold atoms.
MIN_CELL_THICKNESS = 0.1

_OPERATION_KEYS = (
    "_symmetry_equiv_pos_as_xyz",
    "_space_group_symop_operation_xyz",
    "_symmetry_equiv_pos_as_xyz_",
    "_space_group_symop_operation_xyz_",
)
_MAGNETIC_OPERATION_KEYS = (
    "_space_group_symop_magn_operation_xyz",
    "_space_group_symop_magn_ssg_operation_xyz",
)
_MAGNETIC_CENTRING_KEYS = ("_space_group_symop_magn_centering_xyz",)
_HALL_KEYS = ("_space_group_name_hall", "_symmetry_space_group_name_hall")
_HM_KEYS = (
    "_space_group_name_h-m_alt",
    "_symmetry_space_group_name_h-m",
    "_space_group_name_h-m",
    "_space_group_name_h-m_full",
    "_space_group_name_h-m_ref",  # CIF core: the symbol as a reference (ITA) writes it
)
#: An H-M symbol followed by its IT number in brackets ('P 21/c (No. 14)', 'P 1 21/c 1 (14)'); the bracket must
#: follow a space or hold 'No.', so that Bruker's screws ('P 2(1) 2(1) 2(1)') never match.
_HM_WITH_NUMBER = re.compile(
    r"(.*?)(?:\s+\(\s*(?:No\.?|#)?\s*|\(\s*(?:No\.?|#)\s*)(\d{1,3})\s*\)", re.IGNORECASE
)
_NUMBER_KEYS = ("_space_group_it_number", "_symmetry_int_tables_number", "_space_group_number")
# A type symbol: an element, then optionally a valence and a charge sign ('Fe', 'Fe3+', 'O2-', 'Ca2', 'Fe+3'), the
# valence possibly non-integer (ICSD's mixed-valence 'Fe2.5+', 'Mn3.33+').
_TYPE_SYMBOL_REST = re.compile(r"(?:\d+(?:\.\d+)?)?[+-]?(?:\d+(?:\.\d+)?)?")
# A label: an element, then anything that does not start with a letter ('Fe1', 'O2a', 'Si_3', "O1'").
_LABEL_REST = re.compile(r"(?![A-Za-z]).*")
# An atom-site coordinate column, in CIF 1.1 or DDLm (dotted) spelling.
_SITE_COLUMN = re.compile(r"_atom_site[._](fract|cartn)_x", re.IGNORECASE)
_HYDROGEN_ISOTOPES = {"D": "deuterium", "T": "tritium"}
#: Labels that mineral databases (AMCSD, COD) give the O of a hydroxyl or water group and the H of water ('OH',
#: 'OH1', 'Ow2', 'OW', 'Wat', 'Hw1'); read as that one atom only where no type symbol is given and the file accounts
#: for the group's H (:func:`_group_labels_are_atoms`); otherwise they may stand for the whole group (a
#: pseudo-atom, which pymatgen drops for 'OH') and are refused.
_GROUP_LABEL = re.compile(
    r"(O)[HhWw]\d*(?![A-Za-z]).*|(H)[Ww]\d*(?![A-Za-z]).*|(?:[Ww]at|WAT)\d*(?![A-Za-z]).*"
)
#: The O of a water or hydroxyl group in any label ('OHa', 'Owb', 'OW1'), and water itself ('Wat', 'WatOW'): their
#: H may be implicit, so these are read only as :data:`_GROUP_LABEL`, never by the element-prefix rule; nor are
#: dummy atoms ('Du1').
_WATER_OXYGEN = re.compile(r"O[HhWw]|[Ww][Aa][Tt]|[Dd][Uu]")  # 'Du': a dummy atom, never deuterium
#: A type symbol for a group with implicit H: an element, then H and its count ('OH', 'OH2', 'NH3', 'NH4+').
_IMPLICIT_HYDROGEN_GROUP = re.compile(r"([A-Z][a-z]?)H(\d*)(?:\d*[+-])?")
#: Where _general_structure leaves, for the claims, the partial rows whose distinct images it merged (and how many
#: images each site holds): their orbit in the file has that many times the sites built.
_SPLIT_IMAGES = "_split_images"
#: Where _general_structure leaves the rows it read once as another row's symmetry image although both together
#: would not overfill the site ('H12A' 0.5 at the mirror image of 'H12' 0.5): the file's formula decides between
#: that reading and the sum (:func:`_crystal_from_block`).
_IMAGE_REPEATS = "_image_repeats"
#: The atom a label names: its letters and number ('O1' of 'O1A*', 'Te2' of 'Te2_1_445').
_LABEL_BASE = re.compile(r"[A-Za-z]+\d+")
#: Elements above californium (Z = 98) are not read from CIF symbols: no crystal structure of them is known, and
#: their symbols are what case-folding makes of molecular pseudo-atoms ('NH4+' -> Nh, 'CN-' -> Cn, 'NO3' -> No).
_HEAVIEST_READ_ELEMENT = 98


def _normalize_keys(data: dict) -> dict:
    """CIF names are case-insensitive and DDLm writes ``_category.item`` for CIF 1.1's ``_category_item``."""
    return {key.lower().replace(".", "_"): value for key, value in data.items()}


def _split_blocks(text: str) -> list[tuple[str, str]]:
    """``[(block name, block text)]`` for every ``data_`` block, in file order (a ``data_`` line inside a
    ``;``-delimited text field is text, not a new block)."""
    blocks: list[tuple[str, list[str]]] = []
    in_text_field = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith(";"):
            in_text_field = not in_text_field
        stripped = line.lstrip()
        if not in_text_field and stripped[:5].lower() == "data_":
            blocks.append((stripped[5:].split()[0] if stripped[5:].split() else "", [stripped]))
        elif blocks:
            blocks[-1][1].append(line)
    return [(name, "\n".join(lines)) for name, lines in blocks]


#: Data names that describe the crystal: written before the first ``data_`` line they would be lost.
_STRUCTURAL_PREFIXES = ("_cell", "_symmetry", "_space_group", "_atom_site", "_chemical_formula")


def _items_before_first_block(text: str) -> list[tuple[int, str]]:
    """``[(line number, data name or loop_)]`` written before the first ``data_`` line: CIF puts every item in a data
    block, so readers (pymatgen's too) drop these without a word. Comments and text fields are skipped."""
    found: list[tuple[int, str]] = []
    in_text_field = False
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if line.startswith(";"):
            in_text_field = not in_text_field
            continue
        stripped = line.lstrip()
        if in_text_field or not stripped or stripped.startswith("#"):
            continue
        if stripped[:5].lower() == "data_":
            break
        first = stripped.split()[0]
        if first.startswith("_") or first.lower() == "loop_":
            found.append((number, first))
    return found


def _loop_count_problem(bare: list[str], values: list[str], marks: list[int]) -> str | None:
    """The first ``loop_`` whose values do not fill its rows (no values, or a value count that is not a multiple of
    the column count, the CIF 1.1 syntax rule for loops), said in words; None if every loop is whole.

    ``bare``, ``values`` and ``marks`` are :func:`cif_reader._tokenize`'s output: the tokens, their values, and the
    positions of the keys and ``loop_`` words. Such a loop cannot be read without guessing which value is missing
    (SHELXL's refinement-flag columns, for example, hold several one-letter values per row).
    """
    keys = set(marks)
    for i in marks:
        if bare[i].lower() != "loop_":
            continue
        j = i + 1
        while j < len(bare) and bare[j].startswith("_"):
            j += 1
        end = next((k for k in sorted(keys) if k >= j), len(bare))
        columns, n_values = values[i + 1 : j], end - j
        if columns and not n_values:
            return (
                f"a CIF loop of {len(columns)} columns ({columns[0]} ... {columns[-1]}) holds no values: a loop "
                "needs at least one row (write '?' for unknown values, or remove the loop)"
            )
        if columns and n_values and n_values % len(columns):
            return (
                f"a CIF loop of {len(columns)} columns ({columns[0]} ... {columns[-1]}) holds {n_values} values, "
                f"not a whole number of rows ({n_values} / {len(columns)}): a row has a missing or extra value, "
                "so its values cannot be assigned to columns"
            )
    return None


def _block_data(block_text: str, source: str) -> dict:
    tokens = _tokenize(block_text)
    data = _parse_block(*tokens) if tokens is not None else None
    if data is not None:
        return _normalize_keys(data)
    # Outside the fast tokenizer's subset: pymatgen's CIF tokenizer, whose warnings mean it guessed.
    from pymatgen.io.cif import CifBlock

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            block = CifBlock.from_str(block_text)
        # ZeroDivisionError: pymatgen's tokenizer on a loop header with no values.
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError) as exc:
            problem = _loop_count_problem(*tokens) if tokens is not None else None
            raise StructureParseError(
                problem or f"not a readable CIF block ({type(exc).__name__}: {exc})", source
            ) from exc
    issues = [str(w.message) for w in caught if "possible issue" in str(w.message).lower()]
    if issues:
        raise StructureParseError(
            f"the CIF syntax is broken, so values may be misread (pymatgen: {issues[0]}"
            + (f"; {len(issues) - 1} more)" if len(issues) > 1 else ")"),
            source,
        )
    return _normalize_keys(block.data)


def _first(data: dict, keys: tuple[str, ...]):
    for key in keys:
        value = data.get(key)
        if value not in (None, "", "?", ".", []):
            return value
    return None


def _number(text: str) -> float | None:
    """A CIF number (``cif_reader._to_float``: an uncertainty in brackets is dropped, '0.1234(5)'), or None for
    '?', '.' and non-numbers; callers that read '.' as zero say so."""
    return None if text.strip() == "." else _to_float(text)


def _lattice(data: dict, source: str) -> tuple[Lattice, tuple[float, ...]]:
    parameters = []
    for key in _CELL_KEYS:
        value = data.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a writer's stray 'loop_' before the single cell items: a loop of one row
        number = _number(value) if isinstance(value, str) else None
        if number is None:
            raise StructureParseError(f"{key} is missing or not a number ({value!r})", source)
        parameters.append(number)
    a, b, c, alpha, beta, gamma = parameters
    if min(a, b, c) <= 0:
        raise InvalidGeometryError(f"cell lengths must be positive, got a={a}, b={b}, c={c} Å", source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # impossible angles give NaN, refused below
        lattice = Lattice.from_parameters(a, b, c, alpha, beta, gamma)
    matrix = lattice.matrix
    volume = abs(float(np.linalg.det(matrix))) if np.all(np.isfinite(matrix)) else float("nan")
    if not math.isfinite(volume) or volume <= 0:
        raise InvalidGeometryError(
            f"the cell angles {alpha}, {beta}, {gamma}° do not make a three-dimensional cell", source
        )
    thickness = volume / np.linalg.norm(np.cross(matrix[[1, 2, 0]], matrix[[2, 0, 1]]), axis=1)
    if thickness.min() < MIN_CELL_THICKNESS:
        axis = "abc"[int(np.argmin(thickness))]
        raise InvalidGeometryError(
            f"degenerate (flat) cell: {thickness.min():.3g} Å thick along {axis} (volume {volume:.3g} Å^3), "
            "too thin to hold atoms",
            source,
        )
    return lattice, tuple(parameters)


def _orthogonalization(parameters: tuple[float, ...]) -> np.ndarray:
    """The CIF default Cartesian frame (IUCr: x along a, y in the ab plane), rows a, b, c."""
    a, b, c, alpha, beta, gamma = parameters
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, cz]])


# ----------------------------------------------------------------------------------------------------------
# Symmetry operations


def _parse_operations(
    texts: list[str], source: str, notes: list[str], magnetic: bool = False
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(rotations, translations, exact)``: ``exact`` is False when translations had to be snapped to k/24."""
    rotations, translations = [], []
    for text in texts:
        operation = text
        if magnetic:
            parts = text.split(",")
            if len(parts) == 4:  # x,y,z,+1: the time-reversal part does not move atoms
                operation = ",".join(parts[:3])
        parsed = _parse_symmetry_operation(operation)
        if parsed is None:
            raise StructureParseError(f"symmetry operation {text!r} cannot be read", source)
        rotations.append(parsed[0])
        translations.append(parsed[1])
    translations = np.array(translations, dtype=float)
    # Translations written with few decimals (x+0.667) are the nearest multiple of 1/24 (every translation of
    # the International Tables settings is one), so that operations compose into a closed group.
    snapped = np.round(translations * 24) / 24
    close = np.abs(translations - snapped) < _TRANSLATION_SNAP
    exact = not np.any(np.abs(translations[close] - snapped[close]) > 1e-9)
    if not exact:
        notes.append("operation translations written with few decimals were read as multiples of 1/24")
    translations[close] = snapped[close]
    return np.array(rotations, dtype=float), translations, exact


def _listed_operations(
    data: dict, source: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The file's operation list as ``(rotations, translations, exact)`` (see :func:`_parse_operations`), or None."""
    texts = _first(data, _OPERATION_KEYS)
    if texts is not None:
        return _parse_operations([texts] if isinstance(texts, str) else list(texts), source, notes)
    magnetic = _first(data, _MAGNETIC_OPERATION_KEYS)
    if magnetic is None:
        return None
    rotations, translations, exact = _parse_operations(
        [magnetic] if isinstance(magnetic, str) else list(magnetic), source, notes, magnetic=True
    )
    centrings = _first(data, _MAGNETIC_CENTRING_KEYS)
    if centrings is not None:
        c_rot, c_trans, centrings_exact = _parse_operations(
            [centrings] if isinstance(centrings, str) else list(centrings), source, notes, magnetic=True
        )
        exact = exact and centrings_exact
        rotations = np.concatenate([c_r @ rotations for c_r in c_rot])
        translations = np.concatenate(
            [np.einsum("ij,nj->ni", c_r, translations) + c_t for c_r, c_t in zip(c_rot, c_trans, strict=True)]
        )
    notes.append("magnetic CIF: read as its nuclear structure (moments and time reversal ignored)")
    return rotations, translations, exact


def _declared_settings(
    data: dict, lattice: Lattice, parameters: tuple[float, ...], source: str, misfits: list[str] | None = None
) -> tuple[list[tuple[str, list[int]]], list[str]]:
    """``([(what the file says, candidate Hall numbers)], [declarations that name no known space group])``.

    The settings a Hall symbol or H-M name allows are kept when their rotations preserve the cell's metric
    (:func:`cif_symmetry.preserves_metric`): a monoclinic short symbol (``'P 21/a'``) is read in the unique axis
    that the cell's angles allow. A declaration none of whose settings fits the cell keeps them all and is named in
    ``misfits``: the file then contradicts itself unless its operation list decides.
    """
    rhombohedral = is_rhombohedral_axes(parameters)
    metric = lattice.metric_tensor
    resolved: list[tuple[str, list[int]]] = []
    unreadable: list[str] = []
    misfits = [] if misfits is None else misfits
    hall = _first(data, _HALL_KEYS)
    if isinstance(hall, str):
        number = hall_number_for_symbol(hall)
        if number:
            resolved.append((f"Hall symbol {hall!r}", [number]))
            if not preserves_metric(number, metric):
                misfits.append(resolved[-1][0])
        else:
            unreadable.append(f"Hall {hall!r}")
    name = _first(data, _HM_KEYS)
    bracketed = None
    if isinstance(name, str) and not hall_numbers_for_name(name, rhombohedral_axes=rhombohedral):
        # 'P 21/c (No. 14)', 'P 1 21/c 1 (14)': the symbol with its IT number in brackets; each is then a
        # declaration of its own, and the two must agree like any symbol and number.
        match = _HM_WITH_NUMBER.fullmatch(name.strip())
        if match and hall_numbers_for_name(match.group(1), rhombohedral_axes=rhombohedral):
            name, bracketed = match.group(1), match.group(2)
    if isinstance(name, str):
        numbers = hall_numbers_for_name(name, rhombohedral_axes=rhombohedral)
        fitting = hall_numbers_for_name(name, rhombohedral_axes=rhombohedral, metric=metric)
        if numbers:
            resolved.append((f"H-M symbol {name!r}", fitting or numbers))
            if not fitting:
                misfits.append(resolved[-1][0])
        else:
            unreadable.append(f"H-M {name!r}")
    number_texts = [
        (f"IT number {text}", text) for text in [_first(data, _NUMBER_KEYS)] if isinstance(text, str)
    ]
    if bracketed is not None:
        number_texts.append((f"IT number {bracketed} (in the H-M symbol)", bracketed))
    for what, number_text in number_texts:
        value = _number(number_text)
        numbers = (
            hall_numbers_for_it_number(int(value), rhombohedral) if value and value == int(value) else []
        )
        if numbers:
            resolved.append((what, numbers))
            every = hall_numbers_for_it_number(int(value), rhombohedral, every_setting=True)
            if not any(preserves_metric(h, metric) for h in every):
                misfits.append(resolved[-1][0])
        else:
            unreadable.append(f"IT number {number_text!r}")
    return resolved, unreadable


def _check_declared_settings(
    declared: list[tuple[str, list[int]]], parameters: tuple[float, ...], source: str
) -> None:
    """Refuse declarations that name different settings of one group, or axes that the cell contradicts."""
    rhombohedral = is_rhombohedral_axes(parameters)
    for what, candidates in declared:
        choices = {setting_choice(h) for h in candidates}
        if choices == {"R"} and not rhombohedral:
            raise StructureParseError(
                f"the file contradicts itself: its {what} names rhombohedral axes, but the cell "
                f"(a, b, c, alpha, beta, gamma = {', '.join(f'{x:g}' for x in parameters)}) is not rhombohedral",
                source,
            )
        if choices == {"H"} and rhombohedral:
            raise StructureParseError(
                f"the file contradicts itself: its {what} names hexagonal axes, but the cell "
                f"(a = b = c, alpha = beta = gamma = {parameters[3]:g}) is rhombohedral",
                source,
            )
    settings = [(what, set(candidates)) for what, candidates in declared if not what.startswith("IT number")]
    for (what_a, a), (what_b, b) in zip(settings, settings[1:], strict=False):
        if not (a & b):
            raise StructureParseError(
                f"the file contradicts itself: its {what_a} and its {what_b} name different settings of "
                f"{space_group_label(min(a))} (Hall {hall_symbol(min(a))!r} vs {hall_symbol(min(b))!r})",
                source,
            )


def _symmetry(
    data: dict,
    lattice: Lattice,
    parameters: tuple[float, ...],
    source: str,
    notes: list[str],
    pending: list[tuple[str, list[int], int, int]],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str] | None, bool]:
    """Candidate operation sets (one, or several settings to decide from the sites), the listed xyz strings, and
    whether the first candidate is the declared name's conventional reading (the ITA unique axis b of a monoclinic
    short symbol whose other axes the cell also allows).

    Raises StructureParseError when the file declares nothing, names an unknown group without listing operations,
    declares contradicting groups or a setting that the cell's metric excludes, or lists operations that do not
    build a space group in this cell (:func:`_check_listed_group`). When the listed operations form another group
    than the declared one, ``pending`` receives ``(declaration, declared Hall numbers, number of operations, their
    Hall number)`` for :func:`_check_declared_group` to decide on the built sites.
    """
    misfits: list[str] = []
    declared, unreadable = _declared_settings(data, lattice, parameters, source, misfits)
    numbers = {it_number(candidates[0]): what for what, candidates in declared}
    if len(numbers) > 1:
        described = " but ".join(f"{what} means {space_group_label(c[0])}" for what, c in declared)
        raise StructureParseError(f"the file contradicts itself: {described}", source)
    _check_declared_settings(declared, parameters, source)
    operation_list = _listed_operations(data, source, notes)
    if operation_list is not None:
        *listed, exact = operation_list
        closed = _check_listed_group(data, listed, declared, lattice, parameters, source)
        if len(closed[0]) > len(
            {(r.tobytes(), tuple(np.round(t % 1, 4))) for r, t in zip(*listed, strict=True)}
        ):
            notes.append(
                f"the {len(listed[0])} listed operations generate {len(closed[0])}; all were applied"
            )
        hall = 1 if len(closed[0]) == 1 else space_group_type_of_operations(*closed, lattice.matrix)
        if hall is None:
            raise StructureParseError("the listed symmetry operations do not form a space group", source)
        if declared and it_number(declared[0][1][0]) != it_number(hall):
            # Checked on the sites once they are built: some files list only part of the group (e.g. the
            # centring translations) around atoms that are invariant under all of it anyway.
            what, candidates = declared[0]
            pending.append((what, candidates, len(closed[0]), hall))
        for item in unreadable:
            notes.append(f"{item} names no space group; the listed operations were used")
        for item in misfits:
            notes.append(f"the setting of the {item} does not fit the cell; the listed operations were used")
        texts = _first(data, _OPERATION_KEYS)
        listed_texts = None
        if texts is not None and len(closed[0]) == len(listed[0]) and exact:
            listed_texts = [texts] if isinstance(texts, str) else list(texts)
        return [closed], listed_texts, False
    name = _first(data, _HM_KEYS)
    if any(item.startswith("H-M") for item in unreadable) and all(
        w.startswith("IT number") for w, _ in declared
    ):
        variant = centred_variant(name)
        if variant is not None:
            return (
                [_centred_variant_operations(variant, name, declared, lattice, parameters, source, notes)],
                None,
                False,
            )
    if declared:
        what, candidates = min(declared, key=lambda item: len(item[1]))  # the most specific declaration
        rhombohedral = is_rhombohedral_axes(parameters)
        if what.startswith("IT number") and not it_number_is_unambiguous(
            it_number(candidates[0]), rhombohedral
        ):
            # The number alone leaves the setting open: every setting that fits the cell is tried, and the sites
            # must decide.
            every = hall_numbers_for_it_number(it_number(candidates[0]), rhombohedral, every_setting=True)
            candidates = [h for h in every if preserves_metric(h, lattice.metric_tensor)]
            if not candidates:
                misfits.append(what)
                candidates = every
        if what in misfits and all(item in misfits for item, _ in declared):
            # No operations listed and no setting of the declared group fits the cell: CASTEP and Materials Studio
            # write a primitive cell (diamond's 2-atom rhombohedral cell as 'Fd-3m') with all its atoms. Its sites
            # are read as the whole cell, and kept only if they form the declared group (_check_whole_cell_group).
            pending.append((what, candidates, 0, 0))
            notes.append(
                f"no setting of the {what} ({space_group_label(candidates[0])}) fits the cell and no operations are "
                "listed: the sites were read as the whole cell (a primitive cell), and form the declared group"
            )
            return [(np.eye(3)[None].astype(int), np.zeros((1, 3)))], None, False
        if what in misfits:
            deviation = metric_deviation(
                operations_of_hall_number(candidates[0])[0], lattice.metric_tensor
            ).max()
            raise StructureParseError(
                f"the file contradicts itself: the rotations of its {what} ({space_group_label(candidates[0])}, "
                f"Hall {hall_symbol(candidates[0])!r}) do not preserve the cell's metric (a, b, c, alpha, beta, "
                f"gamma = {', '.join(f'{x:g}' for x in parameters)}): R^T G R differs from G by "
                f"{deviation:.2g} of the cell, above the tolerance {METRIC_TOLERANCE}; list the operations, or give "
                "the setting that fits the cell",
                source,
            )
        conventional = (
            what.startswith("H-M")
            and len(candidates) > 1
            and 3 <= it_number(candidates[0]) <= 15
            and len({setting_choice(h)[:1] for h in candidates}) > 1
        )
        return [operations_of_hall_number(h) for h in candidates], None, conventional
    if unreadable:
        raise StructureParseError(
            f"the space group cannot be read ({', '.join(unreadable)}) and the file lists no symmetry "
            "operations; reading the sites as P1 would build another crystal",
            source,
        )
    raise StructureParseError(
        "the file declares no symmetry (no operation list, Hall symbol, H-M name or IT number); "
        "reading the sites as P1 would invent symmetry data. Add _space_group_symop_operation_xyz 'x, y, z' "
        "if the sites are the whole cell",
        source,
    )


def _centred_variant_operations(
    variant: tuple[np.ndarray, np.ndarray],
    name: str,
    declared: list[tuple[str, list[int]]],
    lattice: Lattice,
    parameters: tuple[float, ...],
    source: str,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The operations of a centred triclinic or monoclinic name (:func:`cif_symmetry.centred_variant`), checked
    against the IT number beside it and the cell's metric."""
    rotations, translations = variant
    hall = space_group_type_of_operations(rotations, translations, lattice.matrix)
    if hall is None:
        raise StructureParseError(f"the H-M symbol {name!r} names no space group in this cell", source)
    number = it_number(hall)
    if declared and it_number(declared[0][1][0]) != number:
        raise StructureParseError(
            f"the file contradicts itself: its H-M symbol {name!r} is No. {number}, but its {declared[0][0]} means "
            f"{space_group_label(declared[0][1][0])}",
            source,
        )
    deviation = metric_deviation(rotations, lattice.metric_tensor).max()
    if deviation > METRIC_TOLERANCE:
        raise StructureParseError(
            f"the file contradicts itself: the rotations of its H-M symbol {name!r} do not preserve the cell's metric "
            f"(a, b, c, alpha, beta, gamma = {', '.join(f'{x:g}' for x in parameters)}): R^T G R differs from G by "
            f"{deviation:.2g} of the cell, above the tolerance {METRIC_TOLERANCE}",
            source,
        )
    notes.append(f"H-M symbol {name!r} read as No. {number} in a {name.strip()[0].upper()}-centred cell")
    return rotations, translations


def _operation_text(rotation: np.ndarray, translation: np.ndarray) -> str:
    """``'-x,-y,z+1/2'``: an operation written as an xyz triplet (for operations a file did not write itself)."""
    from .cif_symmetry import _fraction_vector

    fractions = _fraction_vector(translation)[1:-1].split(", ")
    parts = []
    for row, shift in zip(np.rint(rotation).astype(int), fractions, strict=True):
        term = "".join(
            ("+" if c > 0 else "-") + (str(abs(c)) if abs(c) > 1 else "") + axis
            for c, axis in zip(row, "xyz", strict=True)
            if c
        ).lstrip("+")
        parts.append(term + ("" if shift == "0" else f"+{shift}"))
    return ",".join(parts)


def _mistyped_operations(
    listed: tuple[np.ndarray, np.ndarray],
    texts: list[str],
    number: int | None,
    rhombohedral: bool,
    letters: tuple[str, ...],
) -> list[str]:
    """The listed operations whose removal leaves a valid group: one that closes, with only the centring
    translations of the declared lattice (:func:`cif_symmetry.lattice_fault`). At most
    :data:`_MAX_OPERATIONS_TO_BLAME` closures, each bounded by the largest space-group order."""
    culprits: list[str] = []
    if len(texts) > _MAX_OPERATIONS_TO_BLAME:
        return culprits
    for k in range(len(texts)):
        keep = np.arange(len(texts)) != k
        rest = close_operations(listed[0][keep], listed[1][keep])
        if (
            rest is not None
            and lattice_fault(
                *rest, declared_number=number, rhombohedral_axes=rhombohedral, declared_letters=letters
            )
            is None
        ):
            culprits.append(texts[k])
    return culprits


def _check_listed_group(
    data: dict,
    listed: list[np.ndarray],
    declared: list[tuple[str, list[int]]],
    lattice: Lattice,
    parameters: tuple[float, ...],
    source: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The closure of the listed operations, refused (never repaired) when it cannot be this crystal's group.

    * Its rotations must preserve the cell's metric (:func:`cif_symmetry.preserves_metric`).
    * Its pure translations must be centring vectors of the declared group's lattice, or of a conventional lattice
      when none is declared, and it may not hold more operations than the declared group
      (:func:`cif_symmetry.lattice_fault`). A mistyped operation (``-x,-y,z`` for ``-x,-y,z+1/2``) otherwise closes
      into a supergroup with a halved cell and twice the atoms.

    The refusal names the listed operations whose removal would leave a valid group (the mistyped ones).
    """
    closed = close_operations(*listed)
    texts = _first(data, _OPERATION_KEYS)
    texts = [texts] if isinstance(texts, str) else list(texts) if texts is not None else []
    if len(texts) != len(listed[0]):
        texts = [_operation_text(r, t) for r, t in zip(*listed, strict=True)]
    number = it_number(declared[0][1][0]) if declared else None
    rhombohedral = is_rhombohedral_axes(parameters)
    letters = tuple(
        letter
        for letter in (
            lattice_letter(text)
            for text in (_first(data, _HM_KEYS), _first(data, _HALL_KEYS))
            if isinstance(text, str)
        )
        if letter is not None
    )
    if closed is None:
        # More operations than any space group has: name the one whose removal leaves a valid group.
        culprits = _mistyped_operations(listed, texts, number, rhombohedral, letters)
        blame = (
            f": {culprits[0]!r} is likely mistyped (without it the others form a group)"
            if len(culprits) == 1
            else ""
        )
        raise StructureParseError(
            f"the listed symmetry operations do not form a space group{blame}; a wrong operation is not repaired",
            source,
        )
    deviation = metric_deviation(closed[0], lattice.metric_tensor)
    cell = f"a, b, c, alpha, beta, gamma = {', '.join(f'{x:g}' for x in parameters)}"
    if deviation.max() > METRIC_TOLERANCE:
        listed_deviation = metric_deviation(listed[0], lattice.metric_tensor)
        worst = int(np.argmax(listed_deviation))
        raise StructureParseError(
            f"the listed symmetry operation {texts[worst]!r} does not preserve the cell's metric ({cell}): "
            f"R^T G R differs from G by {listed_deviation[worst]:.2g} of the cell (tolerance {METRIC_TOLERANCE}); "
            "the operations and the cell describe different crystal families",
            source,
        )
    if _first(data, _OPERATION_KEYS) is None:
        # A magnetic CIF: its cell is the magnetic cell, whose anti-translations (a translation with time reversal)
        # are pure translations of the nuclear structure that no conventional lattice has.
        return closed
    fault = lattice_fault(
        *closed, declared_number=number, rhombohedral_axes=rhombohedral, declared_letters=letters
    )
    if fault is None:
        return closed
    culprits = _mistyped_operations(listed, texts, number, rhombohedral, letters)
    group = f"the space group its {declared[0][0]} declares" if declared else "any space group"
    formed = space_group_type_of_operations(*closed, lattice.matrix)
    if formed is not None and "more than the" in fault:
        fault += f" (they form {space_group_label(formed)})"
    if len(culprits) == 1:
        blame = (
            f"the listed operation {culprits[0]!r} is likely mistyped: with it, the {len(texts)} operations"
        )
    elif culprits:
        blame = (
            f"one of the listed operations {', '.join(repr(c) for c in culprits)} is likely mistyped: "
            f"the {len(texts)} operations"
        )
    else:
        blame = f"the {len(texts)} listed operations"
    raise StructureParseError(
        f"the symmetry operations cannot be those of {group} in this cell: {blame} {fault}. "
        "A wrong operation is not repaired; correct it or remove the list",
        source,
    )


# ----------------------------------------------------------------------------------------------------------
# Atom sites


def _element(symbol: str, is_label: bool, row_label: str, source: str, notes: list[str]) -> Element:
    text = symbol.strip()
    rest_pattern = _LABEL_REST if is_label else _TYPE_SYMBOL_REST
    for size in (2, 1):
        head, rest = text[:size], text[size:]
        if len(head) != size or not head.isalpha():
            continue
        candidate = head.title()
        if candidate in _HYDROGEN_ISOTOPES and rest_pattern.fullmatch(rest):
            notes.append(f"site {row_label}: {_HYDROGEN_ISOTOPES[candidate]} {symbol!r} read as hydrogen")
            return Element("H")
        if (
            Element.is_valid_symbol(candidate)
            and Element(candidate).Z <= _HEAVIEST_READ_ELEMENT
            and rest_pattern.fullmatch(rest)
        ):
            return Element(candidate)
    what = "label" if is_label else "type symbol"
    raise UnknownSpeciesError(
        f"site {row_label}: the {what} {symbol!r} is not a chemical element (H-Og), optionally with a charge; "
        "groups such as water ('OH2'), dummy atoms or vacancies cannot be encoded",
        source,
    )


def _symbol_readings(text: str) -> list[tuple[str, str]]:
    """``[(element, rest)]`` for each element the text may start with, its first two letters before its first
    one, in any case (``'HO1'`` -> ``[('Ho', '1'), ('H', 'O1')]``); D and T are hydrogen isotopes."""
    readings = []
    for size in (2, 1):
        head, rest = text[:size], text[size:]
        if len(head) != size or not head.isalpha():
            continue
        candidate = head.title()
        if candidate in _HYDROGEN_ISOTOPES or (
            Element.is_valid_symbol(candidate) and Element(candidate).Z <= _HEAVIEST_READ_ELEMENT
        ):
            readings.append((candidate, rest))
    return readings


def _label_element(
    label: str, uses_case: bool, declared: set[str] | None, source: str, notes: list[str]
) -> Element:
    """The element of an atom-site label, in a file that gives no type symbols.

    Labels are an element symbol and a site name. The name may start with a digit or a mark (``'Fe1'``, ``"O1'"``,
    ``'Si_3'``), which always ends the symbol; mineral databases (AMCSD) also start it with a letter: an upper-case
    site name (``'MgT'``, ``'FeT2'``, ``'AlOct'``, ``'NaA(m)'``, Roman numerals ``'NaI'``, ``'MgIII'``, ``'IX'`` = I on
    site X) or a lower-case one (``'Oa1'``, ``'Ala'``, the typed ``'Sl'`` for S1). Where the label holds a lower-case
    letter, or the file writes two-letter symbols in their case elsewhere (``uses_case``: ``'Cl'``, ``'Mg1'``), the
    case tells where the symbol ends: an upper-case letter then at most one lower-case letter that completes an
    element symbol (``'Mg'`` of ``'MgT'``, ``'H'`` of ``'HO1'`` beside ``'Cl'``: the H riding on O1, never holmium).
    In an all-capitals label of a file that writes no symbol in its case (``'HO1'`` beside ``'C1'``, ``'SI1'``
    beside ``'O1a'``) the case tells nothing: the symbol is the longest
    one followed by a digit or mark, as before (``'FE1'`` -> Fe), or the only element the label can start with
    (``'HC2'`` -> H, ``'KK'`` -> K) where the formula names it; when it can start with two (``'HO1'``: Ho, or H on O1), the file's
    ``_chemical_formula_sum`` decides where it names exactly one of them, else the longest is kept (the formula
    check then compares the atoms built). Wherever the formula names another reading of the label and not the one
    chosen, that reading is taken, with a note. Water and hydroxyl labels (``'OH1'``, ``'Ow'``, ``'Wat'``) are
    not read here (:data:`_GROUP_LABEL`).

    Raises:
        UnknownSpeciesError: no element symbol starts the label the way above, naming the label.
    """
    text = label.strip()
    readings = _symbol_readings(text)
    chosen = None
    if not (_GROUP_LABEL.fullmatch(text) or _WATER_OXYGEN.match(text)):
        case_tells = uses_case or any(character.islower() for character in text)
        if case_tells and text[:1].isupper():
            chosen = _case_reading(text, readings)
        else:
            strict = [r for r in readings if not r[1][:1].isalpha()]
            loose = [r for r in readings if r[1][:1].isalpha() and not r[1][:2].islower()]
            if strict:
                chosen = strict[0]
                others = {r[0] for r in loose} - {chosen[0]}
                if declared and chosen[0] not in declared and len(others & declared) == 1:
                    chosen = next(r for r in loose if r[0] in declared)
            elif len(loose) == 1:
                chosen = loose[0]
            elif len(loose) > 1 and declared and len({r[0] for r in loose} & declared) == 1:
                chosen = next(r for r in loose if r[0] in declared)
            if chosen is not None and chosen[1][:1].isalpha() and not declared:
                # an all-capitals label whose site name starts with a letter ('HC2', 'REE1' = Re?): only a
                # formula can confirm the element it names
                chosen = None
        if chosen is not None and declared and _hydrogen(chosen[0]) not in declared:
            named = [r for r in readings if _hydrogen(r[0]) in declared]
            if len(named) == 1:
                notes.append(
                    f"site {label}: the label read as {named[0][0]}, which the formula names, not as {chosen[0]}"
                )
                chosen = named[0]
            elif (len(chosen[0]) == 1 and chosen[1][:1].islower()) or (
                not case_tells and chosen[1][:1].isalpha()
            ):
                # the weakest readings: one letter before lower-case ones ('Kk'), or an all-capitals label
                # whose site name starts with a letter; a symbol the case sets apart ('MnT') stands even where a
                # formula rounded its amount away
                raise UnknownSpeciesError(
                    f"site {label}: the label {label!r} would be read as {chosen[0]} followed by a site name, but "
                    f"the file's formula does not name {chosen[0]}, and no type symbol is given",
                    source,
                )
    if chosen is None and text.startswith("#"):
        raise UnknownSpeciesError(
            f"atom-site row {text[1:]} has neither _atom_site_type_symbol nor _atom_site_label: its element is not "
            "given",
            source,
        )
    if chosen is None:
        raise UnknownSpeciesError(
            f"site {label}: the label {label!r} does not start with a chemical element symbol (H-Cf) followed by a "
            "site name (a digit, a mark, or a name whose case sets it apart), and no type symbol is given; "
            "groups such as water ('OH2', 'Wat'), dummy atoms or vacancies cannot be encoded",
            source,
        )
    if chosen[0] in _HYDROGEN_ISOTOPES:
        notes.append(f"site {label}: {_HYDROGEN_ISOTOPES[chosen[0]]} {label!r} read as hydrogen")
        return Element("H")
    return Element(chosen[0])


def _hydrogen(symbol: str) -> str:
    return "H" if symbol in _HYDROGEN_ISOTOPES else symbol


def _case_reading(text: str, readings: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The reading of a mixed-case label (:func:`_label_element`): the symbol ends where the case says."""
    for symbol, rest in readings:
        if len(symbol) == 2 and text[1].islower():
            return symbol, rest
        if len(symbol) == 1:
            # one letter, then a mark, an upper-case name, or lower-case letters that complete no symbol ('Oa1',
            # 'Hwa', 'Sl')
            return symbol, rest
    return None


_COMPOSITE_PART = re.compile(r"\s*(\d*\.?\d+(?:\(\d+\))?)?\s*([A-Za-z][A-Za-z0-9+-]*)\s*")


def _composite(symbol: str) -> list[tuple[Measured, str]] | None:
    """``'0.75Si + 0.25Al'`` -> ``[(0.75, 'Si'), (0.25, 'Al')]`` (Pauling File mixed sites; the shares as written,
    with the standard uncertainty the file states: ``'0.56(4)Mg + 0.29(3)Ta + 0.15(5)Zr'``), else None."""
    parts = []
    # '+' between terms ('0.75Si + 0.25Al', '0.5Na+0.5K'), not the '+' of a charge ('Fe3+'): a term follows it.
    for term in re.split(r"\s*\+\s*(?=\d*\.?\d+(?:\(\d+\))?\s*[A-Za-z])", symbol):
        match = _COMPOSITE_PART.fullmatch(term)
        share = Measured.parse(match.group(1)) if match is not None and match.group(1) is not None else None
        if share is None:
            return None
        parts.append((share, match.group(2)))
    return parts if len(parts) > 1 else None


def _column(data: dict, key: str, n_rows: int, source: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    if len(values) != n_rows:
        raise StructureParseError(f"{key} has {len(values)} values for {n_rows} atom sites", source)
    return values


def _written_decimals(text: str) -> int | None:
    """How many decimals a coordinate is written with, or None when it is exact whatever its decimals (an integer,
    or a multiple of 1/24 to all the decimals written: 0.5, 0.25, 0.125, 0.375)."""
    head = text.split("(", 1)[0]
    if "." not in head:
        return None
    digits = head.split(".", 1)[1]
    if not digits.isdigit():
        return None
    value = _number(head)
    if value is None or abs(value * 24 - round(value * 24)) < 10 ** -(len(digits) + 1):
        return None
    return len(digits)


class _Columns:
    """The atom-site loop's columns, each one value per row (None when the file does not give that column)."""

    def __init__(self, data: dict, source: str):
        labels = data.get("_atom_site_label")
        fract = data.get("_atom_site_fract_x")
        cartn = data.get("_atom_site_cartn_x")
        reference = labels if labels is not None else (fract if fract is not None else cartn)
        if reference is None:
            raise StructureParseError("no atom sites (_atom_site_fract_x or _atom_site_Cartn_x)", source)
        n_rows = 1 if isinstance(reference, str) else len(reference)
        self.n_rows = n_rows
        self.labels = _column(data, "_atom_site_label", n_rows, source) or [
            f"#{i + 1}" for i in range(n_rows)
        ]
        self.symbols = _column(data, "_atom_site_type_symbol", n_rows, source)
        self.occupancies = _column(data, "_atom_site_occupancy", n_rows, source)
        self.flags = _column(data, "_atom_site_calc_flag", n_rows, source)
        self.hydrogens = _column(data, "_atom_site_attached_hydrogens", n_rows, source)
        self.cartesian = fract is None
        kind = "cartn" if self.cartesian else "fract"
        self.coordinates = [_column(data, f"_atom_site_{kind}_{axis}", n_rows, source) for axis in "xyz"]
        if any(column is None for column in self.coordinates):
            raise StructureParseError("atom sites need all three coordinates", source)

    def symbol(self, i: int) -> str | None:
        """Row ``i``'s type symbol, or None when the file gives none ('?', '.')."""
        return self.symbols[i] if self.symbols is not None and self.symbols[i] not in ("?", ".") else None

    def is_dummy(self, i: int) -> bool:
        return self.flags is not None and self.flags[i].strip().lower() in ("dum", "dummy")


def _group_labels_are_atoms(data: dict, columns: _Columns) -> bool:
    """True when the file accounts for the H of its hydroxyl and water labels: it places H sites of its own (a
    label or type symbol that reads as H or D), or declares a ``_chemical_formula_sum`` with H (or D), which the
    file-claims check then compares with the atoms built (so a group label whose H is nowhere is refused there, as
    H not located). A formula without H beside 'OH' labels contradicts them: the labels stay refused."""
    formula = parse_formula(data.get("_chemical_formula_sum"))
    if formula is not None and any(formula[0].get(element, 0) > 0 for element in ("H", "D")):
        return True
    for i, label in enumerate(columns.labels):
        name = (columns.symbol(i) or label).strip()
        if name[:1] in ("H", "D") and (len(name) == 1 or not name[1].isalpha() or name[:2] in ("Hw", "HW")):
            return True
    return False


class _Rows:
    """The atom-site loop: labels, elements, occupancies and fractional coordinates (n, 3), one entry per element of
    each row; ``site_rows`` keeps one ``(label, index of its first entry)`` per row, ``unlocated`` the rows the file
    declares without a position (``file_claims``)."""

    def __init__(
        self, data: dict, lattice: Lattice, parameters: tuple[float, ...], source: str, notes: list[str]
    ):
        columns = _Columns(data, source)
        self.source = source
        self.notes = notes
        self._group_labels = _group_labels_are_atoms(data, columns)
        # Labels in mixed case ('MgT', 'HO1' beside 'Cl') end their element symbol where the case says; the
        # declared formula's elements pick between two readings of an all-capitals label (_label_element).
        self._labels_use_case = any(
            label[:1].isupper() and label[1:2].islower() and Element.is_valid_symbol(label[:2])
            for label in columns.labels
        )
        formula = parse_formula(data.get("_chemical_formula_sum"))
        self._declared = (
            {element for element, amount in formula[0].items() if amount > 0} if formula else None
        )
        self.labels: list[str] = []
        self.partial: list[str] = []  # rows with partial occupancy or several elements
        self.unknown: list[UnknownSpeciesError] = []  # rows whose element cannot be read
        self.elements: list[Element] = []
        self.occupancies: list[float] = []
        self.shares: list[
            Measured
        ] = []  # each entry's occupancy as written (its rounding decides full sites)
        self.site_rows: list[tuple[str, int]] = []
        self.half_units: list[float] = []  # each entry's coordinate rounding, fractional (_merged_images)
        self.unlocated: list[UnlocatedRow] = []
        self._decimals: list[int | None] = []
        coords: list[list[float]] = []
        for i in range(columns.n_rows):
            if columns.is_dummy(i):
                self._dummy_row(columns, i)
                continue
            self._check_attached_hydrogens(columns, i)
            point = self._point(columns, i)
            # how far this row's coordinates may be off, in fractional units: their rounding (0 for exact values),
            # or 3 standard uncertainties where the file states them ('0.4999(6)' is the mirror plane at 1/2)
            half_unit = max((0.5 * 10.0**-d for d in self._decimals[-3:] if d is not None), default=0.0)
            half_unit = max([half_unit] + [3.0 * su for su in self._row_sus(columns, i)])
            occupancy = self._occupancy(columns, i)
            if occupancy is None:
                continue
            elements = self._row_elements(columns, i, occupancy)
            if elements is None:
                continue
            self.site_rows.append((columns.labels[i], len(self.labels)))
            for element, share in elements:
                self.half_units.append(half_unit)
                self.labels.append(columns.labels[i])
                self.elements.append(element)
                self.occupancies.append(share.value)
                self.shares.append(share)
                coords.append(point)
        self._raise_unknown()
        if not coords:
            raise StructureParseError("the atom-site loop holds no atoms", source)
        self.coords = _fractional(np.array(coords, dtype=float), columns.cartesian, data, parameters, notes)
        # The precision the coordinates are written with: the most decimals any of them has (writers drop trailing
        # zeros, so '0.2' beside '0.3333' is 0.2000), ignoring values that are exact fractions.
        written = [d for d in self._decimals if d is not None]
        self.decimals = max(written) if written else None

    def _dummy_row(self, columns: _Columns, i: int) -> None:
        """A row flagged ``dum``: an atom declared without a position (ICSD writes unlocated H so, at -1, -1, -1,
        with the H per formula unit as its occupancy), recorded for the check; a dummy that is no element is
        skipped with a note."""
        label = columns.labels[i]
        symbol = columns.symbol(i)
        try:
            # a dummy's label is read only as an element followed by a digit or mark ('H5', 'H1A'): dummies are
            # also ring centroids and pseudo-atoms ('Cg1', 'Cp2', 'Q1'), never atoms of a site name's case
            element = _element(
                symbol if symbol is not None else label, symbol is None, label, self.source, []
            )
        except UnknownSpeciesError:
            self.notes.append(f"site {label}: a dummy atom (_atom_site_calc_flag dum), skipped")
            return
        text = columns.occupancies[i].strip() if columns.occupancies is not None else "1"
        occupancy = 1.0 if text in ("?", ".") else _number(text)
        if occupancy == 0:
            self.notes.append(
                f"site {label}: a dummy atom (_atom_site_calc_flag dum) with occupancy 0, skipped"
            )
            return
        self.unlocated.append(
            UnlocatedRow(label, element.symbol, occupancy if occupancy is not None else 1.0)
        )

    def _check_attached_hydrogens(self, columns: _Columns, i: int) -> None:
        if columns.hydrogens is not None and (_number(columns.hydrogens[i]) or 0) > 0:
            raise StructureParseError(
                f"site {columns.labels[i]} carries {columns.hydrogens[i]} implicit hydrogen atoms that the file does "
                "not list (_atom_site_attached_hydrogens); the crystal's atoms are incomplete",
                self.source,
            )

    def _point(self, columns: _Columns, i: int) -> list[float]:
        point = []
        for axis, column in zip("xyz", columns.coordinates, strict=True):
            text = column[i].strip()
            self._decimals.append(_written_decimals(text))
            value = 0.0 if text == "." else _number(text)  # '.' for zero, as in some ICSD exports
            if value is None:
                raise StructureParseError(
                    f"site {columns.labels[i]}: coordinate {axis} = {text!r} is not a number", self.source
                )
            point.append(value)
        return point

    @staticmethod
    def _row_sus(columns: _Columns, i: int) -> list[float]:
        """The standard uncertainties row ``i`` states for its coordinates (fractional)."""
        measured = (Measured.parse(column[i].strip()) for column in columns.coordinates)
        return [m.su for m in measured if m is not None and m.su is not None and not columns.cartesian]

    def _occupancy(self, columns: _Columns, i: int) -> Measured | None:
        """The row's occupancy as written (1 when not given; within OCCUPANCY_TOLERANCE of 1, or above 1 by at most
        3 of its stated s.u., counts as full), None for 0."""
        label = columns.labels[i]
        if columns.occupancies is None or columns.occupancies[i].strip() in ("?", "."):
            return _FULL
        text = columns.occupancies[i].strip()
        occupancy = _number(text)
        if occupancy is None or occupancy < 0:
            raise StructureParseError(f"site {label}: occupancy {text!r} is not a number", self.source)
        if occupancy == 0:
            self.notes.append(f"site {label}: occupancy 0, skipped")
            return None
        if occupancy != 1.0 and abs(occupancy - 1.0) <= OCCUPANCY_TOLERANCE:
            self.notes.append(
                f"site {label}: occupancy {text} counted as full (within {OCCUPANCY_TOLERANCE} of 1)"
            )
            return _FULL
        if occupancy > 1.0:
            measured = Measured.parse(text)
            if measured is not None and measured.su and occupancy - 1.0 <= SU_BAND * measured.su:
                # a refined occupancy of a full site, 1 within 3 of its own s.u. (1.02(2)): full, as its shares are
                self.notes.append(
                    f"site {label}: occupancy {text} counted as full (1 is within {SU_BAND:g} of its stated s.u.)"
                )
                return _FULL
            raise StructureParseError(
                f"site {label}: occupancy {text} is above 1 (tolerance {OCCUPANCY_TOLERANCE}, or "
                f"{SU_BAND:g} stated s.u.)",
                self.source,
            )
        if occupancy < 1.0:
            self.partial.append(f"{label} ({occupancy:g})")
        return Measured.parse(text) or Measured(occupancy, None, text)

    def _row_elements(
        self, columns: _Columns, i: int, occupancy: Measured
    ) -> list[tuple[Element, Measured]] | None:
        """``[(element, occupancy as written)]`` of the row (several for a Pauling-file composite), or None when its element
        cannot be read (kept in ``unknown``)."""
        label = columns.labels[i]
        symbol = columns.symbol(i)
        try:
            parts = _composite(symbol) if symbol is not None and "+" in symbol.strip().lstrip("+") else None
            if parts:
                # Pauling-file composite site, e.g. '0.75Si + 0.25Al': one row per element.
                self.partial.append(f"{label} ({symbol})")
                return [
                    (
                        _element(part, False, label, self.source, self.notes),
                        Measured(
                            share.value * occupancy.value,
                            share.su * occupancy.value if share.su is not None else None,
                            share.text,
                        ),
                    )
                    for share, part in parts
                ]
            name = symbol if symbol is not None else label
            if symbol is None and self._group_labels:
                group = _GROUP_LABEL.fullmatch(label.strip())
                if group is not None:
                    element = Element("H" if group.group(2) == "H" else "O")
                    self.notes.append(
                        f"site {label}: the label of a {'hydroxyl or water' if element.symbol == 'O' else 'water'} "
                        f"{element.symbol} atom, read as {element.symbol} (the file places or declares its H)"
                    )
                    return [(element, occupancy)]
            if symbol is None:
                return [
                    (
                        _label_element(label, self._labels_use_case, self._declared, self.source, self.notes),
                        occupancy,
                    )
                ]
            try:
                return [(_element(name, False, label, self.source, self.notes), occupancy)]
            except UnknownSpeciesError:
                group = _IMPLICIT_HYDROGEN_GROUP.fullmatch(name.strip())
                if group is None or not Element.is_valid_symbol(group.group(1)):
                    raise
                raise ImplicitHydrogenGroupError(
                    f"site {label}: the type symbol {name.strip()!r} stands for {group.group(1)} with "
                    f"{group.group(2) or '1'} H atom(s) that no site places (a group pseudo-atom, as the Pauling "
                    "File writes hydroxyl, water and ammonia): H not located, so the sites describe another crystal",
                    self.source,
                ) from None
        except UnknownSpeciesError as exc:
            self.unknown.append(exc)
            return None

    def _raise_unknown(self) -> None:
        """Refuse the rows whose element cannot be read, with that reason: partial sites beside them are no
        obstacle under ``--disorder encode``, so they never stand in for it."""
        if not self.unknown:
            return
        first = self.unknown[0]
        if len(self.unknown) > 1:
            others = [exc.message.split(":", 1)[0].removeprefix("site ") for exc in self.unknown[1:]]
            raise type(first)(
                f"{first.message}; also site(s) {', '.join(others[:6])}"
                + (", ..." if len(others) > 6 else ""),
                first.source,
            )
        raise first


def _fractional(
    coords: np.ndarray, cartesian: bool, data: dict, parameters: tuple[float, ...], notes: list[str]
) -> np.ndarray:
    """Fractional coordinates (n, 3) of the rows, snapped to 1/3 and 2/3 as pymatgen does (relative 1e-4)."""
    if cartesian:
        transform = _cartesian_transform(data, parameters)
        coords = np.linalg.solve(transform, (coords - _cartesian_origin(data)).T).T
        notes.append("coordinates read from _atom_site_Cartn_* (Cartesian)")
    for ideal in _IDEAL_FRACTIONS:
        coords[np.abs(coords / ideal - 1) <= FRAC_TOLERANCE] = ideal
    return coords


def _cartesian_transform(data: dict, parameters: tuple[float, ...]) -> np.ndarray:
    """The matrix T of ``Cartn = T @ fract + origin``: ``_atom_sites_Cartn_tran_matrix`` or the IUCr default."""
    entries = [data.get(f"_atom_sites_cartn_tran_matrix_{i}{j}") for i in "123" for j in "123"]
    if all(isinstance(e, str) and _number(e) is not None for e in entries):
        return np.array([_number(e) for e in entries], dtype=float).reshape(3, 3)
    return _orthogonalization(parameters).T


def _cartesian_origin(data: dict) -> np.ndarray:
    entries = [data.get(f"_atom_sites_cartn_tran_vector_{i}") for i in "123"]
    if all(isinstance(e, str) and _number(e) is not None for e in entries):
        return np.array([_number(e) for e in entries], dtype=float)
    return np.zeros(3)


# ----------------------------------------------------------------------------------------------------------
# Expansion


def _min_image(delta: np.ndarray) -> np.ndarray:
    return delta - np.round(delta)


def _merged_images(
    point: np.ndarray, rotations, translations, matrix: np.ndarray, half_unit: float = 0.0
) -> tuple[np.ndarray, int, list[int]]:
    """The distinct images of one site: images closer than IMAGE_MERGE_DISTANCE become their centroid.

    Merged images are either one special position written with rounded coordinates, or a site slightly off a
    symmetry element whose images are distinct positions (a partial atom split across a mirror). How far the
    written coordinates may be off (``half_unit``, fractional: their rounding, or 3 stated s.u.) moves an image by
    at most 3 times that relative to the site (a rotation's row in hexagonal axes holds at most two unit entries,
    -x+y); images further apart than that are distinct: their number is returned for each position, so that a
    partial site's occupancies can add (cod-tools' 12917: carbonate O 0.12-0.24 written 0.002-0.006 off a mirror,
    beyond the 3-decimal rounding; SHELXL's N 0.50 at z = 0.4999(6) is on the mirror).

    Returns:
        ``(positions (m, 3) in [0, 1), number of image groups merged beyond pymatgen's 1e-4, distinct images per
        position)``.
    """
    images = np.einsum("kij,j->ki", rotations, point) + translations
    images -= np.floor(images)
    kept: list[np.ndarray] = []
    counts: list[int] = []
    merged_far = 0
    assigned = np.zeros(len(images), dtype=bool)
    rounding = 3.0 * half_unit + 1e-6
    for k in range(len(images)):
        if assigned[k]:
            continue
        delta = _min_image(images - images[k])
        distance = np.linalg.norm(delta @ matrix, axis=1)
        group = (~assigned) & (distance < IMAGE_MERGE_DISTANCE)
        assigned |= group
        if np.any(np.abs(delta[group]).max(axis=1) >= SITE_TOLERANCE):
            merged_far += 1
        centroid = images[k] + delta[group].mean(axis=0)
        kept.append(centroid - np.floor(centroid))
        counts.append(_distinct(delta[group], rounding))
    return np.array(kept), merged_far, counts


def _distinct(deltas: np.ndarray, rounding: float) -> int:
    """How many of these images (fractional offsets from the first) lie further apart than ``rounding``."""
    representatives: list[np.ndarray] = []
    for delta in deltas:
        if all(np.abs(_min_image(delta - r)).max() > rounding for r in representatives):
            representatives.append(delta)
    return len(representatives)


class _PositionIndex:
    """The sites built so far, binned on a fractional grid, so that finding the nearest one within ``radius`` looks
    at the sites of 27 neighbouring bins instead of all of them: building ``n`` sites costs ``O(n)`` time on average
    (``O(n^2)`` before, which kept protein mmCIFs of tens of thousands of atoms busy for minutes) and ``O(n)`` memory.

    A site closer than ``radius`` (Å) differs in fractional coordinate ``i`` by at most ``radius * |b*_i|`` (``b*_i``
    the reciprocal vector, without 2π), so bins at least that wide along each axis hold every candidate in the query's
    bin and the ones next to it (periodic). The answer is the one the full scan gave: the lowest-index site among the
    nearest, when it is within ``radius``.
    """

    def __init__(self, matrix: np.ndarray, radius: float):
        self.matrix = matrix
        widths = radius * np.linalg.norm(np.linalg.inv(matrix).T, axis=1)
        self.bins = np.maximum(1, np.floor(1.0 / np.maximum(widths, 1e-12))).astype(np.int64)
        self.cells: dict[tuple[int, int, int], list[int]] = {}
        self.coords: list[np.ndarray] = []
        self.offsets = [
            np.array(offset)
            for offset in itertools.product(*[range(-1, 2) if n > 2 else range(n) for n in self.bins])
        ]

    def _cell(self, position: np.ndarray) -> np.ndarray:
        return np.floor(np.mod(position, 1.0) * self.bins).astype(np.int64) % self.bins

    def add(self, position: np.ndarray) -> None:
        self.cells.setdefault(tuple(self._cell(position).tolist()), []).append(len(self.coords))
        self.coords.append(position)

    def nearest(self, position: np.ndarray, radius: float) -> int | None:
        """Index of the nearest site kept (the lowest among equals) if it is closer than ``radius``, else None."""
        cell = self._cell(position)
        small = (
            self.bins <= 2
        )  # an axis with 1 or 2 bins: every bin is a neighbour (offsets 0..n-1, absolute)
        candidates: set[int] = set()
        for offset in self.offsets:
            key = np.where(small, offset, (cell + offset) % self.bins)
            candidates.update(self.cells.get(tuple(key.tolist()), ()))
        if not candidates:
            return None
        indices = sorted(candidates)
        delta = _min_image(np.array([self.coords[i] for i in indices]) - position)
        distance = np.linalg.norm(delta @ self.matrix, axis=1)
        k = int(np.argmin(distance))
        return indices[k] if distance[k] < radius else None


def _general_structure(
    rows: _Rows, lattice: Lattice, operations, source: str, notes: list[str], add_image_rows: bool = False
) -> Structure:
    """The crystal of ``rows`` under ``operations``. A row that lands, through a symmetry operation only, on the
    site of a row of the same atom, same element and occupancy, is read once (a symmetry image written out), and
    listed under ``_IMAGE_REPEATS`` where the two would not overfill the site; with ``add_image_rows`` such rows
    are added instead (their occupancies summed), the reading :func:`_crystal_from_block` takes where the file's
    formula says so."""
    rotations, translations = operations
    image_repeats: list[str] = []
    matrix = lattice.matrix
    site_coords: list[np.ndarray] = []
    site_species: list[dict[Element, float]] = []
    site_labels: list[str] = []
    site_rows: list[list[str]] = []
    site_shares: list[list[Measured]] = []
    merged_total = 0
    duplicates: dict[str, str] = {}  # row -> the row it repeats
    kept = _PositionIndex(matrix, IMAGE_MERGE_DISTANCE)
    split_rows: dict[str, int] = {}  # partial row -> distinct images merged into each of its sites
    written: dict[str, np.ndarray] = {}  # row -> the position it is written at
    for label, element, share, point, half_unit in zip(
        rows.labels, rows.elements, rows.shares, rows.coords, rows.half_units, strict=True
    ):
        written.setdefault(label, np.asarray(point, dtype=float))
        positions, merged_far, counts = _merged_images(point, rotations, translations, matrix, half_unit)
        merged_total += merged_far
        for position, count in zip(positions, counts, strict=True):
            occupancy = share.value
            if count > 1 and occupancy < 1.0:
                # distinct images of a partial site, closer than the merge distance: one site holding them all
                occupancy *= count
                if occupancy > 1.0 + OCCUPANCY_TOLERANCE:
                    raise OverlappingSitesError(
                        f"row {label} (occupancy {share.text}) has {count} symmetry images within "
                        f"{IMAGE_MERGE_DISTANCE} Å of each other at {np.round(position, 4).tolist()}, whose "
                        f"occupancies sum to {occupancy:.4g} > 1",
                        source,
                    )
                split_rows[label] = max(count, split_rows.get(label, 1))
            site_share = share
            if occupancy != share.value:
                site_share = Measured(
                    occupancy, share.su * count if share.su is not None else None, share.text
                )
            k = kept.nearest(position, IMAGE_MERGE_DISTANCE)
            if k is not None:
                # Two rows at one position: a mixed or partially occupied site, or one row repeating another.
                species = site_species[k]
                image = not any(
                    np.linalg.norm(_min_image(written[other] - point) @ matrix) < IMAGE_MERGE_DISTANCE
                    for other in site_rows[k]
                    if other in written
                )
                if _repeats(species, element, occupancy, label, site_rows[k], image):
                    ambiguous = image and species[element] + occupancy <= 1.0 + OCCUPANCY_TOLERANCE
                    if not (ambiguous and add_image_rows):
                        if ambiguous and label not in image_repeats:
                            image_repeats.append(label)
                        duplicates.setdefault(label, site_rows[k][0])
                        continue
                species[element] = species.get(element, 0.0) + occupancy
                if label not in site_rows[k]:
                    site_rows[k].append(label)
                site_shares[k].append(site_share)
                total = sum(species.values())
                if total > 1.0 + OCCUPANCY_TOLERANCE and not shares_fill_site(site_shares[k]):
                    written = " + ".join(share.text for share in site_shares[k])
                    raise OverlappingSitesError(
                        (
                            f"rows {' and '.join(site_rows[k])} put atoms on the same position "
                            if len(site_rows[k]) > 1
                            else f"the occupancies written for {label} ({written}) overfill one position "
                        )
                        + f"{np.round(site_coords[k], 4).tolist()} (total occupancy {total:.4g} > 1)",
                        source,
                    )
                continue
            site_coords.append(position)
            kept.add(position)
            site_species.append({element: occupancy})
            site_labels.append(label)
            site_rows.append([label])
            site_shares.append([site_share])
    if merged_total:
        notes.append(
            f"{merged_total} groups of symmetry images closer than {IMAGE_MERGE_DISTANCE} Å were merged "
            "(coordinates written with few decimals)"
        )
    if split_rows:
        notes.append(
            f"partial rows {', '.join(split_rows)}: symmetry images further apart than the coordinates' rounding "
            f"but closer than {IMAGE_MERGE_DISTANCE} Å were merged into one site holding their occupancies together"
        )
    for label, original in duplicates.items():
        notes.append(
            f"row {label} repeats row {original} (same element and occupancy at the same position, a symmetry "
            "image written as a row of its own): read once"
        )

    # pymatgen's order: by electronegativity of the (first) species, then symbol; stable within ties.
    def order_key(i: int):
        element = max(site_species[i], key=site_species[i].get)
        x = element.X
        return (math.inf if x != x else x, element.symbol)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for elements without an electronegativity
        order = sorted(range(len(site_coords)), key=order_key)
    _full_sites(site_species, site_shares, site_rows, notes)
    try:
        structure = Structure(
            lattice,
            [site_species[i] for i in order],
            np.array([site_coords[i] for i in order]),
            labels=[site_labels[i] for i in order],
        )
        if split_rows:
            structure.properties[_SPLIT_IMAGES] = split_rows
        if image_repeats:
            structure.properties[_IMAGE_REPEATS] = image_repeats
        return structure
    except ValueError as exc:  # pymatgen refuses what it cannot hold (e.g. occupancies summing above 1)
        raise StructureParseError(f"the sites cannot form a structure ({exc})", source) from exc


def _repeats(
    species: dict, element: Element, occupancy: float, label: str, labels: list[str], image: bool = False
) -> bool:
    """Whether a row's image landing on a site already built repeats it: another row of the same atom (the same
    label, or the same element symbol and number with a suffix: older COD files and cod-tools' molecule outputs
    list symmetry images as rows 'O1A*' beside 'O1', 'C1B*', 'Te2_1_445'; AMCSD's 9000079 lists Cu at x and -x,
    both 'Cu'), the same single element at the same occupancy, which together would overfill the site, or which
    is written at another position than those rows (``image``: it lands on their site only through a symmetry
    operation, so it is one of their images written out, whatever its occupancy: 'O1A' 0.5 at O1's image, beside
    O1 0.5, leaves that O half occupied). A row's own images never land on each other: they are merged first. Rows
    at one written position whose occupancies sum to at most 1 are a split or mixed site instead (disorder parts
    'C1A' 0.5 and 'C1B' 0.5 sharing a position); a different element, or rows named as different atoms ('Na1',
    'Na2'), an overlap: neither repeats."""
    base = _LABEL_BASE.match(label)
    same_atom = label in labels or (
        base is not None
        and any(
            _LABEL_BASE.match(other) and _LABEL_BASE.match(other).group() == base.group() for other in labels
        )
    )
    return (
        same_atom
        and list(species) == [element]
        and abs(species[element] - occupancy) < 1e-9
        and (image or 2 * occupancy > 1.0 + OCCUPANCY_TOLERANCE)
    )


def _full_sites(
    site_species: list[dict[Element, float]],
    site_shares: list[list[Measured]],
    site_rows: list[list[str]],
    notes: list[str],
) -> None:
    """Rescale, in place, the sites whose shares make a full site as written to sum to exactly 1.

    Sums above 1 are within OCCUPANCY_TOLERANCE or the rounding of their shares (checked while merging): rows
    rounded up, e.g. Na 0.999 -> 1 + K 0.001. Sums below 1 are a full site when their n shares, each rounded to its
    last decimal, sum to 1 within that rounding (``file_claims.shares_fill_site``: Ni 0.33 + Mn 0.33 + Co 0.33);
    anything further below 1 is a vacancy share. Several shares rescaled, above 1 or below, get a note
    (Mn 0.34 + Co 0.34 + Ni 0.33 = 1.01 as Ni 0.33 + Mn 0.33 + Co 0.33 = 0.99).
    """
    for species, shares, labels in zip(site_species, site_shares, site_rows, strict=True):
        total = sum(species.values())
        full = total > 1.0 or (total < 1.0 - 1e-12 and shares_fill_site(shares))
        if not full:
            continue
        for element in species:
            species[element] /= total
        if len(shares) > 1 and abs(total - 1.0) > 1e-9:
            written = " + ".join(share.text for share in shares)
            notes.append(
                f"site {'/'.join(labels)}: occupancies {written} = {total:.4g} counted as a full site (the rounding "
                f"of {len(shares)} shares as written, or within 3 s.u.); rescaled to sum to 1"
            )


def _fast_structure(rows: _Rows, lattice: Lattice, listed_texts: list[str] | None) -> Structure | None:
    """pymatgen's exact structure for the common subset (see :mod:`cif_reader`), or None."""
    if listed_texts is None or any(o != 1.0 for o in rows.occupancies):
        return None
    from .cif_reader import _apply_operations, _operations_of, _sites_would_merge

    operations: _Operations | None = _operations_of(tuple(listed_texts))
    if operations is None:
        return None
    species = [_species_of(e.symbol) for e in rows.elements]
    if any(s is None for s in species):
        return None
    images = _apply_operations(rows.coords, operations)
    if _sites_would_merge(rows.coords, images):
        return None
    if operations.count > 1:
        wrapped = images - np.floor(images)
        delta = _min_image(wrapped[:, :, None, :] - wrapped[:, None, :, :])
        same = (np.abs(delta) < SITE_TOLERANCE).all(axis=3)
        distance = np.linalg.norm(delta @ lattice.matrix, axis=3)
        if np.any(~same & (distance < IMAGE_MERGE_DISTANCE)):
            return None  # images a few mÅ apart: merged by the general path
    return _build_structure(lattice, species, rows.coords, images, rows.labels)


def _choose_setting(
    candidates: list[Structure | None],
    data: dict,
    source: str,
    notes: list[str],
    conventional: bool = False,
    claims_of: Callable[[int, Structure], FileClaims] | None = None,
) -> Structure:
    """A declaration that leaves the setting open (an H-M name without its origin choice, an IT number alone, a
    monoclinic short symbol in a cell whose angles allow several unique axes): keep the settings whose sites do not
    collide and match the listed multiplicities; when several remain they must describe the same crystal (one
    SCOPE v2 string), else those whose cell contents agree with what the file says about itself (its formula
    times Z, cell volume and density: ``claims_of(index, structure)``, checked by ``file_claims``) are kept; when
    still several differ the file is ambiguous and refused, unless ``conventional`` says the first candidate is
    the name's ITA reading (unique axis b for a monoclinic short symbol), which is then used.

    A diamond-type Si cell written 'F d -3 m' with Si at (1/8, 1/8, 1/8) reads as 8 atoms (origin choice 2, 8a) or
    16 (origin choice 1, 16c), both plausible; its Z = 8 or its density 2.33 g/cm^3 decides.

    ``candidates`` holds None for a setting whose rows could not even be expanded (they pile up on one position).
    """
    multiplicities = data.get("_atom_site_symmetry_multiplicity")
    plausible = []
    for structure in candidates:
        if structure is None:
            continue
        if isinstance(multiplicities, list):
            counts: dict[str, int] = {}
            for site in structure:
                counts[site.label] = counts.get(site.label, 0) + 1
            listed = dict(zip(data.get("_atom_site_label", []), multiplicities, strict=False))
            if any(_number(listed.get(k, "")) not in (None, v) for k, v in counts.items()):
                continue
        if _shortest_distance(structure) >= 0.5:
            plausible.append(structure)
    if len(plausible) == 1:
        notes.append("setting not declared: the only one whose sites are consistent was used")
        return plausible[0]
    if len(plausible) > 1:
        from .scope_v2 import encode_v2

        try:
            strings = {encode_v2(structure, source=source) for structure in plausible}
        except ScopeError:
            strings = set()
        if len(strings) == 1:
            notes.append(
                f"setting not declared: all {len(plausible)} plausible settings give the same crystal"
            )
            return plausible[0]
        if claims_of is not None:
            agreeing = [
                structure
                for structure in plausible
                if _agrees_with_claims(
                    structure, claims_of(_index_of(candidates, structure), structure), source
                )
            ]
            if len(agreeing) == 1:
                notes.append(
                    f"setting not declared: of the {len(plausible)} plausible settings, the only one whose cell "
                    "agrees with the file's own formula, Z, volume and density was used"
                )
                return agreeing[0]
            if agreeing:
                plausible = agreeing
        if conventional and candidates[0] is not None and any(s is candidates[0] for s in plausible):
            notes.append(
                "the monoclinic short symbol fits several unique axes of this cell; read with unique axis b, as "
                "the International Tables define the short symbol"
            )
            return candidates[0]
    given = [
        what
        for what, keys in (("Hall symbol", _HALL_KEYS), ("operation list", _OPERATION_KEYS))
        if _first(data, keys)
    ]
    advice = (
        "add ':1'/':2' or the setting to the H-M symbol"
        + ("" if "Hall symbol" in given else ", give the Hall symbol")
        + ", or list the operations"
    )
    raise StructureParseError(
        "the declared space group has several settings (origin, axes or cell choices) and the file does not say "
        f"which one ({advice}); "
        + (
            f"{len(plausible)} settings give plausible but different crystals"
            if plausible
            else "no setting gives a plausible crystal"
        ),
        source,
    )


def _index_of(candidates: list[Structure | None], structure: Structure) -> int:
    return next(i for i, candidate in enumerate(candidates) if candidate is structure)


def _image_rows_by_formula(
    structure: Structure,
    data: dict,
    rows: _Rows,
    lattice: Lattice,
    parameters,
    operations,
    source: str,
    notes,
) -> Structure:
    """Where rows were read once as other rows' symmetry images (``_IMAGE_REPEATS``), the reading the file's own
    formula and Z agree with.

    'O1A' 0.5 at the image of 'O1' 0.5 is either O1's image written out (one half-occupied O) or a second half of
    the atom at that position (SHELX writes a methyl group on a mirror plane as 'H12' 0.5 and 'H12A' 0.5 at the
    mirror image: one full H there). Nothing in the rows tells them apart; the formula times Z does. The first
    reading stays unless the sum fits the file's claims better: they contradict the first and not the sum, or the
    sum needs fewer notes (a 68-H cell against 70 declared is within the 3 % tolerance, the sum's 70 exact). Then a
    note says so. A setting left open by the name is compared with each setting in its own better reading."""
    repeated = structure.properties.pop(_IMAGE_REPEATS, None)
    if not repeated:
        return structure

    def claims_for(candidate: Structure) -> FileClaims:
        return _claims_of_reading(data, rows, lattice, parameters, operations, candidate, source)

    first_fit = _claims_fit(structure, claims_for(structure), source)
    if first_fit == 0:
        return structure
    summed_notes: list[str] = []
    try:
        summed = _general_structure(rows, lattice, operations, source, summed_notes, add_image_rows=True)
    except ScopeError:
        return structure
    summed_fit = _claims_fit(summed, claims_for(summed), source)
    if summed_fit is None or (first_fit is not None and summed_fit >= first_fit):
        return structure
    notes[:] = [
        note for note in notes if not any(note.startswith(f"row {label} repeats") for label in repeated)
    ]
    notes.extend(summed_notes)
    notes.append(
        f"{'row' if len(repeated) == 1 else 'rows'} {', '.join(repeated)} at symmetry images of rows of the same "
        "atom with the same occupancy: occupancies added there, as the file's formula and Z count them (read once, "
        "the cell would " + ("contradict the formula)" if first_fit is None else "fit it less closely)")
    )
    return summed


def _claims_fit(structure: Structure, claims: FileClaims, source: str) -> int | None:
    """How many deviations (within their tolerances) the file's self-description notes for this reading, or
    ``None`` where it contradicts the reading."""
    try:
        return len(check_file_claims(structure, claims, source))
    except InconsistentFileError:
        return None


def _agrees_with_claims(structure: Structure, claims: FileClaims, source: str) -> bool:
    """Whether the file's self-description (formula times Z, volume, density, multiplicities) fits this reading."""
    return _claims_fit(structure, claims, source) is not None


def _shortest_distance(structure: Structure) -> float:
    if len(structure) < 2:
        return math.inf
    distances = structure.distance_matrix
    np.fill_diagonal(distances, math.inf)
    return float(distances.min())


def _is_invariant(structure: Structure, rotations: np.ndarray, translations: np.ndarray) -> bool:
    """Whether every operation maps every site onto a site of the same species within IMAGE_MERGE_DISTANCE."""
    coords = structure.frac_coords
    matrix = structure.lattice.matrix
    kinds = {}
    species = np.array([kinds.setdefault(str(site.species), len(kinds)) for site in structure])
    same_species = species[:, None] == species[None, :]
    for rotation, translation in zip(rotations, translations, strict=True):
        images = coords @ np.asarray(rotation, dtype=float).T + translation
        delta = _min_image(images[:, None, :] - coords[None, :, :])
        distance = np.linalg.norm(delta @ matrix, axis=2)
        if not np.all(np.any((distance < IMAGE_MERGE_DISTANCE) & same_species, axis=1)):
            return False
    return True


def _check_declared_group(
    structure: Structure,
    what: str,
    candidates: list[int],
    n_listed: int,
    listed_hall: int,
    source: str,
    notes: list[str],
) -> None:
    """Refuse a file whose sites are not invariant under the group it declares (in the declared setting)."""
    for hall_number in candidates:
        if _is_invariant(structure, *operations_of_hall_number(hall_number)):
            notes.append(
                f"the file lists {n_listed} symmetry operations ({space_group_label(listed_hall)}) of the declared "
                f"{space_group_label(hall_number)}; the sites are invariant under all of its operations"
            )
            return
    raise StructureParseError(
        f"the file contradicts itself: its {what} declares {space_group_label(candidates[0])}, but its "
        f"{n_listed} symmetry operations form {space_group_label(listed_hall)} and the sites they build are not "
        f"invariant under {space_group_label(candidates[0])}",
        source,
    )


def _check_whole_cell_group(
    structure: Structure, what: str, candidates: list[int], parameters: tuple[float, ...], source: str
) -> None:
    """Refuse the sites of a cell that no setting of the declared group fits (read as the whole cell) unless they
    form the declared group (spglib through pymatgen, at its default 0.01 Å)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    declared = it_number(candidates[0])
    try:
        found = SpacegroupAnalyzer(structure).get_space_group_number()
    except (TypeError, ValueError):  # spglib found no group
        found = None
    if found != declared:
        raise StructureParseError(
            f"the file contradicts itself: the rotations of its {what} ({space_group_label(candidates[0])}) do not "
            f"preserve the cell's metric (a, b, c, alpha, beta, gamma = {', '.join(f'{x:g}' for x in parameters)}), "
            "and its sites, read as the whole cell (no operations listed), form "
            + (f"space group {found}" if found else "no space group")
            + "; list the operations, or give the setting that fits the cell",
            source,
        )


def _crystal_from_block(data: dict, source: str) -> Structure:
    notes: list[str] = []
    if any(key.startswith(("_cell_modulation", "_cell_subsystem")) for key in data):
        raise StructureParseError(
            "a modulated or composite (superspace) crystal; SCOPE describes three-dimensional periodic crystals",
            source,
        )
    if "_cod_molecule_atom_label" in data:
        raise NonPeriodicStructureError(
            "the block is a molecule cut out of a crystal (cod-tools' _cod_molecule_* tags), placed in the "
            "crystal's cell with P 1: its atoms are one molecule or fragment, not the periodic crystal's contents",
            source,
        )
    lattice, parameters = _lattice(data, source)
    pending: list[tuple[str, list[int], int, int]] = []
    operation_sets, listed_texts, conventional = _symmetry(data, lattice, parameters, source, notes, pending)
    rows = _Rows(data, lattice, parameters, source, notes)
    if any("_atom_site_moment" in key for key in data) and not any("magnetic" in n for n in notes):
        notes.append("magnetic moments ignored (SCOPE encodes the nuclear structure)")
    if len(operation_sets) == 1:
        structure = _fast_structure(rows, lattice, listed_texts)
        if structure is None:
            structure = _general_structure(rows, lattice, operation_sets[0], source, notes)
            structure = _image_rows_by_formula(
                structure, data, rows, lattice, parameters, operation_sets[0], source, notes
            )
    else:
        structures: list[Structure | None] = []
        candidate_notes: list[list[str]] = []
        for operations in operation_sets:
            candidate_notes.append([])
            try:  # a wrong setting may pile rows onto one position: that setting is not plausible
                candidate = _general_structure(rows, lattice, operations, source, candidate_notes[-1])
            except ScopeError:
                structures.append(None)
                continue
            # each setting in the reading of its image rows that the formula supports, before settings compare
            structures.append(
                _image_rows_by_formula(
                    candidate, data, rows, lattice, parameters, operations, source, candidate_notes[-1]
                )
            )

        def claims_of(index: int, candidate: Structure) -> FileClaims:
            return _claims_of_reading(
                data, rows, lattice, parameters, operation_sets[index], candidate, source
            )

        structure = _choose_setting(structures, data, source, notes, conventional, claims_of)
        notes.extend(candidate_notes[_index_of(structures, structure)])
    for what, candidates, n_listed, listed_hall in pending:
        if n_listed == 0:
            _check_whole_cell_group(structure, what, candidates, parameters, source)
            continue
        _check_declared_group(structure, what, candidates, n_listed, listed_hall, source, notes)
    if rows.decimals is not None and rows.decimals >= MIN_DECIMALS_FOR_UNCERTAINTY:
        # Rounding to d decimals moves a site by up to 0.5e-d of each cell length; two sites then disagree by up to
        # 1e-d * (a + b + c). The symmetry search must tolerate that much (SCOPE_V2.md, "Coordinate precision").
        a, b, c = parameters[:3]
        uncertainty = min(10.0**-rows.decimals * (a + b + c), IMAGE_MERGE_DISTANCE)
        structure.properties["coordinate_uncertainty"] = uncertainty
        if uncertainty > COORDINATE_UNCERTAINTY_NOTE:
            notes.append(
                f"coordinates are written with {rows.decimals} decimals: sites are known to ±{uncertainty:.3g} Å, "
                "so symmetry is searched with at least that tolerance"
            )
    if notes:
        structure.properties["reader_notes"] = list(dict.fromkeys(notes))
    claims = _claims_of_reading(data, rows, lattice, parameters, operation_sets[0], structure, source)
    structure.properties.pop(_SPLIT_IMAGES, None)
    return attach_claims(structure, claims)


def _claims_of_reading(
    data: dict,
    rows: _Rows,
    lattice: Lattice,
    parameters: tuple[float, ...],
    operations,
    structure: Structure,
    source: str,
) -> FileClaims:
    """``_file_claims`` for one reading of the rows: ``structure`` built with ``operations`` (a setting's operation
    list and translations), whose split rows' image counts it carries under ``_SPLIT_IMAGES``."""
    split_images = structure.properties.get(_SPLIT_IMAGES, {})
    return _file_claims(data, rows, lattice, parameters, len(operations[0]), source, split_images)


_MULTIPLICITY_KEYS = ("_atom_site_symmetry_multiplicity", "_atom_site_site_symmetry_multiplicity")
_WYCKOFF_KEYS = ("_atom_site_wyckoff_symbol",)
_WYCKOFF = re.compile(r"\d*\s*([a-zA-Z])")


def _file_claims(
    data: dict,
    rows: _Rows,
    lattice: Lattice,
    parameters: tuple[float, ...],
    n_operations: int,
    source: str,
    split_images: dict[str, int] | None = None,
) -> FileClaims:
    """What the block says about its crystal beyond the sites (checked by ``file_claims``): formula sum and Z,
    cell volume and density, each row's multiplicity and Wyckoff letter, and the rows it declares unlocated."""
    formula = parse_formula(data.get("_chemical_formula_sum"))
    cell = tuple(Measured.parse(data.get(key)) for key in _CELL_KEYS)
    labels = data.get("_atom_site_label")
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    multiplicities = _optional_column(data, _MULTIPLICITY_KEYS, len(labels))
    wyckoff = _optional_column(data, _WYCKOFF_KEYS, len(labels))
    row_of = {label: i for i, label in enumerate(labels)}
    sites = []
    for label, first in rows.site_rows:
        i = row_of.get(label)
        multiplicity = _number(multiplicities[i]) if multiplicities is not None and i is not None else None
        letter = _WYCKOFF.fullmatch(wyckoff[i].strip()) if wyckoff is not None and i is not None else None
        sites.append(
            SiteClaim(
                label,
                tuple(float(x) for x in rows.coords[first]),
                int(multiplicity) if multiplicity is not None and multiplicity == int(multiplicity) else None,
                letter.group(1) if letter else None,
                (split_images or {}).get(label, 1),
            )
        )
    try:
        declared, _ = _declared_settings(data, lattice, parameters, source)
    except ScopeError:
        declared = []
    return FileClaims(
        "CIF",
        formula=formula[0] if formula else None,
        formula_text=data.get("_chemical_formula_sum") if formula else None,
        formula_resolution=formula[1] if formula else {},
        formula_units=Measured.parse(data.get("_cell_formula_units_z")),
        unlocated=tuple(rows.unlocated),
        cell_volume=Measured.parse(data.get("_cell_volume")),
        cell_parameters=cell if all(p is not None for p in cell) else None,
        density=Measured.parse(data.get("_exptl_crystal_density_diffrn")),
        sites=tuple(sites),
        space_group_number=it_number(declared[0][1][0]) if declared else None,
        n_operations=n_operations,
        rhombohedral_axes=is_rhombohedral_axes(parameters),
    )


def _optional_column(data: dict, keys: tuple[str, ...], n_rows: int) -> list[str] | None:
    """A descriptive atom-site column, or None when absent or not one value per row (then it says nothing)."""
    for key in keys:
        value = data.get(key)
        values = [value] if isinstance(value, str) else value
        if isinstance(values, list) and len(values) == n_rows:
            return values
    return None


def cif_crystal_blocks(text: str, source: str) -> list[tuple[str, str]]:
    """``[(crystal source, block text)]`` for the blocks of a CIF that hold atom sites, without building them.

    The source is ``source`` when there is one such block, else ``f"{source}#{block name}"`` (the block's index
    when it has no name or shares it), as in :func:`read_cif_structures`. Blocks whose site loop is only ``?``
    placeholders (Pauling-file reduced cells) are not crystals. Each block text is a CIF of that crystal alone.
    """
    return [(name, block_text) for name, block_text, _ in _crystal_blocks(_split_blocks(text), source)]


def _crystal_blocks(blocks: list[tuple[str, str]], source: str) -> list[tuple[str, str, dict | None]]:
    """:func:`cif_crystal_blocks` of already split blocks, with each block's data where it had to be parsed."""
    names = [name for name, _ in blocks]
    candidates: list[tuple[str, str, dict | None]] = []
    for index, (name, block_text) in enumerate(blocks):
        if not _SITE_COLUMN.search(block_text):
            continue  # bibliography, symmetry-only or powder-pattern blocks are not crystals
        # A block named like another one is named by its position instead, so that every name selects one block.
        label = name if name and names.count(name) == 1 else str(index)
        candidates.append((f"{source}#{label}", block_text, None))
    if len(candidates) > 1:  # placeholders only matter when they decide between one crystal and several
        kept = []
        for block_source, block_text, _ in candidates:
            tokens = _tokenize(block_text)
            data = _parse_block(*tokens) if tokens is not None else None
            data = _normalize_keys(data) if data is not None else None
            if data is None or _has_sites(data):
                kept.append((block_source, block_text, data))
        candidates = kept
    if len(candidates) == 1:
        return [(source, candidates[0][1], candidates[0][2])]
    return candidates


def _has_sites(data: dict) -> bool:
    coordinates = _first(data, ("_atom_site_fract_x", "_atom_site_cartn_x"))
    values = [coordinates] if isinstance(coordinates, str) else coordinates or []
    return any(value.strip() not in ("?", ".") for value in values)  # all-'?' loops are placeholders


def read_cif_structures(
    text: str, source: str, crystal: str | None = None
) -> list[tuple[str, Structure | ScopeError]]:
    """Every crystal of a CIF, in file order: ``[(source, Structure or the ScopeError that refused it)]``.

    Data blocks without atom sites (bibliography, powder-pattern or symmetry-only blocks) are not crystals and are
    skipped. The source of a crystal is ``source`` when the file holds one, else ``f"{source}#{block name}"``.

    Args:
        text: CIF text (CIF 1.1; CIF 2.0 files that use only CIF 1.1 syntax).
        source: the file name (or a description of the text) for messages.
        crystal: read only the crystal of this source name (``f"{source}#{block}"``); the others are not built.

    Returns:
        One entry per crystal; a block that cannot be read gives its typed error in place, so the other blocks
        still come out.

    Raises:
        StructureParseError: the text holds no data block with atom sites.

    Example:
        >>> text = '''data_Po
        ... _space_group_name_H-M_alt 'P m -3 m'
        ... _cell_length_a 3.35
        ... _cell_length_b 3.35
        ... _cell_length_c 3.35
        ... _cell_angle_alpha 90
        ... _cell_angle_beta 90
        ... _cell_angle_gamma 90
        ... loop_
        ... _atom_site_label
        ... _atom_site_fract_x
        ... _atom_site_fract_y
        ... _atom_site_fract_z
        ... Po1 0 0 0
        ... '''
        >>> [(name, structure.composition.formula) for name, structure in read_cif_structures(text, "Po.cif")]
        [('Po.cif', 'Po1')]
    """
    text = text.lstrip("\ufeff")  # a UTF-8 byte-order mark is not part of the CIF
    if text.lstrip().startswith("#\\#CIF_2.0") and ('"""' in text or "'''" in text):
        raise StructureParseError(
            "CIF 2.0 syntax (triple-quoted strings or lists) that this reader does not read; "
            "save it as CIF 1.1",
            source,
        )
    blocks = _split_blocks(text)
    if not blocks:
        raise StructureParseError("not a readable CIF: no data_ block", source)
    stray = _items_before_first_block(text)
    structural = [(line, name) for line, name in stray if name.lower().startswith(_STRUCTURAL_PREFIXES)]
    if structural:
        line, name = structural[0]
        raise StructureParseError(
            f"{len(structural)} crystal item(s) written before the first data_ line (line {line}: {name}); CIF "
            "items belong to a data block, and these would be lost: move the data_ line above them",
            source,
        )
    out: list[tuple[str, Structure | ScopeError]] = []
    for name, block_text, data in _crystal_blocks(blocks, source):
        if crystal is not None and name != crystal:
            continue
        try:
            if data is None:
                data = _block_data(block_text, name)
            if not _has_sites(data):
                raise StructureParseError("the atom-site loop holds only '?' placeholders", name)
            out.append((name, _crystal_from_block(data, name)))
        except ScopeError as exc:
            out.append((name, exc))
    if stray:
        note = (
            f"{len(stray)} item(s) before the first data_ line ignored (line {stray[0][0]}: {stray[0][1]}); "
            "none describes the crystal"
        )
        for _, built in out:
            if isinstance(built, Structure):
                built.properties["reader_notes"] = [*built.properties.get("reader_notes", []), note]
    if not out and crystal is None:
        if any(all(key in block.lower() for key in _CELL_KEYS) for _, block in blocks):
            raise EmptyStructureError("the CIF describes a cell but holds no atom sites", source)
        raise StructureParseError(
            "not a readable CIF: it holds no atom sites (no _atom_site_fract_x or _atom_site_Cartn_x loop)",
            source,
        )
    return out
