"""Single-label text classification (sentiment, topic, intent; binary or multi-class)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from lmtune import io, metrics, models
from lmtune.errors import DataError
from lmtune.inference import batched_logits, softmax
from lmtune.text import CleanResult, clean_labelled_texts, first_row_number, require_columns, sorted_labels

if TYPE_CHECKING:
    from lmtune.config import Params

SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}


def clean(path: Path, params: Params) -> CleanResult:
    """Read the labelled file, normalise texts, drop unusable rows (with reasons), and map labels to ids."""
    t = params.task
    df = io.read_table(path, params.clean.input_format, params.clean.encoding)
    columns = {"task.text_column": t.text_column, "task.label_column": t.label_column}
    if t.split_column:
        columns["task.split_column"] = t.split_column
    require_columns(df, path, columns)
    frame = pd.DataFrame({
        "text": df[t.text_column].fillna("").astype(str),
        "label": df[t.label_column].fillna("").astype(str),
        "row": first_row_number(path, params.clean.input_format) + np.arange(len(df)),
    })
    if t.split_column:
        raw = df[t.split_column].astype(str).str.strip().str.lower()
        unknown = sorted(set(raw) - set(SPLIT_NAMES))
        if unknown:
            bad_row = int(frame["row"][raw.isin(unknown)].iloc[0])
            raise DataError(f"{path}: row {bad_row}: split value {unknown[0]!r} in column {t.split_column!r} is "
                            f"not one of train, validation (val, dev), test; fix the value or set "
                            f"task.split_column: \"\" to split by fractions")
        frame["split"] = raw.map(SPLIT_NAMES)
    kept, rejected = clean_labelled_texts(frame, params.clean.lowercase, params.clean.min_chars)
    if kept.empty:
        raise DataError(f"{path}: no usable rows left after cleaning ({len(rejected)} rejected; see the "
                        f"rejected-rows file for reasons); check task.text_column and task.label_column")
    labels = sorted_labels(kept["label"])
    if len(labels) < 2:
        raise DataError(f"{path}: only one class ({labels[0]!r}) after cleaning; classification needs "
                        f"at least two labels in column {t.label_column!r}")
    kept["label_id"] = kept["label"].map({name: i for i, name in enumerate(labels)}).astype("int64")
    return CleanResult(kept=kept, rejected=rejected, labels=labels)


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params) -> tuple[Dataset, dict[str, int]]:
    """Tokenize without padding (batches are padded at training time); count truncated texts."""
    max_length = params.tokenize.max_length

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": batch["label_id"], "length": [len(ids) for ids in enc["input_ids"]],
                "truncated": [bool(e.overflowing) for e in enc.encodings]}

    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in ("text", "row", "split")])
    out = out.add_column("example_id", list(range(len(out))))
    return out, {"truncated_texts": int(sum(out["truncated"]))}


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    return AutoModelForSequenceClassification.from_pretrained(
        models.resolve(name_or_path), revision=revision, num_labels=len(labels), attn_implementation=attn_implementation,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True)


def collator(tokenizer: PreTrainedTokenizerBase, dynamic_padding: bool, max_length: int) -> DataCollatorWithPadding:
    """Pad each batch to its own longest sequence, or to max_length when dynamic padding is off."""
    if dynamic_padding:
        return DataCollatorWithPadding(tokenizer, padding="longest")
    return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)


def compute_metrics(labels: list[str]) -> Any:
    def fn(pred: Any) -> dict[str, float]:
        return metrics.classification_metrics(pred.label_ids, np.argmax(pred.predictions, axis=-1), len(labels))

    return fn


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]  # headline metrics for reports/metrics.json
    per_class: dict[str, dict[str, float]]  # per-label precision/recall/F1/support
    confusion: np.ndarray  # rows = actual, columns = predicted
    pr_curve: list[dict[str, float]]  # precision-recall points (positive class, or micro-averaged)
    predictions: list[dict[str, Any]]  # one row per test example


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             batch_size: int) -> EvalResult:
    features = [{"input_ids": ids, "attention_mask": mask}
                for ids, mask in zip(test["input_ids"], test["attention_mask"])]
    probs = softmax(batched_logits(model, tokenizer, features, batch_size, progress=True))
    y_true, y_pred = np.asarray(test["labels"]), probs.argmax(axis=-1)
    predictions = [{"text": text, "label": labels[t], "predicted": labels[p], "score": round(float(pr[p]), 6)}
                   for text, t, p, pr in zip(test["text"], y_true, y_pred, probs)]
    return EvalResult(metrics=metrics.classification_metrics(y_true, y_pred, len(labels)),
                      per_class=metrics.per_class_report(y_true, y_pred, labels),
                      confusion=metrics.confusion(y_true, y_pred, len(labels)), predictions=predictions,
                      pr_curve=metrics.precision_recall_points(y_true, probs))
