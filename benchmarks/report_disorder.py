"""Disorder in SCOPE: ordered strings unchanged over the 6,317 bundled crystals, and encoding speed (not a test).

1. **Ordered strings unchanged.** Every bundled Materials Project structure is encoded to v2 (and v1) by this
   checkout and by a baseline commit (default: the last commit before disorder support), each in its own process
   (``PYTHONPATH`` pointing at a ``git worktree`` of the baseline). The report lists every structure whose string
   differs.
2. **Speed, disordered against ordered.** 500 bundled structures are encoded as they are and with one orbit
   turned into a 50/50 mixture (the element of the first site shares every site of that element with the next
   element in Z), interleaved in chunks so that machine load hits both alike.

Usage::

    python -m benchmarks.report_disorder [--baseline 4e88de6] [--json benchmarks/results/disorder.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "disorder.json"
BASELINE = "4e88de6"  # the last commit before disorder support

_ENCODE_ALL = """
import json, sys, warnings
warnings.simplefilter("ignore")
from pymatgen.core import Structure
from dataset_builders import load_materials_project
from tokenization import ScopeError, structure_to_scope
rows = load_materials_project()
out = {}
for material_id, text in zip(rows["material_id"], rows["structure"]):
    structure = Structure.from_dict(json.loads(text) if isinstance(text, str) else text)
    entry = {}
    for version in ("v1", "v2"):
        try:
            entry[version] = structure_to_scope(structure, version=version, source=material_id)
        except ScopeError as exc:
            entry[version] = "ERROR " + type(exc).__name__
    out[material_id] = entry
json.dump(out, open(sys.argv[1], "w"))
"""


def encode_all(code_root: Path, output: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _ENCODE_ALL, str(output)], check=True, env=env, cwd=code_root)
    return json.loads(output.read_text())


def _mixed(structure):
    """The structure with every site of its first site's element a 50/50 mixture with the next element in Z."""
    from pymatgen.core import Element

    element = structure[0].specie
    partner = Element.from_Z(element.Z + 1 if element.Z < 94 else element.Z - 1)
    mixed = structure.copy()
    for index, site in enumerate(mixed):
        if site.specie == element:
            mixed.replace(index, {element: 0.5, partner: 0.5}, coords=site.frac_coords)
    return mixed


def speed(n: int = 500, seed: int = 0, rounds: int = 3) -> dict:
    from pymatgen.core import Structure

    from dataset_builders import load_materials_project
    from tokenization import structure_to_scope

    rows = load_materials_project()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(rows), size=n, replace=False)
    ordered = [Structure.from_dict(json.loads(rows[int(i)]["structure"])) for i in picks]
    disordered = [_mixed(s) for s in ordered]
    times = {"ordered": [], "disordered": []}
    for _ in range(rounds):
        for name, structures in (("ordered", ordered), ("disordered", disordered)):
            start = time.perf_counter()
            for structure in structures:
                structure_to_scope(structure, version="v2")
            times[name].append((time.perf_counter() - start) / n * 1000)
    ordered_ms, disordered_ms = float(np.median(times["ordered"])), float(np.median(times["disordered"]))
    return {
        "structures": n,
        "rounds": rounds,
        "ms_per_structure": {"ordered": ordered_ms, "disordered": disordered_ms},
        "disordered_over_ordered": disordered_ms / ordered_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare ordered strings with")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        )
        for name, commit in (("baseline", args.baseline), ("head", head.stdout.strip())):
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tmp / name), commit], check=True, cwd=ROOT
            )
        try:
            baseline = encode_all(tmp / "baseline", tmp / "baseline.json")
            current = encode_all(tmp / "head", tmp / "head.json")
        finally:
            for name in ("baseline", "head"):
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / name)], cwd=ROOT)
    changed = {
        version: sorted(m for m in baseline if baseline[m][version] != current[m][version])
        for version in ("v1", "v2")
    }
    report = {
        "baseline_commit": args.baseline,
        "head_commit": head.stdout.strip(),
        "structures": len(baseline),
        "changed": changed,
        "speed_v2": speed(),
        "load_average": os.getloadavg(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "changed"}, indent=1))
    print({version: len(ids) for version, ids in changed.items()}, "strings changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
