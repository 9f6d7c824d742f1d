"""Single-label text classification (sentiment, topic, intent; binary or multi-class)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from lmtune import io, metrics, models, plots
from lmtune.errors import DataError
from lmtune.inference import batched_logits, softmax
from lmtune.tasks.base import EvalResult
from lmtune.text import CleanResult, clean_labelled_texts, first_row_number, normalize_text, require_columns, \
    sorted_labels

if TYPE_CHECKING:
    from lmtune.config import Params

SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}


def read_labelled_texts(path: Path, params: Params, label_cell: Callable[[Any], str] | None = None) -> pd.DataFrame:
    """The input file as columns text, label (strings), row (1-based line) and, with a split column, split.
    `label_cell` turns one raw label cell into its string (default: the cell as text, "" when missing), e.g. a
    multi-label list into "a|b"."""
    t = params.task
    df = io.read_table(path, params.clean.input_format, params.clean.encoding)
    columns = {"task.text_column": t.text_column, "task.label_column": t.label_column}
    if t.split_column:
        columns["task.split_column"] = t.split_column
    require_columns(df, path, columns)
    frame = pd.DataFrame({
        "text": df[t.text_column].fillna("").astype(str),
        "label": df[t.label_column].map(label_cell) if label_cell else df[t.label_column].fillna("").astype(str),
        "row": first_row_number(path, params.clean.input_format) + np.arange(len(df)),
    })
    if t.split_column:
        frame["split"] = split_values(df[t.split_column], frame["row"], path, t.split_column)
    return frame


def split_values(column: pd.Series, rows: pd.Series, path: Path, name: str) -> pd.Series:
    """Map a split column's values (train, validation/val/dev, test; any case) to train/validation/test."""
    raw = column.astype(str).str.strip().str.lower()
    unknown = sorted(set(raw) - set(SPLIT_NAMES))
    if unknown:
        bad_row = int(rows[raw.isin(unknown)].iloc[0])
        raise DataError(f"{path}: row {bad_row}: split value {unknown[0]!r} in column {name!r} is "
                        f"not one of train, validation (val, dev), test; fix the value or set "
                        f"task.split_column: \"\" to split by fractions")
    return raw.map(SPLIT_NAMES)


def no_rows_left(path: Path, rejected: pd.DataFrame) -> DataError:
    return DataError(f"{path}: no usable rows left after cleaning ({len(rejected)} rejected; see the "
                     f"rejected-rows file for reasons); check task.text_column and task.label_column")


def clean(path: Path, params: Params) -> CleanResult:
    """Read the labelled file, normalise texts, drop unusable rows (with reasons), and map labels to ids."""
    kept, rejected = clean_labelled_texts(read_labelled_texts(path, params), params.clean.lowercase,
                                          params.clean.min_chars)
    if kept.empty:
        raise no_rows_left(path, rejected)
    labels = sorted_labels(kept["label"])
    if len(labels) < 2:
        raise DataError(f"{path}: only one class ({labels[0]!r}) after cleaning; classification needs "
                        f"at least two labels in column {params.task.label_column!r}")
    kept["label_id"] = kept["label"].map({name: i for i, name in enumerate(labels)}).astype("int64")
    counts = kept["label"].value_counts()
    return CleanResult(kept=kept, rejected=rejected, labels=labels,
                       summary={"label_counts": {name: int(counts.get(name, 0)) for name in labels}})


def encode_texts(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
                 labels_of: Any) -> tuple[Dataset, dict[str, int]]:
    """Tokenize `text` without padding (batches are padded at training time) and count truncated texts;
    `labels_of(batch)` gives the `labels` column. Shared by the text-level tasks."""
    max_length = params.tokenize.max_length

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": labels_of(batch), "length": [len(ids) for ids in enc["input_ids"]],
                "truncated": [bool(e.overflowing) for e in enc.encodings]}

    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in ("text", "row", "split")])
    out = out.add_column("example_id", list(range(len(out))))
    return out, {"truncated_texts": int(sum(out["truncated"]))}


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    return encode_texts(ds, tokenizer, params, lambda batch: batch["label_id"])


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None,
               problem_type: str | None = None) -> Any:
    """`problem_type` picks the loss (None: inferred from the labels' dtype, i.e. cross-entropy for class ids)."""
    return AutoModelForSequenceClassification.from_pretrained(
        models.resolve(name_or_path), revision=revision, num_labels=len(labels), attn_implementation=attn_implementation,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
        problem_type=problem_type, ignore_mismatched_sizes=True)


def collator(tokenizer: PreTrainedTokenizerBase, model: Any, params: Params, max_length: int) -> DataCollatorWithPadding:
    """Pad each batch to its own longest sequence, or to max_length when dynamic padding is off."""
    if params.fine_tune.dynamic_padding:
        return DataCollatorWithPadding(tokenizer, padding="longest")
    return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    def fn(pred: Any) -> dict[str, float]:
        return metrics.classification_metrics(pred.label_ids, np.argmax(pred.predictions, axis=-1), len(labels))

    return fn


def text_features(tokenizer: Any, texts: list[str], info: dict[str, Any]) -> list[dict[str, list[int]]]:
    """Normalise and tokenize raw texts the way clean and tokenize did for training."""
    clean = [normalize_text(t, info["lowercase"]) for t in texts]
    enc = tokenizer(clean, truncation=True, max_length=info["max_length"], return_token_type_ids=False)
    return [{"input_ids": ids, "attention_mask": mask} for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]


def model_features(ds: Dataset) -> list[dict[str, list[int]]]:
    return [{"input_ids": ids, "attention_mask": mask} for ids, mask in zip(ds["input_ids"], ds["attention_mask"])]


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    probs = softmax(batched_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True))
    y_true, y_pred = np.asarray(test["labels"]), probs.argmax(axis=-1)
    predictions = [{"text": text, "label": labels[t], "predicted": labels[p], "score": round(float(pr[p]), 6)}
                   for text, t, p, pr in zip(test["text"], y_true, y_pred, probs)]
    per_class = metrics.per_class_report(y_true, y_pred, labels)
    matrix = metrics.confusion(y_true, y_pred, len(labels))
    pr_curve = metrics.precision_recall_points(y_true, probs)
    pr_title = f"Precision-recall ({labels[1]!r} vs rest)" if len(labels) == 2 else \
        "Precision-recall (micro-average, one-vs-rest)"
    return EvalResult(
        metrics=metrics.classification_metrics(y_true, y_pred, len(labels)), predictions=predictions,
        reports={"per_class": per_class},
        plots={"confusion": [{"actual": p["label"], "predicted": p["predicted"]} for p in predictions],
               "f1_by_label": [{"label": name, "f1": round(v["f1-score"], 6)} for name, v in per_class.items()],
               "precision_recall": pr_curve},
        figures={"confusion_matrix.png": lambda path: plots.confusion_matrix(matrix, labels, path),
                 "per_class_f1.png": lambda path: plots.per_class_f1(per_class, path),
                 "precision_recall.png": lambda path: plots.precision_recall(pr_curve, pr_title, path)})


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    probs = softmax(batched_logits(model, tokenizer, text_features(tokenizer, [r["text"] for r in records], info),
                                   batch_size))
    labels = info["labels"]
    return [{"label": labels[int(p.argmax())], "score": round(float(p.max()), 6),
             "scores": {name: round(float(s), 6) for name, s in zip(labels, p)}} for p in probs]
