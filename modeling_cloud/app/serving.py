# Copyright 2026 the cloud-crystal developers. MIT licence.
"""`cloud-crystal serve`: load the models, build the neighbour index, and serve the page with Gradio's queue.

The same function runs a Hub Space (`app.py`, written by `cloud-crystal space`, calls [`serve`]).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

#: The demo's checkpoints (`cloud-crystal demo` writes them under `cloud-demo/`), in the order the page lists
#: them: the pretrained encoder first, whose embedding finds "Crystals like this one".
DEMO_CHECKPOINTS = ("cloud-base", "formation-energy", "debye")
MAX_FILE_SIZE_GRADIO = "50mb"  # Gradio's own hard stop; the app names its 5 MB limit itself below that


def demo_checkpoints(folder: str | Path = "cloud-demo") -> list[str]:
    """The demo's three checkpoint folders under `folder`.

    Raises:
        FileNotFoundError: one of them is missing, with the command that makes them.
    """
    folder = Path(folder)
    missing = [name for name in DEMO_CHECKPOINTS if not (folder / name / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(
            f"no --model given, and {folder}/ does not hold the demo's checkpoints ({', '.join(missing)} missing). "
            "Run `cloud-crystal demo` first (about 10 minutes on 2 CPU cores; it writes cloud-demo/), or pass "
            "--model with checkpoint folders or Hub repo ids."
        )
    return [str(folder / name) for name in DEMO_CHECKPOINTS]


def serve(
    models: list[str],
    host: str | None = None,
    port: int | None = None,
    neighbours: int = 5,
    cache_dir: str | Path | None = None,
    block: bool = True,
):
    """Load `models`, build (or read) the neighbour index, and serve the page on `host:port`.

    Args:
        models: checkpoint folders or Hub repo ids.
        host: interface to listen on (default `$GRADIO_SERVER_NAME` or 127.0.0.1; a Space sets 0.0.0.0).
        port: port (default `$GRADIO_SERVER_PORT` or 7860).
        neighbours: similar bundled crystals to show (0: none, no index).
        cache_dir: where the neighbour index is kept.
        block: wait until interrupted (`False`: return the running `gradio.Blocks`, for tests).
    """
    started = time.perf_counter()
    logger = logging.getLogger("cloud_crystal.app")
    if not logger.handlers:  # the index build and the reader say what they do, on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    from .core import CrystalApp

    app = CrystalApp(models, neighbours=neighbours, cache_dir=cache_dir)
    from .layout import build_blocks

    blocks = build_blocks(app)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = int(port or os.environ.get("GRADIO_SERVER_PORT", 7860))
    index = app.index
    if index is not None:
        how = "built" if index.built else "read from the cache"
        print(
            f"neighbour index: {len(index.material_ids)} structures, {how} in {index.seconds:.1f} s",
            flush=True,
        )
    blocks.launch(
        server_name=host,
        server_port=port,
        ssr_mode=False,
        allowed_paths=[str(app.output_dir)],
        max_file_size=MAX_FILE_SIZE_GRADIO,
        prevent_thread_lock=True,
        quiet=True,
        footer_links=["api"],
    )
    # Tests and logs read this line: the page answers from now on.
    print(
        f"cloud-crystal app ready on http://{host}:{port} after {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    if not block:
        return blocks
    try:
        blocks.block_thread()
    except KeyboardInterrupt:
        logging.getLogger("cloud_crystal.app").info("stopped")
    return blocks
