"""Issue 24, point 3: a structure-graph network from PyPI on the same rows and time budget as CLOUD.

The peer is MEGNet from matgl (PyTorch Geometric backend; DGL has no wheel for torch 2.13), with matgl's own
defaults: `MEGNet()` as constructed (cutoff 4 Å, Gaussian bond expansion, 3 blocks, Set2Set readout),
`Structure2Graph` graphs over the training rows' elements, `ModelLightningModule` (Adam lr 1e-3, cosine decay over
1,000 steps to 1 %, MSE loss on targets scaled by the training mean and standard deviation) and a Lightning
`Trainer` stopped by the same wall-clock budget as CLOUD (`max_time`), keeping the epoch with the lowest validation
MAE (`ModelCheckpoint(monitor="val_MAE")`) for the test rows. A benchmark dependency only, never the package's:

```bash
pip install "matgl==4.1.2" "torch==2.13.0"   # the torch pin in the same command keeps the CPU wheel
```

Splits (the same rows as CLOUD; test rows are read only for the final number):

- `formation_energy`: the CLI formation-energy benchmark's split (`benchmarks.cli_formation`: 2,835 train, 315
  validation, MatBench fold 0 = 788 test). Budget: CLOUD's fine-tuning seconds in that benchmark
  (`--seconds`; pretraining time is not counted, as CLOUD there starts from scratch).
- `dielectric`: the 1,056 bundled Materials Project rows with a structure and `n`, MatBench 5-fold (KFold, shuffle,
  18012019) in the row order of `benchmarks.accuracy` (so the folds are those of CLOUD's matminer run), 10 % of each
  fold's training part for validation (seed 0, as CLOUD). Budget: CLOUD's 60 s per fold in that run.
  The authors' dielectric fold holds SCOPE strings only, so no graph network can read it.

matgl writes its model cache under `~/.cache/matgl` when imported; run as a script, this module points `HOME` at
a temporary folder first, and the datasets are built in memory (`save_cache=False`).

Usage:

```bash
python -m benchmarks.peer_gnn --task formation_energy --seconds 600 --json benchmarks/results/peer_gnn.json
python -m benchmarks.peer_gnn --task dielectric --seconds 60 --folds 5
python -m benchmarks.peer_gnn --task formation_energy --seconds 20 --limit 60   # smoke run
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

MODEL = "MEGNet"


def _structures(rows: list[int]):
    from dataset_builders import load_materials_project, structure_from_json

    table = load_materials_project()
    return [structure_from_json(table["structure"][i], source=table["material_id"][i]) for i in rows]


def formation_energy_split(limit: int | None = None) -> dict:
    """Structures and labels of the CLI benchmark's train / validation / test rows."""
    from benchmarks import cli_formation

    rows, labels = cli_formation._rows_and_labels()
    splits = cli_formation._splits(len(rows))
    out = {}
    for name, positions in splits.items():
        positions = positions[:limit] if limit else positions
        out[name] = (_structures([rows[p] for p in positions]), labels[positions])
    return out


def dielectric_folds(limit: int | None = None):
    """Yield (train, validation, test) splits of the 1,056 MP rows with `n`, as CLOUD's matminer run."""
    from benchmarks import common
    from benchmarks.accuracy import _task_rows
    from dataset_builders import kfold_indices

    rows, labels = _task_rows("n", common.mp_scope_strings("v2"))
    structures = _structures(rows)
    for train_idx, test_idx in kfold_indices(len(rows)):
        fit_local, val_local = common.split_validation(len(train_idx))
        parts = {"train": train_idx[fit_local], "validation": train_idx[val_local], "test": test_idx}
        if limit:
            parts = {name: idx[:limit] for name, idx in parts.items()}
        yield {name: ([structures[i] for i in idx], labels[idx]) for name, idx in parts.items()}


def train_and_test(split: dict, seconds: float, folder: Path, seed: int = 0) -> dict:
    """MEGNet with matgl's defaults on one split, stopped after `seconds`; test MAE of the best validation epoch."""
    import lightning as pl
    import matgl
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from matgl.ext.pymatgen import Structure2Graph, get_element_list
    from matgl.graph.data import MGLDataLoader, MGLDataset, collate_fn_graph
    from matgl.models import MEGNet
    from matgl.utils.training import ModelLightningModule

    pl.seed_everything(seed, verbose=False)
    train_structures, train_labels = split["train"]
    elements = get_element_list(
        [s for part in split.values() for s in part[0]]
    )  # every element must have an embedding row
    model = MEGNet(element_types=elements)
    converter = Structure2Graph(element_types=elements, cutoff=model.cutoff)

    def dataset(name):
        structures, labels = split[name]
        return MGLDataset(
            structures=structures,
            labels={"target": [float(v) for v in labels]},
            converter=converter,
            root=str(folder / name),
            save_cache=False,
        )

    started = time.perf_counter()
    train, validation, test = dataset("train"), dataset("validation"), dataset("test")
    graph_seconds = time.perf_counter() - started
    train_loader, validation_loader, test_loader = MGLDataLoader(
        train_data=train,
        val_data=validation,
        test_data=test,
        collate_fn=collate_fn_graph,
        batch_size=32,
        num_workers=0,
    )
    module = ModelLightningModule(
        model=model, data_mean=float(np.mean(train_labels)), data_std=float(np.std(train_labels))
    )
    checkpoint = ModelCheckpoint(dirpath=str(folder / "checkpoints"), monitor="val_MAE", mode="min")
    trainer = pl.Trainer(
        max_epochs=10_000,
        max_time={"seconds": int(seconds)},
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
    )
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=validation_loader)
    train_seconds = time.perf_counter() - started
    (tested,) = trainer.test(module, dataloaders=test_loader, ckpt_path="best", verbose=False)
    return {
        "model": MODEL,
        "version": matgl.__version__,
        "torch": torch.__version__,
        "rows": {name: len(part[1]) for name, part in split.items()},
        "mae": float(tested["test_MAE"]),
        "best_validation_mae": float(checkpoint.best_model_score),
        "epochs_run": int(trainer.current_epoch),
        "seconds": round(train_seconds, 1),
        "graph_seconds": round(graph_seconds, 1),
        "settings": "matgl defaults: MEGNet(), Structure2Graph(cutoff=model.cutoff), ModelLightningModule "
        "(Adam lr 1e-3, cosine over 1000 steps to 1 %, MSE on scaled targets), batch 32, best val_MAE epoch",
    }


def run(task: str, seconds: float, folds: int = 5, limit: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="peer-gnn-") as tmp:
        if task == "formation_energy":
            return train_and_test(formation_energy_split(limit), seconds, Path(tmp))
        per_fold = []
        for fold, split in enumerate(dielectric_folds(limit)):
            if fold >= folds:
                break
            per_fold.append(train_and_test(split, seconds, Path(tmp) / f"fold-{fold}"))
            print(f"[peer_gnn] dielectric fold {fold}: {per_fold[-1]}", flush=True)
        maes = [r["mae"] for r in per_fold]
        return {
            **{k: per_fold[0][k] for k in ("model", "version", "torch", "settings")},
            "mae": float(np.mean(maes)),
            "mae_std": float(np.std(maes)),
            "folds": per_fold,
            "seconds": round(sum(r["seconds"] for r in per_fold), 1),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("formation_energy", "dielectric"), required=True)
    parser.add_argument("--seconds", type=float, required=True, help="training wall-clock budget per model")
    parser.add_argument("--folds", type=int, default=5, help="dielectric: folds to run")
    parser.add_argument("--limit", type=int, default=None, help="smoke runs: first N rows of each part")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="peer-gnn-home-")
    os.environ["HOME"] = home  # matgl makes ~/.cache/matgl at import; keep it out of the real home
    result = run(args.task, args.seconds, args.folds, args.limit)
    print(json.dumps({k: v for k, v in result.items() if k != "folds"}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
