# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Read one crystal of an upload, a pasted text or a bundled example, and encode it, in a worker process with a
time limit.

A thread cannot be stopped, and a reader or a symmetry search can run away on a pathological file, so every request
is read and encoded in a fresh process (forked from a `forkserver` that has already imported pymatgen and the
readers, so a request costs a fork, not an interpreter start) that is killed when the request's time is up. The
worker sends back plain data: the crystal's description for the page (formula, space group, lattice parameters, the
SCOPE v2 string and its orbits, the reader's notes), the SCOPE string each model's tokenizer settings give, and the
structure as a pymatgen dict; or a failure record `{"source", "reason", "type", "message"}`.

No Gradio here: the page's callbacks (`layout.py`) and tests call [`CrystalReader`] alike.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Limits of one request (named in the page's message when hit).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_ATOMS = 500
TIME_LIMIT_S = 60.0

#: Reason codes of the app's own refusals (the readers' and the pipeline's codes are passed through unchanged).
FILE_TOO_LARGE, TOO_MANY_ATOMS, TIME_LIMIT, NO_INPUT, READER_ERROR = (
    "file_too_large",
    "too_many_atoms",
    "time_limit",
    "no_input",
    "reader_error",
)

#: Extended XYZ: an atom count, then a comment line of key=value pairs (`Lattice=`, `Properties=`, `pbc=`).
_EXTXYZ_START = re.compile(r"^\s*\d+\s*\n[^\n]*\b(Lattice|Properties|pbc)\s*=", re.IGNORECASE)


@dataclass(frozen=True)
class EncodingSettings:
    """What a model's tokenizer needs to encode a structure as its SCOPE string (one entry per distinct tokenizer)."""

    scope_version: str
    symprec: float
    angle_tolerance: float
    disorder: str

    @classmethod
    def of(cls, tokenizer) -> EncodingSettings:
        return cls(tokenizer.scope_version, tokenizer.symprec, tokenizer.angle_tolerance, tokenizer.disorder)

    @property
    def key(self) -> str:
        return f"{self.scope_version}/{self.symprec:g}/{self.angle_tolerance:g}/{self.disorder}"


def failure(source: str, reason: str, message: str, error_type: str = "AppLimitError") -> dict[str, str]:
    """A failure record in the shape every CLOUD output uses."""
    return {"source": source, "reason": reason, "type": error_type, "message": message}


def check_size(source: str, size: int) -> dict[str, str] | None:
    """The failure record of an input over the upload limit, or `None`."""
    if size > MAX_UPLOAD_BYTES:
        return failure(
            source,
            FILE_TOO_LARGE,
            f"the input is {size / 1024 / 1024:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 1024 // 1024} MB",
        )
    return None


def _lattice_parameters(lattice) -> dict[str, float]:
    a, b, c = lattice.abc
    alpha, beta, gamma = lattice.angles
    return {"a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma, "volume": lattice.volume}


def _orbits(scope_v2: str) -> list[dict[str, str]]:
    """The orbits that a SCOPE v2 string spells: `{"wyckoff", "species", "occupancy"}` per orbit, in string order."""
    from tokenization.scope_v2 import parse_v2, parse_v2_disorder

    _, blocks = parse_v2(scope_v2)
    rows = [
        {"wyckoff": wyckoff, "species": element, "occupancy": "1.0"}
        for element, _, wyckoffs in blocks
        for wyckoff in wyckoffs
    ]
    for wyckoff, mixture in parse_v2_disorder(scope_v2):
        rows.append(
            {
                "wyckoff": wyckoff,
                "species": " + ".join(element for element, _ in mixture),
                "occupancy": " + ".join(f"{element} {occupancy}" for element, occupancy in mixture),
            }
        )
    return rows


def _crystals_of(request: dict[str, Any]) -> list:
    """`[(name, Structure or ScopeError)]` of the request's input (file, text or example)."""
    from tokenization.structure_io import load_structures

    source = request["source"]
    if request.get("path") is not None:
        path = Path(request["path"])
        crystals = load_structures(path, source=source)
    else:
        text = request["text"]
        if not _EXTXYZ_START.match(text):
            # A newline keeps a one-line text from being taken for a file name: pasted text is never a path.
            return load_structures(text if "\n" in text else text + "\n", source=source)
        with tempfile.TemporaryDirectory(prefix="cloud-app-") as folder:  # extended XYZ is read through ASE
            path = Path(folder) / "pasted.extxyz"
            path.write_text(text)
            crystals = load_structures(path, source=source)
    # Names of the crystals as the user knows them (an upload's temporary path replaced by its file name).
    return [(name.replace(str(path), source), crystal) for name, crystal in crystals]


def read_and_encode(request: dict[str, Any]) -> dict[str, Any]:
    """Read the request's crystal and encode it; the worker's whole job (also callable in-process).

    Args:
        request: `{"source": name for messages, "path": file or None, "text": pasted text or None, "choice": name of
            the crystal to use when the input holds several (None: the first), "settings": [EncodingSettings
            fields as dicts]}`.

    Returns:
        `{"crystals": [names], "choice": name, "failure": None or a failure record, ...}` with, on success,
        `formula`, `formula_cell`, `n_atoms`, `n_sites`, `space_group` (number), `space_group_symbol`, `lattice`
        (a, b, c in Å, angles in degrees, volume in Å³), `scope_v2`, `orbits`, `notes`, `scopes` (settings key ->
        SCOPE string) and `structure` (pymatgen dict).
    """
    from pymatgen.symmetry.groups import sg_symbol_from_int_number

    from tokenization import ScopeAnalyzer, ScopeError

    source = request["source"]
    result: dict[str, Any] = {"crystals": [], "choice": None, "failure": None}
    try:
        crystals = _crystals_of(request)
    except ScopeError as error:
        result["failure"] = error.to_dict(source)
        return result
    names = [name for name, _ in crystals]
    result["crystals"] = names
    choice = request.get("choice") if request.get("choice") in names else names[0]
    result["choice"] = choice
    structure = dict(crystals)[choice]
    if isinstance(structure, ScopeError):
        result["failure"] = structure.to_dict(choice)
        return result
    if len(structure) > MAX_ATOMS:
        result["failure"] = failure(
            choice,
            TOO_MANY_ATOMS,
            f"the crystal has {len(structure)} sites in its cell; the app takes crystals up to {MAX_ATOMS} atoms",
        )
        return result
    try:
        display = ScopeAnalyzer(structure, source=choice, validated=True)
        scope_v2 = display.get_scope("v2")
        scopes = {}
        for fields in request["settings"]:
            settings = EncodingSettings(**fields)
            analyzer = ScopeAnalyzer(
                structure,
                source=choice,
                symprec=settings.symprec,
                angle_tolerance=settings.angle_tolerance,
                disorder=settings.disorder,
                validated=True,
            )
            scopes[settings.key] = analyzer.get_scope(settings.scope_version)
    except ScopeError as error:
        result["failure"] = error.to_dict(choice)
        return result
    number = display.get_space_group_number()
    composition = structure.composition
    result.update(
        formula=composition.reduced_formula,
        formula_cell=composition.formula,
        n_atoms=float(composition.num_atoms),
        n_sites=len(structure),
        is_ordered=bool(structure.is_ordered),
        space_group=number,
        space_group_symbol=sg_symbol_from_int_number(number),
        lattice=_lattice_parameters(structure.lattice),
        scope_v2=scope_v2,
        orbits=_orbits(scope_v2),
        notes=display.reader_notes,
        scopes=scopes,
        structure=structure.as_dict(),
    )
    return result


def _work(request: dict[str, Any], connection) -> None:
    try:
        answer = read_and_encode(request)
    except Exception as error:  # noqa: BLE001  (the worker's boundary: the page gets the record, not "exit code 1")
        message = f"the reader failed on this input ({type(error).__name__}: {error})"
        answer = {"crystals": [], "choice": None,
                  "failure": failure(request["source"], READER_ERROR, message, type(error).__name__)}  # fmt: skip
    try:
        connection.send(answer)
    finally:
        connection.close()


#: Modules the forkserver imports once, so that a request's worker starts with them loaded.
_PRELOAD = (
    __name__,
    "pymatgen.core",
    "pymatgen.symmetry.groups",
    "tokenization",
    "tokenization.scope_v2",
    "tokenization.structure_io",
    "tokenization.cif_structure",
)


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class CrystalReader:
    """Runs [`read_and_encode`] in a worker process per request and stops it at the time limit.

    Args:
        time_limit: seconds a request may take (60); the worker is killed when they are spent.

    Example:

    ```python
    >>> reader = CrystalReader()  # doctest: +SKIP
    >>> answer = reader.read(request_for_file("dataset_builders/data/examples/NaCl.cif", []))  # doctest: +SKIP
    >>> answer["scope_v2"], answer["space_group_symbol"]  # doctest: +SKIP
    ('SG225 Na 0.5 4a Cl 0.5 4b', 'Fm-3m')

    ```

    Scripts that create a reader need the `if __name__ == "__main__":` guard, as any multiprocessing code does: the
    worker's server imports the main module.
    """

    def __init__(self, time_limit: float = TIME_LIMIT_S):
        self.time_limit = time_limit
        self._context = multiprocessing.get_context(_start_method())
        if self._context.get_start_method() == "forkserver":
            # The server imports the readers once; each request forks from it with them already loaded.
            self._context.set_forkserver_preload(list(_PRELOAD))

    def read(self, request: dict[str, Any], time_limit: float | None = None) -> dict[str, Any]:
        """The worker's answer, or a `time_limit` failure record when it did not answer in time."""
        limit = self.time_limit if time_limit is None else time_limit
        started = time.perf_counter()
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_work, args=(request, sender), daemon=True)
        process.start()
        sender.close()
        try:
            answered = receiver.poll(max(limit, 0.0))
            answer = receiver.recv() if answered else None
        except EOFError:  # the worker died without answering (killed by the system, out of memory)
            answer = None
            answered = True
        finally:
            receiver.close()
        process.join(timeout=5 if answered else 0)
        if process.is_alive():
            process.kill()
            process.join()
        if answer is not None:
            return answer
        source = request["source"]
        if not answered:
            message = (
                f"reading and encoding took longer than the {limit:.0f} s limit per request "
                f"(stopped after {time.perf_counter() - started:.0f} s)"
            )
            return {"crystals": [], "choice": None, "failure": failure(source, TIME_LIMIT, message)}
        message = f"the reader stopped without an answer (exit code {process.exitcode})"
        return {"crystals": [], "choice": None, "failure": failure(source, "worker_failed", message)}


def bundled_examples() -> dict[str, Path]:
    """The bundled example crystals (`dataset_builders/data/examples`), by file name, ordered ones first."""
    folder = Path(__file__).resolve().parents[2] / "dataset_builders" / "data" / "examples"
    files = sorted(folder.glob("*.cif"))
    disordered = {"NMC111.cif", "YSZ.cif"}
    return {
        path.name: path
        for path in [p for p in files if p.name not in disordered]
        + [p for p in files if p.name in disordered]
    }


def request_for_file(path: str | os.PathLike, settings, choice: str | None = None, source: str | None = None):
    """The request of an uploaded or bundled file; `settings`: [`EncodingSettings`] of the models."""
    return {
        "source": source or Path(path).name,
        "path": str(path),
        "text": None,
        "choice": choice,
        "settings": [vars(s) for s in settings],
    }


def request_for_text(text: str, settings, choice: str | None = None):
    """The request of a pasted text."""
    return {
        "source": "pasted text",
        "path": None,
        "text": text,
        "choice": choice,
        "settings": [vars(s) for s in settings],
    }
