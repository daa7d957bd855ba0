"""OPTIMADE structure entries -> pymatgen ``Structure``, refusing what SCOPE cannot describe with a typed error.

An OPTIMADE ``structures`` entry (the JSON:API resource ``{"id", "type", "attributes": {...}}`` that a provider
serves) describes a cell with ``lattice_vectors`` (Å, one row per vector), ``cartesian_site_positions`` (Å),
``species_at_sites`` (one species *name* per site) and ``species`` (what each name holds: ``chemical_symbols`` with
their ``concentration``). The spec also allows things a 3D ordered crystal has not, and each of those is a typed,
counted failure here, never a silent change:

| OPTIMADE feature | result |
|---|---|
| ``dimension_types`` not ``[1, 1, 1]`` (slabs, wires, molecules) | `NonPeriodicStructureError` |
| ``assemblies`` (alternative site groups) | `SiteAssembliesError` |
| a species with ``attached`` atoms | `AttachedAtomsError` |
| the unknown atom ``"X"`` | `UnknownSpeciesError` |
| a site that is only a ``"vacancy"`` | `VacancySiteError` |
| an element mixed with ``"vacancy"`` or with another element | a partially occupied site: the package's disorder policy (``validate_structure``) decides |
| missing or malformed fields | `StructureParseError` / `InvalidGeometryError` |
| ``structure_features`` holding ``"implicit_atoms"`` (atoms not assigned to sites) | `UnlocatedAtomsError` |
| ``nsites``, ``elements``, ``nelements``, ``chemical_formula_reduced`` or ``_hill`` that the sites contradict | `InconsistentFileError` (``file_claims``) |

A provider's response document (``{"data": entry or [entries], "meta": ..., "links": ...}``) gives one crystal per
entry (:func:`document_entries`); anything in it that is not a structures entry is refused, saying what it is.

The result is *not* validated: pass it to ``tokenization.structure_to_scope`` (or ``load_structure``), which applies
the package's one validation, so the disorder policy follows whatever ``tokenization`` decides.

Why not the ``optimade`` package's own ``get_pymatgen``: it builds a validated pydantic model first (slow at the
corpus scale), and it drops ``assemblies`` and ``attached`` atoms without a word, which would give wrong crystals.
For every ordered entry the two give the same structure (``tests/test_corpus_optimade.py`` checks it).

Example:
    >>> entry = {"id": "nacl", "type": "structures", "attributes": {
    ...     "lattice_vectors": [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]],
    ...     "cartesian_site_positions": [[0, 0, 0], [2.82, 2.82, 2.82]],
    ...     "species_at_sites": ["Na", "Cl"], "dimension_types": [1, 1, 1],
    ...     "species": [{"name": "Na", "chemical_symbols": ["Na"], "concentration": [1.0]},
    ...                 {"name": "Cl", "chemical_symbols": ["Cl"], "concentration": [1.0]}]}}
    >>> optimade_to_structure(entry, "example:nacl").composition.reduced_formula
    'NaCl'

Structure inputs of every path accept such an entry as a dict (or JSON text), so a table of OPTIMADE JSON reads
like any other structure column (``structure_io.load_structure``).

This module is remote code (copied flat into checkpoints): it imports only pymatgen and its siblings.
"""

from __future__ import annotations

from typing import Any

from .file_claims import FileClaims, Measured, attach_claims, parse_formula, shares_fill_site
from .scope_defaults import OCCUPANCY_TOLERANCE
from .scope_errors import (
    AttachedAtomsError,
    InvalidGeometryError,
    NonPeriodicStructureError,
    SiteAssembliesError,
    StructureParseError,
    UnknownSpeciesError,
    VacancySiteError,
)

#: OPTIMADE's symbols for "an unknown atom" and "an empty site".
UNKNOWN_SYMBOL = "X"
VACANCY_SYMBOL = "vacancy"

#: The fields the adapter reads: ask providers for these only (``response_fields``), which cuts the transfer.
RESPONSE_FIELDS = (
    "lattice_vectors",
    "cartesian_site_positions",
    "species",
    "species_at_sites",
    "dimension_types",
    "nperiodic_dimensions",
    "assemblies",
    "nsites",
    # What the entry says about itself, checked against the sites (file_claims).
    "nelements",
    "elements",
    "chemical_formula_reduced",
    "chemical_formula_hill",
    "structure_features",
)

__all__ = [
    "RESPONSE_FIELDS",
    "document_entries",
    "is_optimade_document",
    "optimade_to_structure",
]

#: Keys of a JSON:API response document beside ``data`` (a provider's ``/structures`` answer).
_DOCUMENT_KEYS = ("meta", "links", "jsonapi", "included", "errors")


def is_optimade_document(data: Any) -> bool:
    """Whether ``data`` is an OPTIMADE (JSON:API) response document, ``{"data": entry or [entries], "meta": ...}``,
    or an error document ``{"errors": [...]}``, rather than one entry."""
    if not isinstance(data, dict) or "attributes" in data or "lattice_vectors" in data:
        return False
    return isinstance(data.get("data"), (dict, list)) or ("errors" in data and "data" not in data)


def document_entries(document: dict, source: str) -> list[tuple[str, dict | StructureParseError]]:
    """The entries of an OPTIMADE response document, one ``(name, entry)`` each, in order.

    ``{"data": {...}}`` (``/structures/{id}``) gives one entry named ``source``; ``{"data": [...]}``
    (``/structures?filter=...``) gives one per entry, named ``f"{source}@{i}"`` (``i`` from 0), or ``source`` when
    there is one. An entry that is not a structure (another entry type, a malformed item) gives a
    ``StructureParseError`` that says what it is, in its place; an error document or an empty ``data`` gives one.
    """
    if "data" not in document:
        errors = document.get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        detail = first.get("detail") or first.get("title") or "no detail"
        return [
            (source, StructureParseError(f"an OPTIMADE error document, not a structure ({detail})", source))
        ]
    data = document["data"]
    items = [data] if isinstance(data, dict) else list(data)
    if not items:
        return [
            (source, StructureParseError("an OPTIMADE response document with no entries (data: [])", source))
        ]
    out: list[tuple[str, dict | StructureParseError]] = []
    for index, item in enumerate(items):
        name = source if len(items) == 1 else f"{source}@{index}"
        attributes = item.get("attributes") if isinstance(item, dict) else None
        if (
            isinstance(attributes, dict)
            and "lattice_vectors" in attributes
            and "species_at_sites" in attributes
        ):
            out.append((name, item))
            continue
        if isinstance(item, dict) and item.get("type") not in (None, "structures"):
            what = f"an OPTIMADE {item.get('type')!r} entry, not a structure"
        elif isinstance(item, dict):
            what = (
                "an OPTIMADE structures entry without lattice_vectors and species_at_sites (ask the provider for "
                f"response_fields={','.join(RESPONSE_FIELDS)})"
            )
        else:
            what = f"an OPTIMADE response item of type {type(item).__name__}, not a structure entry"
        out.append((name, StructureParseError(what, name)))
    return out


def _required(attributes: dict, name: str, source: str) -> Any:
    value = attributes.get(name)
    if value is None:
        raise StructureParseError(f"the OPTIMADE entry has no {name!r}", source)
    return value


def _check_periodicity(attributes: dict, source: str) -> None:
    dimension_types = attributes.get("dimension_types")
    if dimension_types is not None:
        if list(dimension_types) != [1, 1, 1]:
            raise NonPeriodicStructureError(
                f"dimension_types {list(dimension_types)}: periodic in {sum(bool(d) for d in dimension_types)} of "
                "3 directions; SCOPE describes 3D crystals",
                source,
            )
        return
    periodic = attributes.get("nperiodic_dimensions")
    if periodic is not None and periodic != 3:
        raise NonPeriodicStructureError(
            f"nperiodic_dimensions {periodic}: SCOPE describes 3D crystals", source
        )


def _site_species(attributes: dict, source: str) -> dict[str, str | dict[str, float]]:
    """Species name -> what pymatgen takes for a site: an element symbol, or ``{symbol: occupancy}``."""
    from pymatgen.core import Element

    species = attributes.get("species")
    if species is None:  # the spec: without `species`, the names in species_at_sites are chemical symbols
        species = [
            {"name": name, "chemical_symbols": [name], "concentration": [1.0]}
            for name in dict.fromkeys(_required(attributes, "species_at_sites", source))
        ]
    table: dict[str, str | dict[str, float]] = {}
    for item in species:
        if not isinstance(item, dict) or "name" not in item:
            raise StructureParseError(f"malformed species {item!r}", source)
        name = item["name"]
        if item.get("attached") or item.get("nattached"):
            raise AttachedAtomsError(
                f"species {name!r} has attached atoms {item.get('attached')} x {item.get('nattached')}, which "
                "are not listed as sites",
                source,
            )
        symbols = list(item.get("chemical_symbols") or [])
        concentration = list(item.get("concentration") or [])
        if not symbols or len(symbols) != len(concentration):
            raise StructureParseError(
                f"species {name!r}: {len(symbols)} chemical_symbols for {len(concentration)} concentrations",
                source,
            )
        if UNKNOWN_SYMBOL in symbols:
            raise UnknownSpeciesError(
                f"species {name!r} holds {UNKNOWN_SYMBOL!r}, OPTIMADE's unknown atom", source
            )
        unknown = [s for s in symbols if s != VACANCY_SYMBOL and not Element.is_valid_symbol(s)]
        if unknown:
            raise UnknownSpeciesError(f"species {name!r} holds {unknown}, not chemical elements H-Og", source)
        occupancy: dict[str, float] = {}
        for symbol, value in zip(symbols, concentration, strict=True):
            if symbol != VACANCY_SYMBOL:  # a symbol listed twice holds the sum of its shares
                occupancy[symbol] = occupancy.get(symbol, 0.0) + float(value)
        total = sum(occupancy.values())
        rounded_full = VACANCY_SYMBOL not in symbols and shares_fill_site(
            [Measured.of_float(value) for value in occupancy.values()]
        )
        if (1.0 < total <= 1.0 + OCCUPANCY_TOLERANCE) or (total != 1.0 and rounded_full):
            # Shares written with few decimals (6 x 0.1667, 3 x 0.33): scaled to a full site, as the CIF and ASE
            # readers do (file_claims.shares_fill_site); a share the entry gives to "vacancy" stays a vacancy.
            occupancy = {symbol: value / total for symbol, value in occupancy.items()}
        if not occupancy:
            raise VacancySiteError(f"species {name!r} is only a vacancy ({VACANCY_SYMBOL!r})", source)
        ((symbol, value),) = occupancy.items() if len(occupancy) == 1 else ((None, None),)
        # An ordered site is handed over as its symbol; anything else keeps its occupancies for the validation.
        table[name] = symbol if symbol is not None and value == 1.0 else occupancy
    return table


def optimade_to_structure(entry: dict, source: str | None = None):
    """One OPTIMADE ``structures`` entry as an unvalidated pymatgen ``Structure``.

    Args:
        entry (`dict`):
            The JSON:API resource (``{"id", "type", "attributes"}``) or its ``attributes`` alone.
        source (`str`, *optional*):
            The entry's name in errors (the corpus uses ``"<base url>:<id>"``); defaults to its ``id``.

    Returns:
        `pymatgen.core.Structure`: the cell in Å, sites in the entry's order; a partially occupied site keeps its
        occupancies (``validate_structure`` applies the disorder policy).

    Raises:
        NonPeriodicStructureError, SiteAssembliesError, AttachedAtomsError, UnknownSpeciesError, VacancySiteError,
        StructureParseError, InvalidGeometryError: see the table in the module docstring; each names ``source``.
    """
    from pymatgen.core import Lattice, Structure

    attributes = entry.get("attributes", entry) if isinstance(entry, dict) else None
    source = (
        source if source is not None else str(entry.get("id", "<OPTIMADE entry>") if attributes else entry)
    )
    if not isinstance(attributes, dict):
        raise StructureParseError(f"not an OPTIMADE structure entry ({type(entry).__name__})", source)
    _check_periodicity(attributes, source)
    assemblies = attributes.get("assemblies")
    if assemblies:
        raise SiteAssembliesError(
            f"{len(assemblies)} site assemblies (alternative groups of sites); SCOPE needs one ordered cell",
            source,
        )
    lattice = _required(attributes, "lattice_vectors", source)
    positions = _required(attributes, "cartesian_site_positions", source)
    names = _required(attributes, "species_at_sites", source)
    if len(lattice) != 3 or any(v is None or len(v) != 3 or None in v for v in lattice):
        raise InvalidGeometryError(f"lattice_vectors {lattice} is not three 3-vectors", source)
    if len(names) != len(positions):
        raise StructureParseError(
            f"{len(names)} species_at_sites for {len(positions)} cartesian_site_positions", source
        )
    table = _site_species(attributes, source)
    missing = sorted(set(names) - set(table))
    if missing:
        raise StructureParseError(f"species_at_sites names {missing} that `species` does not define", source)
    try:
        structure = Structure(
            Lattice(lattice), [table[name] for name in names], positions, coords_are_cartesian=True
        )
    except (ValueError, KeyError, TypeError) as error:
        raise StructureParseError(
            f"cannot build a structure ({type(error).__name__}: {error})", source
        ) from error
    return attach_claims(structure, _entry_claims(attributes))


def _entry_claims(attributes: dict) -> FileClaims:
    """What the entry says about itself (``nsites``, ``elements``, ``nelements``, its reduced or Hill formula,
    ``structure_features``), for ``file_claims`` to check against the sites."""
    formula_text = attributes.get("chemical_formula_reduced") or attributes.get("chemical_formula_hill")
    formula = parse_formula(formula_text)
    elements = attributes.get("elements")
    features = attributes.get("structure_features") or []

    def integer(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return FileClaims(
        "OPTIMADE",
        formula=formula[0] if formula else None,
        formula_text=formula_text if formula else None,
        formula_is_ratio=True,
        elements=tuple(elements)
        if isinstance(elements, list) and all(isinstance(e, str) for e in elements)
        else None,
        nelements=integer(attributes.get("nelements")),
        nsites=integer(attributes.get("nsites")),
        implicit_atoms=isinstance(features, list) and "implicit_atoms" in features,
    )
