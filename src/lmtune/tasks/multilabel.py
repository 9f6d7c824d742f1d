"""Multi-label text classification: any number of labels per text (topics, tags, toxicity types), one sigmoid
per label trained with binary cross-entropy, a label predicted when its probability reaches multilabel.threshold.

Input: the label cell holds the labels joined by multilabel.label_separator ("politics|sports"), or in JSONL or
Parquet a list (["politics", "sports"]). "[]" (or an empty JSON list) is an explicitly empty label set and is kept
as a text with no label; a blank or null cell is a missing label and the row is rejected (missing_label).
Duplicates and conflicts compare label sets, so "sports|politics" and "politics|sports" are the same.
"""
from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lmtune import io
from lmtune.errors import DataError
from lmtune.tasks import classification
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import ChunkedRows, encode_texts, input_rows, model_features, no_rows_left, \
    record_features, scan_rows, streamed_result
from lmtune.text import StreamedClean, label_string, sorted_labels

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from lmtune.config import Params

NO_LABELS = "[]"  # an explicitly empty label set, as a cell or a JSON list; a blank cell is a missing label


def canonical_labels(cell: Any, separator: str, path: Path,
                     spellings: dict[str, dict[str, int]] | None = None) -> str | None:
    """One label cell (a separated string or a list) as its sorted, de-duplicated labels joined by `separator`:
    equal label sets give equal strings. NO_LABELS for an explicitly empty set, "" for a missing label, None for a
    cell (or list item) that is neither a string nor a number (rejected: label_not_a_string_or_number). Each label
    follows lmtune.text.label_string: numbers compare as numbers (1, "1" and 1.0 are label "1"; merged spellings are
    counted in `spellings`)."""
    if isinstance(cell, (list, tuple, np.ndarray)):
        items = [label_string(item, spellings) for item in cell]
        if None in items:
            return None
        inner = next((item for item in items if separator in item), None)
        if inner is not None:
            raise DataError(f"{path}: label {inner!r} contains multilabel.label_separator {separator!r}; rename "
                            f"the label or set multilabel.label_separator to a character no label uses")
        if not any(items):
            return NO_LABELS
    elif not isinstance(cell, str):  # a number (one label), a missing value (""), or an object (None)
        items = [label_string(cell, spellings)]
        if items[0] in (None, ""):
            return items[0]
    elif cell.strip() == NO_LABELS:
        return NO_LABELS
    else:
        items = [label_string(item, spellings) for item in cell.split(separator)]
    return separator.join(sorted({item for item in items if item}))


def label_set(canonical: str, separator: str) -> list[str]:
    return [] if canonical == NO_LABELS else canonical.split(separator)


def clean(path: Path, params: Params, chunk_rows: int = io.CHUNK_ROWS) -> StreamedClean:
    """Read the file in chunks, normalise texts, drop unusable rows (with reasons), map each label set to label ids."""
    separator = params.multilabel.label_separator
    spellings: dict[str, dict[str, int]] = {}
    rows = ChunkedRows(path, params, label_cell=lambda cell: canonical_labels(cell, separator, path, spellings),
                       chunk_rows=chunk_rows, spellings=spellings)
    scan = scan_rows(rows)
    set_counts = scan.kept_label_counts()  # canonical label set -> kept texts
    if not set_counts:
        raise no_rows_left(path, len(scan.reason))
    counts: Counter[str] = Counter()
    labelled = 0  # sum over kept texts of their label count
    for canonical, texts in set_counts.items():
        names = label_set(canonical, separator)
        counts.update({name: texts for name in names})
        labelled += texts * len(names)
    if not counts:
        raise DataError(f"{path}: every kept row has an empty label set ({NO_LABELS}); multi-label classification "
                        f"needs labels in column {params.task.label_column!r}")
    labels = sorted_labels(list(counts))
    index = {name: i for i, name in enumerate(labels)}
    kept = sum(set_counts.values())
    summary = {"label_counts": {name: counts[name] for name in labels},
               "mean_labels_per_text": round(labelled / kept, 4), "texts_without_labels": set_counts.get(NO_LABELS, 0),
               **classification.label_report(spellings, dict(counts))}
    labels, summary = classification.name_labels(labels, summary, params, path)  # label_ids keep the data's labels
    return streamed_result(rows, scan, labels, summary, lambda part: part.assign(label_ids=part["label"].map(
        lambda canonical: [index[name] for name in label_set(canonical, separator)])),
        [pa.field("label_ids", pa.list_(pa.int64()))])


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    """`labels` become multi-hot float vectors (texts x labels), the target type of BCEWithLogitsLoss."""
    def multi_hot(batch: dict[str, list[Any]]) -> list[np.ndarray]:
        out = np.zeros((len(batch["label_ids"]), len(labels)), dtype=np.float32)
        for row, ids in enumerate(batch["label_ids"]):
            out[row, ids] = 1.0
        return list(out)

    return encode_texts(ds, tokenizer, params, multi_hot)


# Sigmoid outputs with binary cross-entropy, one unit per label.
load_model = partial(classification.load_model, problem_type="multi_label_classification")


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    from scipy.special import expit

    from lmtune import metrics

    threshold = params.multilabel.threshold

    def fn(pred: Any) -> dict[str, float]:
        predicted = (expit(pred.predictions) >= threshold).astype(int)  # logits (texts, labels) -> 0/1
        return metrics.multilabel_metrics(pred.label_ids.astype(int), predicted)

    return fn


SCORED_LABELS = 20  # predictions.jsonl keeps at most this many scores a text beyond its true and predicted labels


def label_scores(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(labels, probs)}


def bounded_scores(labels: list[str], probs: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """label_scores for a predictions.jsonl row: every label's with up to SCORED_LABELS labels; with more, the
    SCORED_LABELS highest and those of the true and predicted labels, so the file grows with texts, not labels."""
    if len(labels) <= SCORED_LABELS:
        return label_scores(labels, probs)
    keep = np.argpartition(-probs, SCORED_LABELS)[:SCORED_LABELS]
    keep = np.union1d(keep, np.flatnonzero(truth | predicted))
    return {labels[i]: round(float(probs[i]), 6) for i in keep[np.argsort(-probs[keep], kind="stable")]}


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    from scipy.special import expit

    from lmtune import metrics, plots
    from lmtune.inference import batched_logits

    probs = expit(batched_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True))
    y_true = np.asarray(test["labels"]).astype(int)  # (texts, labels) 0/1
    y_pred = (probs >= params.multilabel.threshold).astype(int)
    names = np.asarray(labels)
    predictions = [{**inputs, "labels": names[t == 1].tolist(), "predicted": names[p == 1].tolist(),
                    "scores": bounded_scores(labels, pr, t == 1, p == 1)}
                   for inputs, t, p, pr in zip(input_rows(test), y_true, y_pred, probs)]
    per_label = metrics.per_class_report(y_true, y_pred, labels)  # sklearn reads indicator matrices per column
    scored = metrics.label_rows(per_label)  # labels with no true or predicted positive: listed, not drawn as 0
    classification.log_absent(per_label, len(labels))
    # Every (text, label) pair is one binary decision: the micro-averaged curve is the two-class curve over them.
    pr_curve = metrics.precision_recall_points(y_true.ravel(), np.stack([1 - probs.ravel(), probs.ravel()], axis=1))
    return EvalResult(
        metrics=metrics.multilabel_metrics(y_true, y_pred), predictions=predictions, reports={"per_label": per_label},
        plots={"f1_by_label": [{"label": name, "f1": round(v["f1-score"], 6)} for name, v in scored.items()],
               "precision_recall": pr_curve},
        figures={"per_label_f1.png": lambda path: plots.per_class_f1(scored, path),
                 "precision_recall.png": lambda path: plots.precision_recall(
                     pr_curve, "Precision-recall (micro-average over label decisions)", path)})


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    """Every label at or above the trained model's multilabel.threshold (saved in lmtune.json), and all scores."""
    from scipy.special import expit

    from lmtune.inference import batched_logits

    threshold, labels = info["params"]["multilabel"]["threshold"], info["labels"]
    probs = expit(batched_logits(model, tokenizer, record_features(tokenizer, records, info), batch_size))
    return [{"labels": [name for name, s in zip(labels, p) if s >= threshold], "scores": label_scores(labels, p)}
            for p in probs]
