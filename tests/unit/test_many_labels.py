"""Many labels (2,000 classes): metrics, pictures and split errors stay bounded in time, memory and size
(issue #16 item 4), and label coverage per split is reported (item 6)."""
from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from PIL import Image

from lmtune import metrics, plots
from lmtune.errors import DataError
from lmtune.splitting import assign_splits, label_coverage

N_LABELS = 2000
LABELS = [f"class{i:04d}" for i in range(N_LABELS)]


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(N_LABELS), 2)  # 4,000 test texts, 2 per class
    y_true[:400] = 7  # one big class, so "most test examples" has a clear leader
    y_pred = np.where(rng.random(len(y_true)) < 0.6, y_true, rng.integers(0, N_LABELS, len(y_true)))
    return y_true, y_pred


def test_top_confusion_is_top_by_support_plus_an_other_column(predictions):
    y_true, y_pred = predictions
    matrix, ids = metrics.top_confusion(y_true, y_pred, N_LABELS, plots.CONFUSION_LABELS)
    assert matrix.shape == (plots.CONFUSION_LABELS, plots.CONFUSION_LABELS + 1), "never labels x labels"
    assert 7 in ids and list(ids) == sorted(ids)
    support = np.bincount(y_true, minlength=N_LABELS)
    assert matrix.sum(axis=1).tolist() == support[ids].tolist(), "each row sums to its label's support"


def test_top_confusion_with_few_labels_is_the_plain_matrix():
    y_true, y_pred = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
    matrix, ids = metrics.top_confusion(y_true, y_pred, 4, plots.CONFUSION_LABELS)
    assert ids.tolist() == [0, 1, 2, 3] and (matrix == metrics.confusion(y_true, y_pred, 4)).all()


def test_confusion_cells_hold_the_whole_matrix_in_at_most_one_cell_per_text(predictions):
    y_true, y_pred = predictions
    cells = metrics.confusion_cells(y_true, y_pred, LABELS)
    assert len(cells) <= len(y_true) and sum(c["count"] for c in cells) == len(y_true)
    assert cells[0] == {"actual": "class0007", "predicted": "class0007", "count": cells[0]["count"]}
    assert cells[0]["count"] == max(c["count"] for c in cells), "most frequent first"


def test_confusion_picture_of_2000_labels_is_small_and_fast(predictions, tmp_path):
    y_true, y_pred = predictions
    start = time.perf_counter()
    matrix, ids = metrics.top_confusion(y_true, y_pred, N_LABELS, plots.CONFUSION_LABELS)
    plots.confusion_matrix(matrix, [LABELS[i] for i in ids], tmp_path / "cm.png", N_LABELS)
    assert time.perf_counter() - start < 30, "was minutes (a 2000 x 2000 grid of text)"
    width, height = Image.open(tmp_path / "cm.png").size
    assert width < 4000 and height < 4000, (width, height)


def test_square_matrix_over_many_labels_is_cut_down_by_the_plot_itself(tmp_path):
    matrix = np.diag(np.arange(1, 101))  # NER-style caller passing a full square matrix
    plots.confusion_matrix(matrix, [f"t{i}" for i in range(100)], tmp_path / "cm.png")
    width, height = Image.open(tmp_path / "cm.png").size
    assert width < 4000 and height < 4000


def test_per_class_f1_picture_draws_at_most_bar_labels(predictions, tmp_path):
    y_true, y_pred = predictions
    report = metrics.label_rows(metrics.per_class_report(y_true, y_pred, LABELS))
    start = time.perf_counter()
    plots.per_class_f1(report, tmp_path / "f1.png")
    assert time.perf_counter() - start < 30
    assert Image.open(tmp_path / "f1.png").size[1] < 0.45 * plots.BAR_LABELS * 120 + 800, "bounded height"


def test_precision_recall_over_many_scores_is_binned_and_close_to_exact(monkeypatch):
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 50, 2000)
    probs = rng.random((2000, 50)).astype(np.float32)
    probs[np.arange(2000), y_true] += 0.5  # a signal: the true class scores higher
    probs /= probs.sum(axis=1, keepdims=True)
    exact = metrics.precision_recall_points(y_true, probs)
    monkeypatch.setattr(metrics, "EXACT_CURVE_CELLS", 1000)  # force the binned path on the same scores
    binned = metrics.precision_recall_points(y_true, probs)
    assert binned[0]["recall"] == pytest.approx(1.0) and binned[-1]["recall"] == 0.0
    exact_at = {round(p["recall"], 2): p["precision"] for p in exact}
    close = [abs(p["precision"] - exact_at[round(p["recall"], 2)]) for p in binned if round(p["recall"], 2) in exact_at]
    assert close and max(close) < 0.05, "binned thresholds trace the exact curve"


def test_stratify_error_with_2000_classes_is_one_short_line():
    strata = np.repeat(np.array(LABELS, dtype=object), 10)
    with pytest.raises(DataError) as err:
        assign_splits(np.arange(len(strata)), strata, 0.1, 0.05, seed=0)  # 1,000 test examples, 2,000 classes
    message = str(err.value)
    assert len(message) < 500 and "\n" not in message, "was a 54 KB line listing every class"
    assert "2000 classes" in message and "split.test_fraction" in message


def test_stratify_error_names_five_small_classes_and_counts_the_rest():
    strata = np.array(["big"] * 40 + LABELS[:12], dtype=object)  # 12 singleton classes
    with pytest.raises(DataError) as err:
        assign_splits(np.arange(len(strata)), strata, 0.2, 0.2, seed=0)
    message = str(err.value)
    assert "12 of 13 classes have fewer than 2 examples" in message and "and 7 more" in message
    assert "'class0000' (1)" in message and "class0005" not in message


def test_label_coverage_lists_absent_labels_and_warns_for_validation_and_test(caplog):
    counts = np.array([[5, 3, 2], [1, 0, 0], [1, 1, 0]])  # train, validation, test rows per label
    with caplog.at_level(logging.WARNING):
        coverage = label_coverage(counts, ["a", "b", "rare"], "data")
    assert coverage["validation"]["labels_absent"] == ["b", "rare"] and coverage["test"]["labels_present"] == 2
    assert coverage["test"]["label_counts"] == {"a": 1, "b": 1, "rare": 0}
    warnings = [r.getMessage() for r in caplog.records]
    assert any("2 of 3 labels have no validation rows" in w for w in warnings)
    assert any("1 of 3 labels have no test rows" in w and "'rare' (2 rows in all)" in w for w in warnings)


def test_label_coverage_refuses_labels_without_train_rows_naming_a_few():
    counts = np.zeros((3, N_LABELS), dtype=np.int64)
    counts[0, :10] = 3
    counts[2, 10:] = 1  # 1,990 labels only in test
    with pytest.raises(DataError) as err:
        label_coverage(counts, LABELS, "data/tokenized")
    message = str(err.value)
    assert "1990 labels have no train rows" in message and "and 1985 more" in message and len(message) < 500
