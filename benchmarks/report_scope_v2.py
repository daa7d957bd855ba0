"""SCOPE v2 report: canonicality, distinctness, length and speed on the 6,317 matminer 0.3.9 structures.

Usage (from the repository root, one core)::

    OMP_NUM_THREADS=1 python benchmarks/report_scope_v2.py                  # all structures
    OMP_NUM_THREADS=1 python benchmarks/report_scope_v2.py --limit 300      # quick look

Structures come from ``dataset_builders/data/materials_project.parquet`` (column ``structure``: pymatgen dict as
JSON). Without it, pass ``--matminer-dir`` pointing at ``matminer/datasets`` of the matminer 0.3.9 sdist
(``pip download --no-deps --no-binary :all: matminer==0.3.9``); the four CSVs are read and deduplicated by
``material_id`` in the order flla, elastic, dielectric, piezoelectric.

It writes ``benchmarks/results/scope_v2_report.json`` with:

* ``invariance``: for each transformation (site permutation, supercell with det <= 4, spglib primitive cell,
  conventional standard cell, rigid rotation + translation, origin shift, noise of +-0.5 mÅ, all at once), the number
  of structures whose v2 string is unchanged, and two ablations: spglib fed the sites in input order instead of
  with a geometric reference atom first, and spglib's Wyckoff letters without the normalizer canonicalisation;
* ``distinctness``: distinct v1 / v2 strings and the number of materials that share their string with another
  material; v2 collisions are checked with pymatgen's ``StructureMatcher``;
* ``length``: token counts including ``[CLS]`` and ``[SEP]``;
* ``speed``: structures per second for v1 (``encode_v1``: SpacegroupAnalyzer-equivalent dataset + string) and v2 on
  the same structures, interleaved in chunks so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import platform
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import spglib
from pymatgen.core import Lattice, Structure

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tokenization import scope_v2  # noqa: E402
from tokenization.scope_encoding import encode_v1  # noqa: E402
from tokenization.scope_v2 import V2_TOKENS, count_v2_tokens, encode_v2  # noqa: E402
from tokenization.symmetry_idealisation import reference_first_order  # noqa: E402
from tokenization.symmetry_search import search_symmetry  # noqa: E402

PARQUET = REPO / "dataset_builders" / "data" / "materials_project.parquet"
OUTPUT = REPO / "benchmarks" / "results" / "scope_v2_report.json"
SYMPREC = 0.01
ANGLE_TOLERANCE = 5.0
NOISE_ANGSTROM = 5e-4
MAX_LENGTH = 64


def load_parquet(path: Path) -> list[tuple[str, Structure]]:
    import pandas as pd

    frame = pd.read_parquet(path, columns=["material_id", "structure"])
    return [
        (mid, Structure.from_dict(json.loads(s)))
        for mid, s in zip(frame.material_id, frame.structure, strict=True)
    ]


def load_matminer(datasets_dir: Path) -> list[tuple[str, Structure]]:
    import pandas as pd

    seen: dict[str, Structure] = {}
    for name, column in [
        ("flla_2015.csv", "structure"),
        ("elastic_tensor.csv", "poscar"),
        ("dielectric_constant.csv", "poscar"),
        ("piezoelectric_tensor.csv", "poscar"),
    ]:
        frame = pd.read_csv(datasets_dir / name, comment="#")
        for mid, raw in zip(frame.material_id, frame[column], strict=True):
            if mid in seen:
                continue
            if column == "structure":
                seen[mid] = Structure.from_dict(ast.literal_eval(raw))
            else:
                seen[mid] = Structure.from_str(raw, fmt="poscar")
    return list(seen.items())


# --- transformations (each returns the same crystal in another description) -------------------------------------


def random_supercell(structure: Structure, rng: np.random.Generator) -> Structure:
    while True:
        matrix = rng.integers(-2, 3, size=(3, 3))
        if 1 <= round(np.linalg.det(matrix)) <= 4:
            return structure.copy().make_supercell(matrix)


def random_rotation_matrix(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def rotate_translate(structure: Structure, rng: np.random.Generator) -> Structure:
    rotation = random_rotation_matrix(rng)
    cart = structure.cart_coords @ rotation.T + rng.normal(scale=3.0, size=3)
    return Structure(
        Lattice(structure.lattice.matrix @ rotation.T), structure.species, cart, coords_are_cartesian=True
    )


def origin_shift(structure: Structure, rng: np.random.Generator) -> Structure:
    return Structure(structure.lattice, structure.species, structure.frac_coords + rng.random(3))


def permute(structure: Structure, rng: np.random.Generator) -> Structure:
    return Structure.from_sites([structure[i] for i in rng.permutation(len(structure))])


def spglib_cell(structure: Structure):
    return structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers


def _standardize(structure: Structure, to_primitive: bool) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lattice, positions, numbers = spglib.standardize_cell(
            spglib_cell(structure),
            to_primitive=to_primitive,
            no_idealize=True,
            symprec=SYMPREC,
            angle_tolerance=ANGLE_TOLERANCE,
        )
    return Structure(lattice, numbers, positions)


def primitive(structure: Structure, rng: np.random.Generator) -> Structure:
    return _standardize(structure, to_primitive=True)


def conventional(structure: Structure, rng: np.random.Generator) -> Structure:
    return _standardize(structure, to_primitive=False)


def noise(structure: Structure, rng: np.random.Generator) -> Structure:
    cart = structure.cart_coords + rng.uniform(-NOISE_ANGSTROM, NOISE_ANGSTROM, size=(len(structure), 3))
    return Structure(structure.lattice, structure.species, cart, coords_are_cartesian=True)


def everything(structure: Structure, rng: np.random.Generator) -> Structure:
    out = structure
    for step in (random_supercell, rotate_translate, origin_shift, permute, noise):
        out = step(out, rng)
    return out


TRANSFORMATIONS = {
    "site_permutation": permute,
    "supercell_det_le_4": random_supercell,
    "primitive_cell": primitive,
    "conventional_cell": conventional,
    "rotation_translation": rotate_translate,
    "origin_shift": origin_shift,
    "noise_0.5mA": noise,
    "all_combined": everything,
}


def variants(structure: Structure) -> dict[str, str]:
    """Canonical v2 and two ablations, from two spglib calls.

    * ``v2``: ``encode_v2`` (reference atom chosen from the geometry, normalizer canonicalisation);
    * ``raw_letters``: same spglib call, but spglib's Wyckoff letters as reported (no relabeling);
    * ``input_order``: normalizer canonicalisation, but spglib fed the sites in input order.
    """
    numbers = np.asarray(structure.atomic_numbers)
    lattice, frac = structure.lattice.matrix, structure.frac_coords
    out = {}
    for name, order in (
        ("v2", reference_first_order(lattice, frac, numbers)),
        ("input_order", np.arange(len(numbers))),
    ):
        cell = (lattice, frac[order], numbers[order])
        dataset = search_symmetry(cell, SYMPREC, ANGLE_TOLERANCE, None).dataset
        number = int(dataset.number)
        relabelings = scope_v2._relabeling_array(number)
        args = (number, dataset.wyckoffs, dataset.crystallographic_orbits, numbers[order])
        out[name] = scope_v2._scope_from_symmetry(*args, relabelings)
        if name == "v2":
            out["raw_letters"] = scope_v2._scope_from_symmetry(*args, relabelings[:1])
    return out


def percentiles(values: list[int]) -> dict:
    arr = np.asarray(values)
    return {
        "mean": round(float(arr.mean()), 2),
        "p50": int(np.percentile(arr, 50)),
        "p90": int(np.percentile(arr, 90)),
        "p99": int(np.percentile(arr, 99)),
        "max": int(arr.max()),
        f"share_le_{MAX_LENGTH}": round(float((arr <= MAX_LENGTH).mean()), 5),
        "histogram_by_8": {
            f"{lo}-{lo + 7}": int(((arr >= lo) & (arr < lo + 8)).sum())
            for lo in range(0, int(arr.max()) + 1, 8)
        },
    }


def speed(structures: list[Structure], chunk: int = 100) -> dict:
    elapsed = {"v1": 0.0, "v2": 0.0}
    for start in range(0, len(structures), chunk):
        part = structures[start : start + chunk]
        for name, encoder in (("v1", encode_v1), ("v2", encode_v2)):
            t0 = time.perf_counter()
            for s in part:
                encoder(s, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)
            elapsed[name] += time.perf_counter() - t0
    n = len(structures)
    return {
        "structures": n,
        "v1_structures_per_s": round(n / elapsed["v1"], 1),
        "v2_structures_per_s": round(n / elapsed["v2"], 1),
        "v2_time_over_v1_time": round(elapsed["v2"] / elapsed["v1"], 3),
        "note": "one process, OMP_NUM_THREADS=1, v1/v2 interleaved in chunks of 100 on the same structures",
    }


def collision_check(groups: dict[str, list[int]], structures: list[Structure], max_groups: int) -> dict:
    """How many v2 collisions are the same crystal (StructureMatcher) and how many differ in free parameters."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()  # pymatgen defaults: ltol 0.2, stol 0.3, angle_tol 5
    shared = [ids for ids in groups.values() if len(ids) > 1]
    same, different = 0, 0
    for ids in shared[:max_groups]:
        first = structures[ids[0]]
        for other in ids[1:]:
            if matcher.fit(first, structures[other]):
                same += 1
            else:
                different += 1
    return {
        "groups_checked": min(len(shared), max_groups),
        "pairs_same_crystal_by_structure_matcher": same,
        "pairs_different_crystal": different,
        "note": "pairs (first member, other member) within each shared-string group; 'different' are crystals that "
        "share space group, Wyckoff occupation and composition and differ only in free coordinates or lattice",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N structures")
    parser.add_argument(
        "--matminer-dir", type=Path, default=None, help="matminer/datasets of the 0.3.9 sdist"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-collision-groups", type=int, default=2000)
    args = parser.parse_args(argv)

    if PARQUET.exists() and args.matminer_dir is None:
        records, data_source = load_parquet(PARQUET), str(PARQUET.relative_to(REPO))
    elif args.matminer_dir is not None:
        records, data_source = load_matminer(args.matminer_dir), str(args.matminer_dir)
    else:
        parser.error(f"{PARQUET} not found; pass --matminer-dir")
    if args.limit:
        records = records[: args.limit]
    ids = [mid for mid, _ in records]
    structures = [s for _, s in records]
    rng = np.random.default_rng(args.seed)
    print(f"{len(structures)} structures from {data_source}", file=sys.stderr)

    t0 = time.perf_counter()
    reference = [variants(s) for s in structures]
    v2 = [r["v2"] for r in reference]
    assert all(v == encode_v2(s) for v, s in zip(v2[:50], structures[:50], strict=True))
    v1 = [encode_v1(s) for s in structures]
    print(f"reference strings in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    invariance = {}
    failures: dict[str, list] = {}
    for name, transform in TRANSFORMATIONS.items():
        t0 = time.perf_counter()
        same = Counter()
        failures[name] = []
        for index, structure in enumerate(structures):
            transformed = variants(transform(structure, rng))
            for key, string in transformed.items():
                same[key] += string == reference[index][key]
            if transformed["v2"] != v2[index]:
                failures[name].append(
                    {"material_id": ids[index], "reference": v2[index], "transformed": transformed["v2"]}
                )
        n = len(structures)
        invariance[name] = {
            "v2_identical": same["v2"],
            "v2_share_identical": round(same["v2"] / n, 5),
            "ablation_spglib_input_order_identical": same["input_order"],
            "ablation_raw_spglib_letters_identical": same["raw_letters"],
        }
        print(f"{name}: {invariance[name]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    groups_v2: dict[str, list[int]] = defaultdict(list)
    for index, string in enumerate(v2):
        groups_v2[string].append(index)
    count_v1 = Counter(v1)
    # v1 strings differ by site order; its canonical content is its token multiset per part.
    v1_as_sets = Counter(" | ".join(" ".join(sorted(p.split())) for p in s.split(" | ")) for s in v1)
    v1_groups: dict[str, set[str]] = defaultdict(set)
    v1_group_sizes: Counter = Counter()
    for string_v1, string_v2 in zip(v1, v2, strict=True):
        key = " | ".join(" ".join(sorted(p.split())) for p in string_v1.split(" | "))
        v1_groups[key].add(string_v2)
        v1_group_sizes[key] += 1
    split_groups = [k for k, strings in v1_groups.items() if len(strings) > 1]
    length_v2 = [count_v2_tokens(s) + 2 for s in v2]
    length_v1 = [len(s.split()) + 2 for s in v1]
    vocabulary = set(V2_TOKENS)
    unknown = sum(1 for s in v2 for t in s.split() if t not in vocabulary)

    report = {
        "data": {"source": data_source, "structures": len(structures)},
        "settings": {
            "symprec": SYMPREC,
            "angle_tolerance": ANGLE_TOLERANCE,
            "noise_angstrom": NOISE_ANGSTROM,
            "seed": args.seed,
        },
        "invariance": invariance,
        "invariance_failures": {k: v[:20] for k, v in failures.items() if v},
        "distinctness": {
            "distinct_v1_strings": len(count_v1),
            "distinct_v1_strings_ignoring_order": len(v1_as_sets),
            "distinct_v2_strings": len(groups_v2),
            "materials_sharing_v1_string_with_another": sum(c for c in count_v1.values() if c > 1),
            "materials_sharing_v2_string_with_another": sum(len(g) for g in groups_v2.values() if len(g) > 1),
            "v1_collision_groups_ignoring_order": sum(1 for c in v1_group_sizes.values() if c > 1),
            "v1_collision_groups_that_v2_splits": len(split_groups),
            "materials_in_v1_collision_groups_that_v2_splits": sum(v1_group_sizes[k] for k in split_groups),
            "examples_v1_merged_v2_split": [sorted(v1_groups[k])[:3] for k in split_groups[:5]],
            "v2_collision_check": collision_check(groups_v2, structures, args.max_collision_groups),
        },
        "length_with_cls_sep": {"v2": percentiles(length_v2), "v1_whitespace_tokens": percentiles(length_v1)},
        "vocabulary": {"v2_tokens": len(V2_TOKENS), "unknown_tokens_in_corpus": unknown},
        "speed": speed(structures),
        "environment": {
            "python": platform.python_version(),
            "spglib": spglib.__version__,
            "numpy": np.__version__,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    summary = io.StringIO()
    json.dump({k: report[k] for k in ("invariance", "distinctness", "speed")}, summary, indent=1)
    print(summary.getvalue())
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
