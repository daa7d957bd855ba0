"""Every code block of README.md runs, against real (small) trained checkpoints on the local Hub server.

A session fixture runs the main job (`cloud-crystal demo`) at its smoke size, publishes its checkpoints and a
structure dataset under the repository ids the README uses, and then the README's Python blocks run in order, in
one fresh interpreter with an empty HF_HOME, from a folder that holds only the bundled data and a BERT-layout
checkpoint standing in for the authors' weights. Bash blocks run as written (install steps excepted: CI runs them).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
INSTALL_PREFIX = re.compile(r"^python3 -m venv \.venv && \. \.venv/bin/activate && pip install [^&]+&& ")


def readme_blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README) if lang == language]


@pytest.fixture(scope="session")
def published_demo(tmp_path_factory, hub_server):
    """Run the demo (smoke size), then publish its checkpoints and the MP structures to the local Hub."""
    from huggingface_hub import HfApi

    from dataset_builders import load_materials_project
    from modeling_cloud.demo import run_demo

    output = tmp_path_factory.mktemp("demo")
    summary = run_demo(output, size="smoke", seed=0)
    api = HfApi()
    for folder, repo_id in (
        ("cloud-base", "cloud-crystal/cloud-base"),
        ("formation-energy", "cloud-crystal/cloud-formation-energy"),
        ("debye", "cloud-crystal/cloud-debye"),
    ):
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(output / folder), repo_id=repo_id, ignore_patterns=["checkpoint-*"])
    load_materials_project().select(range(64)).push_to_hub("cloud-crystal/mp-structures", num_shards=2)
    return output, summary


@pytest.mark.slow
def test_demo_smoke_run_writes_everything(published_demo):
    output, summary = published_demo
    for name in ("cloud-base", "formation-energy", "debye"):
        folder = output / name
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        assert (folder / "README.md").read_text().startswith("---")  # model card with metadata
        assert (folder / "tokenizer.json").is_file()
        assert list(folder.glob("modeling_cloud.py")), f"{name} lacks its remote code"
    assert (output / "parity_formation_energy.png").stat().st_size > 10_000
    assert (output / "debye_curves.png").stat().st_size > 10_000
    row = summary["results"]["formation_energy_per_atom (eV/atom), MAE on test"]
    assert row["rows"] > 0 and all(row[k] >= 0 for k in ("mean", "composition RF", "CLOUD"))
    assert set(summary["predictions"]) >= {"Si", "NaCl", "MgO", "SrTiO3"}


@pytest.mark.slow
def test_readme_python_blocks_run(published_demo, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    workdir = tmp_path / "reader"
    (workdir / "dataset_builders").mkdir(parents=True)
    (workdir / "dataset_builders" / "data").symlink_to(REPO / "dataset_builders" / "data")
    # A BERT-layout checkpoint like the authors' (vocabulary 30522, pad id 0), small and random.
    BertForMaskedLM(
        BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=64, type_vocab_size=1)
    ).save_pretrained(workdir / "authors-cloud-checkpoint")  # fmt: skip
    script = "\n\n".join(readme_blocks("python"))
    assert "AutoModel.from_pretrained" in script and "Trainer(" in script and "streaming=True" in script
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-hf-home"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "SG225 Na 0.5 4a Cl 0.5 4b" in result.stdout
    assert "formation_energy_per_atom" in result.stdout and "theta_debye" in result.stdout


@pytest.mark.slow
def test_readme_bash_blocks(tmp_path):
    blocks = [line for body in readme_blocks("bash") for line in body.strip().splitlines()]
    test_command = next(line for line in blocks if "pytest" in line)
    main_job = next(line for line in blocks if line.endswith("cloud-crystal demo"))
    # Both Quickstart commands install the same way; CI runs the test command through .ci/run.
    assert INSTALL_PREFIX.match(test_command) and INSTALL_PREFIX.match(main_job)
    ci_script = (REPO / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci_script and "README.md" in ci_script
    for line in blocks:
        if INSTALL_PREFIX.match(line):
            continue  # install + demo/test commands: the demo runs in the fixture above, the tests are this run
        result = subprocess.run(shlex.split(line), cwd=REPO, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
