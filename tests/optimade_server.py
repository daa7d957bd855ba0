"""The OPTIMADE reference server (the ``optimade`` package's FastAPI app, mongomock backend) on 127.0.0.1.

The corpus tests and ``benchmarks/bench_corpus.py`` page through it with the official OPTIMADE client, over real
HTTP. It serves, in the database layout of the package's own test data (``task_id`` for ``id``, ``pretty_formula``
and ``formula_anonymous`` for the reduced and anonymous formulas, hence the aliases below):

* the package's test structures (``optimade.server.data.structures``, 17 in optimade 1.5);
* Materials Project structures from ``dataset_builders.load_materials_project()``, converted with the package's
  own ``from_pymatgen`` adapter (``mp-10`` ...), so the entries our reader decodes were written by someone else;
* any extra documents a test adds (odd species, assemblies, slabs, disorder).

The server runs in a child process (``python tests/optimade_server.py CONFIG``), so its CPU time and the GIL are not
the client's, and it can be killed. Nothing is inserted from the network: ``insert_test_data`` is off (with it on,
the package fetches the providers list from providers.optimade.org) and the documents come from a JSON file.

Example::

    >>> with OptimadeTestServer(documents=package_test_documents()) as server:   # doctest: +SKIP
    ...     server.base_url
    'http://127.0.0.1:40517'
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Database field -> OPTIMADE field, as the package's test data need.
ALIASES = {
    "structures": {
        "id": "task_id",
        "chemical_formula_reduced": "pretty_formula",
        "chemical_formula_anonymous": "formula_anonymous",
    }
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def package_test_documents() -> list[dict]:
    """The optimade package's own test structures, as database documents (JSON-safe: no ObjectId, no datetime)."""
    data_file = (
        Path(__import__("optimade.server.data", fromlist=["x"]).__file__).parent / "test_structures.json"
    )
    documents = json.loads(data_file.read_text())
    for document in documents:
        document.pop("_id", None)
        document.pop("relationships", None)  # references are not served
        document["last_modified"] = document["last_modified"]["$date"]
    return documents


def structure_document(structure, task_id: str) -> dict:
    """A pymatgen ``Structure`` as a database document, written with the optimade package's ``from_pymatgen``."""
    from optimade.adapters.structures.pymatgen import from_pymatgen

    attributes = from_pymatgen(structure).model_dump(mode="json")
    document = {key: value for key, value in attributes.items() if value is not None}
    document["task_id"] = task_id
    document["pretty_formula"] = document.pop("chemical_formula_reduced")
    document["formula_anonymous"] = document.pop("chemical_formula_anonymous")
    document["last_modified"] = "2024-01-01T00:00:00Z"
    document["chemsys"] = "-".join(document["elements"])
    return document


def materials_project_documents(limit: int | None = None) -> list[dict]:
    """The bundled Materials Project structures (the first ``limit``, all 6,317 by default) as documents."""
    from pymatgen.core import Structure

    from dataset_builders import load_materials_project

    table = load_materials_project().select_columns(["material_id", "structure"])
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    return [
        structure_document(Structure.from_dict(json.loads(row["structure"])), row["material_id"])
        for row in table
    ]


def _serve(config_path: str) -> None:  # runs in the child process
    import bson.json_util
    import uvicorn

    settings = json.loads(Path(config_path).read_text())
    os.environ["OPTIMADE_CONFIG_FILE"] = settings["optimade_config"]
    from optimade.server.config import ServerConfig
    from optimade.server.create_app import create_app

    config = ServerConfig()
    if settings.get("license"):
        # The validator would HEAD the licence URL on the network; the value is only echoed in /info.
        config.__dict__["license"] = settings["license"]
    app = create_app(config)
    documents = bson.json_util.loads(Path(settings["documents"]).read_text())
    for document in documents:
        if isinstance(document.get("last_modified"), str):
            from datetime import datetime

            document["last_modified"] = datetime.fromisoformat(
                document["last_modified"].replace("Z", "+00:00")
            )
    app.state.entry_collections["structures"].insert(documents)
    uvicorn.run(app, host="127.0.0.1", port=settings["port"], log_level="warning", access_log=False)


class OptimadeTestServer:
    """Start the reference server in a child process on a free loopback port; ``stop()`` (or ``with``) ends it.

    Args:
        documents (`list[dict]`): structure documents in the test-data layout (see the module docstring).
        page_limit (`int`): the server's default page size; `page_limit_max` is 1,000.
        license (`str`, *optional*): an SPDX licence URL echoed in ``/info`` (never fetched).
    """

    def __init__(self, documents: list[dict], page_limit: int = 20, license: str | None = None):  # noqa: A002
        self.directory = Path(tempfile.mkdtemp(prefix="optimade-server-"))
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        optimade_config = {
            "insert_test_data": False,
            "database_backend": "mongomock",
            "base_url": self.base_url,
            "page_limit": page_limit,
            "page_limit_max": 1000,
            "aliases": ALIASES,
            "provider": {
                "prefix": "cloudtest",
                "name": "CLOUD test provider",
                "description": "The optimade reference server on loopback, for the cloud-crystal tests",
            },
            "log_dir": str(self.directory),
        }
        (self.directory / "optimade_config.json").write_text(json.dumps(optimade_config))
        (self.directory / "documents.json").write_text(json.dumps(documents))
        settings = {
            "optimade_config": str(self.directory / "optimade_config.json"),
            "documents": str(self.directory / "documents.json"),
            "port": self.port,
            "license": license,
        }
        (self.directory / "settings.json").write_text(json.dumps(settings))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> OptimadeTestServer:
        """Launch the child process and wait until ``/v1/info`` answers."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> OptimadeTestServer:
        """Launch the child process without waiting (start several servers at once, then ``wait_ready``)."""
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.directory / "settings.json")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "server.log", "wb"),  # noqa: SIM115  (kept open for the child)
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> OptimadeTestServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the OPTIMADE server exited: {(self.directory / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/v1/info", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the OPTIMADE server did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> OptimadeTestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1])
