"""CloudTokenizerFast: the authors' ids exactly in v1, structures on the fly, padding, tensors, length policy."""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Structure
from transformers import AutoTokenizer

from tokenization import CloudTokenizerFast, ScopeError, ScopeTooLongError, StructureParseError


@pytest.fixture(scope="module")
def v1_tokenizer():
    return CloudTokenizerFast.from_scope_version("v1")


def test_v1_reproduces_the_authors_ids_on_all_10k(v1_tokenizer, official_pretrain_ids):
    # Called exactly as the authors' pretraining data loader calls their tokenizer.
    encoded = v1_tokenizer(
        [r["scope"] for r in official_pretrain_ids],
        max_length=64,
        padding="max_length",
        truncation=True,
        return_token_type_ids=False,
    )
    assert len(official_pretrain_ids) == 10_000
    wrong = [
        i
        for i, r in enumerate(official_pretrain_ids)
        if encoded["input_ids"][i] != r["input_ids"] or encoded["attention_mask"][i] != r["attention_mask"]
    ]
    assert wrong == []


def test_v1_vocabulary_and_special_ids(v1_tokenizer):
    assert len(v1_tokenizer) == 564
    assert (v1_tokenizer.cls_token_id, v1_tokenizer.pad_token_id, v1_tokenizer.sep_token_id) == (0, 1, 2)
    assert (v1_tokenizer.unk_token_id, v1_tokenizer.mask_token_id) == (3, 4)
    assert v1_tokenizer.model_max_length == 64
    assert v1_tokenizer.convert_tokens_to_ids(["0.0", "1.0"]) == [463, 563]
    assert "token_type_ids" not in v1_tokenizer("0 0 0 | 1a | Si 1.0")


def test_dynamic_padding_batches_and_tensors(v1_tokenizer, official_pretrain_ids):
    strings = [r["scope"] for r in official_pretrain_ids[:8]]
    batch = v1_tokenizer(strings, padding=True, return_tensors="pt")
    longest = max(sum(r["attention_mask"]) for r in official_pretrain_ids[:8])
    assert batch["input_ids"].shape == (8, longest)
    assert batch["input_ids"].dtype == torch.long
    for row, record in zip(batch["input_ids"].tolist(), official_pretrain_ids[:8], strict=True):
        assert row == record["input_ids"][:longest]


def test_structures_are_encoded_on_the_fly(v1_tokenizer, v1_fixture_records):
    records = v1_fixture_records[:6]
    structures = [Structure.from_dict(r["structure"]) for r in records]
    from_structures = v1_tokenizer(structures, padding=True)
    from_strings = v1_tokenizer([r["scope_v1"] for r in records], padding=True)
    assert from_structures["input_ids"] == from_strings["input_ids"]
    # Mixed inputs: a CIF text, a pymatgen dict and a SCOPE string in one batch.
    mixed = v1_tokenizer([records[0]["cif"], records[1]["structure"], records[2]["scope_v1"]])
    expected = v1_tokenizer([records[0]["scope_v1_cif"], records[1]["scope_v1"], records[2]["scope_v1"]])
    assert mixed["input_ids"] == expected["input_ids"]
    assert v1_tokenizer.encode_structure(structures[3]) == records[3]["scope_v1"]


def test_a_bad_item_in_a_batch_names_its_index(v1_tokenizer, v1_fixture_records):
    good = v1_fixture_records[0]["scope_v1"]
    with pytest.raises(StructureParseError, match=r"item 1 .*not a readable CIF"):
        v1_tokenizer([good, "data_broken\n_cell_length_a oops\n"])
    results = v1_tokenizer.batch_structures_to_scope(
        [good, "data_broken\n_cell_length_a oops\n"], errors="return"
    )
    assert results[0] == good and isinstance(results[1], ScopeError)


def test_overlong_inputs_are_never_cut_silently(v1_tokenizer, caplog):
    long_scope = "0 0 0 | " + " ".join(["1a"] * 70) + " | Si 1.0"
    with pytest.raises(ScopeTooLongError, match="above the maximum 64"):
        v1_tokenizer(long_scope)
    with caplog.at_level("WARNING"):
        ids = v1_tokenizer(long_scope, truncation=True)["input_ids"]
    assert len(ids) == 64 and "truncating" in caplog.text
    warn_tok = CloudTokenizerFast.from_scope_version("v1", overlength="warn")
    assert len(warn_tok(long_scope)["input_ids"]) == 64


def test_saved_tokenizer_records_its_version_and_reloads(tmp_path, v1_fixture_records):
    tok = CloudTokenizerFast.from_scope_version("v1", symprec=0.05)
    tok.save_pretrained(tmp_path)
    reloaded = CloudTokenizerFast.from_pretrained(tmp_path)
    assert isinstance(reloaded, CloudTokenizerFast)
    assert reloaded.scope_version == "v1" and reloaded.symprec == 0.05
    reloaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "CloudTokenizerFast"
    assert reloaded.scope_version == "v1" and reloaded.symprec == 0.05
    record = v1_fixture_records[0]
    assert reloaded(record["scope_v1"])["input_ids"] == tok(record["scope_v1"])["input_ids"]


def test_unknown_version_is_a_typed_error():
    with pytest.raises(ScopeError, match="unknown SCOPE version 'v9'"):
        CloudTokenizerFast.from_scope_version("v9")
