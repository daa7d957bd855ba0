"""How often each self-consistency check of ``tokenization.file_claims`` fires on real files.

    python -m benchmarks.claims_survey FOLDER [FOLDER ...] [--list error|note] [--json OUT.json]

Every structure file under the folders (CIF, mCIF, JSON, POSCAR/.vasp, extxyz) is read by the package's readers;
for each crystal built, the record of what its file says about itself is checked one field group at a time
(formula and Z, cell volume, density, multiplicities, Wyckoff letters, unlocated rows, counts), so that each group's
outcome is counted on its own: ``ok`` (within 3 s.u.), ``note`` (within the tolerance) or ``error`` (beyond it). It
also gives the distribution of the relative deviations, the basis of the tolerances in ``file_claims``.

The files are not part of the repository (their licences differ); the survey is run by hand. Measured on the test
files of cod-tools, pymatgen, ASE, gemmi, diffpy.structure and optimade-python-tools (``/work/survey/files``,
gathered for issue 21) and the repository's own fixtures: see ``benchmarks/RESULTS.md`` and the docstring of
``tokenization/file_claims.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

from tokenization.file_claims import (
    CLAIMS_PROPERTY,
    FileClaims,
    _built_amounts,
    _formula_units,
    _is_cell_formula,
    check_file_claims,
)
from tokenization.scope_errors import ScopeError
from tokenization.structure_io import _file_crystals

SUFFIXES = (".cif", ".mcif", ".json", ".vasp", ".poscar", ".extxyz", ".xyz")

#: Field groups checked one at a time: name -> the FileClaims fields that make the group.
GROUPS = {
    "unlocated rows": ("unlocated",),
    "formula x Z": ("formula", "formula_text", "formula_resolution", "formula_units", "formula_is_ratio"),
    "cell volume": ("cell_volume", "cell_parameters"),
    "density": ("density", "cell_parameters"),
    "multiplicity": ("sites", "n_operations", "rhombohedral_axes"),
    "Wyckoff letter": ("sites", "space_group_number", "n_operations", "rhombohedral_axes"),
    "OPTIMADE counts": ("nsites", "elements", "nelements", "implicit_atoms"),
    "POSCAR counts": ("counts", "species_names", "positions_listed"),
    "extxyz frame": ("lattice", "pbc", "columns_declared", "columns_found"),
}
_PRESENT = {
    "unlocated rows": lambda c: bool(c.unlocated),
    "formula x Z": lambda c: bool(c.formula),
    "cell volume": lambda c: c.cell_volume is not None,
    "density": lambda c: c.density is not None,
    "multiplicity": lambda c: any(s.multiplicity for s in c.sites),
    "Wyckoff letter": lambda c: any(s.wyckoff for s in c.sites) and c.space_group_number is not None,
    "OPTIMADE counts": lambda c: c.nsites is not None or c.elements is not None or c.implicit_atoms,
    "POSCAR counts": lambda c: c.counts is not None,
    "extxyz frame": lambda c: c.lattice is not None or c.columns_declared is not None,
}


def _only(claims: FileClaims, group: str) -> FileClaims:
    fields = GROUPS[group]
    kept = {name: getattr(claims, name) for name in fields}
    if group == "multiplicity":
        kept["sites"] = tuple(dataclasses.replace(s, wyckoff=None) for s in claims.sites)
    if group == "Wyckoff letter":
        kept["sites"] = tuple(dataclasses.replace(s, multiplicity=None) for s in claims.sites)
    return FileClaims(claims.file_format, **kept)


def _deviations(structure, claims: FileClaims) -> dict[str, float]:
    """Relative deviations of the stated numbers from the built crystal (no s.u. band applied)."""
    out: dict[str, float] = {}
    volume = float(structure.lattice.volume)
    if claims.cell_volume is not None and claims.cell_volume.value > 0:
        out["cell volume"] = abs(volume - claims.cell_volume.value) / claims.cell_volume.value
    amounts = _built_amounts(structure)
    if claims.density is not None and claims.density.value > 0:
        from pymatgen.core import Element

        mass = sum(float(Element(e).atomic_mass) * n for e, n in amounts.items())
        out["density"] = abs(mass * 1.66053906660 / volume - claims.density.value) / claims.density.value
    if claims.formula:
        units = _formula_units(amounts, claims.formula)
        z = claims.formula_units.value if claims.formula_units is not None else None
        if claims.formula_is_ratio or not z:
            scale = units if claims.formula_is_ratio else max(round(units), 1)
        else:
            scale = 1.0 if _is_cell_formula(claims.formula, z, units) else z
        worst = 0.0
        for element, amount in claims.formula.items():
            declared = amount * scale
            worst = max(worst, abs(amounts.get(element, 0.0) - declared) / declared if declared else 0.0)
        out["formula x Z"] = worst
    return out


def survey(folders: list[Path], stream=None, max_bytes: int | None = None) -> dict:
    """The counts, deviation quantiles and listed notes and errors over every file under ``folders``; each listed
    row is also written to ``stream`` (a text file) as soon as it is found, with each file's reading time."""
    import time

    files = sorted(p for folder in folders for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    skipped = [p for p in files if max_bytes is not None and p.stat().st_size > max_bytes]
    files = [p for p in files if p not in skipped]
    counts: dict[str, Counter] = defaultdict(Counter)
    listed: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    deviations: dict[str, list[float]] = defaultdict(list)
    crystals = read_failures = 0
    for path in files:
        start = time.perf_counter()
        try:
            entries = _file_crystals(path)
        except ScopeError:
            read_failures += 1
            continue
        if stream is not None:
            print(f"read\t{time.perf_counter() - start:.2f}s\t{path}", file=stream, flush=True)
        for name, structure in entries:
            if isinstance(structure, ScopeError):
                read_failures += 1
                continue
            claims = structure.properties.pop(CLAIMS_PROPERTY, None)
            if claims is None:
                continue
            crystals += 1
            if stream is not None:
                groups = [group for group, present in _PRESENT.items() if present(claims)]
                print(f"checked\t{name}\t{','.join(groups)}", file=stream, flush=True)
            for group, present in _PRESENT.items():
                if not present(claims):
                    continue
                counts[group]["files"] += 1
                try:
                    notes = check_file_claims(structure, _only(claims, group), name)
                except ScopeError as exc:
                    counts[group]["error"] += 1
                    listed[group].append(("error", name, exc.message))
                    if stream is not None:
                        print(f"error\t{group}\t{name}\t{exc.message}", file=stream, flush=True)
                    continue
                if notes:
                    counts[group]["note"] += 1
                    listed[group].append(("note", name, notes[0]))
                    if stream is not None:
                        print(f"note\t{group}\t{name}\t{notes[0]}", file=stream, flush=True)
                else:
                    counts[group]["ok"] += 1
            for group, value in _deviations(structure, claims).items():
                if math.isfinite(value):
                    deviations[group].append(value)
    quantiles = {}
    for group, values in deviations.items():
        values.sort()
        quantiles[group] = {
            q: values[min(len(values) - 1, int(q * len(values)))] for q in (0.5, 0.9, 0.95, 0.99, 1.0)
        }
    return {
        "files": len(files),
        "crystals checked": crystals,
        "not read (other reasons)": read_failures,
        "skipped (larger than --max-bytes)": len(skipped),
        "counts": {group: dict(counter) for group, counter in counts.items()},
        "relative deviation quantiles": quantiles,
        "listed": {group: rows for group, rows in listed.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--list", choices=("error", "note"), action="append", default=[])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--progress", action="store_true", help="write each file and each finding to stderr")
    parser.add_argument("--max-bytes", type=int, help="skip files larger than this (macromolecular CIFs)")
    args = parser.parse_args(argv)
    result = survey(args.folders, sys.stderr if args.progress else None, args.max_bytes)
    print(f"{result['files']} files, {result['crystals checked']} crystals checked, "
          f"{result['not read (other reasons)']} not read, {result['skipped (larger than --max-bytes)']} skipped")  # fmt: skip
    print(f"{'check':18} {'present':>8} {'ok':>6} {'note':>6} {'error':>6}")
    for group, counter in result["counts"].items():
        print(f"{group:18} {counter.get('files', 0):8} {counter.get('ok', 0):6} {counter.get('note', 0):6} "
              f"{counter.get('error', 0):6}")  # fmt: skip
    for group, quantiles in result["relative deviation quantiles"].items():
        print(f"{group:18} relative deviation " + " ".join(f"q{q:g}={v:.2e}" for q, v in quantiles.items()))
    for group, rows in result["listed"].items():
        for outcome, name, message in rows:
            if outcome in args.list:
                print(f"{outcome}\t{group}\t{name}\t{message}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
