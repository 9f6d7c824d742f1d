"""Metric functions against values computed by hand."""
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import f1_score
from transformers import EvalPrediction

from lmtune.metrics import classification_metrics, confusion, label_rows, multilabel_metrics, per_class_report
from lmtune.tasks import classification, multilabel


def test_classification_metrics_match_hand_computed_values():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class: P = (1, 1/2, 1/2), R = (2/3, 1/2, 1), F1 = (0.8, 0.5, 2/3)
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["f1_micro"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)


def test_per_class_report_and_confusion_use_label_names_and_all_classes():
    y_true, y_pred = np.array([0, 1, 1]), np.array([0, 1, 0])
    report = per_class_report(y_true, y_pred, ["neg", "pos", "neutral"])
    assert report["pos"]["recall"] == 0.5 and report["absent_labels"] == ["neutral"]
    assert confusion(y_true, y_pred, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_macro_averages_skip_labels_absent_from_test_truth_and_predictions():
    y_true = y_pred = np.array([0, 0, 1, 1, 1])  # label 2 was in train but is in neither test truth nor predictions
    m = classification_metrics(y_true, y_pred, 3)
    assert m["f1_macro"] == m["precision_macro"] == m["recall_macro"] == 1.0, "was 2/3: the absent label counted 0"
    assert m["f1_macro"] == f1_score(y_true, y_pred, average="macro"), "scikit-learn's default agrees"
    assert m["f1_weighted"] == m["f1_micro"] == 1.0


def test_a_label_only_predicted_still_counts_in_the_macro_average():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # label 2: one false positive, no support
    m = classification_metrics(y_true, y_pred, 4)  # label 3: absent
    # F1 per present label: 0 -> 2/3, 1 -> 1, 2 -> 0
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    report = per_class_report(y_true, y_pred, ["a", "b", "c", "d"])
    assert report["c"]["f1-score"] == 0.0 and report["absent_labels"] == ["d"]


def test_per_class_report_lists_absent_labels_apart_from_the_scored_rows():
    y_true = y_pred = np.array([0, 2, 2])
    report = per_class_report(y_true, y_pred, ["neg", "neutral", "pos"])
    assert list(report) == ["neg", "pos", "absent_labels"] and report["absent_labels"] == ["neutral"]
    assert label_rows(report) == {name: report[name] for name in ("neg", "pos")}, "plots get no zero bar"
    assert "absent_labels" not in per_class_report(np.array([0, 1]), np.array([1, 0]), ["a", "b"])


def test_multilabel_macro_skips_labels_with_no_true_and_no_predicted_positive():
    y_true = np.array([[1, 0, 0], [0, 1, 0]])
    y_pred = np.array([[1, 0, 0], [0, 1, 0]])  # column 2: never true, never predicted
    m = multilabel_metrics(y_true, y_pred)
    assert m["f1_macro"] == m["precision_macro"] == m["recall_macro"] == 1.0, "was 2/3"
    assert m["f1_micro"] == 1.0 and m["hamming_loss"] == 0.0
    report = per_class_report(y_true, y_pred, ["food", "sports", "politics"])
    assert set(label_rows(report)) == {"food", "sports"} and report["absent_labels"] == ["politics"]
    empty = multilabel_metrics(np.zeros((2, 3), int), np.zeros((2, 3), int))
    assert empty["f1_macro"] == 0.0 and empty["f1_samples"] == 1.0, "no label to average: 0, not NaN"


def test_validation_metrics_use_the_same_averages_as_the_test_metrics():
    labels = ["neg", "neutral", "pos"]
    truth = np.array([0, 2, 2])
    logits = np.eye(3)[truth]  # perfect predictions, "neutral" absent
    validation = classification.compute_metrics(labels, None, None, None)(EvalPrediction(logits, truth))
    assert validation == classification_metrics(truth, truth, 3) and validation["f1_macro"] == 1.0
    multi_truth = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    params = SimpleNamespace(multilabel=SimpleNamespace(threshold=0.5))
    fn = multilabel.compute_metrics(labels, params, None, None)
    validation = fn(EvalPrediction(np.where(multi_truth == 1, 5.0, -5.0), multi_truth))
    assert validation["f1_macro"] == 1.0 and validation == multilabel_metrics(multi_truth.astype(int), multi_truth)
