"""Structure datasets -> input_ids / attention_mask / labels: on the fly, streaming, and pre-encoded with a cache."""

from __future__ import annotations

import json
import os

import datasets
import pytest

from dataset_builders import load_cloud_example, load_materials_project
from dataset_builders.encoding import (
    dataset_content_fingerprint,
    encode_on_the_fly,
    pre_encode,
    tokenizer_fingerprint,
)
from dataset_builders.reporting import FailureReport, RowEncodingError
from tokenization import CloudTokenizerFast


@pytest.fixture(scope="module")
def tokenizer():
    return CloudTokenizerFast.from_scope_version("v1")


@pytest.fixture(scope="module")
def dielectric_rows():
    """24 real MP crystals with a refractive index, as plain rows."""
    return load_materials_project().filter(lambda row: row["n"] is not None).select(range(24)).to_list()


@pytest.fixture
def with_bad_rows(dielectric_rows):
    rows = [dict(row) for row in dielectric_rows]
    rows[3]["structure"] = "this is not a crystal"
    rows[7]["n"] = None
    return datasets.Dataset.from_list(rows)


def test_on_the_fly_matches_direct_tokenization(tokenizer, dielectric_rows):
    dataset = datasets.Dataset.from_list(dielectric_rows)
    encoded = encode_on_the_fly(dataset, tokenizer, label_columns="n")
    assert len(encoded) == len(dataset)
    row = encoded[5]
    expected = tokenizer(tokenizer.encode_structure(dielectric_rows[5]["structure"]))
    assert (
        row["input_ids"] == expected["input_ids"] and row["input_ids"][0] == 0 and row["input_ids"][-1] == 2
    )
    assert row["labels"] == pytest.approx(dielectric_rows[5]["n"])
    multi = encode_on_the_fly(dataset, tokenizer, label_columns=["n", "band_gap"])[0]["labels"]
    assert multi == pytest.approx([dielectric_rows[0]["n"], dielectric_rows[0]["band_gap"]])


def test_on_the_fly_bad_row_raises_naming_it_or_is_prevalidated(tokenizer, with_bad_rows):
    encoded = encode_on_the_fly(with_bad_rows, tokenizer, label_columns="n")
    assert encoded[0]["labels"] is not None  # good rows read fine
    bad_id = with_bad_rows[3]["material_id"]
    with pytest.raises(RowEncodingError, match=bad_id):
        encoded[:8]
    report = FailureReport()
    clean = encode_on_the_fly(with_bad_rows, tokenizer, label_columns="n", prevalidate=True, report=report)
    assert len(clean) == 22 and report.counts() == {"parse_error": 1, "missing_label": 1}
    assert len(clean[:24]["input_ids"]) == 22


def test_scope_string_columns_encode_too(tokenizer):
    train = load_cloud_example("dielectric")["train"].select(range(10))
    encoded = pre_encode(train, tokenizer, structure_column="scope", label_columns="n", use_cache=False)
    assert encoded[0]["input_ids"] == tokenizer(train[0]["scope"])["input_ids"]


def test_pre_encode_reports_every_failed_row_and_writes_jsonl(tokenizer, with_bad_rows, tmp_path):
    with pytest.raises(RowEncodingError, match="2 of 24 rows failed"):
        pre_encode(with_bad_rows, tokenizer, label_columns="n", use_cache=False)
    report = FailureReport(errors_path=tmp_path / "errors.jsonl")
    encoded = pre_encode(
        with_bad_rows,
        tokenizer,
        label_columns="n",
        keep_columns=["material_id"],
        use_cache=False,
        report=report,
    )
    assert len(encoded) == 22 and report.rows_seen == 24
    dropped = {with_bad_rows[3]["material_id"], with_bad_rows[7]["material_id"]}
    assert dropped.isdisjoint(encoded["material_id"])
    logged = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert sorted(entry["reason"] for entry in logged) == ["missing_label", "parse_error"]
    assert all(any(identifier in entry["source"] for identifier in dropped) for entry in logged)


def test_pre_encode_cache_is_content_addressed(tokenizer, dielectric_rows, tmp_path):
    dataset = datasets.Dataset.from_list(dielectric_rows)
    first = pre_encode(dataset, tokenizer, label_columns="n", num_proc=2, cache_dir=tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and all(name.endswith("_of_00002.arrow") for name in files)
    assert first["input_ids"] == encode_on_the_fly(dataset, tokenizer, label_columns="n")[:24]["input_ids"]

    # Same content, rebuilt from scratch: served from the cache (no new file, same rows).
    mtimes = {name: os.path.getmtime(tmp_path / name) for name in files}
    again = pre_encode(
        datasets.Dataset.from_list(dielectric_rows),
        tokenizer,
        label_columns="n",
        num_proc=2,
        cache_dir=tmp_path,
    )
    assert (
        sorted(os.listdir(tmp_path)) == files and {n: os.path.getmtime(tmp_path / n) for n in files} == mtimes
    )
    assert again["input_ids"] == first["input_ids"]

    # One changed label value -> a new cache entry holding the new value (never the stale one).
    changed_rows = [dict(row) for row in dielectric_rows]
    changed_rows[0]["n"] = 99.0
    changed = pre_encode(
        datasets.Dataset.from_list(changed_rows), tokenizer, label_columns="n", cache_dir=tmp_path
    )
    assert changed[0]["labels"] == pytest.approx(99.0) and len(os.listdir(tmp_path)) == 3

    # One changed structure -> new entry with the new ids.
    swapped = [dict(row) for row in dielectric_rows]
    swapped[0]["structure"] = dielectric_rows[1]["structure"]
    recoded = pre_encode(
        datasets.Dataset.from_list(swapped), tokenizer, label_columns="n", cache_dir=tmp_path
    )
    assert recoded[0]["input_ids"] == first[1]["input_ids"] and len(os.listdir(tmp_path)) == 4

    # Another tokenizer setting -> another entry.
    loose = CloudTokenizerFast.from_scope_version("v1", symprec=0.1)
    assert tokenizer_fingerprint(loose) != tokenizer_fingerprint(tokenizer)
    pre_encode(dataset, loose, label_columns="n", cache_dir=tmp_path)
    assert len(os.listdir(tmp_path)) == 5


def test_content_fingerprint_ignores_layout_but_not_values(dielectric_rows):
    dataset = datasets.Dataset.from_list(dielectric_rows)
    columns = ["structure", "n"]
    assert dataset_content_fingerprint(dataset, columns) == dataset_content_fingerprint(
        datasets.concatenate_datasets([dataset.select(range(10)), dataset.select(range(10, 24))]), columns
    )
    assert dataset_content_fingerprint(dataset, columns) != dataset_content_fingerprint(
        dataset.select(range(23)), columns
    )


def test_streaming_encoding_leaves_out_and_reports_bad_rows(tokenizer, with_bad_rows):
    report = FailureReport()
    stream = encode_on_the_fly(
        with_bad_rows.to_iterable_dataset(), tokenizer, label_columns="n", report=report
    )
    rows = list(stream)
    assert len(rows) == 22 and set(rows[0]) == {"input_ids", "attention_mask", "labels"}
    assert report.rows_seen == 24 and report.counts() == {"parse_error": 1, "missing_label": 1}
    with pytest.raises(RowEncodingError):
        list(encode_on_the_fly(with_bad_rows.to_iterable_dataset(), tokenizer, label_columns="n"))
