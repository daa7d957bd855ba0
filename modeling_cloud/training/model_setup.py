# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Tokenizer and model of a run: a new model, a CLOUD checkpoint, or the authors' `BertForMaskedLM` layout.

`--pretrained` accepts a folder or a Hub repo id. A CLOUD checkpoint (`model_type` "cloud") brings its tokenizer
and SCOPE version; the authors' BERT layout (`model_type` "bert", 30522-row embeddings, `pad_token_id` 0) loads
through `modeling_cloud.convert_bert_checkpoint` with the SCOPE v1 tokenizer, whose ids are the authors'.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import transformers
from transformers import PreTrainedConfig

from modeling_cloud import CloudConfig, CloudPreTrainedModel
from tokenization import CloudTokenizerFast
from tokenization.scope_tables import V1_WORDPIECE_VOCAB

from .options import TrainingConfigError, TrainingOptions

logger = logging.getLogger("modeling_cloud.training")

NEW_MODEL_SCOPE_VERSION = "v2"
SCOPE_STRING_DATA_VERSION = "v1"


@dataclass
class PretrainedSource:
    """What `--pretrained` points at."""

    location: str
    model_type: str  # "cloud" or "bert"
    config_dict: dict


@contextlib.contextmanager
def quiet_transformers():
    """Silence the per-key LOAD REPORT while loading; the caller logs a one-line summary instead."""
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(verbosity)


def inspect_pretrained(location: str) -> PretrainedSource:
    """Read the config of `location` (folder or Hub id) and tell a CLOUD checkpoint from the authors' BERT one."""
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(location)
    except OSError as error:
        raise TrainingConfigError(
            f"--pretrained {location}: cannot read its config.json ({error})"
        ) from error
    model_type = config_dict.get("model_type")
    if model_type not in ("cloud", "bert"):
        raise TrainingConfigError(
            f"--pretrained {location}: model_type {model_type!r} is neither a CLOUD checkpoint nor the authors' "
            "BERT layout"
        )
    return PretrainedSource(location=location, model_type=model_type, config_dict=config_dict)


def v2_tokenizer_available() -> bool:
    try:
        CloudTokenizerFast.from_scope_version("v2")
    except ImportError:
        return False
    return True


def _check_authors_vocabulary(location: str) -> None:
    """The authors' checkpoint ships a BERT vocab.txt; its ids must be the SCOPE v1 ids our tokenizer produces."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(location, "vocab.txt") if not _is_folder(location) else f"{location}/vocab.txt"
        with open(path, encoding="utf-8") as handle:
            vocab = [line.rstrip("\n") for line in handle]
    except (EntryNotFoundError, FileNotFoundError):
        logger.info("%s has no vocab.txt; assuming the authors' SCOPE v1 token ids", location)
        return
    if vocab[: len(V1_WORDPIECE_VOCAB)] != list(V1_WORDPIECE_VOCAB):
        raise TrainingConfigError(
            f"--pretrained {location}: its vocab.txt differs from the SCOPE v1 vocabulary; the checkpoint was trained "
            "on other token ids and cannot be fine-tuned with this tokenizer"
        )


def _is_folder(location: str) -> bool:
    from pathlib import Path

    return Path(location).is_dir()


def resolve_tokenizer(
    options: TrainingOptions, pretrained: PretrainedSource | None, data_hold_scope_strings: bool
) -> CloudTokenizerFast:
    """The tokenizer of the run: the pretrained model's, or a new one of the chosen SCOPE version."""
    if pretrained is not None:
        if pretrained.model_type == "bert":
            _check_authors_vocabulary(pretrained.location)
            tokenizer = CloudTokenizerFast.from_scope_version("v1")
        else:
            try:
                tokenizer = CloudTokenizerFast.from_pretrained(pretrained.location)
            except (OSError, ValueError) as error:
                version = pretrained.config_dict.get("scope_version", "v1")
                logger.info(
                    "%s has no readable tokenizer (%s); using SCOPE %s", pretrained.location, error, version
                )
                tokenizer = CloudTokenizerFast.from_scope_version(version)
        if options.scope_version and options.scope_version != tokenizer.scope_version:
            raise TrainingConfigError(
                f"--scope-version {options.scope_version} contradicts --pretrained {pretrained.location}, which was "
                f"trained on SCOPE {tokenizer.scope_version}"
            )
        return tokenizer
    version = options.scope_version
    if version is None:
        version = SCOPE_STRING_DATA_VERSION if data_hold_scope_strings else NEW_MODEL_SCOPE_VERSION
        if data_hold_scope_strings:
            logger.info(
                "the data hold SCOPE strings; taking them as SCOPE v1, the authors' format (set --scope-version "
                "otherwise); structures are encoded with v1 too"
            )
    if version == "v2" and not v2_tokenizer_available():
        if options.scope_version == "v2":
            raise TrainingConfigError(
                "--scope-version v2: the v2 tokenizer is not available in this installation"
            )
        logger.warning("the SCOPE v2 tokenizer is not available; falling back to v1")
        version = "v1"
    tokenizer = CloudTokenizerFast.from_scope_version(version)
    tokenizer.model_max_length = options.max_position_embeddings
    return tokenizer


def new_model_config(options: TrainingOptions, tokenizer: CloudTokenizerFast, **head_settings) -> CloudConfig:
    """A `CloudConfig` of the sizes in `options` over the tokenizer's vocabulary."""
    if options.hidden_size % options.num_attention_heads:
        raise TrainingConfigError(
            f"--hidden-size {options.hidden_size} must be a multiple of --num-attention-heads "
            f"{options.num_attention_heads}"
        )
    return CloudConfig(
        vocab_size=len(tokenizer),
        hidden_size=options.hidden_size,
        num_hidden_layers=options.num_hidden_layers,
        num_attention_heads=options.num_attention_heads,
        intermediate_size=options.intermediate_size,
        max_position_embeddings=options.max_position_embeddings,
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
    options: TrainingOptions,
    tokenizer: CloudTokenizerFast,
    pretrained: PretrainedSource | None,
    **head_settings,
) -> CloudPreTrainedModel:
    """A model of `model_class`: new (sizes from `options`) or from `--pretrained` with `head_settings` applied."""
    if pretrained is None:
        model = model_class(new_model_config(options, tokenizer, **head_settings))
        logger.info("new %s: %s parameters", model_class.__name__, f"{model.num_parameters():,}")
        return model
    with quiet_transformers():
        if pretrained.model_type == "bert":
            from modeling_cloud.convert_bert_checkpoint import load_bert_checkpoint

            model = load_bert_checkpoint(pretrained.location, model_class, **head_settings)
            model.config.scope_version = "v1"
            _use_the_tokenizers_padding_id(model, tokenizer)
            # The converter checks the encoder; only a property head is new.
            missing = sorted(name for name, _ in model.named_parameters() if name.startswith("head."))
        else:
            config = CloudConfig.from_pretrained(pretrained.location)
            for name, value in head_settings.items():
                setattr(config, name, value)
            config.validate()
            model, info = model_class.from_pretrained(
                pretrained.location, config=config, output_loading_info=True
            )
            missing = sorted(info["missing_keys"])
            if info["mismatched_keys"]:
                raise TrainingConfigError(
                    f"--pretrained {pretrained.location}: weights of another shape: {sorted(info['mismatched_keys'])}"
                )
    encoder_missing = [name for name in missing if name.startswith(("bert.", "embeddings.", "encoder."))]
    if encoder_missing:
        raise TrainingConfigError(
            f"--pretrained {pretrained.location}: encoder weights missing: {encoder_missing[:5]}"
        )
    logger.info(
        "%s from %s (%s parameters; newly initialised: %s)",
        model_class.__name__,
        pretrained.location,
        f"{model.num_parameters():,}",
        ", ".join(sorted({name.rsplit(".", 1)[0] for name in missing})) or "nothing",
    )
    return model
