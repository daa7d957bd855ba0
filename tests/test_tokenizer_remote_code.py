"""A saved tokenizer must load through AutoTokenizer(trust_remote_code=True) with this project not importable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from isolated import run_without_project

from tokenization import CloudTokenizerFast

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_saved_tokenizer_runs_without_the_package(tmp_path, v1_fixture_records, version):
    tok = CloudTokenizerFast.from_scope_version(version)
    folder = tmp_path / "tokenizer"
    tok.save_pretrained(folder)
    saved_files = {p.name for p in folder.iterdir()}
    assert {
        "tokenization_cloud.py",
        "scope_encoding.py",
        "scope_tables.py",
        "structure_io.py",
        "cif_reader.py",
        "cif_structure.py",
        "cif_symmetry.py",
        "poscar_reader.py",
        "input_names.py",
    } <= saved_files
    records = v1_fixture_records[:4]
    # The last input needs the declared-symmetry path (an H-M name with an origin-choice suffix, no operations).
    anatase = (FIXTURES / "realworld" / "17a-anatase-HM-origin-suffix.cif").read_text()
    inputs = [records[0]["cif"], records[1]["structure"], anatase]
    expected = tok(inputs, padding=True)["input_ids"]
    code = f"""
        import json
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)
        inputs = json.loads({json.dumps(json.dumps(inputs))})
        out = tok(inputs, padding=True)
        print(json.dumps({{"cls": type(tok).__name__, "module": type(tok).__module__,
                          "version": tok.scope_version, "ids": out["input_ids"]}}))
    """
    result = run_without_project(
        code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["cls"] == "CloudTokenizerFast"
    assert payload["module"].startswith("transformers_modules.")
    assert payload["version"] == version
    assert payload["ids"] == expected
