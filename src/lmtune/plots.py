"""PNG plots for people (reports/ and MLflow); DVC renders the same data from JSON via dvc.yaml `plots:`."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lmtune.io import atomic_path  # noqa: E402

# Pictures stay readable and cheap however many labels there are (2,000 classes drew for minutes in 15 GB): they
# show at most this many labels, those with the most test examples; the full data is in reports/eval/ and
# reports/plots/ (DVC renders it).
CONFUSION_LABELS = 30  # rows (actual) and columns (predicted) of the confusion-matrix picture, plus "other"
BAR_LABELS = 40  # bars of the per-class F1 picture
OTHER = "(other labels)"


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def learning_curves(train: list[dict], val: list[dict], metric: str, path: Path, best_step: int | None = None) -> None:
    """Training loss and validation loss per step (left), the validation metric (right), the kept step marked."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", alpha=0.8)
    if val:
        ax_loss.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="validation loss")
        ax_metric.plot([r["step"] for r in val], [r.get(metric, np.nan) for r in val], "o-", color="tab:green")
    if best_step:
        for ax in (ax_loss, ax_metric):
            ax.axvline(best_step, color="grey", linestyle="--", linewidth=1, label=f"best, kept (step {best_step})")
        ax_metric.legend()
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="Loss")
    ax_loss.legend()
    ax_metric.set(xlabel="optimizer step", ylabel=metric, title=f"Validation {metric}")
    ax_metric.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    _save(fig, path)


def per_class_f1(per_class: dict[str, dict[str, float]], path: Path) -> None:
    """Horizontal F1 bars per label, with the support in the label, worst class at the top. With more than
    BAR_LABELS labels, the BAR_LABELS with the most test examples (the title says so)."""
    items = sorted(per_class.items(), key=lambda kv: -kv[1]["support"])[:BAR_LABELS]  # stable: ties keep order
    items.sort(key=lambda kv: kv[1]["f1-score"])
    title = "F1 per class" if len(items) == len(per_class) else \
        f"F1 per class: the {len(items)} of {len(per_class)} labels with most test examples"
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.45 * len(items) + 1)))
    names = [f"{name} (n={int(v['support'])})" for name, v in items]
    scores = [v["f1-score"] for _, v in items]
    ax.barh(names, scores, color="tab:blue")
    for y, score in enumerate(scores):
        ax.text(min(score + 0.01, 0.93), y, f"{score:.3f}", va="center")
    ax.set(xlim=(0, 1), xlabel="F1 (test split)", title=title)
    _save(fig, path)


def precision_recall(points: list[dict[str, float]], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([p["recall"] for p in points], [p["precision"] for p in points], drawstyle="steps-post")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path, total_labels: int | None = None) -> None:
    """Counts with row-normalised shading, so small classes read as clearly as large ones. `matrix` is square over
    `labels`, or (lmtune.metrics.top_confusion) has one more column, the predictions of labels not shown, of
    `total_labels` in all. A square matrix over more than CONFUSION_LABELS labels is cut down the same way."""
    total_labels = total_labels or len(labels)
    if matrix.shape[0] == matrix.shape[1] and len(labels) > CONFUSION_LABELS:
        keep = np.sort(np.argsort(-matrix.sum(axis=1), kind="stable")[:CONFUSION_LABELS])
        shown = matrix[keep][:, keep]
        matrix = np.column_stack([shown, matrix[keep].sum(axis=1) - shown.sum(axis=1)])
        labels = [labels[i] for i in keep]
    columns = labels + [OTHER] * (matrix.shape[1] - len(labels))
    size = max(4.0, 0.6 * len(columns) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    title = "Confusion matrix (test split)" if len(labels) == total_labels else \
        f"Confusion matrix (test split): the {len(labels)} of {total_labels} labels with most test examples"
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    _save(fig, path)


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Regression scatter: one point per test text, with the y = x line a perfect model would sit on."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=12, alpha=0.6)
    lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect (y = x)")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test split)")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
