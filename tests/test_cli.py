"""The cloud-crystal command line: the encode and predict contracts (JSON rows, exit codes, errors per input)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_cloud import CloudConfig, CloudDebyeModel, CloudForPropertyRegression
from modeling_cloud.cli import main
from tokenization import CloudTokenizerFast, structure_to_scope

EXAMPLES = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples"


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_encode_directory_jsonl(capsys):
    assert main(["encode", str(EXAMPLES), "--scope-version", "v1", "--jsonl"]) == 0
    rows = _jsonl(capsys.readouterr().out)
    assert len(rows) == len(list(EXAMPLES.glob("*.cif")))
    nacl = next(r for r in rows if r["source"].endswith("NaCl.cif"))
    assert nacl["scope"] == structure_to_scope(EXAMPLES / "NaCl.cif", version="v1")
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    assert nacl["input_ids"] == tokenizer(nacl["scope"])["input_ids"]


def test_encode_reports_each_failure_and_exits_1(tmp_path, capsys, v1_fixture_records):
    records = tmp_path / "records.jsonl"
    lines = [
        json.dumps(v1_fixture_records[0]["structure"]),
        "{not json",
        json.dumps({"cif": v1_fixture_records[1]["cif"]}),
        json.dumps({"structure": {"lattice": "nonsense"}}),
    ]
    records.write_text("\n".join(lines) + "\n")
    poscar = tmp_path / "POSCAR"
    poscar.write_text("garbage\n")
    assert main(["encode", str(records), str(poscar), "--scope-version", "v1", "--jsonl"]) == 1
    rows = _jsonl(capsys.readouterr().out)
    assert [r["source"] for r in rows] == [f"{records}:{i}" for i in (1, 2, 3, 4)] + [str(poscar)]
    assert rows[0]["scope"] == v1_fixture_records[0]["scope_v1"]
    assert rows[2]["scope"] == v1_fixture_records[1]["scope_v1_cif"]
    errors = {r["source"]: r["error"] for r in rows if "error" in r}
    assert set(errors) == {f"{records}:2", f"{records}:4", str(poscar)}
    assert (
        errors[f"{records}:2"]["type"] == "StructureParseError"
        and "not valid JSON" in errors[f"{records}:2"]["message"]
    )
    # One failure record everywhere: the row's source, a machine reason code, the error type and its message.
    assert all(set(e) == {"source", "reason", "type", "message"} for e in errors.values())
    assert all(e["source"] == source for source, e in errors.items())
    assert errors[f"{records}:2"]["reason"] == "parse_error"


def test_encode_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["encode"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["encode", str(EXAMPLES), "--scope-version", "v7"])
    assert info.value.code == 2


def test_console_script_help_lists_every_command():
    executable = shutil.which("cloud-crystal") or f"{sys.executable} -m modeling_cloud.cli"
    result = subprocess.run([*executable.split(), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("encode", "pretrain", "finetune", "train-debye", "predict", "evaluate", "push", "demo"):
        assert command in result.stdout


def _tiny_checkpoint(folder: Path, model_class, **config_kwargs) -> Path:
    torch.manual_seed(0)
    config = CloudConfig(
        vocab_size=564, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        scope_version="v1", **config_kwargs,
    )  # fmt: skip
    model_class(config).save_pretrained(folder)
    CloudTokenizerFast.from_scope_version("v1").save_pretrained(folder)
    return folder


def test_predict_rows_and_errors(tmp_path, capsys, v1_fixture_records):
    model_dir = _tiny_checkpoint(
        tmp_path / "model", CloudForPropertyRegression,
        target_names=["formation_energy_per_atom"], target_units=["eV/atom"], target_means=[-1.0], target_stds=[0.5],
    )  # fmt: skip
    table = tmp_path / "table.csv"
    table.write_text("scope\n" + v1_fixture_records[0]["scope_v1"] + "\n")
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 4\n")
    code = main(
        ["predict", "--model", str(model_dir), str(EXAMPLES / "Si.cif"), str(table), str(bad), "--jsonl"]
    )
    assert code == 1
    rows = _jsonl(capsys.readouterr().out)
    assert [r["source"] for r in rows] == [str(EXAMPLES / "Si.cif"), f"{table}#0", str(bad)]
    assert rows[0]["units"] == {"formation_energy_per_atom": "eV/atom"}
    assert isinstance(rows[0]["predictions"]["formation_energy_per_atom"], float)
    assert rows[1]["scope"] == v1_fixture_records[0]["scope_v1"]
    assert rows[2]["error"]["type"] and "CIF" in rows[2]["error"]["message"]
    # The same model through the Python API gives the same number.
    from modeling_cloud.cli import load_property_pipeline

    direct = load_property_pipeline(str(model_dir))(str(EXAMPLES / "Si.cif"))
    assert direct["properties"][0]["value"] == pytest.approx(
        rows[0]["predictions"]["formation_energy_per_atom"]
    )


def test_predict_debye_temperatures(tmp_path, capsys):
    model_dir = _tiny_checkpoint(tmp_path / "debye", CloudDebyeModel)
    assert main(["predict", "--model", str(model_dir), str(EXAMPLES / "MgO.cif"), "--temperatures", "100", "300",
                 "--jsonl"]) == 0  # fmt: skip
    (row,) = _jsonl(capsys.readouterr().out)
    assert row["temperatures"] == [100.0, 300.0]
    assert row["units"]["theta_debye"] == "K"
    cv_100, cv_300 = row["predictions"]["heat_capacity"]
    assert 0 < cv_100 < cv_300 <= 3 * 8.314462618 * 8 + 1e-6  # 8 atoms in the conventional MgO cell


def test_evaluate_scores_a_labelled_table(tmp_path, capsys, v1_fixture_records):
    model_dir = _tiny_checkpoint(
        tmp_path / "model", CloudForPropertyRegression,
        target_names=["n"], target_units=[None], target_means=[2.0], target_stds=[1.0],
    )  # fmt: skip
    import pandas as pd

    labels = [1.5, 2.5, 3.0, float("nan")]
    pd.DataFrame({"scope": [r["scope_v1"] for r in v1_fixture_records[:4]], "n": labels}).to_csv(
        tmp_path / "t.csv", index=False
    )
    assert (
        main(["evaluate", "--model", str(model_dir), "--data", str(tmp_path / "t.csv"), "--target", "n"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["rows_scored"] == 3 and report["rows_failed"] == 0  # the unlabelled row is not scored
    from modeling_cloud.cli import load_property_pipeline

    predicted = [r["properties"][0]["value"] for r in load_property_pipeline(str(model_dir))(
        [r["scope_v1"] for r in v1_fixture_records[:3]])]  # fmt: skip
    assert report["mae"] == pytest.approx(
        sum(abs(p - t) for p, t in zip(predicted, labels, strict=False)) / 3
    )
    assert (
        main(["evaluate", "--model", str(model_dir), "--data", str(tmp_path / "t.csv"), "--target", "nope"])
        == 2
    )


def test_every_subcommand_help_ends_with_an_example():
    from modeling_cloud.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    assert set(subparsers.choices) == {
        "encode", "pretrain", "finetune", "train-debye", "predict", "embed", "similar", "evaluate", "push", "demo",
        "corpus", "serve", "space",
    }  # fmt: skip
    for name, subparser in subparsers.choices.items():
        text = subparser.format_help()
        assert "example:" in text and "cloud-crystal " + name in text.split("example:")[1], name
