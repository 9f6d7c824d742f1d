"""Metric functions (scikit-learn) returning JSON-safe dicts."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support


ABSENT_LABELS = "absent_labels"  # per_class_report key listing the labels the test split cannot score


def present_labels(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> list[int]:
    """Ids (of 0..n_labels-1) of the labels that occur in the truth or the predictions: label ids per row, or the
    columns of indicator matrices (texts x labels). Averages run over these only, as scikit-learn's default does:
    a label with no true and no predicted example has no precision or recall to measure, and counting it as 0
    would pull macro scores down for a class the split does not contain (2 perfect labels of 3 gave 0.667)."""
    if y_true.ndim == 2:
        counts = y_true.sum(axis=0) + y_pred.sum(axis=0)
    else:
        counts = np.bincount(y_true, minlength=n_labels) + np.bincount(y_pred, minlength=n_labels)
    return np.flatnonzero(counts).tolist()


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> dict[str, float]:
    """Accuracy and precision/recall/F1 averaged macro, micro and weighted over the `n_labels` classes present in
    the truth or predictions (present_labels). Validation (compute_metrics) and test both use this function."""
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    present = present_labels(y_true, y_pred, n_labels)
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=average, zero_division=0)
        out |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    return out


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support keyed by label name, for the labels present in the truth or predictions;
    the others are listed by name under ABSENT_LABELS (only when there are some) instead of scored 0, which would
    read as a model failure. Label ids per row, or indicator matrices (texts x labels) for multi-label."""
    present = present_labels(y_true, y_pred, len(labels))
    report = classification_report(y_true, y_pred, labels=present, target_names=[labels[i] for i in present],
                                   output_dict=True, zero_division=0)
    out: dict[str, Any] = {labels[i]: {k: float(v) for k, v in report[labels[i]].items()} for i in present}
    absent = [labels[i] for i in sorted(set(range(len(labels))) - set(present))]
    return out | ({ABSENT_LABELS: absent} if absent else {})


def label_rows(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The scored label rows of a per_class_report, without its list of absent labels (for plots: no zero bars)."""
    return {name: row for name, row in report.items() if name != ABSENT_LABELS}


EXACT_CURVE_CELLS = 5_000_000  # (texts x labels) scores up to which the PR curve sorts every score; above, binned


def precision_recall_points(y_true: np.ndarray, probs: np.ndarray, max_points: int = 200) -> list[dict[str, float]]:
    """Precision-recall curve: of the positive class (id 1) for two labels, micro-averaged one-vs-rest otherwise.
    Thinned to at most `max_points` points so plots stay light on large test sets. Above EXACT_CURVE_CELLS scores
    (many labels times many texts) the thresholds are 1,000 equal score bins instead of every score, so time and
    memory stay linear in the scores (no sort, no dense int64 copy)."""
    from sklearn.metrics import precision_recall_curve

    if probs.shape[1] == 2:
        truth, scores = y_true == 1, probs[:, 1]
    else:
        truth = np.zeros(probs.shape, dtype=bool)  # one-vs-rest indicators, 1 byte a cell
        truth[np.arange(len(y_true)), y_true] = True
        truth, scores = truth.ravel(), probs.ravel()
    if scores.size > EXACT_CURVE_CELLS:
        precision, recall = binned_precision_recall(truth, scores)
    else:
        precision, recall, _ = precision_recall_curve(truth.astype(np.int8), scores)
    keep = np.unique(np.linspace(0, len(recall) - 1, min(max_points, len(recall))).astype(int))
    return [{"recall": round(float(recall[i]), 6), "precision": round(float(precision[i]), 6)} for i in keep]


def binned_precision_recall(truth: np.ndarray, scores: np.ndarray, bins: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at thresholds 0, 1/bins, ..., 1 on probabilities, in precision_recall_curve's order
    (recall falling, ending at recall 0 and precision 1)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    positives = np.histogram(scores[truth], bins=edges)[0][::-1].cumsum()  # predicted positive at each threshold,
    predicted = np.histogram(scores, bins=edges)[0][::-1].cumsum()  # from the highest threshold down
    found = predicted > 0
    precision = positives[found] / predicted[found]
    recall = positives[found] / max(int(truth.sum()), 1)
    return np.append(precision[::-1], 1.0), np.append(recall[::-1], 0.0)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion matrix, rows = actual, columns = predicted."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_labels)))


def confusion_cells(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """The whole confusion matrix as data, its non-zero cells only (at most one per test text, however many labels):
    {"actual", "predicted", "count"}, most frequent first. Written to reports/eval/confusion.json."""
    pairs, counts = np.unique(np.stack([y_true, y_pred], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts))
    return [{"actual": labels[pairs[i, 0]], "predicted": labels[pairs[i, 1]], "count": int(counts[i])} for i in order]


def top_labels(y_true: np.ndarray, n_labels: int, top: int) -> np.ndarray:
    """Ids of the `top` labels with the most true examples (ties: lower id), in id order; every id if n_labels <= top."""
    support = np.bincount(y_true, minlength=n_labels)
    return np.sort(np.argsort(-support, kind="stable")[:top])


def top_confusion(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, ids): the confusion matrix among the `top` labels with the most true examples (top_labels), rows =
    actual, columns = predicted, in id order; with more labels than `top`, one last column counts the predictions
    of any other label, so each row still sums to its label's support. Memory: top x (top + 1), never labels^2."""
    ids = top_labels(y_true, n_labels, top)
    position = np.full(n_labels, -1)
    position[ids] = np.arange(len(ids))
    rows, columns = position[y_true], position[y_pred]
    other = len(ids) < n_labels
    columns = np.where(columns < 0, len(ids), columns)
    matrix = np.zeros((len(ids), len(ids) + other), dtype=np.int64)
    np.add.at(matrix, (rows[rows >= 0], columns[rows >= 0]), 1)
    return matrix, ids


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Multi-label scores from 0/1 indicator matrices (texts x labels): precision/recall/F1 micro (over every
    label decision) and macro (mean over the labels with a true or predicted positive, present_labels); samples F1
    (mean over texts; a text with no true and no predicted label counts as 1, since the empty prediction is right);
    subset accuracy (the whole label set right) and hamming loss (fraction of wrong label decisions, lower is
    better). Validation (compute_metrics) and test both use this function."""
    from sklearn.metrics import f1_score, hamming_loss

    out = {"subset_accuracy": float(accuracy_score(y_true, y_pred)),
           "hamming_loss": float(hamming_loss(y_true, y_pred)),
           "f1_samples": float(f1_score(y_true, y_pred, average="samples", zero_division=1.0))}
    # None when no label has a positive at all: every label then scores 0, where an empty mean would be NaN
    present = present_labels(y_true, y_pred, y_true.shape[1]) or None
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=average, zero_division=0)
        out |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE (target units, squared for MSE), R², and Pearson/Spearman correlation; a correlation is 0
    when either side is constant (undefined there, and NaN would break the metrics JSON)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = float(mean_squared_error(y_true, y_pred))
    varies = len(y_true) > 1 and np.ptp(y_true) > 0 and np.ptp(y_pred) > 0
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(mean_absolute_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else 0.0,
            "pearson": float(pearsonr(y_true, y_pred).statistic) if varies else 0.0,
            "spearman": float(spearmanr(y_true, y_pred).statistic) if varies else 0.0}
