"""A strict reader for VASP POSCAR/CONTCAR text.

The format, as the VASP wiki defines it (https://www.vasp.at/wiki/POSCAR):

1. a free comment line;
2. the scaling line: one number or three. One positive number ``s`` multiplies the three lattice vectors, and
   the positions too in Cartesian mode. One negative number is the wanted cell volume (A^3): ``s`` is then chosen
   so that the scaled cell has that volume, in Direct and Cartesian mode alike. Three numbers scale the x, y and
   z Cartesian components of the lattice vectors (and of Cartesian positions) separately; all three must be
   positive;
3. three lines, one lattice vector each (Cartesian components, before scaling);
4. an optional line of species names (VASP 5 and later); without it (the VASP 4 layout) VASP takes the species
   from the POTCAR, which a lone structure file does not have;
5. the number of ions of each species;
6. an optional line starting with ``S``/``s``: selective dynamics, which adds three T/F flags to every position;
7. the coordinate mode: a line starting with ``C``/``c``/``K``/``k`` means Cartesian, otherwise Direct
   (fractional coordinates);
8. one position per ion, species in the order of the counts line;
9. optional blocks that do not change the structure: lattice velocities, ion velocities and, in a CONTCAR of a
   molecular-dynamics run, predictor-corrector coordinates.

Choices made here:

* The format is parsed here rather than through pymatgen's ``Poscar.from_str``, because correctness on the
  format's corners needs control over every header line, and what is left after checking the header is a few
  lines of parsing. Measured on pymatgen 2026.10: with a negative scale and Cartesian positions it multiplies the
  positions by the volume instead of the derived factor (a Si diamond file becomes a different crystal, SG166
  instead of SG227); for a VASP 4 file without symbols it invents species (H, He, ...) with only a warning; it
  refuses three scale factors with a bare ``ValueError``. pymatgen still builds the ``Structure``.
* VASP 4 files: the species are taken from the comment line, as ASE's reader does, but only when the comment
  says them unambiguously (:func:`_species_from_comment`): nothing but k element symbols, k being the number of
  counts (POTCAR suffixes such as ``Ti_sv``, ``Fe/abcd`` are cut); k >= 2 symbols at its start; or one formula-like
  word (``NaCl``, ``Si8``) with k elements, whose counts, when it writes them, are proportional to the counts line.
  A lone symbol in a sentence ("At 0 K ...") is never a species. Anything else raises
  :class:`UnknownSpeciesError`; no species is ever invented.
* The coordinate-mode line must start with D, C or K (VASP reads anything but C/K as Direct); a number there
  means the line is missing, and reading on would shift every position by one line.
* Text that is really another format (extxyz, XYZ, CIF, JSON, XML, PDB, ...) is refused with that format's name.
* Sites keep the file order.

This module is remote code (copied flat into checkpoints): it imports only pip packages and its siblings.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from .file_claims import FileClaims, attach_claims
from .scope_errors import (
    EmptyStructureError,
    InvalidGeometryError,
    StructureParseError,
    UnknownSpeciesError,
)

#: The element symbols H-Og (atomic numbers 1-118); pymatgen's ``D`` and ``T`` are not accepted from a comment line.
_ELEMENT_SYMBOLS = frozenset(Element.from_Z(z).symbol for z in range(1, 119))

#: Below this |det| (A^3) the lattice vectors do not span a cell (no volume to scale to, no Cartesian inverse).
_MIN_RAW_VOLUME = 1e-12

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eEdD][+-]?\d+)?$")
_INTEGER = re.compile(r"^\d+$")


def _number(token: str) -> float | None:
    """A float from a Fortran-style number (``1.5``, ``-2e-3``, ``1.0D0``), or ``nan``/``inf``; else None."""
    if _NUMBER.match(token):
        return float(token.replace("D", "E").replace("d", "e"))
    if token.lower() in ("nan", "+nan", "-nan", "inf", "+inf", "-inf"):
        return float(token)
    return None


def _strip_comment(line: str) -> str:
    """A line without a trailing ``!`` or ``#`` comment."""
    for mark in ("!", "#"):
        if mark in line:
            line = line[: line.index(mark)]
    return line


def _leading_numbers(line: str) -> list[float]:
    numbers = []
    for token in line.split():
        value = _number(token)
        if value is None:
            break
        numbers.append(value)
    return numbers


def _potcar_symbol(token: str) -> str:
    """``Ti_sv`` -> ``Ti``; ``Fe/7a1b`` -> ``Fe`` (VASP 6 writes a POTCAR hash after a slash)."""
    return token.split("/")[0].split("_")[0]


# --- other formats: name them instead of failing as "not a POSCAR" ---------------------------------------------

_ELEMENT_XYZ_LINE = re.compile(r"^\s*([A-Z][a-z]?)\s+(\S+)\s+(\S+)\s+(\S+)")


def _other_format(text: str, lines: list[str]) -> str | None:
    """The name of the format ``text`` is in, when it is surely not a POSCAR; None otherwise.

    Every signature sits where a POSCAR cannot have it (a POSCAR's second line is its scale, its third a lattice
    vector, and no POSCAR line after the comment starts with a CIF tag or a keyword), so a real POSCAR never
    matches, whatever its comment line says.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            json.loads(text)
        except json.JSONDecodeError:
            return "JSON-like text (but not valid JSON)"
        return "JSON (a pymatgen Structure dict can be passed as a dict or its JSON text)"
    if stripped.startswith("<?xml") or stripped.startswith("<modeling"):
        return "XML (a vasprun.xml?)"
    first = lines[0].strip() if lines else ""
    if _INTEGER.match(first) and len(lines) > 1:
        second = lines[1]
        if "Lattice=" in second or "Properties=" in second or "pbc=" in second:
            return "an extended XYZ (extxyz) file (read it with ASE, e.g. tokenization.ase_adapter.read_ase_file)"
        match = _ELEMENT_XYZ_LINE.match(lines[2]) if len(lines) > 2 else None
        if match and all(_number(match.group(i)) is not None for i in (2, 3, 4)):
            return "an XYZ file (it has no cell; SCOPE needs a periodic crystal)"
    rest = [line.strip() for line in lines[1:]]
    words = [line.split()[0] if line else "" for line in rest]
    lowered = [w.lower() for w in words]
    cif_tag = any(w.startswith(("_cell_", "_atom_site", "_symmetry_", "_space_group")) for w in lowered)
    if cif_tag or (
        first.lower().startswith("data_") and any(w.startswith("_") or w == "loop_" for w in lowered)
    ):
        return "a CIF file"
    if any(w in ("atom", "hetatm") for w in lowered) and any(line.startswith("CRYST1") for line in lines):
        return "a PDB file"
    if any(w.startswith(("&control", "&system")) for w in lowered) or any(
        w.upper() in ("ATOMIC_POSITIONS", "CELL_PARAMETERS") for w in words
    ):
        return "a Quantum ESPRESSO input file"
    if any(w.startswith("%block") for w in lowered):
        return "a CASTEP .cell file"
    if any(w == "lattice_vector" for w in lowered):
        return "an FHI-aims geometry.in file"
    if any(w in ("PRIMVEC", "PRIMCOORD") for w in words):
        return "an XSF file"
    if any("xlo xhi" in line for line in rest):
        return "a LAMMPS data file"
    if "SFAC" in words and ("CELL" in words or first.startswith("TITL")):
        return "a SHELX .res/.ins file"
    return None


# --- the reader ------------------------------------------------------------------------------------------------


#: A formula-like word: element symbols, each with an optional count ('NaCl', 'Si8', 'Ti2O4').
_FORMULA_WORD = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_FORMULA_PART = re.compile(r"([A-Z][a-z]?)(\d*)")


def _formula_word(word: str) -> list[tuple[str, int | None]] | None:
    """``'Ti2O4'`` -> ``[('Ti', 2), ('O', 4)]``, ``'NaCl'`` -> ``[('Na', None), ('Cl', None)]``: a word that is a
    formula (several symbols, or symbols with counts); None for anything else, a lone symbol ('At', 'In') and
    all-capital words without digits ('NO', 'CO': read as words, not formulas) included."""
    if not _FORMULA_WORD.fullmatch(word):
        return None
    parts = [(symbol, int(number) if number else None) for symbol, number in _FORMULA_PART.findall(word)]
    has_counts = any(number is not None for _, number in parts)
    if not all(symbol in _ELEMENT_SYMBOLS for symbol, _ in parts) or (len(parts) < 2 and not has_counts):
        return None
    if not has_counts and word.isupper():
        return None
    return parts


def _species_from_comment(comment: str, counts: list[int], source: str) -> list[str]:
    """The species of a VASP 4 file (no species line) from its comment line, in the order of the counts, when the
    comment says them unambiguously:

    * it holds nothing but element symbols (POTCAR suffixes allowed: ``Ti_sv O``), as many as the counts; or
    * it starts with several element symbols, as many as the counts, and the word after them is not one more
      (``Na Cl rock salt``, as ASE's VASP 4 writer puts them); or
    * one formula-like word (``NaCl``, ``Si8``, ``Ti2O4``) holds as many elements as the counts; when it gives
      counts, they must be proportional to the counts line in that order.

    A lone symbol in a sentence (``At 0 K``, ``In the cell``) is never a species.

    Raises:
        UnknownSpeciesError: none of these holds, or they disagree.
    """
    count = len(counts)
    words = comment.replace(",", " ").split()
    symbols = [_potcar_symbol(w) for w in words]
    hint = (
        "add a line of element symbols above the counts line (VASP 5 layout), or write only the symbols, in "
        "order, on the comment line"
    )
    if symbols and len(symbols) == count and all(s in _ELEMENT_SYMBOLS for s in symbols):
        return symbols
    leading = list(itertools.takewhile(lambda s: s in _ELEMENT_SYMBOLS, symbols))
    if len(leading) == count >= 2:
        return leading
    candidates = {}
    for word in words:
        parts = _formula_word(word)
        elements = list(dict.fromkeys(symbol for symbol, _ in parts)) if parts else []
        if len(elements) != count or len(elements) != len(parts):
            continue
        written = [1 if number is None else number for _, number in parts]
        if any(number is not None for _, number in parts) and not _proportional(written, counts):
            raise UnknownSpeciesError(
                f"a VASP 4 POSCAR without species: the comment line's formula {word!r} does not match the counts "
                f"line ({' '.join(map(str, counts))}) in its order, so which count is which element is unknown "
                f"({hint})",
                source,
            )
        candidates[tuple(elements)] = word
    if len(candidates) == 1:
        return list(next(iter(candidates)))
    reason = (
        f"names several formulas ({', '.join(candidates.values())})"
        if candidates
        else f"does not name the {count} element symbol(s) the counts line needs"
    )
    raise UnknownSpeciesError(
        f"a VASP 4 POSCAR without species: no species line, and the comment line {comment.strip()!r} {reason}; "
        f"the species are unknown ({hint})",
        source,
    )


def _proportional(written: list[int], counts: list[int]) -> bool:
    return all(a * counts[0] == b * written[0] for a, b in zip(written, counts, strict=True))


class _Lines:
    """The text's lines, with the error for a line that is not what the format puts there."""

    def __init__(self, lines: list[str], source: str):
        self.lines = lines
        self.source = source

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> str:
        return self.lines[index]

    def fail(self, index: int, what: str) -> StructureParseError:
        found = repr(self.lines[index].strip()) if index < len(self.lines) else "the end of the text"
        return StructureParseError(
            f"not a readable POSCAR: line {index + 1} should be {what}, found {found}", self.source
        )


def read_poscar(text: str, source: str) -> Structure:
    """Read POSCAR/CONTCAR text into a pymatgen ``Structure`` (not yet validated), sites in file order.

    What the header says about the positions (the counts line, the species line) is handed over as a
    ``file_claims.FileClaims`` record with the positions actually listed; ``structure_io.validate_structure``
    refuses a file whose counts do not match them (``InconsistentFileError``).

    Raises:
        StructureParseError: the text is another format (named), or a line is not what the format puts there.
        UnknownSpeciesError: a species name is not an element, or a VASP 4 file gives no symbols anywhere.
        EmptyStructureError: the counts add up to zero.
        InvalidGeometryError: the scale is zero, or a negative scale / Cartesian positions meet a flat cell.
    """
    lines = text.splitlines()
    other = _other_format(text, lines)
    if other is not None:
        raise StructureParseError(f"this is {other}, not a POSCAR", source)
    if len(lines) < 8:
        raise StructureParseError(
            f"not a readable POSCAR: {len(lines)} line(s), but a POSCAR has at least 8 "
            "(comment, scale, 3 lattice vectors, counts, coordinate mode, positions)",
            source,
        )
    text_lines = _Lines(lines, source)
    scales, raw_lattice = _scale_and_lattice(text_lines)
    species_names, counts, index = _species_and_counts(text_lines)
    selective, cartesian, index = _coordinate_mode(text_lines, index)
    coords = _positions(text_lines, index, sum(counts), selective)
    claims = FileClaims(
        "POSCAR",
        counts=tuple(counts),
        species_names=tuple(species_names) if species_names is not None else None,
        positions_listed=len(coords),
    )
    if species_names is None:
        species_names = _species_from_comment(lines[0], counts, source)
    species = [name for name, count in zip(species_names, counts, strict=False) for _ in range(count)]
    n_built = min(len(species), len(coords), sum(counts))  # a mismatch is refused by the claims check
    lattice, coords = _apply_scale(scales, raw_lattice, coords[:n_built], cartesian, source)
    if cartesian and not abs(np.linalg.det(lattice)) > _MIN_RAW_VOLUME:
        raise InvalidGeometryError(
            "degenerate lattice: the lattice vectors span no volume, so Cartesian positions cannot be placed",
            source,
        )
    try:
        structure = Structure(Lattice(lattice), species[:n_built], coords, coords_are_cartesian=cartesian)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise StructureParseError(
            f"cannot build a structure from the POSCAR ({type(exc).__name__}: {exc})", source
        ) from exc
    return attach_claims(structure, claims)


def _scale_and_lattice(lines: _Lines) -> tuple[list[float], np.ndarray]:
    """Lines 2-5: the scaling factor(s) and the three lattice vectors (before scaling)."""
    scales = _leading_numbers(_strip_comment(lines[1]))
    if len(scales) not in (1, 3):
        raise lines.fail(1, "the scaling factor (one number, or three)")
    raw = []
    for i in range(2, 5):
        row = _leading_numbers(lines[i])
        if len(row) < 3:
            raise lines.fail(i, f"lattice vector {i - 1} (three numbers)")
        raw.append(row[:3])
    raw_lattice = np.array(raw, dtype=float)
    if not np.all(np.isfinite(raw_lattice)):
        raise InvalidGeometryError("the lattice contains NaN or infinity", lines.source)
    return scales, raw_lattice


def _species_and_counts(lines: _Lines) -> tuple[list[str] | None, list[int], int]:
    """The species line (None in the VASP 4 layout), the counts and the index of the line after the counts."""
    index = 5
    tokens = _strip_comment(lines[index]).split()
    if not tokens:
        raise lines.fail(index, "the species names or the counts")
    species_names = None
    if not all(_INTEGER.match(t) for t in tokens):
        if any(_number(t) is not None for t in tokens):
            raise lines.fail(index, "the species names (element symbols only)")
        species_names = [_potcar_symbol(t) for t in tokens]
        for name in species_names:
            if not Element.is_valid_symbol(name):
                raise UnknownSpeciesError(
                    f"the species line names {name!r}, which is not a chemical element H-Og", lines.source
                )
        index += 1
        if index >= len(lines):
            raise lines.fail(index, "the counts of each species")
        tokens = _strip_comment(lines[index]).split()
        if not tokens or not all(_INTEGER.match(t) for t in tokens):
            raise lines.fail(index, "the counts of each species (non-negative integers)")
    counts = [int(t) for t in tokens]
    if sum(counts) == 0:
        raise EmptyStructureError("the POSCAR counts add up to zero sites", lines.source)
    return species_names, counts, index + 1


def _coordinate_mode(lines: _Lines, index: int) -> tuple[bool, bool, int]:
    """``(selective dynamics, Cartesian, index of the first position line)``."""
    if index >= len(lines):
        raise lines.fail(index, "'Selective dynamics' or the coordinate mode ('Direct' or 'Cartesian')")
    selective = lines[index].strip()[:1] in ("S", "s")
    if selective:
        index += 1
    mode = lines[index].strip()[:1] if index < len(lines) else ""
    if mode not in ("D", "d", "C", "c", "K", "k"):
        raise lines.fail(index, "the coordinate mode ('Direct' or 'Cartesian')")
    return selective, mode in ("C", "c", "K", "k"), index + 1


def _positions(lines: _Lines, first: int, n_sites: int, selective: bool) -> np.ndarray:
    """The position lines that follow the coordinate mode, up to one more than the counts ask for (n, 3).

    Reading stops at the first line that is not a position (a blank line before velocity or predictor blocks, the
    end of the text); a position line right after the counted ones is read too, so that the claims check sees that
    the counts do not count every atom.
    """
    coords: list[list[float]] = []
    for k in range(n_sites + 1):
        i = first + k
        row = _leading_numbers(lines[i]) if i < len(lines) else []
        if len(row) < 3:
            break
        if selective and k < n_sites:
            flags = lines[i].split()[3:6]
            if len(flags) != 3 or not all(
                f[:1] in ("T", "t", "F", "f") or f[:2] in (".T", ".F") for f in flags
            ):
                raise lines.fail(
                    i, f"position {k + 1} of {n_sites} with three selective-dynamics flags (T/F)"
                )
        coords.append(row[:3])
    return np.array(coords, dtype=float).reshape(-1, 3)


def _apply_scale(
    scales: list[float], raw_lattice: np.ndarray, coords: np.ndarray, cartesian: bool, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """The lattice (rows in A) and coordinates after the scaling line, as the VASP wiki defines it."""
    if len(scales) == 3:
        factors = np.array(scales, dtype=float)
        if not np.all(factors > 0):
            raise StructureParseError(
                f"three scale factors ({' '.join(f'{s:g}' for s in scales)}) must all be positive "
                "(VASP: one factor per Cartesian axis; a negative volume is only allowed as a single number)",
                source,
            )
        return raw_lattice * factors[None, :], coords * factors[None, :] if cartesian else coords
    (scale,) = scales
    if scale == 0:
        raise InvalidGeometryError("the scaling factor is 0", source)
    if scale < 0:
        raw_volume = abs(float(np.linalg.det(raw_lattice)))
        if not np.isfinite(raw_volume) or raw_volume < _MIN_RAW_VOLUME:
            raise InvalidGeometryError(
                f"a negative scale ({scale:g}) is a target cell volume, but the lattice vectors span no volume",
                source,
            )
        scale = (-scale / raw_volume) ** (1.0 / 3.0)
    return raw_lattice * scale, coords * scale if cartesian else coords
