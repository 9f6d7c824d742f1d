"""Split assignment: stratified, seeded, grouped by example, disjoint."""
import numpy as np
import pytest

from lmtune.errors import DataError
from lmtune.splitting import assign_splits


def test_splits_are_disjoint_cover_everything_and_follow_the_fractions():
    ids = np.arange(200)
    labels = np.array([0] * 100 + [1] * 60 + [2] * 40)
    parts = assign_splits(ids, labels, 0.1, 0.2, seed=1)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 140, "validation": 20, "test": 40}
    assert sorted(np.concatenate(list(parts.values()))) == list(ids)


def test_splits_are_stratified_by_label_in_test_and_validation():
    ids = np.arange(200)
    labels = np.array([0] * 100 + [1] * 60 + [2] * 40)
    parts = assign_splits(ids, labels, 0.1, 0.2, seed=1)
    assert np.bincount(labels[parts["test"]]).tolist() == [20, 12, 8]
    assert np.bincount(labels[parts["validation"]]).tolist() == [10, 6, 4]


def test_same_seed_gives_same_split_and_other_seed_differs():
    ids, labels = np.arange(100), np.arange(100) % 2
    a = assign_splits(ids, labels, 0.1, 0.2, seed=7)
    b = assign_splits(ids, labels, 0.1, 0.2, seed=7)
    c = assign_splits(ids, labels, 0.1, 0.2, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_rows_of_one_example_never_straddle_two_splits():
    example_ids = np.repeat(np.arange(50), 3)  # e.g. three QA windows per question
    parts = assign_splits(example_ids, None, 0.2, 0.2, seed=0)
    owners = {}
    for name, members in parts.items():
        for ex in members:
            owners.setdefault(ex, set()).add(name)
    assert all(len(s) == 1 for s in owners.values()) and len(owners) == 50


def test_class_too_small_to_stratify_gets_a_specific_error():
    ids = np.arange(21)
    labels = np.array([0] * 10 + [1] * 10 + [2])
    with pytest.raises(DataError, match=r"1 of 3 classes have fewer than 2 examples, e.g. 2 \(1\)"):
        assign_splits(ids, labels, 0.1, 0.2, seed=0)
