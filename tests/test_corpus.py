"""`cloud-crystal corpus` against the OPTIMADE reference server (optimade package, mongomock) over real HTTP on
127.0.0.1, paged with the official client.

Two servers: A serves the package's test structures, 160 bundled Materials Project structures (written with the
package's own `from_pymatgen`), two re-descriptions of one of them (a supercell and a reversed site order: the same
crystal) and one entry for each odd case of the OPTIMADE spec; B serves 30 of A's MP structures under the same ids.
The oracle for the strings is the direct path: `structure_to_scope` on the bundled pymatgen dicts, no OPTIMADE.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from optimade_server import OptimadeTestServer, materials_project_documents, package_test_documents

from dataset_builders.corpus import CorpusResumeError, CorpusStore, build_corpus
from tokenization import structure_to_scope

N_MP = 160
N_MP_B = 30
#: Partially occupied sites follow the package's disorder policy (tokenization's), whatever it is at the time.
DISORDERED = ("odd-partial-vacancy", "odd-alloy")
ODD_REASONS = {
    "odd-x": "unknown_species",
    "odd-vacancy-site": "vacancy_site",
    "odd-assemblies": "site_assemblies",
    "odd-attached": "attached_atoms",
    "odd-slab": "non_periodic",
    "odd-molecule": "non_periodic",
    "odd-no-lattice": "parse_error",
}


def _odd_documents(template: dict) -> list[dict]:
    """One document per odd case, each a modified copy of an ordered MP document."""
    documents = []

    def variant(task_id: str) -> dict:
        document = copy.deepcopy(template)
        document["task_id"] = task_id
        documents.append(document)
        return document

    first = template["species"][0]["name"]
    variant("odd-x")["species"][0].update(chemical_symbols=["X"], concentration=[1.0])
    variant("odd-vacancy-site")["species"][0].update(chemical_symbols=["vacancy"], concentration=[1.0])
    variant("odd-partial-vacancy")["species"][0].update(
        chemical_symbols=[first, "vacancy"], concentration=[0.75, 0.25]
    )
    other = "Co" if first != "Co" else "Ni"
    variant("odd-alloy")["species"][0].update(chemical_symbols=[first, other], concentration=[0.5, 0.5])
    assembly = variant("odd-assemblies")
    assembly["assemblies"] = [{"sites_in_groups": [[0], [1]], "group_probabilities": [0.5, 0.5]}]
    variant("odd-attached")["species"][0].update(attached=["H"], nattached=[3])
    variant("odd-slab")["dimension_types"] = [1, 1, 0]
    molecule = variant("odd-molecule")
    molecule["dimension_types"] = [0, 0, 0]
    molecule["nperiodic_dimensions"] = 0
    variant("odd-no-lattice").pop("lattice_vectors")
    return documents


def _same_crystal_documents(structure, task_id: str) -> list[dict]:
    from optimade_server import structure_document
    from pymatgen.core import Structure

    supercell = structure * (2, 1, 1)
    reversed_sites = Structure.from_sites(list(reversed(structure.sites)))
    return [
        structure_document(supercell, f"{task_id}-supercell"),
        structure_document(reversed_sites, f"{task_id}-reversed"),
    ]


@pytest.fixture(scope="module")
def mp_structures():
    from pymatgen.core import Structure

    from dataset_builders import load_materials_project

    table = load_materials_project().select(range(N_MP)).select_columns(["material_id", "structure"])
    return {row["material_id"]: Structure.from_dict(json.loads(row["structure"])) for row in table}


@pytest.fixture(scope="module")
def servers(mp_structures):
    mp_documents = materials_project_documents(N_MP)
    first_id, first = next(iter(mp_structures.items()))
    documents_a = (
        package_test_documents()
        + mp_documents
        + _same_crystal_documents(first, first_id)
        + _odd_documents(mp_documents[0])
    )
    documents_b = copy.deepcopy(mp_documents[:N_MP_B])
    a = OptimadeTestServer(documents_a, license="https://spdx.org/licenses/CC-BY-4.0")
    b = OptimadeTestServer(documents_b)
    a.launch(), b.launch()
    a.wait_ready(), b.wait_ready()
    yield {"a": a, "b": b, "documents_a": documents_a, "documents_b": documents_b, "first_id": first_id}
    a.stop()
    b.stop()


def _rows(folder: Path) -> list[dict]:
    rows = []
    for shard in sorted(folder.glob("train-*.parquet")):
        rows.extend(pq.read_table(shard).to_pylist())
    return rows


@pytest.fixture(scope="module")
def built(servers, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    summary = build_corpus(
        optimade=[servers["a"].base_url, servers["b"].base_url + "/"],
        output_dir=folder,
        page_size=25,
        shard_size=64,
        progress=False,
    )
    return summary, folder


def test_counts_failures_and_deduplication(servers, built, mp_structures):
    summary, folder = built
    a, b = servers["a"].base_url, servers["b"].base_url
    assert summary.entries == len(servers["documents_a"]) + len(servers["documents_b"])
    assert summary.entries == summary.encoded + summary.failed and summary.repeated == 0

    # One failure record per skipped entry, in the one shape, each odd case with its own reason.
    records = [json.loads(line) for line in (folder / "failures.jsonl").read_text().splitlines()]
    assert len(records) == summary.failed == sum(summary.failures_by_reason.values())
    assert all(set(record) == {"source", "reason", "type", "message"} for record in records)
    by_source = {record["source"]: record["reason"] for record in records}
    assert len(by_source) == len(records)
    for task_id, reason in ODD_REASONS.items():
        assert by_source[f"{a}:{task_id}"] == reason, task_id
    # Disorder: the corpus does what the package's policy does with the same structure.
    from optimade_server import ALIASES  # noqa: F401  (the documents are in the database layout)

    from tokenization import ScopeError
    from tokenization.optimade_structure import optimade_to_structure

    rows = _rows(folder)
    all_sources = {source: row for row in rows for source in row["sources"]}
    for document in servers["documents_a"]:
        if document["task_id"] not in DISORDERED:
            continue
        key = f"{a}:{document['task_id']}"
        structure = optimade_to_structure(document, key)
        try:
            expected = structure_to_scope(structure, "v2", source=key)
        except ScopeError as error:
            assert by_source[key] == error.reason
        else:
            assert all_sources[key]["scope"] == expected
    # The package's test structures are random cells: most hold atoms on top of each other, and say so.
    assert summary.failures_by_reason["overlapping_sites"] >= 10

    # The strings are those of the direct path, and every MP structure is there with its provenance.
    assert len(rows) == summary.unique_strings and sum(row["count"] for row in rows) == summary.encoded
    by_scope = {row["scope"]: row for row in rows}
    assert len(by_scope) == len(rows)
    for index, (material_id, structure) in enumerate(mp_structures.items()):
        row = by_scope[structure_to_scope(structure, "v2")]
        assert f"{a}:{material_id}" in row["sources"]
        assert (f"{b}:{material_id}" in row["sources"]) == (index < N_MP_B)
        assert row["count"] == len(row["sources"])
        assert row["space_group"] == int(row["scope"].split()[0][2:])
        assert row["formula"] == structure.composition.reduced_formula
    # A supercell and a reordered copy are the same crystal: one row, three entries from A, one more from B.
    first = servers["first_id"]
    row = by_scope[structure_to_scope(mp_structures[first], "v2")]
    assert row["sources"][:1] == [f"{a}:{first}"]
    assert {f"{a}:{first}-supercell", f"{a}:{first}-reversed", f"{b}:{first}"} <= set(row["sources"])
    assert (
        row["id"] == first
        and row["url"] == f"{a}/v1/structures/{first}"
        and row["n_sites"] == len(mp_structures[first])
    )
    # Fixed-size shards named for the Hub's split detection.
    assert summary.shards == [
        f"train-{i:05d}-of-{len(summary.shards):05d}.parquet" for i in range(len(summary.shards))
    ]
    assert len(summary.shards) == -(-summary.unique_strings // 64)
    assert [len(pq.read_table(folder / name)) for name in summary.shards][:-1] == [64] * (
        len(summary.shards) - 1
    )


def test_card_lists_providers_licences_and_counts(servers, built):
    summary, folder = built
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n")  # B states no licence, so the corpus has no single one
    assert (
        f"| {servers['a'].base_url} | OPTIMADE | CLOUD test provider | {len(servers['documents_a'])} | CC-BY-4.0 |"
        in card
    )
    assert (
        f"| {servers['b'].base_url} | OPTIMADE | CLOUD test provider | {N_MP_B} | not stated by the provider |"
        in card
    )
    assert f"| distinct strings (rows) | {summary.unique_strings:,} |" in card
    assert "| `site_assemblies` | 1 |" in card and 'path: "train-*.parquet"' in card


def test_adapter_agrees_with_the_optimade_package_on_ordered_entries(servers):
    import numpy as np
    from optimade.adapters.structures.pymatgen import get_pymatgen
    from optimade.client import OptimadeClient
    from optimade.models import StructureResource

    from tokenization.optimade_structure import optimade_to_structure

    base = servers["b"].base_url
    client = OptimadeClient(base_urls=[base], use_async=False, silent=True, max_results_per_provider=0)
    entries = client.get_one("structures", "", base, page_limit=N_MP_B, paginate=False)[base].data
    assert len(entries) == N_MP_B
    for entry in entries:
        ours = optimade_to_structure(entry, entry["id"])
        theirs = get_pymatgen(StructureResource(**entry))
        assert [str(s) for s in ours.species] == [str(s) for s in theirs.species]
        np.testing.assert_allclose(ours.lattice.matrix, theirs.lattice.matrix)
        np.testing.assert_allclose(ours.frac_coords, theirs.frac_coords, atol=1e-12)


def test_filter_is_applied_by_the_provider(servers, tmp_path):
    summary = build_corpus(
        optimade=[servers["b"].base_url],
        output_dir=tmp_path,
        filter="nelements=2",
        page_size=7,
        progress=False,
    )
    expected = [doc for doc in servers["documents_b"] if doc["nelements"] == 2]
    assert 0 < summary.entries == len(expected) < N_MP_B
    assert all(len(row["formula"]) and row["count"] == 1 for row in _rows(tmp_path))
    with pytest.raises(ValueError, match="not an OPTIMADE filter"):
        build_corpus(
            optimade=[servers["b"].base_url],
            output_dir=tmp_path / "bad",
            filter="nelements ==",
            progress=False,
        )


def test_two_processes_build_the_same_corpus(servers, built, tmp_path):
    summary, folder = built
    again = build_corpus(
        optimade=[servers["a"].base_url, servers["b"].base_url],
        output_dir=tmp_path,
        page_size=25,
        shard_size=64,
        num_proc=2,
        progress=False,
    )
    assert again.shards == summary.shards
    assert _rows(tmp_path) == _rows(folder)
    assert (tmp_path / "failures.jsonl").read_text() == (folder / "failures.jsonl").read_text()


def test_interrupted_build_resumes_without_loss_or_duplicates(servers, built, tmp_path, monkeypatch):
    summary, folder = built
    original = CorpusStore.commit_page
    calls = {"n": 0}

    def crash_on_fourth_page(self, source, page, results):
        calls["n"] += 1
        if calls["n"] == 4:
            # Half of the page is written, then the process dies inside the transaction.
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute("INSERT INTO entries (key) VALUES ('half-written')")
            raise KeyboardInterrupt
        return original(self, source, page, results)

    monkeypatch.setattr(CorpusStore, "commit_page", crash_on_fourth_page)
    kwargs = dict(
        optimade=[servers["a"].base_url, servers["b"].base_url],
        output_dir=tmp_path,
        page_size=25,
        shard_size=64,
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        build_corpus(**kwargs)
    assert not list(tmp_path.glob("train-*.parquet"))
    monkeypatch.setattr(CorpusStore, "commit_page", original)
    resumed = build_corpus(**kwargs)
    assert (resumed.entries, resumed.unique_strings, resumed.failed) == (
        summary.entries,
        summary.unique_strings,
        summary.failed,
    )
    assert _rows(tmp_path) == _rows(folder)
    assert (tmp_path / "failures.jsonl").read_text() == (folder / "failures.jsonl").read_text()
    # A finished build run again reads nothing new and writes the same files.
    assert build_corpus(**kwargs).entries == summary.entries and _rows(tmp_path) == _rows(folder)
    # A lost shard is written again.
    (tmp_path / summary.shards[1]).unlink()
    build_corpus(**kwargs)
    assert _rows(tmp_path) == _rows(folder)


def test_resume_refuses_other_settings(servers, built):
    summary, folder = built
    with pytest.raises(CorpusResumeError, match="page_size: 25 before, 50 now"):
        build_corpus(
            optimade=[servers["a"].base_url, servers["b"].base_url],
            output_dir=folder,
            page_size=50,
            shard_size=64,
            progress=False,
        )


def test_cli_corpus(servers, tmp_path, capsys):
    from modeling_cloud.cli import main

    code = main(
        ["corpus", "--optimade", servers["b"].base_url, "--output-dir", str(tmp_path), "--page-size", "10",
         "--scope-version", "v1", "--limit", "12"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 12 == summary["encoded"]
    row = _rows(tmp_path)[0]
    assert row["scope_v2"].startswith("SG") and " | " in row["scope"]  # v1 in `scope`, the key beside it
    assert main(["corpus", "--output-dir", str(tmp_path / "none")]) == 2
    assert main(["corpus", "--optimade", "http://127.0.0.1:9", "--output-dir", str(tmp_path / "down")]) == 1
    assert "run the same command again to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(servers, built, tmp_path):
    """A real kill (SIGKILL) of `cloud-crystal corpus` between or inside page transactions, then a rerun."""
    import sqlite3
    import subprocess
    import time

    summary, folder = built
    command = [sys.executable, "-m", "modeling_cloud.cli", "corpus", "--optimade", servers["a"].base_url,
               servers["b"].base_url, "--output-dir", str(tmp_path), "--page-size", "25", "--shard-size", "64"]  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / ".corpus_state.sqlite"
    deadline = time.monotonic() + 120
    pages = 0
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            try:
                with sqlite3.connect(state, timeout=0.1) as connection:
                    pages = connection.execute("SELECT COALESCE(SUM(pages), 0) FROM cursors").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        if pages >= 3:
            process.kill()
            break
        time.sleep(0.02)
    process.wait()
    assert pages >= 3 and process.returncode == -9, "the build finished before it could be killed"
    assert subprocess.run(command, cwd=repo, capture_output=True).returncode == 0
    assert _rows(tmp_path) == _rows(folder)
    assert (tmp_path / "failures.jsonl").read_text() == (folder / "failures.jsonl").read_text()
