"""Train/validation/test assignment by example (never by feature row), stratified where the task allows."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lmtune.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def _carve(ids: np.ndarray, strata: np.ndarray | None, fraction: float, seed: int, what: str,
           after_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Split `ids` into (rest, carved) with `fraction` in carved, stratified by `strata` when given; `after_test`:
    `ids` are what the test split left (said in the error, whose counts are of those)."""
    from sklearn.model_selection import train_test_split

    if fraction == 0:
        return ids, ids[:0]
    try:
        rest, carved = train_test_split(ids, test_size=fraction, random_state=seed, shuffle=True, stratify=strata)
    except ValueError as err:
        raise DataError(carve_problem(len(ids), strata, fraction, what, str(err), after_test)) from None
    return rest, carved


EXAMPLES_SHOWN = 5  # classes named in a split error; the rest are counted, so 2,000 classes give one short line


def carve_problem(examples: int, strata: np.ndarray | None, fraction: float, what: str, reason: str,
                  after_test: bool = False) -> str:
    """One line on why `fraction` of `examples` cannot be carved as the `what` split (stratified by `strata`), with
    the count of classes at fault, a few of them by name, and the fix."""
    param = f"split.{what.replace('validation', 'val')}_fraction"
    head = f"cannot carve a {'stratified ' if strata is not None else ''}{what} split of {fraction:.0%} from " \
           f"{'the ' if after_test else ''}{examples} examples{' left after the test split' if after_test else ''}"
    if strata is None:
        return f"{head} ({reason.splitlines()[0][:200]}); add examples or change {param}"
    names, counts = np.unique(strata, return_counts=True)
    names = names.tolist()  # Python values, so a class reads as 'pos', not np.str_('pos')
    few = np.flatnonzero(counts < 2)
    if len(few):
        shown = ", ".join(f"{names[i]!r} ({counts[i]})" for i in few[:EXAMPLES_SHOWN])
        more = f" and {len(few) - EXAMPLES_SHOWN} more" if len(few) > EXAMPLES_SHOWN else ""
        return (f"{head}: {len(few)} of {len(names)} classes have fewer than 2 examples, e.g. {shown}{more}; add "
                f"examples to those classes or drop their rows")
    carved = int(np.ceil(fraction * examples))
    if min(carved, examples - carved) < len(names):
        return (f"{head}: a stratified split needs at least one example of each of the {len(names)} classes on "
                f"both sides, but the {what} split would hold {carved} and the rest {examples - carved}; set {param} "
                f"so both hold {len(names)} or more (e.g. {min(0.5, len(names) / examples):.3g}), or merge classes")
    return f"{head} ({reason.splitlines()[0][:200]}); add examples to the smallest classes or change {param}"


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
    train, val = _carve(rest, rest_groups, val_fraction / (1 - test_fraction), seed, "validation",
                        after_test=test_fraction > 0)
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


def label_counts(ds: Any, rows: dict[str, np.ndarray], n_labels: int, chunk_rows: int = 10_000) -> np.ndarray | None:
    """(splits, labels) int64: rows of each split (SPLITS order) with each label, from the tokenized `labels`
    column: class ids (one label a row) or multi-hot vectors (multilabel, a row counts for each of its labels).
    None for other label columns (per-token tags, regression targets)."""
    from datasets import Value

    from lmtune import io

    feature = ds.features.get("labels")
    member = np.zeros((len(SPLITS), len(ds)), dtype=bool)  # a row may sit in two splits (seq2seq's shared sources)
    for index, name in enumerate(SPLITS):
        member[index, rows[name]] = True
    counts = np.zeros((len(SPLITS), n_labels), dtype=np.int64)
    if isinstance(feature, Value) and feature.dtype.startswith("int"):
        ids = io.column_numpy(ds, "labels")
        for index, name in enumerate(SPLITS):
            counts[index] = np.bincount(ids[rows[name]], minlength=n_labels)
        return counts
    if not (hasattr(feature, "feature") and getattr(feature.feature, "dtype", "").startswith("float")):
        return None
    import pyarrow.compute as pc

    column = ds.select_columns(["labels"]).with_format("arrow")
    for start in range(0, len(ds), chunk_rows):  # (chunk, labels) at a time: memory does not grow with the data
        hot = pc.list_flatten(column[start:start + chunk_rows]["labels"]).to_numpy(zero_copy_only=False)
        hot = hot.reshape(-1, n_labels) > 0.5
        for index in range(len(SPLITS)):
            counts[index] += hot[member[index, start:start + len(hot)]].sum(axis=0)
    return counts


def label_coverage(counts: np.ndarray, labels: list[str], source: str) -> dict[str, dict[str, Any]]:
    """Per split: label_counts (label -> rows), labels_present and labels_absent (names), for reports/split.json.
    A label without train rows stops the stage (the model could never learn it); one without validation or test
    rows is a warning: its F1 cannot be measured there, and macro averages run over the labels present
    (lmtune.metrics.present_labels). `source` names the input in the error."""
    out: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(SPLITS):
        absent = [labels[i] for i in np.flatnonzero(counts[index] == 0)]
        out[name] = {"label_counts": {label: int(n) for label, n in zip(labels, counts[index])},
                     "labels_present": len(labels) - len(absent), "labels_absent": absent}
    total = counts.sum(axis=0)
    unseen = np.flatnonzero((counts[0] == 0) & (total > 0))
    if len(unseen):
        where = ", ".join(name for index, name in enumerate(SPLITS) if counts[index, unseen[0]])
        if len(unseen) == 1:
            raise DataError(f"{source}: label {labels[unseen[0]]!r} has no train rows (only in {where}), so the model "
                            f"could never learn it; add train rows with that label or drop its rows")
        shown = ", ".join(repr(labels[i]) for i in unseen[:EXAMPLES_SHOWN])
        more = f" and {len(unseen) - EXAMPLES_SHOWN} more" if len(unseen) > EXAMPLES_SHOWN else ""
        raise DataError(f"{source}: {len(unseen)} labels have no train rows, e.g. {shown}{more} "
                        f"({labels[unseen[0]]!r} is only in {where}), so the model could never learn them; add train "
                        f"rows with those labels or drop their rows")
    for index, name in enumerate(SPLITS[1:], 1):
        absent = np.flatnonzero((counts[index] == 0) & (total > 0))
        if len(absent) and counts[index].sum():
            shown = ", ".join(f"{labels[i]!r} ({int(total[i])} rows in all)" for i in absent[:EXAMPLES_SHOWN])
            logger.warning("%d of %d labels have no %s rows (rare classes that landed elsewhere): %s%s. Their %s "
                           "score cannot be measured; macro averages run over the labels present (listed in "
                           "split.json under %s.labels_absent)", len(absent), len(labels), name, shown,
                           ", ..." if len(absent) > EXAMPLES_SHOWN else "", name, name)
    return out
