"""Generate ``scope_v2_tables.py``: the data that SCOPE v2 needs at run time.

Run from the repository root (needs pyxtal, pymatgen, numpy; none of them is needed by the encoder itself)::

    python -m tokenization.build_scope_v2_tables            # writes tokenization/scope_v2_tables.py
    python -m tokenization.build_scope_v2_tables --check    # regenerates in memory, fails if the file differs
    python -m tokenization.build_scope_v2_tables --synthetic-fixture  # writes tests/fixtures/scope_v2/...

This script is a developer tool. It is NOT remote code: ``scope_v2.py`` never imports it.

What it computes, per space-group type (ITA standard setting, the one spglib reports Wyckoff letters in):

* the Wyckoff letters ``a, b, ..., z, A`` and their multiplicities (conventional cell), read from pyxtal's
  Wyckoff tables and checked against the multiplicity table of the authors' v1 code;
* the group of Wyckoff-letter permutations induced by the **affine normalizer** of the space group. Two
  standard-setting descriptions of one crystal differ by an element of the affine normalizer (an origin shift, an
  axis permutation, a change of cell choice, ...), and such an element maps every Wyckoff position onto a Wyckoff
  position. So the letters that spglib reports for a crystal are fixed only up to this permutation group, and the
  v2 encoder removes the ambiguity by taking the lexicographically smallest labelling over it.

The normalizer is found by brute force, independently of any published table: every integer matrix ``P`` with
entries in {-1, 0, 1} and determinant +-1 that maps the centred lattice and the point group onto themselves, with
every translation ``p`` on a 1/24 grid, is tested against all coset representatives of the group. Their action on
generic points of each Wyckoff position gives the letter permutations, closed under composition. These matrices
generate GL(3, Z), so the closure is the full action (for triclinic and monoclinic groups the affine normalizer is
infinite, but its action on the letters is finite). As an independent check, every permutation listed by pyxtal's
``Group.get_alternatives()`` (the Bilbao Crystallographic Server's Wyckoff-set tables, which give the Euclidean
normalizer) must lie in the computed group; for tetragonal, trigonal, hexagonal and cubic groups, where the affine
and Euclidean normalizers act alike on the letters, the two groups must be equal.

The element order (electronegativity, then atomic number) is also frozen here so that canonical strings do not move
when a pymatgen release revises an electronegativity value.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
import spglib

TABLES_PATH = Path(__file__).with_name("scope_v2_tables.py")
SYNTHETIC_PATH = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "scope_v2"
    / "synthetic_space_groups.jsonl.gz"
)
LETTER_ALPHABET = "abcdefghijklmnopqrstuvwxyzA"
TRANSLATION_GRID = 24  # 1/24 contains the 1/2, 1/3, 1/4, 1/6 and 1/8 steps that normalizers use
TOL = 1e-6


def _frac_dist(x: np.ndarray) -> np.ndarray:
    """Distance of each component to the nearest integer."""
    return np.abs(x - np.round(x))


class SpaceGroupTables:
    """Symmetry operations and Wyckoff positions of one space-group type, in pyxtal's ITA standard setting."""

    def __init__(self, number: int):
        from pyxtal.symmetry import Group

        self.number = number
        self.group = Group(number)
        affine = np.array([op.affine_matrix for op in self.group[0].ops])
        self.rotations = np.rint(affine[:, :3, :3]).astype(int)
        self.translations = affine[:, :3, 3] % 1.0
        identity = np.all(self.rotations == np.eye(3, dtype=int), axis=(1, 2))
        self.centering = self.translations[identity]
        # Linear part (as bytes) -> all translations (mod 1) that go with it, centring included.
        self.translations_by_rotation: dict[bytes, np.ndarray] = {}
        for rotation, translation in zip(self.rotations, self.translations, strict=True):
            key = rotation.tobytes()
            prev = self.translations_by_rotation.get(key)
            self.translations_by_rotation[key] = (
                translation[None] if prev is None else np.vstack([prev, translation])
            )
        self.point_group = np.array(
            [np.frombuffer(k, dtype=int).reshape(3, 3) for k in self.translations_by_rotation]
        )
        self.coset_translations = np.array([v[0] for v in self.translations_by_rotation.values()])
        wyckoffs = sorted(self.group, key=lambda wp: LETTER_ALPHABET.index(wp.letter))
        self.letters = "".join(wp.letter for wp in wyckoffs)
        if self.letters != LETTER_ALPHABET[: len(self.letters)]:
            raise RuntimeError(f"space group {number}: unexpected Wyckoff letters {self.letters!r}")
        self.multiplicities = tuple(int(wp.multiplicity) for wp in wyckoffs)
        self.wyckoff_linear = [np.array(wp.ops[0].affine_matrix)[:3, :3] for wp in wyckoffs]
        self.wyckoff_offset = [np.array(wp.ops[0].affine_matrix)[:3, 3] % 1.0 for wp in wyckoffs]
        # Projector onto the directions a point of the position may NOT move along.
        self.wyckoff_fixed_projector = [np.eye(3) - m @ np.linalg.pinv(m) for m in self.wyckoff_linear]
        rng = np.random.default_rng(number)
        # Generic point of each position: free parameters drawn away from special values.
        self.generic_points = [
            m @ rng.uniform(0.05, 0.45, size=3) + t
            for m, t in zip(self.wyckoff_linear, self.wyckoff_offset, strict=True)
        ]
        self._shifts = np.array(list(itertools.product(range(-3, 4), repeat=3)), dtype=float)

    def letter_of_point(self, point: np.ndarray, multiplicity: int) -> int:
        """Index of the Wyckoff position that a generic point lies on (exactly one must match)."""
        orbit = (np.einsum("nij,j->ni", self.rotations, point) + self.translations) % 1.0
        matches = []
        for index, (mult, proj, offset) in enumerate(
            zip(self.multiplicities, self.wyckoff_fixed_projector, self.wyckoff_offset, strict=True)
        ):
            if mult != multiplicity:
                continue
            if np.abs(proj - np.eye(3)).max() < TOL:  # a fixed point: compare modulo lattice translations
                hit = (_frac_dist(orbit - offset).max(axis=-1) < TOL).any()
            else:
                diff = orbit[:, None, :] - offset[None, None, :] - self._shifts[None, :, :]
                hit = np.abs(diff @ proj.T).max(axis=-1).min() < TOL
            if hit:
                matches.append(index)
        if len(matches) != 1:
            raise RuntimeError(f"space group {self.number}: point {point} matches positions {matches}")
        return matches[0]

    def letter_permutation(self, matrix: np.ndarray, shift: np.ndarray) -> tuple[int, ...]:
        """Permutation of letter indices induced by the affine map x -> matrix @ x + shift."""
        return tuple(
            self.letter_of_point(matrix @ point + shift, mult)
            for point, mult in zip(self.generic_points, self.multiplicities, strict=True)
        )

    def normalizing_shifts(self, matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Rows of ``grid`` (shifts p) such that (matrix, p) maps the space group onto itself."""
        inverse = np.rint(np.linalg.inv(matrix)).astype(int)
        valid = np.ones(len(grid), dtype=bool)
        for rotation, translation in zip(self.point_group, self.coset_translations, strict=True):
            conjugate = inverse @ rotation @ matrix
            allowed = self.translations_by_rotation[conjugate.tobytes()]
            image = ((grid @ (rotation - np.eye(3)).T) + translation) @ inverse.T
            ok = np.zeros(len(grid), dtype=bool)
            for t in allowed:
                ok |= _frac_dist(image - t).max(axis=1) < TOL
            valid &= ok
            if not valid.any():
                break
        return grid[valid]

    def normalizing_matrices(self, unimodular: np.ndarray) -> np.ndarray:
        """The matrices among ``unimodular`` that map the centred lattice and the point group onto themselves."""
        inverses = np.rint(np.linalg.inv(unimodular)).astype(int)
        keep = np.ones(len(unimodular), dtype=bool)
        for c in self.centering:
            image = inverses @ c
            keep &= (_frac_dist(image[:, None, :] - self.centering[None]).max(axis=-1) < TOL).any(axis=1)
        conjugates = np.einsum("uij,rjk,ukl->uril", inverses, self.point_group, unimodular)
        # Point-group matrices have entries in -2..2 (hexagonal bases included): encode each as one integer.
        weights = 5 ** np.arange(9)
        codes = ((conjugates.reshape(len(unimodular), -1, 9) + 2) * weights).sum(axis=-1)
        group_codes = ((self.point_group.reshape(-1, 9) + 2) * weights).sum(axis=-1)
        keep &= np.isin(codes, group_codes).all(axis=1)
        return unimodular[keep]


def _unimodular_matrices() -> np.ndarray:
    """All 3x3 integer matrices with entries in {-1, 0, 1} and determinant +-1 (they generate GL(3, Z))."""
    matrices = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=int).reshape(-1, 3, 3)
    return matrices[np.abs(np.rint(np.linalg.det(matrices))) == 1]


def _close_group(generators: set[tuple[int, ...]], size: int) -> set[tuple[int, ...]]:
    identity = tuple(range(size))
    group = {identity}
    frontier = [identity]
    while frontier:
        new = []
        for element in frontier:
            for gen in generators:
                product = tuple(gen[i] for i in element)
                if product not in group:
                    group.add(product)
                    new.append(product)
        frontier = new
    return group


def _translation_generators(shifts: np.ndarray) -> list[np.ndarray]:
    """A small generating set of a finite group of translations given by all its elements (mod 1)."""
    as_int = {tuple(int(v) for v in np.rint(s * TRANSLATION_GRID)) for s in shifts}
    span = {(0, 0, 0)}
    gens = []
    for cand in sorted(as_int):
        if cand in span:
            continue
        gens.append(np.array(cand, dtype=float) / TRANSLATION_GRID)
        frontier = list(span)
        while frontier:
            new = []
            for s in frontier:
                t = tuple((a + b) % TRANSLATION_GRID for a, b in zip(s, cand, strict=True))
                if t not in span:
                    span.add(t)
                    new.append(t)
            frontier = new
    return gens


def affine_normalizer_relabelings(tables: SpaceGroupTables, unimodular: np.ndarray) -> list[str]:
    """All Wyckoff relabelings (as image strings of 'abc...') induced by the affine normalizer, identity first."""
    axis = np.arange(TRANSLATION_GRID) / TRANSLATION_GRID
    grid = np.array(list(itertools.product(axis, axis, axis)))
    generators: set[tuple[int, ...]] = set()
    identity = np.eye(3, dtype=int)
    for shift in _translation_generators(tables.normalizing_shifts(identity, grid)):
        generators.add(tables.letter_permutation(identity, shift))
    for matrix in tables.normalizing_matrices(unimodular):
        # Most normalizer elements need no shift: try p = 0 before the full grid.
        shifts = tables.normalizing_shifts(matrix, np.zeros((1, 3)))
        if not len(shifts):
            shifts = tables.normalizing_shifts(matrix, grid)
        if len(shifts):
            generators.add(tables.letter_permutation(matrix, shifts[0]))
    n = len(tables.letters)
    group = _close_group(generators, n)
    for perm in group:
        if any(tables.multiplicities[perm[i]] != tables.multiplicities[i] for i in range(n)):
            raise RuntimeError(f"space group {tables.number}: relabeling {perm} changes a multiplicity")
    identity_perm = tuple(range(n))
    ordered = [identity_perm] + sorted(p for p in group if p != identity_perm)
    return ["".join(tables.letters[i] for i in perm) for perm in ordered]


def _pyxtal_relabelings(tables: SpaceGroupTables) -> set[str]:
    alternatives = tables.group.get_alternatives()
    out = set()
    for row in alternatives["Transformed WP"]:
        letters = row.split()
        # pyxtal lists letters from 'a' upwards; 'A' stands for alpha in Pmmm.
        out.add("".join(letters))
    return out


def element_order() -> tuple[str, ...]:
    """Symbols H..Og sorted by Pauling electronegativity (pymatgen), then Z; elements without a value last."""
    from pymatgen.core import Element

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elements = [Element.from_Z(z) for z in range(1, 119)]
        keys = [(0 if e.X == e.X else 1, e.X if e.X == e.X else 0.0, e.Z) for e in elements]
    return tuple(e.symbol for _, e in sorted(zip(keys, elements, strict=True), key=lambda kv: kv[0]))


def build() -> str:
    from tokenization.scope_tables import WYCKOFF_MULTIPLICITIES as V1_MULTIPLICITIES

    unimodular = _unimodular_matrices()
    letters: dict[int, str] = {}
    multiplicities: dict[int, tuple[int, ...]] = {}
    relabelings: dict[int, list[str]] = {}
    for number in range(1, 231):
        tables = SpaceGroupTables(number)
        v1 = V1_MULTIPLICITIES[number]
        if {k: v for k, v in zip(tables.letters, tables.multiplicities, strict=True)} != v1:
            raise RuntimeError(f"space group {number}: pyxtal multiplicities differ from the v1 table")
        group = affine_normalizer_relabelings(tables, unimodular)
        pyxtal = _pyxtal_relabelings(tables)
        if not pyxtal <= set(group):
            raise RuntimeError(
                f"space group {number}: pyxtal relabelings {pyxtal - set(group)} not in the normalizer"
            )
        if number >= 75 and pyxtal != set(group):
            raise RuntimeError(f"space group {number}: normalizer {len(group)} != pyxtal {len(pyxtal)}")
        letters[number] = tables.letters
        multiplicities[number] = tables.multiplicities
        relabelings[number] = group
        print(
            f"{number:3d} {tables.group.symbol:12s} letters={len(tables.letters):2d} "
            f"relabelings={len(group):4d} pyxtal={len(pyxtal)}",
            file=sys.stderr,
        )
    return ruff_formatted(render(letters, multiplicities, relabelings, element_order()))


def ruff_formatted(text: str) -> str:
    """The module text as ``ruff format`` (the repository's formatter) writes it, so ``--check`` compares like with like."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        raise RuntimeError("ruff is needed to format the generated tables (pip install ruff)")
    return subprocess.run(
        [ruff, "format", "--stdin-filename", str(TABLES_PATH), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=TABLES_PATH.parents[1],
    ).stdout


def render(letters, multiplicities, relabelings, elements) -> str:
    lines = [
        '"""Tables for SCOPE v2 (generated by ``build_scope_v2_tables.py``; do not edit by hand).',
        "",
        "Space groups are in the ITA standard setting that spglib reports Wyckoff letters in. Letters are",
        "``a..z`` then ``A`` (alpha, only in Pmmm). A relabeling is written as the images of ``WYCKOFF_LETTERS[n]``:",
        "``'badc'`` maps a->b, b->a, c->d, d->c. Relabelings form the group induced by the affine normalizer,",
        "identity first. Multiplicities are for the conventional cell (International Tables).",
        "",
        "This module is remote code: pure data, no imports.",
        '"""',
        "",
        "# Space-group number -> its Wyckoff letters, from the highest site symmetry ('a') down to the general position.",
        "WYCKOFF_LETTERS: dict[int, str] = {",
    ]
    lines += [f"    {n}: {letters[n]!r}," for n in range(1, 231)]
    lines += [
        "}",
        "",
        "# Space-group number -> multiplicity of each letter, in the order of WYCKOFF_LETTERS.",
        "WYCKOFF_MULTIPLICITIES: dict[int, tuple[int, ...]] = {",
    ]
    lines += [f"    {n}: {multiplicities[n]!r}," for n in range(1, 231)]
    lines += [
        "}",
        "",
        "# Space-group number -> Wyckoff relabelings of the affine normalizer (identity first).",
        "WYCKOFF_RELABELINGS: dict[int, tuple[str, ...]] = {",
    ]
    for n in range(1, 231):
        group = relabelings[n]
        if len(group) == 1:
            lines.append(f"    {n}: ({group[0]!r},),")
            continue
        lines.append(f"    {n}: (")
        per_line = max(1, 96 // (len(group[0]) + 4))
        for i in range(0, len(group), per_line):
            lines.append("        " + " ".join(f"{g!r}," for g in group[i : i + per_line]))
        lines.append("    ),")
    lines += [
        "}",
        "",
        "# The 118 elements in SCOPE v2 order: Pauling electronegativity (pymatgen 2026.10), then atomic",
        "# number; elements without a tabulated value (He, Ne, Ar, Rf-Og) come last, by atomic number.",
        "ELEMENT_ORDER: tuple[str, ...] = (",
    ]
    for i in range(0, len(elements), 16):
        lines.append("    " + " ".join(f'"{e}",' for e in elements[i : i + 16]))
    lines += [")", ""]
    return "\n".join(lines)


# --- synthetic test crystals, one per space group ---------------------------------------------------------------
_SYNTHETIC_ELEMENTS = ("Li", "O", "Fe", "Si", "Na", "Cl", "Mg", "S")


def _synthetic_lattice(tables: SpaceGroupTables, rng: np.random.Generator) -> list[float]:
    a, b, c = rng.uniform(4.0, 7.0, 3)
    alpha, beta, gamma = rng.uniform(70.0, 110.0, 3)
    system = tables.group.lattice_type
    if system == "triclinic":
        return [a, b, c, alpha, beta, gamma]
    if system == "monoclinic":
        return [a, b, c, 90.0, beta, 90.0]
    if system == "orthorhombic":
        return [a, b, c, 90.0, 90.0, 90.0]
    if system == "tetragonal":
        return [a, a, c, 90.0, 90.0, 90.0]
    if system in ("hexagonal", "trigonal"):
        return [a, a, c, 90.0, 90.0, 120.0]
    return [a, a, a, 90.0, 90.0, 90.0]


def synthetic_crystal(number: int, rng: np.random.Generator, attempts: int = 200) -> dict:
    """A crystal of space group ``number`` with known Wyckoff occupation, checked with spglib.

    It occupies up to three special positions (one element each), one more special position with a free
    parameter, and the general position three times (two orbits of one element, so that a letter holds two
    orbits). The expected v2 string is computed from the letters that were *placed*, not from spglib, so a test
    comparing it with ``encode_v2`` checks spglib's letters against these tables for every space group.
    """
    from pymatgen.core import Lattice, Structure

    from tokenization.scope_v2 import _relabeling_array, _scope_from_symmetry

    tables = SpaceGroupTables(number)
    database = spglib.get_symmetry_from_database(tables.group.hall_number)
    wyckoffs = sorted(tables.group, key=lambda wp: LETTER_ALPHABET.index(wp.letter))
    general, specials = wyckoffs[-1], wyckoffs[:-1]
    for _ in range(attempts):
        chosen = (
            [specials[i] for i in rng.permutation(len(specials))[: rng.integers(1, 4)]] if specials else []
        )
        free = [wp for wp in specials if wp.get_dof() > 0]
        if free:
            chosen.append(free[rng.integers(len(free))])
        chosen += [general, general, general]
        orbits = []
        for i, wp in enumerate(chosen):
            element = _SYNTHETIC_ELEMENTS[(i if i < len(chosen) - 1 else i - 1) % len(_SYNTHETIC_ELEMENTS)]
            representative = np.round(
                np.array(wp.ops[0].affine_matrix)[:3] @ np.append(rng.uniform(0, 1, 3), 1), 6
            )
            orbits.append({"element": element, "letter": wp.letter, "xyz": (representative % 1.0).tolist()})
        record = {"number": number, "hall_number": int(tables.group.hall_number), "orbits": orbits}
        record["lattice_parameters"] = _synthetic_lattice(tables, rng)
        species, coords, orbit_ids, letters = expand_synthetic(record, database)
        lattice = Lattice.from_parameters(*record["lattice_parameters"])
        structure = Structure(lattice, species, coords)
        scale = (12.0 * len(structure) / lattice.volume) ** (1 / 3)
        record["lattice_parameters"] = [round(x * scale, 4) for x in record["lattice_parameters"][:3]] + [
            round(x, 3) for x in record["lattice_parameters"][3:]
        ]
        structure = Structure(Lattice.from_parameters(*record["lattice_parameters"]), species, coords)
        if len(structure) > 1 and structure.distance_matrix[np.triu_indices(len(structure), 1)].min() < 0.7:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset(
                (structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers), symprec=0.01
            )
        if (
            dataset is None
            or dataset.number != number
            or len(set(dataset.crystallographic_orbits)) != len(orbits)
        ):
            continue
        numbers = np.array(structure.atomic_numbers)
        record["expected_v2"] = _scope_from_symmetry(
            number, letters, np.array(orbit_ids), numbers, _relabeling_array(number)
        )
        return record
    raise RuntimeError(f"no synthetic crystal found for space group {number}")


def expand_synthetic(
    record: dict, database: dict
) -> tuple[list[str], list[list[float]], list[int], list[str]]:
    """Sites of a synthetic record: each orbit representative under all operations of its Hall setting."""
    species, coords, orbit_ids, letters = [], [], [], []
    for orbit in record["orbits"]:
        xyz = np.array(orbit["xyz"])
        images = (np.einsum("nij,j->ni", database["rotations"], xyz) + database["translations"]) % 1.0
        unique: list[np.ndarray] = []
        for image in images:
            if not any(_frac_dist(image - u).max() < 1e-4 for u in unique):
                unique.append(image)
        species += [orbit["element"]] * len(unique)
        coords += [u.tolist() for u in unique]
        orbit_ids += [len(orbit_ids)] * len(unique)  # like spglib: the index of the orbit's first site
        letters += [orbit["letter"]] * len(unique)
    return species, coords, orbit_ids, letters


def write_synthetic_fixture(path: Path = SYNTHETIC_PATH, seed: int = 2026) -> None:
    import gzip
    import json

    rng = np.random.default_rng(seed)
    records = []
    for number in range(1, 231):
        records.append(synthetic_crystal(number, rng))
        print(f"{number:3d} {records[-1]['expected_v2']}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed tables differ")
    parser.add_argument("--synthetic-fixture", action="store_true", help="write the synthetic test crystals")
    args = parser.parse_args(argv)
    if args.synthetic_fixture:
        write_synthetic_fixture()
        return 0
    text = build()
    if args.check:
        if TABLES_PATH.read_text() != text:
            print(f"{TABLES_PATH} is out of date", file=sys.stderr)
            return 1
        print(f"{TABLES_PATH} is up to date", file=sys.stderr)
        return 0
    TABLES_PATH.write_text(text)
    print(f"wrote {TABLES_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
