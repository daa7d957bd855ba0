"""Publishing from training over real HTTP (the local Hub server), then loading in a fresh process without this
project and with an empty HF_HOME: Auto classes with trust_remote_code and the crystal-property pipeline."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch
from hub_server import LOCAL_HUB_USER
from isolated import run_without_project

pytestmark = pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "dataset_builders" / "data" / "examples"
_RUN = uuid.uuid4().hex[:8]
BASE_REPO = f"{LOCAL_HUB_USER}/cloud-tiny-base-{_RUN}"
MODEL_REPO = f"{LOCAL_HUB_USER}/cloud-tiny-n-{_RUN}"
COPY_REPO = f"{LOCAL_HUB_USER}/cloud-tiny-n-copy-{_RUN}"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}

LOAD_FRESH = """
import json
import torch
from transformers import (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer,
                          pipeline)

inputs = json.loads({inputs!r})
classes = {{}}
tokenizer = AutoTokenizer.from_pretrained("{base}", trust_remote_code=True)
batch = tokenizer(inputs, padding=True, return_tensors="pt")
encoder = AutoModel.from_pretrained("{base}", trust_remote_code=True).eval()
with torch.no_grad():
    pooled = encoder(**batch).pooler_output
for auto in (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification):
    model = auto.from_pretrained("{base}", trust_remote_code=True)
    classes[auto.__name__] = [type(model).__module__, type(model).__name__]

model = AutoModelForSequenceClassification.from_pretrained("{model}", trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained("{model}", trust_remote_code=True)
with torch.no_grad():
    predictions = model(**tokenizer(inputs, padding=True, return_tensors="pt")).predictions[:, 0].tolist()
predictor = pipeline("crystal-property", model="{model}", trust_remote_code=True)
piped = [item["properties"][0] for item in predictor(inputs)]
print(json.dumps({{"classes": classes, "pooled_shape": list(pooled.shape), "predictions": predictions,
                  "pipeline": piped, "model_class": [type(model).__module__, type(model).__name__]}}))
"""


def _hub_env(endpoint: str, home: Path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_local_test_token_not_a_secret",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    """Pretrain and push a base; fine-tune from the *Hub* copy of it and push; push the folder again with `push`.

    Runs in this process: conftest.py points huggingface_hub at the session's local Hub server.
    """
    from modeling_cloud.training.finetune import run_finetune
    from modeling_cloud.training.options import settings_from_dict
    from modeling_cloud.training.pretrain import run_pretrain
    from modeling_cloud.training.push import main as push_main

    work = tmp_path_factory.mktemp("train-and-push")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_pretrain(
            settings_from_dict(
                "pretrain",
                {
                    "train": ["bundled:cloud-pretrain[:300]"],
                    "output_dir": str(work / "base"),
                    **TINY,
                    "num_train_epochs": 2,
                    "per_device_train_batch_size": 32,
                    "learning_rate": 2e-3,
                    "push_to_hub": True,
                    "hub_model_id": BASE_REPO,
                },
            )
        )
        run_finetune(
            settings_from_dict(
                "finetune",
                {
                    "pretrained": BASE_REPO,  # downloaded from the Hub
                    "train": ["bundled:cloud-dielectric[:150]"],
                    "test": ["bundled:cloud-dielectric-test[:40]"],
                    "target": ["n"],
                    "output_dir": str(work / "model"),
                    "num_train_epochs": 3,
                    "per_device_train_batch_size": 16,
                    "learning_rate": 1e-3,
                    "dataset_name": "matbench_dielectric fold",
                    "push_to_hub": True,
                    "hub_model_id": MODEL_REPO,
                },
            )
        )
    finally:
        torch.set_num_threads(threads)
    assert push_main([str(work / "model"), "--hub-model-id", COPY_REPO]) == 0
    assert not hub_server.server.unhandled_requests
    return work


@pytest.fixture(scope="module")
def fresh_load(pushed, hub_server, tmp_path_factory):
    """Everything loaded back in a process that cannot import this project, with an empty HF_HOME."""
    inputs = [
        "1 4 b O O O c O O O d O O O e O O O 0 | 1a 1b 3d | Sr 0.2 Ti 0.2 O 0.6",
        (EXAMPLES / "NaCl.cif").read_text(),
        (EXAMPLES / "Si.cif").read_text(),
    ]
    code = LOAD_FRESH.format(inputs=json.dumps(inputs), base=BASE_REPO, model=MODEL_REPO)
    home = tmp_path_factory.mktemp("fresh-hf-home")
    result = run_without_project(code, cwd=home, env=_hub_env(hub_server, home))
    assert result.returncode == 0, result.stderr[-5000:]
    return inputs, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_base_checkpoint_from_the_hub_gives_encoder_mlm_and_head(fresh_load):
    _, loaded = fresh_load
    for auto_class, expected in [
        ("AutoModel", "CloudModel"),
        ("AutoModelForMaskedLM", "CloudForMaskedLM"),
        ("AutoModelForSequenceClassification", "CloudForPropertyRegression"),
    ]:
        module, name = loaded["classes"][auto_class]
        assert name == expected and module.startswith("transformers_modules."), (auto_class, module, name)
    assert loaded["pooled_shape"] == [3, 32]


@pytest.mark.slow
def test_fresh_process_predictions_equal_the_trained_model(pushed, fresh_load):
    from modeling_cloud import CloudForPropertyRegression
    from tokenization import CloudTokenizerFast

    work = pushed
    inputs, loaded = fresh_load
    assert loaded["model_class"][1] == "CloudForPropertyRegression"
    assert loaded["model_class"][0].startswith("transformers_modules.")
    model = CloudForPropertyRegression.from_pretrained(work / "model").eval()
    tokenizer = CloudTokenizerFast.from_pretrained(work / "model")
    with torch.no_grad():
        local = model(**tokenizer(inputs, padding=True, return_tensors="pt")).predictions[:, 0]
    assert torch.allclose(torch.tensor(loaded["predictions"]), local, atol=1e-5)
    assert torch.allclose(torch.tensor([p["value"] for p in loaded["pipeline"]]), local, atol=1e-5)
    assert all(p["name"] == "n" for p in loaded["pipeline"])


@pytest.mark.slow
def test_pushed_repos_hold_the_hub_layout_and_no_training_state(pushed):
    from huggingface_hub import HfApi

    api = HfApi()
    files = set(api.list_repo_files(MODEL_REPO))
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "configuration_cloud.py",
        "modeling_cloud.py",
        "tokenization_cloud.py",
        "pipeline_crystal_property.py",
        "training_config.json",
        "all_results.json",
        "test_predictions.csv",
    } <= files
    assert not [
        name for name in files if name.endswith((".pt", ".pth", ".bin")) or name.startswith("checkpoint-")
    ]
    assert set(api.list_repo_files(COPY_REPO)) == files  # `cloud-crystal push` uploads the same folder
    base_files = set(api.list_repo_files(BASE_REPO))
    assert {"config.json", "model.safetensors", "modeling_cloud.py", "README.md"} <= base_files
    assert "pipeline_crystal_property.py" not in base_files


@pytest.mark.slow
def test_pushed_card_carries_the_real_metrics(pushed, tmp_path):
    from huggingface_hub import ModelCard, hf_hub_download

    work = pushed
    readme = hf_hub_download(MODEL_REPO, "README.md", cache_dir=tmp_path)
    card = ModelCard.load(readme)
    results = json.loads((work / "model" / "all_results.json").read_text())
    index = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        for metric in ("mae", "rmse", "r2", "mae_over_mad"):
            assert index[(split, metric)] == pytest.approx(results[f"{prefix}_{metric}"]), (split, metric)
    assert card.data.base_model == BASE_REPO
    assert card.data.license == "mit" and card.data.library_name == "transformers"
    assert card.data.datasets == ["matbench_dielectric"]
    assert card.data.eval_results[0].dataset_name == "matbench_dielectric fold"
    text = card.text
    for needle in (
        f'pipeline("crystal-property", model="{MODEL_REPO}", trust_remote_code=True)',
        "## Intended use and limitations",
        "Dunn, Alexander",  # MatBench citation for the dielectric data
        "arXiv:2506.17345",
        "bundled:cloud-dielectric[:150] (training)",
        "bundled:cloud-dielectric-test[:40] (test)",
    ):
        assert needle in text, needle


def test_push_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    from modeling_cloud.training.push import main as push_main

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "cloud"}))
    assert push_main([str(tmp_path), "--hub-model-id", "someone/anything"]) == 1
    err = capsys.readouterr().err
    assert "not a complete Hub-layout checkpoint" in err and "model.safetensors" in err and "README.md" in err
