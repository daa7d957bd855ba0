# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`cloud-crystal space`: the files of a Hugging Face Space that runs the page, and their upload.

The package is not on PyPI, so the Space carries a wheel of it (`wheels/`), and its `requirements.txt` installs that
wheel with the `app` extra (`--find-links ./wheels`, then `cloud-crystal[app]==<version>`). The Space card's front
matter (`sdk: gradio`, `app_file: app.py`, `models:`) is the Hub's own record of the model repos the Space loads;
`space_config.json` gives `app.py` the same list. Nothing here imports Gradio.

Layout of the folder:

    README.md            the Space card
    app.py               calls modeling_cloud.app.serving.serve with the recorded models
    space_config.json    {"models": [...], "neighbours": 5}
    requirements.txt     --find-links ./wheels + cloud-crystal[app]==<version>
    wheels/cloud_crystal-<version>-py3-none-any.whl
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from huggingface_hub import HfApi

PACKAGE = "cloud-crystal"
SOURCE_ROOT = Path(__file__).resolve().parents[2]

APP_PY = '''"""A CLOUD crystal-property page on a Hugging Face Space (written by `cloud-crystal space`).

The models it loads are listed in space_config.json (and in the card's `models:`).
"""

import json
from pathlib import Path

from modeling_cloud.app.serving import serve

if __name__ == "__main__":  # the reader's worker processes import this module again; they must not serve
    config = json.loads(Path(__file__).with_name("space_config.json").read_text())
    serve(config["models"], neighbours=config["neighbours"])
'''

CARD = """---
title: {title}
emoji: 💎
colorFrom: blue
colorTo: green
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
license: mit
models:
{models}
tags:
- materials
- crystal
- cloud-crystal
---

# {title}

Predicts crystal properties with CLOUD models ({model_list}): upload a structure file (CIF, POSCAR, extxyz, pymatgen
JSON or an OPTIMADE record), paste one or click an example. The page shows the crystal's SCOPE string and orbits,
each model's predictions (with the ensemble's spread), Debye curves where a model predicts them, a 3D view and
similar Materials Project crystals.

Written by `cloud-crystal space`; the app runs from the wheel in `wheels/`.
"""


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        import tomllib

        return tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]["version"]


def build_wheel(output_dir: str | Path) -> Path:
    """`pip wheel --no-deps --no-build-isolation` of this package's source tree into `output_dir`.

    Raises:
        FileNotFoundError: the package is installed without its source tree (pass a wheel instead).
        RuntimeError: the build failed (pip's output in the message).
    """
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise FileNotFoundError(
            f"no pyproject.toml at {SOURCE_ROOT}: build a wheel of cloud-crystal yourself and pass --wheel"
        )
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="cloud-wheel-") as scratch:
        # Build from a copy, so that setuptools' build/ and egg-info never land in the source tree.
        source = Path(scratch) / "src"
        shutil.copytree(
            SOURCE_ROOT,
            source,
            ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "cloud-demo",
                                          "tests", "benchmarks", ".ci", "space-*", ".pytest_cache", ".ruff_cache"),
        )  # fmt: skip
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                   "-w", str(Path(scratch) / "wheels"), str(source)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building the wheel failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        (wheel,) = (Path(scratch) / "wheels").glob("cloud_crystal-*.whl")
        output_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, output_dir / wheel.name))


def write_space(
    repo_id: str,
    models: list[str],
    output_dir: str | Path | None = None,
    wheel: str | Path | None = None,
    neighbours: int = 5,
) -> Path:
    """Write the Space's files (see the module docstring) and return the folder.

    Args:
        repo_id: the Space's repo id (`org/name`), used in its title.
        models: Hub model repo ids the Space loads, in page order.
        output_dir: the folder (default `space-<name>` in the working directory); its old files are replaced.
        wheel: a wheel of this package to ship; default: build one from the source tree.
        neighbours: similar bundled crystals the page shows.
    """
    if not models:
        raise FileNotFoundError("a Space needs at least one --model repo id")
    folder = Path(output_dir) if output_dir else Path(f"space-{repo_id.split('/')[-1]}")
    wheels = folder / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    if wheel is not None:
        shipped = Path(shutil.copy2(wheel, wheels / Path(wheel).name))
    else:
        shipped = build_wheel(wheels)
    version = shipped.name.split("-")[1]
    try:
        gradio_version = metadata.version(
            "gradio"
        )  # the card's sdk_version: the Gradio this page was tested with
    except metadata.PackageNotFoundError as error:
        raise RuntimeError("the Space card names the Gradio version: install the `app` extra") from error

    (folder / "app.py").write_text(APP_PY)
    (folder / "space_config.json").write_text(
        json.dumps({"models": models, "neighbours": neighbours}, indent=2) + "\n"
    )
    (folder / "requirements.txt").write_text(
        "# The package is not on PyPI: the Space carries its wheel.\n"
        "--find-links ./wheels\n"
        f"{PACKAGE}[app]=={version}\n"
    )
    title = repo_id.split("/")[-1]
    (folder / "README.md").write_text(
        CARD.format(
            title=title,
            gradio_version=gradio_version,
            models="\n".join(f"- {model}" for model in models),
            model_list=", ".join(models),
        )
    )
    return folder


def publish_space(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create the Space repo (Gradio SDK) if needed and upload `folder`; returns the Space's URL."""
    api = HfApi()
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                      commit_message="cloud-crystal space: app, requirements, card and wheel")  # fmt: skip
    return str(url)
