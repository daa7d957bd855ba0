"""Test-session setup: nothing may touch the network or ~/.cache.

The environment is set at import time, before any test module imports huggingface_hub (which reads
HF_ENDPOINT once, at import). The local Hub server starts on first use of the `hub_server` fixture.

Tests are split by speed as in transformers: `@pytest.mark.slow` marks end-to-end runs (the demo, README blocks,
torchrun, SIGKILL-and-resume, Hub round trips); `pytest -m "not slow"` is the developer loop, and CI runs everything.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = tempfile.mkdtemp(prefix="cloud-tests-hf-home-")
os.environ["HF_HOME"] = _SESSION_HOME
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_TOKEN", "hf_dummy_test_token")
os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS_DIR = Path(__file__).parent
FIXTURES = TESTS_DIR / "fixtures"
sys.path.insert(0, str(TESTS_DIR))  # for the helper modules beside the tests (isolated.py, hub_server.py)

# HF_ENDPOINT must point at the local Hub-protocol server before anything imports huggingface_hub (which reads the
# endpoint once), so the server's port is reserved here, at import; the server itself starts only when a test asks
# for the `hub_server` fixture. Until then a request to the endpoint is refused at once. Child processes inherit
# the variables.
from hub_server import install_local_hub  # noqa: E402

install_local_hub(hf_home=_SESSION_HOME, start=False)
from hub_server import hub_repo_id, hub_server  # noqa: E402,F401  (fixtures)


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="session")
def v1_fixture_records() -> list[dict]:
    """The 400 real MP structures with the strings the authors' code produced (see fixtures/scope_v1/README.md)."""
    return read_jsonl_gz(FIXTURES / "scope_v1" / "structures.jsonl.gz")


@pytest.fixture(scope="session")
def official_pretrain_ids() -> list[dict]:
    """10,000 SCOPE strings with the authors' tokenizer ids (max_length 64, padded, truncated)."""
    return read_jsonl_gz(FIXTURES / "scope_v1" / "pretrain10k_official_ids.jsonl.gz")
