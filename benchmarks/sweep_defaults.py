"""Issue 24: the sweep behind the training commands' defaults (`modeling_cloud.training.defaults`), on validation
rows only.

Each configuration is one `finetune` / `train-debye` run through the Python API (`settings_from_dict`, the same
code path as the command line) with the flags the table sets (learning rate, warm-up, epochs, batch size) given
explicitly and early stopping off, so that the whole validation curve is recorded (one point per epoch). A run
starts from scratch (`--size`), or with `--pretrained DIR` from a v1 CLOUD checkpoint pretrained here:
`--pretrain-steps N` first runs `cloud-crystal pretrain` (through the API, the command's own defaults apart from the
size and the steps) on the accuracy benchmark's v1 corpus minus every string of a test split and of the CLI
formation-energy benchmark's validation and test rows (`pretraining_corpus_table`).

Tasks and their rows (no benchmark's test rows are read, ever):

- `formation_energy`: the training rows of the CLI formation-energy benchmark (`benchmarks.cli_formation`: MP
  formation energies minus MatBench fold 0, minus that benchmark's own 10 % validation rows), i.e. 2,835 rows, as
  SCOPE v2 strings (v1 strings from a v1 checkpoint); `finetune` holds out a seeded 10 % of them (seed 0) as this
  sweep's validation rows. The CLI benchmark's fold-0 test rows and its validation rows are not in the table at all.
- `dielectric`: the authors' dielectric fold, training file only (`bundled:cloud-dielectric`, 3,811 rows, SCOPE v1
  strings); `finetune` holds out 10 % (seed 0). The test file is not read.
- `cv300`: `train-debye` on the authors' Cv training file (`bundled:cloud-cv`, 1,213 rows); 10 % held out (seed 0).

Output: one JSON record per configuration (task, command, start, size, learning rate, warm-up, batch, epochs, the
validation MAE after every epoch, the best epoch and its MAE, wall and CPU seconds), appended to `--json` as each
run ends, so a sweep cut short keeps what it measured; configurations already in the file are skipped. What the
records choose is `recommend` (read by the report); a long run (`--epochs 60`) is read for early stopping by
`patience_outcome`.

Usage (one thread, on a shared machine):

```bash
OMP_NUM_THREADS=1 python -m benchmarks.sweep_defaults --tasks formation_energy dielectric \
    --learning-rates 3e-4 1e-3 1e-4 5e-5 --epochs 10 --json benchmarks/results/sweep_defaults.json
OMP_NUM_THREADS=1 python -m benchmarks.sweep_defaults --size tiny --pretrained ckpt-tiny --pretrain-steps 3000 \
    --tasks formation_energy dielectric cv300 --epochs 10
OMP_NUM_THREADS=1 python -m benchmarks.sweep_defaults --size tiny --learning-rates 3e-4 --warmups 0 0.1 --epochs 10
OMP_NUM_THREADS=1 python -m benchmarks.sweep_defaults --size tiny --learning-rates 3e-4 --epochs 60
```
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

TASKS = ("formation_energy", "dielectric", "cv300")
COMMAND_OF_TASK = {"formation_energy": "finetune", "dielectric": "finetune", "cv300": "train-debye"}


def formation_energy_training_table(folder: Path, version: str = "v2") -> Path:
    """The CLI benchmark's training rows (never its validation or fold-0 test rows) as a CSV of SCOPE strings of
    `version` (v2 from scratch, as the CLI benchmark; v1 for a start from the v1 checkpoint pretrained here)."""
    import pandas as pd

    from benchmarks import cli_formation, common

    rows, labels = cli_formation._rows_and_labels()
    splits = cli_formation._splits(len(rows))
    strings = common.mp_scope_strings(version)
    train = [p for p in splits["train"] if strings[rows[p]] is not None]
    forbidden = set(splits["test"].tolist()) | set(splits["validation"].tolist())
    if forbidden & set(train):
        raise RuntimeError("the sweep's rows overlap the CLI benchmark's validation or test rows")
    frame = pd.DataFrame({"scope": [strings[rows[p]] for p in train], cli_formation.TARGET: labels[train]})
    path = folder / f"formation_energy_train_{version}.csv"
    frame.to_csv(path, index=False)
    return path


def pretraining_corpus_table(folder: Path) -> tuple[Path, dict]:
    """The v1 MLM corpus of the accuracy benchmark (authors' 10 k pretraining strings, the dielectric and Cv
    training files, the bundled MP structures) minus every string of a test split (dielectric, Cv) and of the CLI
    formation-energy benchmark's validation and fold-0 test rows, so that the checkpoint has not seen them even
    without labels. Returns the CSV (one column `scope`) and the counts."""
    import pandas as pd

    from benchmarks import cli_formation, common
    from benchmarks.accuracy import pretraining_corpus_v1
    from dataset_builders import load_cloud_example

    rows, _ = cli_formation._rows_and_labels()
    splits = cli_formation._splits(len(rows))
    mp_v1 = common.mp_scope_strings("v1")
    held_out = {mp_v1[rows[p]] for name in ("validation", "test") for p in splits[name]} - {None}
    tests = set(load_cloud_example("dielectric")["test"]["scope"]) | set(
        load_cloud_example("cv")["test"]["scope"]
    )
    corpus, counts = pretraining_corpus_v1(tests | held_out)
    path = folder / "pretraining_corpus_v1.csv"
    pd.DataFrame({"scope": corpus}).to_csv(path, index=False)
    return path, counts


def pretrain_checkpoint(size: str, max_steps: int, output: Path) -> dict:
    """`cloud-crystal pretrain` through the Python API (the command's own defaults apart from the size and the
    number of steps) on `pretraining_corpus_table`; the checkpoint the sweep's "cloud" starts fine-tune."""
    from modeling_cloud.training.options import settings_from_dict
    from modeling_cloud.training.pretrain import run_pretrain

    output.mkdir(parents=True, exist_ok=True)
    corpus, counts = pretraining_corpus_table(output.parent)
    settings = settings_from_dict(
        "pretrain",
        {
            "train": [str(corpus)],
            "input_column": "scope",
            "scope_version": "v1",
            "model_size": size,
            "max_steps": max_steps,
            "output_dir": str(output),
            "seed": 0,
            "save_total_limit": 1,
            "disable_tqdm": True,
        },
    )
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_pretrain(settings)
    info = {
        "size": size,
        "max_steps": max_steps,
        "corpus": counts,
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "validation": {
            k: v for k, v in (result.get("validation") or {}).items() if isinstance(v, (int, float))
        },
    }
    (output / "sweep_pretraining.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _task_settings(task: str, folder: Path, version: str = "v2") -> dict:
    from benchmarks import cli_formation

    if task == "formation_energy":
        return {
            "train": [str(formation_energy_training_table(folder, version))],
            "target": [cli_formation.TARGET],
            "target_unit": ["eV/atom"],
            "scope_version": version,
        }
    if task == "dielectric":
        return {"train": ["bundled:cloud-dielectric"], "target": ["n"], "scope_version": "v1"}
    return {"train": ["bundled:cloud-cv"], "scope_version": "v1"}


def run_config(
    task: str,
    size: str,
    lr: float,
    epochs: int,
    batch: int,
    warmup: float,
    folder: Path,
    pretrained: Path | None = None,
) -> dict:
    """One run, from scratch or from the v1 checkpoint `pretrained`; the validation MAE after every epoch."""
    from transformers import TrainerCallback

    from modeling_cloud.training.finetune import run_finetune
    from modeling_cloud.training.options import settings_from_dict
    from modeling_cloud.training.train_debye import run_train_debye

    curve: list[float] = []

    class RecordValidation(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics and "eval_mae" in metrics and len(curve) < int(state.epoch or 0) + 1:
                curve.append(float(metrics["eval_mae"]))

    command = COMMAND_OF_TASK[task]
    output = Path(tempfile.mkdtemp(prefix=f"sweep-{task}-", dir=folder))
    values = {
        **_task_settings(task, folder, "v1" if pretrained else "v2"),
        "output_dir": str(output),
        **({"pretrained": str(pretrained)} if pretrained else {"model_size": size}),
        "learning_rate": lr,
        "num_train_epochs": float(epochs),
        "per_device_train_batch_size": batch,
        "warmup_steps": warmup,
        "early_stopping_patience": 0,
        "validation_fraction": 0.1,
        "seed": 0,
        "save_total_limit": 1,
        "disable_tqdm": True,
    }
    settings = settings_from_dict(command, values)
    run = run_finetune if command == "finetune" else run_train_debye
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(settings, callbacks=[RecordValidation()])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    curve = curve[:epochs]
    best = int(np.argmin(curve)) if curve else None
    return {
        "task": task,
        "command": command,
        "start": "cloud" if pretrained else "scratch",
        **({"checkpoint": str(pretrained)} if pretrained else {}),
        "size": size,
        "learning_rate": lr,
        "warmup": warmup,
        "batch_size": batch,
        "epochs": epochs,
        "validation_curve": curve,
        "best_epoch": None if best is None else best + 1,
        "best_validation_mae": None if best is None else curve[best],
        "selected_validation_mae": float(result["validation"]["eval_mae"]),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
    }


def patience_outcome(curve: list[float], patience: int | None) -> dict:
    """What early stopping with `patience` epochs (None: off) would have kept from a run's validation curve: the
    epoch at which it stops, and the best epoch and MAE up to there (the checkpoint `load_best_model_at_end`
    restores). The curve must come from a run with early stopping off and the same number of epochs, so that the
    learning-rate schedule is the one the stopped run would have had."""
    best, stop = 0, len(curve)
    for epoch, value in enumerate(curve):
        if value < curve[best]:
            best = epoch
        elif patience is not None and epoch - best >= patience:
            stop = epoch + 1
            break
    return {"stop_epoch": stop, "best_epoch": best + 1, "best_validation_mae": curve[best]}


#: The settings every learning-rate comparison shares (the protocol of the first sweep).
BASE_WARMUP, BASE_BATCH, BASE_EPOCHS = 0.05, 64, 10

#: Early stopping keeps a patience when what it keeps is within this fraction of the best of the whole curve.
PATIENCE_SLACK = 0.01


def is_long_curve(run: dict) -> bool:
    """A run long enough to read early stopping off (at least 30 epochs, every epoch's validation recorded)."""
    return run["epochs"] >= 30 and len(run["validation_curve"]) == run["epochs"]


def _relative_scores(runs: list[dict], setting: str, tasks: list[str] | None = None) -> dict:
    """``{value: mean over tasks of best validation MAE / the best MAE of that task}`` for the values of ``setting``
    that every task has (each task weighs the same whatever its unit); ``{}`` when no value is complete. ``tasks``:
    the tasks each value needs (default: those in ``runs``)."""
    tasks = sorted(tasks or {run["task"] for run in runs})
    by_value: dict = {}
    for run in runs:
        by_value.setdefault(run[setting], {})[run["task"]] = run["best_validation_mae"]
    complete = {value: maes for value, maes in by_value.items() if set(maes) == set(tasks)}
    if not complete:
        return {}
    best = {task: min(maes[task] for maes in complete.values()) for task in tasks}
    return {value: sum(maes[t] / best[t] for t in tasks) / len(tasks) for value, maes in complete.items()}


def recommend(runs: list[dict]) -> list[dict]:
    """What the sweep chooses for each (command, start, size) it measured, from validation rows only.

    - learning rate: the lowest mean relative MAE over the tasks (each task's MAE over its best), 10 epochs, 5 %
      warm-up, batch 64;
    - warm-up and batch size: the same score at the chosen rate, over the same tasks as the rate (a value
      measured on fewer tasks chooses nothing);
    - patience: from the long curves at the chosen rate (early stopping off, `patience_outcome`), one per task of
      the rate's comparison, the smallest patience that keeps, on every task, a validation MAE within
      ``PATIENCE_SLACK`` of the curve's best.
    """
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["command"], run.get("start", "scratch"), run["size"]), []).append(run)
    chosen = []
    for (command, start, size), group in sorted(groups.items()):
        short = [r for r in group if r["epochs"] == BASE_EPOCHS]
        rates = _relative_scores(
            [r for r in short if r["warmup"] == BASE_WARMUP and r["batch_size"] == BASE_BATCH],
            "learning_rate",
        )
        if len(rates) < 2:  # no comparison yet
            continue
        rate = min(rates, key=rates.get)
        tasks = sorted({r["task"] for r in short if r["learning_rate"] == rate})
        at_rate = [r for r in short if r["learning_rate"] == rate]
        warmups = _relative_scores([r for r in at_rate if r["batch_size"] == BASE_BATCH], "warmup", tasks)
        batches = _relative_scores([r for r in at_rate if r["warmup"] == BASE_WARMUP], "batch_size", tasks)
        long_runs = [r for r in group if r["learning_rate"] == rate and is_long_curve(r)]
        patience = None
        if {r["task"] for r in long_runs} == set(tasks):
            for candidate in (5, 10, 20, 30):
                if all(
                    patience_outcome(r["validation_curve"], candidate)["best_validation_mae"]
                    <= (1 + PATIENCE_SLACK) * min(r["validation_curve"])
                    for r in long_runs
                ):
                    patience = candidate
                    break
        chosen.append(
            {
                "command": command,
                "start": start,
                "size": size,
                "tasks": sorted({r["task"] for r in group}),
                "learning_rate": rate,
                "learning_rate_scores": rates,
                "warmup": min(warmups, key=warmups.get) if len(warmups) > 1 else None,
                "warmup_scores": warmups if len(warmups) > 1 else {},
                "batch_size": min(batches, key=batches.get) if len(batches) > 1 else None,
                "batch_scores": batches if len(batches) > 1 else {},
                "patience": patience,
                "long_curves": [
                    {
                        "task": r["task"],
                        "epochs": r["epochs"],
                        "best_epoch": r["best_epoch"],
                        "best_validation_mae": r["best_validation_mae"],
                    }
                    for r in long_runs
                ],
            }
        )
    return chosen


def _key(record: dict) -> tuple:
    return (
        record.get("start", "scratch"),
        record["task"],
        record["size"],
        record["learning_rate"],
        record["epochs"],
        record["batch_size"],
        record["warmup"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=["formation_energy", "dielectric"])
    parser.add_argument("--size", default="small", choices=("tiny", "small"))
    parser.add_argument("--learning-rates", nargs="+", type=float, default=[3e-4, 1e-3, 1e-4, 5e-5])
    parser.add_argument("--epochs", type=int, default=BASE_EPOCHS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    parser.add_argument(
        "--warmups", nargs="+", type=float, default=[0.05], help="warm-up fractions of the steps"
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="start every run from this v1 checkpoint (made by --pretrain-steps) instead of from scratch",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        help="first pretrain a --size checkpoint for this many steps into --pretrained (skipped if it exists)",
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/sweep_defaults.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    saved = json.loads(args.json.read_text()) if args.json.exists() else {}
    records, pretraining = saved.get("runs", []), saved.get("pretraining", {})
    if args.pretrain_steps:
        if args.pretrained is None:
            parser.error("--pretrain-steps needs --pretrained (where the checkpoint goes)")
        if not (args.pretrained / "config.json").exists():
            pretraining[args.size] = pretrain_checkpoint(args.size, args.pretrain_steps, args.pretrained)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"runs": records, "pretraining": pretraining}, indent=2) + "\n")
    start = "cloud" if args.pretrained else "scratch"
    done = {_key(record) for record in records}
    with tempfile.TemporaryDirectory(prefix="sweep-defaults-") as tmp:
        # Learning rates outermost, so that a sweep cut short has every task at the first rates.
        for lr in args.learning_rates:
            for warmup in args.warmups:
                for batch in args.batch_sizes:
                    for task in args.tasks:
                        if (start, task, args.size, lr, args.epochs, batch, warmup) in done:
                            continue
                        record = run_config(
                            task, args.size, lr, args.epochs, batch, warmup, Path(tmp), args.pretrained
                        )
                        records.append(record)
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(
                            json.dumps({"runs": records, "pretraining": pretraining}, indent=2) + "\n"
                        )
                        print(
                            f"[sweep] {start} {task} {args.size} lr {lr:g} warm-up {warmup:g} batch {batch} x "
                            f"{args.epochs} epochs: best validation MAE {record['best_validation_mae']:.4g} at "
                            f"epoch {record['best_epoch']} ({record['wall_seconds']} s wall, "
                            f"{record['cpu_seconds']} s CPU)",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
