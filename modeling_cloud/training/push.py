# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`push`: publish a saved CLOUD checkpoint folder (Hub layout) to the Hugging Face Hub.

The folder must be what `pretrain`, `finetune` or `train-debye` wrote (the output folder or one of its
`checkpoint-N` folders): config.json with `auto_map`, model.safetensors, tokenizer files, remote-code `.py` files
and a README.md model card. Resume-only Trainer files (optimizer/scheduler/RNG states) and intermediate checkpoints
are not uploaded. The token comes from `HF_TOKEN` or `hf auth login`.
"""

from __future__ import annotations

import argparse
import sys

from .commands import EXIT_FAILED, EXIT_OK, PUSH_EXAMPLE, PUSH_HELP, add_push_arguments


def run_push(args: argparse.Namespace) -> int:
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
