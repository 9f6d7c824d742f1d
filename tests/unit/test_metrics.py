"""Metric functions against values computed by hand."""
import numpy as np
import pytest

from lmtune.metrics import classification_metrics, confusion, per_class_report


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
    assert report["pos"]["recall"] == 0.5 and report["neutral"]["support"] == 0
    assert confusion(y_true, y_pred, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
