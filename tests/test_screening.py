"""Screening (issue 23, points 1-3): `predict --output` rows, formats, metadata, ids, failures, resume after SIGKILL,
`--num-proc`, inputs at scale (folders, tables, dumps, corpus shards), embeddings and similar-crystal search."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers

from dataset_builders import load_materials_project
from modeling_cloud import CloudConfig, CloudDebyeModel, CloudForPropertyRegression
from modeling_cloud.cli import load_property_pipeline, main
from modeling_cloud.screening import (
    ResumeMismatchError,
    embed_to_file,
    iter_inputs,
    pooled_embedding,
    predict_to_file,
    read_metadata,
    read_rows,
)
from tokenization import CloudTokenizerFast

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "dataset_builders" / "data" / "examples"
FIXTURES = Path(__file__).parent / "fixtures"
TINY = dict(vocab_size=564, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
TARGET = dict(target_names=["formation_energy_per_atom"], target_units=["eV/atom"], target_means=[-1.0],
              target_stds=[0.5])  # fmt: skip
VALUE_COLUMNS = ("formation_energy_per_atom",)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _spread(model: torch.nn.Module, seed: int) -> None:
    """Random weights far from BERT's small initialisation, so that crystals get clearly different embeddings."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    CloudTokenizerFast.from_scope_version("v1").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = CloudForPropertyRegression(CloudConfig(scope_version="v1", **TINY, **TARGET))
    _spread(model, 0)
    return _save(model, tmp_path_factory.mktemp("model") / "fe")


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory) -> Path:
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        member = CloudForPropertyRegression(CloudConfig(scope_version="v1", **TINY, **TARGET))
        _spread(member, seed)
        members.append(member)
    return _save(CloudForPropertyRegression.from_members(members), tmp_path_factory.mktemp("ensemble") / "fe")


@pytest.fixture(scope="module")
def mp_table():
    return load_materials_project()


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory, mp_table) -> list[str]:
    """A folder of CIFs (one with two data blocks), an MP Parquet slice with material_id, a JSONL file, bad files."""
    folder = tmp_path_factory.mktemp("inputs")
    cifs = folder / "cifs" / "nested"
    cifs.mkdir(parents=True)
    for name in ("NaCl.cif", "Si.cif", "MgO.cif"):
        (cifs / name).write_text((EXAMPLES / name).read_text())
    (cifs / "two.cif").write_text(
        (EXAMPLES / "Cu.cif").read_text() + "\n" + (EXAMPLES / "LiF.cif").read_text()
    )
    (cifs / "broken.cif").write_text("data_x\n_cell_length_a 4\n")
    table = folder / "mp.parquet"
    pq.write_table(
        mp_table.select(range(40)).data.table.select(["material_id", "structure", "formula"]), table
    )
    jsonl = folder / "records.jsonl"
    records = [{"structure": json.loads(mp_table[i]["structure"])} for i in (40, 41)]
    jsonl.write_text(json.dumps(records[0]) + "\n{not json\n" + json.dumps(records[1]) + "\n")
    return [str(folder / "cifs"), str(table), str(jsonl), str(folder / "missing.cif")]


def _assert_same_rows(rows: list[dict], reference: list[dict], tolerance: float = 1e-6) -> None:
    assert len(rows) == len(reference)
    for row, expected in zip(rows, reference, strict=True):
        assert row.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, float) and value is not None and row[key] is not None:
                assert math.isclose(row[key], value, rel_tol=tolerance, abs_tol=tolerance), (
                    row["source"],
                    key,
                )
            elif isinstance(value, list):
                np.testing.assert_allclose(row[key], value, atol=tolerance, rtol=tolerance)
            else:
                assert row[key] == value, (row["source"], key)


# -- rows, names, failures, formats, metadata --------------------------------------------------------------------
def test_predict_output_rows_names_failures_and_formats(model_dir, small_inputs, tmp_path, capsys):
    parquet = tmp_path / "out.parquet"
    argv = ["predict", "--model", str(model_dir), *small_inputs, "--chunk-size", "16"]
    assert main([*argv, "--output", str(parquet)]) == 1  # some inputs fail
    rows = read_rows(parquet)
    folder, table, jsonl, missing = small_inputs
    nested = Path(folder) / "nested"
    expected_sources = [
        str(nested / "MgO.cif"), str(nested / "NaCl.cif"), str(nested / "Si.cif"), str(nested / "broken.cif"),
        f"{nested / 'two.cif'}#Cu", f"{nested / 'two.cif'}#LiF",
    ]  # fmt: skip
    sources = [row["source"] for row in rows]
    assert sources[:6] == expected_sources  # folders: searched recursively, files in path order
    assert sources[6:46] == [load_materials_project()[i]["material_id"] for i in range(40)]  # the table's ids
    assert sources[46:] == [f"{jsonl}:1", f"{jsonl}:2", f"{jsonl}:3", missing]  # JSON Lines keep path:LINE
    # One row per crystal; a failure is a row with its reason, type and message, and no values.
    by_source = {row["source"]: row for row in rows}
    for bad in (str(nested / "broken.cif"), f"{jsonl}:2", missing):
        row = by_source[bad]
        assert row["error_reason"] == "parse_error" and row["error_type"] and row["error_message"]
        assert row["formation_energy_per_atom"] is None and row["scope"] is None
    good = [row for row in rows if row["error_reason"] is None]
    assert len(good) == len(rows) - 3
    nacl = by_source[str(nested / "NaCl.cif")]
    assert (nacl["formula"], nacl["space_group"], nacl["n_atoms"]) == ("NaCl", 225, 8.0)
    assert by_source[f"{nested / 'two.cif'}#Cu"]["space_group"] == 225
    # The same numbers as the pipeline itself.
    direct = load_property_pipeline(str(model_dir))(str(EXAMPLES / "NaCl.cif"))
    assert nacl["scope"] == direct["scope"]
    assert nacl["formation_energy_per_atom"] == pytest.approx(direct["properties"][0]["value"], abs=1e-6)

    # Units, model and versions in the schema metadata (and each field's unit).
    metadata = read_metadata(parquet)
    assert metadata["model"] == str(model_dir) and metadata["rows"] == len(rows) and metadata["failed"] == 3
    assert metadata["columns"]["formation_energy_per_atom"] == "eV/atom"
    assert metadata["versions"]["transformers"] == transformers.__version__
    assert metadata["run"]["inputs"] == small_inputs and len(metadata["run"]["model_sha256"]) == 64
    assert pq.read_schema(parquet).field("formation_energy_per_atom").metadata == {b"unit": b"eV/atom"}
    assert not (tmp_path / "out.parquet.parts").exists()

    # JSON Lines and CSV hold the same rows, with the metadata beside them.
    for suffix in ("jsonl", "csv"):
        other = tmp_path / f"out.{suffix}"
        assert main([*argv, "--output", str(other)]) == 1
        assert read_metadata(other)["columns"] == metadata["columns"]
        assert (tmp_path / f"out.{suffix}.meta.json").is_file()
        _assert_same_rows(read_rows(other), rows)
    capsys.readouterr()


def test_predict_stdout_rows_keep_their_shape(model_dir, capsys):
    assert main(["predict", "--model", str(model_dir), str(EXAMPLES / "Si.cif"), "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(row) == {"source", "scope", "predictions", "units"}
    assert main(["predict", "--model", str(model_dir), str(EXAMPLES / "Si.cif"), "--num-proc", "2"]) == 2
    assert "go with --output" in capsys.readouterr().err


def test_id_column_and_repeated_ids(model_dir, mp_table, tmp_path):
    frame = mp_table.select(range(6)).to_pandas()[["material_id", "structure"]]
    frame["name"] = ["a", "b", "a", "c", "b", "a"]  # repeated names: rows are still one per input, in order
    table = tmp_path / "named.csv"
    frame.to_csv(table, index=False)
    output = tmp_path / "named.parquet"
    summary = predict_to_file(model_dir, [table], output, id_column="name", progress=False)
    assert summary.rows == 6 and summary.failed == 0
    assert [row["source"] for row in read_rows(output)] == ["a", "b", "a", "c", "b", "a"]
    default = tmp_path / "default.jsonl"
    predict_to_file(model_dir, [table], default, progress=False)
    assert [row["source"] for row in read_rows(default)] == list(frame["material_id"])
    no_ids = tmp_path / "no_ids.csv"
    frame[["structure"]].to_csv(no_ids, index=False)
    assert [item.source for item in iter_inputs([no_ids])] == [f"{no_ids}#{i}" for i in range(6)]
    (bad,) = list(iter_inputs([table], id_column="nope"))  # the whole table fails, as one row naming it
    assert isinstance(bad.item, ValueError) and "no id column 'nope'" in str(bad.item)


def test_debye_columns_per_temperature(tmp_path):
    torch.manual_seed(0)
    folder = _save(CloudDebyeModel(CloudConfig(scope_version="v1", **TINY)), tmp_path / "debye")
    output = tmp_path / "debye.parquet"
    predict_to_file(folder, [EXAMPLES / "MgO.cif"], output, temperatures=[100, 298.15], progress=False)
    (row,) = read_rows(output)
    assert {"theta_debye", "heat_capacity@100K", "heat_capacity@298.15K", "entropy@100K", "basis"} <= set(row)
    assert 0 < row["heat_capacity@100K"] < row["heat_capacity@298.15K"] and row["basis"] == "formula_unit"
    assert read_metadata(output)["columns"]["heat_capacity@100K"] == "J/(K·mol-fu)"


def test_ensemble_columns_carry_std(ensemble_dir, tmp_path):
    output = tmp_path / "ensemble.csv"
    predict_to_file(ensemble_dir, [EXAMPLES / "NaCl.cif", EXAMPLES / "Si.cif"], output, progress=False)
    rows = read_rows(output)
    direct = load_property_pipeline(str(ensemble_dir))([str(EXAMPLES / "NaCl.cif")])[0]["properties"][0]
    assert rows[0]["formation_energy_per_atom"] == pytest.approx(direct["value"], abs=1e-6)
    assert rows[0]["formation_energy_per_atom_std"] == pytest.approx(direct["std"], abs=1e-6)
    assert read_metadata(output)["columns"]["formation_energy_per_atom_std"] == "eV/atom"


def test_num_proc_2_gives_the_same_rows(model_dir, small_inputs, tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    predict_to_file(model_dir, small_inputs, one, chunk_size=8, progress=False)
    summary = predict_to_file(model_dir, small_inputs, two, chunk_size=8, num_proc=2, progress=False)
    assert summary.computed == summary.rows == len(read_rows(one))
    _assert_same_rows(read_rows(two), read_rows(one))


def test_a_crystal_that_kills_its_worker_is_a_row_and_the_run_goes_on(
    model_dir, small_inputs, tmp_path, monkeypatch
):
    from modeling_cloud.screening import Screener

    encode, parent = Screener.encode, os.getpid()

    def crash_on_si(self, item):  # a native crash, as spglib or moyopy could have on a bad crystal
        if os.getpid() != parent and str(item).endswith("Si.cif"):
            os.kill(os.getpid(), signal.SIGKILL)
        return encode(self, item)

    monkeypatch.setattr(Screener, "encode", crash_on_si)  # the forked workers inherit it
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    predict_to_file(
        model_dir, small_inputs[:2], one, chunk_size=4, progress=False
    )  # in this process: no crash
    predict_to_file(model_dir, small_inputs[:2], two, chunk_size=4, num_proc=2, progress=False)
    rows, expected = read_rows(two), read_rows(one)
    (crashed,) = [index for index, row in enumerate(rows) if row["source"].endswith("Si.cif")]
    assert rows[crashed]["error_reason"] == "worker_died" and rows[crashed]["error_type"] == "WorkerDiedError"
    assert "exit code -9" in rows[crashed]["error_message"] and rows[crashed]["scope"] is None
    assert expected[crashed]["error_reason"] is None
    _assert_same_rows(rows[:crashed] + rows[crashed + 1 :], expected[:crashed] + expected[crashed + 1 :])


def test_a_worker_that_dies_while_later_chunks_wait_to_be_submitted(model_dir, tmp_path, monkeypatch):
    """A worker dies on the second chunk while the first is still encoding, so the pool is already broken when the
    next chunk is submitted (before the dead chunk is collected): that chunk waits for the restart, and the run
    gives one `worker_died` row and the others' values."""
    from modeling_cloud.screening import Screener

    with gzip.open(
        FIXTURES / "scope_v1" / "pretrain10k_official_ids.jsonl.gz", "rt", encoding="utf-8"
    ) as handle:
        scopes = list(
            dict.fromkeys(json.loads(line)["scope"] for line, _ in zip(handle, range(40), strict=False))
        )
    scopes = scopes[:24]
    table = tmp_path / "scopes.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(24)], "scope": scopes}), table)
    encode, parent = Screener.encode, os.getpid()

    def slow_first_chunk_crash_on_fourth(self, item):
        if os.getpid() != parent and isinstance(item, dict):
            if item.get("scope") == scopes[3]:
                os.kill(os.getpid(), signal.SIGKILL)
            if item.get("scope") in scopes[:2]:
                time.sleep(0.5)
        return encode(self, item)

    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    predict_to_file(model_dir, [str(table)], one, chunk_size=2, progress=False)
    monkeypatch.setattr(Screener, "encode", slow_first_chunk_crash_on_fourth)  # the forked workers inherit it
    summary = predict_to_file(model_dir, [str(table)], two, chunk_size=2, num_proc=2, progress=False)
    rows, expected = read_rows(two), read_rows(one)
    assert summary.rows == 24 and [row["source"] for row in rows] == [f"r{i}" for i in range(24)]
    assert rows[3]["error_reason"] == "worker_died" and expected[3]["error_reason"] is None
    _assert_same_rows(rows[:3] + rows[4:], expected[:3] + expected[4:])


def test_a_finished_output_is_not_redone_and_another_model_is_refused(
    model_dir, ensemble_dir, tmp_path, capsys
):
    output = tmp_path / "done.parquet"
    inputs = [str(EXAMPLES / "NaCl.cif")]
    predict_to_file(model_dir, inputs, output, progress=False)
    again = predict_to_file(model_dir, inputs, output, progress=False)
    assert again.already_complete and again.computed == 0 and again.rows == 1
    with pytest.raises(ResumeMismatchError, match="model_sha256"):
        predict_to_file(ensemble_dir, inputs, output, progress=False)
    with pytest.raises(ResumeMismatchError, match="inputs"):
        predict_to_file(model_dir, [str(EXAMPLES / "Si.cif")], output, progress=False)
    assert main(["predict", "--model", str(ensemble_dir), *inputs, "--output", str(output)]) == 2
    assert "written by another run" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must end in"):
        predict_to_file(model_dir, inputs, tmp_path / "out.txt", progress=False)


def test_ctrl_c_keeps_the_parts_and_an_unwritable_output_is_a_message(
    model_dir, tmp_path, monkeypatch, capsys
):
    """Ctrl-C in the middle of a run: exit 130 with a line that says how to continue (no traceback), and the same
    command finishes the file; an output that cannot be written, or a parts folder left by another run, is a
    one-line error (exit 2)."""
    from modeling_cloud.screening import Screener

    inputs = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif", "MgO.cif", "Cu.cif")]
    reference = tmp_path / "reference.jsonl"
    predict_to_file(model_dir, inputs, reference, chunk_size=2, progress=False)
    rows, calls = Screener.rows, []

    def interrupted_at_the_second_chunk(self, items, encoded):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return rows(self, items, encoded)

    output = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), *inputs, "--output", str(output), "--chunk-size", "2"]
    monkeypatch.setattr(Screener, "rows", interrupted_at_the_second_chunk)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and f"{output}.parts" in err and "Traceback" not in err
    assert not output.exists() and len(list(Path(f"{output}.parts").glob("part-*.parquet"))) == 1
    monkeypatch.setattr(Screener, "rows", rows)
    assert main(argv) == 0
    assert read_rows(output) == read_rows(reference)

    other = ["predict", "--model", str(model_dir), inputs[0], "--output", str(tmp_path / "other.jsonl")]
    (tmp_path / "other.jsonl.parts").mkdir()
    (tmp_path / "other.jsonl.parts" / "run.json").write_text(json.dumps({"command": "embed"}))
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "unfinished parts in" in err and "other.jsonl exists" not in err

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert (
        main(["predict", "--model", str(model_dir), inputs[0], "--output", str(blocker / "out.parquet")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("cloud-crystal predict: ") and "a-file" in err and "Traceback" not in err


# -- resume after SIGKILL ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def screening_table(tmp_path_factory, mp_table) -> Path:
    """3,000 rows named by repeating MP ids: every 10th row a bundled MP structure, every 97th an unreadable one,
    the others SCOPE v1 strings from the authors' 10k pretraining sample."""
    with gzip.open(
        FIXTURES / "scope_v1" / "pretrain10k_official_ids.jsonl.gz", "rt", encoding="utf-8"
    ) as handle:
        scopes = [json.loads(line)["scope"] for line in handle]
    ids, structures, scope_column = [], [], []
    for row in range(3000):
        ids.append(mp_table[row % 500]["material_id"])
        if row % 97 == 0:
            structures.append("{not json")
            scope_column.append(None)
        elif row % 10 == 0:
            structures.append(mp_table[row]["structure"])
            scope_column.append(None)
        else:
            structures.append(None)
            scope_column.append(scopes[row])
    path = tmp_path_factory.mktemp("table") / "screen.parquet"
    pq.write_table(pa.table({"material_id": ids, "structure": structures, "scope": scope_column}), path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(model_dir, screening_table, tmp_path_factory) -> list[dict]:
    """The rows of an uninterrupted run over the 3,000-row table (chunks of 100)."""
    reference = tmp_path_factory.mktemp("reference") / "reference.parquet"
    predict_to_file(model_dir, [str(screening_table)], reference, chunk_size=100, progress=False)
    return read_rows(reference)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running or sleeping (a zombie that nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_file(model_dir, screening_table, uninterrupted, tmp_path):
    expected = uninterrupted
    assert len(expected) == 3000 and sum(row["error_reason"] is not None for row in expected) == 31

    output = tmp_path / "killed.parquet"
    argv = ["predict", "--model", str(model_dir), str(screening_table), "--output", str(output),
            "--chunk-size", "100", "--num-proc", "2"]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "modeling_cloud.cli", *argv], env=environment,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    parts = tmp_path / "killed.parquet.parts"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if len(list(parts.glob("part-*.parquet"))) >= 5:
                break
            time.sleep(0.02)
        workers = _children(child.pid)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert not output.exists() and 5 <= len(list(parts.glob("part-*.parquet"))) < 30
    # Its two encoding workers leave once their parent is gone (no orphans left waiting on the task pipe).
    assert len(workers) == 2
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)

    assert main(argv) == 1  # the same command again: resumes (some rows are failures, hence exit 1)
    assert not parts.exists()
    rows = read_rows(output)
    _assert_same_rows(rows, expected)  # same rows, same order, values within 1e-6, no duplicates
    assert read_metadata(output)["rows"] == 3000


def test_killed_parts_and_leftovers_are_resumed_exactly(model_dir, screening_table, uninterrupted, tmp_path):
    """The writer's resume in-process: a run cut after some parts (and a half-written temporary file) finishes with
    only the missing positions computed."""
    from modeling_cloud.screening import Screener, ScreeningOutput, run_screening
    from modeling_cloud.screening.runner import package_versions

    inputs = [str(screening_table)]
    screener = Screener(load_property_pipeline(str(model_dir)), model_name=str(model_dir))
    output = tmp_path / "cut.jsonl"
    writer = ScreeningOutput(output, screener.schema, screener.run_fingerprint(inputs, None), screener.units,
                             package_versions())  # fmt: skip
    items = [item for item, _ in zip(iter_inputs(inputs), range(250), strict=False)]
    for start in (0, 100):  # parts 0-99 and 100-199 written; 200-249 half-written when "killed"
        chunk = items[start : start + 100]
        writer.write_part(start, screener.rows(chunk, screener.encode_chunk(chunk)))
    (writer.parts / "part-000000000200-000000000250.parquet.123.tmp").write_bytes(b"PAR1 half")
    summary = run_screening(screener, inputs, output, chunk_size=100, progress=False)
    assert summary.rows == 3000 and summary.computed == 2800
    _assert_same_rows(read_rows(output), uninterrupted)


def test_skipping_keeps_positions_and_names(small_inputs, tmp_path):
    """A resumed run passes over the done prefix cheaply but sees the same positions and names, also for tables
    inside folders (a corpus folder's shards)."""
    folder = tmp_path / "tables"
    folder.mkdir()
    table = pq.read_table(small_inputs[1])
    pq.write_table(table.slice(0, 25), folder / "a.parquet")
    pq.write_table(table.slice(25), folder / "b.parquet")
    inputs = [*small_inputs, str(folder)]

    def describe(item):
        return (type(item).__name__, str(item)) if isinstance(item, Exception) else item

    full = [(item.position, item.source, describe(item.item)) for item in iter_inputs(inputs)]
    assert len(full) == 50 + 40
    for skip in (0, 3, 47, 60, 89, 90):
        skipped = list(iter_inputs(inputs, skip=skip))
        assert [(item.position, item.source) for item in skipped] == [entry[:2] for entry in full]
        assert all(item.item is None for item in skipped[:skip])
        assert [describe(item.item) for item in skipped[skip:]] == [entry[2] for entry in full[skip:]]


def test_a_resume_over_changed_inputs_is_refused(model_dir, mp_table, tmp_path):
    from modeling_cloud.screening import Screener, ScreeningOutput, run_screening
    from modeling_cloud.screening.runner import package_versions

    table = tmp_path / "table.csv"
    frame = mp_table.select(range(6)).to_pandas()[["material_id", "structure"]]
    frame.to_csv(table, index=False)
    screener = Screener(load_property_pipeline(str(model_dir)), model_name=str(model_dir))
    output = tmp_path / "out.parquet"
    writer = ScreeningOutput(output, screener.schema, screener.run_fingerprint([table], None), screener.units,
                             package_versions())  # fmt: skip
    items = list(iter_inputs([table]))[:4]
    writer.write_part(0, screener.rows(items, screener.encode_chunk(items)))  # a run killed after 4 rows
    frame.iloc[::-1].to_csv(table, index=False)  # the same file name, other rows (and the same size)
    with pytest.raises(ResumeMismatchError, match="inputs_sha256"):
        run_screening(screener, [table], output, chunk_size=4, progress=False)

    # A folder's files are not fingerprinted: a file added before the done rows shifts the names, and is caught.
    folder = tmp_path / "cifs"
    folder.mkdir()
    for name in ("MgO.cif", "NaCl.cif", "Si.cif", "SrTiO3.cif"):
        (folder / name).write_text((EXAMPLES / name).read_text())
    output = tmp_path / "folder.parquet"
    writer = ScreeningOutput(output, screener.schema, screener.run_fingerprint([folder], None), screener.units,
                             package_versions())  # fmt: skip
    items = list(iter_inputs([folder]))[:3]
    writer.write_part(0, screener.rows(items, screener.encode_chunk(items)))  # a run killed after 3 rows
    (folder / "Cu.cif").write_text((EXAMPLES / "Cu.cif").read_text())  # sorts first
    with pytest.raises(ResumeMismatchError, match="the inputs changed: position 2"):
        run_screening(screener, [folder], output, chunk_size=4, progress=False)


def test_a_table_rewritten_in_place_is_not_taken_for_its_finished_output(model_dir, mp_table, tmp_path):
    """The next round of candidates written to the same file name: the finished output of the last round is not
    reported as complete, whatever the file's timestamps say."""
    table = tmp_path / "candidates.parquet"
    columns = ["material_id", "structure"]
    pq.write_table(mp_table.select(range(4)).data.table.select(columns), table)
    output = tmp_path / "out.parquet"
    assert predict_to_file(model_dir, [table], output, progress=False).rows == 4
    assert predict_to_file(model_dir, [table], output, progress=False).already_complete
    stat = table.stat()
    pq.write_table(mp_table.select(range(4, 8)).data.table.select(columns), table)
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a rewrite within the timestamps' granularity
    with pytest.raises(ResumeMismatchError, match="inputs_sha256"):
        predict_to_file(model_dir, [table], output, progress=False)
    fresh = predict_to_file(model_dir, [table], tmp_path / "fresh.parquet", progress=False)
    assert fresh.rows == 4 and [row["source"] for row in read_rows(fresh.output)] == [
        mp_table[i]["material_id"] for i in range(4, 8)
    ]


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_run_killed_while_merging_merges_again(suffix, model_dir, tmp_path, monkeypatch):
    from modeling_cloud.screening import writers

    inputs = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif", "MgO.cif")]
    output = tmp_path / f"out.{suffix}"
    replace = os.replace

    def killed_before_the_rename(source, destination):
        if Path(destination) == output:
            raise KeyboardInterrupt  # stands for a SIGKILL between writing the merged file and renaming it
        replace(source, destination)

    monkeypatch.setattr(writers.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        predict_to_file(model_dir, inputs, output, chunk_size=2, progress=False)
    monkeypatch.undo()
    parts = tmp_path / f"out.{suffix}.parts"
    assert not output.exists() and list(parts.glob("*.tmp")) and len(list(parts.glob("part-*"))) == 2
    summary = predict_to_file(model_dir, inputs, output, chunk_size=2, progress=False)
    assert summary.computed == 0 and summary.rows == 3 and not parts.exists()
    reference = tmp_path / f"reference.{suffix}"
    predict_to_file(model_dir, inputs, reference, chunk_size=2, progress=False)
    _assert_same_rows(read_rows(output), read_rows(reference))


# -- inputs at scale -----------------------------------------------------------------------------------------------
def test_dumps_and_corpus_shards_are_inputs(model_dir, mp_table, tmp_path):
    from dataset_builders.corpus import build_corpus

    structures = [json.loads(mp_table[i]["structure"]) for i in range(3)]
    # Materials Project / Alexandria style: ComputedStructureEntry dicts under "entries", gzipped.
    alexandria = tmp_path / "alexandria.json.gz"
    entries = [{"@class": "ComputedStructureEntry", "structure": s, "data": {"mat_id": f"agm{i}"}}
               for i, s in enumerate(structures)]  # fmt: skip
    with gzip.open(alexandria, "wt", encoding="utf-8") as handle:
        json.dump({"entries": entries}, handle)
    # An MP JSON Lines dump with material_id, bz2-free, plain.
    mp_dump = tmp_path / "mp.jsonl"
    mp_dump.write_text("".join(json.dumps({"material_id": f"mp-x{i}", "structure": s}) + "\n"
                               for i, s in enumerate(structures)))  # fmt: skip
    # An OPTIMADE response saved to a file: {"data": [entries]}, each entry named by its id.
    from optimade.adapters.structures.pymatgen import from_pymatgen
    from pymatgen.core import Structure

    optimade = tmp_path / "optimade.json"
    optimade.write_text(json.dumps({"data": [
        {"id": f"opt-{i}", "type": "structures",
         "attributes": from_pymatgen(Structure.from_dict(s)).model_dump(mode="json")}
        for i, s in enumerate(structures)
    ]}))  # fmt: skip
    assert [item.source for item in iter_inputs([alexandria, mp_dump, optimade])] == [
        "agm0", "agm1", "agm2", "mp-x0", "mp-x1", "mp-x2", "opt-0", "opt-1", "opt-2",
    ]  # fmt: skip

    corpus = tmp_path / "corpus"
    build_corpus(files=[str(EXAMPLES)], output_dir=corpus, scope_version="v1", progress=False)
    shard_rows = sum(pq.read_metadata(path).num_rows for path in corpus.glob("train-*.parquet"))
    items = list(iter_inputs([corpus]))
    assert len(items) == shard_rows and all(
        isinstance(item.item, dict) and "scope" in item.item for item in items
    )
    output = tmp_path / "corpus.parquet"
    summary = predict_to_file(model_dir, [corpus, alexandria, optimade], output, progress=False)
    assert summary.failed == 0 and summary.rows == shard_rows + 6
    rows = read_rows(output)
    assert rows[-1]["scope"] == rows[-4]["scope"]  # the same crystal from Alexandria's dump and from OPTIMADE


def test_hub_dataset_is_streamed(model_dir, mp_table, hub_server, hub_repo_id, tmp_path):  # noqa: F811
    mp_table.select(range(5)).select_columns(["material_id", "structure"]).push_to_hub(hub_repo_id)
    spec = f"hub:{hub_repo_id}"
    assert [item.source for item in iter_inputs([spec])] == [mp_table[i]["material_id"] for i in range(5)]
    skipped = list(iter_inputs([spec], skip=3))
    assert [item.item is None for item in skipped] == [True, True, True, False, False]
    output = tmp_path / "hub.parquet"
    assert predict_to_file(model_dir, [spec], output, progress=False).rows == 5


# -- embeddings and similar crystals -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    """A pretrained-style encoder (masked-LM head, no property head): the usual model for embeddings."""
    from modeling_cloud import CloudForMaskedLM

    torch.manual_seed(3)
    return _save(
        CloudForMaskedLM(CloudConfig(scope_version="v1", **TINY)), tmp_path_factory.mktemp("mlm") / "base"
    )


@pytest.mark.parametrize("which", ["single", "ensemble", "encoder"])
def test_embed_gives_the_pipelines_vectors(which, model_dir, ensemble_dir, encoder_dir, tmp_path):
    folder = {"single": model_dir, "ensemble": ensemble_dir, "encoder": encoder_dir}[which]
    crystals = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif", "SrTiO3.cif")]
    output = tmp_path / "emb.parquet"
    if which == "encoder":  # through the command line
        assert main(["embed", "--model", str(folder), *crystals, "--output", str(output)]) == 0
    else:
        embed_to_file(folder, crystals, output, progress=False)
    rows = read_rows(output)
    assert read_metadata(output)["model"] == str(folder)  # the index records its model
    results = load_property_pipeline(str(folder))(crystals, return_embeddings=True)
    assert [row["source"] for row in rows] == crystals
    for row, result in zip(rows, results, strict=True):
        vector = pooled_embedding(result)
        assert vector.shape == (32,)
        if which == "ensemble":  # the mean of the members' pooled embeddings
            np.testing.assert_allclose(vector, np.mean(result["embedding"], axis=0), atol=1e-7)
        np.testing.assert_allclose(row["embedding"], vector, atol=1e-6)
    assert pq.read_schema(output).field("embedding").type == pa.list_(pa.float32(), 32)
    if which == "single":  # JSON Lines and CSV hold the same vectors as lists of numbers
        for suffix in ("jsonl", "csv"):
            other = tmp_path / f"emb.{suffix}"
            embed_to_file(folder, crystals, other, progress=False)
            vectors = [row["embedding"] if suffix == "jsonl" else json.loads(row["embedding"])
                       for row in read_rows(other)]  # fmt: skip
            np.testing.assert_array_equal(
                np.array(vectors, dtype=np.float32), [row["embedding"] for row in rows]
            )


@pytest.fixture(scope="module")
def index_file(model_dir, tmp_path_factory) -> Path:
    """Embeddings of 400 real MP structures (the v1 fixtures), one row per distinct SCOPE string (no exact ties)."""
    with gzip.open(FIXTURES / "scope_v1" / "structures.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    seen, lines = set(), []
    for record in records:
        if record["scope_v1"] not in seen:
            seen.add(record["scope_v1"])
            lines.append(json.dumps({"material_id": record["material_id"], "structure": record["structure"]}))
    lines.insert(3, "{not json")  # a failed row: in the file, without an embedding, never a neighbour
    folder = tmp_path_factory.mktemp("index")
    table = folder / "crystals.jsonl"
    table.write_text("\n".join(lines) + "\n")
    output = folder / "emb.parquet"
    embed_to_file(model_dir, [table], output, progress=False)
    return output


def _brute_force(embeddings: np.ndarray, query: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    embeddings = embeddings.astype(np.float64)
    query = query.astype(np.float64)
    similarity = embeddings @ query / (np.linalg.norm(embeddings, axis=1) * np.linalg.norm(query))
    distance = 1.0 - similarity
    order = np.lexsort((np.arange(len(distance)), distance))[:k]
    return order.tolist(), distance[order]


def test_similar_matches_a_brute_force_top_k(index_file):
    pytest.importorskip("faiss")
    from modeling_cloud.screening import EmbeddingIndex

    rows = read_rows(index_file)
    valid = [position for position, row in enumerate(rows) if row["embedding"] is not None]
    assert len(valid) == len(rows) - 1 > 200 and rows[3]["error_reason"] == "parse_error"
    embeddings = np.array([rows[position]["embedding"] for position in valid], dtype=np.float32)
    index = EmbeddingIndex(index_file)
    assert len(index) == len(valid) and index.model == read_metadata(index_file)["model"]
    queries = embeddings[[0, 7, 123, len(valid) - 1]]
    for query, found in zip(queries, index.search(queries, k=10), strict=True):
        nearest, distances = _brute_force(embeddings, query, 10)
        expected = [valid[j] for j in nearest]  # positions in the file
        assert [n.row for n in found] == expected
        np.testing.assert_allclose([n.distance for n in found], np.clip(distances, 0, 2), atol=1e-9)
        assert [n.source for n in found] == [rows[i]["source"] for i in expected]
        assert [n.formula for n in found] == [rows[i]["formula"] for i in expected]
    # A crystal of the index comes back first, at distance 0; the spread is real (not all neighbours at 0).
    first = index.search(embeddings[123], k=10)[0]
    assert first[0].row == valid[123] and first[0].distance == pytest.approx(0.0, abs=1e-6)
    assert first[-1].distance > 1e-3


def test_similar_command(index_file, model_dir, tmp_path, capsys):
    pytest.importorskip("faiss")
    rows = read_rows(index_file)
    source = rows[5]["source"]
    assert main(["similar", "--index", str(index_file), "--row", source, "-k", "4", "--jsonl"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [n["rank"] for n in found] == [1, 2, 3, 4] and found[0]["source"] == source
    assert set(found[0]) == {"query", "rank", "source", "formula", "space_group", "distance", "row"}
    assert found[0]["formula"] == rows[5]["formula"] and found[0]["space_group"] == rows[5]["space_group"]
    assert [n["distance"] for n in found] == sorted(n["distance"] for n in found)
    # A structure file as the query, embedded with the index's model: itself first if it is in the index.
    structure = tmp_path / "query.json"
    with gzip.open(FIXTURES / "scope_v1" / "structures.jsonl.gz", "rt", encoding="utf-8") as handle:
        structure.write_text(json.dumps(json.loads(handle.readline())["structure"]))
    assert main(["similar", "--index", str(index_file), str(structure), "-k", "3", "--jsonl"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert found[0]["query"] == str(structure) and found[0]["distance"] == pytest.approx(0.0, abs=1e-6)
    assert main(["similar", "--index", str(index_file), "--row", "no-such-row"]) == 2
    # A query that cannot be read is a failure line, and the other queries are answered.
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 4\n")
    assert main(["similar", "--index", str(index_file), str(bad), "--row", source, "-k", "2", "--jsonl"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["query"] for line in lines] == [source, source, str(bad)]
    assert lines[-1]["error"]["reason"] == "parse_error" and lines[-1]["source"] == str(bad)


def test_similar_names_the_extra_when_faiss_is_missing(index_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    assert main(["similar", "--index", str(index_file), "--row", "x"]) == 2
    assert "pip install 'cloud-crystal[faiss]'" in capsys.readouterr().err


def test_an_index_made_from_a_relative_model_folder_is_searched_from_anywhere(
    model_dir, tmp_path, monkeypatch, capsys
):
    """`embed --model ./folder` records the folder's absolute path, so `similar` finds the model from another
    working directory (a relative name would be looked up on the Hub); a model folder that is gone, and an index
    that is not Parquet, are one-line errors."""
    pytest.importorskip("faiss")
    import shutil

    work = tmp_path / "work"
    shutil.copytree(model_dir, work / "model")
    monkeypatch.chdir(work)
    crystals = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif", "MgO.cif")]
    assert main(["embed", "--model", "model", *crystals, "--output", "emb.parquet"]) == 0
    assert main(["embed", "--model", "model", *crystals, "--output", "emb.csv"]) == 0
    assert read_metadata(work / "emb.parquet")["model"] == str((work / "model").resolve())
    capsys.readouterr()

    monkeypatch.chdir(tmp_path)
    assert main(["similar", "--index", "work/emb.parquet", crystals[1], "-k", "1", "--jsonl"]) == 0
    (found,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert found["source"] == crystals[1] and found["distance"] == pytest.approx(0.0, abs=1e-6)

    assert main(["similar", "--index", "work/emb.csv", "--row", crystals[1]]) == 2
    assert "an index is a Parquet file" in capsys.readouterr().err
    shutil.rmtree(work / "model")
    assert main(["similar", "--index", "work/emb.parquet", crystals[1]]) == 2
    assert "not there any more: give --model" in capsys.readouterr().err
    assert (
        main(["similar", "--index", "work/emb.parquet", crystals[1], "--model", str(model_dir), "-k", "1"])
        == 0
    )


def test_a_resume_keeps_the_grouping_it_started_with(model_dir, tmp_path, monkeypatch, caplog):
    """Resumed with another --chunk-size / --batch-size, a run keeps the ones its parts were written with (other
    batch shapes move float32 values by rounding), so the file equals the uninterrupted run's exactly."""
    from modeling_cloud.screening import Screener

    with gzip.open(
        FIXTURES / "scope_v1" / "pretrain10k_official_ids.jsonl.gz", "rt", encoding="utf-8"
    ) as handle:
        scopes = [json.loads(line)["scope"] for line, _ in zip(handle, range(120), strict=False)]
    table = tmp_path / "scopes.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(scopes))], "scope": scopes}), table)
    reference = tmp_path / "reference.parquet"
    predict_to_file(model_dir, [table], reference, chunk_size=40, batch_size=16, progress=False)
    rows, calls = Screener.rows, []

    def interrupted_at_the_second_chunk(self, items, encoded):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return rows(self, items, encoded)

    output = tmp_path / "resumed.parquet"
    monkeypatch.setattr(Screener, "rows", interrupted_at_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        predict_to_file(model_dir, [table], output, chunk_size=40, batch_size=16, progress=False)
    monkeypatch.setattr(Screener, "rows", rows)
    with caplog.at_level("WARNING", logger="modeling_cloud.screening.runner"):
        summary = predict_to_file(model_dir, [table], output, chunk_size=1, batch_size=1, progress=False)
    assert summary.computed == 80 and "continuing with --chunk-size 40 --batch-size 16" in caplog.text
    assert read_rows(output) == read_rows(reference)  # bit for bit


@pytest.mark.parametrize("task", ["predict", "embed"])
def test_batch_size_1_gives_the_batched_rows(task, model_dir, small_inputs, tmp_path):
    """`--batch-size 1` (each crystal its own forward pass) gives the rows of batched passes, within float32
    rounding; transformers does not unroll batches of one, which once reached `postprocess` as lists."""
    run = predict_to_file if task == "predict" else embed_to_file
    one, batched = tmp_path / "one.parquet", tmp_path / "batched.parquet"
    run(model_dir, small_inputs, batched, chunk_size=16, batch_size=32, progress=False)
    summary = run(model_dir, small_inputs, one, chunk_size=16, batch_size=1, progress=False)
    assert summary.rows == len(read_rows(batched)) and summary.failed == 3
    _assert_same_rows(read_rows(one), read_rows(batched), tolerance=1e-5)  # other padding, other rounding


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(model_dir, tmp_path, capsys):
    """Two runs of one command at once (a job started twice, a requeued job whose first copy still runs): the
    second is refused with a message instead of racing the first's merge; after the first ends (killed or not), the
    command resumes."""
    pytest.importorskip("fcntl")
    output = tmp_path / "out.parquet"
    inputs = [str(EXAMPLES / name) for name in ("NaCl.cif", "Si.cif")]
    argv = ["predict", "--model", str(model_dir), *inputs, "--output", str(output)]
    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    holder = subprocess.Popen(  # another process holding the run's lock, as a running `predict` does
        [sys.executable, "-c", "import fcntl, sys; h = open(sys.argv[1], 'ab'); fcntl.lockf(h, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()", str(parts / "lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(argv) == 2
        assert "another run is writing" in capsys.readouterr().err and not output.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(argv) == 0 and len(read_rows(output)) == 2 and not parts.exists()


def test_an_output_written_into_the_folder_it_screens_is_not_an_input(model_dir, tmp_path):
    """`predict candidates/ --output candidates/out.parquet`: the run's own parts, and the outputs (with their
    `.meta.json`) that earlier runs left in the folder, are results, not crystals; a plain table there still is."""
    folder = tmp_path / "candidates"
    folder.mkdir()
    for name in ("NaCl.cif", "Si.cif", "MgO.cif"):
        (folder / name).write_text((EXAMPLES / name).read_text())
    expected = [str(folder / name) for name in ("MgO.cif", "NaCl.cif", "Si.cif")]
    for output in ("out.parquet", "out.csv", "out.jsonl"):  # each run sees the others' finished outputs
        summary = predict_to_file(model_dir, [folder], folder / output, chunk_size=1, progress=False)
        assert summary.rows == 3 and [row["source"] for row in read_rows(folder / output)] == expected
    pq.write_table(
        pa.table({"scope": [read_rows(folder / "out.parquet")[0]["scope"]]}), folder / "more.parquet"
    )
    assert [item.source for item in iter_inputs([folder])] == [*expected, f"{folder / 'more.parquet'}#0"]


def test_an_empty_records_file_is_one_failed_row_also_on_resume(small_inputs, tmp_path):
    """An empty JSON Lines file, a JSON `[]` and a table without rows each give one failed row naming the file
    (they gave none: a user saw nothing), at their place among the other inputs; a resumed run skips it."""
    empty_lines = tmp_path / "empty.jsonl"
    empty_lines.write_text("\n\n")
    empty_list = tmp_path / "empty.json"
    empty_list.write_text("[]")
    empty_table = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(small_inputs[1]).slice(0, 0), empty_table)
    inputs = [str(empty_lines), small_inputs[1], str(empty_list), str(empty_table)]
    rows = list(iter_inputs(inputs))
    failed = [row for row in rows if isinstance(row.item, Exception)]
    assert [row.source for row in failed] == [str(empty_lines), str(empty_list), str(empty_table)]
    assert all("holds no structure records" in str(row.item) for row in failed)
    assert rows[0].source == str(empty_lines) and rows[-1].source == str(empty_table)
    resumed = list(iter_inputs(inputs, skip=1))
    assert resumed[0].item is None and [row.source for row in resumed] == [row.source for row in rows]


def test_encode_names_an_empty_records_file(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["encode", str(empty), "--scope-version", "v2", "--jsonl"]) != 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert row["source"] == str(empty) and row["error"]["reason"] == "parse_error"
