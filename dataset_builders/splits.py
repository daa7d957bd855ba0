"""Cross-validation splits: MatBench-style k-fold, and a leakage-aware k-fold grouped by SCOPE string.

SCOPE does not tell every polymorph apart (the authors' dielectric fold has 26 test strings that also occur in its
training part), so a random split can put the *same model input* on both sides. :func:`scope_group_kfold` keeps all
rows that share a SCOPE string in one fold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from tokenization import ScopeError, is_scope_string, structure_to_scope
from tokenization.scope_defaults import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SCOPE_VERSION, DEFAULT_SYMPREC

from .reporting import FailureReport, handle_failure

logger = logging.getLogger(__name__)

#: The seed MatBench uses for its 5-fold splits (``KFold(n_splits=5, shuffle=True, random_state=18012019)``).
MATBENCH_SEED = 18012019


def kfold_indices(
    num_rows: int, n_splits: int = 5, seed: int = MATBENCH_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index arrays of a shuffled k-fold, identical to scikit-learn's
    ``KFold(n_splits, shuffle=True, random_state=seed).split(range(num_rows))`` (MatBench's splits with the defaults).

    Example:
        >>> folds = kfold_indices(10, n_splits=5)
        >>> [len(test) for _, test in folds]
        [2, 2, 2, 2, 2]
    """
    if not 2 <= n_splits <= num_rows:
        raise ValueError(f"n_splits={n_splits} must be between 2 and the number of rows ({num_rows})")
    order = np.arange(num_rows)
    np.random.RandomState(seed).shuffle(order)
    fold_sizes = np.full(n_splits, num_rows // n_splits, dtype=int)
    fold_sizes[: num_rows % n_splits] += 1
    folds = []
    start = 0
    for size in fold_sizes:
        test = order[start : start + size]
        mask = np.ones(num_rows, dtype=bool)
        mask[test] = False
        folds.append((np.flatnonzero(mask), np.sort(test)))
        start += size
    return folds


def scope_groups(
    structures: Sequence,
    version: str = DEFAULT_SCOPE_VERSION,
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    report: FailureReport | None = None,
) -> list[str | None]:
    """The SCOPE string of each structure (SCOPE strings pass through unchanged), used as its group.

    Args:
        structures (`Sequence`): structures in any form `tokenization.load_structure` reads, or SCOPE strings.
        version (`str`, defaults to `"v2"`): SCOPE version; v2 (canonical) is the right grouping.
        symprec (`float`, defaults to 0.01): symmetry tolerance in Å.
        angle_tolerance (`float`, defaults to 5.0): angle tolerance in degrees.
        report ([`FailureReport`], *optional*): where to record structures that cannot be encoded.

    Returns:
        `list[str | None]`: one group per structure; `None` for a structure recorded in `report` (no group:
        [`scope_group_kfold`] leaves it out).

    Raises:
        `ScopeError`: without a `report`, for the first structure that cannot be encoded (it names the row).

    Example:

    ```python
    >>> scope_groups(["SG225 Na 0.5 4a Cl 0.5 4b", "SG227 Si 1.0 8a"])
    ['SG225 Na 0.5 4a Cl 0.5 4b', 'SG227 Si 1.0 8a']

    ```
    """
    groups: list[str | None] = []
    for index, item in enumerate(structures):
        if is_scope_string(item):
            groups.append(item)
            continue
        try:
            groups.append(
                structure_to_scope(item, version=version, symprec=symprec, angle_tolerance=angle_tolerance)
            )
        except ScopeError as error:
            handle_failure(report, f"row {index}", error)
            groups.append(None)
    return groups


def scope_group_kfold(
    groups: Sequence[str | None], n_splits: int = 5, seed: int = MATBENCH_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index arrays of a k-fold in which rows with the same group (SCOPE string) never straddle
    train and test. Rows whose group is ``None`` (could not be encoded) are in neither side.

    Groups are shuffled with ``seed``, then placed largest first into the fold with the fewest rows, so folds stay
    balanced even when a few strings are very common.

    Example:
        >>> folds = scope_group_kfold(["a", "b", "a", "c", "d", "b"], n_splits=2)
        >>> [sorted(test.tolist()) for _, test in folds]
        [[0, 2, 4], [1, 3, 5]]
    """
    groups = list(groups)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(index)
    if not 2 <= n_splits <= len(members):
        raise ValueError(
            f"n_splits={n_splits} must be between 2 and the number of distinct groups ({len(members)})"
        )
    names = sorted(members)
    np.random.RandomState(seed).shuffle(names)
    # Stable sort: equal-size groups keep their shuffled order.
    names.sort(key=lambda name: -len(members[name]))
    fold_rows: list[list[int]] = [[] for _ in range(n_splits)]
    for name in names:
        smallest = min(range(n_splits), key=lambda k: len(fold_rows[k]))
        fold_rows[smallest].extend(members[name])
    usable = np.array(sorted(i for rows in fold_rows for i in rows), dtype=int)
    folds = []
    for rows in fold_rows:
        test = np.array(sorted(rows), dtype=int)
        train = np.setdiff1d(usable, test)
        folds.append((train, test))
    return folds


__all__ = ["MATBENCH_SEED", "kfold_indices", "scope_group_kfold", "scope_groups"]
