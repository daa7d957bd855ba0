# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Load or convert a `BertForMaskedLM` checkpoint (such as the authors' released CLOUD model) into the CLOUD classes.

The authors released CLOUD as a plain `BertForMaskedLM`: BERT config with `vocab_size` 30522 and `pad_token_id` 0,
64 positions, `type_vocab_size` 1, and their 564-token SCOPE vocabulary. The CLOUD classes use the same parameter
names, so the weights load unchanged; this module only builds a clean [`CloudConfig`] from the BERT config and checks
that every encoder weight was found.

Command line:

    python -m modeling_cloud.convert_bert_checkpoint SRC DST [--subfolder ckpt] [--shrink-vocab 564] [--with-tokenizer v1]

`SRC` is a folder or Hub id holding the BERT checkpoint, e.g. `ChangwenXu/CLOUD`, the authors' release, which keeps
everything in a `ckpt/` sub-folder: [`locate_checkpoint`] finds that folder when `--subfolder` is not given. `DST`
receives a CLOUD checkpoint (safetensors, remote code).
`--shrink-vocab N` keeps only the first N token rows (ids >= 564 are never produced by the SCOPE v1 tokenizer), which
leaves the logits of the kept ids unchanged and removes ~23 M unused parameters at BERT-base size.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from transformers import BertConfig

from .configuration_cloud import CloudConfig
from .modeling_cloud import CloudForMaskedLM, CloudPreTrainedModel

CONFIG_NAME = "config.json"


class CheckpointLocationError(ValueError):
    """A checkpoint location (folder, Hub repo, sub-folder or revision) does not exist or holds no `config.json`;
    the message names the location and what was found instead."""


@dataclass(frozen=True)
class CheckpointLocation:
    """Where a checkpoint's `config.json` is.

    Attributes:
        location: the folder or Hub repo id as given.
        subfolder: the folder inside it that holds `config.json` (`""` for the top level).
        revision: the Hub branch, tag or commit (`None`: the default branch; unused for folders).
        is_folder: whether `location` is a local folder.
    """

    location: str
    subfolder: str = ""
    revision: str | None = None
    is_folder: bool = False

    @property
    def load_kwargs(self) -> dict:
        """`subfolder` and `revision` keywords for `from_pretrained` and `hf_hub_download`."""
        kwargs = {"subfolder": self.subfolder} if self.subfolder else {}
        if self.revision and not self.is_folder:
            kwargs["revision"] = self.revision
        return kwargs

    def __str__(self) -> str:
        shown = f"{self.location}/{self.subfolder}" if self.subfolder else self.location
        return f"{shown}@{self.revision}" if self.revision and not self.is_folder else shown


def _pick_subfolder(location: str, candidates: list[str], where: str) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointLocationError(
            f"{location}: no {CONFIG_NAME} in {where} or in a folder one level below"
        )
    raise CheckpointLocationError(
        f"{location}: several folders hold a {CONFIG_NAME} ({', '.join(sorted(candidates))}); name one with "
        "--pretrained-subfolder"
    )


def locate_checkpoint(
    location: str, subfolder: str | None = None, revision: str | None = None
) -> CheckpointLocation:
    """Find the folder holding `config.json` in a local folder or a Hub repository.

    The top level is used when it holds `config.json`; otherwise the one folder one level below that holds one
    (the authors' `ChangwenXu/CLOUD` keeps its checkpoint in `ckpt/`). A given `subfolder` is checked, not searched.
    With `HF_HUB_OFFLINE=1`, a Hub repository is looked up in the local cache.

    Args:
        location: a local folder or a Hub repo id.
        subfolder: the folder inside `location` to use (`None`: find it).
        revision: Hub branch, tag or commit.

    Returns:
        [`CheckpointLocation`].

    Raises:
        CheckpointLocationError: no such folder or repository (or revision), no `config.json` where expected, or
            several candidate folders. Never a silent fallback.

    Example:

    ```python
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from modeling_cloud.convert_bert_checkpoint import locate_checkpoint
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "ckpt").mkdir()
    >>> _ = (root / "ckpt" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    >>> locate_checkpoint(str(root)).subfolder
    'ckpt'

    ```
    """
    subfolder = (subfolder or "").strip("/")
    path = Path(location)
    if path.is_dir():
        if subfolder:
            if not (path / subfolder / CONFIG_NAME).is_file():
                raise CheckpointLocationError(f"{location}: no {CONFIG_NAME} in its sub-folder {subfolder!r}")
            return CheckpointLocation(location, subfolder, None, True)
        if (path / CONFIG_NAME).is_file():
            return CheckpointLocation(location, "", None, True)
        found = [child.name for child in path.iterdir() if (child / CONFIG_NAME).is_file()]
        return CheckpointLocation(location, _pick_subfolder(location, found, "the folder"), None, True)
    files = _hub_repo_files(location, revision)
    if files is None:  # offline: the files of the cached snapshot
        snapshot = _cached_snapshot(location, revision)
        found = locate_checkpoint(snapshot, subfolder or None)
        return CheckpointLocation(location, found.subfolder, revision, False)
    if subfolder:
        if f"{subfolder}/{CONFIG_NAME}" not in files:
            raise CheckpointLocationError(
                f"{location}: the Hub repository has no {subfolder}/{CONFIG_NAME} (its files: "
                f"{', '.join(sorted(files)[:10])}{' ...' if len(files) > 10 else ''})"
            )
        return CheckpointLocation(location, subfolder, revision, False)
    if CONFIG_NAME in files:
        return CheckpointLocation(location, "", revision, False)
    found = sorted(
        name.rsplit("/", 1)[0] for name in files if name.count("/") == 1 and name.endswith(f"/{CONFIG_NAME}")
    )
    return CheckpointLocation(location, _pick_subfolder(location, found, "the repository"), revision, False)


def _cached_snapshot(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise CheckpointLocationError(
            f"{repo_id}: no such folder, and the Hub is offline (HF_HUB_OFFLINE) with no cached copy of it"
        ) from error


def _hub_repo_files(repo_id: str, revision: str | None) -> list[str] | None:
    """The repository's file names, or `None` when the Hub is offline (HF_HUB_OFFLINE)."""
    from huggingface_hub import list_repo_files
    from huggingface_hub.errors import (
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return list_repo_files(repo_id, revision=revision)
    except HFValidationError as error:
        raise CheckpointLocationError(
            f"{repo_id}: no such folder, and not a Hub repo id ({error})"
        ) from error
    except RepositoryNotFoundError as error:
        raise CheckpointLocationError(
            f"{repo_id}: no such folder, and no such Hub repository (or it is private and no token was given)"
        ) from error
    except RevisionNotFoundError as error:
        raise CheckpointLocationError(
            f"{repo_id}: the Hub repository has no revision {revision!r}"
        ) from error
    except OfflineModeIsEnabled:
        return None
    except Exception as error:  # HfHubHTTPError, or the HTTP client's connection errors (no network, no DNS)
        raise CheckpointLocationError(
            f"{repo_id}: no such folder, and the Hub could not be reached ({type(error).__name__}: {error})"
        ) from error


def load_bert_checkpoint(
    pretrained_model_name_or_path: str,
    model_class: type[CloudPreTrainedModel] = CloudForMaskedLM,
    *,
    shrink_vocab_to: int | None = None,
    subfolder: str = "",
    revision: str | None = None,
    **config_overrides,
) -> CloudPreTrainedModel:
    """Load a `BertForMaskedLM` checkpoint into a CLOUD class.

    Args:
        pretrained_model_name_or_path: folder or Hub id of the BERT checkpoint.
        model_class: CLOUD class to build ([`CloudForMaskedLM`] by default; a property head gets the encoder and a
            freshly initialised head).
        shrink_vocab_to: keep only the first N token embeddings (and MLM decoder rows).
        subfolder: the folder inside `pretrained_model_name_or_path` that holds the checkpoint (`"ckpt"` for the
            authors' `ChangwenXu/CLOUD`; see [`locate_checkpoint`]).
        revision: Hub branch, tag or commit.
        config_overrides: [`CloudConfig`] head settings, e.g. `head_num_layers=3, target_names=[...]`.

    Raises:
        ValueError: if the checkpoint is not a BERT checkpoint or lacks encoder weights.

    Example:

    ```python
    >>> import tempfile, torch
    >>> from transformers import BertConfig, BertForMaskedLM
    >>> from modeling_cloud.convert_bert_checkpoint import load_bert_checkpoint
    >>> bert = BertForMaskedLM(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
    ...                                   intermediate_size=64, max_position_embeddings=64, type_vocab_size=1)).eval()
    >>> folder = tempfile.mkdtemp()
    >>> bert.save_pretrained(folder)
    >>> cloud = load_bert_checkpoint(folder).eval()
    >>> ids = torch.tensor([[0, 7, 10, 4, 6, 66, 2]])
    >>> bool(torch.equal(cloud(ids).logits, bert(ids).logits))
    True

    ```
    """
    location = {"subfolder": subfolder} if subfolder else {}
    if revision:
        location["revision"] = revision
    bert_config = BertConfig.from_pretrained(pretrained_model_name_or_path, **location)
    if bert_config.model_type != "bert":
        raise ValueError(
            f"{pretrained_model_name_or_path} holds a {bert_config.model_type!r} config, expected a BERT checkpoint"
        )
    config = CloudConfig.from_bert_config(bert_config, **config_overrides)
    model, loading_info = model_class.from_pretrained(
        pretrained_model_name_or_path, config=config, output_loading_info=True, **location
    )
    missing_encoder = sorted(
        key for key in loading_info["missing_keys"] if key.startswith(("bert.", "embeddings."))
    )
    if missing_encoder:
        raise ValueError(
            f"{pretrained_model_name_or_path} lacks encoder weights: {missing_encoder[:5]}"
            f"{' ...' if len(missing_encoder) > 5 else ''}"
        )
    if shrink_vocab_to is not None:
        if not 0 < shrink_vocab_to <= config.vocab_size:
            raise ValueError(f"shrink_vocab_to must be in [1, {config.vocab_size}], got {shrink_vocab_to}")
        if config.pad_token_id is not None and config.pad_token_id >= shrink_vocab_to:
            raise ValueError(
                f"pad_token_id {config.pad_token_id} would fall outside a vocabulary of {shrink_vocab_to}"
            )
        model.resize_token_embeddings(shrink_vocab_to)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source", help="folder or Hub id of the BertForMaskedLM checkpoint (e.g. ChangwenXu/CLOUD)"
    )
    parser.add_argument("destination", help="output folder for the CLOUD checkpoint")
    parser.add_argument(
        "--subfolder",
        "--pretrained-subfolder",
        default=None,
        metavar="FOLDER",
        help="folder inside SOURCE holding config.json (default: the top level, else the one sub-folder with one)",
    )
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of SOURCE")
    parser.add_argument(
        "--shrink-vocab", type=int, default=None, metavar="N", help="keep the first N token rows"
    )
    parser.add_argument(
        "--with-tokenizer",
        default=None,
        metavar="SCOPE_VERSION",
        help="also save the CLOUD tokenizer of this SCOPE version (needs the `tokenization` package)",
    )
    args = parser.parse_args(argv)
    try:
        found = locate_checkpoint(args.source, args.subfolder, args.revision)
    except CheckpointLocationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = load_bert_checkpoint(args.source, shrink_vocab_to=args.shrink_vocab, **found.load_kwargs)
    if args.with_tokenizer is not None:
        from tokenization import CloudTokenizerFast

        tokenizer = CloudTokenizerFast.from_scope_version(args.with_tokenizer)
        model.config.scope_version = args.with_tokenizer
        tokenizer.save_pretrained(args.destination)
    model.save_pretrained(args.destination)
    print(f"saved {type(model).__name__} ({model.num_parameters():,} parameters) to {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
