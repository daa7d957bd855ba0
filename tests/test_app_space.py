"""The web app on the demo's checkpoints, served locally and as a Hub Space (issue 22's "done when"), slow.

1. `cloud-crystal demo --size smoke` writes `cloud-demo/`; `cloud-crystal serve` with no `--model`, run beside it,
   answers through `gradio_client` with the same values as `cloud-crystal predict` on a CIF the tests never saw.
2. `cloud-crystal space` writes the Space (app.py, requirements.txt, card, wheel) for the demo's checkpoints pushed
   to the local Hub-protocol server, and publishes it there. The Space folder, downloaded back from that server,
   starts the app in a fresh virtual environment that installs its requirements.txt offline (`pip --no-index
   --find-links`); the heavy dependencies come from this test's environment, the role `--system-site-packages`
   plays on a machine whose base Python holds them. The app there answers as `cloud-crystal predict` does.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest
from hub_server import LOCAL_HUB_USER
from pymatgen.io.cif import CifWriter
from test_app import RESULT, call_app, file_call, perturbed_crystal, start_app, stop_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning"),
]

DEMO_MODELS = ("cloud-base", "formation-energy", "debye")
#: What the fresh environment must not see of this project (it gets the package from the Space's wheel only).
PROJECT_ENTRIES = ("cloud_crystal", "__editable__", "_cloud_crystal", "modeling_cloud", "tokenization",
                   "dataset_builders", "model_cards")  # fmt: skip
_RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """`cloud-crystal demo --size smoke` in a fresh folder: `<folder>/cloud-demo/{cloud-base,formation-energy,debye}`."""
    folder = tmp_path_factory.mktemp("app-demo")
    done = subprocess.run(
        [sys.executable, "-m", "modeling_cloud.cli", "demo", "--size", "smoke", "--output-dir", "cloud-demo"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def unseen_cif(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("app-unseen") / "SnO2_perturbed.cif"
    path.write_text(str(CifWriter(perturbed_crystal(seed=23))))
    return path


@functools.cache
def predict_rows(cif: Path, model: str, temperatures: tuple[float, ...] | None = None) -> dict:
    """`cloud-crystal predict --jsonl` on one file (once per file, model and temperatures in this session)."""
    command = [sys.executable, "-m", "modeling_cloud.cli", "predict", str(cif), "--model", model, "--jsonl"]
    if temperatures:
        command += ["--temperatures", *map(str, temperatures)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_page_matches_predict(result: dict, cif: Path, models: dict[str, str]) -> None:
    """Each model's values on the page equal `cloud-crystal predict` on the same file (same SCOPE string too)."""
    assert result["failure"] is None, result["failure"]
    by_name = {model["name"]: model for model in result["models"]}
    assert list(by_name) == list(models)
    for name, checkpoint in models.items():
        page = {prop["name"]: prop for prop in by_name[name]["properties"]}
        temperatures = tuple(page["heat_capacity"]["temperatures"]) if "heat_capacity" in page else None
        row = predict_rows(cif, checkpoint, temperatures)
        assert row["scope"] == by_name[name]["scope"]
        assert set(page) == set(row["predictions"])
        for prop, value in row["predictions"].items():
            assert page[prop]["value"] == pytest.approx(value, rel=1e-5, abs=1e-6), (name, prop)
    kinds = [model["kind"] for model in result["models"]]
    assert kinds == ["encoder", "regression", "debye"]


def test_serve_with_no_model_uses_the_demo_checkpoints_and_matches_predict(demo_dir, unseen_cif):
    process, url = start_app([sys.executable, "-m", "modeling_cloud.cli", "serve"], demo_dir)
    try:
        first, again = call_app(
            url, [file_call(unseen_cif), {"api_name": "/predict_text", "args": ["", "", 10, 1000]}]
        )
        (after,) = call_app(url, [file_call(unseen_cif)])
    finally:
        stop_app(process)
    models = {name: str(demo_dir / "cloud-demo" / name) for name in DEMO_MODELS}
    assert_page_matches_predict(first["outputs"][RESULT], unseen_cif, models)
    assert again["outputs"][RESULT]["failure"]["reason"] == "no_input"
    assert after["outputs"][RESULT]["models"] == first["outputs"][RESULT]["models"]
    # The first model given (the pretrained encoder) finds the neighbours.
    assert first["outputs"][RESULT]["neighbours_model"] == "cloud-base"
    assert len(first["outputs"][RESULT]["neighbours"]) == 5


def _fresh_venv(folder: Path) -> Path:
    """A new virtual environment that sees this environment's third-party packages but not this project."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(folder)], check=True, timeout=300
    )
    python = folder / "bin" / "python"
    farm = folder / "outer-site-packages"
    farm.mkdir()
    outer = Path(sysconfig.get_paths()["purelib"])
    for entry in outer.iterdir():
        if not entry.name.startswith(PROJECT_ENTRIES) and entry.suffix != ".pth":
            (farm / entry.name).symlink_to(entry)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # After the venv's own site-packages: what pip installs there (the wheel) wins.
    (Path(purelib) / "zz-outer-site-packages.pth").write_text(f"{farm}\n")
    # Python < 3.12 seeds a venv with an old setuptools that would hide the outer one (torch asks for a newer one).
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], capture_output=True, timeout=300
    )
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def test_space_published_to_the_local_hub_starts_in_a_fresh_venv(demo_dir, unseen_cif, hub_server, tmp_path):
    from huggingface_hub import HfApi, snapshot_download

    from modeling_cloud.app.neighbours import default_cache_dir
    from modeling_cloud.cli import main

    api = HfApi()
    repos = {}
    for name in DEMO_MODELS:
        repo_id = f"{LOCAL_HUB_USER}/app-{name}-{_RUN}"
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(demo_dir / "cloud-demo" / name), repo_id=repo_id,
                          ignore_patterns=["checkpoint-*"])  # fmt: skip
        repos[name] = repo_id
    space_id = f"{LOCAL_HUB_USER}/cloud-app-{_RUN}"
    argv = ["space", space_id, "--output-dir", str(tmp_path / "space")]
    for repo_id in repos.values():
        argv += ["--model", repo_id]
    assert main(argv) == 0

    downloaded = Path(snapshot_download(space_id, repo_type="space", local_dir=tmp_path / "downloaded"))
    card = (downloaded / "README.md").read_text()
    assert "sdk: gradio" in card and "app_file: app.py" in card
    assert all(f"- {repo_id}" in card for repo_id in repos.values())
    assert json.loads((downloaded / "space_config.json").read_text())["models"] == list(repos.values())
    (wheel,) = (downloaded / "wheels").glob("cloud_crystal-*.whl")
    requirements = (downloaded / "requirements.txt").read_text()
    assert "--find-links ./wheels" in requirements and "cloud-crystal[app]==" in requirements

    python = _fresh_venv(tmp_path / "venv")
    env = _clean_env(HF_HOME=str(tmp_path / "space-hf-home"), CLOUD_CRYSTAL_CACHE=str(default_cache_dir()))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(downloaded / "wheels"), "-r",
         "requirements.txt"],
        cwd=downloaded, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import modeling_cloud.app.layout as m; print(m.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout  # the wheel's copy, not ours

    process, url = start_app([str(python), "app.py"], downloaded, env=env)
    try:
        (answer,) = call_app(url, [file_call(unseen_cif)])
    finally:
        stop_app(process)
    result = answer["outputs"][RESULT]
    local = {name: str(demo_dir / "cloud-demo" / name) for name in DEMO_MODELS}
    assert [model["name"] for model in result["models"]] == list(repos.values())
    for model, name in zip(result["models"], DEMO_MODELS, strict=True):
        model["name"] = name
    assert_page_matches_predict(result, unseen_cif, local)
