"""Seed ensembles (issue 17): `cloud-crystal finetune --ensemble K` trains K members on one split and saves them as one
checkpoint; the Auto classes, the `crystal-property` pipeline and `predict --jsonl` give the members' mean with
their standard deviation (`std`); a single model's outputs keep their format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from modeling_cloud import CloudConfig, CloudDebyeModel, CloudForPropertyRegression
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
    assert torch.allclose(out.predictions_std, half_gap, atol=1e-6)
    assert bool((out.predictions_std > 0).all())  # different seeds, different members


def test_predict_jsonl_rows_carry_std_per_property(ensemble_dir, capsys):
    assert main(["predict", "--model", str(ensemble_dir), *CRYSTALS, "--jsonl"]) == 0
    rows = _jsonl(capsys.readouterr().out)
    assert [row["source"] for row in rows] == CRYSTALS
    model = CloudForPropertyRegression.from_pretrained(ensemble_dir).eval()
    with torch.inference_mode():
        out = model(**_batch(ensemble_dir))
    for row, mean, spread in zip(
        rows, out.predictions[:, 0].tolist(), out.predictions_std[:, 0].tolist(), strict=True
    ):
        assert set(row["predictions"]) == set(row["std"]) == set(row["units"]) == {"n"}
        assert row["predictions"]["n"] == pytest.approx(mean, abs=1e-5)
        assert row["std"]["n"] == pytest.approx(spread, abs=1e-5) and row["std"]["n"] > 0
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
    for result, mean, spread in zip(
        results, out.predictions[:, 0].tolist(), out.predictions_std[:, 0].tolist(), strict=True
    ):
        (prop,) = result["properties"]
        assert set(prop) == {"name", "value", "std", "unit"}
        assert prop["value"] == pytest.approx(mean, abs=1e-5) and prop["std"] == pytest.approx(
            spread, abs=1e-5
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
    with pytest.raises(ValueError, match="CloudForPropertyRegression only"):
        CloudDebyeModel(config)
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
    assert report["prop"]["value"] == pytest.approx(float(expected.predictions[0, 0]), abs=1e-5)
