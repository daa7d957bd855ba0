"""What a structure file says about itself, checked against the crystal built from it.

Readers can only read what a file places; the file often also *describes* the crystal: a CIF gives its formula and
Z, each row's multiplicity and Wyckoff letter, the cell volume and the density; an OPTIMADE entry gives ``nsites``,
``elements``, its formulas and ``structure_features``; a POSCAR's counts line says how many positions follow; an
extxyz comment line gives ``Lattice``, ``pbc`` and the ``Properties`` columns. When the two disagree, the sites do
not describe the crystal the file is about (hydrogen that no site carries, an operation list that doubled the cell,
a truncated file), and encoding the sites would give a SCOPE string for another crystal. So every reader hands
over one :class:`FileClaims` record, the same shape for every format (``structure.properties["file_claims"]``,
see :func:`attach_claims`), and :func:`check_file_claims` compares it with the built crystal in one place:
``structure_io.validate_structure``, which every input path goes through. This is what the IUCr's checkCIF does
for the formula, Z, volume and density (its tests PLAT041, PLAT043, ...).

Three bands, for each number the file states:

* within 3 standard uncertainties (the s.u. the file writes, ``1.234(5)``; else half a unit of the last decimal
  written; formula counts written as integers are exact): nothing;
* beyond that, but within the tolerance below: a note in ``structure.properties["reader_notes"]``;
* beyond the tolerance: :class:`~scope_errors.InconsistentFileError` (atoms declared but placed nowhere:
  :class:`~scope_errors.UnlocatedAtomsError`), naming the file, what it says and what was built.

Tolerances (relative):

* :data:`FORMULA_TOLERANCE` = 0.03 per element, of the formula times Z (or of the nearest whole number of formula
  units when Z is absent; OPTIMADE's reduced and Hill formulas are proportions and are compared as such). Refined
  occupancies (``Fe0.967``) and formulas written with two decimals for thirds are within it; a missing element, a
  wrong Z or a doubled cell are far outside it (a factor, not a percent).
  Below it, an amount written with decimals may differ by up to :data:`FORMULA_FLOOR` = 0.05 atom per formula unit
  (no more than 10 half-units of its last decimal), a note: a dopant's 'Ta0.46' beside a refined Ta 0.50 is 0.04
  atom off, 8.7 % (cod-tools' 2103514). An element the formula leaves out is within its rounding when below half a
  unit of the finest decimal the formula writes ('Si0.003' beside 0.0002 Mn per formula unit: AMCSD 9006569).
  A Z that counts no formula units is a note and the cell is checked as without Z: a Z that is not a whole number,
  or, when only the number of formula units disagrees, a Z equal to the atoms over the elements, which OQMD's CIF
  writer gives (cod-tools' ``oqmd-1120390``: 'H1 In1 O2' with Z = 5.333 = 16 / 3; ``oqmd-1769667``: 'N3 Rh1' with
  Z = 8 = 16 / 2; its four older exports give the right Z).
* :data:`VOLUME_TOLERANCE` = 0.01 of ``_cell_volume`` against the volume of the cell parameters.
* :data:`DENSITY_TOLERANCE` = 0.03 of ``_exptl_crystal_density_diffrn`` against the mass of the built cell over
  its volume. It is looser than the volume's: writers compute the density with their own atomic masses and
  formula (deuterium, a solvent left out of the model). Beyond it, a density that the file's own formula times Z
  over its volume contradicts too, while they give the density built, is a wrong tag, not a wrong crystal: a note
  (cod-tools' 2003896 declares 1.236 where its formula, Z = 1 and V = 445.9 give 1.594, as built).
* Multiplicities and Wyckoff letters are integers: exact. On rhombohedral axes a row may give the multiplicity of
  the hexagonal cell (3 times the orbit), which the International Tables list. SHELXL writes the order of the site
  symmetry under ``_atom_site_symmetry_multiplicity`` (1 for a general position; found in 2 of 74 pymatgen test
  CIFs with the tag): that reading, operations / orbit, is accepted too.
* Counts (POSCAR positions, OPTIMADE ``nsites``, ``elements``, extxyz columns) are exact; an extxyz ``Lattice``
  must be the frame's cell to 1e-6 Å.

Measured basis (``python -m benchmarks.claims_survey``; the files are not in the repository). How often each check
fires, as ``files with the field: notes / errors``:

* the test CIFs of pymatgen, ASE, gemmi, diffpy.structure and optimade-python-tools with the repository's own
  fixtures and examples (212 files, 166 crystals built): formula x Z 111: 0 / 2, cell volume 111: 0 / 0,
  multiplicity 88: 0 / 0 (2 before SHELXL's site-symmetry order was read as such), Wyckoff letter 17: 0 / 0,
  density 24: 1 / 0, POSCAR 5, extxyz 2 and OPTIMADE 2: 0 / 1. The errors: ``Cod_4115344.cif`` places 30 of its
  39 H per formula unit; r3_02 declares ``implicit_atoms``. pymatgen's own CIFs give ``_cell_volume`` with 8
  decimals from unrounded parameters (2e-6 relative, hence :data:`NOTE_FLOOR`).
* the 1,445 test CIFs of cod-tools (801 crystals built; many of the files are broken on purpose): formula x Z
  721: 14 / 139, cell volume 692: 2 / 3, density 518: 63 / 47 (46 of them beside a formula error),
  multiplicity 274: 0 / 2, Wyckoff letter 51: 0 / 0 (1 before the A-1 cell was scaled), unlocated rows 3: 0 / 3.
  Sorted by kind, the formula errors are: H that no site carries (55), more H placed than declared (7), other
  elements in other amounts or on no site (68: solvents left out or SQUEEZEd, refined shares against a nominal
  formula, files trimmed for the tests), a Z that the sites contradict (8, one an operation list that closes to
  Pnnm instead of the declared P2_1/n), a non-whole number of formula units (1). The files examined (several of
  each kind, every volume, multiplicity and Wyckoff error) contradict themselves: a volume that fits no reading of
  the cell (a reduced cell kept with the old volume), a density that fits no Z, ICSD ``dum`` rows. One was the
  package's: ``7105250`` merges the two images of an H 0.0004 c off a mirror into one site of occupancy 0.25,
  losing 4 H per cell; the check refuses it instead of encoding the loss. The relative
  deviation of right files stays below 1e-3 for volumes (99th percentile 7e-4) and below 3 % for formulas and
  densities where H are modelled (riding H that a formula counts differently give 1-3 %, a note).

This module is remote code (copied flat into checkpoints): it imports only numpy, pymatgen and its siblings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .scope_errors import InconsistentFileError, UnlocatedAtomsError

__all__ = [
    "CLAIMS_PROPERTY",
    "DENSITY_TOLERANCE",
    "FORMULA_TOLERANCE",
    "VOLUME_TOLERANCE",
    "FileClaims",
    "Measured",
    "SiteClaim",
    "UnlocatedRow",
    "attach_claims",
    "check_file_claims",
    "parse_formula",
    "shares_fill_site",
]

#: Where a reader leaves its record on the structure it builds (popped by the check).
CLAIMS_PROPERTY = "file_claims"
#: Largest relative deviation per element of the formula (times Z) that is a note rather than an error.
FORMULA_TOLERANCE = 0.03
#: An amount the formula writes with decimals (an analysed or refined amount, 'Ta0.46') may differ from the sites'
#: by up to FORMULA_FLOOR atom per formula unit, times Z, whatever the relative deviation, but by no more than
#: FORMULA_FLOOR_HALF_UNITS half-units of its last decimal (so 0.05 for 'Ta0.46', 0.005 for 'Si0.003'; integers
#: are exact): a minor element's share is known to a few hundredths, far beyond 3 % of it. Measured: cod-tools'
#: 2103514 (a La3Ga5.5Ta0.5O14 langasite) declares 'Ta0.46' beside Ga/Ta 0.50/0.50 on 1a, 0.04 atom off (8.7 %).
FORMULA_FLOOR = 0.05
FORMULA_FLOOR_HALF_UNITS = 10
#: Largest relative deviation of the stated cell volume from the cell parameters' that is a note.
VOLUME_TOLERANCE = 0.01
#: Largest relative deviation of the stated density from the built cell's that is a note.
DENSITY_TOLERANCE = 0.03
#: An extxyz ``Lattice`` and the frame's cell agree to this (Å, per component).
LATTICE_TOLERANCE = 1e-6
#: Relative deviations below this are never noted, whatever the decimals written: programs that write 8 decimals
#: compute the volume from unrounded parameters (pymatgen's CifWriter: 2e-6), far below any measured precision.
NOTE_FLOOR = 1e-4
#: Relative deviations of the formula below this are never noted: the built amounts carry the rounding of the
#: occupancies written (96 x 0.1667 = 16.003 O for 16), a few 1e-4.
FORMULA_NOTE_FLOOR = 1e-3
#: How many standard uncertainties a stated number may be off without a note.
SU_BAND = 3.0
#: 1 amu in g, times 1e24 Å^3/cm^3: density (g/cm^3) = mass (amu) * this / volume (Å^3).
_AMU_G_PER_CM3 = 1.66053906660

_MEASURED = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:\((\d+)\))?\s*$")
#: One element with its amount, or ``<k>``: the k-th bracketed group already parsed (:func:`parse_formula`).
_FORMULA_PART = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)|<(\d+)>")
#: An innermost bracketed group and the amount written after it.
_FORMULA_GROUP = re.compile(r"\(([^()]*)\)(\d*\.?\d*)")


@dataclass(frozen=True)
class Measured:
    """A number as a file writes it: ``value``, the ``su`` it states (``1.234(5)`` -> 0.005) or None, and ``text``."""

    value: float
    su: float | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: Any) -> Measured | None:
        """``'160.3(2)'`` -> ``Measured(160.3, 0.2)``; None for ``'?'``, ``'.'`` or anything that is not a number."""
        if not isinstance(text, str):
            return None
        match = _MEASURED.match(text)
        if match is None:
            return None
        number, digits = match.groups()
        value = float(number)
        su = None
        if digits is not None:
            mantissa = number.split("e")[0].split("E")[0]
            decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
            su = int(digits) * 10.0**-decimals
        return cls(value, su, text.strip())

    @property
    def half_unit(self) -> float:
        """Half a unit of the last decimal written (``'0.33'`` -> 0.005): how far rounding may have moved it."""
        mantissa = self.text.split("(")[0].split("e")[0].split("E")[0]
        decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
        return 0.5 * 10.0**-decimals

    @property
    def resolution(self) -> float:
        """One standard uncertainty: the stated s.u., else half a unit of the last decimal written."""
        return self.su if self.su is not None else self.half_unit

    @classmethod
    def of_float(cls, value: float) -> Measured:
        """A number read from JSON or handed over as a float: written as its shortest repr (0.33 -> '0.33')."""
        return cls(float(value), None, repr(float(value)))


def shares_fill_site(shares: list[Measured]) -> bool:
    """Whether the occupancy shares of one site (its rows or species) make a full site, as written.

    n shares rounded to d decimals sum to 1 within n x half a unit of the d-th decimal, d being the most decimals
    any of them is written with (writers drop trailing zeros: '0.5' beside '0.45' is 0.50). So 0.33 x 3 = 0.99 is
    full and Li 0.49 + Na 0.50 is not: the bound is strict, because a share exactly half a unit off would have
    been rounded the other way. Shares that state s.u. are full within 3 s.u. of their sum (``0.49(1) + 0.50(1)``).
    A single share is judged by ``OCCUPANCY_TOLERANCE`` instead (or, above 1, by 3 of its stated s.u.: the CIF
    reader's ``_occupancy``).
    """
    if len(shares) < 2:
        return False
    deficit = abs(sum(share.value for share in shares) - 1.0)
    written = [share for share in shares if "." in share.text]  # an integer share ('1', '0') was not rounded
    if written and deficit < len(shares) * min(share.half_unit for share in written) - 1e-12:
        return True
    stated = math.sqrt(sum(share.su**2 for share in shares if share.su))
    return stated > 0 and deficit <= SU_BAND * stated


@dataclass(frozen=True)
class SiteClaim:
    """One atom-site row: its label, its position (fractional, as read) and what the file says of its orbit."""

    label: str
    position: tuple[float, float, float]
    multiplicity: int | None = None
    wyckoff: str | None = None
    #: distinct symmetry images of a partial row that the reader merged into each of its sites (closer than its
    #: merge distance, occupancies added): the row's orbit in the file has this many times the sites built
    images_per_site: int = 1


@dataclass(frozen=True)
class UnlocatedRow:
    """A row the file declares without a position (ICSD's ``_atom_site_calc_flag dum`` at -1, -1, -1)."""

    label: str
    element: str
    occupancy: float


@dataclass
class FileClaims:
    """What one file says about the crystal it holds, beyond its sites. Every field is optional: None (or empty)
    means the file does not say.

    Attributes:
        file_format: ``"CIF"``, ``"OPTIMADE"``, ``"POSCAR"`` or ``"extxyz"`` (for messages).
        formula: element -> amount, per formula unit (CIF ``_chemical_formula_sum``) or in proportion
            (``formula_is_ratio``: OPTIMADE ``chemical_formula_reduced``/``_hill``).
        formula_text: the formula as written. formula_resolution: element -> half a unit of the last decimal of its
            amount (0 for an integer: exact).
        formula_units: Z (``_cell_formula_units_Z``).
        elements, nelements, nsites: OPTIMADE's lists and counts. implicit_atoms: OPTIMADE ``structure_features``
            holds ``"implicit_atoms"`` (the sites do not list every atom).
        unlocated: rows declared without a position.
        cell_volume (Å^3), density (g/cm^3): as stated.
        sites: the atom-site rows with their multiplicity and Wyckoff letter; space_group_number: the group those
            letters belong to; n_operations: the number of symmetry operations applied in the file's cell (centring
            included); rhombohedral_axes: the cell is on rhombohedral axes.
        counts, species_names, positions_listed: a POSCAR's counts line, species line and the number of position
            lines that follow the coordinate-mode line.
        lattice (3x3, Å, rows), pbc, columns_declared, columns_found: an extxyz frame's comment line and the number
            of columns each atom line holds (the distinct counts found).
    """

    file_format: str
    formula: dict[str, float] | None = None
    formula_text: str | None = None
    formula_resolution: dict[str, float] = field(default_factory=dict)
    formula_is_ratio: bool = False
    formula_units: Measured | None = None
    elements: tuple[str, ...] | None = None
    nelements: int | None = None
    nsites: int | None = None
    implicit_atoms: bool = False
    unlocated: tuple[UnlocatedRow, ...] = ()
    cell_volume: Measured | None = None
    cell_parameters: tuple[Measured, ...] | None = None
    density: Measured | None = None
    sites: tuple[SiteClaim, ...] = ()
    space_group_number: int | None = None
    n_operations: int | None = None
    rhombohedral_axes: bool = False
    counts: tuple[int, ...] | None = None
    species_names: tuple[str, ...] | None = None
    positions_listed: int | None = None
    lattice: tuple[tuple[float, ...], ...] | None = None
    pbc: tuple[bool, ...] | None = None
    columns_declared: int | None = None
    columns_found: tuple[int, ...] = ()


def parse_formula(text: Any) -> tuple[dict[str, float], dict[str, float]] | None:
    """``'Al H O2'``, ``'CaH2O2'`` or ``'Mg3 Si4 O10 (O H)2'`` -> ``({element: amount}, {element: resolution})``;
    None when the text is not a formula of element symbols and amounts (charges, '?', moieties joined by commas).

    A group in round or square brackets (AMCSD writes ``'(Fe6.1 Mg.9) Si8 O23.5 (F.5 H1.5)'``) counts its contents
    times the amount written after it (1 when none). An amount written with decimals has the resolution of half a
    unit of its last decimal; an integer (or none, read as 1) is exact; a group's amount multiplies both. Deuterium
    and tritium count as hydrogen, as the CIF reader reads them.
    """
    if not isinstance(text, str):
        return None
    compact = text.replace(" ", "").replace("[", "(").replace("]", ")")
    if not compact:
        return None
    from pymatgen.core import Element

    # Innermost groups first: each is replaced by a placeholder naming its already-parsed contents.
    groups: list[tuple[dict[str, float], dict[str, float]]] = []
    while "(" in compact:
        match = _FORMULA_GROUP.search(compact)
        if match is None:
            return None  # unbalanced brackets
        inner = _parse_flat(match.group(1), groups, Element)
        if inner is None:
            return None
        factor, half_unit = _amount(match.group(2))
        amounts = {element: factor * value for element, value in inner[0].items()}
        resolution = {
            element: factor * inner[1][element] + half_unit * inner[0][element] for element in inner[0]
        }
        groups.append((amounts, resolution))
        compact = compact[: match.start()] + f"<{len(groups) - 1}>" + compact[match.end() :]
    if ")" in compact:
        return None
    parsed = _parse_flat(compact, groups, Element)
    return parsed if parsed and parsed[0] else None


def _amount(number: str) -> tuple[float, float]:
    """``(value, half a unit of its last decimal)`` of an amount as written; ``''`` is exactly 1."""
    if number in ("", "."):
        return 1.0, 0.0
    half_unit = 0.5 * 10.0 ** -len(number.split(".", 1)[1]) if "." in number else 0.0
    return float(number), half_unit


def _parse_flat(
    text: str, groups: list[tuple[dict[str, float], dict[str, float]]], element_class: Any
) -> tuple[dict[str, float], dict[str, float]] | None:
    """Element symbols with amounts and ``<k>`` placeholders of parsed groups, summed; None when anything else is
    written."""
    if _FORMULA_PART.sub("", text):
        return None
    amounts: dict[str, float] = {}
    resolution: dict[str, float] = {}
    for symbol, number, group in _FORMULA_PART.findall(text):
        if group:
            parts = list(groups[int(group)][0].items())
            halves = groups[int(group)][1]
        else:
            element = "H" if symbol in ("D", "T") else symbol
            if not element_class.is_valid_symbol(element):
                return None
            value, half_unit = _amount(number)
            parts, halves = [(element, value)], {element: half_unit}
        for element, value in parts:
            amounts[element] = amounts.get(element, 0.0) + value
            resolution[element] = resolution.get(element, 0.0) + halves[element]
    return amounts, resolution


def attach_claims(structure: Any, claims: FileClaims) -> Any:
    """Leave ``claims`` on ``structure`` for :func:`check_file_claims` (run by ``validate_structure``)."""
    structure.properties[CLAIMS_PROPERTY] = claims
    return structure


# ----------------------------------------------------------------------------------------------------------------
# The checks: each returns notes, or raises.


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _built_amounts(structure: Any) -> dict[str, float]:
    amounts: dict[str, float] = {}
    for site in structure:
        for species, occupancy in site.species.items():
            symbol = getattr(species, "symbol", str(species))
            amounts[symbol] = amounts.get(symbol, 0.0) + float(occupancy)
    return amounts


def _check_declared_atoms(claims: FileClaims, source: str) -> None:
    if claims.implicit_atoms:
        raise UnlocatedAtomsError(
            "the OPTIMADE entry declares structure_features ['implicit_atoms']: its sites do not list every atom "
            "(e.g. H not located), so they describe another crystal",
            source,
        )
    if claims.unlocated:
        rows = ", ".join(f"{row.label} ({row.element} {row.occupancy:g})" for row in claims.unlocated)
        elements = ", ".join(dict.fromkeys(row.element for row in claims.unlocated))
        raise UnlocatedAtomsError(
            f"{elements} not located: the file declares rows {rows} flagged as dummy atoms "
            "(_atom_site_calc_flag dum) with no position; the sites alone describe another crystal",
            source,
        )


def _check_counts(structure: Any, claims: FileClaims, source: str) -> None:
    if (
        claims.species_names is not None
        and claims.counts is not None
        and len(claims.species_names) != len(claims.counts)
    ):
        raise InconsistentFileError(
            f"the species line gives {len(claims.species_names)} species names "
            f"({' '.join(claims.species_names)}) but the counts line {len(claims.counts)} counts "
            f"({' '.join(map(str, claims.counts))})",
            source,
        )
    if claims.counts is not None and claims.positions_listed is not None:
        wanted = sum(claims.counts)
        if claims.positions_listed != wanted:
            found = (
                f"only {claims.positions_listed} position line(s) follow the coordinate mode line"
                if claims.positions_listed < wanted
                else f"position line {wanted + 1} follows them; the counts do not match the atoms"
            )
            raise InconsistentFileError(
                f"the counts line ({' '.join(map(str, claims.counts))}) asks for {wanted} positions, but {found}",
                source,
            )
    if claims.nsites is not None and claims.nsites != len(structure):
        raise InconsistentFileError(
            f"the {claims.file_format} entry declares nsites {claims.nsites}, but lists {len(structure)} sites",
            source,
        )


def _check_frame(structure: Any, claims: FileClaims, source: str) -> None:
    """extxyz: the comment line against the frame ASE built."""
    if claims.columns_declared is not None and claims.columns_found:
        wrong = [n for n in claims.columns_found if n != claims.columns_declared]
        if wrong:
            raise InconsistentFileError(
                f"its Properties declare {claims.columns_declared} columns per atom, but atom lines hold "
                f"{', '.join(map(str, wrong))}; the columns cannot be told apart",
                source,
            )
    if claims.pbc is not None:
        built = tuple(bool(p) for p in getattr(structure.lattice, "pbc", (True, True, True)))
        if tuple(claims.pbc) != built:
            raise InconsistentFileError(f"declares pbc {claims.pbc}, but the frame built has {built}", source)
    if claims.lattice is not None:
        declared = np.asarray(claims.lattice, dtype=float)
        built = structure.lattice.matrix
        if declared.shape != (3, 3) or not np.allclose(declared, built, rtol=0, atol=LATTICE_TOLERANCE):
            raise InconsistentFileError(
                f"declares Lattice {declared.round(6).tolist()} (Å), but the frame built has the cell "
                f"{np.round(built, 6).tolist()}",
                source,
            )


def _check_elements(amounts: dict[str, float], claims: FileClaims, source: str) -> None:
    placed = {element for element, amount in amounts.items() if amount > 0}
    if claims.elements is not None:
        declared = set(claims.elements)
        missing = sorted(declared - placed)
        if missing:
            raise UnlocatedAtomsError(
                f"the {claims.file_format} entry declares elements {sorted(declared)}, but no site holds "
                f"{', '.join(missing)} (not located)",
                source,
            )
        extra = sorted(placed - declared)
        if extra:
            raise InconsistentFileError(
                f"the {claims.file_format} entry declares elements {sorted(declared)}, but its sites also hold "
                f"{', '.join(extra)}",
                source,
            )
    if claims.nelements is not None and claims.nelements != len(placed):
        raise InconsistentFileError(
            f"the {claims.file_format} entry declares nelements {claims.nelements}, but its sites hold "
            f"{len(placed)} ({', '.join(sorted(placed))})",
            source,
        )


def _formula_units(amounts: dict[str, float], formula: dict[str, float]) -> float:
    """How many formula units the built amounts hold, from the elements both have (the median ratio)."""
    ratios = sorted(amounts[e] / formula[e] for e in formula if formula[e] > 0 and amounts.get(e, 0) > 0)
    return ratios[len(ratios) // 2] if ratios else 0.0


def _z_is_no_count(amounts: dict[str, float], claims: FileClaims) -> str | None:
    """Why the file's Z is not a number of formula units to check (then a note, and the cell is checked for a whole
    number of them, as without Z), or None when it is one.

    * A Z that is not a whole number (beyond its written rounding): Z counts formula units, so it is no count.
    * A Z equal to the atoms built over the number of elements while the formula's ratios and the built amounts
      agree: OQMD's CIF writer puts that in ``_cell_formula_units_Z`` (measured on cod-tools' OQMD files:
      'H1 In1 O2' with Z = 5.33 = 16 / 3, 'N3 Rh1' with Z = 8 = 16 / 2; older OQMD exports write the right Z).
    """
    z = claims.formula_units
    if z is None or z.value <= 0:
        return None
    if abs(z.value - round(z.value)) > max(z.resolution if "." in z.text else 0.0, 1e-6):
        return f"its Z = {z.text} is not a whole number of formula units, so it is no count: not used"
    formula = claims.formula or {}
    n_atoms = sum(amounts.values())
    n_elements = len([e for e, n in formula.items() if n > 0])
    units = _formula_units(amounts, formula)
    if (
        n_elements > 1
        and abs(z.value - n_atoms / n_elements) < 1e-6 * max(n_atoms, 1)
        and abs(units - z.value) > FORMULA_TOLERANCE * z.value
        and not _is_cell_formula(formula, z.value, units)
        and _all_scale_alike(amounts, formula)
    ):
        return (
            f"its Z = {z.text} is the atoms in the cell ({_fmt(n_atoms)}) over the number of elements "
            f"({n_elements}), as OQMD's CIF writer gives it, not the formula units: not used"
        )
    return None


def _check_formula(amounts: dict[str, float], claims: FileClaims, source: str) -> list[str]:
    formula = claims.formula
    if not formula:
        return []
    written = f"formula {claims.formula_text!r}"
    units = _formula_units(amounts, formula)
    notes: list[str] = []
    z_note = None if claims.formula_is_ratio else _z_is_no_count(amounts, claims)
    if z_note is not None:
        notes.append(z_note)
    if claims.formula_is_ratio:
        scale, per = units, "in proportion"
    elif z_note is None and claims.formula_units is not None and claims.formula_units.value > 0:
        scale, per = claims.formula_units.value, f"with Z = {claims.formula_units.text}"
        if _is_cell_formula(formula, scale, units):
            scale, per = 1.0, f"(the cell's contents, with Z = {claims.formula_units.text})"
        elif (
            units > 0
            and abs(units - scale) > FORMULA_TOLERANCE * scale
            and _all_scale_alike(amounts, formula)
        ):
            raise InconsistentFileError(
                f"its {written} declares Z = {claims.formula_units.text}; the cell built holds {_fmt(units)} "
                "formula units",
                source,
            )
    else:
        whole = round(units)
        if units > 0 and (whole < 1 or abs(units - whole) > FORMULA_TOLERANCE * max(whole, 1)):
            raise InconsistentFileError(
                f"the cell built holds {_fmt(units)} formula units of its {written} "
                f"({'no Z given' if z_note is None else 'its Z = ' + claims.formula_units.text + ' is no count'}); "
                "a cell holds a whole number of them",
                source,
            )
        scale, per = float(max(whole, 1)), "(no Z given)" if z_note is None else "(Z not used)"
    # An element the formula leaves out may be one its rounding dropped: below half a unit of the finest decimal
    # the formula writes ('Si0.003' beside no Mn: Mn < 0.0005 per formula unit).
    finest = min((r for r in claims.formula_resolution.values() if r > 0), default=0.0)
    for element in sorted(set(formula) | set(amounts)):
        declared = formula.get(element, 0.0) * scale
        built = amounts.get(element, 0.0)
        resolution = claims.formula_resolution.get(element, 0.0) if element in formula else finest
        band = SU_BAND * resolution * scale + 1e-6 * max(declared, 1.0)
        deviation = abs(built - declared)
        if deviation <= band:
            continue
        if built <= 1e-9:
            raise UnlocatedAtomsError(
                f"its {written} declares {element}{_fmt(formula[element])} per formula unit {per}, but places no "
                f"{element} ({element} not located)",
                source,
            )
        if declared <= 1e-9:
            raise InconsistentFileError(
                f"the cell built holds {_fmt(built)} {element}, which its {written} does not declare", source
            )
        relative = deviation / declared
        if relative <= FORMULA_NOTE_FLOOR:
            continue
        what = f"its {written} {per} gives {_fmt(declared)} {element} per cell; the cell built holds {_fmt(built)}"
        if relative <= FORMULA_TOLERANCE:
            notes.append(f"{what} ({relative:.1%}, within the tolerance {FORMULA_TOLERANCE:.0%})")
            continue
        floor = (
            min(FORMULA_FLOOR, FORMULA_FLOOR_HALF_UNITS * claims.formula_resolution.get(element, 0.0)) * scale
        )
        if deviation > floor:
            raise InconsistentFileError(what, source)
        notes.append(
            f"{what} ({relative:.1%}, but {_fmt(deviation)} atom per cell: within the floor {_fmt(floor)} for an "
            "amount written with decimals)"
        )
    return notes


def _is_cell_formula(formula: dict[str, float], z: float, units: float) -> bool:
    """pymatgen's ``CifWriter`` (and so every Materials Project CIF) writes the cell's contents as the formula sum
    and Z as the number of reduced formula units in it ('Cu4' with Z = 4): the cell then holds the formula once and
    every amount is a multiple of Z."""
    return (
        z > 1
        and abs(units - 1.0) <= FORMULA_TOLERANCE
        and all(abs(n / z - round(n / z)) < 1e-6 and round(n / z) >= 1 for n in formula.values())
    )


def _all_scale_alike(amounts: dict[str, float], formula: dict[str, float]) -> bool:
    """Every declared element is placed, in the formula's proportions: only the number of formula units differs."""
    ratios = [amounts.get(e, 0.0) / formula[e] for e in formula if formula[e] > 0]
    return bool(ratios) and min(ratios) > 0 and max(ratios) - min(ratios) <= FORMULA_TOLERANCE * max(ratios)


def _volume_su(claims: FileClaims, lattice: Any) -> float:
    """The s.u. of the cell volume propagated from the parameters' s.u. or rounding (numerical derivatives)."""
    parameters = claims.cell_parameters
    if parameters is None or len(parameters) != 6:
        return 0.0
    values = [p.value for p in parameters]
    variance = 0.0
    for k, parameter in enumerate(parameters):
        shifted = list(values)
        # The stated s.u., else the rounding of the value written; an integer ('90', '120') is exact.
        shifted[k] += (
            parameter.su if parameter.su is not None else ("." in parameter.text) * parameter.half_unit
        )
        variance += (_volume_of(shifted) - _volume_of(values)) ** 2
    return math.sqrt(variance)


def _volume_of(parameters: list[float]) -> float:
    a, b, c = parameters[:3]
    ca, cb, cg = (math.cos(math.radians(x)) for x in parameters[3:])
    return a * b * c * math.sqrt(max(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg, 0.0))


def _banded(
    what: str, stated: Measured, built: float, built_su: float, tolerance: float, source: str
) -> list[str]:
    """The three bands for one stated number: [] within SU_BAND s.u., a note within ``tolerance``, else raise."""
    deviation = abs(built - stated.value)
    relative = deviation / abs(stated.value) if stated.value else math.inf
    if deviation <= SU_BAND * math.hypot(stated.resolution, built_su) or relative <= NOTE_FLOOR:
        return []
    message = f"declares {what} {stated.text}; the crystal built has {built:.5g}"
    if relative > tolerance:
        raise InconsistentFileError(f"{message} ({relative:.1%} off, tolerance {tolerance:.0%})", source)
    return [f"{message} ({relative:.2%} off, within the tolerance {tolerance:.0%})"]


def _check_cell(structure: Any, amounts: dict[str, float], claims: FileClaims, source: str) -> list[str]:
    notes: list[str] = []
    volume = float(structure.lattice.volume)
    volume_su = _volume_su(claims, structure.lattice)
    if claims.cell_volume is not None and claims.cell_volume.value > 0:
        notes += _banded("_cell_volume", claims.cell_volume, volume, volume_su, VOLUME_TOLERANCE, source)
    if claims.density is not None and claims.density.value > 0 and volume > 0:
        from pymatgen.core import Element

        mass = sum(float(Element(e).atomic_mass) * n for e, n in amounts.items())
        density = mass * _AMU_G_PER_CM3 / volume
        try:
            notes += _banded(
                "_exptl_crystal_density_diffrn",
                claims.density,
                density,
                density * volume_su / volume,
                DENSITY_TOLERANCE,
                source,
            )
        except InconsistentFileError as error:
            own = _formula_density(claims, volume, Element)
            if own is None or abs(own - density) > DENSITY_TOLERANCE * density:
                raise
            # The file's own formula, Z and volume give the density built: the density tag is the odd one out.
            notes.append(
                f"{error.message}; its own formula x Z / volume gives {own:.5g}, as built: the density tag "
                "disagrees with the rest of the file, not with the crystal"
            )
    return notes


def _formula_density(claims: FileClaims, volume: float, element_class: Any) -> float | None:
    """The density (g/cm^3) the file's formula sum times its Z gives in ``volume``, or None without both."""
    z = claims.formula_units
    if not claims.formula or claims.formula_is_ratio or z is None or z.value <= 0:
        return None
    mass = sum(float(element_class(e).atomic_mass) * n for e, n in claims.formula.items())
    return mass * z.value * _AMU_G_PER_CM3 / volume


def _orbit_sizes(structure: Any, sites: tuple[SiteClaim, ...]) -> dict[str, int]:
    """Row label -> number of built sites of its orbit: the sites that carry the label of the site nearest the
    row's own position (rows at one position form one mixed site, labelled by its first row)."""
    labels = [getattr(site, "label", None) for site in structure]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    frac = structure.frac_coords
    matrix = structure.lattice.matrix
    orbits: dict[str, int] = {}
    for row in sites:
        delta = frac - np.asarray(row.position, dtype=float)
        delta -= np.round(delta)
        k = int(np.argmin(np.linalg.norm(delta @ matrix, axis=1)))
        orbits[row.label] = counts[labels[k]]
    return orbits


def _cell_multiple(claims: FileClaims) -> float:
    """How many conventional cells of the ITA standard setting the file's cell holds, by its operations (centring
    included): 2 for P-1 written in an A-centred cell (A-1), 1/3 on rhombohedral axes; 1 when unknown. The ITA
    letters' multiplicities are those of the standard cell."""
    if not claims.n_operations or not claims.space_group_number:
        return 1.0
    from .cif_symmetry import hall_numbers_for_it_number, operations_of_hall_number

    halls = hall_numbers_for_it_number(claims.space_group_number)
    if not halls:
        return 1.0
    return claims.n_operations / len(operations_of_hall_number(halls[0])[0])


def _check_sites(structure: Any, claims: FileClaims, source: str) -> None:
    rows = [row for row in claims.sites if row.multiplicity or row.wyckoff]
    labels = [row.label for row in claims.sites]
    if not rows or len(set(labels)) != len(labels) or len(structure) == 0:
        return  # rows named alike cannot be told apart in the built crystal
    orbits = _orbit_sizes(structure, tuple(rows))
    factor = 3 if claims.rhombohedral_axes else 1

    def fits(multiplicity: int, orbit: int) -> bool:
        return multiplicity == orbit or multiplicity == orbit * factor

    def fits_tag(multiplicity: int, orbit: int) -> bool:
        # SHELXL writes the order of the site-symmetry group under this tag (1 for a general position): the number
        # of operations over the orbit's size.
        return fits(multiplicity, orbit) or (
            claims.n_operations is not None and multiplicity * orbit == claims.n_operations
        )

    for row in rows:
        orbit = orbits[row.label] * row.images_per_site
        if row.multiplicity and row.multiplicity > 0 and not fits_tag(row.multiplicity, orbit):
            raise InconsistentFileError(
                f"site {row.label}: the file gives multiplicity {row.multiplicity} "
                f"(_atom_site_symmetry_multiplicity), but its orbit in the cell built has {orbit} positions",
                source,
            )
        if row.wyckoff and claims.space_group_number:
            from .scope_tables import WYCKOFF_MULTIPLICITIES

            letters = WYCKOFF_MULTIPLICITIES.get(claims.space_group_number, {})
            letter = row.wyckoff
            multiplicity = letters.get(letter, letters.get(letter.lower()))
            cell = _cell_multiple(claims)
            if multiplicity is not None and not (
                fits(multiplicity, orbit) or abs(multiplicity * cell - orbit) < 1e-9
            ):
                raise InconsistentFileError(
                    f"site {row.label}: the file gives Wyckoff letter {letter} (multiplicity {multiplicity} in "
                    f"space group {claims.space_group_number}), but its orbit in the cell built has {orbit} "
                    "positions",
                    source,
                )


def check_file_claims(structure: Any, claims: FileClaims, source: str) -> list[str]:
    """Compare what a file says about itself with the crystal built from it (the module docstring's bands).

    Args:
        structure: the pymatgen ``Structure`` the reader built (not yet validated).
        claims: the reader's record.
        source: the input's name for messages.

    Returns:
        Notes for the deviations that are beyond the stated uncertainties but within the tolerances.

    Raises:
        UnlocatedAtomsError: the file declares atoms that no site places (an element of the formula or of OPTIMADE
            ``elements`` on no site, ICSD ``dum`` rows, OPTIMADE ``implicit_atoms``).
        InconsistentFileError: any other disagreement beyond its tolerance.
    """
    _check_declared_atoms(claims, source)
    _check_counts(structure, claims, source)
    _check_frame(structure, claims, source)
    if len(structure) == 0:
        return []
    amounts = _built_amounts(structure)
    _check_elements(amounts, claims, source)
    notes = _check_formula(amounts, claims, source)
    notes += _check_cell(structure, amounts, claims, source)
    _check_sites(structure, claims, source)
    return notes
