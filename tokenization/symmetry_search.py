"""The one place where SCOPE encoders ask spglib for a space group (v1 and v2 both call :func:`search_symmetry`).

spglib sometimes returns no dataset for a valid cell when the angle tolerance is set explicitly. Its documentation
recommends the automatic angle tolerance (``angle_tolerance=-1``) in that case. So ``search_symmetry`` first
runs at the requested tolerances (SCOPE's defaults are ``symprec`` = 0.01 Å and ``angle_tolerance`` = 5°,
pymatgen's ``SpacegroupAnalyzer`` defaults). Only if that finds nothing does it run once more with
``angle_tolerance=-1``. Either the dataset comes back, or a :class:`SymmetrySearchError` names the input, every
tolerance tried and spglib's own message. The retry only acts where the first call failed, so strings that
encoded before are unchanged.

This module is remote code (copied flat into checkpoints): it imports only numpy, spglib and its sibling
``scope_errors``.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import spglib

from .scope_errors import SymmetrySearchError

__all__ = [
    "AUTOMATIC_ANGLE_TOLERANCE",
    "SymmetrySearch",
    "check_tolerances",
    "search_symmetry",
    "searched_tolerance",
]

#: spglib's own angle criterion (its default): any negative ``angle_tolerance`` selects it.
AUTOMATIC_ANGLE_TOLERANCE = -1.0


class SymmetrySearch(NamedTuple):
    """spglib's dataset and the angle tolerance (degrees, or -1 for spglib's automatic one) that produced it."""

    dataset: Any
    angle_tolerance: float


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


def search_symmetry(cell, symprec: float, angle_tolerance: float, source: str | None) -> SymmetrySearch:
    """spglib's symmetry dataset of ``cell``, retrying with spglib's automatic angle tolerance if needed.

    Args:
        cell: ``(lattice, fractional positions, integer types)`` as spglib takes it (lattice rows in Å).
        symprec: distance tolerance in Å (> 0).
        angle_tolerance: angle tolerance in degrees; a negative value is spglib's automatic criterion (no retry).
        source: name of the input for the error message (file name, row id, formula).

    Returns:
        ``SymmetrySearch(dataset, angle_tolerance)``: the dataset and the angle tolerance that found it.

    Raises:
        ValueError: ``symprec`` is not a positive number or ``angle_tolerance`` is not finite.
        SymmetrySearchError: no dataset at the requested tolerances nor with ``angle_tolerance=-1``; the message
            lists every tolerance tried and spglib's reason.
    """
    check_tolerances(symprec, angle_tolerance)
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
