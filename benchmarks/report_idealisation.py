"""SCOPE v2 at the symmetry-tolerance edge: one string for a crystal and for pymatgen's idealised cells of it.

For each of the 6,317 bundled Materials Project structures ``s`` this encodes, with ``encode_v2``: ``s`` as stored,
``SpacegroupAnalyzer(s).get_conventional_standard_structure()`` and ``get_primitive_standard_structure()``
(pymatgen's idealised standard cells, SpacegroupAnalyzer defaults), and counts the materials whose three strings
differ (issue 12, point 7). It also counts the structures the quick test of ``symmetry_idealisation`` sends
through the rounds, and, with ``--invariance``, the materials whose string changes under one random site
permutation and under one draw of noise of +-0.5 mÅ per Cartesian coordinate (seed 2026).

``--before FILE`` (``{material_id: v2 string}``, e.g. written with ``--write-strings`` by an earlier version) adds
the list of materials whose string for ``s`` changed.

Usage (from the repository root, one core)::

    OMP_NUM_THREADS=1 python benchmarks/report_idealisation.py [--invariance] [--before FILE] [--limit N]

Writes ``benchmarks/results/idealisation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import spglib
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tokenization import symmetry_idealisation  # noqa: E402
from tokenization.scope_v2 import encode_v2  # noqa: E402

PARQUET = REPO / "dataset_builders" / "data" / "materials_project.parquet"
OUTPUT = REPO / "benchmarks" / "results" / "idealisation.json"
NOISE_ANGSTROM = 5e-4


def load_parquet(path: Path) -> list[tuple[str, Structure]]:
    import pandas as pd

    frame = pd.read_parquet(path, columns=["material_id", "structure"])
    return [
        (mid, Structure.from_dict(json.loads(s)))
        for mid, s in zip(frame.material_id, frame.structure, strict=True)
    ]


def idealised_cells(structure: Structure) -> dict[str, Structure]:
    analyzer = SpacegroupAnalyzer(structure)  # symprec 0.01 Å, angle tolerance 5°
    return {
        "conventional_standard": analyzer.get_conventional_standard_structure(),
        "primitive_standard": analyzer.get_primitive_standard_structure(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N structures")
    parser.add_argument("--invariance", action="store_true", help="also one permutation and one noise draw")
    parser.add_argument(
        "--before", type=Path, default=None, help="JSON {material_id: v2 string} to compare with"
    )
    parser.add_argument("--write-strings", type=Path, default=None, help="write {material_id: v2 string}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # pymatgen and spglib deprecation notices on every call

    records = load_parquet(PARQUET)[: args.limit]
    quick_test = symmetry_idealisation._may_gain_symmetry
    flagged: list[bool] = []

    def counting_test(*a, **k):
        flagged.append(quick_test(*a, **k))
        return flagged[-1]

    symmetry_idealisation._may_gain_symmetry = counting_test
    start = time.perf_counter()
    strings: dict[str, str] = {}
    mismatches = []
    sent_through_rounds = 0
    encode_seconds = 0.0
    try:
        for material_id, structure in records:
            before = len(flagged)
            t0 = time.perf_counter()
            string = encode_v2(structure)
            encode_seconds += time.perf_counter() - t0
            sent_through_rounds += any(flagged[before:])
            strings[material_id] = string
            others = {name: encode_v2(cell) for name, cell in idealised_cells(structure).items()}
            if any(other != string for other in others.values()):
                mismatches.append({"material_id": material_id, "input": string, **others})
    finally:
        symmetry_idealisation._may_gain_symmetry = quick_test
    n = len(records)
    report: dict = {
        "data": {"source": str(PARQUET.relative_to(REPO)), "structures": n},
        "settings": {"symprec": 0.01, "angle_tolerance": 5.0, "max_rounds": symmetry_idealisation.MAX_ROUNDS},
        "idealisation": {
            "identical_for_input_conventional_primitive": n - len(mismatches),
            "different": len(mismatches),
            "mismatches": mismatches,
        },
        "rounds": {
            "inputs_sent_through_rounds": sent_through_rounds,
            "note": "inputs for which the quick test could not rule out a larger group from another reference atom",
        },
        "encode_v2_ms_per_input_structure": round(1e3 * encode_seconds / max(n, 1), 3),
    }
    if args.invariance:
        rng = np.random.default_rng(2026)
        permuted, noisy = [], []
        for material_id, structure in records:
            shuffled = Structure.from_sites([structure[i] for i in rng.permutation(len(structure))])
            displaced = structure.cart_coords + rng.uniform(
                -NOISE_ANGSTROM, NOISE_ANGSTROM, (len(structure), 3)
            )
            moved = Structure(structure.lattice, structure.species, displaced, coords_are_cartesian=True)
            if encode_v2(shuffled) != strings[material_id]:
                permuted.append(material_id)
            if encode_v2(moved) != strings[material_id]:
                noisy.append(material_id)
        report["invariance"] = {
            "seed": 2026,
            "site_permutation_changed": permuted,
            "noise_0.5_mA_changed": noisy,
        }
    if args.before is not None:
        before = json.loads(args.before.read_text())
        changed = [
            {"material_id": mid, "before": before[mid], "after": string}
            for mid, string in strings.items()
            if mid in before and before[mid] != string
        ]
        report["changed_versus_before"] = {
            "compared": sum(mid in before for mid in strings),
            "changed": len(changed),
            "strings": changed,
        }
    report["seconds_total"] = round(time.perf_counter() - start, 1)
    report["environment"] = {
        "python": platform.python_version(),
        "spglib": spglib.__version__,
        "numpy": np.__version__,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    if args.write_strings is not None:
        args.write_strings.write_text(json.dumps(strings, indent=0) + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    summary = {key: value for key, value in report["idealisation"].items() if key != "mismatches"}
    print(json.dumps({"idealisation": summary, "rounds": report["rounds"]}, indent=1))
    if "changed_versus_before" in report:
        print("changed versus before:", report["changed_versus_before"]["changed"])
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
