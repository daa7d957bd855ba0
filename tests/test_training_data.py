"""Training data: table files with structures or SCOPE strings -> encoded rows; bad rows are named, never dropped
silently."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataset_builders import load_materials_project
from dataset_builders.reporting import RowEncodingError
from modeling_cloud.training.data import (
    EncodingReport,
    PropertyCollator,
    encode_rows,
    read_source,
    tables_to_rows,
)
from modeling_cloud.training.options import TrainingConfigError
from tokenization import CloudTokenizerFast


@pytest.fixture(scope="module")
def mp_rows() -> pd.DataFrame:
    """30 real Materials Project crystals with a refractive index."""
    frame = load_materials_project().to_pandas()
    return frame[frame["n"].notna()].head(30).reset_index(drop=True)


@pytest.fixture(scope="module")
def tokenizer():
    return CloudTokenizerFast.from_scope_version("v1")


def _cif(structure_json: str) -> str:
    from pymatgen.core import Structure

    return Structure.from_dict(json.loads(structure_json)).to(fmt="cif")


def _write(frame: pd.DataFrame, path, fmt: str):
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    ("fmt", "as_what"), [("csv", "cif"), ("jsonl", "dict"), ("parquet", "json"), ("csv", "scope")]
)
def test_every_file_format_gives_the_same_scope_and_ids(tmp_path, mp_rows, tokenizer, fmt, as_what):
    rows = mp_rows.head(8)
    from_json = [tokenizer.encode_structure(text) for text in rows["structure"]]
    if as_what == "cif":
        crystals = {"structure": [_cif(text) for text in rows["structure"]]}
    elif as_what == "dict":
        crystals = {"structure": [json.loads(text) for text in rows["structure"]]}
    elif as_what == "json":
        crystals = {"structure": list(rows["structure"])}
    else:
        crystals = {"scope": from_json}
    # SCOPE v1 follows the site order, which a CIF groups by element: encode each input as written.
    expected_scope = (
        from_json if as_what != "cif" else [tokenizer.encode_structure(c) for c in crystals["structure"]]
    )
    path = _write(pd.DataFrame({**crystals, "n": rows["n"]}), tmp_path / f"data.{fmt}", fmt)
    table = read_source(str(path))
    assert table.input_column == ("scope" if as_what == "scope" else "structure")
    frame = tables_to_rows([table], {"labels": "n"}, report=None)
    encoded = encode_rows(frame, tokenizer, "training", report=None)
    assert encoded["scope"] == expected_scope
    assert encoded["input_ids"] == tokenizer(expected_scope)["input_ids"]
    assert np.allclose(encoded["labels"], rows["n"])
    assert encoded["length"] == [len(ids) for ids in encoded["input_ids"]]
    assert encoded["source"][3] == f"data.{fmt} row 3"


def test_a_bad_row_stops_the_run_with_its_file_and_row(tmp_path, mp_rows, tokenizer):
    frame = pd.DataFrame({"structure": list(mp_rows["structure"][:5]), "n": mp_rows["n"][:5]})
    frame.loc[2, "structure"] = "data_broken\n_cell_length_a 4.0\n"
    path = _write(frame, tmp_path / "bad.csv", "csv")
    rows = tables_to_rows([read_source(str(path))], {"labels": "n"}, report=None)
    with pytest.raises(RowEncodingError, match=r"bad\.csv row 2.*--skip-invalid-rows"):
        encode_rows(rows, tokenizer, "training", report=None)


def test_skipped_rows_are_reported_not_dropped_silently(tmp_path, mp_rows, tokenizer):
    frame = pd.DataFrame({"structure": list(mp_rows["structure"][:6]), "n": list(mp_rows["n"][:6])})
    frame.loc[1, "structure"] = "not a crystal at all\nsecond line"
    frame.loc[4, "n"] = None  # a missing label
    path = _write(frame, tmp_path / "mixed.jsonl", "jsonl")
    report = EncodingReport()
    rows = tables_to_rows([read_source(str(path))], {"labels": "n"}, report=report)
    encoded = encode_rows(rows, tokenizer, "training", report=report)
    assert len(encoded) == 4
    failures = {failure.source: failure.reason for failure in report.report.failures}
    assert set(failures) == {"mixed.jsonl row 1", "mixed.jsonl row 4"}
    assert failures["mixed.jsonl row 4"] == "missing_label"
    assert report.counts["training"] == {"read": 5, "kept": 4}  # the label failure never reached the encoder


def test_scope_strings_of_another_version_are_refused(tmp_path, tokenizer):
    from dataset_builders import load_cloud_example

    try:
        v2 = CloudTokenizerFast.from_scope_version("v2")
    except ImportError:
        pytest.skip("SCOPE v2 tokenizer not available")
    strings = load_cloud_example("pretrain")["scope"][:5]  # the authors' v1 strings
    path = _write(pd.DataFrame({"scope": strings}), tmp_path / "v1.csv", "csv")
    rows = tables_to_rows([read_source(str(path))], {}, report=None)
    assert len(encode_rows(rows, tokenizer, "training", report=None)) == 5
    with pytest.raises(RowEncodingError, match=r"v1\.csv row 0: the SCOPE string has tokens outside the v2"):
        encode_rows(rows, v2, "training", report=None)


def test_bundled_sets_and_their_rules():
    table = read_source("bundled:cloud-cv[10:20]")
    assert len(table.frame) == 10
    assert table.input_column == "scope" and {"cv", "n_atoms"} <= set(table.frame.columns)
    assert read_source("bundled:materials-project[:5]").input_column == "structure"
    with pytest.raises(TrainingConfigError, match="final evaluation only"):
        read_source("bundled:cloud-dielectric-test", purpose="training")
    assert len(read_source("bundled:cloud-dielectric-test[:3]", purpose="test").frame) == 3
    with pytest.raises(TrainingConfigError, match="unknown bundled data set"):
        read_source("bundled:matbench-everything")


def test_missing_columns_and_files_are_named(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"formula": ["NaCl"], "n": [1.5]}).to_csv(path, index=False)
    with pytest.raises(TrainingConfigError, match=r"labels\.csv: no `structure` or `scope` column"):
        read_source(str(path))
    scope_only = tmp_path / "scope.csv"
    pd.DataFrame({"scope": ["0 0 0 | 1a | Si 1.0"]}).to_csv(scope_only, index=False)
    with pytest.raises(TrainingConfigError, match=r"scope\.csv: no column\(s\) band_gap"):
        tables_to_rows([read_source(str(scope_only))], {"labels": "band_gap"}, report=None)
    with pytest.raises(TrainingConfigError, match="unsupported file type"):
        (tmp_path / "data.xlsx").write_text("x")
        read_source(str(tmp_path / "data.xlsx"))


def test_dynamic_padding_pads_to_the_longest_in_the_batch(tokenizer):
    ids = tokenizer(["0 0 0 | 1a | Si 1.0", "1 0 0 | 1a 2i | Na 0.33 Cl 0.67"])
    features = [
        {
            "input_ids": ids["input_ids"][i],
            "attention_mask": ids["attention_mask"][i],
            "labels": [float(i)],
            "n_atoms": 2.0,
            "temperatures": 300.0,
        }
        for i in range(2)
    ]
    batch = PropertyCollator(tokenizer)(features)
    longest = max(len(row) for row in ids["input_ids"])
    assert batch["input_ids"].shape == (2, longest) and batch["labels"].shape == (2, 1)
    assert batch["temperatures"].shape == (2, 1) and batch["n_atoms"].shape == (2,)
    assert int(batch["attention_mask"][0].sum()) == len(ids["input_ids"][0])
