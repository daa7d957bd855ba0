"""Typed errors raised on the path structure -> SCOPE -> token ids.

Every error names the offending input (``source``: a file path, an index, a material id, or a short
description of an in-memory object) and says why it was rejected. All inherit from :class:`ScopeError`,
which is a :class:`ValueError`, so ``except ValueError`` keeps working for callers that do not care.

This module is remote code: it is copied flat into saved checkpoints and must import nothing but the
standard library.
"""

from __future__ import annotations


class ScopeError(ValueError):
    """Base class: a structure could not be turned into a SCOPE string."""

    #: Machine-readable reason code (snake_case), the `reason` of every failure record; see the README's table.
    reason = "scope_error"

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}" if source else message)

    def to_dict(self, source: str | None = None) -> dict[str, str | None]:
        """The failure record used in every output (CLI rows, pipeline results, dataset reports).

        Args:
            source (`str`, *optional*):
                Name of the failed item to record instead of the error's own `source` (e.g. a CLI row's file).

        Returns:
            `dict`: `{"source", "reason", "type", "message"}`: the input's name, the machine code `reason` (for example
            `"disordered_structure"`), the error class name and the message without the source prefix.

        Example:

        ```python
        >>> DisorderedStructureError("site 0 holds Fe0.5 Co0.5", "alloy.cif").to_dict()
        {'source': 'alloy.cif', 'reason': 'disordered_structure', 'type': 'DisorderedStructureError', 'message': 'site 0 holds Fe0.5 Co0.5'}

        ```
        """
        return {
            "source": source if source is not None else self.source,
            "reason": self.reason,
            "type": type(self).__name__,
            "message": self.message,
        }


class StructureParseError(ScopeError):
    """The input is not a readable structure (missing or unreadable file, garbage text, unknown format)."""

    reason = "parse_error"


class EmptyStructureError(ScopeError):
    """The structure has no sites."""

    reason = "empty_structure"


class DisorderedStructureError(ScopeError):
    """A site has partial occupancy or mixed species.

    Policy: SCOPE describes ordered crystals; we refuse disorder instead of guessing an ordering.
    Order the structure first (e.g. pymatgen ``OrderDisorderedStructureTransformation``).
    """

    reason = "disordered_structure"


class UnknownSpeciesError(ScopeError):
    """A site holds something that is not a chemical element H-Og (a dummy species, a vacancy, ...)."""

    reason = "unknown_species"


class OverlappingSitesError(ScopeError):
    """Two sites are closer than the overlap tolerance (a duplicated atom or a broken file)."""

    reason = "overlapping_sites"


class InvalidGeometryError(ScopeError):
    """The lattice or coordinates are non-finite, or the lattice is degenerate (zero or tiny volume)."""

    reason = "invalid_geometry"


class SymmetrySearchError(ScopeError):
    """The symmetry library found no space group for the structure at the given tolerance."""

    reason = "symmetry_not_found"


class ScopeTooLongError(ScopeError):
    """The encoded string has more tokens than the configured maximum."""

    reason = "too_long"


class UnsupportedScopeVersionError(ScopeError):
    """An unknown SCOPE version was requested."""

    reason = "unsupported_version"


class NonPeriodicStructureError(ScopeError):
    """The input is not periodic in all three directions (a molecule, a slab, ASE ``pbc`` not all True).

    SCOPE describes 3D crystals; a molecule put in a box is still a molecule.
    """

    reason = "non_periodic"


class SiteAssembliesError(ScopeError):
    """An OPTIMADE entry lists ``assemblies``: alternative groups of sites with probabilities (a disordered or
    partially occupied structure written as overlapping site groups). SCOPE needs one ordered cell, and picking a
    group would invent an ordering."""

    reason = "site_assemblies"


class AttachedAtomsError(ScopeError):
    """An OPTIMADE species carries ``attached`` atoms (e.g. the hydrogens of a methyl group given with one site):
    the sites do not list every atom, so the composition and the Wyckoff positions would be wrong."""

    reason = "attached_atoms"


class VacancySiteError(UnknownSpeciesError):
    """A site holds only a vacancy (OPTIMADE ``"vacancy"`` with concentration 1): an empty site, not an atom.

    A site that mixes an element with a vacancy is a partial occupancy and follows the disorder policy instead.
    """

    reason = "vacancy_site"


class WorkerDiedError(ScopeError):
    """The worker process handling this item died before it answered: a native library aborted (moyopy's Rust
    code aborts on a failed allocation; no ``except`` can catch that) or the process was killed. The item gets this
    error and the batch goes on in a fresh worker."""

    reason = "worker_died"
