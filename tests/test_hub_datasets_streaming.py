"""A structure dataset pushed to the (local) Hub, streamed back, encoded on the fly, sharded per rank and trained on."""

from __future__ import annotations

import math

import datasets
import pytest
from hub_server import hub_repo_id, hub_server  # noqa: F401  (fixtures; also re-exported by conftest once wired)

from dataset_builders import load_materials_project
from dataset_builders.encoding import encode_on_the_fly
from dataset_builders.reporting import FailureReport
from tokenization import CloudTokenizerFast


@pytest.fixture(scope="module")
def mp_slice():
    return load_materials_project().filter(lambda row: row["n"] is not None).select(range(48))


@pytest.mark.slow
def test_push_stream_shard_and_train(hub_server, hub_repo_id, mp_slice, tmp_path):  # noqa: F811
    from datasets.distributed import split_dataset_by_node
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from modeling_cloud import CloudConfig, CloudForPropertyRegression

    # Two parquet files for two ranks: split_dataset_by_node then hands each rank whole files. (With fewer files
    # than ranks it splits by example *after* the map, so every rank would encode every row.)
    mp_slice.push_to_hub(hub_repo_id, num_shards=2)
    served = [path for method, path in hub_server.server.request_log if method == "PUT"]
    assert served, "the parquet shard went through the LFS upload route"

    stream = datasets.load_dataset(hub_repo_id, split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    report = FailureReport()
    shards = [
        encode_on_the_fly(
            split_dataset_by_node(stream, rank=rank, world_size=2),
            tokenizer,
            label_columns="n",
            report=report,
        )
        for rank in range(2)
    ]
    # The two ranks see disjoint shards that together hold every row exactly once.
    rank_labels = [[round(row["labels"], 5) for row in shard] for shard in shards]
    assert len(rank_labels[0]) + len(rank_labels[1]) == 48 and min(map(len, rank_labels)) > 0
    assert sorted(rank_labels[0] + rank_labels[1]) == sorted(round(value, 5) for value in mp_slice["n"])
    assert report.num_failed == 0 and report.rows_seen == 48  # each row was encoded once, by its own rank

    config = CloudConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        target_names=["n"],
        target_means=[3.0],
        target_stds=[2.0],
    )
    model = CloudForPropertyRegression(config)
    arguments = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=shards[0],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 4 and math.isfinite(result.training_loss)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)
