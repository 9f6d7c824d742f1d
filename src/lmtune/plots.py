"""PNG plots for people (reports/ and MLflow); DVC renders the same data from JSON via dvc.yaml `plots:`."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lmtune.io import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def learning_curves(train: list[dict], val: list[dict], metric: str, path: Path) -> None:
    """Training loss and validation loss per step (left), and the validation metric (right)."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", alpha=0.8)
    if val:
        ax_loss.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="validation loss")
        ax_metric.plot([r["step"] for r in val], [r.get(metric, np.nan) for r in val], "o-", color="tab:green")
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="Loss")
    ax_loss.legend()
    ax_metric.set(xlabel="optimizer step", ylabel=metric, title=f"Validation {metric}")
    ax_metric.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    _save(fig, path)


def confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    """Counts with row-normalised shading, so small classes read as clearly as large ones."""
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test split)")
    _save(fig, path)
