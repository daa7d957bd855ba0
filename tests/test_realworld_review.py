"""A second set of real-world files, written for a review of issue 21's fixes (MIT, this project).

``fixtures/realworld/review_expected.json`` gives each file's right outcome, decided from crystallography, in the
form of ``expected.json`` (``scope_v2``: exactly these strings; ``error_types``: a typed error of one of these
classes or a subclass, naming the file; both: either is right; ``message``: a word the error message must hold).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tokenization.scope_errors as scope_errors
from modeling_cloud.cli import main

CASES = Path(__file__).parent / "fixtures" / "realworld"
EXPECTED = json.loads((CASES / "review_expected.json").read_text())


@pytest.mark.parametrize("case", EXPECTED, ids=[case["file"] for case in EXPECTED])
def test_each_review_file_gives_its_expected_outcome_through_encode(case, capsys):
    path = CASES / case["file"]
    code = main(["encode", str(path), "--scope-version", "v2", "--jsonl"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(rows) == case["rows"]
    expect = case["expect"]
    if all("scope" in row for row in rows):
        assert "scope_v2" in expect, rows
        assert [row["scope"] for row in rows] == expect["scope_v2"]
        assert code == 0
        return
    assert "error_types" in expect, rows
    (row,) = rows
    error = row["error"]
    raised = getattr(scope_errors, error["type"])
    assert any(issubclass(raised, getattr(scope_errors, name)) for name in expect["error_types"]), error
    assert case["file"] in error["source"]
    assert expect.get("message", "") in error["message"]


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("rv_NMC_shares_sum_1p01.cif", "0.34 + 0.34 + 0.33 = 1.01"),
        ("r3_05_NMC111_thirds_two_decimals.cif", "= 0.99"),
    ],
)
def test_shares_rescaled_to_a_full_site_say_so_above_1_as_below(name, written, capsys):
    assert main(["encode", str(CASES / name), "--scope-version", "v2", "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert any(written in note and "rescaled to sum to 1" in note for note in row["notes"]), row


def test_setting_chosen_by_the_files_own_z_is_said_in_a_note(capsys):
    path = CASES / "rv_Si_Fd-3m_origin2_coords_Z_decides.cif"
    assert main(["encode", str(path), "--scope-version", "v2", "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert any("agrees with the file's own formula, Z" in note for note in row["notes"]), row
