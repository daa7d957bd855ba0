"""Seed ensembles (issue 17): `cloud-crystal finetune --ensemble K` trains K members on one split and saves them as one
checkpoint; the Auto classes, the `crystal-property` pipeline and `predict --jsonl` give the members' mean with
their standard deviation (`std`); a single model's outputs keep their format."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from modeling_cloud import (
    CloudConfig,
    CloudDebyeModel,
    CloudForPropertyClassification,
    CloudForPropertyRegression,
)
from modeling_cloud.cli import main
from modeling_cloud.training.hub import check_hub_layout

EXAMPLES = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples"
CRYSTALS = [str(EXAMPLES / name) for name in ("Si.cif", "NaCl.cif", "MgO.cif")]
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models on a shared 2-core machine: one thread avoids oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory) -> Path:
    """`cloud-crystal finetune --ensemble 2` on 120 rows of the bundled dielectric data, tiny model, 2 epochs."""
    output = tmp_path_factory.mktemp("ensemble") / "n-ensemble"
    argv = [
        "finetune",
        "--train", "bundled:cloud-dielectric[:120]",
        "--target", "n",
        "--output-dir", str(output),
        "--model-size", "tiny",
        "--num-train-epochs", "2",
        "--per-device-train-batch-size", "32",
        "--learning-rate", "1e-3",
        "--seed", "7",
        "--ensemble", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    return output


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _batch(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer([tokenizer.scope_from_structure(tokenizer.load_structure(c)) for c in CRYSTALS], padding=True,
                     return_tensors="pt")  # fmt: skip


def test_finetune_ensemble_saves_one_folder_that_auto_loads_as_the_members_mean(ensemble_dir):
    from transformers import AutoModelForSequenceClassification

    config = check_hub_layout(ensemble_dir)
    assert config["num_ensemble_members"] == 2
    results = json.loads((ensemble_dir / "ensemble_results.json").read_text())
    assert [member["seed"] for member in results["members"]] == [7, 8]
    assert all("eval_mae" in member["metrics"] for member in results["members"])
    assert "eval_mae" in results["ensemble"]
    card = (ensemble_dir / "README.md").read_text()
    assert "2 members, seeds 7, 8" in card and "A seed ensemble of 2 models" in card and "nan" not in card

    model = AutoModelForSequenceClassification.from_pretrained(ensemble_dir, trust_remote_code=True).eval()
    assert (
        isinstance(model, CloudForPropertyRegression) or type(model).__name__ == "CloudForPropertyRegression"
    )
    members = [
        CloudForPropertyRegression.from_pretrained(ensemble_dir / f"member-{i}").eval() for i in range(2)
    ]
    # Both members z-score with the statistics of the one shared training split.
    assert members[0].config.target_means == members[1].config.target_means == model.config.target_means
    batch = _batch(ensemble_dir)
    with torch.inference_mode():
        out = model(**batch)
        alone = torch.stack([member(**batch).predictions for member in members], dim=1)  # (batch, 2, 1)
    assert out.predictions.shape == out.predictions_std.shape == (3, 1)
    assert torch.allclose(out.member_predictions, alone, atol=1e-6)
    assert torch.allclose(out.predictions, alone.mean(dim=1), atol=1e-6)
    # Population standard deviation of two values: half their distance.
    half_gap = (alone[:, 0] - alone[:, 1]).abs() / 2
    assert torch.allclose(out.predictions_std_raw, half_gap, atol=1e-6)
    assert bool((out.predictions_std_raw > 0).all())  # different seeds, different members
    # σ is hypot(a, k × raw spread), a and k fitted on the calibration rows (10 % of the training rows by default,
    # at least 200 rows, at most 25 %: the 108 rows left after validation give 27).
    calibration = model.config.uncertainty_calibration
    assert (
        calibration["method"] in ("gaussian_nll", "quantile") and calibration["calibration_rows"]["n"] == 27
    )
    floor, factor = calibration["std_floors"]["n"], calibration["std_factors"]["n"]
    assert torch.allclose(out.predictions_std, torch.hypot(torch.tensor(floor), half_gap * factor), rtol=1e-5)
    # The calibration rows were neither trained on nor used for early stopping.
    assert results["calibration_rows"].startswith(
        "25% of the training rows left after the validation hold-out"
    )
    for split in ("validation",):
        scores = results["uncertainty"][split]["n"]
        assert set(scores["calibrated"]) == {
            "coverage_1sigma", "coverage_2sigma", "spearman", "miscalibration_area", "rows"
        }  # fmt: skip


def test_predict_jsonl_rows_carry_std_per_property(ensemble_dir, capsys):
    assert main(["predict", "--model", str(ensemble_dir), *CRYSTALS, "--jsonl"]) == 0
    rows = _jsonl(capsys.readouterr().out)
    assert [row["source"] for row in rows] == CRYSTALS
    model = CloudForPropertyRegression.from_pretrained(ensemble_dir).eval()
    with torch.inference_mode():
        out = model(**_batch(ensemble_dir))
    for row, mean, sigma, spread in zip(
        rows,
        out.predictions[:, 0].tolist(),
        out.predictions_std[:, 0].tolist(),
        out.predictions_std_raw[:, 0].tolist(),
        strict=True,
    ):
        assert set(row["predictions"]) == set(row["std"]) == set(row["std_raw"]) == set(row["units"]) == {"n"}
        assert row["predictions"]["n"] == pytest.approx(mean, abs=1e-5)
        assert row["std"]["n"] == pytest.approx(sigma, abs=1e-5) and row["std"]["n"] > 0
        assert row["std_raw"]["n"] == pytest.approx(spread, abs=1e-5) and row["interval_95"]["n"] > 0
    # The plain-text line shows the spread too.
    assert main(["predict", "--model", str(ensemble_dir), CRYSTALS[0]]) == 0
    assert " ± " in capsys.readouterr().out


def test_pipeline_from_the_folder_returns_std_beside_value(ensemble_dir):
    from transformers import pipeline

    predictor = pipeline("crystal-property", model=str(ensemble_dir), trust_remote_code=True)
    results = predictor(CRYSTALS)
    model = CloudForPropertyRegression.from_pretrained(ensemble_dir).eval()
    with torch.inference_mode():
        out = model(**_batch(ensemble_dir))
    k, k95 = model.config.uncertainty_factors("n")
    a, a95 = model.config.uncertainty_floors("n")
    for result, mean, sigma, spread in zip(
        results,
        out.predictions[:, 0].tolist(),
        out.predictions_std[:, 0].tolist(),
        out.predictions_std_raw[:, 0].tolist(),
        strict=True,
    ):
        (prop,) = result["properties"]
        assert set(prop) == {"name", "value", "std", "std_raw", "calibrated", "interval_95", "unit"}
        assert prop["value"] == pytest.approx(mean, abs=1e-5)
        assert prop["std"] == pytest.approx(sigma, abs=1e-5) and prop["std"] == pytest.approx(
            math.hypot(a, k * spread), rel=1e-5
        )
        assert prop["std_raw"] == pytest.approx(spread, abs=1e-5) and prop["calibrated"] is True
        assert prop["interval_95"] == pytest.approx(math.hypot(a95, k95 * spread), rel=1e-5)


def test_a_calibration_floor_in_the_config_reaches_the_outputs_and_the_pipeline(ensemble_dir, tmp_path):
    """σ = hypot(a, k · spread) with the floor a stored in `uncertainty_calibration`, in the model's outputs and in
    the pipeline's `std` and `interval_95`; a negative floor is refused."""
    from transformers import pipeline

    folder = tmp_path / "floored"
    shutil.copytree(ensemble_dir, folder, ignore=shutil.ignore_patterns("member-*", "checkpoint-*"))
    config = json.loads((folder / "config.json").read_text())
    config["uncertainty_calibration"].update(
        std_factors={"n": 1.5},
        interval_95_factors={"n": 3.5},
        std_floors={"n": 0.25},
        interval_95_floors={"n": 0.6},
    )
    (folder / "config.json").write_text(json.dumps(config))
    model = CloudForPropertyRegression.from_pretrained(folder).eval()
    with torch.inference_mode():
        out = model(**_batch(folder))
    expected = torch.hypot(torch.tensor(0.25), 1.5 * out.predictions_std_raw)
    assert torch.allclose(out.predictions_std, expected, rtol=1e-6)
    results = pipeline("crystal-property", model=str(folder), trust_remote_code=True)(CRYSTALS)
    for result, spread in zip(results, out.predictions_std_raw[:, 0].tolist(), strict=True):
        (prop,) = result["properties"]
        assert prop["std"] == pytest.approx(math.hypot(0.25, 1.5 * spread), rel=1e-5)
        assert prop["interval_95"] == pytest.approx(math.hypot(0.6, 3.5 * spread), rel=1e-5)
    with pytest.raises(StrictDataclassClassValidationError, match="std_floors"):
        CloudConfig(
            **TINY, uncertainty_calibration={**config["uncertainty_calibration"], "std_floors": {"n": -0.1}}
        )


def test_a_single_model_keeps_its_keys_outputs_and_rows(tmp_path, capsys):
    config = CloudConfig(**TINY, vocab_size=564, scope_version="v1", target_names=["n"], target_means=[2.0])
    assert config.num_ensemble_members == 1
    model = CloudForPropertyRegression(config).eval()
    assert all(key.startswith(("bert.", "head.")) for key in model.state_dict())
    with torch.inference_mode():
        out = model(torch.tensor([[0, 7, 10, 40, 6, 66, 2]]))
    assert out.predictions_std is None and out.member_predictions is None
    assert list(out.keys()) == ["predictions"]

    from tokenization import CloudTokenizerFast

    model.save_pretrained(tmp_path / "single")
    CloudTokenizerFast.from_scope_version("v1").save_pretrained(tmp_path / "single")
    assert main(["predict", "--model", str(tmp_path / "single"), CRYSTALS[0], "--jsonl"]) == 0
    (row,) = _jsonl(capsys.readouterr().out)
    assert set(row) == {"source", "scope", "predictions", "units"}
    from modeling_cloud.cli import load_property_pipeline

    (prop,) = load_property_pipeline(str(tmp_path / "single"))(CRYSTALS[0])["properties"]
    assert set(prop) == {"name", "value", "unit"}


def test_ensembles_are_refused_where_they_do_not_apply():
    config = CloudConfig(**TINY, num_ensemble_members=2)
    with pytest.raises(ValueError, match="CloudForPropertyRegression and CloudDebyeModel only"):
        CloudForPropertyClassification(config)
    with pytest.raises(StrictDataclassClassValidationError, match="std_factors"):
        CloudConfig(**TINY, uncertainty_calibration={"method": "quantile", "std_factors": {"n": -1.0},
                                                     "interval_95_factors": {"n": 2.0}})  # fmt: skip
    with pytest.raises(StrictDataclassClassValidationError, match="num_ensemble_members must be >= 1"):
        CloudConfig(**TINY, num_ensemble_members=0)
    single = CloudForPropertyRegression(CloudConfig(**TINY))
    other = CloudForPropertyRegression(CloudConfig(**TINY, target_names=["band_gap"]))
    with pytest.raises(ValueError, match="target_names"):
        CloudForPropertyRegression.from_members([single, other])
    from modeling_cloud.training.options import TrainingConfigError, settings_from_dict

    with pytest.raises(TrainingConfigError, match="--ensemble and --cv-folds"):
        settings_from_dict(
            "finetune", {"train": ["x.csv"], "target": ["n"], "output_dir": "o", "ensemble": 2, "cv_folds": 3}
        )
    for command, extra in (("finetune", {"target": ["n"]}), ("train-debye", {})):
        with pytest.raises(TrainingConfigError, match="add --ensemble K"):
            settings_from_dict(
                command, {"train": ["x.csv"], "output_dir": "o", "calibration_fraction": 0.2, **extra}
            )
        with pytest.raises(TrainingConfigError, match=r"--calibration-fraction must be in \[0, 1\)"):
            settings_from_dict(
                command,
                {"train": ["x.csv"], "output_dir": "o", "ensemble": 3, "calibration_fraction": 1.5, **extra},
            )


def test_the_ensemble_folder_stands_alone_as_remote_code(ensemble_dir, tmp_path):
    """In an interpreter that cannot import this project, the Auto class and the pipeline run the folder's own code."""
    import sys

    from isolated import run_without_project

    model = CloudForPropertyRegression.from_pretrained(ensemble_dir).eval()
    batch = _batch(ensemble_dir)
    with torch.inference_mode():
        expected = model(**batch)
    scopes = json.dumps(batch["input_ids"].tolist())
    code = f"""
        import sys
        sys.path.extend(p for p in {[p for p in sys.path if p.endswith("lib-dynload")]!r} if p not in sys.path)
        import json
        import torch
        import transformers
        torch.set_num_threads({torch.get_num_threads()})
        folder = {str(ensemble_dir)!r}
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        ids = torch.tensor(json.loads({scopes!r}))
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=(ids != model.config.pad_token_id).long())
        predictor = transformers.pipeline("crystal-property", model=folder, trust_remote_code=True)
        (prop,) = predictor({CRYSTALS[0]!r})["properties"]
        print(json.dumps({{"module": type(model).__module__, "mean": out.predictions.tolist(),
                          "std": out.predictions_std.tolist(), "prop": prop}}))
    """
    result = run_without_project(
        code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules.")
    assert torch.allclose(torch.tensor(report["mean"]), expected.predictions, atol=1e-5)
    assert torch.allclose(torch.tensor(report["std"]), expected.predictions_std, atol=1e-5)
    assert report["prop"]["std"] == pytest.approx(float(expected.predictions_std[0, 0]), abs=1e-5)
    assert report["prop"]["calibrated"] is True
    assert report["prop"]["value"] == pytest.approx(float(expected.predictions[0, 0]), abs=1e-5)


# -- Debye ensembles ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def debye_ensemble_dir(tmp_path_factory) -> Path:
    """`cloud-crystal train-debye --ensemble 2` on 150 rows of the bundled Cv data (40 test rows), tiny, 2 epochs."""
    output = tmp_path_factory.mktemp("debye-ensemble") / "cv-ensemble"
    argv = [
        "train-debye",
        "--train", "bundled:cloud-cv[:150]",
        "--test", "bundled:cloud-cv-test[:40]",
        "--output-dir", str(output),
        "--model-size", "tiny",
        "--num-train-epochs", "2",
        "--per-device-train-batch-size", "32",
        "--learning-rate", "1e-3",
        "--seed", "3",
        "--ensemble", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    return output


def test_debye_ensemble_propagates_each_members_theta_through_the_debye_functions(debye_ensemble_dir):
    from modeling_cloud.debye_functions import debye_thermodynamics

    config = check_hub_layout(debye_ensemble_dir)
    assert config["num_ensemble_members"] == 2
    model = CloudDebyeModel.from_pretrained(debye_ensemble_dir).eval()
    members = [CloudDebyeModel.from_pretrained(debye_ensemble_dir / f"member-{i}").eval() for i in range(2)]
    batch = _batch(debye_ensemble_dir)
    temperatures = torch.tensor([50.0, 300.0, 900.0])
    n_atoms = torch.tensor([8.0, 8.0, 8.0])
    with torch.inference_mode():
        out = model(**batch, n_atoms=n_atoms, temperatures=temperatures)
        thetas = torch.stack([m(**batch).theta_debye for m in members], dim=1)  # (3, 2)
    assert torch.allclose(out.member_theta_debye, thetas, rtol=1e-5)
    assert bool((out.theta_debye_std_raw > 0).all())
    # The oracle: each member's θ_D through the Debye functions in float64, then mean and population spread.
    thermo = debye_thermodynamics(
        thetas.double()[..., None], temperatures.double(), n_atoms.double()[:, None, None]
    )  # fields of shape (3, 2, 3)
    k = model.config.uncertainty_factors("heat_capacity")[0]
    for name in ("heat_capacity", "internal_energy", "entropy", "free_energy"):
        members_values = getattr(thermo, name)
        expected_raw = members_values.std(dim=1, correction=0).float()
        assert torch.allclose(getattr(out, name), members_values.mean(dim=1).float(), rtol=1e-4), name
        assert torch.allclose(getattr(out, f"{name}_std_raw"), expected_raw, rtol=1e-3, atol=1e-4), name
        assert torch.allclose(getattr(out, f"{name}_std"), expected_raw * k, rtol=1e-3, atol=1e-3), name
    assert torch.allclose(out.theta_debye_std, thetas.std(dim=1, correction=0) * k, rtol=1e-4)


def test_debye_ensemble_results_keep_every_members_figures_and_the_calibration(debye_ensemble_dir):
    results = json.loads((debye_ensemble_dir / "ensemble_results.json").read_text())
    assert [member["seed"] for member in results["members"]] == [3, 4]
    for member in results["members"]:
        assert {"eval_mae", "test_mae", "eval_mae_over_mad", "test_mae_over_mad"} <= set(member["metrics"])
    assert {"eval_mae", "test_mae"} <= set(results["ensemble"])
    calibration = results["calibration"]
    assert (
        calibration == json.loads((debye_ensemble_dir / "config.json").read_text())["uncertainty_calibration"]
    )
    # 10 % of the 135 rows left after validation is under the 200-row floor: the default takes its cap, 25 %
    assert calibration["calibration_rows"]["heat_capacity"] == 34
    test_scores = results["uncertainty"]["test"]["heat_capacity"]
    assert test_scores["calibrated"]["rows"] == 40
    for scores in test_scores.values():
        assert 0.0 <= scores["coverage_1sigma"] <= scores["coverage_2sigma"] <= 1.0
        assert 0.0 <= scores["miscalibration_area"] <= 0.5


def test_debye_ensemble_pipeline_and_predict_report_sigma_per_temperature(debye_ensemble_dir, capsys):
    from transformers import pipeline

    predictor = pipeline("crystal-property", model=str(debye_ensemble_dir), trust_remote_code=True)
    result = predictor(CRYSTALS[1], temperatures=[100.0, 300.0])
    by_name = {prop["name"]: prop for prop in result["properties"]}
    k, k95 = CloudDebyeModel.from_pretrained(debye_ensemble_dir).config.uncertainty_factors("heat_capacity")
    assert by_name["theta_debye"]["std"] == pytest.approx(k * by_name["theta_debye"]["std_raw"], rel=1e-5)
    for name in ("heat_capacity", "internal_energy", "entropy", "free_energy"):
        prop = by_name[name]
        assert len(prop["std"]) == len(prop["std_raw"]) == len(prop["interval_95"]) == 2
        assert prop["calibrated"] is True
        assert prop["interval_95"] == pytest.approx([k95 * v for v in prop["std_raw"]], rel=1e-5)
    assert (
        main(
            [
                "predict",
                "--model",
                str(debye_ensemble_dir),
                CRYSTALS[1],
                "--jsonl",
                "--temperatures",
                "100",
                "300",
            ]
        )
        == 0
    )
    (row,) = _jsonl(capsys.readouterr().out)
    assert set(row["std"]) == set(row["std_raw"]) == set(row["interval_95"]) == set(by_name)
    assert row["std"]["heat_capacity"] == pytest.approx(by_name["heat_capacity"]["std"], rel=1e-5)


def test_the_debye_ensemble_folder_stands_alone_as_remote_code(debye_ensemble_dir, tmp_path):
    import sys

    from isolated import run_without_project

    model = CloudDebyeModel.from_pretrained(debye_ensemble_dir).eval()
    batch = _batch(debye_ensemble_dir)
    with torch.inference_mode():
        expected = model(**batch, temperatures=torch.tensor([300.0]))
    ids = json.dumps(batch["input_ids"].tolist())
    code = f"""
        import sys
        sys.path.extend(p for p in {[p for p in sys.path if p.endswith("lib-dynload")]!r} if p not in sys.path)
        import json
        import torch
        import transformers
        torch.set_num_threads(1)
        folder = {str(debye_ensemble_dir)!r}
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        ids = torch.tensor(json.loads({ids!r}))
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=(ids != model.config.pad_token_id).long(),
                        temperatures=torch.tensor([300.0]))
        print(json.dumps({{"module": type(model).__module__, "theta_std": out.theta_debye_std.tolist(),
                          "cv_std": out.heat_capacity_std.tolist()}}))
    """
    result = run_without_project(
        code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules.")
    assert torch.allclose(torch.tensor(report["theta_std"]), expected.theta_debye_std, rtol=1e-5)
    assert torch.allclose(torch.tensor(report["cv_std"]), expected.heat_capacity_std, rtol=1e-5)
