"""The space group of a crystal at the symmetry-tolerance edge: detect, symmetrise, detect again until stable.

A crystal can lie within ``symprec`` of a group higher than the one spglib first finds. pymatgen's idealised
standard cells of it (``SpacegroupAnalyzer.get_conventional_standard_structure()``) are symmetrised to that first
group, and spglib can then see the higher one. :func:`canonical_symmetry` gives the crystal and its idealised cells
one answer, the group that is stable under symmetrisation:

0. a crystal whose atoms of the rarest type all have different surroundings (a perturbed frame) is first tested
   for any operation besides the identity (:func:`_certainly_p1`); where none can hold, it is P1 without a search;
1. detect the group G with a canonically chosen reference atom first (:func:`reference_first_order`);
2. a quick test (:func:`_may_gain_symmetry`) asks whether any larger group is within reach from any
   reference atom; if not (all but about 1 % of real crystals), G is the answer;
3. otherwise search from one atom of every orbit of the rarest types and keep the largest group (at most
   ``MAX_EDGE_REFERENCES`` orbits; a crystal with more keeps G);
4. symmetrise to it in its primitive cell without reference to the site order (:func:`symmetrise`): the metric
   tensor is averaged over the rotations of the group, and each atom over the images that the operations bring
   onto it;
5. search again from every orbit on the symmetrised cell, and repeat until the group no longer changes,
   symmetrising no longer moves anything, or after ``MAX_ROUNDS`` rounds.

The Wyckoff letters and orbits are those of the last search, reported for the input sites (symmetrising moves
atoms but keeps their identity). ``SCOPE_V2.md`` gives the measured effect on the 6,317 matminer structures.

Cost: memory ``O(n k)`` for ``n`` sites and ``k`` neighbours per site, time a bounded number of spglib searches
(:func:`canonical_symmetry` gives the details); the size benchmark is ``python -m benchmarks --only sizes``.

This module is remote code (copied flat into checkpoints): it imports only numpy, scipy, spglib, pymatgen and its
siblings ``symmetry_search`` and ``scope_errors``.
"""

from __future__ import annotations

import collections
import itertools
import math
import warnings
from collections.abc import Callable
from functools import cache

import numpy as np
import spglib
from pymatgen.optimization.neighbors import find_points_in_spheres
from scipy.spatial import cKDTree

from .scope_errors import SymmetrySearchError
from .symmetry_search import search_symmetry

__all__ = ["MAX_EDGE_REFERENCES", "MAX_ROUNDS", "canonical_symmetry", "reference_first_order", "symmetrise"]

#: Most symmetrise-and-search rounds. Each round that does not stop has found a group different from the one before.
MAX_ROUNDS = 3

#: Symmetrising that moves no atom and no cell length by more than this fraction of ``symprec`` leaves the crystal
#: as it was: detecting again would see the same cell, so the group is stable.
STILL_FRACTION = 1e-3

#: Images farther than this multiple of ``symprec`` from every atom of their type are not matched. spglib accepts an
#: operation when every image lies within ``symprec`` of an atom, measured from its reference atom; from any other
#: atom the same operation is within twice that.
MATCH_FRACTION = 4.0

#: Most reference atoms (orbits of the rarest types) from which the tolerance-edge search runs spglib, once each. A
#: crystal with more keeps the group of its first search: each reference costs one spglib search of the whole cell,
#: so without a bound a P1 frame of n atoms would pay n searches per round (O(n^3) time). The most among the 6,317
#: bundled crystals that the quick test flags is 9.
MAX_EDGE_REFERENCES = 16

#: The moyopy fast path keeps moyopy's group only when each of its operations holds within this fraction of the
#: tolerances (:func:`_within_margin`), meant to make spglib accept every one of them; mp-570321 shows that it
#: does not always (``benchmarks/RESULTS.md``, "moyopy as the v2 backend").
MARGIN_FRACTION = 0.5

#: Slack of the quick test for a larger group (:func:`_may_gain_symmetry`), as a multiple of ``symprec``. spglib
#: accepts an operation when every image lies within ``symprec`` of an atom measured from its reference atom;
#: measured from any other atom the same operation is within twice that.
SLACK = 2.5


#: Above this many ``radius``-sized cubes in the cell, :func:`periodic_neighbours` uses a k-d tree instead of
#: pymatgen's cell-list grid (whose memory grows with the cube count).
_MAX_GRID_CUBES = 1e6

#: Periodic along all three axes, as pymatgen's neighbour search takes it (read only).
_PERIODIC = np.ones(3, dtype=np.int64)
_PERIODIC.flags.writeable = False

#: The 27 cells around and including the home cell, as fractional offsets.
_NEIGHBOUR_CELLS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


def cell_inverse(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """``(inverse, determinant)`` of a 3x3 matrix, from its rows' cross products in plain floats.

    The same numbers as ``np.linalg.inv`` and ``np.linalg.det`` to rounding, without their per-call overhead (tens of
    microseconds, which is what a small cell's encoding time is made of). A singular matrix gives infinities.
    """
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = np.asarray(matrix, dtype=float).tolist()
    # Rows of the adjugate's transpose: b x c, c x a, a x b.
    bc = (b1 * c2 - b2 * c1, b2 * c0 - b0 * c2, b0 * c1 - b1 * c0)
    ca = (c1 * a2 - c2 * a1, c2 * a0 - c0 * a2, c0 * a1 - c1 * a0)
    ab = (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0)
    determinant = a0 * bc[0] + a1 * bc[1] + a2 * bc[2]
    scale = 1.0 / determinant if determinant else float("inf")
    inverse = np.array([bc, ca, ab], dtype=float).T * scale
    return inverse, determinant


def cell_thickness(inverse: np.ndarray) -> np.ndarray:
    """The cell's thickness along each basis direction (Å): the spacing of the lattice planes spanned by the other
    two vectors, 1 / |column i of the inverse| for lattice vectors as rows (``inverse`` from :func:`cell_inverse`)."""
    return 1.0 / np.sqrt((inverse * inverse).sum(axis=0))


def thinnest_layer(inverse: np.ndarray) -> float:
    """``cell_thickness(inverse).min()`` in plain floats (the same number: the same products, summed in the same
    order), for the callers that need only the thinnest direction."""
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = inverse.tolist()
    return min(
        1.0 / math.sqrt(a0 * a0 + b0 * b0 + c0 * c0),
        1.0 / math.sqrt(a1 * a1 + b1 * b1 + c1 * c1),
        1.0 / math.sqrt(a2 * a2 + b2 * b2 + c2 * c2),
    )


def periodic_neighbours(
    lattice: np.ndarray, frac: np.ndarray, centres: np.ndarray, radius: float, volume: float | None = None
):
    """``(centre index, point index, distance)`` for every atom (and every periodic image of it) within ``radius`` Å
    of each centre, a centre's own atom included at distance 0 when the centres are atoms.

    ``volume`` is the cell's signed or absolute volume (Å³) where the caller has it. Both sets are wrapped into the
    cell first. pymatgen's cell-list search (``find_points_in_spheres``) lays a grid of ``radius``-sized cubes over
    the cell: fast, but its memory grows with the cell volume over ``radius³`` (8.9 GB for the 0.5 Å overlap radius
    in a protein cell; the 0.04 Å match radius of symmetrising does the same in any cell of some hundred atoms).
    Above ``_MAX_GRID_CUBES`` cubes, in a cell at least ``radius`` thick, a k-d tree of the atoms' images in the 27
    cells around each centre's own finds the same pairs (every image within ``radius`` lies there): time
    ``O(n log n)``, memory ``O(n + pairs)`` whatever the volume.
    """
    lattice = np.ascontiguousarray(lattice, dtype=float)
    wrapped = frac % 1.0
    centres_cartesian = (centres % 1.0) @ lattice
    if volume is None:
        volume = cell_inverse(lattice)[1]
    sparse = abs(volume) / radius**3 > _MAX_GRID_CUBES
    if sparse and thinnest_layer(cell_inverse(lattice)[0]) >= radius:
        images = (wrapped[None, :, :] + _NEIGHBOUR_CELLS[:, None, :]).reshape(-1, 3) @ lattice  # (27 n, 3)
        found = cKDTree(centres_cartesian).sparse_distance_matrix(
            cKDTree(images), radius, output_type="coo_matrix"
        )
        return found.row.astype(np.int64), found.col.astype(np.int64) % len(frac), found.data
    centre, point, _, distance = find_points_in_spheres(
        np.ascontiguousarray(wrapped @ lattice, dtype=float),
        np.ascontiguousarray(centres_cartesian, dtype=float),
        float(radius),
        _PERIODIC,
        lattice,
        1e-8,
    )
    return centre, point, distance


def reference_first_order(lattice: np.ndarray, frac: np.ndarray, types: np.ndarray) -> np.ndarray:
    """The order in which to hand the sites to spglib: a canonically chosen reference atom first.

    spglib searches translations relative to the first atom of the least frequent type. For a crystal within about
    symprec of a higher symmetry, which atom that is can decide the space group (on the matminer set, 13 of 6,317
    structures change group under a random site permutation). Choosing it from the geometry instead of the input
    order makes the result a property of the crystal: among the atoms of the least frequent type (the lowest type
    number on a tie), take the one whose sorted distances to its neighbours are lexicographically smallest.

    Args:
        lattice: lattice vectors as rows (Å).
        frac: fractional coordinates, one row per site.
        types: positive integer type of each site (any labelling: atomic numbers, or ids of mixed sites).

    Returns:
        A permutation of ``range(n)``: the reference site first, the others in input order (it swaps two sites).
    """
    return _reference_first(lattice, frac, types)[0]


def _reference_first(lattice, frac, types, tolerance: float = 0.0) -> tuple[np.ndarray, bool]:
    """:func:`reference_first_order`'s permutation, and whether :func:`_certainly_p1` is worth trying: at most
    ``MAX_EDGE_REFERENCES`` candidate atoms (with more, the first search skips the quick test and costs less than
    it), whose sorted neighbour distances differ pairwise by more than ``tolerance`` (Å) somewhere, as in a
    perturbed frame (symmetry-related atoms have the same distances to within a few ``symprec``). Only a hint:
    the P1 test proves its own answer."""
    types = np.asarray(types, dtype=np.int64)
    candidates, keys = _by_neighbour_key(lattice, frac, _rarest_type_sites(types), with_keys=True)
    reference = candidates[0]
    order = np.arange(len(types))
    order[[0, reference]] = order[[reference, 0]]
    # Consecutive keys in sorted order differ somewhere by more than the tolerance.
    differ = (
        keys is not None
        and len(candidates) <= MAX_EDGE_REFERENCES
        and bool((np.abs(keys[1:] - keys[:-1]).max(axis=1) > tolerance).all())
    )
    return order, differ


#: :func:`_by_neighbour_key` sorts at most this many keys with Python's sort (fewer numpy calls), more with numpy's.
_PYTHON_SORT_ROWS = 16

#: Cells of at most this many sites take the plain-Python form of the small per-site steps (rarest type, orbit
#: labels), where numpy's per-call cost is the time.
_PYTHON_CELL_SITES = 64


def _by_neighbour_key(lattice: np.ndarray, frac: np.ndarray, candidates: np.ndarray, with_keys: bool = False):
    """``candidates`` (site indices) sorted by their sorted distances to their neighbours (ties: by index); with
    ``with_keys``, also those distances ``(m, k)`` in the same order (``None`` for fewer than two candidates or
    none with a neighbour)."""
    if len(candidates) < 2:
        return (candidates, None) if with_keys else candidates
    # Neighbours within about 2.5 mean atomic spacings (dozens of them), over all periodic images, so the key is
    # intrinsic to the crystal and does not depend on the cell the input happens to use.
    volume = abs(cell_inverse(lattice)[1])
    radius = max(3.0, 2.5 * (volume / len(frac)) ** (1 / 3))
    centre, _, distances = periodic_neighbours(lattice, frac, frac[candidates], radius, volume)
    keys = _sorted_distances(centre, distances, len(candidates))
    if keys is None:  # no neighbour within reach (a gas-like cell): nothing tells atoms apart
        return (candidates, None) if with_keys else candidates
    if len(candidates) <= _PYTHON_SORT_ROWS:  # a stable lexicographic sort of the rows, as np.lexsort below
        rows = keys.tolist()
        by_key = np.array(sorted(range(len(rows)), key=rows.__getitem__), dtype=np.int64)
    else:
        by_key = np.lexsort(keys.T[::-1])
    return (candidates[by_key], keys[by_key]) if with_keys else candidates[by_key]


#: :func:`_sorted_distances` sorts each centre's distances on its own for at most this many centres.
_ROWS_PER_CENTRE = 3


def _sorted_distances(centre: np.ndarray, distances: np.ndarray, n_centres: int) -> np.ndarray | None:
    """Each centre's distances to its neighbours (the atom itself, at 0, left out), sorted and cut to the number
    every centre has, rounded to 1e-6 Å so that floating-point noise (1e-14) cannot break ties between equivalent
    atoms: ``(n_centres, k)``, or ``None`` when some centre has no neighbour."""
    if n_centres <= _ROWS_PER_CENTRE:  # a few centres: one sort per centre costs fewer numpy calls
        rows = []
        for index in range(n_centres):
            row = np.sort(distances[centre == index])
            rows.append(row[np.searchsorted(row, 1e-6, side="right") :])  # without the atom itself
        n_common = min(len(row) for row in rows)
        return None if n_common == 0 else np.round(np.array([row[:n_common] for row in rows]), 6)
    keep = distances > 1e-6
    centre, distances = centre[keep], distances[keep]
    # Sort by (centre, distance); every centre then owns a contiguous run of increasing distances.
    by_centre = np.lexsort((distances, centre))
    centre, distances = centre[by_centre], distances[by_centre]
    neighbour_counts = np.bincount(centre, minlength=n_centres)
    n_common = int(neighbour_counts.min())
    if n_common == 0:
        return None
    starts = np.concatenate(([0], np.cumsum(neighbour_counts)[:-1]))
    return np.round(distances[starts[:, None] + np.arange(n_common)[None, :]], 6)


def _site_permutations(
    lattice: np.ndarray,
    frac: np.ndarray,
    types: np.ndarray,
    rotations: np.ndarray,
    translations: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """For each operation, the atom each image lands on and the fractional offset from it.

    Returns ``(target, delta)``: operation ``g`` sends atom ``i`` to ``x = target[g, i]`` plus ``delta[g, i]``
    (nearest periodic image), or ``None`` when some image has no atom of its type within ``radius`` Å or an
    operation does not permute the atoms (two images on one atom).
    """
    n_ops, n_sites = len(rotations), len(types)
    images = np.einsum("gij,nj->gni", rotations, frac) + translations[:, None, :]  # (n_ops, n_sites, 3)
    flat = images.reshape(-1, 3)
    centre, point, distance = periodic_neighbours(lattice, frac, flat, radius)
    same = types[point] == np.tile(types, n_ops)[centre]
    centre, point, distance = centre[same], point[same], distance[same]
    # The nearest atom of the right type for each image: sort by (image, distance), keep the first of each image.
    by_image = np.lexsort((distance, centre))
    centre, point = centre[by_image], point[by_image]
    first = np.ones(len(centre), dtype=bool)
    first[1:] = centre[1:] != centre[:-1]
    centre, point = centre[first], point[first]
    if len(centre) != len(flat):
        return None
    target = point.reshape(n_ops, n_sites)
    hit = np.zeros((n_ops, n_sites), dtype=bool)
    np.put_along_axis(hit, target, True, axis=1)
    if not hit.all():
        return None
    delta = images - frac[target]
    delta -= np.round(delta)
    return target, delta


def symmetrise(
    lattice: np.ndarray,
    frac: np.ndarray,
    types: np.ndarray,
    rotations: np.ndarray,
    translations: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The crystal made exactly invariant under the operations ``(rotations, translations)``, by averaging.

    The metric tensor ``G = L Lᵀ`` becomes the mean of ``Wᵀ G W`` over the rotations ``W``. Each atom moves to the
    mean of the images that the operations bring onto it (each unwrapped next to it). Both are averages over the
    group, so the result is invariant under every operation and depends on the set of operations, not on the order
    of the sites or of the operations.

    Args:
        lattice: lattice vectors as rows (Å).
        frac: fractional coordinates ``(n, 3)``.
        types: integer type of each site.
        rotations, translations: the operations in the same fractional basis (spglib's dataset).
        radius: largest distance (Å) between an image and the atom it is matched to.

    Returns:
        ``(lattice, frac, moved)``: the symmetrised lattice (rows, same handedness as the input), coordinates
        (``frac`` plus the mean offset, sites in input order) and the largest change in Å of an atom position or a
        cell length; ``None`` when the operations cannot be matched to a permutation of the atoms.
    """
    rotations = np.asarray(rotations, dtype=float)
    translations = np.asarray(translations, dtype=float)
    matched = _site_permutations(lattice, frac, types, rotations, translations, radius)
    if matched is None:
        return None
    target, delta = matched
    # Average, over the operations, the offset of the image that lands on each atom.
    offset = np.zeros_like(frac)
    for g in range(len(rotations)):
        offset[target[g]] += delta[g]
    offset /= len(rotations)
    metric = lattice @ lattice.T
    ideal_metric = np.einsum("gji,jk,gkl->il", rotations, metric, rotations) / len(rotations)
    ideal_metric = (ideal_metric + ideal_metric.T) / 2
    ideal_lattice = np.linalg.cholesky(ideal_metric)
    if np.linalg.det(lattice) < 0:
        ideal_lattice = ideal_lattice * np.array([1.0, 1.0, -1.0])  # same metric, the input's handedness
    lengths = np.sqrt(np.diag(metric))
    moved = max(
        float(np.linalg.norm(offset @ lattice, axis=1).max()),
        float(np.abs(ideal_metric - metric).max() / lengths.max()),
    )
    return ideal_lattice, frac + offset, moved


def _search_from(lattice, frac, types, reference, symprec, angle_tolerance, source):
    """spglib's dataset with site ``reference`` handed first, and that site order."""
    order = np.arange(len(types))
    order[[0, reference]] = order[[reference, 0]]
    found = search_symmetry((lattice, frac[order], types[order]), symprec, angle_tolerance, source)
    return found.dataset, order


def _per_site_orbits(dataset, order: np.ndarray) -> np.ndarray:
    """Orbit label of each input site: the lowest input index in its orbit (independent of the site order)."""
    if len(order) <= _PYTHON_CELL_SITES:
        listed, orbit_of_row = order.tolist(), np.asarray(dataset.crystallographic_orbits).tolist()
        orbit_of = [0] * len(listed)
        for row, site in enumerate(listed):
            orbit_of[site] = listed[orbit_of_row[row]]
        lowest: dict[int, int] = {}
        for site, orbit in enumerate(orbit_of):  # ascending sites: the first one seen is the lowest
            lowest.setdefault(orbit, site)
        return np.array([lowest[orbit] for orbit in orbit_of], dtype=np.int64)
    orbits = np.empty(len(order), dtype=np.int64)
    orbits[order] = order[np.asarray(dataset.crystallographic_orbits)]
    lowest = np.full(len(order), len(order), dtype=np.int64)
    np.minimum.at(lowest, orbits, np.arange(len(order)))
    return lowest[orbits]


def _reference_sites(lattice, frac, types, orbits) -> np.ndarray:
    """One site per orbit of the types tied for the fewest atoms, in neighbour-key order (:func:`_by_neighbour_key`).

    ``orbits`` is the current group's orbit label of each site. Time ``O(m k)`` for ``m`` atoms of those types and
    ``k`` neighbours each.
    """
    counts = np.bincount(types)[types]
    candidates = np.flatnonzero(counts == counts.min())
    candidates = _by_neighbour_key(lattice, frac, candidates)
    _, first = np.unique(orbits[candidates], return_index=True)  # the first candidate of each orbit, by key
    return candidates[np.sort(first)]


def _reference_count(types: np.ndarray, orbits: np.ndarray) -> int:
    """How many searches :func:`_best_over_references` would run: orbits among the types tied for the fewest atoms."""
    listed = types.tolist()
    per_type = collections.Counter(listed)
    fewest = min(per_type.values())
    return len(
        {orbit for orbit, kind in zip(orbits.tolist(), listed, strict=True) if per_type[kind] == fewest}
    )


def _best_over_references(lattice, frac, types, orbits, symprec, angle_tolerance, source):
    """The largest group spglib finds measured from any atom: one reference per orbit of the rarest types.

    spglib measures translations from one atom of the least frequent type; at the tolerance edge that atom decides
    the group. Trying one atom of every orbit (``orbits``: the current group's orbit label of each site) of every
    type tied for the fewest atoms makes the answer independent of that choice. Results rank by the order of
    the group, then the lower space-group number (:func:`_rank`); on a full tie the reference whose neighbour
    distances come first wins. Returns ``(dataset, order)``, or ``None`` when no search succeeds or there are more
    than ``MAX_EDGE_REFERENCES`` references (one spglib search each: the cost bound of this step).
    """
    if _reference_count(types, orbits) > MAX_EDGE_REFERENCES:
        return None
    best, best_rank = None, None
    for reference in _reference_sites(lattice, frac, types, orbits):
        try:
            dataset, order = _search_from(lattice, frac, types, reference, symprec, angle_tolerance, source)
        except SymmetrySearchError:
            continue
        rank = _rank(dataset, len(types))
        if best is None or rank < best_rank:
            best, best_rank = (dataset, order), rank
    return best


#: The 26 non-zero integer vectors with entries -1, 0, 1. In a Delaunay-reduced basis every lattice rotation maps
#: each basis vector onto one of these combinations of the basis.
_COMBINATIONS = np.array([v for v in itertools.product((-1, 0, 1), repeat=3) if any(v)], dtype=float)

#: ``_UNIMODULAR[a, b, c]``: whether the matrix with rows ``_COMBINATIONS[a], [b], [c]`` has determinant ±1 (its
#: triple product; the integer matrices that can be lattice rotations).
_UNIMODULAR = (
    np.abs(
        np.einsum(
            "ai,bj,ck,ijk->abc",
            _COMBINATIONS,
            _COMBINATIONS,
            _COMBINATIONS,
            np.array(
                [
                    [[float(np.linalg.det(np.eye(3)[[i, j, k]])) for k in range(3)] for j in range(3)]
                    for i in range(3)
                ]
            ),
        )
    )
    == 1
)


def _lattice_rotations(reduced: np.ndarray, length_tolerance: float, angle_tolerance: float) -> np.ndarray:
    """The rotations of a Delaunay-reduced lattice (rows) within tolerance, acting on its fractional columns.

    A superset of spglib's: lengths within ``length_tolerance`` and scalar products within the change that an angle
    of ``angle_tolerance`` degrees and those length changes allow. Where each basis vector's length is matched by
    no combination but itself and its opposite, the candidates are the 8 sign changes (:func:`_sign_rotations`, in
    plain floats). Otherwise the scalar products of all 26 combinations are computed once (a 26 x 26 table), and
    each candidate's image metric is read from it.
    """
    metric = reduced @ reduced.T
    g = metric.tolist()
    # The common case first, in plain floats (a small cell's time is numpy's per-call cost): each basis vector's
    # length matched by no combination but itself and its opposite (most triclinic and monoclinic cells). The
    # candidates are then the 8 sign changes of the axes (:func:`_sign_rotations`).
    combination_lengths = np.sqrt(((_COMBINATIONS @ metric) * _COMBINATIONS).sum(axis=1)).tolist()
    own_lengths = [math.sqrt(g[i][i]) for i in range(3)]
    if all(
        sum(abs(other - length) <= length_tolerance for other in combination_lengths) == 2
        for length in own_lengths
    ):
        scale = math.radians(angle_tolerance)
        allowed_entries = [
            [
                own_lengths[i] * own_lengths[j] * scale + length_tolerance * (own_lengths[i] + own_lengths[j])
                for j in range(3)
            ]
            for i in range(3)
        ]
        return _sign_rotations(g, allowed_entries)
    lengths = np.sqrt(np.diag(metric))
    products = _COMBINATIONS @ metric @ _COMBINATIONS.T  # (26, 26): scalar products of the combinations
    allowed = np.outer(lengths, lengths) * np.radians(angle_tolerance) + length_tolerance * (
        lengths[:, None] + lengths[None, :]
    )
    fits = np.abs(np.sqrt(np.diag(products))[None, :] - lengths[:, None]) <= length_tolerance  # (3, 26)
    first, second, third = (np.flatnonzero(row) for row in fits)
    index = np.empty((len(first), len(second), len(third), 3), dtype=np.int64)  # every (first, second, third)
    index[..., 0] = first[:, None, None]
    index[..., 1] = second[None, :, None]
    index[..., 2] = third[None, None, :]
    index = index.reshape(-1, 3)
    index = index[_UNIMODULAR[index[:, 0], index[:, 1], index[:, 2]]]
    image_metric = products[index[:, :, None], index[:, None, :]]  # (K, 3, 3)
    keep = np.all(np.abs(image_metric - metric) <= allowed, axis=(1, 2))
    # Row i of _COMBINATIONS[index] is the combination giving the image of basis vector i: a point x (fractional
    # row) goes to x @ M, so the matrix acting on fractional columns is Mᵀ.
    return np.transpose(_COMBINATIONS[index[keep]], (0, 2, 1))


#: The two rows of ``_COMBINATIONS`` holding ``e_i`` and ``-e_i``, in ascending order (``-e_i`` first).
_AXES = [
    sorted(
        int(np.flatnonzero(np.all(_COMBINATIONS - sign * np.eye(3)[i] == 0, axis=1))[0]) for sign in (1, -1)
    )
    for i in range(3)
]


#: The 8 sign changes ``diag(±1, ±1, ±1)`` in the order :func:`_lattice_rotations`' enumeration lists them (for each
#: axis the row of ``_COMBINATIONS`` with the lower index first), as sign triples and as matrices on fractional columns.
_SIGN_ROWS = np.array(list(itertools.product(*_AXES)), dtype=np.int64)
_SIGNS = [tuple(int(_COMBINATIONS[rows[i], i]) for i in range(3)) for rows in _SIGN_ROWS]
_SIGN_MATRICES = np.transpose(_COMBINATIONS[_SIGN_ROWS], (0, 2, 1))

#: The pairs of axes whose scalar product a sign change can flip, in the order of ``_SIGN_KEPT``'s keys.
_AXIS_PAIRS = ((0, 1), (0, 2), (1, 2))

#: For each answer ``(pair 01 may flip, 02 may flip, 12 may flip)``, the sign changes kept (``_SIGN_MATRICES`` rows
#: whose differing axes all may flip, in their order), read only: the 8 possible outcomes of :func:`_sign_rotations`.
_SIGN_KEPT = {
    flips: _SIGN_MATRICES[
        [
            index
            for index, sign in enumerate(_SIGNS)
            if all(sign[i] == sign[j] or flip for (i, j), flip in zip(_AXIS_PAIRS, flips, strict=True))
        ]
    ]
    for flips in itertools.product((False, True), repeat=3)
}
for _kept in _SIGN_KEPT.values():
    _kept.flags.writeable = False


def _sign_rotations(g: list[list[float]], limit: list[list[float]]) -> np.ndarray:
    """The rotations ``diag(±1, ±1, ±1)`` that :func:`_lattice_rotations` keeps when each basis vector fits only
    itself and its opposite, in the same order (a read-only array).

    The image metric of ``diag(s)`` is ``s_i s_j G_ij``: the diagonal is kept exactly, and an off-diagonal entry
    changes by ``2 |G_ij|`` where the signs of axes ``i`` and ``j`` differ (exact in floating point, as the table's
    entries are), so each pair of axes is tested once, in plain floats: ``g`` is the metric and ``limit`` the allowed
    change of each entry (the numbers numpy computes in :func:`_lattice_rotations`' general case)."""
    return _SIGN_KEPT[
        tuple(2 * abs(g[i][j]) <= limit[i][j] and 2 * abs(g[j][i]) <= limit[j][i] for i, j in _AXIS_PAIRS)
    ]


@cache
def _point_group_order(hall_number: int) -> int:
    """Order of the point group of a space-group setting (spglib's database)."""
    rotations = spglib.get_symmetry_from_database(hall_number)["rotations"]
    return len(np.unique(np.asarray(rotations), axis=0))


def _rank(dataset, n_sites: int) -> tuple[int, int]:
    """Sort key of a spglib result, larger groups first: operations per input cell, then the lower number.

    The operations are counted for the whole group (point-group order times the lattice translations in the input
    cell), not only those that keep the input cell: in a supercell, spglib lists only the latter.
    """
    n_primitive = int(np.max(dataset.mapping_to_primitive)) + 1
    size = _point_group_order(int(dataset.hall_number)) * n_sites // n_primitive
    return -size, int(dataset.number)


def _delaunay_reduced(lattice: np.ndarray) -> np.ndarray | None:
    """spglib's Delaunay-reduced basis of ``lattice`` (rows, Å), or ``None`` where the reduction fails."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        reduced = spglib.delaunay_reduce(lattice, eps=1e-5)
    return None if reduced is None else np.asarray(reduced, dtype=float)


def _rarest_type_sites(types: np.ndarray) -> np.ndarray:
    """Indices of the sites of the type with the fewest sites (the lowest type number on a tie)."""
    if len(types) <= _PYTHON_CELL_SITES:
        listed = types.tolist()
        per_type = collections.Counter(listed)
        fewest = min(per_type.values())
        kind = min(kind for kind, count in per_type.items() if count == fewest)
        return np.array([site for site, value in enumerate(listed) if value == kind], dtype=np.int64)
    per_type = np.bincount(types)
    return np.flatnonzero(types == np.flatnonzero(per_type == per_type[per_type > 0].min())[0])


def _may_gain_symmetry(lattice, frac, types, dataset, order, symprec, angle_tolerance) -> bool:
    """Whether some atom other than spglib's reference might show a larger group than ``dataset``'s (numpy only).

    A one-sided test in spglib's primitive cell. It tries every rotation of the lattice (found at ``2 symprec``)
    with every translation that takes one atom of the rarest type onto another, and counts the rotations that map
    all atoms onto atoms of their type within ``SLACK * symprec``. An operation spglib would accept measured from
    any atom passes this test (measured from another atom it is within ``2 symprec``). ``False`` means no reference
    can find a larger group: more rotations than the group has, or a pure translation, are needed for that.

    Cost, for ``n`` atoms in the primitive cell, ``m`` of them of the rarest type and ``K <= 48`` lattice rotations:
    memory ``O(K m + n)`` (the candidate operations, per-type k-d trees of the atoms and their 26 neighbouring
    images, and a fixed budget of ``_CHUNK_IMAGES`` images at a time); time ``O(K m log n)`` for a cell whose
    candidates fail on the first atoms they are tried on (every cell far from a larger group, MD frames included),
    at most ``O(K m n log n)``. See :func:`_passing_operations`.
    """
    if angle_tolerance < 0:
        return True
    primitive_lattice = np.asarray(dataset.primitive_lattice, dtype=float)
    reduced = _delaunay_reduced(primitive_lattice)
    if reduced is None:
        return True
    rotations = _lattice_rotations(reduced, 2 * symprec, angle_tolerance + 1.0)
    mapping = np.asarray(dataset.mapping_to_primitive)
    if mapping[-1] == len(mapping) - 1 and mapping.tolist() == list(range(len(mapping))):
        rows = order  # the cell searched is primitive
    else:
        _, first = np.unique(mapping, return_index=True)
        rows = order[first]  # one input site per primitive atom
    inverse, _ = cell_inverse(reduced)
    x = (frac[rows] @ lattice @ inverse) % 1.0
    t = types[rows]
    # The order of the whole point group (spglib's database for the Hall setting): in a supercell spglib lists only
    # the operations that keep the supercell, and counting those flagged every such cell as able to gain symmetry.
    point_group_order = _point_group_order(int(dataset.hall_number))
    rare = _rarest_type_sites(t)
    slack = SLACK * symprec
    # Cell thickness along each basis direction: an image within ``slack`` of an atom is then matched to it by
    # rounding fractional differences, the same distance the tolerance-edge search has always used.
    thinnest = thinnest_layer(inverse)
    if 2 * slack >= thinnest:
        return True  # a cell thinner than twice the slack (never seen): nothing can be ruled out
    if len(rotations) <= point_group_order:
        # Every lattice rotation is in the group already: only a pure translation could add operations.
        if len(rare) == 1 or not _translation_may_hold(reduced, x[rare], slack, thinnest):
            return False
        rotations = np.eye(3)[None]
    passed_k, passed_j = _passing_operations(reduced, x, t, rotations, rare, slack, point_group_order)
    if passed_k is None:
        return False
    identity = np.all(rotations == np.eye(3), axis=(1, 2))
    if np.any(identity[passed_k] & (passed_j > 0)):
        return True  # a pure translation: a smaller primitive cell is within reach
    return len(np.unique(passed_k)) > point_group_order


#: The P1 test (:func:`_certainly_p1`) runs on cells of at most this many atoms, and drops a candidate operation only
#: on the first ``_P1_TEST_DEPTH`` atoms it is tried on: a perturbed frame loses every candidate but the identity on
#: the first few atoms, while a symmetric crystal keeps its operations through all of them and goes on to spglib
#: after a bounded test (about 0.1 ms).
_P1_TEST_ATOMS = 64
_P1_TEST_DEPTH = 7


def _certainly_p1(lattice, frac, types, symprec, angle_tolerance) -> bool:
    """Whether spglib can only find P1 with no lattice translation inside the cell (numpy only; ``False`` when unsure).

    The quick test of :func:`_may_gain_symmetry` run on the input cell, as if a P1 search had found it primitive:
    every rotation of its lattice (at ``2 symprec``) with every translation taking one atom of the rarest type onto
    another, kept if it maps the atoms onto atoms of their type within ``SLACK * symprec``. Any operation that spglib
    would accept, measured from any reference atom, passes; when only the identity passes, every reference atom gives
    P1, each site its own orbit and Wyckoff position 1a. A crystal without symmetry (an MD frame, an amorphous or
    relaxed low-symmetry cell) then needs neither the spglib search nor the tolerance-edge test. Cells of more than
    ``_P1_TEST_ATOMS`` atoms, and every candidate still alive after ``_P1_TEST_DEPTH`` atoms, answer ``False``.
    """
    if angle_tolerance < 0 or len(types) > _P1_TEST_ATOMS:
        return False
    reduced = _delaunay_reduced(np.asarray(lattice, dtype=float))
    if reduced is None:
        return False
    inverse, _ = cell_inverse(reduced)
    slack = SLACK * symprec
    if 2 * slack >= thinnest_layer(inverse):
        return False
    rotations = _lattice_rotations(reduced, 2 * symprec, angle_tolerance + 1.0)
    x = (frac @ lattice @ inverse) % 1.0
    rare = _rarest_type_sites(types)
    passed_k, _ = _passing_operations(reduced, x, types, rotations, rare, slack, 1, max_atoms=_P1_TEST_DEPTH)
    return passed_k is None


#: :func:`_translation_may_hold` works in plain Python floats for at most this many atoms of the rarest type.
_PYTHON_TRANSLATION_ATOMS = 4

#: :func:`_translation_may_hold` runs for at most this many atoms of the rarest type (its memory is ``O(m^2)``).
_TRANSLATION_FILTER_ATOMS = 64


def _translation_may_hold(reduced: np.ndarray, rare_x: np.ndarray, slack: float, thickness: float) -> bool:
    """A necessary condition for some translation ``v = x_j - x_0`` between atoms of the rarest type (fractional
    rows ``rare_x``, reduced basis ``reduced``) to map every atom within ``slack`` Å of an atom of its type.

    Follow such a translation from atom to atom of that type: each step lands within ``slack`` of the next atom, and
    within ``m`` steps the walk returns to an atom it has visited. So ``d v`` lies within ``d slack`` of a lattice
    vector for some ``d`` in ``1..m``, which rounding the fractional coordinates finds while ``d slack`` is under
    half the thinnest cell ``thickness``. Memory ``O(m^2)``; ``True`` (cannot rule out) above
    ``_TRANSLATION_FILTER_ATOMS`` atoms.
    """
    m = len(rare_x)
    if m > _TRANSLATION_FILTER_ATOMS:
        return True
    if m * slack >= thickness / 2:
        return True
    if m <= _PYTHON_TRANSLATION_ATOMS:
        # the same test in plain floats: numpy's per-call cost is the time here
        basis = reduced.tolist()
        origin, *others = rare_x.tolist()
        for d in range(1, m + 1):
            reach = (d * slack * (1 + 1e-9)) ** 2
            for other in others:
                fraction = [d * (other[i] - origin[i]) for i in range(3)]
                fraction = [value - round(value) for value in fraction]
                offset = [sum(fraction[k] * basis[k][i] for k in range(3)) for i in range(3)]
                if offset[0] ** 2 + offset[1] ** 2 + offset[2] ** 2 <= reach:
                    return True
        return False
    steps = np.arange(1.0, m + 1.0)
    multiples = steps[:, None, None] * (rare_x[1:] - rare_x[0])[None, :, :]  # (d, j, 3)
    offsets = (multiples - np.round(multiples)) @ reduced
    reach = (steps * slack * (1 + 1e-9)) ** 2
    return bool(np.any(np.einsum("dji,dji->dj", offsets, offsets) <= reach[:, None]))


#: Most images (candidate operations times atoms) handled at once by :func:`_passing_operations`: about 1.6 MB per
#: coordinate array, whatever the size of the cell.
_CHUNK_IMAGES = 1 << 16

#: A type with at most this many atoms is matched by comparing each image with every atom of the type (minimum
#: image); a k-d tree is built only for more. Both give the same answer; the direct comparison costs fewer numpy
#: calls, which is what a small cell's time is made of.
_DIRECT_MATCH_ATOMS = 16

#: The identity matrix as one row of 9 numbers.
_IDENTITY_ROW = np.eye(3).reshape(9)


class _TypeMatcher:
    """Whether each image (fractional, reduced basis) lies within ``slack`` Å of an atom of a given type.

    Valid in a cell at least ``2 slack`` thick: the atom within ``slack`` of an image is then the one that rounding
    the fractional difference picks, which is what the direct comparison computes; a type of more than
    ``_DIRECT_MATCH_ATOMS`` atoms gets a k-d tree of its atoms and their images in the 26 neighbouring cells
    (built once, on first use).
    """

    def __init__(self, reduced: np.ndarray, x: np.ndarray, t: np.ndarray, slack: float):
        self.reduced, self.x, self.t, self.slack = reduced, x, t, slack
        self.trees: dict[int, cKDTree] = {}

    def hits(self, kind: int, images: np.ndarray) -> np.ndarray:
        """``(N,)`` bool for ``images`` ``(N, 3)`` wrapped into the cell."""
        members = self.x[self.t == kind]
        if len(members) <= _DIRECT_MATCH_ATOMS:
            difference = images[:, None, :] - members[None, :, :]
            difference -= np.round(difference)
            cartesian = difference @ self.reduced
            squared = np.einsum("nmi,nmi->nm", cartesian, cartesian)
            return squared.min(axis=1) <= (self.slack * (1 + 1e-9)) ** 2
        if kind not in self.trees:
            replicas = (members[None, :, :] + _NEIGHBOUR_CELLS[:, None, :]).reshape(-1, 3)
            self.trees[kind] = cKDTree(replicas @ self.reduced)
        distance, _ = self.trees[kind].query(
            images @ self.reduced, distance_upper_bound=self.slack * (1 + 1e-9)
        )
        return distance <= self.slack


def _only_group_operations(
    k_of: np.ndarray, j_of: np.ndarray, identity: np.ndarray, point_group_order: int
) -> bool:
    """Whether the surviving candidates ``(k_of, j_of)`` hold no pure translation and at most ``point_group_order``
    distinct rotations. ``k_of`` is sorted, so its distinct rotations are its runs; plain Python for the few
    survivors a batch usually leaves."""
    if len(k_of) <= 64:
        rotations = k_of.tolist()
        if any(identity[k] and j > 0 for k, j in zip(rotations, j_of.tolist(), strict=True)):
            return False
        return len(set(rotations)) <= point_group_order
    return (
        not np.any(identity[k_of] & (j_of > 0)) and 1 + np.count_nonzero(np.diff(k_of)) <= point_group_order
    )


def _passing_operations(reduced, x, t, rotations, rare, slack, point_group_order, max_atoms=None):
    """The candidate operations ``(rotation k, translation rare[0] -> rare[j])`` that map every atom within ``slack``
    (Å) of an atom of its type, as ``(k, j)`` arrays; ``(None, None)`` as soon as too few remain to matter. With
    ``max_atoms``, the candidates still alive after that many atoms (a superset of the answer).

    Candidates are tried against the atoms in batches (1, 2, 4, ... atoms, at most ``_CHUNK_IMAGES`` images at a
    time) and dropped at the first atom they miss, so memory never depends on ``m^2`` or ``m n``. The nearest atom
    of each image is found by :class:`_TypeMatcher` (a direct comparison with the few atoms of a type, or a k-d tree
    of its atoms and their images in the 26 neighbouring cells); in a cell at least ``2 slack`` thick, an atom
    within ``slack`` of an image lies among those, and it is the one that rounding fractional differences picks.
    The search stops early (returning ``None``) once the candidates still alive hold no pure translation and at
    most ``point_group_order`` distinct rotations: the test can then only answer ``False``.
    """
    matcher = _TypeMatcher(reduced, x, t, slack)
    k_of, j_of = np.divmod(np.arange(len(rotations) * len(rare)), len(rare))  # k ascending, then j
    shifts = x[rare][None, :, :] - (rotations @ x[rare[0]])[:, None, :]  # (K, m, 3)
    identity = (rotations.reshape(-1, 9) == _IDENTITY_ROW).all(axis=1)
    # rare[0] lands exactly on rare[j] under every candidate: the other atoms decide, the rarest type first.
    rest = np.ones(len(t), dtype=bool)
    rest[rare] = False
    others = np.concatenate([rare[1:], np.flatnonzero(rest)])
    if max_atoms is not None:
        others = others[:max_atoms]
    start, batch = 0, 1
    while start < len(others):
        atoms = others[start : start + batch]
        start += len(atoms)
        batch *= 2
        kinds = t[atoms]
        rotated = np.einsum("kij,aj->kai", rotations, x[atoms])  # (K, atoms, 3): each rotation once
        keep = np.zeros(len(k_of), dtype=bool)
        per_chunk = max(1, _CHUNK_IMAGES // len(atoms))
        for begin in range(0, len(k_of), per_chunk):
            part = slice(begin, begin + per_chunk)
            images = (
                rotated[k_of[part]] + shifts[k_of[part], j_of[part]][:, None, :]
            ) % 1.0  # (chunk, atoms, 3)
            if len(atoms) == 1 or np.all(kinds == kinds[0]):
                hit = matcher.hits(int(kinds[0]), images.reshape(-1, 3)).reshape(images.shape[:2])
            else:
                hit = np.ones(images.shape[:2], dtype=bool)
                for kind in np.unique(kinds):
                    column = kinds == kind
                    hit[:, column] = matcher.hits(int(kind), images[:, column].reshape(-1, 3)).reshape(
                        -1, int(column.sum())
                    )
            keep[part] = hit.all(axis=1)
        k_of, j_of = k_of[keep], j_of[keep]
        if _only_group_operations(k_of, j_of, identity, point_group_order):
            return None, None
    return k_of, j_of


def canonical_symmetry(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    types: np.ndarray,
    symprec: float,
    angle_tolerance: float,
    source: str | None,
    check_first: Callable[[int, np.ndarray], None] | None = None,
    backend: str = "spglib",
) -> tuple[int, list[str], np.ndarray]:
    """Space group, Wyckoff letters and orbits of a crystal, stable under symmetrisation to the group found.

    Cost for ``n`` sites: one spglib search and a neighbour list (``O(n k)`` for ``k`` neighbours within about 2.5
    mean atomic spacings), then the quick test of :func:`_may_gain_symmetry` (memory ``O(n)``). Only a crystal that
    test flags (about 1 % of real crystals) pays for the tolerance-edge search: one spglib search per orbit of its
    rarest types, at most ``MAX_EDGE_REFERENCES``, per round, and at most ``MAX_ROUNDS`` rounds in the primitive
    cell of the group found, where symmetrising needs ``O(g p)`` memory for ``g`` operations and ``p`` atoms. No step
    holds more than ``O(n k)`` numbers besides spglib's own ``O(n)``.

    Args:
        lattice: lattice vectors as rows (Å), ``(3, 3)``.
        frac_coords: fractional coordinates, ``(n, 3)``.
        types: positive integer type of each site, ``(n,)`` (atomic numbers, or any other labelling).
        symprec: spglib distance tolerance (Å).
        angle_tolerance: spglib angle tolerance (degrees; negative for spglib's automatic one).
        source: name of the input for error messages.
        check_first: called as ``check_first(number, orbits)`` with the space-group number and the per-site orbit
            labels of the first search, before any tolerance-edge step; it may raise (the v2 encoder refuses a
            string that is too long there, since idealisation costs more than the first search).
        backend: symmetry finder of the first search (``symmetry_search.SYMMETRY_BACKENDS``). moyopy's answer is
            kept only when spglib must agree with it: no larger group within reach (step 2) and every operation
            it reports holds with a margin (:func:`_within_margin`). Otherwise spglib searches again, so the rare
            path below runs on spglib's datasets alone.

    Returns:
        ``(number, wyckoffs, orbits)`` for the input sites in input order: the space-group number, the Wyckoff
        letter of each site, and for each site the lowest input index of its orbit.

    Raises:
        SymmetrySearchError: spglib finds no space group (see ``symmetry_search.search_symmetry``).
        ValueError: ``symprec`` is not a positive number or ``angle_tolerance`` is not finite.
    """
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac_coords, dtype=float)
    types = np.asarray(types, dtype=np.int64)
    order, environments_differ = _reference_first(lattice, frac, types, symprec)
    if environments_differ and _certainly_p1(lattice, frac, types, symprec, angle_tolerance):
        orbits = np.arange(len(types))
        if check_first is not None:
            check_first(1, orbits)
        return 1, ["a"] * len(types), orbits
    found = search_symmetry((lattice, frac[order], types[order]), symprec, angle_tolerance, source, backend)
    dataset, angle = found.dataset, found.angle_tolerance
    atom_of_site = np.arange(len(types))  # input site -> atom of the cell searched last
    if found.backend != "spglib" and (
        _may_gain_symmetry(lattice, frac, types, dataset, order, symprec, angle)
        or not _within_margin(lattice, frac[order], types[order], dataset, symprec, angle)
    ):
        found = search_symmetry((lattice, frac[order], types[order]), symprec, angle_tolerance, source)
        dataset, angle = found.dataset, found.angle_tolerance
    first_orbits = _per_site_orbits(dataset, order)
    if check_first is not None:
        check_first(int(dataset.number), first_orbits)
    if _reference_count(types, first_orbits) > MAX_EDGE_REFERENCES or not _may_gain_symmetry(
        lattice, frac, types, dataset, order, symprec, angle
    ):
        wyckoffs = [""] * len(order)
        for letter, atom in zip(dataset.wyckoffs, order.tolist(), strict=True):
            wyckoffs[atom] = letter
        return int(dataset.number), wyckoffs, first_orbits
    dataset, order = _best_over_references(lattice, frac, types, first_orbits, symprec, angle, source) or (
        dataset,
        order,
    )
    for _ in range(MAX_ROUNDS):
        # Symmetrise in the primitive cell of the group found, with all its operations: in a supercell spglib
        # lists only the operations that keep the supercell.
        primitive = _primitive_cell(lattice, frac, types, dataset, order)
        if primitive is None:
            break
        cell, atom_of_atom, rotations, translations = primitive
        symmetrised = symmetrise(*cell, rotations, translations, MATCH_FRACTION * symprec)
        if symmetrised is None:
            break
        new_lattice, new_frac, moved = symmetrised
        if moved <= STILL_FRACTION * symprec:
            break
        orbits = _per_site_orbits(dataset, order)
        primitive_orbits = np.empty(len(cell[2]), dtype=np.int64)
        primitive_orbits[atom_of_atom] = orbits
        best = _best_over_references(new_lattice, new_frac, cell[2], primitive_orbits, symprec, angle, source)
        if best is None:
            break
        stable = _group_key(best[0]) == _group_key(dataset)
        lattice, frac, types = new_lattice, new_frac, cell[2]
        atom_of_site = atom_of_atom[atom_of_site]
        dataset, order = best
        if stable:
            break
    # Back to the input sites: row k of the dataset is atom order[k] of the cell searched last.
    atom_letters = [""] * len(order)
    for k, atom in enumerate(order.tolist()):
        atom_letters[atom] = dataset.wyckoffs[k]
    wyckoffs = [atom_letters[atom] for atom in atom_of_site.tolist()]
    orbits = _per_site_orbits(dataset, order)[atom_of_site]
    lowest = np.full(len(orbits), len(orbits), dtype=np.int64)
    np.minimum.at(lowest, orbits, np.arange(len(orbits)))
    return int(dataset.number), wyckoffs, lowest[orbits]


def _within_margin(lattice, frac, types, dataset, symprec: float, angle_tolerance: float) -> bool:
    """Whether every operation of ``dataset`` holds within ``MARGIN_FRACTION`` of the tolerances (numpy only).

    The check of the moyopy fast path. spglib accepts an operation when, with the translation that takes its
    reference atom onto an atom, every image lies within ``symprec`` of an atom of its type and the lattice is kept
    within the tolerances. If some translation brings every image within ``MARGIN_FRACTION * symprec`` (one half),
    the translation measured from spglib's reference atom is off by at most that much more: spglib accepts the
    operation too, so its group contains the one checked. With :func:`_may_gain_symmetry` false (no larger group
    within reach) the two groups are then the same. Measured, the argument fails once in 7,003 crystals: for
    mp-570321 moyopy's C2/m operations pass this check and spglib still finds only P-1 (its search is not the
    per-operation test assumed here), which is why moyopy is not the v2 backend. Cost: one neighbour search over
    ``operations x sites`` images.

    Args:
        lattice: lattice vectors as rows (Å); frac, types: the sites in the order the dataset was found for.
        dataset: a dataset with ``rotations`` and ``translations`` in that basis (spglib's or ``MoyoDatasetView``).
        symprec, angle_tolerance: the tolerances of the search (Å, degrees); a negative angle is never verified.
    """
    if angle_tolerance < 0:
        return False
    rotations = np.asarray(dataset.rotations, dtype=float)
    translations = np.asarray(dataset.translations, dtype=float)
    metric = lattice @ lattice.T
    lengths = np.sqrt(np.diag(metric))
    length_tolerance = MARGIN_FRACTION * symprec
    allowed = np.outer(lengths, lengths) * np.radians(
        MARGIN_FRACTION * angle_tolerance
    ) + length_tolerance * (lengths[:, None] + lengths[None, :])
    images = np.einsum("gji,jk,gkl->gil", rotations, metric, rotations)
    if np.any(np.abs(images - metric) > allowed):
        return False
    return _site_permutations(lattice, frac, types, rotations, translations, length_tolerance) is not None


def _group_key(dataset) -> tuple[int, int, int]:
    """The space group, its point-group order and the atoms in its primitive cell: comparable across cells."""
    n_primitive = int(np.max(dataset.mapping_to_primitive)) + 1
    return int(dataset.number), _point_group_order(int(dataset.hall_number)), n_primitive


def _primitive_cell(lattice, frac, types, dataset, order):
    """The primitive cell of the group found, every operation of the group in its basis, and each atom's image.

    Returns ``((lattice, frac, types), atom_of_atom, rotations, translations)``: rows of the primitive lattice,
    fractional positions (the mean over the atoms that a lattice translation of the group relates), types,
    the primitive atom of each atom of the cell searched, and the operations of the group (spglib's database for
    its Hall setting, carried over by spglib's transformation). ``None`` if they do not fit (never seen).
    """
    primitive_lattice = np.asarray(dataset.primitive_lattice, dtype=float)
    atom_of_atom = np.empty(len(order), dtype=np.int64)
    atom_of_atom[order] = np.asarray(dataset.mapping_to_primitive)
    n_primitive = int(atom_of_atom.max()) + 1
    # Input fractional columns x go to primitive ones Q x (same Cartesian point).
    to_primitive = np.linalg.inv(primitive_lattice.T) @ lattice.T
    x = frac @ to_primitive.T
    first = np.full(n_primitive, len(order), dtype=np.int64)
    np.minimum.at(first, atom_of_atom, np.arange(len(order)))
    offset = x - x[first[atom_of_atom]]
    shift = np.round(offset)
    if np.abs(offset - shift).max() > 0.25:
        return None
    mean = np.zeros((n_primitive, 3))
    np.add.at(mean, atom_of_atom, offset - shift)
    counts = np.bincount(atom_of_atom, minlength=n_primitive)[:, None]
    primitive_frac = (x[first] + mean / counts) % 1.0
    primitive_types = types[first]
    # The group's operations in the standard setting, then in the input basis (x_s = P x + p), then primitive.
    database = spglib.get_symmetry_from_database(int(dataset.hall_number))
    p_matrix = np.asarray(dataset.transformation_matrix, dtype=float)
    p_shift = np.asarray(dataset.origin_shift, dtype=float)
    p_inverse = np.linalg.inv(p_matrix)
    standard_rotations = np.asarray(database["rotations"], dtype=float)
    standard_translations = np.asarray(database["translations"], dtype=float)
    conjugate = to_primitive @ p_inverse
    rotations = conjugate @ standard_rotations @ np.linalg.inv(conjugate)
    translations = (
        (standard_rotations @ p_shift + standard_translations - p_shift) @ p_inverse.T @ to_primitive.T
    )
    if np.abs(rotations - np.round(rotations)).max() > 1e-4:
        return None
    rotations = np.round(rotations)
    # Centring translations become lattice translations of the primitive cell: keep one copy of each operation.
    key = np.concatenate([rotations.reshape(-1, 9), np.round(translations % 1.0, 6) % 1.0], axis=1)
    _, unique = np.unique(key, axis=0, return_index=True)
    cell = (primitive_lattice, primitive_frac, primitive_types)
    return cell, atom_of_atom, rotations[unique], translations[unique]
