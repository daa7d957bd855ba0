"""Issue 24: the sweep behind the training commands' defaults (`modeling_cloud.training.defaults`), on validation
rows only.

Each configuration is one `finetune` / `train-debye` run through the Python API (`settings_from_dict`, the same
code path as the command line) from scratch, with the flags the table sets (learning rate, warm-up, epochs, batch
size) given explicitly and early stopping off, so that the whole validation curve is recorded (one point per epoch).

Tasks and their rows (no benchmark's test rows are read, ever):

- `formation_energy`: the training rows of the CLI formation-energy benchmark (`benchmarks.cli_formation`: MP
  formation energies minus MatBench fold 0, minus that benchmark's own 10 % validation rows), i.e. 2,835 rows, as
  SCOPE v2 strings; `finetune` holds out a seeded 10 % of them (seed 0) as this sweep's validation rows. The CLI
  benchmark's fold-0 test rows and its validation rows are not in the table at all.
- `dielectric`: the authors' dielectric fold, training file only (`bundled:cloud-dielectric`, 3,811 rows, SCOPE v1
  strings); `finetune` holds out 10 % (seed 0). The test file is not read.
- `cv300`: `train-debye` on the authors' Cv training file (`bundled:cloud-cv`, 1,213 rows); 10 % held out (seed 0).

Output: one JSON record per configuration (task, command, size, learning rate, warm-up, batch, epochs, the
validation MAE after every epoch, the best epoch and its MAE, wall and CPU seconds), appended to `--json` as each
run ends, so a sweep cut short keeps what it measured; configurations already in the file are skipped.

Usage (niced, one thread, on a shared machine):

```bash
OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.sweep_defaults --tasks formation_energy dielectric \
    --learning-rates 3e-4 1e-3 1e-4 5e-5 --epochs 8 --json benchmarks/results/sweep_defaults.json
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


def formation_energy_training_table(folder: Path) -> Path:
    """The CLI benchmark's training rows (never its validation or fold-0 test rows) as a CSV of SCOPE v2 strings."""
    import pandas as pd

    from benchmarks import cli_formation, common

    rows, labels = cli_formation._rows_and_labels()
    splits = cli_formation._splits(len(rows))
    strings = common.mp_scope_strings("v2")
    train = [p for p in splits["train"] if strings[rows[p]] is not None]
    forbidden = set(splits["test"].tolist()) | set(splits["validation"].tolist())
    if forbidden & set(train):
        raise RuntimeError("the sweep's rows overlap the CLI benchmark's validation or test rows")
    frame = pd.DataFrame({"scope": [strings[rows[p]] for p in train], cli_formation.TARGET: labels[train]})
    path = folder / "formation_energy_train.csv"
    frame.to_csv(path, index=False)
    return path


def _task_settings(task: str, folder: Path) -> dict:
    from benchmarks import cli_formation

    if task == "formation_energy":
        return {
            "train": [str(formation_energy_training_table(folder))],
            "target": [cli_formation.TARGET],
            "target_unit": ["eV/atom"],
            "scope_version": "v2",
        }
    if task == "dielectric":
        return {"train": ["bundled:cloud-dielectric"], "target": ["n"], "scope_version": "v1"}
    return {"train": ["bundled:cloud-cv"], "scope_version": "v1"}


def run_config(task: str, size: str, lr: float, epochs: int, batch: int, warmup: float, folder: Path) -> dict:
    """One run from scratch; the validation MAE after every epoch."""
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
        **_task_settings(task, folder),
        "output_dir": str(output),
        "model_size": size,
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
        "start": "scratch",
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


def _key(record: dict) -> tuple:
    return (
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
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.05, help="warm-up fraction of the steps")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/sweep_defaults.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    records = json.loads(args.json.read_text())["runs"] if args.json.exists() else []
    done = {_key(record) for record in records}
    with tempfile.TemporaryDirectory(prefix="sweep-defaults-") as tmp:
        # Learning rates outermost, so that a sweep cut short has every task at the first rates.
        for lr in args.learning_rates:
            for task in args.tasks:
                key = (task, args.size, lr, args.epochs, args.batch_size, args.warmup)
                if key in done:
                    continue
                record = run_config(task, args.size, lr, args.epochs, args.batch_size, args.warmup, Path(tmp))
                records.append(record)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"runs": records}, indent=2) + "\n")
                print(
                    f"[sweep] {task} {args.size} lr {lr:g} x {args.epochs} epochs: best validation MAE "
                    f"{record['best_validation_mae']:.4g} at epoch {record['best_epoch']} "
                    f"({record['wall_seconds']} s wall, {record['cpu_seconds']} s CPU)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
