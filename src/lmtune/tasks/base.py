"""What every task module shares: the evaluation result and small helpers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]  # headline test metrics for reports/metrics.json
    predictions: list[dict[str, Any]]  # one row per test example -> reports/eval/predictions.jsonl
    reports: dict[str, Any] = field(default_factory=dict)  # name -> JSON document, e.g. per_label -> reports/eval/
    plots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # PLOT_KINDS key -> rows -> reports/plots/
    figures: dict[str, Callable[[Any], None]] = field(default_factory=dict)  # PNG name -> draw(path)


# Plot data directories under reports/plots/, each drawn by one template in dvc.yaml's `plots:`. A task fills the
# kinds that make sense for it; the others stay empty, which DVC skips.
PLOT_KINDS = {
    "confusion": "rows {actual, predicted} (confusion template)",
    "f1_by_label": "rows {label, f1} (bar_horizontal template)",
    "precision_recall": "rows {recall, precision} (scatter template)",
    "actual_vs_predicted": "rows {actual, predicted} numbers (scatter template)",
}
