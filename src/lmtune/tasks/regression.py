"""Text regression: one number per text (a rating, a similarity or readability score), one output unit trained
with mean squared error.

Input: the label column holds the number. A row whose label is not a finite number ("n/a", "nan", "inf") is rejected
with reason label_not_a_number; when no row has a number at all the column is wrong, and clean fails naming it.
The same text with two different numbers is a conflict (both copies dropped), as in classification.

Training standardises the targets: the fine-tune stage stores the train split's mean and std in the model config
(SCALING) and the model learns (target - mean) / std, so targets in the thousands train like targets near 0. The
model's outputs are always in the original units (scaling_hooks), so validation metrics, evaluate, `lmtune predict`
and the MLflow model never see standard units; only the training loss is in them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lmtune import io
from lmtune.errors import DataError
from lmtune.tasks import classification
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import ChunkedRows, encode_texts, input_rows, model_features, no_rows_left, \
    record_features, scan_rows, streamed_result
from lmtune.text import StreamedClean

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from lmtune.config import Params

OUTPUT = "value"  # the single output unit's name in the model config (id2label)
SCALING = "lmtune_target_scaling"  # model config key: {"mean", "std"} of the train split's targets


def parse_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a float `target` column (NaN where there is none) and preset reason label_not_a_number for a label that
    is not a finite number. Numbers are written back to `label` in one form ("4" and "4.0" both become "4.0")."""
    given = frame["label"].str.strip() != ""
    values = pd.to_numeric(frame["label"].str.strip(), errors="coerce").astype(np.float64)  # "n/a" -> NaN
    bad = given & ~np.isfinite(values)  # "nan" and "inf" parse, and are rejected here
    number = given & ~bad
    return frame.assign(target=values.where(number), label=frame["label"].mask(number, values.map(repr)),
                        reason=bad.map({True: "label_not_a_number", False: ""}))


def clean(path: Path, params: Params, chunk_rows: int = io.CHUNK_ROWS) -> StreamedClean:
    """Read the file in chunks, parse the targets, normalise texts and drop unusable rows (each with its reason)."""
    first_bad: list[pd.Series] = []  # the first row whose label is not a number, for the error below

    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        frame = parse_targets(frame)
        if not first_bad and (frame["reason"] != "").any():
            first_bad.append(frame[frame["reason"] != ""].iloc[0])
        return frame

    rows = ChunkedRows(path, params, prepare=prepare, chunk_rows=chunk_rows)
    # Equal numbers have equal float64 bits (and equal labels, which are repr(number)), so the bits are the label key.
    scan = scan_rows(rows, label_key=lambda chunk: chunk["target"].to_numpy(np.float64).view(np.int64))
    if first_bad and not np.isfinite(scan.label_key.view(np.float64)).any():
        first = first_bad[0]
        raise DataError(f"{path}: row {first['row']}: label {first['label']!r} in column {params.task.label_column!r} "
                        f"is not a number, and no row has a numeric label; regression needs a number per row: set "
                        f"task.label_column to the column holding it")
    if not scan.kept.any():
        raise no_rows_left(path, len(scan.reason))
    target = pd.Series(scan.label_key[scan.kept].view(np.float64))
    return streamed_result(rows, scan, [], {"target": {
        "mean": round(float(target.mean()), 6), "std": round(float(target.std(ddof=0)), 6),
        "min": float(target.min()), "max": float(target.max())}}, lambda part: part,
        [pa.field("target", pa.float64())])


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    return encode_texts(ds, tokenizer, params, lambda batch: [float(v) for v in batch["target"]])


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None,
               pooling: str = "auto") -> Any:
    """One output unit (the predicted number) with MSE loss; `labels` is [] for this task. A model fine-tuned with
    standardised targets answers in the original units."""
    model = classification.load_model(name_or_path, [OUTPUT], revision, attn_implementation,
                                      problem_type="regression", pooling=pooling)
    if getattr(model.config, SCALING, None):
        scaling_hooks(model)
    return model


def standardize_targets(model: Any, targets: np.ndarray) -> dict[str, float]:
    """Train on standardised targets: the mean and std of `targets` (the train split's) go into the model config,
    saved with the model, and the model reads them in every forward pass (scaling_hooks). A LoRA (peft) model's
    hooks go on the model it wraps, which is what gets saved. Returns {"mean", "std"}; a constant target: std 1."""
    targets = np.asarray(targets, dtype=np.float64)
    std = float(targets.std())
    scaling = {"mean": float(targets.mean()), "std": std if std > 0 else 1.0}
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    setattr(base.config, SCALING, scaling)
    scaling_hooks(base)
    return scaling


def scaling_hooks(model: Any) -> None:
    """Hooks on `model` (once): `labels` in are standardised with the config's SCALING, so the MSE loss is in
    standard units, and the logits out are in the original units (fp32: bf16 keeps 3 significant digits). The config
    is read at call time, so a model fine-tuned again on new data uses the new figures."""
    if getattr(model, "_lmtune_scaling_hooks", False):
        return
    config = model.config

    def standardize(module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if kwargs.get("labels") is not None:
            scaling = getattr(config, SCALING)
            kwargs = {**kwargs, "labels": (kwargs["labels"] - scaling["mean"]) / scaling["std"]}
        return args, kwargs

    def original_units(module: Any, args: tuple, output: Any) -> Any:
        scaling = getattr(config, SCALING)
        output.logits = output.logits.float() * scaling["std"] + scaling["mean"]
        return output

    model.register_forward_pre_hook(standardize, with_kwargs=True)
    model.register_forward_hook(original_units)
    model._lmtune_scaling_hooks = True


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    from lmtune import metrics

    def fn(pred: Any) -> dict[str, float]:
        return metrics.regression_metrics(pred.label_ids.reshape(-1), pred.predictions.reshape(-1))  # (n, 1) -> (n,)

    return fn


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    from lmtune import metrics, plots
    from lmtune.inference import batched_logits

    predicted = batched_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True)[:, 0]
    actual = np.asarray(test["labels"], dtype=np.float64)
    predictions = [{**inputs, "target": round(float(a), 6), "predicted": round(float(p), 6),
                    "error": round(float(p - a), 6)} for inputs, a, p in zip(input_rows(test), actual, predicted)]
    return EvalResult(metrics=metrics.regression_metrics(actual, predicted), predictions=predictions,
                      plots={"actual_vs_predicted": [{"actual": p["target"], "predicted": p["predicted"]}
                                                     for p in predictions]},
                      figures={"predicted_vs_actual.png": lambda path: plots.predicted_vs_actual(actual, predicted,
                                                                                                 path)})


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    from lmtune.inference import batched_logits

    values = batched_logits(model, tokenizer, record_features(tokenizer, records, info), batch_size)
    return [{"value": round(float(v), 6)} for v in values[:, 0]]
