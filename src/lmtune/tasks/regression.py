"""Text regression: one number per text (a rating, a similarity or readability score), one output unit trained
with mean squared error.

Input: the label column holds the number. A row whose label is not a finite number ("n/a", "nan", "inf") is rejected
with reason label_not_a_number; when no row has a number at all the column is wrong, and clean fails naming it.
The same text with two different numbers is a conflict (both copies dropped), as in classification.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from lmtune import metrics, plots
from lmtune.errors import DataError
from lmtune.inference import batched_logits
from lmtune.tasks import classification
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import encode_texts, model_features, no_rows_left, read_labelled_texts, \
    text_features
from lmtune.text import CleanResult, clean_labelled_texts

if TYPE_CHECKING:
    from lmtune.config import Params

OUTPUT = "value"  # the single output unit's name in the model config (id2label)


def parse_targets(frame: pd.DataFrame, path: Path, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add a float `target` column; return (rows with a number or a blank label, rows rejected as not a number).
    Numbers are written back to `label` in one form ("4" and "4.0" both become "4.0") so duplicate and conflict
    checks compare values."""
    given = frame["label"].str.strip() != ""
    values = pd.to_numeric(frame["label"].str.strip(), errors="coerce")  # "n/a" -> NaN; "nan" and "inf" parse
    bad = given & ~np.isfinite(values)
    if bad.any() and not (given & ~bad).any():
        first = frame[bad].iloc[0]
        raise DataError(f"{path}: row {first['row']}: label {first['label']!r} in column {column!r} is not a number, "
                        f"and no row has a numeric label; regression needs a number per row: set task.label_column "
                        f"to the column holding it")
    good = frame[~bad].assign(target=values[~bad])
    good.loc[given[~bad], "label"] = good.loc[given[~bad], "target"].map(repr)
    rejected = frame[bad].assign(reason="label_not_a_number")[["row", "reason", "label", "text"]]
    return good, rejected


def clean(path: Path, params: Params) -> CleanResult:
    """Read the file, parse the targets, normalise texts and drop unusable rows (each with its reason)."""
    frame, not_numbers = parse_targets(read_labelled_texts(path, params), path, params.task.label_column)
    kept, rejected = clean_labelled_texts(frame, params.clean.lowercase, params.clean.min_chars)
    rejected = pd.concat([not_numbers, rejected]).sort_values("row", kind="stable").reset_index(drop=True)
    if kept.empty:
        raise no_rows_left(path, rejected)
    target = kept["target"]
    return CleanResult(kept=kept, rejected=rejected, labels=[], summary={"target": {
        "mean": round(float(target.mean()), 6), "std": round(float(target.std(ddof=0)), 6),
        "min": float(target.min()), "max": float(target.max())}})


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    return encode_texts(ds, tokenizer, params, lambda batch: [float(v) for v in batch["target"]])


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    """One output unit (the predicted number) with MSE loss; `labels` is [] for this task."""
    return classification.load_model(name_or_path, [OUTPUT], revision, attn_implementation, problem_type="regression")


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    def fn(pred: Any) -> dict[str, float]:
        return metrics.regression_metrics(pred.label_ids.reshape(-1), pred.predictions.reshape(-1))  # (n, 1) -> (n,)

    return fn


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    predicted = batched_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True)[:, 0]
    actual = np.asarray(test["labels"], dtype=np.float64)
    predictions = [{"text": text, "target": round(float(a), 6), "predicted": round(float(p), 6),
                    "error": round(float(p - a), 6)} for text, a, p in zip(test["text"], actual, predicted)]
    return EvalResult(metrics=metrics.regression_metrics(actual, predicted), predictions=predictions,
                      plots={"actual_vs_predicted": [{"actual": p["target"], "predicted": p["predicted"]}
                                                     for p in predictions]},
                      figures={"predicted_vs_actual.png": lambda path: plots.predicted_vs_actual(actual, predicted,
                                                                                                 path)})


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    values = batched_logits(model, tokenizer, text_features(tokenizer, [r["text"] for r in records], info), batch_size)
    return [{"value": round(float(v), 6)} for v in values[:, 0]]
