"""``cloud-crystal demo``: the whole CLOUD story on the bundled real data, end to end on a laptop CPU.

1. Encode the 6,317 bundled Materials Project structures as canonical SCOPE v2 strings.
2. Pretrain a small CLOUD encoder by masked-LM on those strings (test rows excluded).
3. Fine-tune it on formation energy, and train a CLOUD-DEBYE model on heat capacities derived from the
   elastic Debye temperatures (Anderson's formula) at several temperatures.
4. Evaluate on held-out test rows against the mean and a composition-only random forest; print a table.
5. Save Hub-layout checkpoints with model cards, reload them through ``pipeline("crystal-property",
   trust_remote_code=True)`` in a fresh process, and predict well-known crystals from the bundled CIFs.
6. Write PNG plots: a parity plot and Cv(T)/U(T)/S(T) curves against JANAF reference heat capacities.

Splits are fixed by the seed; test rows are used only for the final numbers.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("cloud_crystal.demo")

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "dataset_builders" / "data" / "examples"
JANAF_FILE = (
    Path(__file__).resolve().parents[1] / "dataset_builders" / "data" / "reference_heat_capacity_janaf.json"
)
#: Temperatures (K) at which the Debye training labels are computed from the elastic Debye temperature.
DEBYE_LABEL_TEMPERATURES = (25.0, 50.0, 100.0, 200.0, 300.0)


@dataclass(frozen=True)
class DemoSize:
    """Model and schedule of a demo run; ``full`` fits in about 10 minutes on 2 CPU cores."""

    max_structures: int | None
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    pretrain_epochs: float
    finetune_epochs: float
    debye_epochs: float
    batch_size: int


SIZES = {
    "full": DemoSize(None, 128, 4, 4, 256, 8, 15, 15, 64),
    # A few hundred structures and a few steps: the test suite runs this to check every stage end to end.
    "smoke": DemoSize(240, 32, 2, 2, 64, 1, 2, 2, 32),
}


def _split(indices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """80/10/10 train/validation/test split of ``indices``, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(indices)
    n_test = max(1, len(order) // 10)
    n_val = max(1, len(order) // 10)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def encode_bundled_structures(max_structures: int | None, seed: int) -> pd.DataFrame:
    """The bundled MP table with a ``scope`` (v2) and ``n_atoms`` column; failures are reported, never dropped."""
    from tqdm.auto import tqdm

    from dataset_builders import load_materials_project
    from tokenization import CloudTokenizerFast, ScopeError, load_structure

    table = load_materials_project().to_pandas()
    if max_structures is not None:
        rows = np.random.default_rng(seed).choice(len(table), size=max_structures, replace=False)
        table = table.iloc[np.sort(rows)].reset_index(drop=True)
    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    scopes, n_atoms, failures = [], [], []
    for material_id, structure_json in tqdm(
        zip(table["material_id"], table["structure"], strict=True),
        total=len(table),
        desc="encoding structures (SCOPE v2)",
        unit="structure",
        file=sys.stderr,
    ):
        try:
            structure = load_structure(structure_json, source=material_id)  # read and validated once
            scopes.append(tokenizer.scope_from_structure(structure))
            n_atoms.append(len(structure))
        except ScopeError as exc:
            failures.append(exc.to_dict())
            scopes.append(None)
            n_atoms.append(None)
    if failures:
        logger.warning("%d structures could not be encoded and are left out: %s", len(failures), failures[:3])
    table["scope"], table["n_atoms"] = scopes, n_atoms
    return table[table["scope"].notna()].reset_index(drop=True)


def debye_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Long table (one row per structure and temperature) of Cv from the elastic Debye temperature."""
    import torch

    from modeling_cloud.debye_functions import debye_heat_capacity

    theta = torch.tensor(table["debye_temperature"].to_numpy(), dtype=torch.float64)
    n_atoms = torch.tensor(table["n_atoms"].to_numpy(dtype=float), dtype=torch.float64)
    frames = []
    for temperature in DEBYE_LABEL_TEMPERATURES:
        cv = debye_heat_capacity(theta, torch.full_like(theta, temperature), n_atoms)
        frame = table[["material_id", "formula", "scope", "n_atoms", "debye_temperature"]].copy()
        frame["temperature"] = temperature
        frame["cv"] = cv.numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def composition_features(formulas: pd.Series) -> np.ndarray:
    """Element fractions (118 columns): the input of the composition-only random forest."""
    from pymatgen.core import Composition

    features = np.zeros((len(formulas), 118))
    for row, formula in enumerate(formulas):
        for element, fraction in Composition(formula).fractional_composition.items():
            features[row, element.Z - 1] = fraction
    return features


def random_forest_predictions(
    train: pd.DataFrame, test: pd.DataFrame, target: str, extra: list[str]
) -> np.ndarray:
    from sklearn.ensemble import RandomForestRegressor

    def features(frame: pd.DataFrame) -> np.ndarray:
        return np.hstack([composition_features(frame["formula"]), frame[extra].to_numpy(dtype=float)])

    forest = RandomForestRegressor(n_estimators=200, random_state=0, n_jobs=2)
    forest.fit(features(train), train[target].to_numpy())
    return forest.predict(features(test))


def _mae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(prediction) - np.asarray(truth))))


def _predict_in_fresh_process(model_dirs: dict[str, Path], inputs: list[str]) -> dict:
    """Reload each checkpoint with only its folder (trust_remote_code) in a new interpreter and predict."""
    code = """
import json, sys
from transformers import pipeline
model_dirs, inputs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for name, folder in model_dirs.items():
    predictor = pipeline("crystal-property", model=folder, trust_remote_code=True)
    out[name] = predictor(inputs, temperatures=[100.0, 300.0, 1000.0])
print(json.dumps(out))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            json.dumps({k: str(v) for k, v in model_dirs.items()}),
            json.dumps(inputs),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"reloading the checkpoints in a fresh process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _plot_parity(
    path: Path, truth: np.ndarray, prediction: np.ndarray, baseline: np.ndarray, label: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(truth, baseline, s=6, alpha=0.4, label=f"composition RF (MAE {_mae(baseline, truth):.3f})")
    ax.scatter(truth, prediction, s=6, alpha=0.6, label=f"CLOUD (MAE {_mae(prediction, truth):.3f})")
    low, high = float(min(truth.min(), prediction.min())), float(max(truth.max(), prediction.max()))
    ax.plot([low, high], [low, high], color="black", lw=0.8)
    ax.set_xlabel(f"DFT {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title("Formation energy, held-out test rows")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_debye_curves(path: Path, debye_dir: Path) -> dict[str, float]:
    """Cv, U, S per formula unit from the Debye model against JANAF Cp; returns MAE of Cv over 50-1000 K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from transformers import pipeline

    from modeling_cloud import register_auto_classes

    register_auto_classes()
    reference = json.loads(JANAF_FILE.read_text())["crystals"]
    predictor = pipeline("crystal-property", model=str(debye_dir))
    temperatures = np.linspace(10, 1000, 100).tolist()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    errors: dict[str, float] = {}
    for name, ref in reference.items():
        cif = EXAMPLES_DIR / f"{name}.cif"
        if not cif.exists():
            continue
        result = predictor(str(cif), temperatures=temperatures)  # per mole of formula units, as JANAF
        values = {p["name"]: p["value"] for p in result["properties"]}
        cv = np.asarray(values["heat_capacity"])
        line = axes[0].plot(temperatures, cv, label=f"{name} (θD {values['theta_debye']:.0f} K)")[0]
        ref_t, ref_cp = np.asarray(ref["temperature"]), np.asarray(ref["heat_capacity"])
        axes[0].scatter(ref_t, ref_cp, s=12, color=line.get_color())
        axes[1].plot(temperatures, np.asarray(values["internal_energy"]) / 1000, color=line.get_color())
        axes[2].plot(temperatures, np.asarray(values["entropy"]), color=line.get_color())
        window = (ref_t >= 50) & (ref_t <= 1000)
        errors[name] = _mae(np.interp(ref_t[window], temperatures, cv), ref_cp[window])
    axes[0].set_title("Cv (lines: CLOUD-DEBYE) vs JANAF Cp (dots)")
    axes[0].set_ylabel("J/(K mol formula unit)")
    axes[1].set_title("U incl. zero-point energy")
    axes[1].set_ylabel("kJ/(mol formula unit)")
    axes[2].set_title("vibrational entropy S")
    axes[2].set_ylabel("J/(K mol formula unit)")
    for ax in axes:
        ax.set_xlabel("T (K)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return errors


def run_demo(output_dir: str | Path = "cloud-demo", size: str = "full", seed: int = 0) -> dict:
    """Run the demo; returns the evaluation table as a dict (also written to ``OUTPUT_DIR/results.json``)."""
    from modeling_cloud.training.finetune import run_finetune
    from modeling_cloud.training.options import DebyeOptions, FinetuneOptions, PretrainOptions
    from modeling_cloud.training.pretrain import run_pretrain
    from modeling_cloud.training.train_debye import run_train_debye

    settings = SIZES[size]
    output = Path(output_dir)
    data_dir = output / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)

    # 1. data -----------------------------------------------------------------------------------------------
    table = encode_bundled_structures(settings.max_structures, seed)
    formation = table[table["formation_energy_per_atom"].notna()].reset_index(drop=True)
    fe_train, fe_val, fe_test = (formation.iloc[i] for i in _split(np.arange(len(formation)), seed))
    debye = table[table["debye_temperature"].notna()].reset_index(drop=True)
    db_train, db_val, db_test = (debye.iloc[i] for i in _split(np.arange(len(debye)), seed + 1))
    test_ids = set(fe_test["material_id"]) | set(db_test["material_id"])
    pretrain_rows = table[~table["material_id"].isin(test_ids)][["material_id", "scope"]]
    files = {
        "pretrain": pretrain_rows,
        "fe_train": fe_train, "fe_validation": fe_val, "fe_test": fe_test,
        "debye_train": debye_labels(db_train), "debye_validation": debye_labels(db_val),
        "debye_test": debye_labels(db_test),
    }  # fmt: skip
    paths = {}
    for name, frame in files.items():
        paths[name] = data_dir / f"{name}.parquet"
        frame.drop(columns=["structure"], errors="ignore").to_parquet(paths[name], index=False)
    lap("encode")

    common = dict(
        scope_version="v2", seed=seed, use_cpu=True, per_device_train_batch_size=settings.batch_size,
        early_stopping_patience=5, logging_steps=50, save_total_limit=1,
    )  # fmt: skip
    # 2. pretraining ------------------------------------------------------------------------------------------
    base_dir = output / "cloud-base"
    pretrain_metrics = run_pretrain(
        PretrainOptions(
            train=[str(paths["pretrain"])], output_dir=str(base_dir), num_train_epochs=settings.pretrain_epochs,
            hidden_size=settings.hidden_size, num_hidden_layers=settings.num_hidden_layers,
            num_attention_heads=settings.num_attention_heads, intermediate_size=settings.intermediate_size,
            learning_rate=5e-4, **common,
        )
    )  # fmt: skip
    lap("pretrain")
    # 3. fine-tuning -----------------------------------------------------------------------------------------
    fe_dir = output / "formation-energy"
    fe_metrics = run_finetune(
        FinetuneOptions(
            train=[str(paths["fe_train"])], validation=[str(paths["fe_validation"])], test=[str(paths["fe_test"])],
            target=["formation_energy_per_atom"], target_unit=["eV/atom"], pretrained=str(base_dir),
            output_dir=str(fe_dir), num_train_epochs=settings.finetune_epochs, learning_rate=3e-4, **common,
        )
    )["metrics"]  # fmt: skip
    lap("finetune")
    debye_dir = output / "debye"
    debye_metrics = run_train_debye(
        DebyeOptions(
            train=[str(paths["debye_train"])], validation=[str(paths["debye_validation"])],
            test=[str(paths["debye_test"])], target=["cv"], temperature_column="temperature",
            n_atoms_column="n_atoms", pretrained=str(base_dir), output_dir=str(debye_dir),
            num_train_epochs=settings.debye_epochs, learning_rate=3e-4,
            **{**common, "per_device_train_batch_size": 2 * settings.batch_size},
        )
    )["metrics"]  # fmt: skip
    lap("train_debye")

    # 4. evaluation against baselines ------------------------------------------------------------------------
    predictions = pd.read_csv(fe_dir / "test_predictions.csv")
    truth = predictions["formation_energy_per_atom"].to_numpy()
    cloud = predictions["predicted_formation_energy_per_atom"].to_numpy()
    rf_fe = random_forest_predictions(fe_train, fe_test, "formation_energy_per_atom", [])
    debye_train_long, debye_test_long = files["debye_train"], files["debye_test"]
    mean_by_t = debye_train_long.groupby("temperature")["cv"].mean()
    rf_cv = random_forest_predictions(debye_train_long, debye_test_long, "cv", ["n_atoms", "temperature"])
    results = {
        "formation_energy_per_atom (eV/atom), MAE on test": {
            "rows": len(fe_test),
            "mean": _mae(np.full_like(truth, fe_train["formation_energy_per_atom"].mean()), truth),
            "composition RF": _mae(rf_fe, fe_test["formation_energy_per_atom"].to_numpy()),
            "CLOUD": _mae(cloud, truth),
        },
        "Cv at 25-300 K (J/(K mol)), MAE on test": {
            "rows": len(debye_test_long),
            "mean": _mae(debye_test_long["temperature"].map(mean_by_t).to_numpy(), debye_test_long["cv"]),
            "composition RF": _mae(rf_cv, debye_test_long["cv"].to_numpy()),
            "CLOUD": float(debye_metrics.get("test_mae", float("nan"))),
        },
    }
    lap("baselines")

    # 5. reload in a fresh process and predict well-known crystals --------------------------------------------
    # The last two are disordered (mixed transition metals; oxygen vacancies): SCOPE v2's disorder section.
    crystals = ["Si", "NaCl", "MgO", "SrTiO3", "GaAs", "Al2O3", "ZnO", "Cu", "NMC111", "YSZ"]
    cifs = [str(EXAMPLES_DIR / f"{name}.cif") for name in crystals]
    reloaded = _predict_in_fresh_process({"formation_energy": fe_dir, "debye": debye_dir}, cifs)
    lap("reload_and_predict")

    # 6. plots --------------------------------------------------------------------------------------------------
    _plot_parity(output / "parity_formation_energy.png", truth, cloud, rf_fe, "formation energy (eV/atom)")
    janaf_mae = _plot_debye_curves(output / "debye_curves.png", debye_dir)
    lap("plots")

    summary = {
        "results": results,
        "pretrain": {k: v for k, v in pretrain_metrics.items() if isinstance(v, (int, float))},
        "fe_validation_mae": fe_metrics.get("eval_mae"),
        "janaf_cv_mae_50_1000K_per_formula_unit": janaf_mae,
        "predictions": {
            name: {
                "formation_energy_per_atom": reloaded["formation_energy"][i]["properties"][0]["value"],
                "theta_debye": next(
                    p["value"] for p in reloaded["debye"][i]["properties"] if p["name"] == "theta_debye"
                ),
                "cv_300K_per_formula_unit": next(
                    p["value"][1] for p in reloaded["debye"][i]["properties"] if p["name"] == "heat_capacity"
                ),
            }
            for i, name in enumerate(crystals)
        },
        "timings_s": timings,
        "size": size,
    }
    (output / "results.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, output)
    return summary


def print_summary(summary: dict, output: Path) -> None:
    print("\n== CLOUD demo: held-out test rows (lower is better) ==")
    print(f"{'task':<48}{'rows':>6}{'mean':>10}{'comp. RF':>10}{'CLOUD':>10}")
    for task, row in summary["results"].items():
        print(
            f"{task:<48}{row['rows']:>6}{row['mean']:>10.3f}{row['composition RF']:>10.3f}{row['CLOUD']:>10.3f}"
        )
    print("\n== Predictions after reloading the saved checkpoints in a fresh process ==")
    print(f"{'crystal':<10}{'E_form (eV/atom)':>18}{'θD (K)':>10}{'Cv 300 K (J/(K·mol-fu))':>26}")
    for name, values in summary["predictions"].items():
        print(
            f"{name:<10}{values['formation_energy_per_atom']:>18.3f}{values['theta_debye']:>10.0f}"
            f"{values['cv_300K_per_formula_unit']:>26.2f}"
        )
    janaf = ", ".join(f"{k} {v:.1f}" for k, v in summary["janaf_cv_mae_50_1000K_per_formula_unit"].items())
    print(f"\nCv vs JANAF Cp, MAE over 50-1000 K (J/(K mol formula unit)): {janaf}")
    print(
        f"\nCheckpoints (Hub layout, with model cards): {output}/cloud-base, {output}/formation-energy, {output}/debye"
    )
    print(f"Plots: {output}/parity_formation_energy.png, {output}/debye_curves.png")
    print("Time per stage (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))
