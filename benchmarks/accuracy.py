"""Accuracy benchmarks on real data, each with its baselines computed in the same run.

* `dielectric`: the authors' MatBench dielectric fold (train 3,811 / test 953, SCOPE v1 strings). Composition RF,
  CLOUD from scratch, CLOUD after MLM pretraining on every available string except the test rows.
* `cv300`: the authors' Cv(300 K) split (1,213 / 299): mean, fitted Dulong-Petit a*3R*n, RF on composition + n_atoms,
  CloudDebyeModel (scratch, pretrained), a direct regression head (pretrained).
* `debye_curves`: the pretrained Debye model's Cv(T) vs JANAF Cp(T) for Si, NaCl, MgO, LiF, Cu.
* `matminer_cv`: 5-fold CV (MatBench seed) on the bundled MP data for 5 tasks: CLOUD v2, mean, composition RF.
* `ablation`: SCOPE v1 vs v2 on MP formation energy and MP refractive index n (same folds, same settings).

Test rows are used only for the final MAE; validation for best-epoch selection is a 10 % split of the training rows.
Every training run has an epoch limit and a wall-time budget (`budget_scale` multiplies the budgets).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmarks import common

R = 8.314462618
RESULTS = Path(__file__).resolve().parent / "results"


def _mad(values: np.ndarray) -> float:
    return float(np.mean(np.abs(values - values.mean())))


def pretraining_corpus_v1(exclude: set[str]) -> tuple[list[str], dict]:
    """Every v1 string at hand minus any string that also occurs in a test split (so no test row is seen)."""
    from dataset_builders import load_cloud_example

    pretrain = load_cloud_example("pretrain")["scope"]
    dielectric = load_cloud_example("dielectric")["train"]["scope"]
    cv = load_cloud_example("cv")["train"]["scope"]
    mp = [s for s in common.mp_scope_strings("v1") if s is not None]
    pool = list(pretrain) + list(dielectric) + list(cv) + mp
    kept = [s for s in pool if s not in exclude]
    unique = list(dict.fromkeys(kept))
    counts = {
        "pretrain_10k": len(pretrain),
        "dielectric_train": len(dielectric),
        "cv_train": len(cv),
        "mp_structures_v1": len(mp),
        "removed_as_equal_to_a_test_string": len(pool) - len(kept),
        "unique_strings_used": len(unique),
    }
    return unique, counts


def run_dielectric_and_cv(budget_scale: float = 1.0, state: dict | None = None) -> dict:
    """Dielectric fold + Cv(300 K) + Debye curves, sharing one MLM-pretrained v1 encoder."""
    from dataset_builders import load_cloud_example
    from modeling_cloud import CloudDebyeModel, CloudForPropertyRegression
    from tokenization import CloudTokenizerFast

    common.quiet()
    state = state if state is not None else {}
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    pad_id = tokenizer.pad_token_id
    dielectric = load_cloud_example("dielectric")
    cv = load_cloud_example("cv")
    test_strings = set(dielectric["test"]["scope"]) | set(cv["test"]["scope"])
    out: dict = {}

    # ---- pretraining corpus and MLM pretraining (one encoder, reused by both tasks)
    corpus, corpus_counts = pretraining_corpus_v1(test_strings)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(corpus))
    validation_mlm = [corpus[i] for i in order[:500]]
    train_mlm = [corpus[i] for i in order[500:]]
    t0 = time.perf_counter()
    mlm_model, mlm_info = common.pretrain_mlm(
        tokenizer,
        train_mlm,
        common.ACCURACY_SIZE,
        seconds=720 * budget_scale,
        validation_strings=validation_mlm,
    )
    mlm_info.update(corpus_counts)
    out["pretraining_v1"] = mlm_info
    print(f"[accuracy] MLM pretraining: {mlm_info}", flush=True)

    # ---- dielectric fold
    train, test = dielectric["train"], dielectric["test"]
    y_train, y_test = np.array(train["n"]), np.array(test["n"])
    x_train = common.composition_matrix([common.composition_from_scope(s) for s in train["scope"]])
    x_test = common.composition_matrix([common.composition_from_scope(s) for s in test["scope"]])
    rf_mae, _ = common.random_forest_mae(x_train, y_train, x_test, y_test)
    fit_idx, val_idx = common.split_validation(len(train))
    fit_records = common.labelled_records(tokenizer, [train["scope"][i] for i in fit_idx], y_train[fit_idx])
    val_records = common.labelled_records(tokenizer, [train["scope"][i] for i in val_idx], y_train[val_idx])
    test_records = common.labelled_records(tokenizer, test["scope"], y_test)
    stats = dict(target_means=[float(y_train[fit_idx].mean())], target_stds=[float(y_train[fit_idx].std())])
    result = {
        "rows": {"train": len(fit_idx), "validation": len(val_idx), "test": len(test)},
        "mean_baseline_mae": float(np.mean(np.abs(y_test - y_train.mean()))),
        "composition_rf_mae": rf_mae,
    }
    for variant in ("scratch", "pretrained"):
        import torch

        torch.manual_seed(0)
        model = CloudForPropertyRegression(
            common.model_config(tokenizer, common.ACCURACY_SIZE, head_num_layers=1, **stats)
        )
        if variant == "pretrained":
            common.transfer_encoder(mlm_model, model)
        model, info = common.finetune(
            model, tokenizer, fit_records, val_records, seconds=420 * budget_scale, max_epochs=100, lr=3e-4
        )
        info["test_mae"] = float(np.mean(np.abs(common.predict(model, test_records, pad_id) - y_test)))
        result[f"cloud_{variant}"] = info
        print(f"[accuracy] dielectric {variant}: {info}", flush=True)
    out["dielectric"] = result

    # ---- Cv at 300 K
    train, test = cv["train"], cv["test"]
    y_train, y_test = np.array(train["cv"]), np.array(test["cv"])
    n_train, n_test = np.array(train["n_atoms"]), np.array(test["n_atoms"])
    mad = _mad(y_test)
    result = {"rows": {"train": len(train), "test": len(test)}, "test_mad": mad}
    result["mean"] = float(np.mean(np.abs(y_test - y_train.mean())))
    dp_train = 3 * R * n_train
    a = float(np.sum(y_train * dp_train) / np.sum(dp_train**2))
    result["dulong_petit_fitted"] = float(np.mean(np.abs(a * 3 * R * n_test - y_test)))
    result["dulong_petit_a"] = a
    xc_train = np.column_stack(
        [common.composition_matrix([common.composition_from_scope(s) for s in train["scope"]]), n_train]
    )
    xc_test = np.column_stack(
        [common.composition_matrix([common.composition_from_scope(s) for s in test["scope"]]), n_test]
    )
    result["composition_n_atoms_rf"], _ = common.random_forest_mae(xc_train, y_train, xc_test, y_test)
    fit_idx, val_idx = common.split_validation(len(train))

    def records(indices, strings, labels, atoms):
        return common.labelled_records(
            tokenizer, [strings[i] for i in indices], labels[indices], atoms[indices]
        )

    fit_records = records(fit_idx, train["scope"], y_train, n_train)
    val_records = records(val_idx, train["scope"], y_train, n_train)
    test_records = common.labelled_records(tokenizer, test["scope"], y_test, n_test)
    import torch

    def fit_cv_model(seed: int, debye: bool, pretrained: bool):
        """One Cv(300 K) model (CLOUD-DEBYE, or the direct regression head) and its test predictions."""
        torch.manual_seed(seed)
        if debye:
            model = CloudDebyeModel(common.model_config(tokenizer, common.ACCURACY_SIZE, head_num_layers=3))
        else:
            model = CloudForPropertyRegression(
                common.model_config(
                    tokenizer,
                    common.ACCURACY_SIZE,
                    head_num_layers=3,
                    target_means=[float(y_train[fit_idx].mean())],
                    target_stds=[float(y_train[fit_idx].std())],
                )
            )
        if pretrained:
            common.transfer_encoder(mlm_model, model)
        model, info = common.finetune(
            model,
            tokenizer,
            fit_records,
            val_records,
            seconds=200 * budget_scale,
            max_epochs=200,
            lr=3e-4,
            debye=debye,
        )
        return model, info, common.predict(model, test_records, pad_id, debye=debye)

    for name, debye, pretrained in (
        ("debye_scratch", True, False),
        ("debye_pretrained", True, True),
        ("direct_head_pretrained", False, True),
    ):
        model, info, prediction = fit_cv_model(0, debye, pretrained)
        mae = float(np.mean(np.abs(prediction - y_test)))
        info.update(test_mae=mae, test_mae_over_mad=mae / mad)
        result[name] = info
        print(f"[accuracy] cv300 {name}: {info}", flush=True)
        if name == "debye_pretrained":
            state["debye_model"] = model
            members = [(info, prediction)] + [
                fit_cv_model(seed, True, True)[1:] for seed in range(1, CV300_MEMBERS)
            ]
            ensemble = debye_ensemble(members, y_test)
            ensemble.update(test_mae_over_mad=ensemble["test_mae"] / mad, test_mae_seed_0=mae)
            result["debye_pretrained_ensemble"] = ensemble
    for baseline in ("mean", "dulong_petit_fitted", "composition_n_atoms_rf"):
        result[f"{baseline}_over_mad"] = result[baseline] / mad
    out["cv300"] = result
    out["debye_curves"] = debye_curves(state["debye_model"], tokenizer)
    out["seconds"] = time.perf_counter() - t0
    return out


# CLOUD-DEBYE members for Cv(300 K): seed 0 is the single model reported beside the ensemble.
CV300_MEMBERS = 3


def debye_ensemble(members: list[tuple[dict, np.ndarray]], labels: np.ndarray) -> dict:
    """The K members' Cv(300 K) predictions averaged, as `finetune --ensemble K` does; `members` are
    `(training info, test predictions)` of models that differ only in their seed."""
    predictions = [prediction for _, prediction in members]
    mean = np.mean(predictions, axis=0)
    return {
        "members": len(members),
        "test_mae": float(np.mean(np.abs(mean - labels))),
        "member_test_maes": [float(np.mean(np.abs(p - labels))) for p in predictions],
        "member_validation_maes": [info["validation_mae"] for info, _ in members],
        "member_epochs": [info["epochs_run"] for info, _ in members],
        "mean_member_spread": float(np.mean(np.std(predictions, axis=0))),
    }


def debye_curves(model, tokenizer) -> dict:
    """Predicted Cv(T) per formula unit vs JANAF Cp(T) for the bundled example crystals; MAE over 50-1000 K."""
    import torch

    from dataset_builders.bundled import MATERIALS_PROJECT_PARQUET

    data_dir = Path(MATERIALS_PROJECT_PARQUET).parent
    janaf = json.loads((data_dir / "reference_heat_capacity_janaf.json").read_text())["crystals"]
    curves = {}
    grid = np.linspace(50, 1000, 96)
    for formula, entry in janaf.items():
        cif = data_dir / "examples" / f"{formula}.cif"
        scope = tokenizer.encode_structure(str(cif))
        temperatures = np.array(entry["temperature"], dtype=float)
        heat_capacity = np.array(entry["heat_capacity"], dtype=float)
        keep = (temperatures >= 50) & (temperatures <= 1000)
        encoded = tokenizer([scope], return_tensors="pt")
        with torch.no_grad():
            output = model(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                n_atoms=torch.tensor([float(entry["atoms_per_formula_unit"])]),
                temperatures=torch.tensor(np.concatenate([temperatures[keep], grid]), dtype=torch.float32),
            )
        predicted = output.heat_capacity[0].numpy()
        at_points = predicted[: keep.sum()]
        curves[formula] = {
            "scope": scope,
            "theta_debye_predicted": float(output.theta_debye[0]),
            "janaf_temperatures": temperatures[keep].tolist(),
            "janaf_cp": heat_capacity[keep].tolist(),
            "predicted_cv_at_janaf_temperatures": at_points.tolist(),
            "grid_temperatures": grid.tolist(),
            "predicted_cv_grid": predicted[keep.sum() :].tolist(),
            "mae_50_1000K": float(np.mean(np.abs(at_points - heat_capacity[keep]))),
        }
    return curves


MATMINER_TASKS = {
    "formation_energy": "formation_energy_per_atom",
    "log10_K": "log10_K_VRH",
    "log10_G": "log10_G_VRH",
    "n": "n",
    "theta_D": "debye_temperature",
}


def _task_rows(column: str, strings: list[str | None]):
    from dataset_builders import load_materials_project

    table = load_materials_project()
    labels = table[column]
    rows = [i for i, value in enumerate(labels) if value is not None]
    failed = [i for i in rows if strings[i] is None]
    if failed:
        raise RuntimeError(f"{len(failed)} MP rows with a {column} label could not be encoded; see the log")
    return rows, np.array([labels[i] for i in rows], dtype=float)


def _mp_compositions() -> list[dict[str, float]]:
    from dataset_builders import load_materials_project, structure_from_json

    path = common.CACHE_DIR / "mp_compositions.json"
    if path.exists():
        return json.loads(path.read_text())
    table = load_materials_project()
    compositions = []
    for material_id, text in zip(table["material_id"], table["structure"], strict=True):
        structure = structure_from_json(text, source=material_id)
        compositions.append(
            {str(el): float(x) for el, x in structure.composition.fractional_composition.items()}
        )
    common.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(compositions))
    return compositions


def cloud_kfold(
    task_column: str | list[str],
    version: str,
    seconds_per_fold: float,
    max_epochs: int = 60,
    n_folds: int = 5,
    members: int = 1,
) -> dict:
    """CLOUD (from scratch, size `common.ACCURACY_SIZE`) on MP tasks with the MatBench 5-fold split; MAE per fold.

    `task_column` may be a list: one multi-target model learns every column at once (K, G and θ_D share their
    rows). `members` > 1 trains that many models per fold with seeds 0, 1, ... and averages their predictions,
    as `finetune --ensemble K` does; each member gets `seconds_per_fold`. Returns one result per column for a
    list, else the result of the single column.
    """
    import torch

    from dataset_builders import kfold_indices
    from modeling_cloud import CloudForPropertyRegression
    from tokenization import CloudTokenizerFast

    columns = [task_column] if isinstance(task_column, str) else list(task_column)
    tokenizer = CloudTokenizerFast.from_scope_version(version)
    strings = common.mp_scope_strings(version)
    rows, first = _task_rows(columns[0], strings)
    labels = [first]
    for column in columns[1:]:
        other_rows, values = _task_rows(column, strings)
        if other_rows != rows:  # the folds must be those of every column's own baselines
            raise RuntimeError(
                f"{column} is labelled on other rows than {columns[0]}: no shared multi-task folds"
            )
        labels.append(values)
    labels = np.column_stack(labels)
    task_strings = [strings[i] for i in rows]
    maes, epochs = [], []
    for fold, (train_idx, test_idx) in enumerate(kfold_indices(len(rows))):
        if fold >= n_folds:
            break
        fit_local, val_local = common.split_validation(len(train_idx))
        fit_idx, val_idx = train_idx[fit_local], train_idx[val_local]

        def records(indices):
            chosen = labels[indices] if len(columns) > 1 else labels[indices, 0]
            return common.labelled_records(tokenizer, [task_strings[i] for i in indices], chosen)

        fit_records, val_records, test_records = records(fit_idx), records(val_idx), records(test_idx)
        member_predictions, member_epochs = [], []
        for seed in range(members):
            torch.manual_seed(seed)
            model = CloudForPropertyRegression(
                common.model_config(
                    tokenizer,
                    common.ACCURACY_SIZE,
                    head_num_layers=1,
                    target_names=columns,
                    target_means=labels[fit_idx].mean(axis=0).tolist(),
                    target_stds=labels[fit_idx].std(axis=0).tolist(),
                )
            )
            model, info = common.finetune(
                model,
                tokenizer,
                fit_records,
                val_records,
                seconds=seconds_per_fold,
                max_epochs=max_epochs,
                lr=3e-4,
            )
            prediction = common.predict(model, test_records, tokenizer.pad_token_id, all_targets=True)
            member_predictions.append(prediction.reshape(len(test_idx), len(columns)))
            member_epochs.append(info["epochs_run"])
        prediction = np.mean(member_predictions, axis=0)
        maes.append(np.mean(np.abs(prediction - labels[test_idx]), axis=0))
        epochs.append(member_epochs if members > 1 else member_epochs[0])
        print(
            f"[accuracy] {columns} {version} fold {fold}: MAE {maes[-1]} (epochs {member_epochs})", flush=True
        )
    maes = np.array(maes)
    results = {
        column: {
            "mean": float(maes[:, j].mean()),
            "std": float(maes[:, j].std()),
            "folds": maes[:, j].tolist(),
            "epochs_per_fold": epochs,
            "size": common.ACCURACY_SIZE,
            "ensemble_members": members,
            "multi_task_targets": columns if len(columns) > 1 else None,
        }
        for j, column in enumerate(columns)
    }
    return results if len(columns) > 1 else results[columns[0]]


# K, G and θ_D are labelled on the same 1,181 elastic rows: one multi-target model per fold learns all three.
ELASTIC_TASKS = ("log10_K", "log10_G", "theta_D")
ELASTIC_MEMBERS = 2


def run_matminer_cv(budget_scale: float = 1.0, n_folds: int = 5) -> dict:
    """CLOUD v2 vs mean vs composition RF, 5-fold on the bundled MP tasks."""
    from dataset_builders import kfold_indices

    common.quiet()
    strings = common.mp_scope_strings("v2")
    compositions = _mp_compositions()
    results = {}
    # Multi-target ensemble for the elastic tasks (they share rows); 90 s per member per fold.
    elastic = cloud_kfold(
        [MATMINER_TASKS[t] for t in ELASTIC_TASKS],
        "v2",
        90 * budget_scale,
        max_epochs=100,
        n_folds=n_folds,
        members=ELASTIC_MEMBERS,
    )
    for task, column in MATMINER_TASKS.items():
        rows, labels = _task_rows(column, strings)
        features = common.composition_matrix([compositions[i] for i in rows])
        mean_maes, rf_maes = [], []
        for train_idx, test_idx in kfold_indices(len(rows)):
            mean_maes.append(float(np.mean(np.abs(labels[test_idx] - labels[train_idx].mean()))))
            rf_maes.append(
                common.random_forest_mae(
                    features[train_idx], labels[train_idx], features[test_idx], labels[test_idx]
                )[0]
            )
        seconds = (120 if task == "formation_energy" else 60) * budget_scale
        results[task] = {
            "rows": len(rows),
            "mean": {"mean": float(np.mean(mean_maes)), "std": float(np.std(mean_maes))},
            "composition_rf": {"mean": float(np.mean(rf_maes)), "std": float(np.std(rf_maes))},
            "cloud_v2": elastic[column]
            if task in ELASTIC_TASKS
            else cloud_kfold(column, "v2", seconds, max_epochs=100, n_folds=n_folds),
        }
        print(f"[accuracy] matminer {task}: {results[task]}", flush=True)
    return results


def run_ablation(budget_scale: float = 1.0, matminer: dict | None = None, n_folds: int = 2) -> dict:
    """SCOPE v1 vs v2, same folds, same model, same number of epochs (not a time budget: machine load would give
    one version fewer epochs), on MP formation energy and MP refractive index n. Structures are needed to encode
    both versions: the authors' dielectric fold has only v1 strings, so it cannot be re-encoded to v2. The first
    `n_folds` of the MatBench 5-fold split (2 by default, to fit the CPU budget)."""
    common.quiet()
    results = {}
    for task, epochs in (("formation_energy", 15), ("n", 30)):
        column = MATMINER_TASKS[task]
        results[task] = {
            version: cloud_kfold(column, version, 900 * budget_scale, max_epochs=epochs, n_folds=n_folds)
            for version in ("v1", "v2")
        }
        results[task]["epochs"] = epochs
        results[task]["folds_used"] = n_folds
    return results


def run_cv300_long(seconds: float = 900.0) -> dict:
    """CLOUD-DEBYE from scratch on the Cv split with a longer budget than the `dielectric_cv` part gives it, to show
    how far more training alone moves the Cv MAE (same split, validation from the training rows)."""
    import torch

    from dataset_builders import load_cloud_example
    from modeling_cloud import CloudDebyeModel
    from tokenization import CloudTokenizerFast

    common.quiet()
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    cv = load_cloud_example("cv")
    train, test = cv["train"], cv["test"]
    y_train, y_test = np.array(train["cv"]), np.array(test["cv"])
    n_train, n_test = np.array(train["n_atoms"]), np.array(test["n_atoms"])
    fit_idx, val_idx = common.split_validation(len(train))

    def records(indices):
        return common.labelled_records(
            tokenizer, [train["scope"][i] for i in indices], y_train[indices], n_train[indices]
        )

    torch.manual_seed(0)
    model = CloudDebyeModel(common.model_config(tokenizer, common.ACCURACY_SIZE, head_num_layers=3))
    model, info = common.finetune(
        model,
        tokenizer,
        records(fit_idx),
        records(val_idx),
        seconds=seconds,
        max_epochs=400,
        lr=3e-4,
        debye=True,
    )
    test_records = common.labelled_records(tokenizer, test["scope"], y_test, n_test)
    mae = float(
        np.mean(np.abs(common.predict(model, test_records, tokenizer.pad_token_id, debye=True) - y_test))
    )
    info.update(test_mae=mae, test_mae_over_mad=mae / _mad(y_test), size=common.ACCURACY_SIZE)
    print(f"[accuracy] cv300 debye scratch long: {info}", flush=True)
    return info
