"""Run every structure file under a folder through SCOPE v2 and through pymatgen and ASE, and compare.

A local survey, outside the test suite, for files that may not be copied into the repository (other projects'
test files, under their licences)::

    nice python -m benchmarks.check_structure_files FOLDER --jobs 2 --json survey.json --markdown survey.md

Each crystal (a file, a CIF data block ``file.cif#block`` or an extxyz frame ``file.extxyz@3``) is encoded as
``cloud-crystal encode FILE --scope-version v2 --jsonl`` encodes it (default tolerances and ``--disorder encode``,
the same length check). Independently, the same crystal is read with pymatgen (``CifParser`` for a CIF block,
``Structure.from_file`` otherwise) and with ASE (``ase.io.read``); each side's composition and space group
(``SpacegroupAnalyzer`` / spglib at our symprec and angle tolerance) are compared with ours.

Outcomes, one per crystal:

* ``encoded``: a SCOPE v2 string;
* ``refused``: a typed `ScopeError`, counted by its ``reason``; a reason that is not one of :data:`BASELINE_REASONS`
  (the reasons before issue 21) is listed as a new check's refusal, to be examined;
* ``crashed``: an untyped exception (with its traceback), a timeout, or a worker that died (a hard crash, or memory
  past ``--memory-limit-mb``). A typed wrapper of an unexpected exception (:data:`CRASH_REASONS`) is counted as a
  refusal by its reason and also listed as a crash, since it is still a bug.

Listed for examination: every crash, every encoded crystal whose composition or space group differs from pymatgen's
or ASE's, every refusal with a new reason, and (as hints, not verdicts) every CIF whose ``_chemical_formula_sum``
is not proportional to the composition built.

Each file is handled in a worker subprocess (``--jobs`` of them, at most 2) with a per-file timeout, so a hang or a
crash is counted, not fatal. Exit code 0 always: the output is for a person to judge.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import selectors
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The failure reasons of `tokenization.scope_errors` before issue 21. A refusal with any other reason comes from a
#: check added since (self-consistency, operation lists, resource limits) and is listed for examination.
BASELINE_REASONS = frozenset(
    {
        "scope_error",
        "parse_error",
        "empty_structure",
        "disordered_structure",
        "unknown_species",
        "overlapping_sites",
        "invalid_geometry",
        "symmetry_not_found",
        "too_long",
        "unsupported_version",
        "non_periodic",
        "site_assemblies",
        "attached_atoms",
        "vacancy_site",
    }
)
#: Typed wrappers of unexpected exceptions: still a crash for the survey (a bug to fix), though the batch goes on.
CRASH_REASONS = frozenset({"internal_error"})
MAX_JOBS = 2
#: A file also times out after this many times ``--timeout`` of wall-clock time (the timeout counts CPU seconds, so
#: that a busy machine does not turn slow files into crashes).
WALL_FACTOR = 10
#: Two compositions agree when every element's atomic fraction differs by at most this much.
FRACTION_TOLERANCE = 0.005
#: The looser tolerance at which the references' space group is also reported when it disagrees with ours (a
#: disagreement that vanishes there is one of coordinate precision, not of the crystal).
LOOSE_SYMPREC = 0.1

_DECLARED_NUMBER = re.compile(
    r"^\s*_(?:space_group_IT_number|symmetry_Int_Tables_number|space_group\.IT_number|"
    r"symmetry\.Int_Tables_number)\s+['\"]?(\d+)",
    re.I | re.M,
)
_DECLARED_FORMULA = re.compile(
    r"^\s*_chemical_formula_sum\s+(?:'([^'\n]*)'|\"([^\"\n]*)\"|(\S+))", re.I | re.M
)
_DECLARED_FORMULA_TEXT = re.compile(r"^\s*_chemical_formula_sum\s*\n;([^;]*)\n;", re.I | re.M)
_FORMULA_TERM = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


# -- composition and space group, on every side -------------------------------------------------------------------
def _fractions(composition) -> dict[str, float]:
    """Atomic fraction per element of a pymatgen `Composition` (vacancies and oxidation states dropped)."""
    amounts: dict[str, float] = {}
    for species, amount in composition.items():
        symbol = getattr(species, "symbol", None) or getattr(
            getattr(species, "element", None), "symbol", None
        )
        if symbol is None:
            continue  # a DummySpecies such as a vacancy
        amounts[symbol] = amounts.get(symbol, 0.0) + float(amount)
    total = sum(amounts.values())
    return {el: round(a / total, 6) for el, a in sorted(amounts.items())} if total else {}


def _same_fractions(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[el] - b[el]) <= FRACTION_TOLERANCE for el in a)


def _formula(composition) -> str:
    try:
        return composition.reduced_formula
    except (ValueError, ZeroDivisionError):
        return composition.formula


def _pymatgen_side(structure) -> dict:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from tokenization.scope_defaults import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC

    side = {"formula": _formula(structure.composition), "fractions": _fractions(structure.composition)}
    side["ordered"] = bool(structure.is_ordered)
    side["space_group"] = SpacegroupAnalyzer(
        structure, symprec=DEFAULT_SYMPREC, angle_tolerance=DEFAULT_ANGLE_TOLERANCE
    ).get_space_group_number()
    return side


def _spglib_number(cell, symprec: float, angle_tolerance: float) -> int | None:
    import spglib

    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec, angle_tolerance=angle_tolerance)
    return None if dataset is None else int(dataset.number)


def _ase_side(atoms) -> dict:
    from pymatgen.core import Composition

    from tokenization.scope_defaults import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC

    if not all(atoms.pbc) or atoms.cell.rank < 3:
        raise ValueError("ASE read no periodic 3D cell")
    composition = Composition(atoms.get_chemical_formula())
    side = {"formula": _formula(composition), "fractions": _fractions(composition)}
    occupancy = atoms.info.get("occupancy") or {}
    side["ordered"] = all(abs(float(v) - 1.0) < 1e-6 for site in occupancy.values() for v in site.values())
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    side["space_group"] = _spglib_number(cell, DEFAULT_SYMPREC, DEFAULT_ANGLE_TOLERANCE)
    side["_cell"] = cell
    return side


def _optimade_structure(entry: dict):
    """A pymatgen `Structure` built directly from an OPTIMADE entry's own fields (ordered sites only)."""
    from pymatgen.core import Lattice, Structure

    attributes = entry.get("attributes", entry)
    species = {s["name"]: s for s in attributes.get("species") or []}
    symbols = []
    for name in attributes["species_at_sites"]:
        kind = species.get(name, {"chemical_symbols": [name], "concentration": [1.0]})
        if len(kind["chemical_symbols"]) != 1 or abs(float(kind["concentration"][0]) - 1.0) > 1e-6:
            raise ValueError("disordered OPTIMADE species: no independent reference")
        symbols.append(kind["chemical_symbols"][0])
    return Structure(
        Lattice(attributes["lattice_vectors"]),
        symbols,
        attributes["cartesian_site_positions"],
        coords_are_cartesian=True,
    )


def _references(path: Path, source: str, item: Any, index: int) -> dict[str, dict]:
    """``{"pymatgen": side, "ase": side}``, each side ``{"formula", "fractions", "ordered", "space_group"}`` or
    ``{"error": ...}``, read independently of our readers from the same file (or CIF block, or frame)."""
    import ase.io
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifParser

    suffix = path.suffix.lower()
    sides: dict[str, dict] = {}
    readers = {}
    if suffix in (".cif", ".mcif"):
        text = item if isinstance(item, str) else path.read_text(errors="replace")

        def pymatgen_cif():
            structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
            if not structures:
                raise ValueError("pymatgen read no structure")
            return _pymatgen_side(structures[0])

        readers["pymatgen"] = pymatgen_cif
        readers["ase"] = lambda: _ase_side(ase.io.read(io.StringIO(text), format="cif", index=0))
    elif suffix in (".xyz", ".extxyz"):
        readers["ase"] = lambda: _ase_side(ase.io.read(path, index=index))
    elif suffix in (".json", ".jsonl"):
        if isinstance(item, dict) and (
            "species_at_sites" in item or "species_at_sites" in item.get("attributes", {})
        ):
            readers["pymatgen"] = lambda: _pymatgen_side(_optimade_structure(item))
    else:  # POSCAR, CONTCAR, .vasp, .poscar
        readers["pymatgen"] = lambda: _pymatgen_side(Structure.from_file(path))
        readers["ase"] = lambda: _ase_side(ase.io.read(path, format="vasp"))
    for name, read in readers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sides[name] = read()
        except Exception as exc:  # a reference that cannot read the file is a fact to record
            sides[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return sides


def _declared(text: str) -> dict:
    """The space-group number and ``_chemical_formula_sum`` a CIF block declares (hints for a person)."""
    declared = {}
    number = _DECLARED_NUMBER.search(text)
    if number:
        declared["space_group"] = int(number.group(1))
    formula = _DECLARED_FORMULA.search(text)
    value = next((g for g in formula.groups() if g), None) if formula else None
    if value is None or value in ("?", "."):
        text_field = _DECLARED_FORMULA_TEXT.search(text)
        value = text_field.group(1).strip() if text_field else None
    if value and value not in ("?", "."):
        amounts: dict[str, float] = {}
        for symbol, count in _FORMULA_TERM.findall(value):
            symbol = "H" if symbol in ("D", "T") else symbol  # deuterium and tritium are hydrogen
            try:
                amounts[symbol] = amounts.get(symbol, 0.0) + (float(count) if count else 1.0)
            except ValueError:
                continue
        total = sum(amounts.values())
        if total:
            declared["formula_sum"] = value
            declared["fractions"] = {el: round(a / total, 6) for el, a in sorted(amounts.items())}
    return declared


# -- the worker: one file at a time ---------------------------------------------------------------------------------
def _ours(tokenizer, source: str, item: Any) -> dict:
    from tokenization import ScopeError
    from tokenization.scope_defaults import DEFAULT_MAX_LENGTH

    try:
        if isinstance(item, ScopeError):
            raise item
        analyzer = tokenizer.analyze(item, source=source)
        scope = analyzer.get_scope("v2")
        tokenizer(scope, truncation=False, max_length=DEFAULT_MAX_LENGTH)  # the length check `encode` makes
        structure = analyzer.structure
        return {
            "outcome": "encoded",
            "scope": scope,
            "space_group": analyzer.get_space_group_number(),
            "formula": _formula(structure.composition),
            "fractions": _fractions(structure.composition),
            "ordered": bool(structure.is_ordered),
            "notes": analyzer.reader_notes,
        }
    except ScopeError as exc:
        record = exc.to_dict()
        return {
            "outcome": "refused",
            "reason": record["reason"],
            "type": record["type"],
            "message": exc.message,
        }
    except Exception as exc:  # an untyped exception is exactly what the survey counts as a crash
        return {
            "outcome": "crashed",
            "crash": "untyped_exception",
            "type": type(exc).__name__,
            "message": str(exc)[:500],
            "traceback": traceback.format_exc()[-3000:],
        }


def _worker(folder: Path, memory_limit_mb: int, compare: bool, reuse: Path | None = None) -> None:
    """Read file paths from stdin; write one JSON line per stage (``ours`` per crystal, then ``done``).

    ``reuse``: an earlier run's ``--json``, whose pymatgen and ASE results are taken for the same crystals instead of
    reading them again (the references do not depend on this package's code).
    """
    known = {}
    if reuse is not None:
        known = {
            row["source"]: row
            for row in json.loads(reuse.read_text())["rows"]
            if row.get("references")
            and not any("timeout" in side.get("error", "") for side in row["references"].values())
        }
    if memory_limit_mb:
        limit = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tokenization import CloudTokenizerFast
    from tokenization.structure_files import iter_structure_inputs

    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the protocol
    for line in sys.stdin:
        path = Path(line.rstrip("\n"))
        rows = []
        try:
            items = list(iter_structure_inputs([path]))
        except Exception as exc:  # counted as a crash of our reader
            items = [(str(path), exc)]
        for source, item in items:
            row = {"source": _relative(source, folder)}
            out.write(json.dumps({"stage": "start", "path": str(path), "source": row["source"]}) + "\n")
            out.flush()
            if isinstance(item, Exception) and not hasattr(item, "reason"):
                row["ours"] = {
                    "outcome": "crashed",
                    "crash": "untyped_exception",
                    "type": type(item).__name__,
                    "message": str(item)[:500],
                }
            else:
                started = time.perf_counter()
                row["ours"] = _ours(tokenizer, source, item)
                row["ours"]["seconds"] = round(time.perf_counter() - started, 3)
            out.write(json.dumps({"stage": "ours", "path": str(path), "row": row}) + "\n")
            out.flush()
            if compare and row["ours"]["outcome"] == "encoded" and row["source"] in known:
                row["references"] = known[row["source"]]["references"]
                row["declared"] = known[row["source"]].get("declared")
            elif compare and row["ours"]["outcome"] == "encoded":
                frame = (
                    int(source.rsplit("@", 1)[1])
                    if "@" in source and source.rsplit("@", 1)[1].isdigit()
                    else 0
                )
                started = time.perf_counter()
                references = _references(path, source, item, frame)
                row["reference_seconds"] = round(time.perf_counter() - started, 3)
                for side in references.values():
                    side.pop("_cell", None)
                row["references"] = references
                if path.suffix.lower() in (".cif", ".mcif"):
                    text = item if isinstance(item, str) else path.read_text(errors="replace")
                    row["declared"] = _declared(text)
            rows.append(row)
        out.write(json.dumps({"stage": "done", "path": str(path), "rows": rows}) + "\n")
        out.flush()


def _relative(source: str, folder: Path) -> str:
    prefix = str(folder).rstrip("/") + "/"
    return source[len(prefix) :] if source.startswith(prefix) else source


# -- the parent: a small pool of workers with per-file timeouts -----------------------------------------------------
@dataclass
class _Slot:
    command: list[str]
    proc: subprocess.Popen | None = None
    path: Path | None = None
    deadline: float = 0.0
    wall_deadline: float = 0.0
    partial: list[dict] = field(default_factory=list)
    buffer: bytes = b""

    def start(self, selector: selectors.BaseSelector) -> None:
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0
        )
        self.buffer = b""
        selector.register(self.proc.stdout, selectors.EVENT_READ, self)

    def stop(self, selector: selectors.BaseSelector) -> None:
        selector.unregister(self.proc.stdout)
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def cpu_seconds(self) -> float:
        """CPU time the worker has used (user + system), from ``/proc``; wall time where there is no ``/proc``."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return time.monotonic()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def submit(self, path: Path, timeout: float) -> None:
        self.path, self.partial = path, []
        self.deadline = self.cpu_seconds() + timeout
        self.wall_deadline = time.monotonic() + WALL_FACTOR * timeout
        self.proc.stdin.write((str(path) + "\n").encode())
        self.proc.stdin.flush()


def _crash_rows(slot: _Slot, folder: Path, crash: str, message: str) -> list[dict]:
    """Rows for a file whose worker timed out or died: the crystals already encoded keep their outcome; the one in
    progress (or the file, if none was reached) is a crash."""
    rows = [dict(m["row"]) for m in slot.partial if m["stage"] == "ours"]
    crashed = {"outcome": "crashed", "crash": crash, "type": crash, "message": message}
    last = slot.partial[-1] if slot.partial else None
    if last is not None and last["stage"] == "ours":  # ours finished; the references hung or died
        for side in ("pymatgen", "ase"):
            rows[-1].setdefault("references", {})[side] = {"error": f"{crash}: {message}"}
    else:
        source = last["source"] if last is not None else _relative(str(slot.path), folder)
        rows.append({"source": source, "ours": crashed})
    return rows


def survey(
    folder: Path,
    jobs: int = 1,
    timeout: float = 60.0,
    memory_limit_mb: int = 4096,
    compare: bool = True,
    verbose: bool = False,
    checkpoint: Callable[[list[dict]], None] | None = None,
    reuse: Path | None = None,
) -> list[dict]:
    """One row per crystal under ``folder``: ``{"source", "ours", "references", "declared"}`` (see module doc)."""
    from tokenization.structure_files import is_structure_file

    folder = folder.resolve()
    jobs = max(1, min(jobs, MAX_JOBS))
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and is_structure_file(p))
    # Small files first, so that most results come early and the few big ones (protein mmCIFs) come last.
    queue = sorted(paths, key=lambda p: p.stat().st_size)
    command = [
        sys.executable,
        "-m",
        "benchmarks.check_structure_files",
        str(folder),
        "--worker",
        "--memory-limit-mb",
        str(memory_limit_mb),
    ] + ([] if compare else ["--no-compare"])
    command += ["--reuse-references", str(reuse.resolve())] if reuse is not None else []
    selector = selectors.DefaultSelector()
    slots = [_Slot(command) for _ in range(min(jobs, len(paths)) or 1)]
    for slot in slots:
        slot.start(selector)
    pending = list(reversed(queue))
    results: dict[Path, list[dict]] = {}
    done = 0
    checkpoint_every = 100

    def feed(slot: _Slot) -> None:
        slot.path = None
        if pending:
            slot.submit(pending.pop(), timeout)

    def finish(slot: _Slot, rows: list[dict]) -> None:
        nonlocal done
        results[slot.path] = rows
        done += 1
        if checkpoint is not None and done % checkpoint_every == 0:
            checkpoint([row for path in paths for row in results.get(path, [])])
        if verbose:
            outcomes = ", ".join(row["ours"]["outcome"] for row in rows)
            seconds = sum(row["ours"].get("seconds", 0) + row.get("reference_seconds", 0) for row in rows)
            print(
                f"[{done}/{len(paths)}] {_relative(str(slot.path), folder)}: {outcomes} ({seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )

    for slot in slots:
        feed(slot)
    while any(slot.path is not None for slot in slots):
        for key, _ in selector.select(timeout=1.0):
            slot: _Slot = key.data
            chunk = os.read(key.fileobj.fileno(), 1 << 16)
            if not chunk:  # the worker died (hard crash or memory limit)
                rows = _crash_rows(slot, folder, "worker_died", f"worker exited with {slot.proc.wait()}")
                finish(slot, rows)
                slot.stop(selector)
                slot.start(selector)
                feed(slot)
                continue
            slot.buffer += chunk
            while b"\n" in slot.buffer:
                line, slot.buffer = slot.buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["stage"] in ("start", "ours"):
                    slot.partial.append(message)
                else:
                    finish(slot, message["rows"])
                    feed(slot)
        now = time.monotonic()
        for slot in slots:
            if slot.path is not None and (slot.cpu_seconds() > slot.deadline or now > slot.wall_deadline):
                finish(
                    slot, _crash_rows(slot, folder, "timeout", f"no result within {timeout:g} CPU seconds")
                )
                slot.stop(selector)
                slot.start(selector)
                feed(slot)
    for slot in slots:
        slot.proc.stdin.close()
        slot.stop(selector)
    return [row for path in paths for row in results.get(path, [])]


# -- classification and reports ---------------------------------------------------------------------------------
def classify(row: dict) -> list[str]:
    """The findings of one row: ``[]`` when there is nothing to examine."""
    ours = row["ours"]
    if ours["outcome"] == "crashed":
        return [f"crash ({ours['crash']})"]
    if ours["outcome"] == "refused":
        if ours["reason"] in CRASH_REASONS:
            return [f"crash (typed {ours['reason']})"]
        return [] if ours["reason"] in BASELINE_REASONS else [f"new check refuses ({ours['reason']})"]
    findings = []
    for name, side in (row.get("references") or {}).items():
        if "error" in side:
            continue
        # ASE keeps one species per site, so only pymatgen's composition is comparable for a disordered crystal.
        comparable = name == "pymatgen" or (ours["ordered"] and side["ordered"])
        if comparable and not _same_fractions(ours["fractions"], side["fractions"]):
            findings.append(f"composition differs from {name}")
        number = side["space_group"]
        if (
            number is not None
            and number != ours["space_group"]
            and side.get("ordered", True) == ours["ordered"]
        ):
            findings.append(f"space group differs from {name}")
    declared = row.get("declared") or {}
    if "fractions" in declared and not _same_fractions(ours["fractions"], declared["fractions"]):
        findings.append("hint: composition differs from _chemical_formula_sum")
    return findings


def summarize(rows: list[dict]) -> dict:
    outcomes = Counter(row["ours"]["outcome"] for row in rows)
    reasons = Counter(row["ours"]["reason"] for row in rows if row["ours"]["outcome"] == "refused")
    crashes = Counter(row["ours"]["crash"] for row in rows if row["ours"]["outcome"] == "crashed")
    findings = Counter(re.sub(r" \(.*\)$", "", f) for row in rows for f in classify(row))
    projects: dict[str, Counter] = {}
    for row in rows:
        project = row["source"].split("/", 1)[0]
        projects.setdefault(project, Counter())[row["ours"]["outcome"]] += 1
    return {
        "crystals": len(rows),
        "files": len({row["source"].split("#")[0].split("@")[0] for row in rows}),
        "outcomes": dict(outcomes),
        "refused_by_reason": dict(reasons.most_common()),
        "crashed_by_kind": dict(crashes),
        "findings": dict(findings.most_common()),
        "by_project": {p: dict(c) for p, c in sorted(projects.items())},
    }


def _side_text(side: dict | None) -> str:
    if not side:
        return ""
    if "error" in side:
        return "error: " + side["error"][:80].replace("|", "/")
    return f"{side['formula']} SG{side['space_group']}"


def markdown(summary: dict, rows: list[dict], list_all: bool = False) -> str:
    lines = [
        f"{summary['files']} files, {summary['crystals']} crystals.",
        "",
        "| outcome | crystals |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(summary["outcomes"].items())]
    lines += ["", "| refused: reason | crystals |", "|---|---:|"]
    lines += [f"| `{k}` | {v} |" for k, v in summary["refused_by_reason"].items()]
    lines += [
        "",
        "| project | " + " | ".join(("encoded", "refused", "crashed")) + " |",
        "|---|---:|---:|---:|",
    ]
    for project, counts in summary["by_project"].items():
        lines.append(
            f"| {project} | "
            + " | ".join(str(counts.get(k, 0)) for k in ("encoded", "refused", "crashed"))
            + " |"
        )
    lines += ["", "| finding | crystals |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in summary["findings"].items()]
    lines += ["", "| crystal | finding | ours | pymatgen | ASE | declared |", "|---|---|---|---|---|---|"]
    for row in rows:
        findings = classify(row)
        if not findings and not list_all:
            continue
        ours = row["ours"]
        if ours["outcome"] == "encoded":
            ours_text = f"{ours['formula']} SG{ours['space_group']}"
        elif ours["outcome"] == "refused":
            ours_text = f"refused `{ours['reason']}`"
        else:
            ours_text = f"crashed ({ours['crash']}: {ours['type']})"
        references = row.get("references") or {}
        declared = row.get("declared") or {}
        declared_text = " ".join(
            x
            for x in (
                f"SG{declared['space_group']}" if "space_group" in declared else "",
                declared.get("formula_sum", ""),
            )
            if x
        )
        lines.append(
            f"| `{row['source']}` | {'; '.join(findings) or ours['outcome']} | {ours_text} | "
            f"{_side_text(references.get('pymatgen'))} | {_side_text(references.get('ase'))} | {declared_text} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--jobs", type=int, default=1, help=f"worker processes (at most {MAX_JOBS})")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="CPU seconds per file before it counts as a crash"
    )
    parser.add_argument("--verbose", action="store_true", help="one progress line per file on stderr")
    parser.add_argument(
        "--memory-limit-mb", type=int, default=4096, help="address-space limit per worker (0: none)"
    )
    parser.add_argument("--no-compare", action="store_true", help="encode only; skip pymatgen and ASE")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument(
        "--list-all", action="store_true", help="list every crystal in the Markdown, not only findings"
    )
    parser.add_argument(
        "--reuse-references",
        type=Path,
        help="an earlier --json whose pymatgen/ASE results are reused (faster rerun)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.folder.resolve(), args.memory_limit_mb, not args.no_compare, args.reuse_references)
        return 0
    os.nice(10)  # a survey of thousands of files yields the CPU to everything else

    def write_json(rows: list[dict]) -> None:
        if args.json:
            args.json.write_text(json.dumps({"summary": summarize(rows), "rows": rows}, indent=1))

    rows = survey(
        args.folder,
        args.jobs,
        args.timeout,
        args.memory_limit_mb,
        not args.no_compare,
        args.verbose,
        write_json,
        args.reuse_references,
    )
    summary = summarize(rows)
    write_json(rows)
    text = markdown(summary, rows, args.list_all)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
