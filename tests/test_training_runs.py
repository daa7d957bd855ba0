"""pretrain, finetune (and its cross-validation) and train-debye end to end on bundled real data, tiny models, CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dataset_builders import load_materials_project
from modeling_cloud.training.finetune import run_finetune
from modeling_cloud.training.hub import check_hub_layout
from modeling_cloud.training.options import settings_from_dict
from modeling_cloud.training.pretrain import run_pretrain
from modeling_cloud.training.train_debye import run_train_debye

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models on a shared 2-core machine: one thread avoids oversubscription (10x slower otherwise).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mp_with_n() -> pd.DataFrame:
    frame = load_materials_project().to_pandas()
    return frame[frame["n"].notna()].reset_index(drop=True)


def _card(folder):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def _model_index(card) -> dict[tuple[str, str], float]:
    return {
        (result.dataset_split, result.metric_type): result.metric_value
        for result in card.data.eval_results or []
    }


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory, mp_with_n):
    """A base encoder pretrained on the authors' SCOPE strings plus Materials Project structures (a Parquet file)."""
    folder = tmp_path_factory.mktemp("pretrain")
    structures = folder / "mp_structures.parquet"
    mp_with_n.iloc[400:460][["material_id", "structure"]].to_parquet(structures, index=False)
    options = settings_from_dict(
        "pretrain",
        {
            "train": ["bundled:cloud-pretrain[:400]", str(structures)],
            "output_dir": str(folder / "base"),
            **TINY,
            "num_train_epochs": 3,
            "per_device_train_batch_size": 32,
            "learning_rate": 2e-3,
            "warmup_steps": 0.1,
            "logging_steps": 5,
        },
    )
    results = run_pretrain(options)
    return folder / "base", results


def test_pretrain_writes_a_hub_layout_base_checkpoint(base_checkpoint):
    base, results = base_checkpoint
    config = check_hub_layout(base)
    assert config["architectures"] == ["CloudForMaskedLM"]
    assert config["auto_map"]["AutoModel"] == "modeling_cloud.CloudModel"
    assert (
        config["auto_map"]["AutoModelForSequenceClassification"]
        == "modeling_cloud.CloudForPropertyRegression"
    )
    assert config["scope_version"] == "v1"  # SCOPE strings in the data: the authors' version
    assert "custom_pipelines" not in config  # no trained head, no property pipeline
    for checkpoint in base.glob("checkpoint-*"):
        check_hub_layout(checkpoint)
    # The model learnt something: the masked-token loss fell well below guessing among 564 tokens.
    state = json.loads(sorted(base.glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    evaluations = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    assert evaluations[-1] < evaluations[0] < math.log(564) + 0.5
    assert results["validation"]["eval_loss"] == pytest.approx(min(evaluations), rel=1e-6)
    card = _card(base)
    assert card.data.license == "mit" and "cloud" in card.data.tags
    assert _model_index(card)[("validation", "loss")] == pytest.approx(results["validation"]["eval_loss"])
    assert "masked-language modelling" in card.text and "arXiv 2506.17345" in card.text
    assert "cloud-pretrain" in card.text and "mp_structures.parquet" in card.text


def test_base_checkpoint_loads_as_encoder_and_starts_a_finetune(base_checkpoint):
    from transformers import AutoModel

    from modeling_cloud import CloudForMaskedLM, CloudForPropertyRegression, CloudModel
    from tokenization import CloudTokenizerFast

    base, _ = base_checkpoint
    tokenizer = CloudTokenizerFast.from_pretrained(base)
    batch = tokenizer(
        ["0 0 0 | 1a | Si 1.0", "1 0 0 | 1a 2i | Na 0.33 Cl 0.67"], padding=True, return_tensors="pt"
    )
    encoder = AutoModel.from_pretrained(base).eval()
    assert type(encoder) is CloudModel
    with torch.no_grad():
        pooled = encoder(**batch).pooler_output
    assert pooled.shape == (2, 32) and torch.isfinite(pooled).all()
    mlm = CloudForMaskedLM.from_pretrained(base)
    regression = CloudForPropertyRegression.from_pretrained(base, target_names=["band_gap"])
    for name, weight in mlm.bert.state_dict().items():
        assert torch.equal(regression.bert.state_dict()[name], weight), name


def test_finetune_from_base_on_structure_files(base_checkpoint, mp_with_n, tmp_path):
    from pymatgen.core import Structure

    from modeling_cloud import CloudForPropertyRegression
    from tokenization import CloudTokenizerFast

    base, _ = base_checkpoint
    train = mp_with_n.iloc[:150]
    validation = mp_with_n.iloc[150:190]
    test = mp_with_n.iloc[190:230]
    cif = [Structure.from_dict(json.loads(s)).to(fmt="cif") for s in train["structure"]]
    pd.DataFrame({"structure": cif, "n": train["n"]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(
        {"structure": [json.loads(s) for s in validation["structure"]], "n": validation["n"]}
    ).to_json(tmp_path / "validation.jsonl", orient="records", lines=True)
    test[["material_id", "structure", "n"]].to_parquet(tmp_path / "test.parquet", index=False)
    output = tmp_path / "n-model"
    options = settings_from_dict(
        "finetune",
        {
            "train": [str(tmp_path / "train.csv")],
            "validation": [str(tmp_path / "validation.jsonl")],
            "test": [str(tmp_path / "test.parquet")],
            "target": ["n"],
            "target_unit": ["1"],
            "pretrained": str(base),
            "output_dir": str(output),
            "num_train_epochs": 4,
            "per_device_train_batch_size": 16,
            "learning_rate": 1e-3,
        },
    )
    results = run_finetune(options)
    metrics = results["metrics"]

    config = check_hub_layout(output)
    assert (
        config["custom_pipelines"]["crystal-property"]["impl"]
        == "pipeline_crystal_property.CrystalPropertyPipeline"
    )
    assert config["target_names"] == ["n"] and config["scope_version"] == "v1"  # the base model's tokenizer
    # z-scoring statistics are those of the training rows
    assert config["target_means"][0] == pytest.approx(train["n"].mean())
    assert config["target_stds"][0] == pytest.approx(train["n"].std(ddof=0))
    for checkpoint in output.glob("checkpoint-*"):
        check_hub_layout(checkpoint)

    # Test metrics are in physical units: recompute them from the written predictions ...
    predictions = pd.read_csv(output / "test_predictions.csv")
    assert len(predictions) == 40
    errors = predictions["predicted_n"] - predictions["n"]
    assert metrics["test_mae"] == pytest.approx(errors.abs().mean(), rel=1e-5)
    assert metrics["test_rmse"] == pytest.approx(np.sqrt((errors**2).mean()), rel=1e-5)
    assert np.allclose(predictions["n"], test["n"])
    # ... and the saved (best) model reproduces those predictions.
    model = CloudForPropertyRegression.from_pretrained(output).eval()
    tokenizer = CloudTokenizerFast.from_pretrained(output)
    batch = tokenizer(list(test["structure"]), padding=True, return_tensors="pt")
    with torch.no_grad():
        again = model(**batch).predictions[:, 0].numpy()
    assert np.allclose(again, predictions["predicted_n"], atol=1e-5)

    card = _card(output)
    index = _model_index(card)
    assert index[("validation", "mae")] == pytest.approx(metrics["eval_mae"])
    assert index[("test", "mae")] == pytest.approx(metrics["test_mae"])
    assert index[("test", "r2")] == pytest.approx(metrics["test_r2"])
    assert card.data.base_model is None and str(base) in card.text  # a local folder is no Hub base_model
    assert 'pipeline("crystal-property"' in card.text and "trust_remote_code=True" in card.text
    assert "train.csv (training) | 150" in card.text


def test_early_stopping_ends_a_run_whose_validation_mae_stalls(tmp_path):
    from transformers import TrainerCallback

    from modeling_cloud.training.options import parse_settings

    class OptimiserProbe(TrainerCallback):
        """Any TrainingArguments flag reaches the Trainer: here `adam_epsilon`, which CLOUD never mentions."""

        eps = None

        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            OptimiserProbe.eps = {group["eps"] for group in optimizer.param_groups}

    output = tmp_path / "stalled"
    settings = settings_from_dict(
        "finetune",
        {
            "train": ["bundled:cloud-dielectric[:80]"],
            "target": ["n"],
            "output_dir": str(output),
            **TINY,
            "num_train_epochs": 10,
            "per_device_train_batch_size": 18,
            "learning_rate": 1e-12,  # nothing changes, so the validation MAE cannot improve
            "lr_scheduler_type": "cosine",
            "early_stopping_patience": 2,
            "adam_epsilon": 1e-6,
        },
    )
    run_finetune(settings, callbacks=[OptimiserProbe()])
    assert OptimiserProbe.eps == {1e-6}
    results = json.loads((output / "all_results.json").read_text())
    assert results["epoch"] == pytest.approx(3.0)  # 1 best evaluation + 2 without improvement
    assert "stopped early" in (output / "README.md").read_text()
    # The saved settings replay the run with --config.
    replay = parse_settings("finetune", ["--config", str(output / "training_config.json")])
    assert (replay.model, replay.data) == (settings.model, settings.data)
    assert replay.training.to_dict() == settings.training.to_dict()
    with pytest.raises(ValueError, match="holds settings of `finetune`, not `pretrain`"):
        parse_settings("pretrain", ["--config", str(output / "training_config.json")])


def test_train_debye_on_the_authors_heat_capacities(tmp_path):
    from modeling_cloud import CloudDebyeModel
    from tokenization import CloudTokenizerFast

    output = tmp_path / "debye"
    options = settings_from_dict(
        "train-debye",
        {
            "train": ["bundled:cloud-cv[:240]"],
            "test": ["bundled:cloud-cv-test[:60]"],
            "output_dir": str(output),
            **TINY,
            "num_train_epochs": 6,
            "per_device_train_batch_size": 16,
            "learning_rate": 3e-3,
        },
    )
    metrics = run_train_debye(options)["metrics"]
    config = check_hub_layout(output)
    assert config["architectures"] == ["CloudDebyeModel"] and config["debye_theta_head"] == "affine"
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_cloud.CloudDebyeModel"
    state = json.loads(sorted(output.glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    maes = [entry["eval_mae"] for entry in state["log_history"] if "eval_mae" in entry]
    assert min(maes) < 0.8 * maes[0]  # Cv MAE (J/(K mol)) falls as θ_D is learnt

    # The reported test MAE is the Cv error in J/(K mol) of the saved model at 300 K.
    from dataset_builders import load_cloud_example

    test = load_cloud_example("cv")["test"].select(range(60))
    model = CloudDebyeModel.from_pretrained(output).eval()
    tokenizer = CloudTokenizerFast.from_pretrained(output)
    batch = tokenizer(list(test["scope"]), padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, n_atoms=torch.tensor(test["n_atoms"], dtype=torch.float32), temperatures=[300.0])
    mae = float((out.heat_capacity[:, 0] - torch.tensor(test["cv"])).abs().mean())
    assert metrics["test_mae"] == pytest.approx(mae, rel=1e-4)
    card = _card(output)
    assert _model_index(card)[("test", "mae")] == pytest.approx(metrics["test_mae"])
    assert "CLOUD-DEBYE" in card.text and "J/(K mol)" in card.text and "300 K" in card.text


def test_cross_validation_reports_mean_and_spread_over_matbench_folds(tmp_path):
    from dataset_builders.splits import kfold_indices

    output = tmp_path / "cv"
    options = settings_from_dict(
        "finetune",
        {
            "train": ["bundled:cloud-dielectric[:100]"],
            "target": ["n"],
            "cv_folds": 5,
            "output_dir": str(output),
            **TINY,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 32,
            "learning_rate": 1e-3,
        },
    )
    results = run_finetune(options)
    saved = json.loads((output / "cv_results.json").read_text())
    assert saved["folds"] == 5 and saved["seed"] == 18012019 and len(saved["per_fold"]) == 5
    maes = [fold["test_mae"] for fold in saved["per_fold"]]
    assert saved["summary"]["mae"]["mean"] == pytest.approx(np.mean(maes))
    assert saved["summary"]["mae"]["std"] == pytest.approx(np.std(maes))
    assert results["summary"] == saved["summary"]
    # Each fold's model was evaluated on exactly the MatBench-style held-out rows.
    for fold, (_, held_out) in enumerate(kfold_indices(100, 5, 18012019)):
        predicted = pd.read_csv(output / f"fold-{fold}" / "test_predictions.csv")
        assert sorted(int(source.rsplit(" ", 1)[1]) for source in predicted["source"]) == sorted(held_out)
        check_hub_layout(output / f"fold-{fold}")


def _authors_layout_checkpoint(folder, vocabulary):
    """A tiny `BertForMaskedLM` saved the way the authors released CLOUD (BERT config, vocab.txt)."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    bert = BertForMaskedLM(
        BertConfig(vocab_size=30522, pad_token_id=0, max_position_embeddings=64, type_vocab_size=1, **TINY)
    )
    bert.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    return bert


def test_finetune_starts_from_the_authors_bert_layout(tmp_path):
    from safetensors.torch import load_file

    from tokenization.scope_tables import V1_WORDPIECE_VOCAB

    bert = _authors_layout_checkpoint(tmp_path / "authors", V1_WORDPIECE_VOCAB)
    output = tmp_path / "from-authors"
    settings = {
        "train": ["bundled:cloud-dielectric[:60]"],
        "target": ["n"],
        "pretrained": str(tmp_path / "authors"),
        "output_dir": str(output),
        "num_train_epochs": 1,
        "per_device_train_batch_size": 27,
        "learning_rate": 1e-12,  # keep the loaded weights as they are, to compare them
        "lr_scheduler_type": "cosine",
    }
    run_finetune(settings_from_dict("finetune", settings))
    config = json.loads((output / "config.json").read_text())
    # The authors' 30522-row embeddings load as they are; padding follows the tokenizer ([PAD] = 1, not [CLS] = 0).
    assert (config["model_type"], config["vocab_size"], config["pad_token_id"]) == ("cloud", 30522, 1)
    assert config["scope_version"] == "v1" and config["architectures"] == ["CloudForPropertyRegression"]
    saved = load_file(output / "model.safetensors")
    for name, weight in bert.bert.state_dict().items():
        if name in saved or f"bert.{name}" in saved:
            assert torch.allclose(saved[f"bert.{name}"], weight, atol=1e-9), name
    assert not [name for name in bert.bert.encoder.state_dict() if f"bert.encoder.{name}" not in saved]


@pytest.mark.parametrize("tokenizer_file", ["vocab.txt", "added_tokens.json"])
def test_a_bert_checkpoint_with_other_token_ids_is_refused(tmp_path, tokenizer_file):
    from modeling_cloud.training.options import TrainingConfigError
    from tokenization.scope_tables import V1_ADDED_TOKENS, V1_WORDPIECE_VOCAB

    vocabulary = list(V1_WORDPIECE_VOCAB)
    added = {token: len(vocabulary) + index for index, token in enumerate(V1_ADDED_TOKENS)}
    if tokenizer_file == "vocab.txt":
        vocabulary[10], vocabulary[11] = vocabulary[11], vocabulary[10]
    else:
        first, second = V1_ADDED_TOKENS[:2]
        added[first], added[second] = added[second], added[first]
    _authors_layout_checkpoint(tmp_path / "other-ids", vocabulary)
    (tmp_path / "other-ids" / "added_tokens.json").write_text(json.dumps(added))
    settings = settings_from_dict(
        "finetune",
        {"train": ["bundled:cloud-dielectric[:30]"], "target": ["n"], "pretrained": str(tmp_path / "other-ids"),
         "output_dir": str(tmp_path / "x")},
    )  # fmt: skip
    with pytest.raises(TrainingConfigError, match=f"its {tokenizer_file} differs from the SCOPE v1"):
        run_finetune(settings)
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_new_models_on_structures_use_scope_v2_and_report_skipped_rows(mp_with_n, tmp_path):
    from tokenization import CloudTokenizerFast

    try:
        v2 = CloudTokenizerFast.from_scope_version("v2")
    except ImportError:
        pytest.skip("SCOPE v2 tokenizer not available")
    rows = mp_with_n.iloc[300:360][["material_id", "structure", "n"]].copy()
    rows.iloc[7, rows.columns.get_loc("structure")] = "data_x\n_cell_length_a 3\n"  # unreadable
    rows.to_json(tmp_path / "data.jsonl", orient="records", lines=True)
    output = tmp_path / "v2-model"
    options = settings_from_dict(
        "finetune",
        {
            "train": [str(tmp_path / "data.jsonl")],
            "target": ["n"],
            "output_dir": str(output),
            "skip_invalid_rows": True,
            **TINY,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 27,
        },
    )
    run_finetune(options)
    assert json.loads((output / "config.json").read_text())["scope_version"] == "v2"
    assert CloudTokenizerFast.from_pretrained(output).get_vocab() == v2.get_vocab()
    skipped = [json.loads(line) for line in (output / "skipped_rows.jsonl").read_text().splitlines()]
    assert [row["source"] for row in skipped] == ["data.jsonl row 7"]
    assert "1 rows could not be used" in (output / "README.md").read_text()
