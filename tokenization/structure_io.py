"""Read and validate crystal structures from every form users hold them in.

``load_structure`` is the single entry point: it turns a pymatgen ``Structure``, an ASE ``Atoms``, CIF or POSCAR
text, a file path, a pymatgen dict (or its JSON text), or plain arrays ``(lattice, frac_coords, species)`` into
a validated pymatgen ``Structure`` (disordered sites kept under the default ``disorder="encode"``), and refuses
anything SCOPE cannot describe with a typed
:class:`~scope_errors.ScopeError` that names the input and the reason.

This module is remote code (copied flat into checkpoints): it imports only pip packages and its siblings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from .cif_structure import cif_crystal_blocks, read_cif_structures
from .file_claims import CLAIMS_PROPERTY, check_file_claims
from .input_names import describe_source
from .scope_defaults import DEFAULT_DISORDER, DISORDER_POLICIES, OCCUPANCY_TOLERANCE
from .scope_errors import (
    DisorderedStructureError,
    EmptyStructureError,
    InvalidGeometryError,
    NonPeriodicStructureError,
    OverlappingSitesError,
    ScopeError,
    StructureParseError,
    UnknownSpeciesError,
    typed_error,
)
from .symmetry_idealisation import cell_inverse, periodic_neighbours, thinnest_layer

#: Two atoms closer than this (in Angstrom) are treated as one duplicated site. The shortest real
#: interatomic distance (H2, 0.74 A) is well above it.
DEFAULT_OVERLAP_TOLERANCE = 0.5

#: Partially occupied sites (not hydrogen) closer than this (Å) are alternative positions of one atom (split sites,
#: e.g. the six 1/6-occupied O positions 0.43 Å apart in beta-cristobalite): no two atoms other than hydrogen are
#: bonded closer than 1 Å (the shortest, N≡N and C≡O, are 1.10-1.13 Å), so their occupancies may sum to 1 at most.
#: Bonds to hydrogen are as short as 0.74 Å (and 0.82-0.96 Å in X-ray riding models), so sites holding H are judged
#: by the overlap tolerance only.
SPLIT_SITE_DISTANCE = 1.0

#: Cells with less volume per site than this (A^3) are degenerate (flat or collapsed lattices).
MIN_VOLUME_PER_SITE = 0.1

_POSCAR_NAMES = ("POSCAR", "CONTCAR")
_POSCAR_SUFFIXES = (".vasp", ".poscar")
_CIF_SUFFIXES = (".cif", ".mcif")
_JSON_SUFFIXES = (".json",)
# Read through ASE (optional dependency): one crystal per frame.
_ASE_SUFFIXES = (".extxyz", ".xyz")


def _names_a_file(text: str) -> bool:
    """A one-line string that is not JSON is a path (or a ``file#block`` / ``file@frame`` selector)."""
    return "\n" not in text and not text.lstrip().startswith("{")


def _looks_like_cif(text: str) -> bool:
    return "_cell_length_a" in text or text.lstrip().startswith("data_")


def _single(crystals: list[tuple[str, Structure | ScopeError]], source: str) -> Structure:
    """The one crystal of an input, or a typed error naming the input (several crystals need a selector)."""
    if len(crystals) == 1:
        _, result = crystals[0]
        if isinstance(result, ScopeError):
            raise result
        return result
    names = ", ".join(name for name, _ in crystals[:5]) + (", ..." if len(crystals) > 5 else "")
    raise StructureParseError(
        f"holds {len(crystals)} crystals ({names}); name one of them as the input, or read all with "
        "load_structures()",
        source,
    )


def _parse_cif_text(text: str, source: str) -> Structure:
    return _single(read_cif_structures(text, source), source)


def _parse_poscar_text(text: str, source: str) -> Structure:
    # Strict: the format's corners, never an invented species (see the module docstring).
    from .poscar_reader import read_poscar

    return read_poscar(text, source)


def is_optimade_entry(data: dict) -> bool:
    """Whether a dict is an OPTIMADE structures entry (or its ``attributes``)."""
    attributes = data.get("attributes", data)
    return (
        isinstance(attributes, dict) and "species_at_sites" in attributes and "lattice_vectors" in attributes
    )


def _dict_crystals(data: dict, source: str) -> list[tuple[str, Structure | ScopeError]]:
    """One crystal per entry of an OPTIMADE response document, else the one crystal of the dict."""
    from .optimade_structure import document_entries, is_optimade_document, optimade_to_structure

    if not is_optimade_document(data):
        return [(source, _from_single_dict(data, source))]
    crystals: list[tuple[str, Structure | ScopeError]] = []
    for name, entry in document_entries(data, source):
        if not isinstance(entry, ScopeError):
            try:
                entry = optimade_to_structure(entry, name)
            except ScopeError as exc:
                entry = exc
        crystals.append((name, entry))
    return crystals


def _json_kind(data: dict) -> str:
    """What a dict that is no structure is, for the refusal."""
    cls = data.get("@class")
    if isinstance(cls, str) and cls not in ("Structure", "IStructure"):
        return f"a pymatgen {cls} dict, not a Structure"
    keys = ", ".join(sorted(map(str, data))[:8]) + (", ..." if len(data) > 8 else "")
    return (
        f"a JSON object with keys {keys}: neither a pymatgen Structure dict nor an OPTIMADE structures entry or "
        "response document"
    )


def _from_dict(data: dict, source: str) -> Structure:
    """The one crystal of a dict: an OPTIMADE response document with one entry, an OPTIMADE entry or a pymatgen
    ``Structure`` dict."""
    from .optimade_structure import is_optimade_document

    if is_optimade_document(data):
        return _single(_dict_crystals(data, source), source)
    return _from_single_dict(data, source)


def _from_single_dict(data: dict, source: str) -> Structure:
    """An OPTIMADE entry (or its attributes) or a pymatgen ``Structure`` dict; a document is read by
    :func:`_dict_crystals` (kept apart so that the readers' call graph has no cycle: ``datasets`` hashes a streaming
    generator with dill, which follows every global function it reaches and never ends on a cycle)."""
    if is_optimade_entry(data):
        # An OPTIMADE structures entry (or its attributes): species with concentrations, vacancies, assemblies.
        from .optimade_structure import optimade_to_structure

        return optimade_to_structure(data, source)
    if data.get("sites") == [] and isinstance(data.get("lattice"), dict):
        raise EmptyStructureError("the structure has no sites", source)
    if not ("lattice" in data and "sites" in data):
        raise StructureParseError(_json_kind(data), source)
    try:
        return Structure.from_dict(data)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise StructureParseError(
            f"not a pymatgen Structure dict ({type(exc).__name__}: {exc})", source
        ) from exc


def _text_crystals(text: str, source: str) -> list[tuple[str, Structure | ScopeError]]:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StructureParseError(f"not valid JSON ({exc})", source) from exc
        if not isinstance(data, dict):
            raise StructureParseError(f"JSON of type {type(data).__name__}, not a structure object", source)
        return _dict_crystals(data, source)
    if _looks_like_cif(text):
        return read_cif_structures(text, source)
    return [(source, _parse_poscar_text(text, source))]


def _parse_text(text: str, source: str) -> Structure:
    return _single(_text_crystals(text, source), source)


#: The first bytes of a gzip stream (RFC 1952): VASP runs and pymatgen's test files keep POSCAR.gz, CONTCAR.gz.
_GZIP_MAGIC = b"\x1f\x8b"
#: A compressed structure file inflating beyond this many bytes is refused (a structure file is far smaller).
MAX_INFLATED_BYTES = 256 * 2**20


def _gunzip(data: bytes, source: str) -> bytes:
    """The contents of a gzip-compressed file, read up to :data:`MAX_INFLATED_BYTES`."""
    import gzip
    import io
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            inflated = stream.read(MAX_INFLATED_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise StructureParseError(f"unreadable gzip file ({type(exc).__name__}: {exc})", source) from exc
    if len(inflated) > MAX_INFLATED_BYTES:
        raise StructureParseError(
            f"the gzip file inflates beyond {MAX_INFLATED_BYTES // 2**20} MiB: not a structure file", source
        )
    return inflated


def _read_text(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StructureParseError(f"unreadable file ({type(exc).__name__}: {exc})", source) from exc
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, source)
    if b"\x00" in data[:4096]:
        raise StructureParseError("unreadable file (binary data, not a text structure format)", source)
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is not part of the text
    except UnicodeDecodeError:
        # CIFs from ICSD and older programs are Latin-1 in their text fields (author names, Å); the numbers that
        # matter are ASCII either way.
        return data.decode("latin-1")


def _selected_crystal(path: Path) -> list[tuple[str, Structure | ScopeError]] | None:
    """``file.cif#KCl`` (a CIF data block) or ``frames.extxyz@3`` (a frame): the crystal that source names."""
    text = str(path)
    for separator in ("#", "@"):
        base, found, _ = text.rpartition(separator)
        if found and base and Path(base).is_file():
            if separator == "#" and Path(base).suffix.lower() in _CIF_SUFFIXES:
                crystals = read_cif_structures(_read_text(Path(base), base), base, crystal=text)
            else:
                crystals = _existing_file_crystals(Path(base))
            chosen = [(name, result) for name, result in crystals if name == text]
            if chosen:
                return chosen
            names = ", ".join(name for name, _ in crystals[:5])
            raise StructureParseError(f"{base} holds no crystal named like this (it holds {names})", text)
    return None


def _file_crystals(path: Path) -> list[tuple[str, Structure | ScopeError]]:
    """Every crystal in one file: one per CIF data block or extxyz frame, one for other formats."""
    source = str(path)
    if not path.exists():
        selected = _selected_crystal(path)
        if selected is not None:
            return selected
        raise StructureParseError("no such file", source)
    return _existing_file_crystals(path)


def _existing_file_crystals(path: Path) -> list[tuple[str, Structure | ScopeError]]:
    source = str(path)
    if path.is_dir():
        raise StructureParseError("is a directory, not a structure file", source)
    name = path.name
    suffix = path.suffix.lower()
    if suffix in _ASE_SUFFIXES:
        from .ase_adapter import read_ase_file

        return read_ase_file(path, source)
    text = _read_text(path, source)
    if suffix in _CIF_SUFFIXES:
        return read_cif_structures(text, source)
    if suffix in _JSON_SUFFIXES:
        return _text_crystals(text, source)
    if suffix in _POSCAR_SUFFIXES or any(name.upper().startswith(n) for n in _POSCAR_NAMES):
        return [(source, _parse_poscar_text(text, source))]
    return _text_crystals(text, source)


def crystal_sources(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """``[(source, input)]`` for each crystal of a file, cheaply: what :func:`load_structure` then reads.

    A file with one crystal gives ``[(path, path)]``. A CIF with several data blocks gives ``("file.cif#block",
    the block's CIF text)`` per block; an extxyz file gives its frames as (unvalidated) structures or their errors. A file that cannot be read at all gives its ``ScopeError`` as the input, so callers report it.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    try:
        if suffix in _CIF_SUFFIXES and path.is_file():
            # Several crystals: each block's own text, so that no crystal makes the file be read again.
            blocks = cif_crystal_blocks(_read_text(path, source), source)
            return blocks if len(blocks) > 1 else [(source, path)]
        if suffix in _ASE_SUFFIXES and path.is_file():
            return _file_crystals(path)
    except ScopeError as exc:
        return [(source, exc)]
    except Exception as exc:  # MemoryError, or a reader's bug: this file's row reports it, the batch goes on
        return [(source, typed_error(exc, source))]
    return [(source, path)]


def _read_file(path: Path) -> Structure:
    return _single(_file_crystals(path), str(path))


def _from_arrays(obj: Sequence, source: str) -> Structure:
    if len(obj) != 3:
        raise StructureParseError("plain-array input must be (lattice, frac_coords, species)", source)
    lattice, frac_coords, species = obj
    try:
        lattice = np.asarray(lattice, dtype=float)
        frac_coords = np.asarray(frac_coords, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StructureParseError(f"lattice and coordinates must be numeric arrays ({exc})", source) from exc
    if lattice.shape != (3, 3):
        raise InvalidGeometryError(f"lattice must be a 3x3 matrix, got shape {lattice.shape}", source)
    if len(species) == 0 or frac_coords.size == 0:
        raise EmptyStructureError("the structure has no sites", source)
    if frac_coords.ndim != 2 or frac_coords.shape[1] != 3:
        raise InvalidGeometryError(f"frac_coords must have shape (N, 3), got {frac_coords.shape}", source)
    if len(species) != len(frac_coords):
        raise StructureParseError(f"{len(species)} species for {len(frac_coords)} coordinates", source)
    if not np.all(np.isfinite(lattice)) or not np.all(np.isfinite(frac_coords)):
        raise InvalidGeometryError("lattice or coordinates contain NaN or infinity", source)
    for i, sp in enumerate(species):
        _check_element_symbol(sp, i, source)
    try:
        return Structure(Lattice(lattice), list(species), frac_coords)
    except (ValueError, KeyError, TypeError) as exc:
        raise StructureParseError(f"cannot build a structure from arrays ({exc})", source) from exc


def _check_element_symbol(sp: Any, index: int, source: str) -> None:
    if isinstance(sp, (int, np.integer)):
        if not 1 <= int(sp) <= 118:
            raise UnknownSpeciesError(f"site {index}: atomic number {sp} is not an element H-Og", source)
        return
    if isinstance(sp, str) and not Element.is_valid_symbol(sp):
        raise UnknownSpeciesError(f"site {index}: {sp!r} is not a chemical element H-Og", source)


def _from_ase(atoms: Any, source: str) -> Structure:
    # pbc is checked; disorder recorded in atoms.info becomes disordered sites, judged by the validation.
    from .ase_adapter import atoms_to_structure

    return atoms_to_structure(atoms, source)


def _is_ase_atoms(obj: Any) -> bool:
    # By class name, so ASE stays an optional dependency (subclasses such as MSONAtoms count).
    from .ase_adapter import is_ase_atoms

    return is_ase_atoms(obj)


def _to_structure(obj: Any, source: str) -> Structure:
    """Dispatch on the input type; no validation yet."""
    from pymatgen.core import IMolecule, IStructure  # Structure subclasses IStructure (not the reverse)

    if isinstance(obj, (IStructure, IMolecule)):
        from .scope_errors import NonPeriodicStructureError

        if isinstance(obj, IMolecule):
            raise NonPeriodicStructureError(
                "a pymatgen Molecule is not a 3D crystal; SCOPE describes periodic crystals", source
            )
        if isinstance(obj, Structure):
            return obj
        # Not from_sites: it refuses an empty structure, which the validation must see and name.
        return Structure(
            obj.lattice, obj.species_and_occu, obj.frac_coords, site_properties=obj.site_properties
        )
    if isinstance(obj, os.PathLike):
        return _read_file(Path(obj))
    if isinstance(obj, str):
        if not obj.strip():
            raise StructureParseError("empty text", source)
        return _read_file(Path(obj)) if _names_a_file(obj) else _parse_text(obj, source)
    if isinstance(obj, dict):
        return _from_dict(obj, source)
    if _is_ase_atoms(obj):
        return _from_ase(obj, source)
    if isinstance(obj, (tuple, list)):
        return _from_arrays(obj, source)
    raise StructureParseError(
        f"unsupported input type {type(obj).__name__}; expected a pymatgen Structure, ASE Atoms, CIF/POSCAR text, "
        "a file path, a pymatgen dict or (lattice, frac_coords, species)",
        source,
    )


#: Above this many sites the all-pairs shortcut of ``_surely_no_overlap`` would need too much memory.
_MAX_SITES_ALL_PAIRS = 256


def _surely_no_overlap(
    matrix: np.ndarray, frac: np.ndarray, tolerance: float, inverse: np.ndarray | None = None
) -> bool | None:
    """True when no two sites are within ``tolerance``; None when this shortcut cannot tell (ask the neighbor list).

    If every cell thickness is at least ``2 * tolerance``, a separation shorter than ``tolerance`` has fractional
    components below 1/2, so it is the one that rounding the fractional difference picks: the all-pairs
    minimum-image distances then decide exactly, at a fraction of the cost of a neighbor-list search.

    Args:
        matrix: lattice vectors as rows (Å), ``(3, 3)``.
        frac: fractional coordinates, ``(n, 3)``.
        tolerance: the distance (Å).
        inverse: ``cell_inverse(matrix)[0]`` where the caller has it.
    """
    if len(frac) > _MAX_SITES_ALL_PAIRS:
        return None
    if thinnest_layer(cell_inverse(matrix)[0] if inverse is None else inverse) < 2 * tolerance:
        return None
    separation = frac[None, :, :] - frac[:, None, :]
    separation -= np.round(separation)
    cartesian = separation @ matrix
    squared = np.einsum("ijk,ijk->ij", cartesian, cartesian)
    squared.flat[:: len(frac) + 1] = np.inf  # each site and itself
    closest = squared.min()
    if closest <= tolerance**2 * (1 + 1e-9):
        return None  # an overlap or a tie: the neighbor list names the pair
    return True


def _close_pairs(
    matrix: np.ndarray, frac: np.ndarray, radius: float, inverse: np.ndarray | None = None
) -> dict[int, dict[int, float]]:
    """``{i: {j: distance}}`` for every pair of sites closer than ``radius`` (Å), periodic images included
    (the shortest image distance of each pair; ``j == i`` when a site is that close to its own image).

    ``matrix`` holds the lattice vectors as rows (Å), ``frac`` the fractional coordinates ``(n, 3)``. Cost: the
    all-pairs shortcut up to ``_MAX_SITES_ALL_PAIRS`` sites, otherwise ``symmetry_idealisation.periodic_neighbours``
    (a k-d tree of the sites' images in the 27 cells around, memory ``O(n + pairs)`` whatever the cell volume;
    pymatgen's cell-list search asked 8.9 GB for the 0.5 Å radius in a protein cell).
    """
    if _surely_no_overlap(matrix, frac, radius, inverse) is True:
        return {}
    centers, neighbors, distances = periodic_neighbours(matrix, frac, frac, radius)
    pairs: dict[int, dict[int, float]] = {}
    for i, j, distance in zip(centers.tolist(), neighbors.tolist(), distances.tolist(), strict=True):
        if i == j and distance < 1e-8:
            continue  # the site itself
        row = pairs.setdefault(i, {})
        row[j] = min(distance, row.get(j, np.inf))
    return pairs


def _largest_cluster(site: int, pairs: dict[int, dict[int, float]], occupancy: np.ndarray) -> list[int]:
    """A set of mutually close sites containing ``site`` (a clique of ``pairs``), grown greedily by occupancy.

    Every two of its sites exclude each other, so its occupancies must sum to at most 1. A chain of sites (A close
    to B, B close to C, A far from C) is not one cluster: A and C may both be occupied when B is empty.
    """
    members = [site]
    for other in sorted(pairs.get(site, {}), key=lambda j: -occupancy[j]):
        if other != site and all(other in pairs.get(member, {}) for member in members):
            members.append(other)
    return members


def _check_site_clusters(
    matrix: np.ndarray,
    frac: np.ndarray,
    occupancy: np.ndarray,
    hydrogen: np.ndarray,
    source: str,
    overlap_tolerance: float,
    inverse: np.ndarray | None = None,
) -> None:
    """Refuse sites that cannot be occupied together: their occupancies, summed over a cluster of mutually close
    sites, exceed 1 plus the rounding of each (``OCCUPANCY_TOLERANCE`` per site, occupancies are written to two
    decimals: six 1/6 sites written 0.17 sum to 1.02).

    Clusters are formed by every site closer than ``overlap_tolerance`` (a full atom there is a duplicate), and by
    partially occupied sites without hydrogen closer than :data:`SPLIT_SITE_DISTANCE` (split positions of one atom).
    Split sites that sum to at most 1 are alternatives, not overlapping atoms: they are kept, each on its own orbit
    (SCOPE_V2.md, disordered crystals).

    Args:
        matrix: lattice vectors as rows (Å); ``frac``: fractional coordinates ``(n, 3)``.
        occupancy: total occupancy of each site ``(n,)``; ``hydrogen``: whether a site holds H ``(n,)``.
        inverse: ``cell_inverse(matrix)[0]`` where the caller has it.

    Cost: one neighbour list within each radius, O(n) memory for n sites; the clusters are small.

    Raises:
        OverlappingSitesError: names the sites, their distance and the occupancy sum.
    """
    partial = occupancy < 1.0 - OCCUPANCY_TOLERANCE
    pairs = _close_pairs(matrix, frac, overlap_tolerance, inverse)
    _check_band(pairs, occupancy, partial, overlap_tolerance, overlap_tolerance, source)
    split = np.flatnonzero(partial & ~hydrogen)
    if len(split) > 1 and overlap_tolerance < SPLIT_SITE_DISTANCE:
        local = _close_pairs(matrix, frac[split], SPLIT_SITE_DISTANCE)
        pairs = {int(split[i]): {int(split[j]): d for j, d in row.items()} for i, row in local.items()}
        _check_band(pairs, occupancy, partial, SPLIT_SITE_DISTANCE, overlap_tolerance, source)


def _check_band(
    pairs: dict[int, dict[int, float]],
    occupancy: np.ndarray,
    partial: np.ndarray,
    radius: float,
    overlap_tolerance: float,
    source: str,
) -> None:
    """The occupancy-sum test of :func:`_check_site_clusters` over the pairs closer than ``radius``."""
    for site in sorted(pairs):
        row = pairs[site]
        if site in row and 2 * occupancy[site] > 1.0 + 2 * OCCUPANCY_TOLERANCE:
            raise OverlappingSitesError(
                f"site {site} is {row[site]:.3f} A from its own periodic image (below {radius} A)", source
            )
        members = _largest_cluster(site, pairs, occupancy)
        total = float(occupancy[members].sum())
        if len(members) == 1 or total <= 1.0 + OCCUPANCY_TOLERANCE * len(members):
            continue
        nearest = min((j for j in row if j != site), key=row.get)
        if not partial[members].any():
            raise OverlappingSitesError(
                f"sites {site} and {nearest} are {row[nearest]:.3f} A apart "
                f"(below the overlap tolerance {overlap_tolerance} A)",
                source,
            )
        raise OverlappingSitesError(
            f"sites {', '.join(str(k) for k in sorted(members))} are within {radius} A of each other (nearest "
            f"pair {row[nearest]:.3f} A) and their occupancies sum to {total:.3g} > 1: sites this close are "
            "alternative positions of one atom (split positions), so they cannot all be occupied",
            source,
        )


def _site_name(site, index: int) -> str:
    """``site 3``, or ``site 3 (Fe1)`` when the file gave the site a label of its own (for messages)."""
    label = getattr(site, "label", None)
    # pymatgen's default label is the species string; only a label from the file says more
    return f"site {index}" + (f" ({label})" if label and label != site.species_string else "")


def _check_sites(structure: Structure, source: str, disorder: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Each site's occupancies and species, in one pass over the sites.

    Returns:
        ``(occupancy (n,), hydrogen (n,) bool, plain_elements)``: each site's total occupancy, whether it holds H,
        and whether every species is a plain ``Element`` (no oxidation-state decoration).

    Raises:
        DisorderedStructureError: a partial or mixed site with ``disorder="raise"``.
        OverlappingSitesError: a site whose occupancies sum above 1 (or one of them is not positive).
        UnknownSpeciesError: a species that is not an element H-Og.
    """
    occupancy = np.empty(len(structure))
    hydrogen = np.zeros(len(structure), dtype=bool)
    plain_elements = True
    for i, site in enumerate(structure):
        composition = site.species
        if (
            len(composition) == 1 and composition.num_atoms == 1
        ):  # a full site of one element: the common case
            occupancy[i] = 1.0
            sp = next(iter(composition))
            if type(sp) is Element:
                hydrogen[i] = sp is Element.H
                continue
        items = list(composition.items())
        total = sum(amount for _, amount in items)
        occupancy[i] = total
        if len(items) != 1 or abs(total - 1.0) > OCCUPANCY_TOLERANCE:  # 0.996: a full site, as in the readers
            text = ", ".join(f"{sp}:{amount:g}" for sp, amount in items)
            if disorder == "raise":
                raise DisorderedStructureError(
                    f"{_site_name(site, i)} is partially occupied or mixed ({text}); refused with "
                    "disorder='raise'. Encode it with disorder='encode', or order it first (e.g. pymatgen's "
                    "OrderDisorderedStructureTransformation)",
                    source,
                )
            if total > 1.0 + OCCUPANCY_TOLERANCE or min(amount for _, amount in items) <= 0:
                raise OverlappingSitesError(
                    f"{_site_name(site, i)} holds occupancies {text} (sum {total:.4g}); a site holds at most one "
                    "atom",
                    source,
                )
        for sp, _ in items:
            if type(sp) is Element:
                hydrogen[i] |= sp is Element.H
                continue
            symbol = getattr(sp, "symbol", None)
            plain_elements = plain_elements and isinstance(sp, Element)
            if not isinstance(sp, Element) and (
                symbol is None or not Element.is_valid_symbol(symbol) or not hasattr(sp, "oxi_state")
            ):
                raise UnknownSpeciesError(
                    f"{_site_name(site, i)}: {sp!s} is not a chemical element H-Og", source
                )
            hydrogen[i] |= symbol == "H"
    return occupancy, hydrogen, plain_elements


def _check_claims(structure: Structure, source: str) -> None:
    """What the file says about itself against the crystal built (``file_claims``); notes join the reader's."""
    properties = getattr(structure, "properties", None)
    claims = properties.pop(CLAIMS_PROPERTY, None) if isinstance(properties, dict) else None
    if claims is None:
        return
    notes = check_file_claims(structure, claims, source)
    if notes:
        properties["reader_notes"] = list(dict.fromkeys([*properties.get("reader_notes", []), *notes]))


def validate_structure(
    structure: Structure,
    source: str,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    disorder: str = DEFAULT_DISORDER,
) -> Structure:
    """Check that ``structure`` is something SCOPE can encode; return it with plain elements on every site.

    Args:
        structure: the structure to check.
        source: the input's name for messages.
        overlap_tolerance: minimum distance (Å) between two sites that can be occupied together; closer sites
            (and partially occupied sites without hydrogen up to :data:`SPLIT_SITE_DISTANCE` apart) are split
            positions of one atom, refused only when their occupancies sum above 1 (:func:`_check_site_clusters`).
        disorder: ``"encode"`` accepts partially occupied and mixed sites (each site's occupancies must sum to at
            most 1 + ``OCCUPANCY_TOLERANCE``); ``"raise"`` refuses them with ``DisorderedStructureError``.

    A structure from one of the package's readers carries what its file says about itself (formula and Z,
    multiplicities, volume, OPTIMADE ``nsites``, a POSCAR's counts, ...): that is checked first, against the crystal
    built (:mod:`file_claims`), and deviations within the tolerances become notes.

    Raises:
        InconsistentFileError (UnlocatedAtomsError): the file disagrees with itself.
        NonPeriodicStructureError, EmptyStructureError, InvalidGeometryError, DisorderedStructureError,
        UnknownSpeciesError, OverlappingSitesError: each names ``source`` and the reason.
    """
    if disorder not in DISORDER_POLICIES:
        raise ValueError(f"disorder must be one of {DISORDER_POLICIES}, got {disorder!r}")
    _check_claims(structure, source)
    pbc = tuple(bool(p) for p in getattr(structure.lattice, "pbc", (True, True, True)))
    if not all(pbc):
        raise NonPeriodicStructureError(
            f"a structure with pbc={pbc} is not a 3D crystal; SCOPE describes periodic crystals", source
        )
    if len(structure) == 0:
        raise EmptyStructureError("the structure has no sites", source)
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)):
        raise InvalidGeometryError("the lattice contains NaN or infinity", source)
    inverse, determinant = cell_inverse(matrix)
    volume = abs(determinant)
    if volume < MIN_VOLUME_PER_SITE * len(structure):
        raise InvalidGeometryError(
            f"degenerate lattice: cell volume {volume:.3g} A^3 for {len(structure)} sites", source
        )
    frac = structure.frac_coords
    if not np.all(np.isfinite(frac)):
        raise InvalidGeometryError("coordinates contain NaN or infinity", source)
    occupancy, hydrogen, plain_elements = _check_sites(structure, source, disorder)
    if overlap_tolerance > 0 and len(structure) > 1:
        _check_site_clusters(matrix, frac, occupancy, hydrogen, source, overlap_tolerance, inverse)
    if not plain_elements:
        # Oxidation-state decorations (Fe2+) would leak into the composition part as 'Fe2+'.
        structure = structure.copy()
        structure.remove_oxidation_states()
    return structure


def load_structure(
    obj: Any,
    source: str | None = None,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    disorder: str = DEFAULT_DISORDER,
) -> Structure:
    """Turn any supported structure input into a validated pymatgen ``Structure``.

    Args:
        obj: a pymatgen ``Structure``; an ASE ``Atoms``; CIF or POSCAR text; a path (``str`` or ``PathLike``) to a
            CIF, POSCAR/CONTCAR/``.vasp`` or pymatgen JSON file; a pymatgen ``Structure.as_dict()`` dict or its JSON
            text; or a tuple ``(lattice 3x3, frac_coords Nx3, species N)``.
        source: a name for the input used in error messages (defaults to a description of ``obj``).
        overlap_tolerance: minimum distance (A) between two sites; closer pairs raise ``OverlappingSitesError``.
        disorder: ``"encode"`` (default) keeps partially occupied and mixed sites as pymatgen disordered sites;
            ``"raise"`` refuses them with ``DisorderedStructureError``.

    Raises:
        StructureParseError, EmptyStructureError, DisorderedStructureError, UnknownSpeciesError,
        OverlappingSitesError, InvalidGeometryError: each names the input and the reason.

    Example:
        >>> from tokenization import load_structure
        >>> nacl = load_structure(([[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        ...                        [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"]))
        >>> nacl.composition.reduced_formula
        'NaCl'
    """
    # A pymatgen Structure is named (its formula: a pass over its sites) only if it fails.
    unnamed = source is None and isinstance(obj, Structure) and CLAIMS_PROPERTY not in (obj.properties or {})
    if source is None and not unnamed:
        source = describe_source(obj)
    try:
        structure = _to_structure(obj, source)
        return validate_structure(structure, source, overlap_tolerance=overlap_tolerance, disorder=disorder)
    except ScopeError as error:
        if unnamed and error.source is None:
            raise error.with_source(describe_source(obj)) from error
        raise


def load_structures(
    obj: Any,
    source: str | None = None,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    disorder: str = DEFAULT_DISORDER,
) -> list[tuple[str, Structure | ScopeError]]:
    """Every crystal an input holds, each validated like :func:`load_structure`, failures in place.

    A CIF gives one crystal per data block with atom sites (named ``f"{path}#{block}"`` when there are several),
    an extxyz file one per frame (``f"{path}@{index}"``), every other input one. Those names are inputs too:
    ``load_structure("two.cif#KCl")`` reads that block alone.

    Args:
        obj: anything :func:`load_structure` accepts.
        source: a name for the input used in error messages (defaults to a description of ``obj``).
        overlap_tolerance: minimum distance (Å) between two sites.
        disorder: ``"encode"`` or ``"raise"``, as in :func:`load_structure`.

    Returns:
        ``[(source, Structure or ScopeError)]`` in file order: a crystal that cannot be read or validated gives
        its typed error, and the others still come out.

    Raises:
        ScopeError: only when the input as a whole cannot be read (no such file, not a structure format).

    Example:
        >>> from tokenization.structure_io import load_structures
        >>> [(name, s.composition.reduced_formula) for name, s in load_structures(
        ...     ([[4.2, 0, 0], [0, 4.2, 0], [0, 0, 4.2]], [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"]), "CsCl")]
        [('CsCl', 'CsCl')]
    """
    source = source if source is not None else describe_source(obj)
    if isinstance(obj, os.PathLike) or (isinstance(obj, str) and obj.strip() and _names_a_file(obj)):
        crystals = _file_crystals(Path(obj))
    elif isinstance(obj, str) and obj.strip():
        crystals = _text_crystals(obj, source)  # CIF text may hold several data blocks
    elif isinstance(obj, dict):
        crystals = _dict_crystals(obj, source)  # an OPTIMADE response document holds one crystal per entry
    else:
        crystals = [(source, _to_structure(obj, source))]
    validated: list[tuple[str, Structure | ScopeError]] = []
    for name, result in crystals:
        if not isinstance(result, ScopeError):
            try:
                result = validate_structure(
                    result, name, overlap_tolerance=overlap_tolerance, disorder=disorder
                )
            except ScopeError as exc:
                result = exc
        validated.append((name, result))
    return validated
