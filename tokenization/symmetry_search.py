"""The one place where SCOPE encoders ask spglib for a space group (v1 and v2 both call :func:`search_symmetry`).

spglib sometimes returns no dataset for a valid cell when the angle tolerance is set explicitly. Its documentation
recommends the automatic angle tolerance (``angle_tolerance=-1``) in that case. So ``search_symmetry`` first
runs at the requested tolerances (SCOPE's defaults are ``symprec`` = 0.01 Å and ``angle_tolerance`` = 5°,
pymatgen's ``SpacegroupAnalyzer`` defaults). Only if that finds nothing does it run once more with
``angle_tolerance=-1``. Either the dataset comes back, or a :class:`SymmetrySearchError` names the input, every
tolerance tried and spglib's own message. The retry only acts where the first call failed, so strings that
encoded before are unchanged.

``backend="moyopy"`` asks moyopy (a Rust re-implementation of spglib, ``pip install "moyopy>=0.17"``) first and
falls back to spglib wherever moyopy fails or would change the tolerances (:func:`moyopy_search`). moyopy aborts the
whole process on some inputs (a failed allocation of 1.8 GB for mp-1411 at an angle tolerance of 5°), which no
``except`` can catch: call it only in a worker process whose death the caller turns into an error row
(``tokenization.isolated_worker``). Measured over the 6,317 bundled crystals and every fixture
(``benchmarks/report_moyopy.py``; ``benchmarks/RESULTS.md``, "moyopy as the v2 backend"), the moyopy path is not
string-identical and gains only 1.7x on the v2 encoder, so spglib stays the backend of v1 and v2; the switch
remains to re-run that measurement.

This module is remote code (copied flat into checkpoints): it imports only numpy, spglib and its sibling
``scope_errors`` (moyopy only when asked for, inside :func:`moyopy_search`).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import spglib

from .scope_errors import SymmetrySearchError

__all__ = [
    "AUTOMATIC_ANGLE_TOLERANCE",
    "SYMMETRY_BACKENDS",
    "MoyoDatasetView",
    "SymmetrySearch",
    "check_tolerances",
    "moyopy_search",
    "search_symmetry",
    "searched_tolerance",
]

#: spglib's own angle criterion (its default): any negative ``angle_tolerance`` selects it.
AUTOMATIC_ANGLE_TOLERANCE = -1.0

#: The symmetry finders :func:`search_symmetry` can ask first; spglib is the reference and the fallback.
SYMMETRY_BACKENDS = ("spglib", "moyopy")


class SymmetrySearch(NamedTuple):
    """The dataset, the angle tolerance (degrees, or -1 for spglib's automatic one) that produced it, and the
    backend that found it (``"spglib"`` or ``"moyopy"``)."""

    dataset: Any
    angle_tolerance: float
    backend: str = "spglib"


class MoyoDatasetView(NamedTuple):
    """The fields of a ``moyopy.MoyoDataset`` under spglib's names, for the input cell as handed over.

    Only the fields that mean the same in both are carried: the space-group number and Hall number (both use
    spglib's 530 Hall settings), the Wyckoff letter and crystallographic orbit of each input site, the operations in
    the input basis, the primitive standardized lattice (rows, Å) and each input site's atom in it.
    """

    number: int
    hall_number: int
    wyckoffs: list
    crystallographic_orbits: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    primitive_lattice: np.ndarray
    mapping_to_primitive: np.ndarray


def check_tolerances(symprec: float, angle_tolerance: float) -> None:
    """Raise ``ValueError`` unless ``symprec`` is a positive number (Å) and ``angle_tolerance`` (°) is finite.

    spglib crashes the interpreter (segfault) on a negative ``symprec``, so this runs before every call.
    """
    if not (np.isfinite(symprec) and symprec > 0) or not np.isfinite(angle_tolerance):
        raise ValueError(
            "symprec must be a positive number of Å and angle_tolerance finite, "
            f"got symprec={symprec!r}, angle_tolerance={angle_tolerance!r}"
        )


def _dataset_or_message(cell, symprec: float, angle_tolerance: float) -> tuple[Any, str]:
    """One spglib call: ``(dataset, "")`` or ``(None, spglib's reason)``."""
    with warnings.catch_warnings():
        # spglib 2.7+ warns on every call while its legacy error handling is on; failures are handled here.
        warnings.filterwarnings("ignore", message="Set OLD_ERROR_HANDLING", category=DeprecationWarning)
        try:
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec, angle_tolerance=angle_tolerance)
        except (spglib.SpglibError, ValueError, RuntimeError) as exc:
            return None, str(exc)
        if dataset is None:
            return None, spglib.get_error_message() or "no dataset"
    return dataset, ""


def moyopy_search(cell, symprec: float, angle_tolerance: float) -> MoyoDatasetView | None:
    """moyopy's dataset of ``cell`` at exactly these tolerances, or ``None`` where spglib must answer instead.

    ``angle_tolerance`` is in degrees as for spglib (moyopy takes radians; a negative value is moyopy's own
    criterion, like spglib's ``-1``) and moyopy is asked for spglib's settings (``Setting.spglib()``, the smallest Hall
    number). moyopy widens ``symprec`` by itself when its first search is inconsistent; such a result is not the
    one spglib would give at the requested tolerance, so it returns ``None``, as it does when moyopy raises.

    Warning: moyopy can abort the process (see the module docstring); run it in a worker process.

    Raises:
        ImportError: moyopy is not installed, or older than 0.17 (angle tolerance in degrees before that).
    """
    import moyopy

    if tuple(int(part) for part in moyopy.__version__.split(".")[:2]) < (0, 17):
        raise ImportError(f"the moyopy symmetry backend needs moyopy >= 0.17, found {moyopy.__version__}")
    lattice, positions, types = cell
    angle = float(np.radians(angle_tolerance)) if angle_tolerance >= 0 else None
    try:
        moyo_cell = moyopy.Cell(
            np.asarray(lattice, dtype=float).tolist(),
            np.asarray(positions, dtype=float).tolist(),
            np.asarray(types, dtype=np.int64).tolist(),
        )
        found = moyopy.MoyoDataset(
            moyo_cell, symprec=symprec, angle_tolerance=angle, setting=moyopy.Setting.spglib()
        )
    except (ValueError, RuntimeError, OverflowError):  # moyopy's symmetry-search failure
        return None
    if found.symprec != symprec or (angle is not None and found.angle_tolerance != angle):
        return None
    return MoyoDatasetView(
        number=int(found.number),
        hall_number=int(found.hall_number),
        wyckoffs=list(found.wyckoffs),
        crystallographic_orbits=np.asarray(found.orbits, dtype=np.int64),
        rotations=np.asarray(found.operations.rotations, dtype=np.int64),
        translations=np.asarray(found.operations.translations, dtype=float),
        primitive_lattice=np.asarray(found.prim_std_cell.basis, dtype=float),
        mapping_to_primitive=np.asarray(found.mapping_std_prim, dtype=np.int64),
    )


def search_symmetry(
    cell, symprec: float, angle_tolerance: float, source: str | None, backend: str = "spglib"
) -> SymmetrySearch:
    """spglib's symmetry dataset of ``cell``, retrying with spglib's automatic angle tolerance if needed.

    Args:
        cell: ``(lattice, fractional positions, integer types)`` as spglib takes it (lattice rows in Å).
        symprec: distance tolerance in Å (> 0).
        angle_tolerance: angle tolerance in degrees; a negative value is spglib's automatic criterion (no retry).
        source: name of the input for the error message (file name, row id, formula).
        backend: ``"spglib"``, or ``"moyopy"`` to ask moyopy first (:func:`moyopy_search`; a
            :class:`MoyoDatasetView` comes back) and spglib where moyopy gives no answer at these tolerances.

    Returns:
        ``SymmetrySearch(dataset, angle_tolerance, backend)``: the dataset, the angle tolerance that found it and
        the backend that answered.

    Raises:
        ValueError: ``symprec`` is not a positive number, ``angle_tolerance`` is not finite, or ``backend`` is
            unknown.
        SymmetrySearchError: no dataset at the requested tolerances nor with ``angle_tolerance=-1``; the message
            lists every tolerance tried and spglib's reason.
    """
    check_tolerances(symprec, angle_tolerance)
    if backend not in SYMMETRY_BACKENDS:
        raise ValueError(f"backend must be one of {SYMMETRY_BACKENDS}, got {backend!r}")
    if backend == "moyopy":
        view = moyopy_search(cell, symprec, angle_tolerance)
        if view is not None:
            return SymmetrySearch(view, angle_tolerance, "moyopy")
    tried = [angle_tolerance]
    if angle_tolerance >= 0:
        tried.append(AUTOMATIC_ANGLE_TOLERANCE)
    reasons = []
    for angle in tried:
        dataset, reason = _dataset_or_message(cell, symprec, angle)
        if dataset is not None:
            return SymmetrySearch(dataset, angle)
        reasons.append(f"angle_tolerance={_describe_angle(angle)}: {reason}")
    raise SymmetrySearchError(
        f"spglib found no space group at symprec={symprec} Å (tried " + "; ".join(reasons) + ")", source
    )


def _describe_angle(angle_tolerance: float) -> str:
    if angle_tolerance < 0:
        return f"{angle_tolerance:g} (spglib's automatic criterion)"
    return f"{angle_tolerance:g}°"


def searched_tolerance(structure, symprec: float) -> float:
    """``symprec``, or the structure's coordinate uncertainty (Å) when the file wrote its coordinates too coarsely
    for it (``structure.properties["coordinate_uncertainty"]``, set by the CIF reader): symmetry finer than the
    data cannot be told from noise, and a smaller tolerance reports a superstructure of the written crystal."""
    properties = getattr(structure, "properties", None) or {}
    uncertainty = properties.get("coordinate_uncertainty")
    return max(symprec, float(uncertainty)) if uncertainty else symprec
