"""Pretraining on 2 CPU processes (torchrun, gloo): each rank steps on its own shard of the data, and DDP keeps the
weights identical across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent(
    """
    import json, os, sys

    import torch
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    from modeling_cloud.training import data as training_data
    from modeling_cloud.training.options import settings_from_dict
    from modeling_cloud.training.pretrain import run_pretrain

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    batches = []
    original_call = training_data.ReproducibleMaskingCollator.torch_call

    def recording_call(self, examples):
        indices = [int(example["example_index"]) for example in examples]
        if min(indices) >= 0:  # training rows (validation rows have negative indices)
            batches.append(indices)
        return original_call(self, examples)

    training_data.ReproducibleMaskingCollator.torch_call = recording_call

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.initial = {name: p.detach().clone() for name, p in model.named_parameters()}

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step != 1:
                return
            weights = {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}
            save_file(weights, f"{out}/rank{rank}-step1.safetensors")
            report = {
                "world_size": torch.distributed.get_world_size(),
                "backend": torch.distributed.get_backend(),
                "changed": any(not torch.equal(self.initial[n], w) for n, w in weights.items()),
                "first_batch": batches[0],
            }
            with open(f"{out}/rank{rank}.json", "w") as handle:
                json.dump(report, handle)

    options = settings_from_dict("pretrain", {
        "train": ["bundled:cloud-pretrain[:256]"], "output_dir": f"{out}/run",
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "max_steps": 3, "per_device_train_batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 0.0,
        "eval_strategy": "steps",
        "eval_steps": 3, "logging_steps": 1,
    })
    run_pretrain(options, callbacks=[Probe()])
    with open(f"{out}/rank{rank}-batches.json", "w") as handle:
        json.dump(batches, handle)
    """
)


@pytest.mark.slow
def test_two_cpu_processes_shard_the_data_and_keep_weights_in_sync(tmp_path):
    worker = tmp_path / "ddp_worker.py"
    worker.write_text(WORKER)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # The worker script runs from tmp_path; the project packages are imported from this checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(worker),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(report["world_size"] == 2 and report["backend"] == "gloo" for report in reports)
    # Different shards: the two ranks' first batches share no example, and over the run no batch is seen twice.
    assert not set(reports[0]["first_batch"]) & set(reports[1]["first_batch"])
    batches = [json.loads((tmp_path / f"rank{rank}-batches.json").read_text()) for rank in (0, 1)]
    seen = [tuple(batch) for rank_batches in batches for batch in rank_batches]
    assert len(seen) == len(set(seen)) >= 6
    # One synchronised optimiser step: the weights moved, identically on both ranks.
    assert all(report["changed"] for report in reports)
    rank0 = load_file(tmp_path / "rank0-step1.safetensors")
    rank1 = load_file(tmp_path / "rank1-step1.safetensors")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Only the main process wrote the final model and its card, with the global batch in the card.
    card = (tmp_path / "run" / "README.md").read_text()
    assert "8 per device × 2 device(s)" in card
    assert (tmp_path / "run" / "model.safetensors").is_file()
