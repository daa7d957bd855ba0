"""Issue 24: calibrated uncertainty of seed ensembles on three tasks' test rows.

Each task trains one `--ensemble K` (K = 5 by default) with the package's defaults for a new `small` model. The
members train and early-stop on the usual rows; the calibration is fitted on the default calibration split
(10 % of the training rows left after the validation hold-out, at least 200 rows and at most 25 %, seen by no
member), then the test rows are scored with the calibrated σ that the pipeline and `predict` report
(`modeling_cloud.training.uncertainty`):

- `formation_energy`: the CLI formation-energy benchmark's split (`benchmarks.cli_formation`: MatBench fold 0 as
  test), through `cloud-crystal finetune --ensemble K` and `predict --jsonl` as a user runs them;
- `dielectric`: the authors' dielectric fold (`bundled:cloud-dielectric` to train, `bundled:cloud-dielectric-test`
  to test), `finetune --ensemble K` through the Python API;
- `cv300`: the authors' Cv(300 K) split (`bundled:cloud-cv`, `bundled:cloud-cv-test`), `train-debye --ensemble K`;
  calibrated on Cv, scored on Cv.

Reported per task (fractions, not percents): `coverage_1sigma`, `coverage_2sigma` (coverage of the 95.45 %
interval, ±2σ for the Gaussian calibration), `spearman`, `miscalibration_area`, the same for the raw spread, the
calibration method and factor, the ensemble's and each member's test MAE, and whether both coverages are within 5
points of nominal (the issue's goal).

Usage (`--epochs`, `--rows` and `--size tiny` shrink a run, which the result then says under `reduced_budget`; the
issue's measurement leaves them out):

```bash
python -m benchmarks.calibration [--members 5] [--tasks formation_energy dielectric cv300] [--json FILE] \
    [--output-dir DIR] [--refit]
```

With `--output-dir DIR` the run keeps what it trained: DIR/<task>/ holds the ensemble checkpoint, `rows.json` (the
label, the ensemble's mean and the members' raw spread of every calibration and test row, and the members' own
values where the run has them: `member_predictions` for the API regression, the members' θ_D for Cv; the CLI
formation-energy test rows come from `predict --jsonl`, which gives the mean and spread only) and
`calibration_result.json`. A task whose `calibration_result.json` exists is not trained again; a task folder without
it (an interrupted run) is moved aside to `<task>.interrupted-<time>` and trained from the start. `--refit` trains
nothing: it refits the calibration on each saved task's calibration rows with the current
`modeling_cloud.training.uncertainty.fit_calibration` and scores its test rows (the in-run scores stay under
`in_run`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

TASKS = ("formation_energy", "dielectric", "cv300")
TOLERANCE = 0.05  # the goal: within 5 points of nominal
ROWS_FILE = "rows.json"
RESULT_FILE = "calibration_result.json"


def _scores(calibrated: dict, raw: dict) -> dict:
    from modeling_cloud.training.uncertainty import NOMINAL_1SIGMA, NOMINAL_2SIGMA

    within = (
        abs(calibrated["coverage_1sigma"] - NOMINAL_1SIGMA) <= TOLERANCE
        and abs(calibrated["coverage_2sigma"] - NOMINAL_2SIGMA) <= TOLERANCE
    )
    return {**{k: calibrated[k] for k in calibrated if k != "rows"}, "rows": calibrated["rows"], "raw": raw,
            "goal_met": bool(within)}  # fmt: skip


def _split_rows(split: dict, column: int, member_field: str | None) -> dict:
    """One property column of a split of `uncertainty_rows.json` (see `common.calibrate_ensemble`)."""
    rows = {key: [row[column] for row in split[key]] for key in ("label", "prediction", "spread")}
    if "members" in split:
        members = np.asarray(split["members"])
        rows[member_field] = (members[..., column] if members.ndim == 3 else members).tolist()
    return rows


def _write_rows(path: Path, splits: dict, name: str) -> None:
    path.write_text(json.dumps({"property": name, **splits}) + "\n")


def calibration_cross_validation(errors, spread, floor: bool = True, folds: int = 5, seed: int = 0) -> dict:
    """How the calibration methods cover rows they were not fitted on, from the calibration rows alone: `folds`-fold
    cross-validation (seeded shuffle) over them; for each variant the pooled held-out coverage of ±1σ and of the
    95 % interval. Variants: `one_factor_gaussian` (σ = k s, the issue's starting point), `fitted_gaussian` (the
    variance model `fit_calibration` keeps, without the conformal fallback) and `final` (`fit_calibration` as it
    is used). This is the evidence for the method that never looks at test rows."""
    from modeling_cloud.training.uncertainty import calibrated_sigma, fit_calibration, gaussian_nll_factor

    errors, spread = np.asarray(errors, dtype=float), np.asarray(spread, dtype=float)
    order = np.random.default_rng(seed).permutation(len(errors))
    inside = {name: [0, 0] for name in ("one_factor_gaussian", "fitted_gaussian", "final")}
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        e, s, e_out, s_out = errors[train], spread[train], np.abs(errors[part]), spread[part]
        k1 = gaussian_nll_factor(e, s)
        fit = fit_calibration(e, s, floor=floor)
        gaussian = calibrated_sigma(s_out, fit["gaussian_factor"], fit["gaussian_floor"])
        final = calibrated_sigma(s_out, fit["std_factor"], fit["std_floor"])
        final_95 = calibrated_sigma(s_out, fit["interval_95_factor"], fit["interval_95_floor"])
        for name, sigma, half_95 in (
            ("one_factor_gaussian", k1 * s_out, 2 * k1 * s_out),
            ("fitted_gaussian", gaussian, 2 * gaussian),
            ("final", final, final_95),
        ):
            inside[name][0] += int(np.sum(e_out <= sigma))
            inside[name][1] += int(np.sum(e_out <= half_95))
    return {
        name: {"coverage_1sigma": one / len(errors), "coverage_2sigma": two / len(errors)}
        for name, (one, two) in inside.items()
    } | {"folds": folds, "rows": int(len(errors))}


def refit(task_dir: Path, floor: bool = True) -> dict:
    """Fit the calibration on the calibration rows saved in `task_dir/rows.json` with the current
    `fit_calibration` and score the test rows with it (raw and calibrated), never looking at the test rows to fit.
    `floor=False` for a Debye ensemble, whose checkpoint stores one factor only (see `CloudConfig`)."""
    from modeling_cloud.training.uncertainty import calibrated_report, calibration_config, fit_calibration

    rows = json.loads((task_dir / ROWS_FILE).read_text())

    def errors_spread(split: str) -> tuple[np.ndarray, np.ndarray]:
        values = rows[split]
        return np.subtract(values["prediction"], values["label"]), np.asarray(values["spread"], dtype=float)

    fit = fit_calibration(*errors_spread("calibration"), floor=floor)
    cross_validation = calibration_cross_validation(*errors_spread("calibration"), floor=floor)
    errors, spread = errors_spread("test")
    calibrated = calibrated_report(
        errors,
        spread,
        (fit["std_factor"], fit["interval_95_factor"]),
        (fit["std_floor"], fit["interval_95_floor"]),
    )
    return {
        **_scores(calibrated, calibrated_report(errors, spread, None)),
        "fit": fit,
        "calibration_rows_cross_validation": cross_validation,
        "calibration": calibration_config({rows["property"]: fit}),
        "test_mae": float(np.mean(np.abs(errors))),
    }


def _api_task(task: str, members: int, size: str, epochs: int | None, rows: int | None, folder: Path) -> dict:
    from modeling_cloud.training.finetune import run_finetune
    from modeling_cloud.training.options import settings_from_dict
    from modeling_cloud.training.train_debye import run_train_debye

    cut = f"[:{rows}]" if rows else ""
    if task == "dielectric":
        command, name = "finetune", "n"
        values = {
            "train": [f"bundled:cloud-dielectric{cut}"],
            "test": [f"bundled:cloud-dielectric-test{cut}"],
            "target": ["n"],
        }
    else:
        command, name = "train-debye", "heat_capacity"
        values = {"train": [f"bundled:cloud-cv{cut}"], "test": [f"bundled:cloud-cv-test{cut}"]}
    values.update(
        output_dir=str(folder / task),
        model_size=size,
        scope_version="v1",
        ensemble=members,
        disable_tqdm=True,
    )
    if epochs:
        values["num_train_epochs"] = float(epochs)
    settings = settings_from_dict(command, values)
    started = time.perf_counter()
    result = (run_finetune if command == "finetune" else run_train_debye)(settings)
    scores = result["uncertainty"]["test"][name]
    saved = json.loads((folder / task / "uncertainty_rows.json").read_text())
    column = saved["names"].index(name) if name in saved["names"] else 0
    _write_rows(
        folder / task / ROWS_FILE,
        {
            split: _split_rows(saved[split], column, saved["member_field"])
            for split in ("calibration", "validation", "test")
            if split in saved
        },
        name,
    )
    return {
        **_scores(scores["calibrated"], scores["raw"]),
        "calibration": result["calibration"],
        "test_mae": result["metrics"].get("test_mae"),
        "members_test_mae": [member["metrics"].get("test_mae") for member in result["members"]],
        "members_validation_mae": [member["metrics"].get("eval_mae") for member in result["members"]],
        "defaults": settings.defaults_note,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cli_task(members: int, epochs: int | None, folder: Path) -> dict:
    from benchmarks import cli_formation

    data = cli_formation.write_tables(folder)
    extra = ["--ensemble", str(members)] + (["--num-train-epochs", str(epochs)] if epochs else [])
    name = f"ensemble_{members}"
    config = cli_formation.run_config(name, extra, data, folder)
    scores = config["uncertainty_test"]
    saved = json.loads((folder / name / "uncertainty_rows.json").read_text())
    jsonl, test_csv = folder / f"{name}.predictions.jsonl", data["paths"]["test"]
    test = {
        "label": data["labels"][data["splits"]["test"]].tolist(),
        "prediction": cli_formation._predictions(jsonl, test_csv).tolist(),
        "spread": cli_formation._predictions(jsonl, test_csv, "std_raw").tolist(),
    }
    splits = {
        split: _split_rows(saved[split], 0, saved["member_field"])
        for split in ("calibration", "validation")
        if split in saved
    }
    _write_rows(folder / ROWS_FILE, {**splits, "test": test}, cli_formation.TARGET)
    members_test_mae = cli_member_test_predictions(folder, members)
    return {
        **_scores(scores["calibrated"], scores["raw"]),
        "calibration": config["calibration"],
        "test_mae": config["test_mae"],
        "members_test_mae": members_test_mae,
        "members_train_seconds": cli_member_train_seconds(folder, members),
        "members_validation_mae": [member["metrics"].get("eval_mae") for member in config["members"]],
        "command": config["command"],
        "seconds": config["seconds"],
    }


def cli_member_test_predictions(folder: Path, members: int) -> list[float]:
    """Each member of the CLI task's ensemble (`folder/ensemble_K/member-<i>`) through `cloud-crystal predict` on
    the test rows (kept as `ensemble_K.member-<i>.predictions.jsonl`, not redone when present); adds them to
    `rows.json` as the test rows' `member_predictions` (rows × members) and returns each member's test MAE."""
    from benchmarks import cli_formation

    name, test_csv = f"ensemble_{members}", folder / "test.csv"
    rows = json.loads((folder / ROWS_FILE).read_text())
    columns = []
    for index in range(members):
        jsonl = folder / f"{name}.member-{index}.predictions.jsonl"
        if not jsonl.exists():
            model = folder / name / f"member-{index}"
            command = ["predict", "--model", str(model), str(test_csv), "--jsonl", "--batch-size", "128"]
            partial = jsonl.with_suffix(".partial")
            cli_formation._run([*cli_formation._cli(), *command], jsonl.with_suffix(".log"), stdout=partial)
            partial.rename(jsonl)
        columns.append(cli_formation._predictions(jsonl, test_csv))
    predictions = np.stack(columns, axis=1)
    rows["test"]["member_predictions"] = predictions.tolist()
    _write_rows(folder / ROWS_FILE, {k: v for k, v in rows.items() if k != "property"}, rows["property"])
    labels = np.asarray(rows["test"]["label"])
    return [float(np.mean(np.abs(predictions[:, i] - labels))) for i in range(members)]


def cli_member_train_seconds(folder: Path, members: int) -> list[float]:
    """Each member's `train_runtime` (seconds of `Trainer.train`) from the CLI task's finetune log."""
    import re

    log = (folder / f"ensemble_{members}.finetune.log").read_text()
    return [float(value) for value in re.findall(r"'train_runtime': '([0-9.]+)'", log)]


def run(
    members: int = 5,
    tasks: tuple[str, ...] = TASKS,
    size: str = "small",
    epochs: int | None = None,
    rows: int | None = None,
    output_dir: Path | None = None,
) -> dict:
    """Train and score one calibrated ensemble per task; `epochs` / `rows` / `size` shrink a smoke run. With
    `output_dir` everything a task trained and predicted is kept there, and finished tasks are not retrained."""
    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {members}")
    results: dict = {
        "members": members,
        "size": size,
        # A run with fewer epochs or rows than the defaults is labelled, never passed off as the full measurement.
        "reduced_budget": {"epochs_per_member": epochs, "rows": rows} if (epochs or rows) else None,
        "tasks": {},
    }
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        root = Path(output_dir) if output_dir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            task_dir = root / task
            if (task_dir / RESULT_FILE).exists():
                results["tasks"][task] = json.loads((task_dir / RESULT_FILE).read_text())
                print(f"[calibration] {task}: kept from {task_dir / RESULT_FILE}, not retrained", flush=True)
                continue
            if task_dir.exists():  # an interrupted run: keep it aside, start the task over
                aside = root / f"{task}.interrupted-{time.strftime('%Y%m%dT%H%M%S')}"
                shutil.move(task_dir, aside)
                print(f"[calibration] {task}: unfinished folder moved to {aside}", flush=True)
            task_dir.mkdir(parents=True)
            stamp = {
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": f"python -m benchmarks.calibration --members {members} --tasks {task}"
                + (f" --size {size}" if size != "small" else "")
                + (f" --epochs {epochs}" if epochs else "")
                + (f" --rows {rows}" if rows else "")
                + f" (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            }
            started = time.perf_counter()
            if task == "formation_energy":
                if size != "small" or rows:
                    raise ValueError(
                        "formation_energy runs the CLI benchmark's command: size small, all rows"
                    )
                result = _cli_task(members, epochs, task_dir)
            else:
                result = _api_task(task, members, size, epochs, rows, root)
            result["reduced_budget"] = results["reduced_budget"]
            result["members_count"] = members
            result["run"] = {**stamp, "seconds": round(time.perf_counter() - started, 1)}
            (task_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
            results["tasks"][task] = result
            print(f"[calibration] {task}: {result}", flush=True)
    return results


def refit_saved(output_dir: Path, tasks: tuple[str, ...] = TASKS) -> dict:
    """[`refit`] every task of `output_dir` that finished; the in-run scores stay under `in_run`."""
    results: dict = {"tasks": {}}
    for task in tasks:
        task_dir = Path(output_dir) / task
        if not (task_dir / RESULT_FILE).exists():
            print(f"[calibration] {task}: no finished run in {task_dir}", flush=True)
            continue
        saved = json.loads((task_dir / RESULT_FILE).read_text())
        in_run = saved.get("in_run") or {key: saved[key] for key in saved if key not in ("in_run", "fit")}
        if task == "formation_energy" and None in (in_run.get("members_test_mae") or [None]):
            members = saved.get("members_count") or 5
            in_run["members_test_mae"] = cli_member_test_predictions(task_dir, members)
            in_run["members_train_seconds"] = cli_member_train_seconds(task_dir, members)
        result = {**in_run, **refit(task_dir, floor=task != "cv300"), "in_run": in_run}
        results["tasks"][task] = result
        results.setdefault("members", saved.get("members_count"))
        results.setdefault("reduced_budget", saved.get("reduced_budget"))
        print(f"[calibration] {task} refitted: {result}", flush=True)
    return results


def merge_latest(results: dict, latest: Path) -> None:
    """Merge `results["tasks"]` into `latest` (benchmarks/results/latest.json) as `python -m benchmarks` does:
    `accuracy.calibration.<task>` (the four scores), `accuracy.calibration_details.<task>` (everything) and, for a
    task that recorded its run, `runs.calibration_<task>`. Other tasks' figures are kept."""
    from benchmarks.run_all import CALIBRATION_KEYS

    data = json.loads(latest.read_text()) if latest.exists() else {}
    accuracy = data.setdefault("accuracy", {})
    summary = dict(accuracy.get("calibration") or {})
    details = dict(accuracy.get("calibration_details") or {})
    for task, values in results["tasks"].items():
        summary[task] = {key: values[key] for key in CALIBRATION_KEYS}
        details[task] = values
        if values.get("run"):
            data.setdefault("runs", {})[f"calibration_{task}"] = values["run"]
    accuracy["calibration"], accuracy["calibration_details"] = summary, details
    latest.write_text(json.dumps(data, indent=2, default=float))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--size", default="small", choices=("tiny", "small"))
    parser.add_argument(
        "--epochs", type=int, default=None, help="smoke runs only: override the default epochs"
    )
    parser.add_argument("--rows", type=int, default=None, help="smoke runs only: first N rows of each file")
    parser.add_argument("--json", type=Path, help="write the result dict here")
    parser.add_argument("--output-dir", type=Path, help="keep every task's checkpoint, rows and result here")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="train nothing: refit and rescore the tasks saved in --output-dir",
    )
    parser.add_argument(
        "--merge-latest",
        action="store_true",
        help="merge the tasks' results into benchmarks/results/latest.json (as `python -m benchmarks` does)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.refit:
        if not args.output_dir:
            parser.error("--refit needs --output-dir")
        result = refit_saved(args.output_dir, tuple(args.tasks))
    else:
        result = run(args.members, tuple(args.tasks), args.size, args.epochs, args.rows, args.output_dir)
    if args.merge_latest:
        merge_latest(result, Path(__file__).parent / "results" / "latest.json")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
