"""One failure record everywhere: `{"source", "reason", "type", "message"}` with `reason` a machine code, and every
code documented in the README's table. (CLI rows and pipeline results are checked in test_cli.py and
test_pipeline_crystal_property.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import tokenization.scope_errors as scope_errors
from dataset_builders import FailureReport
from dataset_builders import reporting as builder_errors
from dataset_builders.reporting import GENERIC_REASON
from tokenization import DisorderedStructureError, ScopeError

RECORD = {"source", "reason", "type", "message"}
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _error_classes():
    for module in (scope_errors, builder_errors):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ScopeError)
                and value.__module__ == module.__name__
            ):
                yield value


def test_every_reason_is_a_documented_machine_code():
    table = dict(re.findall(r"^\| `([a-z_]+)` \| `?([A-Za-z]+)", README, flags=re.MULTILINE))
    classes = list(_error_classes())
    assert len({cls.reason for cls in classes}) == len(classes)  # one code per class
    for cls in classes:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.reason), cls
        assert table.get(cls.reason) == cls.__name__, (
            f"README's error table lacks {cls.reason} ({cls.__name__})"
        )
    assert GENERIC_REASON in table


def test_scope_error_and_builder_reports_share_the_record():
    error = DisorderedStructureError("site 0 holds Fe0.5 Co0.5", "alloy.cif")
    record = error.to_dict()
    assert record == {
        "source": "alloy.cif",
        "reason": "disordered_structure",
        "type": "DisorderedStructureError",
        "message": "site 0 holds Fe0.5 Co0.5",
    }
    assert error.to_dict("rows.csv#3")["source"] == "rows.csv#3"

    report = FailureReport()
    report.add("row 7", error)
    report.add("row 9", KeyError("structure"))
    scope_row, other_row = (failure.to_dict() for failure in report.failures)
    assert set(scope_row) == set(other_row) == RECORD
    assert scope_row == record  # the error names its input more precisely than the row number
    assert other_row == {
        "source": "row 9",
        "reason": "invalid_input",
        "type": "KeyError",
        "message": "'structure'",
    }
    assert report.counts() == {"disordered_structure": 1, "invalid_input": 1}
