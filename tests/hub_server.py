"""A local stand-in for the Hugging Face Hub: the HTTP routes ``huggingface_hub`` uses, served on 127.0.0.1.

The real Hub is unreachable from CI and tests must never touch the network, yet the package is meant to be
Hub-native (``push_to_hub``, ``from_pretrained(repo)``, ``load_dataset(repo, streaming=True)``). This module
implements just enough of the Hub protocol, with the stdlib ``http.server``, for the *real* client libraries
(huggingface_hub, transformers, datasets) to round-trip models and datasets over real HTTP:

* ``GET /api/whoami-v2``, ``POST /api/validate-yaml``
* ``POST /api/repos/create`` (409 when it exists), ``DELETE /api/repos/delete``
* ``GET /api/{models,datasets}/{repo}[/revision/{rev}]`` (repo info with ``sha`` and ``siblings``)
* ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]`` (``recursive``; 404 ``EntryNotFound`` for a missing folder)
* ``POST /api/{type}s/{repo}/paths-info/{rev}``
* ``GET /api/{type}s/{repo}/refs``, ``GET /api/{type}s/{repo}/commits/{rev}``, ``POST /api/{type}s/{repo}/branch/{name}``
* ``POST /api/{type}s/{repo}/preupload/{rev}`` (``lfs`` for weights, parquet/arrow and binary or large files)
* ``POST /{[datasets/]}{repo}.git/info/lfs/objects/batch`` (basic transfer) and ``PUT /lfs-objects/{sha256}``
* ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON ``header`` / ``file`` / ``lfsFile`` / ``deletedFile`` /
  ``deletedFolder`` lines)
* ``HEAD``/``GET /{[datasets/]}{repo}/resolve/{rev}/{path}`` with ``ETag``, ``X-Repo-Commit``, ``X-Linked-Etag``,
  ``X-Linked-Size`` (LFS files) and ``Range``

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message``,
which is how ``huggingface_hub`` maps them onto its typed exceptions. Any other route answers 404 and is recorded
in :attr:`LocalHubServer.unhandled_requests`, so a test can tell a missing route from a missing file.

Repositories live in memory (commits, branches, file tables) with file contents on disk under ``root``.

**Ordering matters.** ``huggingface_hub`` (and ``datasets``) read ``HF_ENDPOINT`` once, when first imported. Call
:func:`install_local_hub` at the top of ``tests/conftest.py``, before anything imports them::

    # tests/conftest.py
    from hub_server import install_local_hub

    install_local_hub(start=False)  # reserves a port, exports HF_ENDPOINT, HF_HUB_DISABLE_XET=1, HF_TOKEN, HF_HOME
    from hub_server import hub_repo_id, hub_server  # noqa: E402,F401  (re-export the fixtures)

Subprocesses started by the tests inherit the exported variables, so a fresh ``python -c
"AutoModel.from_pretrained(repo, trust_remote_code=True)"`` talks to the same server.

Example (stand-alone)::

    >>> server = LocalHubServer().start()                                   # doctest: +SKIP
    >>> server.url                                                          # doctest: +SKIP
    'http://127.0.0.1:40517'
    >>> server.stop()                                                       # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: The user every request is answered as (the token is never checked: the server only listens on 127.0.0.1).
LOCAL_HUB_USER = "cloud-tester"
DUMMY_TOKEN = "hf_local_test_token_not_a_secret"

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# The Hub decides "lfs" vs "regular" from .gitattributes; these are the patterns the default file tracks that
# matter here (weights, arrays, archives, tabular data), plus any binary-looking sample and anything > 10 MB.
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".npy",
    ".npz",
    ".pkl",
    ".parquet",
    ".arrow",
    ".gz",
    ".zst",
    ".zip",
    ".tar",
    ".db",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, as the Hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class StoredFile:
    """One file in one commit. ``blob_oid`` is the git id (of the pointer, for LFS files)."""

    size: int
    blob_oid: str
    sha256: str
    is_lfs: bool

    def tree_entry(self, path: str) -> dict:
        entry = {"type": "file", "path": path, "size": self.size, "oid": self.blob_oid}
        if self.is_lfs:
            entry["lfs"] = {
                "oid": self.sha256,
                "size": self.size,
                "pointerSize": len(lfs_pointer(self.sha256, self.size)),
            }
        return entry


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    parents: list[str]
    files: dict[str, StoredFile]
    date: str = field(default_factory=_now_iso)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=_now_iso)


class HubError(Exception):
    """An error answered to the client as ``status`` with the Hub's ``X-Error-Code`` header."""

    def __init__(self, status: int, error_code: str | None, message: str):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


class HubStorage:
    """Repos, commits and branches in memory; blob contents on disk, addressed by sha256."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    # ----- blobs -----
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def put_blob(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.blob_path(sha256)
        if not path.exists():
            scratch = path.with_suffix(f".{uuid.uuid4().hex}.part")
            scratch.write_bytes(content)
            os.replace(scratch, path)
        return sha256

    # ----- repos -----
    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                raise HubError(409, None, f"You already created this {repo_type} repo: {repo_id}")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private)
            # Like the Hub: a new repo has one commit holding a .gitattributes file.
            gitattributes = "".join(
                f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES
            )
            content = gitattributes.encode()
            stored = StoredFile(len(content), git_blob_sha1(content), self.put_blob(content), False)
            self._add_commit(repo, "main", "initial commit", "", {".gitattributes": stored})
            self.repos[key] = repo
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "RepoNotFound", f"Repository {repo_type}s/{repo_id} not found")
        return repo

    def resolve_revision(self, repo: Repo, revision: str) -> Commit:
        revision = unquote(revision)
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _add_commit(self, repo: Repo, branch: str, title: str, message: str, files: dict) -> Commit:
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_id}\0{parent}\0{title}\0{time.time_ns()}\0{uuid.uuid4().hex}"
        commit = Commit(
            oid=hashlib.sha1(seed.encode()).hexdigest(),
            title=title,
            message=message,
            parents=[parent] if parent else [],
            files=files,
        )
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def commit(self, repo: Repo, revision: str, lines: list[dict]) -> Commit:
        """Apply one NDJSON commit payload on top of branch ``revision``."""
        with self.lock:
            branch = unquote(revision)
            if branch not in repo.branches:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} (commits go to branches)")
            head = repo.commits[repo.branches[branch]]
            files = dict(head.files)
            header = {}
            for line in lines:
                key, value = line.get("key"), line.get("value", {})
                if key == "header":
                    header = value
                    parent = value.get("parentCommit")
                    if parent and not head.oid.startswith(parent):
                        raise HubError(412, None, f"parentCommit {parent} is not the head of {branch}")
                elif key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, None, f"unsupported encoding {value.get('encoding')!r}")
                    content = base64.b64decode(value["content"])
                    files[value["path"]] = StoredFile(
                        len(content), git_blob_sha1(content), self.put_blob(content), False
                    )
                elif key == "lfsFile":
                    sha256 = value["oid"]
                    if not self.has_blob(sha256):
                        raise HubError(
                            400, None, f"LFS object {sha256} for {value['path']} was never uploaded"
                        )
                    size = self.blob_path(sha256).stat().st_size
                    files[value["path"]] = StoredFile(
                        size, git_blob_sha1(lfs_pointer(sha256, size)), sha256, True
                    )
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HubError(
                            404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}"
                        )
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    for path in [path for path in files if path.startswith(prefix)]:
                        del files[path]
                else:
                    raise HubError(400, None, f"unsupported commit operation {key!r}")
            return self._add_commit(
                repo, branch, header.get("summary", "commit"), header.get("description", ""), files
            )

    def create_branch(self, repo: Repo, branch: str, start: str | None) -> None:
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, None, f"Branch {branch} already exists")
            source = self.resolve_revision(repo, start or "main")
            repo.branches[branch] = source.oid


def _folders_of(paths) -> set[str]:
    folders = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return folders


def _folder_oid(commit: Commit, folder: str) -> str:
    prefix = folder + "/"
    listing = "".join(
        f"{path}\0{stored.blob_oid}\n"
        for path, stored in sorted(commit.files.items())
        if path.startswith(prefix)
    )
    return hashlib.sha1(listing.encode()).hexdigest()


class _HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LocalHubHTTPServer

    # Quiet by default: the test log shows failures, not every GET.
    def log_message(self, format, *args):  # noqa: A002  (signature fixed by BaseHTTPRequestHandler)
        if self.server.hub.verbose:
            super().log_message(format, *args)

    # ----- plumbing -----
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, headers=None):
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _send_error(self, error: HubError):
        headers = {"X-Error-Message": error.message.encode("ascii", "replace").decode()}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        self._send_json({"error": error.message}, status=error.status, headers=headers)

    def _dispatch(self):
        hub = self.server.hub
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        hub.request_log.append((self.command, self.path))
        try:
            for method, pattern, handler in _ROUTES:
                if method != self.command and not (method == "GET" and self.command == "HEAD"):
                    continue
                match = pattern.fullmatch(path)
                if match:
                    return handler(self, hub, query, **match.groupdict())
            hub.unhandled_requests.append((self.command, self.path))
            raise HubError(404, None, f"local hub: no route for {self.command} {split.path}")
        except HubError as error:
            if self.command in ("POST", "PUT") and not getattr(self, "_body_read", False):
                self._read_body()  # drain, so the keep-alive connection stays in sync
            self._send_error(error)
        except (KeyError, ValueError, TypeError) as error:
            self._send_error(HubError(400, None, f"bad request: {type(error).__name__}: {error}"))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def body_json(self):
        self._body_read = True
        body = self._read_body()
        return json.loads(body) if body else {}

    def body_bytes(self) -> bytes:
        self._body_read = True
        return self._read_body()


# ----- route handlers -----


def _whoami(handler, hub, query):
    handler._send_json(
        {
            "type": "user",
            "id": "local-user-id",
            "name": LOCAL_HUB_USER,
            "fullname": "CLOUD test user",
            "email": None,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
        }
    )


def _validate_yaml(handler, hub, query):
    handler.body_json()
    handler._send_json({"errors": [], "warnings": []})


def _create_repo(handler, hub, query):
    payload = handler.body_json()
    repo_type = payload.get("type") or "model"
    if repo_type not in REPO_TYPES:
        raise HubError(400, None, f"invalid repo type {repo_type!r}")
    namespace = payload.get("organization") or LOCAL_HUB_USER
    repo_id = f"{namespace}/{payload['name']}"
    url = f"{hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
    private = payload.get("visibility") == "private" or bool(payload.get("private"))
    try:
        hub.storage.create_repo(repo_type, repo_id, private)
    except HubError as error:
        if error.status == 409:
            handler._send_json({"error": error.message, "url": url}, status=409)
            return
        raise
    handler._send_json({"url": url, "name": repo_id, "id": uuid.uuid4().hex})


def _delete_repo(handler, hub, query):
    payload = handler.body_json()
    namespace = payload.get("organization") or LOCAL_HUB_USER
    hub.storage.delete_repo(payload.get("type") or "model", f"{namespace}/{payload['name']}")
    handler._send_json({})


def _repo_info(handler, hub, query, repo_type, repo_id, revision=None):
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision or "main")
    info = {
        "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
        "id": repo_id,
        "author": repo_id.split("/")[0],
        "sha": commit.oid,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [{"rfilename": path} for path in sorted(commit.files)],
    }
    if repo_type == "model":
        info["modelId"] = repo_id
    if "blobs" in query.get("expand", []) or query.get("files_metadata", ["false"])[0].lower() == "true":
        for sibling in info["siblings"]:
            stored = commit.files[sibling["rfilename"]]
            sibling.update(size=stored.size, blobId=stored.blob_oid)
            if stored.is_lfs:
                sibling["lfs"] = stored.tree_entry(sibling["rfilename"])["lfs"]
    handler._send_json(info)


def _commit_entry(commit: Commit) -> dict:
    return {"id": commit.oid, "title": commit.title, "date": commit.date}


def _tree(handler, hub, query, repo_type, repo_id, revision, path=""):
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision)
    folder = (path or "").strip("/")
    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
    expand = query.get("expand", ["false"])[0].lower() in ("1", "true")
    prefix = folder + "/" if folder else ""
    files = {p: s for p, s in commit.files.items() if p.startswith(prefix)}
    if folder and not files:
        raise HubError(404, "EntryNotFound", f"{folder} does not exist on {revision}")
    relative = {p[len(prefix) :]: s for p, s in files.items()}
    entries = []
    for sub in sorted(_folders_of(relative)):
        if recursive or "/" not in sub:
            full = prefix + sub
            entries.append({"type": "directory", "path": full, "oid": _folder_oid(commit, full), "size": 0})
    for sub, stored in sorted(relative.items()):
        if recursive or "/" not in sub:
            entry = stored.tree_entry(prefix + sub)
            if expand:
                entry["lastCommit"] = _commit_entry(commit)
            entries.append(entry)
    handler._send_json(entries)


def _paths_info(handler, hub, query, repo_type, repo_id, revision):
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision)
    body = handler.body_bytes().decode()
    content_type = handler.headers.get("Content-Type", "")
    if "json" in content_type:
        payload = json.loads(body or "{}")
        paths = payload.get("paths", [])
        expand = bool(payload.get("expand"))
    else:
        form = parse_qs(body)
        paths = form.get("paths", [])
        expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
    folders = _folders_of(commit.files)
    entries = []
    for requested in paths:
        requested = requested.strip("/")
        if requested in commit.files:
            entry = commit.files[requested].tree_entry(requested)
            if expand:
                entry["lastCommit"] = _commit_entry(commit)
            entries.append(entry)
        elif requested in folders:
            entries.append(
                {"type": "directory", "path": requested, "oid": _folder_oid(commit, requested), "size": 0}
            )
    handler._send_json(entries)


def _refs(handler, hub, query, repo_type, repo_id):
    repo = hub.storage.get_repo(repo_type, repo_id)
    branches = [
        {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
        for name, oid in repo.branches.items()
    ]
    handler._send_json({"branches": branches, "tags": [], "converts": []})


def _commits(handler, hub, query, repo_type, repo_id, revision):
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision)
    history = []
    while commit is not None:
        history.append(
            {
                "id": commit.oid,
                "title": commit.title,
                "message": commit.message,
                "date": commit.date,
                "authors": [{"user": LOCAL_HUB_USER}],
            }
        )
        commit = repo.commits[commit.parents[0]] if commit.parents else None
    handler._send_json(history)


def _create_branch(handler, hub, query, repo_type, repo_id, branch):
    payload = handler.body_json()
    repo = hub.storage.get_repo(repo_type, repo_id)
    hub.storage.create_branch(repo, branch, payload.get("startingPoint"))
    handler._send_json({})


def _is_lfs_candidate(path: str, size: int, sample: bytes) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or size > LFS_SIZE_THRESHOLD or b"\0" in sample


def _preupload(handler, hub, query, repo_type, repo_id, revision):
    payload = handler.body_json()
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision)
    answers = []
    for entry in payload.get("files", []):
        sample = base64.b64decode(entry.get("sample", ""))
        is_lfs = _is_lfs_candidate(entry["path"], int(entry["size"]), sample)
        existing = commit.files.get(entry["path"])
        # The client compares this to sha256 (LFS) or git sha1 (regular) to skip unchanged files.
        remote_oid = None if existing is None else (existing.sha256 if existing.is_lfs else existing.blob_oid)
        answers.append(
            {
                "path": entry["path"],
                "uploadMode": "lfs" if is_lfs else "regular",
                "shouldIgnore": False,
                "oid": remote_oid,
            }
        )
    handler._send_json({"files": answers, "commitOid": commit.oid})


def _lfs_batch(handler, hub, query, prefix, repo_id):
    payload = handler.body_json()
    repo_type = "dataset" if prefix == "datasets/" else "space" if prefix == "spaces/" else "model"
    hub.storage.get_repo(repo_type, repo_id)
    if payload.get("operation") != "upload":
        raise HubError(400, None, "local hub: only LFS uploads are supported (downloads go through /resolve)")
    objects = []
    for obj in payload.get("objects", []):
        answer = {"oid": obj["oid"], "size": int(obj["size"]), "authenticated": True}
        if not hub.storage.has_blob(obj["oid"]):
            answer["actions"] = {
                "upload": {"href": f"{hub.url}/lfs-objects/{obj['oid']}", "expires_in": 3600}
            }
        objects.append(answer)
    handler._send(
        200,
        json.dumps({"transfer": "basic", "objects": objects}).encode(),
        content_type="application/vnd.git-lfs+json",
    )


def _lfs_put(handler, hub, query, sha256):
    content = handler.body_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise HubError(400, None, f"LFS upload: content sha256 {actual} does not match {sha256}")
    hub.storage.put_blob(content)
    handler._send(200)


def _commit(handler, hub, query, repo_type, repo_id, revision):
    body = handler.body_bytes()
    repo = hub.storage.get_repo(repo_type, repo_id)
    if query.get("create_pr", ["0"])[0] in ("1", "true"):
        raise HubError(501, None, "local hub: pull requests are not implemented")
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    commit = hub.storage.commit(repo, revision, lines)
    url_prefix = f"{hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
    handler._send_json(
        {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{url_prefix}/commit/{commit.oid}",
            "pullRequestUrl": None,
        }
    )


def _resolve(handler, hub, query, prefix, repo_id, revision, path):
    repo_type = "dataset" if prefix == "datasets/" else "space" if prefix == "spaces/" else "model"
    repo = hub.storage.get_repo(repo_type, repo_id)
    commit = hub.storage.resolve_revision(repo, revision)
    stored = commit.files.get(path)
    if stored is None:
        raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
    headers = {
        "ETag": f'"{stored.blob_oid}"',
        "X-Repo-Commit": commit.oid,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    if stored.is_lfs:
        headers["X-Linked-Etag"] = f'"{stored.sha256}"'
        headers["X-Linked-Size"] = str(stored.size)
    content = hub.storage.blob_path(stored.sha256).read_bytes()
    requested = handler.headers.get("Range")
    if requested:
        match = _RANGE_PATTERN.match(requested.strip())
        start, end = _parse_range(match, len(content)) if match else (None, None)
        if start is None:
            headers["Content-Range"] = f"bytes */{len(content)}"
            handler._send(416, b"", content_type="application/octet-stream", headers=headers)
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        handler._send(206, content[start : end + 1], content_type="application/octet-stream", headers=headers)
        return
    handler._send(200, content, content_type="application/octet-stream", headers=headers)


def _parse_range(match, size: int):
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None, None
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            return None, None
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None, None
    return start, end


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_TYPE = r"(?P<repo_type>model|dataset|space)s"
_REV = r"(?P<revision>[^/]+)"
_PREFIX = r"(?P<prefix>datasets/|spaces/|)"
_ROUTES = [
    ("GET", re.compile(r"/api/whoami-v2"), _whoami),
    ("POST", re.compile(r"/api/validate-yaml"), _validate_yaml),
    ("POST", re.compile(r"/api/repos/create"), _create_repo),
    ("DELETE", re.compile(r"/api/repos/delete"), _delete_repo),
    ("GET", re.compile(rf"/api/{_TYPE}/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?"), _tree),
    ("POST", re.compile(rf"/api/{_TYPE}/{_REPO}/paths-info/{_REV}"), _paths_info),
    ("GET", re.compile(rf"/api/{_TYPE}/{_REPO}/refs"), _refs),
    ("GET", re.compile(rf"/api/{_TYPE}/{_REPO}/commits/{_REV}"), _commits),
    ("POST", re.compile(rf"/api/{_TYPE}/{_REPO}/branch/(?P<branch>[^/]+)"), _create_branch),
    ("POST", re.compile(rf"/api/{_TYPE}/{_REPO}/preupload/{_REV}"), _preupload),
    ("POST", re.compile(rf"/api/{_TYPE}/{_REPO}/commit/{_REV}"), _commit),
    ("GET", re.compile(rf"/api/{_TYPE}/{_REPO}/revision/{_REV}"), _repo_info),
    ("GET", re.compile(rf"/api/{_TYPE}/{_REPO}"), _repo_info),
    ("POST", re.compile(rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch"), _lfs_batch),
    ("PUT", re.compile(r"/lfs-objects/(?P<sha256>[0-9a-f]{64})"), _lfs_put),
    ("GET", re.compile(rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)"), _resolve),
]


class _LocalHubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, hub: LocalHubServer):
        self.hub = hub
        # Bind now (the port is reserved and known), listen only in LocalHubServer.start(): until then a client gets
        # "connection refused" at once instead of waiting on a server that does not answer.
        super().__init__(address, _HubRequestHandler, bind_and_activate=False)
        try:
            self.server_bind()
        except BaseException:
            self.server_close()
            raise


class LocalHubServer:
    """A Hub-protocol HTTP server on ``127.0.0.1`` storing everything under ``root`` (a fresh tmp dir by default).

    Attributes:
        url: the endpoint to put in ``HF_ENDPOINT`` (``http://127.0.0.1:<port>``).
        storage: the :class:`HubStorage` (inspect repos and commits directly in tests).
        request_log: every ``(method, path)`` served, in order.
        unhandled_requests: requests that matched no route (a test can assert it stays empty).
    """

    def __init__(self, root: str | Path | None = None, port: int = 0, verbose: bool = False):
        self._owns_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="local-hub-"))
        self.storage = HubStorage(self.root)
        self.verbose = verbose
        self.request_log: list[tuple[str, str]] = []
        self.unhandled_requests: list[tuple[str, str]] = []
        self._httpd = _LocalHubHTTPServer(("127.0.0.1", port), self)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the server listens and answers (a server only constructed has its port reserved, no more)."""
        return self._thread is not None

    def start(self) -> LocalHubServer:
        """Listen on the reserved port and serve requests from a daemon thread (idempotent)."""
        if self._thread is None:
            self._httpd.server_activate()
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalHubServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class HubEndpoint(str):
    """The endpoint URL (a ``str``) with the running :class:`LocalHubServer` attached as ``.server``."""

    server: LocalHubServer


_SESSION_SERVER: LocalHubServer | None = None


def install_local_hub(hf_home: str | Path | None = None, start: bool = True) -> LocalHubServer:
    """Set up the process-wide local Hub (once) and export the environment the HF libraries need.

    With ``start=False`` the server only reserves its port (so ``HF_ENDPOINT`` is known before ``huggingface_hub``
    is imported) and starts on :meth:`LocalHubServer.start`, which the ``hub_server`` fixture calls: the server runs
    only in sessions with tests that use it, and anything else that reaches for the Hub is refused at once.

    Exports ``HF_ENDPOINT`` (the server), ``HF_HUB_DISABLE_XET=1`` (plain LFS uploads), a dummy ``HF_TOKEN``,
    ``HF_HUB_OFFLINE=0``, ``HF_HUB_DISABLE_TELEMETRY=1`` and a fresh ``HF_HOME`` (so nothing reads or writes
    ``~/.cache``), and clears ``HF_DATASETS_CACHE``/``HF_HUB_CACHE``/``TRANSFORMERS_CACHE`` so they derive from it.
    Must run before ``huggingface_hub`` is imported: it raises ``RuntimeError`` otherwise, because the
    library would keep using the endpoint it read at import time.
    """
    global _SESSION_SERVER
    if _SESSION_SERVER is not None:
        return _SESSION_SERVER
    import sys

    for module in ("huggingface_hub", "datasets", "transformers"):
        if module in sys.modules:
            raise RuntimeError(
                f"install_local_hub() must run before `{module}` is imported (HF_ENDPOINT is read once at import); "
                "call it at the top of tests/conftest.py"
            )
    server = LocalHubServer()
    home = Path(hf_home) if hf_home is not None else Path(tempfile.mkdtemp(prefix="hf-home-"))
    os.environ.update(
        {
            "HF_ENDPOINT": server.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": DUMMY_TOKEN,
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HOME": str(home),
        }
    )
    for variable in (
        "HF_DATASETS_CACHE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_CACHE",
        "HF_MODULES_CACHE",
    ):
        os.environ.pop(variable, None)
    _SESSION_SERVER = server
    return server.start() if start else server


try:
    import pytest
except ImportError:  # the server itself needs only the stdlib
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def hub_server() -> HubEndpoint:
        """The endpoint URL of the session's local Hub (a ``str``; ``.server`` is the :class:`LocalHubServer`).

        Fails (instead of silently talking to the real Hub) when ``HF_ENDPOINT`` was not exported before
        ``huggingface_hub`` was imported; see :func:`install_local_hub`.
        """
        if _SESSION_SERVER is None:
            try:
                install_local_hub()
            except RuntimeError as error:
                pytest.fail(str(error))
        _SESSION_SERVER.start()
        import huggingface_hub.constants

        if _SESSION_SERVER.url != huggingface_hub.constants.ENDPOINT:
            pytest.fail(
                f"huggingface_hub uses {huggingface_hub.constants.ENDPOINT}, not the local hub {_SESSION_SERVER.url}"
            )
        endpoint = HubEndpoint(_SESSION_SERVER.url)
        endpoint.server = _SESSION_SERVER
        return endpoint

    @pytest.fixture
    def hub_repo_id(request, hub_server) -> str:
        """A fresh, unused repo id under the local user, derived from the test name."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60].strip("-.")
        return f"{LOCAL_HUB_USER}/{name}-{uuid.uuid4().hex[:8]}"
