# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Load or convert a `BertForMaskedLM` checkpoint (such as the authors' released CLOUD model) into the CLOUD classes.

The authors released CLOUD as a plain `BertForMaskedLM`: BERT config with `vocab_size` 30522 and `pad_token_id` 0,
64 positions, `type_vocab_size` 1, and their 564-token SCOPE vocabulary. The CLOUD classes use the same parameter
names, so the weights load unchanged; this module only builds a clean [`CloudConfig`] from the BERT config and checks
that every encoder weight was found.

Command line:

    python -m modeling_cloud.convert_bert_checkpoint SRC DST [--shrink-vocab 564] [--with-tokenizer v1]

`SRC` is a folder or Hub id holding the BERT checkpoint; `DST` receives a CLOUD checkpoint (safetensors, remote code).
`--shrink-vocab N` keeps only the first N token rows (ids >= 564 are never produced by the SCOPE v1 tokenizer), which
leaves the logits of the kept ids unchanged and removes ~23 M unused parameters at BERT-base size.
"""

from __future__ import annotations

import argparse
import sys

from transformers import BertConfig

from .configuration_cloud import CloudConfig
from .modeling_cloud import CloudForMaskedLM, CloudPreTrainedModel


def load_bert_checkpoint(
    pretrained_model_name_or_path: str,
    model_class: type[CloudPreTrainedModel] = CloudForMaskedLM,
    *,
    shrink_vocab_to: int | None = None,
    **config_overrides,
) -> CloudPreTrainedModel:
    """Load a `BertForMaskedLM` checkpoint into a CLOUD class.

    Args:
        pretrained_model_name_or_path: folder or Hub id of the BERT checkpoint.
        model_class: CLOUD class to build ([`CloudForMaskedLM`] by default; a property head gets the encoder and a
            freshly initialised head).
        shrink_vocab_to: keep only the first N token embeddings (and MLM decoder rows).
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
    bert_config = BertConfig.from_pretrained(pretrained_model_name_or_path)
    if bert_config.model_type != "bert":
        raise ValueError(
            f"{pretrained_model_name_or_path} holds a {bert_config.model_type!r} config, expected a BERT checkpoint"
        )
    config = CloudConfig.from_bert_config(bert_config, **config_overrides)
    model, loading_info = model_class.from_pretrained(
        pretrained_model_name_or_path, config=config, output_loading_info=True
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
    parser.add_argument("source", help="folder or Hub id of the BertForMaskedLM checkpoint")
    parser.add_argument("destination", help="output folder for the CLOUD checkpoint")
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
    model = load_bert_checkpoint(args.source, shrink_vocab_to=args.shrink_vocab)
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
