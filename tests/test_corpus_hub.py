"""A corpus built from the OPTIMADE reference server, pushed to the local Hub, streamed back and pretrained on.

All over real HTTP on 127.0.0.1: the OPTIMADE server (optimade package) and the Hub-protocol server (tests/hub_server.py).
"""

from __future__ import annotations

import json

import datasets
import pyarrow.parquet as pq
import pytest
from hub_server import hub_repo_id, hub_server  # noqa: F401  (fixtures)
from optimade_server import OptimadeTestServer, materials_project_documents

from dataset_builders.corpus import build_corpus


@pytest.mark.slow
def test_push_stream_and_pretrain_streaming(hub_server, hub_repo_id, tmp_path):  # noqa: F811
    from huggingface_hub import HfApi

    from modeling_cloud.cli import main

    with OptimadeTestServer(
        materials_project_documents(120), license="https://spdx.org/licenses/CC-BY-4.0"
    ) as server:
        summary = build_corpus(
            optimade=[server.base_url],
            output_dir=tmp_path / "corpus",
            page_size=40,
            shard_size=40,
            push_to_hub=hub_repo_id,
            progress=False,
        )
    assert summary.hub_repo == hub_repo_id and len(summary.shards) == 3
    files = set(HfApi().list_repo_files(hub_repo_id, repo_type="dataset"))
    assert files == {*summary.shards, "failures.jsonl", "README.md", ".gitattributes"} - (
        set() if ".gitattributes" in files else {".gitattributes"}
    )
    card = HfApi().hf_hub_download(hub_repo_id, "README.md", repo_type="dataset")
    with open(card, encoding="utf-8") as handle:
        text = handle.read()
    assert f'load_dataset("{hub_repo_id}"' in text and "license: cc-by-4.0" in text

    local = [row for name in summary.shards for row in pq.read_table(tmp_path / "corpus" / name).to_pylist()]
    stream = datasets.load_dataset(hub_repo_id, split="train", streaming=True)
    assert stream.n_shards == 3
    assert [dict(row) for row in stream] == local

    code = main(
        ["pretrain", "--train", f"hub:{hub_repo_id}", "--streaming", "--max-steps", "3", "--model-size", "tiny",
         "--per-device-train-batch-size", "8", "--output-dir", str(tmp_path / "run"), "--logging-steps", "1",
         "--save-strategy", "no", "--eval-strategy", "no", "--use-cpu"]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "all_results.json").read_text())
    assert metrics["skipped_rows"] == 0 and metrics["eval_loss"] > 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
