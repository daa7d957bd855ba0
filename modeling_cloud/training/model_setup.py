# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Tokenizer and model of a run: a new model, a CLOUD checkpoint, or the authors' `BertForMaskedLM` layout.

`--pretrained` accepts a folder or a Hub repo id; the checkpoint may sit in a sub-folder (the authors'
`ChangwenXu/CLOUD` keeps it in `ckpt/`), named with `--pretrained-subfolder` or found
(`convert_bert_checkpoint.locate_checkpoint`). A missing repository, revision or config.json is a
`TrainingConfigError`, never a fall-back to a new model. A CLOUD checkpoint (`model_type` "cloud") brings its tokenizer
and SCOPE version; the authors' BERT layout (`model_type` "bert", 30522-row embeddings, `pad_token_id` 0) loads
through `modeling_cloud.convert_bert_checkpoint` with the SCOPE v1 tokenizer, whose ids are the authors'.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import transformers
from transformers import PreTrainedConfig

from modeling_cloud import CloudConfig, CloudPreTrainedModel
from modeling_cloud.convert_bert_checkpoint import (
    CheckpointLocation,
    CheckpointLocationError,
    load_bert_checkpoint,
    locate_checkpoint,
)
from tokenization import CloudTokenizerFast
from tokenization.scope_tables import V1_ADDED_TOKENS, V1_WORDPIECE_VOCAB

from .options import DEFAULT_MODEL_SIZE, RunSettings, TrainingConfigError

logger = logging.getLogger("modeling_cloud.training")

NEW_MODEL_SCOPE_VERSION = "v2"
SCOPE_STRING_DATA_VERSION = "v1"


@dataclass
class PretrainedSource:
    """What `--pretrained` points at: where its config.json is, and whether it is CLOUD's or the authors' BERT."""

    where: CheckpointLocation
    model_type: str  # "cloud" or "bert"
    config_dict: dict

    @property
    def location(self) -> str:
        return self.where.location

    @property
    def load_kwargs(self) -> dict:
        return self.where.load_kwargs


@contextlib.contextmanager
def quiet_transformers():
    """Silence the per-key LOAD REPORT while loading; the caller logs a one-line summary instead."""
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(verbosity)


def inspect_pretrained(
    location: str, subfolder: str | None = None, revision: str | None = None
) -> PretrainedSource:
    """Find the checkpoint in `location` (folder or Hub id; its `subfolder`, given or found, see
    `locate_checkpoint`), read its config and tell a CLOUD checkpoint from the authors' BERT one.

    Raises:
        TrainingConfigError: no such folder or repository, no config.json, or a config of another model type.
    """
    try:
        where = locate_checkpoint(location, subfolder, revision)
    except CheckpointLocationError as error:
        raise TrainingConfigError(f"--pretrained {error}") from error
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(location, **where.load_kwargs)
    except (OSError, ValueError) as error:
        raise TrainingConfigError(f"--pretrained {where}: cannot read its config.json ({error})") from error
    model_type = config_dict.get("model_type")
    if model_type not in ("cloud", "bert"):
        raise TrainingConfigError(
            f"--pretrained {where}: model_type {model_type!r} is neither a CLOUD checkpoint nor the authors' BERT "
            "layout"
        )
    if where.subfolder:
        logger.info("--pretrained %s: using its sub-folder %s/", location, where.subfolder)
    return PretrainedSource(where=where, model_type=model_type, config_dict=config_dict)


def pretrained_source(settings: RunSettings) -> PretrainedSource | None:
    """The `--pretrained` checkpoint of a run, or `None` for a new model."""
    model = settings.model
    if not model.pretrained:
        return None
    return inspect_pretrained(model.pretrained, model.pretrained_subfolder, model.pretrained_revision)


def _authors_file(source: PretrainedSource, name: str) -> str | None:
    """Local path of a file beside the authors' config.json, or None if the checkpoint has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    where = source.where
    if where.is_folder:
        path = Path(where.location, where.subfolder, name)
        return str(path) if path.is_file() else None
    try:
        return hf_hub_download(where.location, name, **where.load_kwargs)
    except EntryNotFoundError:
        return None


def _check_authors_vocabulary(source: PretrainedSource) -> None:
    """The authors' checkpoint ships a BERT vocab.txt and added_tokens.json; their ids must be the SCOPE v1 ids that
    our tokenizer produces."""
    vocab_file = _authors_file(source, "vocab.txt")
    if vocab_file is None:
        logger.info("%s has no vocab.txt; assuming the authors' SCOPE v1 token ids", source.where)
        return
    with open(vocab_file, encoding="utf-8") as handle:
        vocab = [line.rstrip("\n") for line in handle]
    if vocab[: len(V1_WORDPIECE_VOCAB)] != list(V1_WORDPIECE_VOCAB):
        raise TrainingConfigError(
            f"--pretrained {source.where}: its vocab.txt differs from the SCOPE v1 vocabulary; the checkpoint was "
            "trained on other token ids and cannot be fine-tuned with this tokenizer"
        )
    added_file = _authors_file(source, "added_tokens.json")
    if added_file is not None:
        with open(added_file, encoding="utf-8") as handle:
            added = json.load(handle)
        expected = {token: len(V1_WORDPIECE_VOCAB) + index for index, token in enumerate(V1_ADDED_TOKENS)}
        if added != expected:
            raise TrainingConfigError(
                f"--pretrained {source.where}: its added_tokens.json differs from the SCOPE v1 added tokens"
            )


def resolve_tokenizer(
    settings: RunSettings, pretrained: PretrainedSource | None, data_hold_scope_strings: bool
) -> CloudTokenizerFast:
    """The tokenizer of the run: the pretrained model's, or a new one of the chosen SCOPE version."""
    if pretrained is not None:
        if pretrained.model_type == "bert":
            _check_authors_vocabulary(pretrained)
            tokenizer = CloudTokenizerFast.from_scope_version("v1")
        else:
            try:
                tokenizer = CloudTokenizerFast.from_pretrained(pretrained.location, **pretrained.load_kwargs)
            except (OSError, ValueError) as error:
                version = pretrained.config_dict.get("scope_version", "v1")
                logger.info(
                    "%s has no readable tokenizer (%s); using SCOPE %s", pretrained.location, error, version
                )
                tokenizer = CloudTokenizerFast.from_scope_version(version)
        requested = settings.model.scope_version
        if requested and requested != tokenizer.scope_version:
            raise TrainingConfigError(
                f"--scope-version {requested} contradicts --pretrained {pretrained.where}, which was "
                f"trained on SCOPE {tokenizer.scope_version}"
            )
        return tokenizer
    version = settings.model.scope_version
    if version is None:
        version = SCOPE_STRING_DATA_VERSION if data_hold_scope_strings else NEW_MODEL_SCOPE_VERSION
        if data_hold_scope_strings:
            logger.info(
                "the data hold SCOPE strings; taking them as SCOPE v1, the authors' format (set --scope-version "
                "otherwise); structures are encoded with v1 too"
            )
    tokenizer = CloudTokenizerFast.from_scope_version(version)
    tokenizer.model_max_length = settings.model.max_position_embeddings
    return tokenizer


def new_model_config(settings: RunSettings, tokenizer: CloudTokenizerFast, **head_settings) -> CloudConfig:
    """A `CloudConfig` of the run's sizes (`--model-size` preset, explicit sizes on top) over the tokenizer's
    vocabulary."""
    return CloudConfig(
        vocab_size=len(tokenizer),
        **settings.model.encoder_sizes(),
        max_position_embeddings=settings.model.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        scope_version=tokenizer.scope_version,
        **head_settings,
    )


def _use_the_tokenizers_padding_id(model, tokenizer) -> None:
    """The authors' config says `pad_token_id` 0, which is `[CLS]`; their tokenizer pads with `[PAD]` (1). The
    Trainer aligns the config with the tokenizer anyway; doing it here also moves the embedding row that gets no
    gradient from `[CLS]` to `[PAD]`, so that fine-tuning can update the `[CLS]` embedding the head reads."""
    if model.config.pad_token_id == tokenizer.pad_token_id:
        return
    logger.info(
        "the checkpoint declares pad_token_id %s (%s); using the tokenizer's %s (%s)",
        model.config.pad_token_id,
        tokenizer.convert_ids_to_tokens(model.config.pad_token_id),
        tokenizer.pad_token_id,
        tokenizer.pad_token,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.get_input_embeddings().padding_idx = tokenizer.pad_token_id


def build_model(
    model_class: type[CloudPreTrainedModel],
    settings: RunSettings,
    tokenizer: CloudTokenizerFast,
    pretrained: PretrainedSource | None,
    **head_settings,
) -> CloudPreTrainedModel:
    """A model of `model_class`: new (sizes from `settings`) or from `--pretrained` with `head_settings` applied.
    Logs the parameter count."""
    if pretrained is None:
        config = new_model_config(settings, tokenizer, **head_settings)
        model = model_class(config)
        logger.info(
            "new %s (--model-size %s; %d layers, hidden %d, %d heads, feed-forward %d): %s parameters",
            model_class.__name__,
            settings.model.model_size or DEFAULT_MODEL_SIZE,
            config.num_hidden_layers,
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            f"{model.num_parameters():,}",
        )
        return model
    with quiet_transformers():
        if pretrained.model_type == "bert":
            model = load_bert_checkpoint(
                pretrained.location, model_class, **pretrained.load_kwargs, **head_settings
            )
            model.config.scope_version = "v1"
            _use_the_tokenizers_padding_id(model, tokenizer)
            # The converter checks the encoder; only a property head is new.
            missing = sorted(name for name, _ in model.named_parameters() if name.startswith("head."))
        else:
            config = CloudConfig.from_pretrained(pretrained.location, **pretrained.load_kwargs)
            for name, value in head_settings.items():
                setattr(config, name, value)
            config.validate()
            model, info = model_class.from_pretrained(
                pretrained.location, config=config, output_loading_info=True, **pretrained.load_kwargs
            )
            missing = sorted(info["missing_keys"])
            if info["mismatched_keys"]:
                raise TrainingConfigError(
                    f"--pretrained {pretrained.where}: weights of another shape: {sorted(info['mismatched_keys'])}"
                )
    encoder_missing = [name for name in missing if name.startswith(("bert.", "embeddings.", "encoder."))]
    if encoder_missing:
        raise TrainingConfigError(
            f"--pretrained {pretrained.where}: encoder weights missing: {encoder_missing[:5]}"
        )
    logger.info(
        "%s from %s (%s parameters; newly initialised: %s)",
        model_class.__name__,
        pretrained.where,
        f"{model.num_parameters():,}",
        ", ".join(sorted({name.rsplit(".", 1)[0] for name in missing})) or "nothing",
    )
    return model
