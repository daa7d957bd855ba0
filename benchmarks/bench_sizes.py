"""Cost of SCOPE v2 encoding against the cell size: time and peak memory per structure from 8 to 1,024 atoms.

Three kinds of cell at each size (8, 32, 128, 512 and 1,024 atoms):

* ``supercell``: rock-salt NaCl, the 8-atom conventional cell repeated (space group 225 at every size);
* ``md_frame``: bcc Fe supercells with every atom moved 0.05 Å in a random direction (pymatgen
  ``perturb(0.05, seed=0)``), the MD frame of issue 21 (space group 1);
* ``low_symmetry``: a real triclinic crystal, CaAs3 (mp-1900, P-1, 8 atoms; the first 8-site structure of the
  bundled Materials Project table with space group 1 or 2), repeated.

Time: ``structure_to_scope(structure, version="v2")`` (validation and the full v2 encoder, no length limit)
against ``SpacegroupAnalyzer(structure).get_space_group_number()`` on the same in-memory cell, both warmed once,
then interleaved in the same process; the median per call. ``encode_v2`` alone on the validated structure is timed
beside them (``encoder_only_time_ratio``), since ``SpacegroupAnalyzer`` checks nothing. pymatgen caches spglib's answer per cell, so its cache
is cleared before each call. Goal: at most 2x SpacegroupAnalyzer's time.

Memory: the peak resident set size (``VmHWM``, reset after imports through ``/proc/self/clear_refs``) above the RSS
after imports and building the cell, one fresh subprocess per cell and per side (``--measure-memory``), under an address-space limit (``--memory-cap-mib``) so that a regression
cannot take the machine's memory: hitting it shows as a ``resource_limit`` row. Goal: under 500 MB up to 1,024 atoms.

The outcome of the tokenizer path (``CloudTokenizerFast`` v2, 64 tokens) is recorded beside each cell: the string,
or the typed error (a cell of more than about 60 orbits is refused as ``too_long`` at its first symmetry search).

Usage::

    python -m benchmarks.bench_sizes [--sizes 8 32 128 512 1024] [--json benchmarks/results/sizes.json]
    python -m benchmarks --only sizes        # the same, merged into benchmarks/results/latest.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

KINDS = ("supercell", "md_frame", "low_symmetry")
SIZES = (8, 32, 128, 512, 1024)
TIME_GOAL = 2.0  # v2 time over SpacegroupAnalyzer's
MEMORY_GOAL_MB = 500.0
LOW_SYMMETRY_ID = "mp-1900"
REPO = Path(__file__).resolve().parents[1]


def _factors(multiple: int) -> tuple[int, int, int]:
    """Three near-equal integers whose product is ``multiple`` (a power of two here), largest first."""
    factors = [1, 1, 1]
    while multiple > 1:
        prime = next(p for p in range(2, multiple + 1) if multiple % p == 0)
        factors[factors.index(min(factors))] *= prime
        multiple //= prime
    return tuple(sorted(factors, reverse=True))


def build_cell(kind: str, n_atoms: int):
    """The ``kind`` cell with ``n_atoms`` atoms (a pymatgen ``Structure``)."""
    from pymatgen.core import Lattice, Structure

    if kind == "supercell":
        base = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
        )
    elif kind == "md_frame":
        base = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    elif kind == "low_symmetry":
        from dataset_builders import load_materials_project, structure_from_json

        table = load_materials_project().to_pandas().set_index("material_id")
        base = structure_from_json(table.loc[LOW_SYMMETRY_ID, "structure"], source=LOW_SYMMETRY_ID)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    if n_atoms % len(base):
        raise ValueError(f"{n_atoms} atoms is not a multiple of the {len(base)}-atom {kind} cell")
    cell = base * _factors(n_atoms // len(base))
    if kind == "md_frame":
        cell.perturb(0.05, seed=0)
    return cell


def _rss_mib(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process in MiB, from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_memory(kind: str, n_atoms: int, side: str, cap_mib: float) -> dict:
    """In this (fresh) process: peak RSS during one call above the RSS after imports and building the cell."""
    warnings.filterwarnings("ignore")
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from tokenization import ScopeError, structure_to_scope, typed_error

    cell = build_cell(kind, n_atoms)
    baseline = _rss_mib("VmRSS")
    peak_was_reset = _reset_peak()
    resource.setrlimit(resource.RLIMIT_AS, (int(cap_mib * 2**20), resource.RLIM_INFINITY))
    start = time.perf_counter()
    outcome: dict = {}
    try:
        if side == "v2":
            outcome["scope_tokens"] = len(structure_to_scope(cell, version="v2").split())
        else:
            outcome["space_group"] = SpacegroupAnalyzer(cell).get_space_group_number()
    except ScopeError as error:
        outcome["error"] = error.to_dict()
    except MemoryError as error:
        outcome["error"] = typed_error(error, f"{kind} {n_atoms}").to_dict()
    seconds = time.perf_counter() - start
    peak = _rss_mib("VmHWM")
    above = None if peak is None or baseline is None or not peak_was_reset else max(0.0, peak - baseline)
    return {
        "peak_rss_above_imports_mib": above,
        "rss_after_imports_mib": baseline,
        "seconds_cold": seconds,
        **outcome,
    }


def _memory_in_subprocess(kind: str, n_atoms: int, side: str, cap_mib: float, timeout: float) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_sizes", "--measure-memory", kind, str(n_atoms), side]
    command += ["--memory-cap-mib", str(cap_mib)]
    try:
        completed = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    if completed.returncode != 0:
        return {"status": f"failed (rc {completed.returncode})", "stderr_tail": completed.stderr[-1500:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _median_seconds(function, min_seconds: float, max_calls: int) -> tuple[float, int]:
    """Median time of one call over repeated calls (at least one, until ``min_seconds`` or ``max_calls``)."""
    times = []
    while not times or (sum(times) < min_seconds and len(times) < max_calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)


def measure_time(kind: str, n_atoms: int, min_seconds: float, rounds: int, max_calls: int = 2000) -> dict:
    """v2 encoding and SpacegroupAnalyzer on the same cell in this process: warmed once, interleaved rounds."""
    from pymatgen.symmetry import analyzer as pymatgen_analyzer
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from tokenization import CloudTokenizerFast, ScopeError, load_structure, structure_to_scope
    from tokenization.scope_v2 import encode_v2

    cell = build_cell(kind, n_atoms)

    def ours():
        return structure_to_scope(cell, version="v2")

    validated = load_structure(cell)

    def encoder_only():
        return encode_v2(validated)

    def theirs():
        # pymatgen keeps the last 32 spglib datasets (an lru_cache keyed on the cell); cleared, so that every call
        # does the search, as every v2 encoding does.
        pymatgen_analyzer._get_symmetry_dataset.cache_clear()
        return SpacegroupAnalyzer(cell).get_space_group_number()

    scope, space_group, _ = ours(), theirs(), encoder_only()  # warm all (caches, first-call imports)
    v2, sga, encoder = [], [], []
    for _ in range(rounds):
        v2.append(_median_seconds(ours, min_seconds, max_calls)[0])
        sga.append(_median_seconds(theirs, min_seconds, max_calls)[0])
        encoder.append(_median_seconds(encoder_only, min_seconds, max_calls)[0])
    try:
        tokenizer_outcome = CloudTokenizerFast.from_scope_version("v2").encode_structure(cell)
    except ScopeError as error:
        tokenizer_outcome = error.to_dict()
    v2_seconds, sga_seconds = statistics.median(v2), statistics.median(sga)
    return {
        "v2_seconds": v2_seconds,
        "spacegroupanalyzer_seconds": sga_seconds,
        "time_ratio": v2_seconds / sga_seconds,
        # encode_v2 alone on the validated structure: the ratio without load_structure's checks.
        "v2_encoder_only_seconds": statistics.median(encoder),
        "encoder_only_time_ratio": statistics.median(encoder) / sga_seconds,
        "v2_space_group": int(scope.split()[0][2:]),
        "v2_tokens": len(scope.split()),
        "spacegroupanalyzer_space_group": space_group,
        "tokenizer_outcome": tokenizer_outcome,
    }


def run(
    sizes, kinds, min_seconds: float, rounds: int, cap_mib: float, timeout: float, max_calls: int = 2000
) -> dict:
    warnings.filterwarnings("ignore")
    rows = []
    for kind in kinds:
        for n_atoms in sizes:
            row = {
                "kind": kind,
                "atoms": n_atoms,
                **measure_time(kind, n_atoms, min_seconds, rounds, max_calls),
            }
            for side in ("v2", "spacegroupanalyzer"):
                row[f"memory_{side}"] = _memory_in_subprocess(kind, n_atoms, side, cap_mib, timeout)
            row["v2_peak_mib"] = row["memory_v2"].get("peak_rss_above_imports_mib")
            rows.append(row)
            print(_format_row(row), flush=True)
    ratios = [row["time_ratio"] for row in rows]
    peaks = [row["v2_peak_mib"] for row in rows]
    memory_ok = all(p is not None and p * 2**20 / 1e6 < MEMORY_GOAL_MB for p in peaks)
    return {
        "description": __doc__.split("\n\n")[0],
        "command": " ".join(
            [sys.executable.rsplit("/", 1)[-1], "-m", "benchmarks.bench_sizes", *sys.argv[1:]]
        ),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "goals": {"time_ratio_at_most": TIME_GOAL, "peak_memory_below_mb": MEMORY_GOAL_MB},
        "worst_time_ratio": max(ratios),
        "worst_v2_peak_mib": max((p for p in peaks if p is not None), default=None),
        "time_goal_met": max(ratios) <= TIME_GOAL,
        "memory_goal_met": memory_ok,
        "rows": rows,
    }


def _format_row(row: dict) -> str:
    sga_memory = row["memory_spacegroupanalyzer"].get("peak_rss_above_imports_mib")
    outcome = row["tokenizer_outcome"]
    outcome = outcome["reason"] if isinstance(outcome, dict) else f"{len(outcome.split())} tokens"
    v2_peak = row["v2_peak_mib"]
    return (
        f"{row['kind']:>12} {row['atoms']:>5} atoms | v2 {row['v2_seconds'] * 1e3:9.1f} ms  SGA "
        f"{row['spacegroupanalyzer_seconds'] * 1e3:9.1f} ms  ratio {row['time_ratio']:5.2f}x "
        f"(encoder alone {row['encoder_only_time_ratio']:5.2f}x) | peak RSS v2 "
        f"{'n/a' if v2_peak is None else f'{v2_peak:7.1f}'} MiB, SGA "
        f"{'n/a' if sga_memory is None else f'{sga_memory:7.1f}'} MiB | SG{row['v2_space_group']} "
        f"(SGA {row['spacegroupanalyzer_space_group']}), tokenizer: {outcome}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="atoms per cell (multiples of 8)"
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--min-seconds", type=float, default=0.5, help="time each side at least this long per round"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per cell")
    parser.add_argument(
        "--max-calls",
        type=int,
        default=2000,
        help="at most this many calls per side and round, so that a small cell fills --min-seconds (50 calls, the "
        "old cap, took 40 ms and let one busy moment decide a row)",
    )
    parser.add_argument(
        "--memory-cap-mib", type=float, default=4096, help="address-space limit of each subprocess"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per memory subprocess")
    parser.add_argument("--json", help="write the results to this file (e.g. benchmarks/results/sizes.json)")
    parser.add_argument(
        "--measure-memory", nargs=3, metavar=("KIND", "ATOMS", "SIDE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.measure_memory:
        kind, n_atoms, side = args.measure_memory
        print(json.dumps(measure_memory(kind, int(n_atoms), side, args.memory_cap_mib)))
        return 0
    result = run(
        args.sizes,
        args.kinds,
        args.min_seconds,
        args.rounds,
        args.memory_cap_mib,
        args.timeout,
        args.max_calls,
    )
    print(
        f"worst time ratio v2 / SpacegroupAnalyzer: {result['worst_time_ratio']:.2f}x (goal <= {TIME_GOAL}x); "
        f"worst v2 peak RSS {result['worst_v2_peak_mib']:.1f} MiB (goal < {MEMORY_GOAL_MB:.0f} MB)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
