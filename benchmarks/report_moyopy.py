"""moyopy as the SCOPE v2 symmetry backend: the same space groups, Wyckoff letters and v2 strings as spglib? (issue 23)

For every bundled Materials Project structure (6,317) and every structure fixture (the 400 v1 fixture crystals, the
230 synthetic space-group crystals, the symprec and idealisation edge cases, the disordered CIFs and the real-world
cases), one worker process computes, each step timed on its own:

1. ``spglib``: ``spglib.get_symmetry_dataset`` at symprec 0.01 Å, angle tolerance 5° (sites as given);
2. ``v2_spglib``: ``encode_v2(structure)``, the reference string;
3. ``moyopy_default``: ``moyopy.MoyoDataset`` at symprec 0.01 Å with moyopy's default angle criterion and setting;
4. ``moyopy``: ``moyopy.MoyoDataset`` at symprec 0.01 Å, ``angle_tolerance=radians(5)``, ``Setting.spglib()``;
5. ``v2_moyopy``: ``encode_v2(structure, symmetry_backend="moyopy")`` and which backend answered each search.

moyopy can abort the process (a Rust abort, e.g. a failed allocation), which no ``except`` catches. So all of this
runs in a worker process (``tokenization.isolated_worker.IsolatedWorker``) under an address-space limit
(``--worker-memory-gb``) and a time limit per step; when it dies, that step of that item becomes a
``WorkerDiedError`` record and a fresh worker takes the next step.

Compared: (a) the space group of steps 1 and 4 (and 3), (b) the per-site Wyckoff letters where the groups agree,
(c) the v2 strings of steps 2 and 5. Timings are summed per step; on a shared machine they are informal.

Usage::

    python -m benchmarks.report_moyopy [--limit N] [--json benchmarks/results/moyopy.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "moyopy.json"
SYMPREC = 0.01
ANGLE_TOLERANCE = 5.0  # degrees, SCOPE's default (pymatgen's SpacegroupAnalyzer)
STEPS = ("spglib", "v2_spglib", "moyopy_default", "moyopy", "v2_moyopy")
#: Longest wait (s) for one step before the worker is treated as hung and killed.
STEP_TIMEOUT = 60.0


# --- inputs ---------------------------------------------------------------------------------------------------------


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def _synthetic_structure(record: dict):
    """One synthetic space-group crystal: the orbit representatives expanded by its Hall setting's operations."""
    import spglib
    from pymatgen.core import Lattice, Structure

    from tokenization.build_scope_v2_tables import expand_synthetic

    species, coords, _, _ = expand_synthetic(record, spglib.get_symmetry_from_database(record["hall_number"]))
    return Structure(Lattice.from_parameters(*record["lattice_parameters"]), species, coords)


def iter_items(limit: int | None = None):
    """``(set, name, payload)``: payload is a pymatgen ``Structure.as_dict()``, or a JSON string of one (MP rows)."""
    from dataset_builders.bundled import load_materials_project
    from tokenization.scope_errors import ScopeError
    from tokenization.structure_io import load_structures

    rows = load_materials_project()
    ids, texts = rows["material_id"], rows["structure"]
    for material_id, text in list(zip(ids, texts, strict=True))[:limit]:
        yield "materials_project", material_id, text
    fixture_sets = [
        ("scope_v1_fixture", FIXTURES / "scope_v1" / "structures.jsonl.gz"),
        ("symprec_edge", FIXTURES / "scope_v2" / "symprec_edge_structures.jsonl.gz"),
        ("idealisation_edge", FIXTURES / "scope_v2" / "idealisation_edge_structures.jsonl.gz"),
    ]
    for name, path in fixture_sets:
        for k, record in enumerate(_jsonl_gz(path)[:limit]):
            yield name, record.get("material_id", f"{path.name}#{k}"), record["structure"]
    for record in _jsonl_gz(FIXTURES / "scope_v2" / "synthetic_space_groups.jsonl.gz")[:limit]:
        yield "synthetic", f"SG{record['number']}", _synthetic_structure(record).as_dict()
    files = sorted((FIXTURES / "disordered").glob("*.cif")) + sorted(
        p for p in (FIXTURES / "realworld").iterdir() if p.suffix != ".md" and p.name != "expected.json"
    )
    for path in files[:limit]:
        try:
            loaded = load_structures(str(path))
        except ScopeError:
            continue  # the file as a whole is refused: nothing to compare
        for source, structure in loaded:
            if not isinstance(structure, ScopeError):
                yield path.parent.name, Path(source).name, structure.as_dict()


# --- the worker -----------------------------------------------------------------------------------------------------


def _dataset_fields(dataset) -> dict:
    return {"number": int(dataset.number), "wyckoffs": list(dataset.wyckoffs)}


def _run_step(step: str, structure) -> dict:
    import math as _math

    import spglib

    from tokenization import scope_v2, symmetry_idealisation
    from tokenization.scope_errors import ScopeError

    cell = (structure.lattice.matrix, structure.frac_coords, scope_v2.site_types(structure)[0])
    start = time.perf_counter()
    try:
        if step == "spglib":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)
            out = _dataset_fields(dataset) if dataset is not None else {"error": "no dataset"}
        elif step in ("moyopy_default", "moyopy"):
            import moyopy

            moyo_cell = moyopy.Cell(cell[0].tolist(), cell[1].tolist(), [int(z) for z in cell[2]])
            if step == "moyopy":
                options = {
                    "angle_tolerance": _math.radians(ANGLE_TOLERANCE),
                    "setting": moyopy.Setting.spglib(),
                }
            else:
                options = {}
            dataset = moyopy.MoyoDataset(moyo_cell, symprec=SYMPREC, **options)
            out = _dataset_fields(dataset) | {"symprec_used": float(dataset.symprec)}
        elif step == "v2_spglib":
            out = {"scope": scope_v2.encode_v2(structure)}
        else:  # v2_moyopy: count which backend answered each search
            answered: list[str] = []
            search = symmetry_idealisation.search_symmetry

            def counting(*args, **kwargs):
                found = search(*args, **kwargs)
                answered.append(found.backend)
                return found

            symmetry_idealisation.search_symmetry = counting
            try:
                out = {"scope": scope_v2.encode_v2(structure, symmetry_backend="moyopy")}
            finally:
                symmetry_idealisation.search_symmetry = search
            out["answered"] = answered
    except (ScopeError, ValueError, RuntimeError) as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["seconds"] = time.perf_counter() - start
    return out


def _step_in_worker(step: str, payload) -> dict:
    """One step on one item, in the worker process (the structure is parsed there, outside the timing)."""
    warnings.simplefilter("ignore")
    from pymatgen.core import Structure

    structure = Structure.from_dict(json.loads(payload) if isinstance(payload, str) else payload)
    return _run_step(step, structure)


def run_item(worker, name: str, payload, steps=STEPS) -> dict:
    """Every step of one item in ``worker`` (an ``IsolatedWorker``): a step during which the worker dies gets the
    ``WorkerDiedError`` record, and the steps after it run in a fresh worker."""
    from tokenization.scope_errors import WorkerDiedError

    results: dict = {}
    for step in steps:
        try:
            results[step] = worker.call(_step_in_worker, step, payload, source=name)
        except WorkerDiedError as error:
            results[step] = {"error": f"{type(error).__name__}: {error.message}", "died": True}
            results.setdefault("worker_died", []).append({"step": step, **error.to_dict()})
    return results


# --- comparison -----------------------------------------------------------------------------------------------------


def compare(rows: list[dict]) -> dict:
    """Counts of agreement per input set and in all, and the summed time of each step."""

    def group(r, step):
        return r.get(step, {}).get("number")

    for r in rows:
        for step in STEPS:
            r.setdefault(step, {"error": "not run"})
    summary: dict = {}
    for set_name in ["all", *sorted({r["set"] for r in rows})]:
        chosen = [r for r in rows if set_name == "all" or r["set"] == set_name]
        died = [
            [r["name"], [step for step in STEPS if r[step].get("died")]] for r in chosen if "worker_died" in r
        ]
        alive = chosen  # a step that died has no result: it counts as a difference where it is compared
        both = [r for r in alive if group(r, "spglib") is not None and group(r, "moyopy") is not None]
        same_group = [r for r in both if group(r, "spglib") == group(r, "moyopy")]
        default_both = [
            r for r in alive if group(r, "spglib") is not None and group(r, "moyopy_default") is not None
        ]
        v2 = [
            r
            for r in alive
            if "scope" in r["v2_spglib"] or "scope" in r["v2_moyopy"] or r["v2_moyopy"].get("died")
        ]
        v2_differ = [
            {"name": r["name"], "spglib": r["v2_spglib"].get("scope"), "moyopy": r["v2_moyopy"].get("scope")}
            for r in v2
            if r["v2_spglib"].get("scope") != r["v2_moyopy"].get("scope")
        ]
        answered = [b for r in alive for b in r["v2_moyopy"].get("answered", [])]
        summary[set_name] = {
            "items": len(chosen),
            "worker_died": died,
            "group_compared": len(both),
            "group_differs": [
                [r["name"], group(r, "spglib"), group(r, "moyopy")] for r in both if r not in same_group
            ],
            "wyckoff_differs_same_group": sum(
                r["spglib"]["wyckoffs"] != r["moyopy"]["wyckoffs"] for r in same_group
            ),
            "default_angle_group_differs": sum(
                group(r, "spglib") != group(r, "moyopy_default") for r in default_both
            ),
            "default_angle_wyckoff_differs": sum(
                r["spglib"]["wyckoffs"] != r["moyopy_default"]["wyckoffs"]
                for r in default_both
                if group(r, "spglib") == group(r, "moyopy_default")
            ),
            "v2_compared": len(v2),
            "v2_differs": v2_differ,
            "v2_searches_by_backend": {b: answered.count(b) for b in sorted(set(answered))},
            "v2_items_with_spglib_search": sum("spglib" in r["v2_moyopy"].get("answered", []) for r in alive),
            "seconds": {step: round(sum(r[step].get("seconds", 0.0) for r in alive), 3) for step in STEPS},
        }
        seconds = summary[set_name]["seconds"]
        summary[set_name]["speedup_dataset"] = _ratio(seconds["spglib"], seconds["moyopy"])
        summary[set_name]["speedup_v2"] = _ratio(seconds["v2_spglib"], seconds["v2_moyopy"])
    return summary


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def markdown(summary: dict) -> str:
    head = (
        "| set | items | group differs (5°) | Wyckoff differs, same group | v2 differs | items with a spglib "
        "search on the moyopy path | worker died | dataset s spglib / moyopy | v2 s spglib / moyopy |"
    )
    lines = [head, "|" + "---|" * 9]
    for name, s in summary.items():
        sec = s["seconds"]
        lines.append(
            f"| {name} | {s['items']} | {len(s['group_differs'])} | {s['wyckoff_differs_same_group']} | "
            f"{len(s['v2_differs'])} | {s['v2_items_with_spglib_search']} | {len(s['worker_died'])} | "
            f"{sec['spglib']:.1f} / {sec['moyopy']:.1f} ({s['speedup_dataset']}×) | "
            f"{sec['v2_spglib']:.1f} / {sec['v2_moyopy']:.1f} ({s['speedup_v2']}×) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="at most N items of each set (a smoke run)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write rows and summary")
    parser.add_argument(
        "--worker-memory-gb", type=float, default=4.0, help="address-space limit of the worker"
    )
    args = parser.parse_args(argv)
    import moyopy

    from tokenization.isolated_worker import IsolatedWorker

    worker = IsolatedWorker(memory_limit=int(args.worker_memory_gb * 2**30), timeout=STEP_TIMEOUT)
    rows = []
    start = time.perf_counter()
    try:
        for k, (set_name, name, payload) in enumerate(iter_items(args.limit)):
            rows.append({"set": set_name, "name": name, **run_item(worker, name, payload)})
            if "worker_died" in rows[-1]:
                print(f"worker died on {name}: {rows[-1]['worker_died']}", file=sys.stderr, flush=True)
            if k % 500 == 0:
                print(f"{k} items, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    finally:
        worker.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows}))  # kept even if the summary below fails
    result = summarise(rows, moyopy.__version__, time.perf_counter() - start)
    args.json.write_text(json.dumps(result, indent=1))
    print(markdown(result["summary"]))
    for name, s in result["summary"].items():
        for entry in s["v2_differs"][:20]:
            print(f"v2 differs [{name}] {entry}")
        if s["worker_died"]:
            print(f"worker died [{name}]: {s['worker_died']}")
    return result


def summarise(rows: list[dict], moyopy_version: str, wall_seconds: float) -> dict:
    """The file written: versions, tolerances, the summary per set, and the rows of the items where the two
    backends differ in anything (group, Wyckoff letters, v2 string) or a worker died."""
    summary = compare(rows)
    interesting = [
        r
        for r in rows
        if "worker_died" in r
        or r["spglib"].get("number") != r["moyopy"].get("number")
        or r["v2_spglib"].get("scope") != r["v2_moyopy"].get("scope")
    ]
    return {
        "moyopy_version": moyopy_version,
        "spglib_version": __import__("spglib").__version__,
        "symprec": SYMPREC,
        "angle_tolerance_degrees": ANGLE_TOLERANCE,
        "angle_tolerance_radians": math.radians(ANGLE_TOLERANCE),
        "wall_seconds": round(wall_seconds, 1),
        "summary": summary,
        "rows_that_differ": interesting,
    }


if __name__ == "__main__":
    main()
