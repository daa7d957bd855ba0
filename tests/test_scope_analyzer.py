"""The SCOPE analyser: one validation per input, one symmetry search per site ordering, views agree with the
functions that everything else calls."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from tokenization import (
    CloudTokenizerFast,
    DisorderedStructureError,
    ScopeAnalyzer,
    structure_to_scope,
)

EXAMPLES = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples"


@pytest.mark.parametrize("name", ["NaCl", "SrTiO3", "Al2O3", "NMC111"])
def test_views_match_the_encoding_functions(name):
    path = EXAMPLES / f"{name}.cif"
    analyzer = ScopeAnalyzer(path)
    assert analyzer.get_scope("v1") == structure_to_scope(path, version="v1")
    assert analyzer.get_scope("v2") == structure_to_scope(path, version="v2")
    assert analyzer.get_space_group_number() == int(analyzer.get_scope("v2").split()[0][2:])
    assert analyzer.n_atoms == pytest.approx(analyzer.structure.composition.num_atoms)
    assert analyzer.source == str(path)


def test_one_symmetry_search_per_ordering_and_one_validation():
    import spglib

    from tokenization import structure_io

    with mock.patch.object(
        structure_io, "validate_structure", wraps=structure_io.validate_structure
    ) as validate:
        analyzer = ScopeAnalyzer(EXAMPLES / "Si.cif")
    assert validate.call_count == 1
    with mock.patch.object(spglib, "get_symmetry_dataset", wraps=spglib.get_symmetry_dataset) as search:
        analyzer.get_scope("v1")
        assert search.call_count == 1  # the input order
        after_v1 = search.call_count
        analyzer.get_scope("v2")
        after_v2 = search.call_count
        assert after_v2 > after_v1  # the canonical order
        for _ in range(3):  # every later view is cached
            analyzer.get_scope("v1"), analyzer.get_scope("v2"), analyzer.get_space_group_number()
        assert search.call_count == after_v2


def test_tokenizer_encodes_through_the_analyser_with_its_policy():
    path = EXAMPLES / "YSZ.cif"
    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    assert tokenizer.encode_structure(path) == ScopeAnalyzer(path).get_scope("v2")
    strict = CloudTokenizerFast.from_scope_version("v2", disorder="raise")
    with pytest.raises(DisorderedStructureError):
        strict.analyze(path)
    assert strict.analyze(path, disorder="encode").reader_notes == []
