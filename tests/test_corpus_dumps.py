"""`cloud-crystal corpus --dump`: Materials Project and Alexandria-style bulk dumps made from the bundled structures.

The dumps are written with pymatgen itself (`ComputedStructureEntry.as_dict()`, `ComputedEntry.as_dict()`), in the
layouts the databases publish: MP summary documents (`material_id`, `structure`) as a JSON list, Alexandria's
`{"entries": [...]}` with `data.mat_id`, and JSONL; compressed with gzip, bz2 and xz.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pyarrow.parquet as pq
import pytest

from dataset_builders.corpus import CorpusStore, build_corpus
from tokenization import structure_to_scope


@pytest.fixture(scope="module")
def structures():
    from pymatgen.core import Structure

    from dataset_builders import load_materials_project

    table = load_materials_project().select(range(60)).select_columns(["material_id", "structure"])
    return [(row["material_id"], Structure.from_dict(json.loads(row["structure"]))) for row in table]


@pytest.fixture(scope="module")
def dumps(structures, tmp_path_factory):
    from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

    folder = tmp_path_factory.mktemp("dumps")
    mp = [
        {"material_id": mid, "formula_pretty": s.composition.reduced_formula, "structure": s.as_dict()}
        for mid, s in structures[:30]
    ]
    with gzip.open(folder / "mp_summary.json.gz", "wt") as handle:
        json.dump(mp, handle)
    # Alexandria: 25 new crystals and 5 that MP has too (same crystal, its own id), plus an entry without a structure.
    alexandria = [
        ComputedStructureEntry(s, energy=-1.0 * i, data={"mat_id": f"agm{i:09d}"}).as_dict()
        for i, (_, s) in enumerate(structures[25:55])
    ]
    alexandria.append(ComputedEntry("Fe2O3", -10.0, data={"mat_id": "agm-no-structure"}).as_dict())
    with bz2.open(folder / "alexandria_000.json.bz2", "wt") as handle:
        json.dump({"@module": "pymatgen.entries", "entries": alexandria}, handle)
    with lzma.open(folder / "extra.jsonl.xz", "wt") as handle:
        for mid, s in structures[55:60]:
            handle.write(json.dumps({"entry_id": f"{mid}-GGA", "structure": s.as_dict()}) + "\n")
        handle.write("{not json\n")
    return folder


def _rows(folder):
    return [
        row for shard in sorted(folder.glob("train-*.parquet")) for row in pq.read_table(shard).to_pylist()
    ]


def test_mp_and_alexandria_dumps(dumps, structures, tmp_path):
    files = [dumps / "mp_summary.json.gz", dumps / "alexandria_000.json.bz2", dumps / "extra.jsonl.xz"]
    summary = build_corpus(files=files, output_dir=tmp_path, page_size=16, progress=False)
    assert summary.entries == 30 + 31 + 6 and summary.encoded == 65 and summary.failed == 2
    records = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert {record["source"] for record in records} == {
        f"{files[1]}:agm-no-structure",
        f"{files[2]}:line6",
    }
    assert {record["reason"] for record in records} == {"parse_error"}

    rows = _rows(tmp_path)
    by_scope = {row["scope"]: row for row in rows}
    assert sum(row["count"] for row in rows) == 65
    for index, (material_id, structure) in enumerate(structures):
        row = by_scope[structure_to_scope(structure, "v2")]
        if index < 30:
            assert f"{files[0]}:{material_id}" in row["sources"]
        if 25 <= index < 55:
            assert f"{files[1]}:agm{index - 25:09d}" in row["sources"]
        if index >= 55:
            assert f"{files[2]}:{material_id}-GGA" in row["sources"]
    # The five crystals in both MP and Alexandria are one row each, with both ids.
    both = [row for row in rows if any(s.startswith(str(files[1])) for s in row["sources"])
            and any(s.startswith(str(files[0])) for s in row["sources"])]  # fmt: skip
    assert len(both) >= 5
    card = (tmp_path / "README.md").read_text()
    assert "| files |" in card and "not stated by the provider" in card


def test_dump_build_resumes_after_an_interruption(dumps, tmp_path, monkeypatch):
    files = [dumps / "alexandria_000.json.bz2", dumps / "mp_summary.json.gz"]
    reference = build_corpus(files=files, output_dir=tmp_path / "reference", page_size=8, progress=False)
    original = CorpusStore.commit_page
    calls = {"n": 0}

    def crash(self, source, page, results):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, source, page, results)

    monkeypatch.setattr(CorpusStore, "commit_page", crash)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(files=files, output_dir=tmp_path / "run", page_size=8, progress=False)
    monkeypatch.setattr(CorpusStore, "commit_page", original)
    resumed = build_corpus(files=files, output_dir=tmp_path / "run", page_size=8, progress=False)
    assert (resumed.entries, resumed.unique_strings) == (reference.entries, reference.unique_strings)
    assert _rows(tmp_path / "run") == _rows(tmp_path / "reference")


def test_structure_files_and_folders(tmp_path):
    """The sources `cloud-crystal encode` takes: here the bundled example folder of CIF and POSCAR files."""
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "dataset_builders" / "data" / "examples"
    summary = build_corpus(files=[examples], output_dir=tmp_path, progress=False)
    n_files = len(list(examples.glob("*.cif")))  # ten ordered crystals and two disordered ones
    assert summary.failed == 0 and summary.unique_strings == summary.encoded == n_files
    assert all(row["sources"][0].startswith(f"{examples}:") for row in _rows(tmp_path))
