# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Hub layout of saved models, and publishing them.

A CLOUD checkpoint folder in Hub layout holds `config.json` (with `auto_map`, and `custom_pipelines` for property
and Debye models), `model.safetensors`, the tokenizer files, the remote-code `.py` files of the model, tokenizer and
pipeline, and a `README.md` model card. Such a folder loads with `trust_remote_code=True` without this package, from
disk or from the Hub.

Publishing uploads that folder with `huggingface_hub` (`create_repo` + `upload_folder`), leaving out the Trainer's
resume-only files (optimizer, scheduler and RNG states, which are pickles) and the intermediate checkpoints. The
Trainer's own `push_to_hub` is not used because it replaces README.md with its generic auto-generated card.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY

logger = logging.getLogger("modeling_cloud.training")

PIPELINE_TASK = "crystal-property"
#: Files never uploaded: resume-only Trainer state (pickles) and what belongs to single runs.
UPLOAD_IGNORE_PATTERNS = [
    "checkpoint-*",
    "checkpoint-*/**",
    "fold-*",
    "fold-*/**",
    "member-*",
    "member-*/**",
    "runs/**",
    "*.pt",
    "*.pth",
    "*.bin",
    "*.pkl",
    "trainer_state.json",
    ".cache/**",
]
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md")


class HubLayoutError(ValueError):
    """A folder is not a complete Hub-layout CLOUD checkpoint (the message lists what is missing)."""


def _pipeline_class():
    return PIPELINE_REGISTRY.supported_tasks[PIPELINE_TASK]["impl"]


def pipeline_registration() -> dict:
    """The `custom_pipelines` entry of config.json, as `Pipeline.save_pretrained` writes it."""
    info = dict(PIPELINE_REGISTRY.supported_tasks[PIPELINE_TASK])
    implementation = info["impl"]
    info["impl"] = f"{implementation.__module__.split('.')[-1]}.{implementation.__name__}"
    info["pt"] = tuple(auto_class.__name__ for auto_class in info["pt"])
    return {PIPELINE_TASK: info}


def attach_pipeline(model) -> None:
    """Record the crystal-property pipeline in the model config, so that `pipeline(task, model=repo,
    trust_remote_code=True)` finds its code in the checkpoint."""
    model.config.custom_pipelines = pipeline_registration()


def copy_pipeline_code(folder: str | Path) -> None:
    custom_object_save(_pipeline_class(), str(folder))


def save_hub_checkpoint(model, tokenizer, folder: str | Path, with_pipeline: bool) -> Path:
    """Write model, tokenizer and remote code (and the pipeline code) to `folder` (the card is written apart)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if with_pipeline:
        attach_pipeline(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if with_pipeline:
        copy_pipeline_code(folder)
    return folder


def check_hub_layout(folder: str | Path) -> dict:
    """Raise [`HubLayoutError`] unless `folder` holds a complete Hub-layout checkpoint; returns its config dict."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HubLayoutError(f"{folder} is not a folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if "config.json" in missing:
        raise HubLayoutError(f"{folder} is not a model checkpoint: no config.json")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config.get("auto_map") or {}
    for auto_class in ("AutoConfig", "AutoModel"):
        if auto_class not in auto_map:
            missing.append(f"config.json auto_map[{auto_class}]")
    code_files = {
        f"{reference.split('.')[0]}.py" for reference in auto_map.values() if isinstance(reference, str)
    }
    for task in (config.get("custom_pipelines") or {}).values():
        code_files.add(f"{task['impl'].split('.')[0]}.py")
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        tokenizer_map = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("auto_map") or {}
        for reference in tokenizer_map.get("AutoTokenizer") or []:
            if reference:
                code_files.add(f"{reference.split('.')[0]}.py")
    missing += sorted(name for name in code_files if not (folder / name).is_file())
    if missing:
        raise HubLayoutError(
            f"{folder} is not a complete Hub-layout checkpoint; missing: {', '.join(missing)}"
        )
    return config


def publish(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload CLOUD model",
    token: str | None = None,
) -> str:
    """Create `repo_id` (if needed) and upload the Hub-layout checkpoint in `folder`; returns the commit URL.

    The token comes from `token`, `HF_TOKEN` or `hf auth login`.
    """
    from huggingface_hub import HfApi

    check_hub_layout(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message,
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
    )
    logger.info("pushed %s to %s", folder, commit.commit_url)
    return commit.commit_url
