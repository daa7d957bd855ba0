"""Typed errors raised on the path structure -> SCOPE -> token ids.

Every error names the offending input (``source``: a file path, an index, a material id, or a short
description of an in-memory object) and says why it was rejected. All inherit from :class:`ScopeError`,
which is a :class:`ValueError`, so ``except ValueError`` keeps working for callers that do not care.

This module is remote code: it is copied flat into saved checkpoints and must import nothing but the
standard library.
"""

from __future__ import annotations

import copy


class ScopeError(ValueError):
    """Base class: a structure could not be turned into a SCOPE string."""

    #: Machine-readable reason code (snake_case), the `reason` of every failure record; see the README's table.
    reason = "scope_error"

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}" if source else message)

    def with_source(self, source: str) -> ScopeError:
        """The same error (same class, message and attributes) naming ``source``; for errors raised before the
        input's name was worked out (naming a large in-memory structure costs a pass over its sites, so it is done
        only on failure)."""
        named = copy.copy(self)
        named.source = source
        named.args = (f"{source}: {self.message}" if source else self.message,)
        return named

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


class InconsistentFileError(StructureParseError):
    """The file does not describe one consistent crystal: what it says about itself (its formula and Z, a site's
    multiplicity or Wyckoff letter, the cell volume or density, OPTIMADE ``nsites`` or ``elements``, a POSCAR's
    counts line, an extxyz ``Lattice``) disagrees with the crystal built from its sites beyond a documented
    tolerance (``file_claims``). The message names what the file says and what was built."""

    reason = "inconsistent_file"


class UnlocatedAtomsError(InconsistentFileError):
    """The file declares atoms that no site places: H in the formula sum but on no site, an ICSD row flagged
    ``dum`` (an atom whose position was not determined), an OPTIMADE entry with ``implicit_atoms``. Encoding the
    sites alone would describe another crystal (the skeleton without those atoms)."""

    reason = "unlocated_atoms"


class ImplicitHydrogenGroupError(UnlocatedAtomsError, UnknownSpeciesError):
    """A site's type symbol is a group with implicit H (the Pauling File's ``'OH'``, ``'OH2'``, ``'NH3'``): the H
    are declared but placed nowhere, as for :class:`UnlocatedAtomsError`, and the symbol is no element, so it is
    also an :class:`UnknownSpeciesError`."""

    reason = "implicit_hydrogen"


class ResourceLimitError(ScopeError):
    """Encoding this item hit a resource limit (memory, or a size limit that names itself and its value).

    Only this item fails: a batch reports it and goes on. A ``MemoryError`` raised while encoding becomes one
    (:func:`typed_error`), naming the process's address-space limit when one is set.
    """

    reason = "resource_limit"


class InternalEncodingError(ScopeError):
    """An unexpected exception while encoding this item: a bug, not a property of the input. The message names the
    original exception class and message; the batch reports the item and goes on. Please report it with the input.
    """

    reason = "internal_error"


def _memory_limit() -> str:
    """The process's address-space limit (``RLIMIT_AS``) in words, or that none is set (standard library only)."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return "the memory available to the process"
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return "the memory available to the process (no address-space limit RLIMIT_AS is set)"
    return f"the address-space limit RLIMIT_AS = {soft} bytes ({soft / 2**30:.3g} GiB)"


def typed_error(error: Exception, source: str | None = None) -> ScopeError:
    """The typed error of an exception raised while encoding one item, so that a batch can report it and go on.

    A :class:`ScopeError` is returned as it is; a ``MemoryError`` becomes a :class:`ResourceLimitError` naming the
    memory limit; any other exception an :class:`InternalEncodingError` whose message names the original class and
    message. The caller raises the result ``from error`` (or records it).

    Example:

    ```python
    >>> typed_error(ZeroDivisionError("division by zero"), "frame.extxyz@3").to_dict()["message"]
    'unexpected ZeroDivisionError: division by zero'

    ```
    """
    if isinstance(error, ScopeError):
        return error
    if isinstance(error, MemoryError):
        detail = f" ({error})" if str(error) else ""
        return ResourceLimitError(f"ran out of memory{detail}; limit: {_memory_limit()}", source)
    return InternalEncodingError(f"unexpected {type(error).__name__}: {error}", source)


class WorkerDiedError(ScopeError):
    """The worker process handling this item died before it answered: a native library aborted (moyopy's Rust
    code aborts on a failed allocation; no ``except`` can catch that) or the process was killed. The item gets this
    error and the batch goes on in a fresh worker."""

    reason = "worker_died"


class TimeLimitError(ResourceLimitError, WorkerDiedError):
    """Encoding this item ran past a time limit (``cloud-crystal encode --item-timeout``): its worker process was
    killed, the item gets this error (naming the limit and its value) and the batch goes on in a fresh worker. A
    :class:`ResourceLimitError` with a code of its own, and a :class:`WorkerDiedError`, since the worker is replaced."""

    reason = "time_limit"
