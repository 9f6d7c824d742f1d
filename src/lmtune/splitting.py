"""Train/validation/test assignment by example (never by feature row), stratified where the task allows."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from lmtune.errors import DataError

SPLITS = ("train", "validation", "test")


def _carve(ids: np.ndarray, strata: np.ndarray | None, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Split `ids` into (rest, carved) with `fraction` in carved, stratified by `strata` when given."""
    if fraction == 0:
        return ids, ids[:0]
    try:
        rest, carved = train_test_split(ids, test_size=fraction, random_state=seed, shuffle=True, stratify=strata)
    except ValueError as err:
        counts = dict(zip(*np.unique(strata, return_counts=True))) if strata is not None else {}
        small = {getattr(k, "item", lambda: k)(): int(v) for k, v in counts.items() if v < 2} or counts
        raise DataError(f"cannot carve a stratified {what} split of {fraction:.0%} from {len(ids)} examples ({err}). "
                        f"Classes with too few examples: {small}. Add examples to those classes, drop them, "
                        f"or raise split.{what.replace('validation', 'val')}_fraction") from None
    return rest, carved


def assign_splits(example_ids: np.ndarray, strata: np.ndarray | None, val_fraction: float,
                  test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Return the example ids of each split. Rows sharing an example id (QA windows, NER chunks) stay together.

    Args:
        example_ids: one id per row; several rows may share one.
        strata: one stratification key per row (the first row of each example is used), or None.
        val_fraction, test_fraction: fractions of examples.
        seed: random seed; the same inputs and seed give the same assignment.
    """
    ids, first = np.unique(example_ids, return_index=True)
    groups = strata[first] if strata is not None else None
    rest, test = _carve(np.arange(len(ids)), groups, test_fraction, seed, "test")  # positions into ids
    rest_groups = groups[rest] if groups is not None else None
    train, val = _carve(rest, rest_groups, val_fraction / (1 - test_fraction), seed, "validation")
    return {"train": np.sort(ids[train]), "validation": np.sort(ids[val]), "test": np.sort(ids[test])}


def carve_validation(example_ids: np.ndarray, strata: np.ndarray | None, train_ids: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) example ids: `fraction` of the examples in `train_ids` moved to validation, stratified by
    `strata` (one key per row; an example's first row counts) when given, whole examples only. For a split column
    that names train and test but no validation rows."""
    ids, first = np.unique(example_ids, return_index=True)
    positions = np.flatnonzero(np.isin(ids, train_ids))
    groups = strata[first[positions]] if strata is not None else None
    train, val = _carve(positions, groups, fraction, seed, "validation")
    return np.sort(ids[train]), np.sort(ids[val])
