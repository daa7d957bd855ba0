"""Run the CLOUD benchmark suite and write `benchmarks/results/latest.json`, `benchmarks/RESULTS.md` and plots.

    python -m benchmarks --quick                 # speed only (encode, MLM training, end-to-end inference), <= 10 min
    python -m benchmarks                         # speed + accuracy goals (96 min on 2 CPU cores, 2026-11-29)
    python -m benchmarks --only mlm infer        # selected parts; results merge into latest.json
    python -m benchmarks --report-only           # rebuild RESULTS.md and the plots from latest.json

Parts: encode, mlm, infer (speed); dielectric_cv (dielectric fold + Cv 300 K + Debye curves), matminer_cv, ablation,
cli_formation (formation energy through `cloud-crystal finetune`/`predict` with the defaults), calibration (5-member
ensembles' calibrated uncertainty on formation energy, the dielectric fold and Cv(300 K)), sweep_defaults (the
validation sweep behind the training defaults), peer_gnn (matgl's MEGNet on the same rows and time budget as CLOUD;
needs `pip install "matgl==4.1.2" "torch==2.13.0"`); with --only also scaling, cv300_long, sizes (time and peak
memory of v2 encoding from 8 to 1,024 atoms, `bench_sizes.py`) and screening (issue 23).
Each part's results carry the date and the command of the run that produced them, because partial runs merge into
the same file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
LATEST = RESULTS_DIR / "latest.json"
RESULTS_MD = HERE / "RESULTS.md"

SPEED_PARTS = ("encode", "mlm", "infer")
ACCURACY_PARTS = (
    "dielectric_cv",
    "matminer_cv",
    "ablation",
    "cli_formation",
    "calibration",
    "sweep_defaults",
)
DEFAULT_PARTS = SPEED_PARTS + ACCURACY_PARTS
# Studies outside the goals, asked for with --only: scaling (loss against model size and FLOPs, 10 min),
# cv300_long (CLOUD-DEBYE from scratch for 15 min), sizes (encoding cost against the cell size) and screening
# (issue 23: predict --output against the authors' pipeline, encode scaling, peak memory at 10 k and 100 k rows,
# the 5 M projection; bench_screening.py).
ALL_PARTS = DEFAULT_PARTS + ("scaling", "cv300_long", "sizes", "screening", "peer_gnn")


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    from benchmarks.speed_mlm import cpu_has_native_bf16

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "native_bf16": cpu_has_native_bf16(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load,
        "gpu": None,
    }


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in (
        "torch",
        "transformers",
        "tokenizers",
        "datasets",
        "pymatgen",
        "spglib",
        "scikit-learn",
        "numpy",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    try:
        out["repo_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        out["repo_commit"] = None
    return out


# ----------------------------------------------------------------------------------------------------------------
# Speed parts


def _json_benchmark(module: str, arguments: list[str], output: Path) -> dict:
    """Run `python -m benchmarks.<module> ... --json output` in a subprocess and return what it wrote, or a
    `status` record with the end of its stderr when it failed."""
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *arguments, "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0 or not output.exists():
        return {"status": f"failed (rc {completed.returncode})", "stderr_tail": completed.stderr[-2000:]}
    return json.loads(output.read_text())


def part_peer_gnn(accuracy: dict, budget_scale: float) -> dict:
    """matgl's MEGNet (`benchmarks/peer_gnn.py`, in a subprocess) on CLOUD's rows with CLOUD's time budget: the
    CLI formation-energy run's fine-tuning seconds (600 s if that part has not run) and the matminer run's 60 s per
    dielectric fold. CLOUD trains from scratch in both, so no pretraining time is added."""
    cli = accuracy.get("cli_formation") or {}
    selected = (cli.get("configs") or {}).get(cli.get("selected") or "", {})
    budgets = {
        "formation_energy": (
            selected.get("train_seconds") or 600.0,
            accuracy.get("cli_formation_energy_mae"),
        ),
        "dielectric": (
            60.0,
            ((accuracy.get("matminer_cv") or {}).get("n") or {}).get("cloud_v2", {}).get("mean"),
        ),
    }
    results = dict(accuracy.get("peer_gnn") or {})
    for task, (seconds, cloud_mae) in budgets.items():
        seconds *= budget_scale
        data = _json_benchmark(
            "peer_gnn", ["--task", task, "--seconds", f"{seconds:.0f}"], RESULTS_DIR / f"peer_gnn_{task}.json"
        )
        if "status" in data:
            results[task] = data
            continue
        results[task] = {
            "model": data["model"],
            "version": data["version"],
            "mae": data["mae"],
            "cloud_mae": cloud_mae,
            "seconds": data["seconds"],
            "budget_seconds": round(seconds, 1),
            "cloud_pretraining_seconds": 0,
            "settings": data["settings"],
        }
    return results


def part_encode(quick: bool) -> dict:
    """bench_encode.py in a subprocess (it writes results/encode.json), then the num_proc scaling."""
    arguments = ["--n", "300" if quick else "2000"]
    if quick:
        arguments += ["--skip-moyopy", "--skip-table-check"]
    data = _json_benchmark("bench_encode", arguments, RESULTS_DIR / "encode.json")
    if "status" in data:
        return data
    headline = data.get("headline", {})
    scaling = encode_num_proc_scaling(quick)
    return {
        "encode_ratio": headline.get("speedup_vs_authors"),
        # The package's default encoding (v2) over the bare spglib call; v1 beside it (headline).
        "encode_overhead": headline.get("encode_overhead_v2"),
        "encode_overhead_v1": headline.get("encode_overhead_v1"),
        "encode_num_proc_scaling": scaling.get("ratio"),
        "num_proc": scaling,
        "headline": headline,
        "arguments": [*arguments, "--json", str(RESULTS_DIR / "encode.json")],
    }


def encode_num_proc_scaling(quick: bool) -> dict:
    """`pre_encode` (datasets `map`) of real MP structures to SCOPE v2 token ids with num_proc 1 and 2 (bench_datasets)."""
    rows = 600 if quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        data = _json_benchmark(
            "bench_datasets", ["--rows", str(rows), "--version", "v2"], Path(folder) / "datasets.json"
        )
    if "status" in data:
        return data
    rates = data["structures_per_second"]
    return {
        "rows": rows,
        "structures_per_second": rates,
        "ratio": rates["pre_encode_num_proc_2"] / rates["pre_encode_num_proc_1"],
    }


def part_sizes(quick: bool) -> dict:
    """bench_sizes.py in a subprocess (it writes results/sizes.json): v2 encoding against SpacegroupAnalyzer, time
    and peak memory per structure from 8 to 1,024 atoms (up to 128 with --quick)."""
    arguments = ["--sizes", "8", "32", "128"] if quick else []
    data = _json_benchmark("bench_sizes", arguments, RESULTS_DIR / "sizes.json")
    if "status" in data:
        return data
    return {key: value for key, value in data.items() if key != "rows"} | {
        "rows": [
            {key: row[key] for key in ("kind", "atoms", "time_ratio", "v2_seconds", "v2_peak_mib")}
            for row in data["rows"]
        ]
    }


def part_screening(quick: bool) -> dict:
    """bench_screening.py in a subprocess (it writes results/screening.json): CIF -> prediction file against the
    authors' pipeline (4-layer/256 and BERT-base, fp32), encode scaling 1 -> 2 processes, peak memory, projection."""
    arguments = ["--threads", "2"]
    arguments += ["--n", "200", "--memory-rows", "2000", "4000"] if quick else ["--n", "800"]
    data = _json_benchmark("bench_screening", arguments, RESULTS_DIR / "screening.json")
    if "status" in data:
        return data
    return {**data["headline"], "details": data, "arguments": arguments}


def part_mlm(quick: bool) -> dict:
    from benchmarks import speed_mlm

    if quick:
        return speed_mlm.run(rows=1024, steps=8, batch_size=32, warmup_steps=2, rounds=1)
    return speed_mlm.run(rows=2048, steps=20, batch_size=32, warmup_steps=3, rounds=3)


def _parse_inference(stdout: str) -> dict:
    def number(pattern):
        match = re.search(pattern, stdout)
        return float(match.group(1)) if match else None

    return {
        "authors_structures_per_second": number(r"authors' path:\s+([\d.]+)"),
        "ours_structures_per_second": number(r"this package:\s+([\d.]+)"),
        "e2e_infer_ratio": number(r"speed-up: ([\d.]+)x"),
        "identical_scope": re.search(r"identical SCOPE strings (\d+/\d+)", stdout).group(1)
        if "identical SCOPE" in stdout
        else None,
        "max_prediction_difference": number(r"max \|prediction difference\| ([\d.e+-]+)"),
        "mean_tokens": number(r"mean tokens ([\d.]+)"),
        "bf16_max_difference_vs_fp32": number(r"bf16 vs fp32 on \d+ CIFs: max \|difference\| ([\d.e+-]+)"),
    }


def part_infer(quick: bool) -> dict:
    """bench_inference.py in a subprocess with peak RSS; BERT-base (the authors' size) and the 4-layer model, each
    with our side on SCOPE v1 (exact: identical strings and predictions) and on v2 (the package's default)."""
    runs = {}
    small = ["--layers", "4", "--hidden-size", "256", "--heads", "4", "--intermediate-size", "1024"]
    n = ["--n", "200" if quick else "400"]
    configs = {
        "bert_base": n,
        "bert_base_v2": [*n, "--scope-version", "v2"],
        "small_4layer": [*n, *small],
        "small_4layer_v2": [*n, *small, "--scope-version", "v2"],
    }
    from benchmarks.speed_mlm import cpu_has_native_bf16

    if cpu_has_native_bf16():  # as for MLM training: bf16 only where the CPU runs it natively
        configs["bert_base_v2_bf16"] = [*n, "--scope-version", "v2", "--dtype", "bfloat16"]
    for name, extra in configs.items():
        command = [sys.executable, str(HERE / "bench_inference.py"), "--threads", "2", *extra]
        with tempfile.TemporaryFile() as _:
            start = time.perf_counter()
            completed = subprocess.run(
                ["/usr/bin/time", "-v", *command] if Path("/usr/bin/time").exists() else command,
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
        if completed.returncode != 0:
            runs[name] = {
                "status": f"failed (rc {completed.returncode})",
                "stderr_tail": completed.stderr[-2000:],
            }
            continue
        result = _parse_inference(completed.stdout)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr)
        result["peak_rss_mib_both_paths_one_process"] = int(rss.group(1)) / 1024 if rss else None
        result["seconds"] = time.perf_counter() - start
        result["arguments"] = extra
        result["stdout_tail"] = completed.stdout[-1200:]
        runs[name] = result
    return {
        "e2e_infer_ratio": runs.get("bert_base", {}).get("e2e_infer_ratio"),
        "e2e_infer_ratio_v2": runs.get("bert_base_v2", {}).get("e2e_infer_ratio"),
        "e2e_infer_ratio_v2_small_4layer": runs.get("small_4layer_v2", {}).get("e2e_infer_ratio"),
        "e2e_infer_ratio_v2_bf16": runs.get("bert_base_v2_bf16", {}).get("e2e_infer_ratio"),
        "runs": runs,
    }


# ----------------------------------------------------------------------------------------------------------------


PART_KEYS = {
    "encode": ("speed", ["encode_ratio", "encode_overhead", "encode_num_proc_scaling", "encode"]),
    "mlm": ("speed", ["mlm_train_ratio", "mlm_train_ratio_v2", "mlm"]),
    "infer": ("speed", ["e2e_infer_ratio", "e2e_infer_ratio_v2", "infer"]),
    "dielectric_cv": (
        "accuracy",
        [
            "dielectric_mae",
            "cv300_mae",
            "cv300_mae_over_mad",
            "cv300_mae_over_mad_single_model",
            "dielectric_cv_details",
        ],
    ),
    "cv300_long": ("accuracy", ["cv300_debye_scratch_long"]),
    "matminer_cv": ("accuracy", ["matminer_cv", "matminer_cv_rows"]),
    "ablation": ("accuracy", ["ablation_scope_version"]),
    "scaling": ("scaling", []),
    "sizes": ("speed", ["sizes"]),
    "cli_formation": ("accuracy", ["cli_formation_energy_mae", "cli_formation"]),
    "screening": ("speed", ["screening"]),
    "calibration": ("accuracy", ["calibration", "calibration_details"]),
    "sweep_defaults": ("accuracy", ["defaults_sweep"]),
    "peer_gnn": ("accuracy", ["peer_gnn"]),
}
#: The keys of `accuracy.calibration.<task>` (issue 24; fractions).
CALIBRATION_KEYS = ("coverage_1sigma", "coverage_2sigma", "spearman", "miscalibration_area")


def changed(part: str, section: str) -> set[str]:
    owner, keys = PART_KEYS[part]
    return set(keys) if owner == section else set()


def run_parts(parts: list[str], quick: bool, budget_scale: float, threads: int | None = None) -> dict:
    from benchmarks import accuracy, scaling

    data = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    data.setdefault("speed", {})
    data.setdefault("accuracy", {})
    data.setdefault("runs", {})
    data["machine"] = machine_info()
    data["versions"] = versions()
    stamp = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "load_average_at_start": data["machine"]["load_average_at_start"],
    }

    def save(part: str):
        # Another `python -m benchmarks --only ...` may run at the same time: merge into the file as it is now.
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        current = json.loads(LATEST.read_text()) if LATEST.exists() else {}
        for section in ("speed", "accuracy"):
            merged = current.get(section, {})
            merged.update({k: v for k, v in data[section].items() if k in touched[section]})
            current[section] = merged
        if part == "scaling":
            current["scaling"] = data["scaling"]
        current.setdefault("runs", {})[part] = data["runs"][part]
        current["machine"], current["versions"] = data["machine"], data["versions"]
        LATEST.write_text(json.dumps(current, indent=2, default=float))

    touched = {"speed": set(), "accuracy": set()}
    import torch

    if threads:
        torch.set_num_threads(threads)

    for part in parts:
        start = time.perf_counter()
        print(f"=== {part} ===", flush=True)
        if part == "encode":
            result = part_encode(quick)
            data["speed"]["encode_ratio"] = result.get("encode_ratio")
            data["speed"]["encode_overhead"] = result.get("encode_overhead")
            data["speed"]["encode_num_proc_scaling"] = result.get("encode_num_proc_scaling")
            data["speed"]["encode"] = result
        elif part == "mlm":
            result = part_mlm(quick)
            data["speed"]["mlm_train_ratio"] = result["mlm_train_ratio"]
            data["speed"]["mlm_train_ratio_v2"] = result.get("mlm_train_ratio_v2")
            data["speed"]["mlm"] = result
        elif part == "infer":
            result = part_infer(quick)
            data["speed"]["e2e_infer_ratio"] = result["e2e_infer_ratio"]
            data["speed"]["e2e_infer_ratio_v2"] = result["e2e_infer_ratio_v2"]
            data["speed"]["infer"] = result
        elif part == "screening":
            data["speed"]["screening"] = part_screening(quick)
        elif part == "dielectric_cv":
            result = accuracy.run_dielectric_and_cv(budget_scale)
            data["accuracy"]["dielectric_mae"] = result["dielectric"]["cloud_pretrained"]["test_mae"]
            # The headline is the CLOUD-DEBYE ensemble (`finetune --ensemble K`); its seed-0 member beside it.
            ensemble = result["cv300"]["debye_pretrained_ensemble"]
            data["accuracy"]["cv300_mae"] = ensemble["test_mae"]
            data["accuracy"]["cv300_mae_over_mad"] = ensemble["test_mae_over_mad"]
            single = result["cv300"]["debye_pretrained"]
            data["accuracy"]["cv300_mae_over_mad_single_model"] = single["test_mae_over_mad"]
            data["accuracy"]["dielectric_cv_details"] = result
        elif part == "cv300_long":
            data["accuracy"]["cv300_debye_scratch_long"] = accuracy.run_cv300_long(900 * budget_scale)
        elif part == "matminer_cv":
            result = accuracy.run_matminer_cv(budget_scale)
            data["accuracy"]["matminer_cv"] = {
                task: {model: values[model] for model in ("cloud_v2", "composition_rf", "mean")}
                for task, values in result.items()
            }
            data["accuracy"]["matminer_cv_rows"] = {task: values["rows"] for task, values in result.items()}
        elif part == "ablation":
            previous = data["accuracy"].get("matminer_cv")
            data["accuracy"]["ablation_scope_version"] = accuracy.run_ablation(budget_scale, previous)
        elif part == "scaling":
            data["scaling"] = scaling.run(budget_scale)
        elif part == "sizes":
            data["speed"]["sizes"] = part_sizes(quick)
        elif part == "cli_formation":
            from benchmarks import cli_formation

            result = cli_formation.run(budget_scale)
            data["accuracy"]["cli_formation_energy_mae"] = result["selected_test_mae"]
            data["accuracy"]["cli_formation"] = result
        elif part == "calibration":
            from benchmarks import calibration

            result = calibration.run(members=5)
            # Tasks merge: a run of some tasks keeps the others' earlier figures.
            summary = dict(data["accuracy"].get("calibration") or {})
            details = dict(data["accuracy"].get("calibration_details") or {})
            for task, values in result["tasks"].items():
                summary[task] = {key: values[key] for key in CALIBRATION_KEYS}
                details[task] = values
            data["accuracy"]["calibration"] = summary
            data["accuracy"]["calibration_details"] = details
        elif part == "peer_gnn":
            data["accuracy"]["peer_gnn"] = part_peer_gnn(data["accuracy"], budget_scale)
        elif part == "sweep_defaults":
            from benchmarks import sweep_defaults

            sweep_json = RESULTS_DIR / "sweep_defaults.json"
            sweep_defaults.main(["--json", str(sweep_json)])
            data["accuracy"]["defaults_sweep"] = json.loads(sweep_json.read_text())
        data["runs"][part] = dict(
            stamp,
            seconds=time.perf_counter() - start,
            budget_scale=budget_scale,
            quick=quick,
            threads=threads,
        )
        touched["speed"] |= changed(part, "speed")
        touched["accuracy"] |= changed(part, "accuracy")
        save(part)
        print(f"=== {part} done in {time.perf_counter() - start:.0f} s ===", flush=True)
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="speed part only, small sizes (<= 10 min)")
    parser.add_argument(
        "--only", nargs="+", choices=ALL_PARTS, metavar="NAME", help=f"parts to run: {ALL_PARTS}"
    )
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiplies every training time budget"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the training parts (speed parts use 2 per side)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild RESULTS.md and plots from latest.json"
    )
    args = parser.parse_args(argv)

    from benchmarks import report

    if not args.report_only:
        parts = list(args.only) if args.only else (list(SPEED_PARTS) if args.quick else list(DEFAULT_PARTS))
        run_parts(parts, args.quick, args.budget_scale, args.threads)
    report.write_report()
    return 0
