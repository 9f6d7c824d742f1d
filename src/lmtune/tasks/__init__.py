"""Task registry: everything that differs between tasks lives in a TaskSpec, so stages never branch on task.

A stage does `spec = TASKS[params.task.name]` and calls the spec's functions. Adding a task means writing
one module with these functions and one entry below.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmtune.tasks import classification


@dataclass(frozen=True)
class TaskSpec:
    name: str
    clean: Callable[..., Any]  # (path, params) -> CleanResult: kept rows, rejected rows with reasons, labels
    tokenize: Callable[..., Any]  # (Dataset, tokenizer, params) -> (Dataset with example_id/labels, stats)
    stratify_column: str | None  # column the split stage stratifies on (None: no stratification)
    load_model: Callable[..., Any]  # (name_or_path, labels, revision) -> transformers model
    collator: Callable[..., Any]  # (tokenizer, dynamic_padding, max_length) -> data collator
    compute_metrics: Callable[..., Any]  # (labels) -> fn(EvalPrediction) -> dict for Trainer
    evaluate: Callable[..., Any]  # (predictor, test Dataset, labels, batch_size) -> EvalResult
    default_metric: str  # validation metric for early stopping / best model


TASKS: dict[str, TaskSpec] = {
    "classification": TaskSpec(
        name="classification",
        clean=classification.clean,
        tokenize=classification.tokenize,
        stratify_column="labels",
        load_model=classification.load_model,
        collator=classification.collator,
        compute_metrics=classification.compute_metrics,
        evaluate=classification.evaluate,
        default_metric="f1_macro",
    ),
}
