"""Faults: a run killed with SIGKILL resumes from its last checkpoint to the same weights as an uninterrupted run;
corrupt, incomplete or missing checkpoints are clear errors, never a silent restart from scratch."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modeling_cloud.training.engine import CheckpointError, latest_complete_checkpoint
from modeling_cloud.training.finetune import run_finetune
from modeling_cloud.training.options import settings_from_dict
from modeling_cloud.training.pretrain import run_pretrain

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
# 144 training rows in batches of 8: 18 steps per epoch, so checkpoints fall inside epochs and the run crosses
# epoch boundaries.
FINETUNE = {
    "train": ["bundled:cloud-dielectric[:160]"],
    "target": ["n"],
    **TINY,
    "max_steps": 60,
    "per_device_train_batch_size": 8,
    "eval_strategy": "steps",
    "eval_steps": 5,
    "save_total_limit": 20,
    "learning_rate": 1e-3,
    "early_stopping_patience": 0,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _flags(settings: dict) -> list[str]:
    flags = []
    for name, value in settings.items():
        flags.append("--" + name.replace("_", "-"))
        flags.extend(str(v) for v in value) if isinstance(value, list) else flags.append(str(value))
    return flags


def _assert_same_weights(first: Path, second: Path, atol: float = 1e-6):
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), f"{name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("resume") / "uninterrupted"
    run_finetune(settings_from_dict("finetune", {**FINETUNE, "output_dir": str(output)}))
    return output


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_reaches_the_uninterrupted_weights(uninterrupted, tmp_path):
    output = tmp_path / "killed"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable,
        "-m",
        "modeling_cloud.training.finetune",
        *_flags(FINETUNE),
        "--output-dir",
        str(output),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Checkpoint 25 lies inside the second epoch (steps 19-36): the resumed run must rebuild that epoch's order.
    marker = output / "checkpoint-25" / "trainer_state.json"
    deadline = time.monotonic() + 300
    try:
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"training ended before its first checkpoints:\n{process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint-25 after 300 s")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (output / "model.safetensors").exists()  # killed before the end
    assert not (output / "checkpoint-60").exists()

    # A fresh start in that folder would silently throw the run away: refused.
    fresh = settings_from_dict("finetune", {**FINETUNE, "output_dir": str(output)})
    with pytest.raises(ValueError, match="--resume-from-checkpoint last"):
        run_finetune(fresh)

    resumed = settings_from_dict(
        "finetune", {**FINETUNE, "output_dir": str(output), "resume_from_checkpoint": "last"}
    )
    run_finetune(resumed)
    _assert_same_weights(uninterrupted / "checkpoint-60", output / "checkpoint-60")
    _assert_same_weights(uninterrupted, output)  # the selected (best) model too
    first = json.loads((uninterrupted / "all_results.json").read_text())
    second = json.loads((output / "all_results.json").read_text())
    assert second["eval_mae"] == pytest.approx(first["eval_mae"], abs=1e-6)


@pytest.fixture(autouse=True)
def keep_global_logging(monkeypatch):
    # The command handlers configure process-wide logging for a CLI run; inside the shared pytest process that
    # would reach other people's tests, so it is skipped here (the subprocess runs cover it).
    monkeypatch.setattr("modeling_cloud.training.engine.configure_logging", lambda process_index=0: None)


def _cli(argv: list[str]):
    from modeling_cloud.cli import _add_command
    from modeling_cloud.training.commands import add_training_commands

    parser = argparse.ArgumentParser(prog="cloud-crystal")
    add_training_commands(parser.add_subparsers(dest="command", required=True), _add_command)
    args = parser.parse_args(argv)
    return args.handler(args)


def _copy_run(source: Path, target: Path, checkpoints: list[int]) -> Path:
    target.mkdir(parents=True)
    for step in checkpoints:
        shutil.copytree(source / f"checkpoint-{step}", target / f"checkpoint-{step}")
    return target


def test_corrupt_checkpoint_is_a_clear_error(uninterrupted, tmp_path, capsys):
    run = _copy_run(uninterrupted, tmp_path / "corrupt", [50])
    weights = run / "checkpoint-50" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated, as by a full disk
    flags = [*_flags(FINETUNE), "--output-dir", str(run)]
    assert _cli(["finetune", *flags, "--resume-from-checkpoint", str(run / "checkpoint-50")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint-50: model.safetensors is corrupt or truncated" in err
    assert not (run / "checkpoint-55").exists()  # nothing was trained
    # `last` skips it, but with no other checkpoint there is nothing to resume: an error, not a fresh start.
    assert _cli(["finetune", *flags, "--resume-from-checkpoint", "last"]) == 1
    assert "no usable checkpoint" in capsys.readouterr().err


def test_incomplete_and_missing_checkpoints(uninterrupted, tmp_path, capsys):
    run = _copy_run(uninterrupted, tmp_path / "incomplete", [45, 50])
    (run / "checkpoint-50" / "trainer_state.json").unlink()  # killed while saving: the state is written last
    with pytest.raises(CheckpointError, match="incomplete: no trainer_state.json"):
        from modeling_cloud.training.engine import validate_checkpoint

        validate_checkpoint(run / "checkpoint-50")
    assert latest_complete_checkpoint(run) == run / "checkpoint-45"
    flags = [*_flags(FINETUNE), "--output-dir", str(run)]
    assert _cli(["finetune", *flags, "--resume-from-checkpoint", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert (
        _cli(["finetune", *_flags(FINETUNE), "--output-dir", str(empty), "--resume-from-checkpoint", "last"])
        == 1
    )
    assert "nothing to resume" in capsys.readouterr().err


def test_resumed_pretraining_sees_the_same_masks_and_batches(tmp_path):
    settings = {
        "train": ["bundled:cloud-pretrain[:300]"],
        **TINY,
        "max_steps": 14,  # 285 training rows in batches of 32: 9 steps per epoch
        "per_device_train_batch_size": 32,
        "eval_strategy": "steps",
        "eval_steps": 4,
        "save_total_limit": 10,
        "learning_rate": 1e-3,
    }
    full = tmp_path / "full"
    run_pretrain(settings_from_dict("pretrain", {**settings, "output_dir": str(full)}))
    partial = _copy_run(full, tmp_path / "partial", [4])
    run_pretrain(
        settings_from_dict(
            "pretrain", {**settings, "output_dir": str(partial), "resume_from_checkpoint": "last"}
        )
    )
    _assert_same_weights(full / "checkpoint-14", partial / "checkpoint-14")
