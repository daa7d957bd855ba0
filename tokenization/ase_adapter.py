"""ASE ``Atoms`` and ASE-readable files (extxyz, XYZ, ...) as pymatgen ``Structure`` objects.

ASE is an optional dependency: nothing here imports it at module level, and the imports that read files sit
inside ``try`` blocks (the same ones that turn a missing ASE into a typed error), so a checkpoint that carries
this file loads where ASE is not installed.

What ASE carries beyond symbols and positions, and how it is honoured:

* ``atoms.pbc``: SCOPE describes 3D crystals, so anything not periodic in all three directions (a molecule,
  with or without a box around it, a slab) is refused with :class:`NonPeriodicStructureError`.
* What a CIF says about itself: with ``ase.io.read(..., store_tags=True)`` the formula sum, Z and the rows flagged
  ``dum`` (unlocated atoms, which ASE places on the origin's orbit) are checked as on the file path
  (``file_claims``); ASE's default read drops those tags, and with them the check.
* Disorder: ``ase.io.read`` of a CIF with partial occupancies (ASE's default ``fractional_occupancies=True``)
  keeps one atom per site, typed as its majority species, and records the occupancies in
  ``atoms.info["occupancy"]``: a dict keyed by the site's kind (as a string), each value a dict
  ``{symbol: occupancy}``. The kind of each atom is ``atoms.arrays["spacegroup_kinds"]``; files written by older
  ASE versions key the dict by ``atoms.get_tags()`` instead. Each atom becomes a pymatgen site with exactly those
  species and occupancies, so the shared validation in ``structure_io`` judges it as it judges the same CIF read
  directly (encoded, or :class:`DisorderedStructureError` under ``disorder="raise"``). Nothing is refused here for
  being disordered; ASE reads that lost atoms (rows of one element merged at one position) are refused.

This module is remote code (copied flat into checkpoints): it imports only pip packages and its siblings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from .file_claims import (
    LATTICE_TOLERANCE,
    FileClaims,
    Measured,
    UnlocatedRow,
    attach_claims,
    parse_formula,
    shares_fill_site,
)
from .scope_defaults import OCCUPANCY_TOLERANCE
from .scope_errors import (
    DisorderedStructureError,
    EmptyStructureError,
    InconsistentFileError,
    InvalidGeometryError,
    NonPeriodicStructureError,
    OverlappingSitesError,
    ScopeError,
    StructureParseError,
    UnknownSpeciesError,
)

# OCCUPANCY_TOLERANCE (scope_defaults, shared with the CIF reader so that a CIF and ``ase.io.read`` of it agree):
# an occupancy within it of 1 counts as full, and a site's occupancies may sum to at most this much over 1 (scaled
# down to exactly 1: pymatgen cannot hold more).

#: Below this |det| (A^3) the cell vectors span no volume.
_MIN_CELL_VOLUME = 1e-8


def is_ase_atoms(obj: Any) -> bool:
    """Whether ``obj`` is an ASE ``Atoms`` (subclasses count), checked by class so that ASE need not be installed."""
    return any(cls.__name__ == "Atoms" and cls.__module__.startswith("ase") for cls in type(obj).__mro__)


def _occupancy_keys(atoms: Any) -> tuple[str, list[int]]:
    """What ``atoms.info["occupancy"]`` is keyed by, and each atom's key."""
    arrays = getattr(atoms, "arrays", {})
    if "spacegroup_kinds" in arrays:
        return "spacegroup kind", [int(k) for k in arrays["spacegroup_kinds"]]
    if "tags" in arrays:
        return "tag", [int(t) for t in arrays["tags"]]
    return "atom index", list(range(len(atoms)))


def _site_species(atoms: Any, occupancy: Any, source: str) -> list[dict[str, float]]:
    """One ``{symbol: occupancy}`` dict per atom, from ``atoms.info["occupancy"]``."""
    if not isinstance(occupancy, Mapping):
        raise StructureParseError(
            f'atoms.info["occupancy"] is a {type(occupancy).__name__}, not a dict of {{kind: {{symbol: occupancy}}}}',
            source,
        )
    label, keys = _occupancy_keys(atoms)
    present = {str(key) for key in keys}
    carried = [dict(occupancy[kind]) for kind in occupancy if str(kind) in present]
    # A kind without atoms is harmless when ASE merged its elements into a kind that has atoms (it then writes the
    # whole mixture under every row's kind); a one-element kind without atoms is a row whose atoms were dropped.
    orphans = sorted(
        str(kind)
        for kind in occupancy
        if str(kind) not in present and not (len(occupancy[kind]) > 1 and dict(occupancy[kind]) in carried)
    )
    if orphans and label != "atom index":
        # ase.io.read keeps one atom where CIF rows of one element share a position (Fe2+ 0.5 + Fe3+ 0.5) and
        # records the other rows' occupancies under kinds no atom carries: those atoms are lost.
        raise StructureParseError(
            f'atoms.info["occupancy"] lists {label}s {", ".join(orphans)} that no atom carries: the reader merged '
            "partly occupied rows at one position and lost their atoms; read the file itself instead",
            source,
        )
    symbols = atoms.get_chemical_symbols()
    species: list[dict[str, float]] = []
    for i, key in enumerate(keys):
        entry = occupancy.get(str(key), occupancy.get(key))
        if not isinstance(entry, Mapping) or not entry:
            raise StructureParseError(
                f'atoms.info["occupancy"] has no {{symbol: occupancy}} entry for {label} {key} (atom {i}); the '
                "occupancy record does not describe these atoms",
                source,
            )
        if symbols[i] not in entry:
            raise StructureParseError(
                f'atom {i} is {symbols[i]}, but atoms.info["occupancy"] for its {label} {key} lists only '
                f"{', '.join(map(str, entry))}; the occupancy record does not describe these atoms",
                source,
            )
        site: dict[str, float] = {}
        for name, value in entry.items():
            if not isinstance(name, str) or not Element.is_valid_symbol(name):
                raise UnknownSpeciesError(f"site {i}: {name!s} is not a chemical element H-Og", source)
            if isinstance(value, str) and value.strip() in ("?", "."):
                value = 1.0  # CIF's unknown / inapplicable occupancy: full, as the CIF reader reads it
            try:
                value = float(value)
            except (TypeError, ValueError) as exc:
                raise StructureParseError(
                    f"site {i}: occupancy {value!r} of {name} is not a number", source
                ) from exc
            if not np.isfinite(value) or value < 0:
                raise StructureParseError(
                    f"site {i}: occupancy {value!r} of {name} is not a fraction", source
                )
            if abs(value - 1.0) <= OCCUPANCY_TOLERANCE:
                value = 1.0
            elif value > 1.0:
                raise StructureParseError(
                    f"site {i}: occupancy {value:g} of {name} is above 1 (tolerance {OCCUPANCY_TOLERANCE})",
                    source,
                )
            if value > 0:
                site[name] = site.get(name, 0.0) + value
        total = sum(site.values())
        if total == 0:
            raise DisorderedStructureError(f"site {i} has zero total occupancy", source)
        if total > 1 + OCCUPANCY_TOLERANCE and not shares_fill_site(
            [Measured.of_float(v) for v in site.values()]
        ):
            listing = ", ".join(f"{sp}:{occ:g}" for sp, occ in site.items())
            raise OverlappingSitesError(
                f"site {i} holds {listing} (total occupancy {total:.4g} > 1): more than one atom on one position",
                source,
            )
        if total > 1 or (total < 1 and shares_fill_site([Measured.of_float(v) for v in site.values()])):
            # Above 1: within the tolerance. Below 1: n shares that sum to 1 within their rounding (0.33 x 3), as
            # the CIF reader reads them (file_claims.shares_fill_site).
            site = {name: value / total for name, value in site.items()}
        species.append(site)
    return species


def atoms_to_structure(atoms: Any, source: str) -> Structure:
    """An ASE ``Atoms`` as a pymatgen ``Structure`` (not yet validated), sites in the same order.

    Disorder recorded by ASE becomes disordered pymatgen sites (see the module docstring).

    Raises:
        NonPeriodicStructureError: ``atoms.pbc`` is not True in all three directions.
        InvalidGeometryError: the cell spans no volume, or cell or positions are not finite.
        EmptyStructureError, UnknownSpeciesError, StructureParseError (an occupancy record that does not fit).
    """
    pbc = np.broadcast_to(np.asarray(atoms.pbc, dtype=bool), (3,))
    if not pbc.all():
        raise NonPeriodicStructureError(
            f"ASE Atoms with pbc={tuple(bool(p) for p in pbc)} is not a 3D crystal (SCOPE describes crystals "
            "periodic in all three directions; a molecule in a box is still a molecule)",
            source,
        )
    cell = np.asarray(atoms.cell[:], dtype=float)
    if not np.all(np.isfinite(cell)):
        raise InvalidGeometryError("the ASE cell contains NaN or infinity", source)
    if abs(float(np.linalg.det(cell))) < _MIN_CELL_VOLUME:
        raise InvalidGeometryError("ASE Atoms has no 3D cell (its cell vectors span no volume)", source)
    if len(atoms) == 0:
        raise EmptyStructureError("the structure has no sites", source)
    numbers = [int(z) for z in atoms.get_atomic_numbers()]
    for i, z in enumerate(numbers):
        if not 1 <= z <= 118:
            raise UnknownSpeciesError(f"site {i}: atomic number {z} is not an element H-Og", source)
    positions = np.asarray(atoms.get_positions(), dtype=float)
    if not np.all(np.isfinite(positions)):
        raise InvalidGeometryError("coordinates contain NaN or infinity", source)
    occupancy = atoms.info.get("occupancy") if isinstance(getattr(atoms, "info", None), Mapping) else None
    species: list[Any] = numbers if occupancy is None else _site_species(atoms, occupancy, source)
    per_atom = getattr(atoms, "arrays", {}).get("occupancy")
    if per_atom is not None and occupancy is None:
        # A per-atom occupancy column (extended XYZ 'occupancy:R:1'): each atom holds its element at that share.
        shares = np.asarray(per_atom, dtype=float).reshape(len(atoms))
        if not np.all(np.isfinite(shares)) or np.any(shares <= 0) or np.any(shares > 1 + OCCUPANCY_TOLERANCE):
            raise StructureParseError(
                f"the per-atom occupancy column holds values outside (0, 1]: {sorted(set(shares.tolist()))[:5]}",
                source,
            )
        symbols = atoms.get_chemical_symbols()
        species = [
            z if abs(share - 1.0) <= OCCUPANCY_TOLERANCE else {symbols[i]: float(share)}
            for i, (z, share) in enumerate(zip(numbers, shares, strict=True))
        ]
    try:
        structure = Structure(Lattice(cell), species, positions, coords_are_cartesian=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise StructureParseError(
            f"cannot build a structure from the ASE Atoms ({type(exc).__name__}: {exc})", source
        ) from exc
    claims = _stored_cif_claims(atoms.info) if isinstance(getattr(atoms, "info", None), Mapping) else None
    return attach_claims(structure, claims) if claims is not None else structure


_SYMBOL_HEAD = re.compile(r"([A-Z][a-z]?)(?![a-z])")


def _stored_cif_claims(info: Mapping) -> FileClaims | None:
    """What a CIF said about itself, from the tags ``ase.io.read(..., store_tags=True)`` keeps in ``atoms.info``:
    the formula sum and Z, and the rows flagged ``dum`` (ASE places such a row as an atom at (-1, -1, -1), i.e. on
    the origin's orbit, so the file's own check must refuse it on this path too). None without such tags (ASE's
    default drops them, and with them what the check needs)."""
    formula = parse_formula(info.get("_chemical_formula_sum"))
    flags = info.get("_atom_site_calc_flag")
    if formula is None and not isinstance(flags, list):
        return None
    unlocated = []
    if isinstance(flags, list):
        labels = list(info.get("_atom_site_label") or [f"#{i + 1}" for i in range(len(flags))])
        symbols = list(info.get("_atom_site_type_symbol") or labels)
        occupancies = list(info.get("_atom_site_occupancy") or [1.0] * len(flags))
        for i, flag in enumerate(flags):
            if str(flag).strip().lower() not in ("dum", "dummy") or i >= min(len(symbols), len(labels)):
                continue
            match = _SYMBOL_HEAD.match(str(symbols[i]))
            symbol = "H" if match and match.group(1) in ("D", "T") else (match.group(1) if match else "")
            try:
                occupancy = float(occupancies[i]) if i < len(occupancies) else 1.0
            except (TypeError, ValueError):
                occupancy = 1.0
            if Element.is_valid_symbol(symbol) and occupancy > 0:
                unlocated.append(UnlocatedRow(str(labels[i]), symbol, occupancy))
    z = info.get("_cell_formula_units_z")
    return FileClaims(
        "CIF (read by ASE)",
        formula=formula[0] if formula else None,
        formula_text=info.get("_chemical_formula_sum") if formula else None,
        formula_resolution=formula[1] if formula else {},
        formula_units=Measured(float(z), None, str(z)) if isinstance(z, (int, float)) else None,
        unlocated=tuple(unlocated),
    )


def read_ase_file(
    path: str | os.PathLike, source: str | None = None, format: str | None = None
) -> list[tuple[str, Structure | ScopeError]]:
    """Read every frame of an ASE-readable file (extxyz, XYZ, ...), each converted on its own.

    Returns one ``(name, structure_or_error)`` entry per frame, in file order: ``name`` is ``f"{source}@{i}"``
    (``i`` from 0), or just ``source`` when the file holds one frame. A frame that cannot be converted gives its
    :class:`ScopeError` in place and the other frames are still returned. If ASE fails to parse frame ``i``,
    reading stops there: the earlier frames are kept and frame ``i`` carries the error. A file that cannot be read
    at all gives a single error entry. Nothing is raised; structures are not validated yet.
    """
    source = os.fspath(path) if source is None else source
    try:
        import ase.io
        from ase.io.formats import UnknownFileTypeError
    except ImportError as exc:
        return [
            (source, StructureParseError(f"reading this file needs ASE (pip install ase): {exc}", source))
        ]
    if not os.path.exists(path):
        return [(source, StructureParseError("no such file", source))]
    if os.path.isdir(path):
        return [(source, StructureParseError("is a directory, not a structure file", source))]

    entries: list[tuple[str, Structure | ScopeError]] = []
    is_extxyz = (format or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower() in ("extxyz", "xyz")
    frame_claims = extxyz_claims(path) if is_extxyz else []
    frames = ase.io.iread(os.fspath(path), index=":", format=format, do_not_split_by_at_sign=True)
    while True:
        index = len(entries)
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except UnknownFileTypeError as exc:
            entries.append(
                (source, StructureParseError(f"ASE cannot tell this file's format ({exc})", source))
            )
            break
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError, AssertionError) as exc:
            kept = f"; the {index} frame(s) before it are kept" if index else ""
            claims = frame_claims[index] if index < len(frame_claims) else None
            wrong = (
                [n for n in claims.columns_found if n != claims.columns_declared]
                if claims is not None and claims.columns_declared is not None
                else []
            )
            if wrong:
                error = InconsistentFileError(
                    f"frame {index}: its Properties declare {claims.columns_declared} columns per atom, but atom "
                    f"lines hold {', '.join(map(str, wrong))}; reading stopped there{kept}",
                    f"{source}@{index}",
                )
            else:
                error = StructureParseError(
                    f"ASE could not read frame {index} ({type(exc).__name__}: {exc}); reading stopped there{kept}",
                    f"{source}@{index}",
                )
            entries.append((f"{source}@{index}", error))
            break
        name = f"{source}@{index}"
        try:
            if index < len(frame_claims):
                _check_lattice_read(atoms, frame_claims[index], name)
            structure = atoms_to_structure(atoms, name)
            if index < len(frame_claims):
                attach_claims(structure, frame_claims[index])
            entries.append((name, structure))
        except ScopeError as error:
            entries.append((name, error))
    if not entries:
        return [(source, StructureParseError("ASE found no structure in the file", source))]
    if len(entries) == 1:
        name, item = entries[0]
        return [(source, _renamed(item, source) if name != source else item)]
    return entries


def _check_lattice_read(atoms: Any, claims: FileClaims, source: str) -> None:
    """The cell ASE built for a frame must be the ``Lattice`` its comment line declares (rows, Å).

    ASE's extxyz reader knows the keys ``Lattice`` and ``Properties`` only in that spelling; a frame written with
    ``lattice=`` (as some MD and machine-learning potential codes write it) is read without a cell, which would
    otherwise be refused as having no 3D cell. Raises InconsistentFileError naming both cells (and the spelling).
    """
    if claims.lattice is None:
        return
    declared = np.asarray(claims.lattice, dtype=float)
    built = np.asarray(atoms.cell, dtype=float)
    if declared.shape == (3, 3) and np.allclose(declared, built, rtol=0, atol=LATTICE_TOLERANCE):
        return
    message = (
        f"declares Lattice {declared.round(6).tolist()} (Å), but the frame built has the cell "
        f"{built.round(6).tolist()}"
    )
    if not np.any(built):
        message += (
            "; ASE's extxyz reader reads the keys only when spelled 'Lattice' and 'Properties', so a key spelled "
            "otherwise (e.g. 'lattice=') is ignored: write Lattice=\"...\" (and Properties=...)"
        )
    raise InconsistentFileError(message, source)


_KEY_VALUE = re.compile(r'(\w+)\s*=\s*("[^"]*"|\S+)')
#: Columns per entry of each extxyz property type (``name:type:count``): all types take one column per count.
_DEFAULT_PROPERTIES = "species:S:1:pos:R:3"


def extxyz_claims(path: str | os.PathLike) -> list[FileClaims]:
    """What each frame of an extended XYZ file says about itself, read from its text (not through ASE): the
    ``Lattice`` (any capitalisation), ``pbc``, the number of columns its ``Properties`` declare, and the numbers of
    columns the atom lines hold. One record per frame, in order; [] when the text is not laid out as extxyz frames
    (ASE then says what is wrong)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    claims: list[FileClaims] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        try:
            n_atoms = int(lines[index].split()[0])
        except ValueError:
            return claims
        if index + 1 + n_atoms >= len(lines) + 1:
            return claims
        comment = lines[index + 1] if index + 1 < len(lines) else ""
        atom_lines = lines[index + 2 : index + 2 + n_atoms]
        claims.append(_frame_claims(comment, atom_lines))
        index += 2 + n_atoms
    return claims


def _frame_claims(comment: str, atom_lines: list[str]) -> FileClaims:
    pairs = {key.lower(): value.strip('"') for key, value in _KEY_VALUE.findall(comment)}
    lattice = None
    values = pairs.get("lattice", "").split()
    if len(values) == 9:
        try:
            numbers = [float(v) for v in values]
            lattice = tuple(tuple(numbers[3 * i : 3 * i + 3]) for i in range(3))
        except ValueError:
            lattice = None
    pbc = None
    flags = pairs.get("pbc", "").split()
    if len(flags) == 3 and all(f[:1].upper() in ("T", "F") for f in flags):
        pbc = tuple(f[:1].upper() == "T" for f in flags)
    columns = None
    fields = pairs.get("properties", _DEFAULT_PROPERTIES).split(":")
    if len(fields) % 3 == 0:
        try:
            columns = sum(int(count) for count in fields[2::3])
        except ValueError:
            columns = None
    return FileClaims(
        "extxyz",
        lattice=lattice,
        pbc=pbc,
        columns_declared=columns,
        columns_found=tuple(sorted({len(line.split()) for line in atom_lines})),
    )


def _renamed(item: Structure | ScopeError, source: str) -> Structure | ScopeError:
    """A single frame is named by the file alone: rebuild its error with that name."""
    if isinstance(item, ScopeError):
        renamed = type(item)(item.message, source)
        renamed.__cause__ = item.__cause__
        return renamed
    return item
