"""The local Hub server speaks the protocol the real huggingface_hub client uses (over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import LOCAL_HUB_USER, hub_repo_id, hub_server  # noqa: F401  (fixtures; also re-exported by conftest once wired)


@pytest.fixture
def api(hub_server):  # noqa: F811
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_server)


def test_endpoint_is_exported_before_import(hub_server):  # noqa: F811
    import huggingface_hub.constants

    assert os.environ["HF_ENDPOINT"] == hub_server == huggingface_hub.constants.ENDPOINT
    assert os.environ["HF_HUB_DISABLE_XET"] == "1"


def test_model_repo_round_trip_regular_and_lfs(api, hub_repo_id, hub_server):  # noqa: F811
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo(hub_repo_id)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(hub_repo_id)
    assert conflict.value.response.status_code == 409
    api.create_repo(hub_repo_id, exist_ok=True)

    weights = bytes(range(256)) * 40  # binary, goes through LFS
    api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="sub/config.json", repo_id=hub_repo_id)
    api.upload_file(path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id=hub_repo_id)

    files = {entry.path: entry for entry in api.list_repo_tree(hub_repo_id, recursive=True)}
    assert set(files) == {".gitattributes", "sub", "sub/config.json", "model.safetensors"}
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert files["sub/config.json"].lfs is None

    path = hf_hub_download(hub_repo_id, "model.safetensors")
    with open(path, "rb") as handle:
        assert handle.read() == weights
    # The blob is stored under its sha256 (the X-Linked-Etag), as with the real Hub.
    assert os.path.basename(os.path.realpath(path)) == hashlib.sha256(weights).hexdigest()
    assert hub_server.server.unhandled_requests == []


def test_errors_map_to_typed_exceptions(api, hub_repo_id):  # noqa: F811
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        api.model_info(hub_repo_id)
    api.create_repo(hub_repo_id)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_repo_id, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(hub_repo_id, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(hub_repo_id, path_in_repo="no-such-folder"))


def test_commits_paths_info_delete_and_unchanged_skip(api, hub_repo_id):  # noqa: F811
    api.create_repo(hub_repo_id, repo_type="dataset")
    first = api.upload_file(
        path_or_fileobj=b"x,y\n1,2\n", path_in_repo="data/a.csv", repo_id=hub_repo_id, repo_type="dataset"
    )
    # Same content again: the client sees the remote oid from preupload and makes no commit.
    again = api.upload_file(
        path_or_fileobj=b"x,y\n1,2\n", path_in_repo="data/a.csv", repo_id=hub_repo_id, repo_type="dataset"
    )
    assert again.oid == first.oid
    info = api.get_paths_info(hub_repo_id, ["data", "data/a.csv", "nope"], repo_type="dataset")
    assert [type(entry).__name__ for entry in info] == ["RepoFolder", "RepoFile"]
    api.delete_file("data/a.csv", hub_repo_id, repo_type="dataset")
    assert api.list_repo_files(hub_repo_id, repo_type="dataset") == [".gitattributes"]
    titles = [commit.title for commit in api.list_repo_commits(hub_repo_id, repo_type="dataset")]
    assert titles[0].startswith("Delete") and len(titles) == 3


def test_range_requests_through_hf_file_system(api, hub_repo_id):  # noqa: F811
    from huggingface_hub import HfFileSystem

    payload = bytes(range(256)) * 10
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=payload, path_in_repo="blob.bin", repo_id=hub_repo_id)
    with HfFileSystem().open(f"{hub_repo_id}/blob.bin", "rb", block_size=64) as handle:
        handle.seek(1000)
        assert handle.read(50) == payload[1000:1050]


def test_fresh_process_downloads_from_the_same_server(api, hub_repo_id, tmp_path):  # noqa: F811
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=b"hello from the local hub", path_in_repo="note.txt", repo_id=hub_repo_id)
    code = (
        "from huggingface_hub import hf_hub_download\n"
        f"print(open(hf_hub_download({hub_repo_id!r}, 'note.txt')).read())\n"
    )
    # A fresh HF_HOME: nothing can come from this process's cache.
    env = {**os.environ, "HF_HOME": str(tmp_path / "child-home")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from the local hub"


def test_server_starts_only_when_a_test_asks_for_it():
    """conftest.py reserves the port and exports HF_ENDPOINT at import; nothing answers until the fixture starts the
    server, and a request before that is refused at once (no hang, no other host)."""
    code = f"""
import socket, sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
import conftest, hub_server
from urllib.parse import urlsplit
server = hub_server._SESSION_SERVER
assert not server.running and "huggingface_hub" not in sys.modules
address = urlsplit(conftest.os.environ["HF_ENDPOINT"])
assert (address.hostname, address.port) == ("127.0.0.1", server.port)
started = time.monotonic()
try:
    socket.create_connection((address.hostname, address.port), timeout=10)
except ConnectionRefusedError:
    pass
else:
    raise AssertionError("the endpoint answered before the server was started")
assert time.monotonic() - started < 2
server.start()
from huggingface_hub import HfApi
print(HfApi().whoami()["name"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == LOCAL_HUB_USER
