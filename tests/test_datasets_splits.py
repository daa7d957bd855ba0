"""MatBench-style k-fold and the leakage-aware k-fold grouped by SCOPE string."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_builders import load_cloud_example, load_materials_project
from dataset_builders.reporting import FailureReport
from dataset_builders.splits import MATBENCH_SEED, kfold_indices, scope_group_kfold, scope_groups


@pytest.mark.parametrize("num_rows", [10, 101, 6317])
def test_kfold_is_identical_to_scikit_learn_matbench_settings(num_rows):
    model_selection = pytest.importorskip("sklearn.model_selection")
    reference = model_selection.KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED).split(
        np.arange(num_rows)
    )
    for (train, test), (ref_train, ref_test) in zip(kfold_indices(num_rows), reference, strict=True):
        assert np.array_equal(train, ref_train) and np.array_equal(test, ref_test)


def test_kfold_partitions_the_rows():
    folds = kfold_indices(6317)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(6317))
    assert all(
        len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 6317 for train, test in folds
    )


def test_group_kfold_keeps_equal_scope_strings_on_one_side():
    """The authors' dielectric fold repeats SCOPE strings: random folds leak them, grouped folds do not."""
    scopes = load_cloud_example("dielectric")["train"]["scope"]
    leaks = [
        len(set(np.take(scopes, train)) & set(np.take(scopes, test)))
        for train, test in kfold_indices(len(scopes))
    ]
    assert min(leaks) > 0  # the problem is real
    folds = scope_group_kfold(scopes, n_splits=5)
    for train, test in folds:
        assert not set(np.take(scopes, train)) & set(np.take(scopes, test))
    sizes = [len(test) for _, test in folds]
    assert sum(sizes) == len(scopes) and max(sizes) - min(sizes) <= 2
    assert folds[0][1].tolist() == scope_group_kfold(scopes, n_splits=5)[0][1].tolist()  # deterministic


def test_scope_groups_from_structures_and_failures():
    rows = load_materials_project().select(range(12))["structure"]
    report = FailureReport()
    groups = scope_groups([*rows, "not a crystal"], version="v1", report=report)
    assert groups[-1] is None and report.num_failed == 1
    assert all(" | " in group for group in groups[:-1])
    folds = scope_group_kfold(groups, n_splits=3)
    assert 12 not in np.concatenate([np.concatenate([train, test]) for train, test in folds])
