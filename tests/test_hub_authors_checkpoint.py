"""The authors' checkpoint by its Hub id, `ChangwenXu/CLOUD`, served by the local Hub in the authors' layout.

The repository is built as the authors published theirs: everything in `ckpt/`: a BERT config (vocabulary 30522,
`pad_token_id` 0, 64 positions), `model.safetensors`, `generation_config.json`, and their WordPiece tokenizer files
(`vocab.txt`, `added_tokens.json`, `tokenizer_config.json`, `special_tokens_map.json`), from a small random
`BertForMaskedLM`. Training from it by Hub id must give exactly what the same files give from a folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tokenization.scope_tables import V1_ADDED_TOKENS, V1_WORDPIECE_VOCAB

pytestmark = pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")

AUTHORS_REPO = "ChangwenXu/CLOUD"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
EXAMPLES = Path(__file__).resolve().parents[1] / "dataset_builders" / "data" / "examples"


def write_authors_layout(folder: Path) -> torch.nn.Module:
    """Save a small random `BertForMaskedLM` plus the authors' tokenizer files into `folder/ckpt`."""
    from transformers import BertConfig, BertForMaskedLM, GenerationConfig

    torch.manual_seed(0)
    bert = BertForMaskedLM(
        BertConfig(vocab_size=30522, pad_token_id=0, max_position_embeddings=64, type_vocab_size=1, **TINY)
    ).eval()
    ckpt = folder / "ckpt"
    bert.save_pretrained(ckpt)
    GenerationConfig(pad_token_id=0).save_pretrained(ckpt)
    (ckpt / "vocab.txt").write_text("\n".join(V1_WORDPIECE_VOCAB) + "\n", encoding="utf-8")
    added = {token: len(V1_WORDPIECE_VOCAB) + index for index, token in enumerate(V1_ADDED_TOKENS)}
    (ckpt / "added_tokens.json").write_text(json.dumps(added), encoding="utf-8")
    special = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
               "unk_token": "[UNK]"}  # fmt: skip
    (ckpt / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 64,
                        "strip_accents": None, "tokenize_chinese_chars": True, **special}  # fmt: skip
    (ckpt / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return bert


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run on one thread; the count is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def authors_repo(hub_server, tmp_path_factory):
    """`ChangwenXu/CLOUD` on the local Hub, and a local folder holding the same files."""
    from huggingface_hub import HfApi

    folder = tmp_path_factory.mktemp("authors-release")
    bert = write_authors_layout(folder)
    api = HfApi()
    api.create_repo(AUTHORS_REPO, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=AUTHORS_REPO)
    files = set(api.list_repo_files(AUTHORS_REPO))
    assert {f"ckpt/{name}" for name in ("config.json", "model.safetensors", "vocab.txt")} <= files
    assert "config.json" not in files  # nothing at the top level: the sub-folder must be found
    return folder, bert


@pytest.fixture(autouse=True)
def keep_global_logging(monkeypatch):
    monkeypatch.setattr("modeling_cloud.training.engine.configure_logging", lambda process_index=0: None)


def _cloud_classes():
    from modeling_cloud import (
        CloudDebyeModel,
        CloudForMaskedLM,
        CloudForPropertyClassification,
        CloudForPropertyRegression,
        CloudModel,
    )

    return [CloudModel, CloudForMaskedLM, CloudForPropertyRegression, CloudForPropertyClassification,
            CloudDebyeModel]  # fmt: skip


@pytest.mark.parametrize("model_class", _cloud_classes(), ids=lambda cls: cls.__name__)
def test_every_cloud_class_loads_the_hub_subfolder(authors_repo, model_class):
    from tokenization import CloudTokenizerFast

    _, bert = authors_repo
    model = model_class.from_pretrained(AUTHORS_REPO, subfolder="ckpt").eval()
    assert model.config.model_type == "cloud" and model.config.vocab_size == 30522
    batch = CloudTokenizerFast.from_scope_version("v1")(
        ["1 0 0 | 1a 2i | Na 0.33 Cl 0.67", "0 0 0 | 1a | Si 1.0"], padding=True, return_tensors="pt"
    )
    encoder = model if model_class.__name__ == "CloudModel" else model.bert
    with torch.no_grad():
        got = encoder(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        expected = bert.bert(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.equal(got, expected)


@pytest.mark.parametrize("subfolder", [None, "ckpt"])
def test_the_subfolder_is_found_or_named(authors_repo, subfolder):
    from modeling_cloud.training.model_setup import inspect_pretrained

    source = inspect_pretrained(AUTHORS_REPO, subfolder)
    assert (source.model_type, source.where.subfolder, source.where.is_folder) == ("bert", "ckpt", False)
    assert source.config_dict["vocab_size"] == 30522 and source.config_dict["pad_token_id"] == 0
    local = inspect_pretrained(str(authors_repo[0]), subfolder)
    assert (local.where.subfolder, local.where.is_folder) == ("ckpt", True)


@pytest.mark.parametrize(
    ("location", "subfolder", "revision", "message"),
    [
        ("ChangwenXu/CLOUD-missing", None, None, "no such folder, and no such Hub repository"),
        (AUTHORS_REPO, "checkpoint", None, "has no checkpoint/config.json"),
        (AUTHORS_REPO, None, "no-such-branch", "has no revision 'no-such-branch'"),
        ("not/a/repo/id", None, None, "no such folder, and not a Hub repo id"),
    ],
)
def test_missing_or_wrong_repositories_are_named_errors(authors_repo, location, subfolder, revision, message):
    from modeling_cloud.training.model_setup import inspect_pretrained
    from modeling_cloud.training.options import TrainingConfigError

    with pytest.raises(TrainingConfigError, match=message):
        inspect_pretrained(location, subfolder, revision)


def test_a_missing_repository_stops_the_command_before_any_training(authors_repo, tmp_path, capsys):
    """Never a silent fall-back to training from scratch (the authors' own script falls back)."""
    from modeling_cloud.cli import main

    output = tmp_path / "never"
    argv = ["finetune", "--pretrained", "ChangwenXu/CLOUD-typo", "--train", "bundled:cloud-dielectric[:30]",
            "--target", "n", "--output-dir", str(output)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: --pretrained ChangwenXu/CLOUD-typo: no such folder, and no such Hub repository"
    )
    assert not list(output.glob("checkpoint-*")) and not (output / "model.safetensors").exists()


def test_several_candidate_subfolders_must_be_named(tmp_path):
    from modeling_cloud.convert_bert_checkpoint import CheckpointLocationError, locate_checkpoint

    for name in ("ckpt", "ckpt-old"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    with pytest.raises(
        CheckpointLocationError, match=r"several folders hold a config.json \(ckpt, ckpt-old\)"
    ):
        locate_checkpoint(str(tmp_path))
    assert locate_checkpoint(str(tmp_path), "ckpt-old").subfolder == "ckpt-old"


def test_convert_takes_the_hub_id(authors_repo, tmp_path):
    from modeling_cloud import CloudForMaskedLM
    from modeling_cloud.convert_bert_checkpoint import main

    _, bert = authors_repo
    assert main([AUTHORS_REPO, str(tmp_path / "converted"), "--with-tokenizer", "v1"]) == 0
    converted = CloudForMaskedLM.from_pretrained(tmp_path / "converted").eval()
    ids = torch.tensor([[0, 7, 10, 4, 6, 66, 2]])
    with torch.no_grad():
        assert torch.equal(converted(ids).logits, bert(ids).logits)
    assert json.loads((tmp_path / "converted" / "config.json").read_text())["scope_version"] == "v1"
    assert main(["ChangwenXu/CLOUD-missing", str(tmp_path / "x")]) == 2


def _predict(model_dir: Path, capsys) -> list[dict]:
    from modeling_cloud.cli import main

    inputs = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif", "GaAs.cif")]
    assert main(["predict", "--model", str(model_dir), *inputs, "--jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.slow
def test_finetune_by_hub_id_then_predict_equals_the_folder_path(authors_repo, tmp_path, capsys):
    """`cloud-crystal finetune --pretrained ChangwenXu/CLOUD`, then `predict`: identical to the same files from a
    folder (the sub-folder found in both, BERT layout converted on the fly, the v1 tokenizer)."""
    from safetensors.torch import load_file

    from modeling_cloud.cli import main

    folder, _ = authors_repo
    local_copy = tmp_path / "authors-folder"
    shutil.copytree(folder, local_copy)
    common = ["--train", "bundled:cloud-dielectric[:60]", "--target", "n", "--target-unit", "1",
              "--num-train-epochs", "2", "--per-device-train-batch-size", "27", "--learning-rate", "1e-3",
              "--use-cpu"]  # fmt: skip
    assert (
        main(["finetune", "--pretrained", AUTHORS_REPO, *common, "--output-dir", str(tmp_path / "hub")]) == 0
    )
    assert (
        main(["finetune", "--pretrained", str(local_copy), *common, "--output-dir", str(tmp_path / "dir")])
        == 0
    )
    capsys.readouterr()
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert (config["model_type"], config["scope_version"], config["vocab_size"]) == ("cloud", "v1", 30522)
    assert json.loads((tmp_path / "hub" / "training_config.json").read_text())["pretrained"] == AUTHORS_REPO
    from_hub, from_folder = (
        load_file(tmp_path / "hub" / "model.safetensors"),
        load_file(tmp_path / "dir" / "model.safetensors"),
    )
    assert from_hub.keys() == from_folder.keys()
    assert all(torch.equal(from_hub[name], from_folder[name]) for name in from_hub)
    hub_rows, folder_rows = _predict(tmp_path / "hub", capsys), _predict(tmp_path / "dir", capsys)
    assert [row["predictions"] for row in hub_rows] == [row["predictions"] for row in folder_rows]
    assert all("error" not in row and row["units"] == {"n": "1"} for row in hub_rows)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["pretrain", "train-debye"])
def test_pretrain_and_train_debye_start_from_the_hub_id(authors_repo, command, tmp_path):
    from modeling_cloud.cli import main

    train = "bundled:cloud-pretrain[:60]" if command == "pretrain" else "bundled:cloud-cv[:60]"
    argv = [command, "--pretrained", AUTHORS_REPO, "--pretrained-subfolder", "ckpt", "--train", train,
            "--max-steps", "2", "--per-device-train-batch-size", "16", "--output-dir", str(tmp_path / "out"),
            "--use-cpu"]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["architectures"] == [
        {"pretrain": "CloudForMaskedLM", "train-debye": "CloudDebyeModel"}[command]
    ]
    assert config["scope_version"] == "v1" and config["hidden_size"] == 32


def test_offline_the_cached_snapshot_is_used(authors_repo, tmp_path, monkeypatch):
    """Offline (HF_HUB_OFFLINE=1) the repository cannot be listed; its cached snapshot is searched instead."""
    import huggingface_hub
    from huggingface_hub.errors import OfflineModeIsEnabled

    from modeling_cloud.convert_bert_checkpoint import CheckpointLocationError, locate_checkpoint

    cache = tmp_path / "hub-cache"
    huggingface_hub.snapshot_download(AUTHORS_REPO, cache_dir=cache)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    found = locate_checkpoint(AUTHORS_REPO)
    assert (found.location, found.subfolder, found.is_folder) == (AUTHORS_REPO, "ckpt", False)
    with pytest.raises(CheckpointLocationError, match="offline .HF_HUB_OFFLINE. with no cached copy"):
        locate_checkpoint("ChangwenXu/never-downloaded")


def test_an_unreachable_hub_is_a_named_error(monkeypatch):
    import huggingface_hub

    from modeling_cloud.convert_bert_checkpoint import CheckpointLocationError, locate_checkpoint

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", unreachable)
    with pytest.raises(
        CheckpointLocationError, match=r"ChangwenXu/CLOUD: .* could not be reached \(ConnectionError"
    ):
        locate_checkpoint(AUTHORS_REPO)
