# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`push`: publish a saved CLOUD checkpoint folder (Hub layout) to the Hugging Face Hub.

The folder must be what `pretrain`, `finetune` or `train-debye` wrote (the output folder or one of its
`checkpoint-N` folders): config.json with `auto_map`, model.safetensors, tokenizer files, remote-code `.py` files
and a README.md model card. Resume-only Trainer files (optimizer/scheduler/RNG states) and intermediate checkpoints
are not uploaded. The token comes from `HF_TOKEN` or `hf auth login`.

Importing this module is cheap (huggingface_hub and transformers are imported when the upload runs).
"""

from __future__ import annotations

import argparse
import sys

from .options import EXIT_FAILED, EXIT_OK

PUSH_HELP = (
    "Publish a trained CLOUD checkpoint folder (model, tokenizer, remote code, model card) to the Hub."
)
PUSH_EXAMPLE = "cloud-crystal push band-gap-model --hub-model-id my-org/cloud-band-gap"


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="checkpoint folder in Hub layout (a training output folder)")
    parser.add_argument("--hub-model-id", required=True, metavar="ORG/NAME", help="Hub repository to push to")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit-message", default="Upload CLOUD model", help="commit message of the upload")


def run_push(args: argparse.Namespace) -> int:
    """Upload `args.folder` to `args.hub_model_id`; prints the commit URL. Returns an exit code (1 on failure)."""
    from huggingface_hub.errors import HfHubHTTPError

    from .hub import HubLayoutError, publish

    try:
        url = publish(
            args.folder, args.hub_model_id, private=args.private, commit_message=args.commit_message
        )
    except (HubLayoutError, HfHubHTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(url)
    return EXIT_OK


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_cloud.training.push",
        description=PUSH_HELP,
        epilog=f"example:\n  {PUSH_EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_push_arguments(parser)
    return run_push(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
