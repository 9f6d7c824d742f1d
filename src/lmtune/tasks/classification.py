"""Single-label text classification (sentiment, topic, intent; binary or multi-class)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lmtune import io
from lmtune.errors import DataError, ParamsError
from lmtune.tasks.base import EvalResult
from lmtune.io import DATA_FILE, REJECTED_FILE
from lmtune.text import StreamedClean, first_row_number, label_codes, label_strings, mark_rows, \
    normalize_text, repeats, require_columns, row_keys, shown, similar_labels, sorted_labels, text_cell, text_strings

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

    from lmtune.config import Params

logger = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}


def iter_labelled_texts(path: Path, params: Params, label_cell: Callable[[Any], str | None] | None = None,
                        chunk_rows: int = io.CHUNK_ROWS,
                        spellings: dict[str, dict[str, int]] | None = None) -> Iterator[pd.DataFrame]:
    """The input file in chunks of columns text, label (strings), row (1-based line), reason, with
    task.text_pair_column text_pair (the pair's second text) and, with a split column, split. `label_cell` turns one
    raw label cell into its string (default lmtune.text.label_string: numbers compare as numbers, "" when missing;
    the spellings it merges are counted in `spellings`), e.g. a multi-label list into "a|b"; it returns None for a
    cell of a type the task cannot use.

    A text cell that is not a string (a number, boolean, list or object in JSONL or Parquet) is never trained on as
    its repr: the row's `reason` is text_not_a_string (text_pair_not_a_string, label_not_a_string_or_number for a
    label_cell None), and its text (or label) holds the value as JSON for rejected.csv; `reason` is "" otherwise."""
    read_labels = (lambda column: column.map(label_cell)) if label_cell else \
        (lambda column: label_strings(column, spellings))
    t = params.task
    columns = {"task.text_column": t.text_column, "task.label_column": t.label_column}
    if t.text_pair_column:
        columns["task.text_pair_column"] = t.text_pair_column
    if t.split_column:
        columns["task.split_column"] = t.split_column
    first_row = first_row_number(path, params.clean.input_format)
    jsonl = io.detect_format(path, params.clean.input_format) == "jsonl"
    seen: dict[str, None] = {}  # every column met so far, in order (JSONL rows may differ in their keys)
    no_split = 0  # first row of a JSONL chunk without split values
    for df in io.iter_table(path, params.clean.input_format, params.clean.encoding, chunk_rows):
        seen.update(dict.fromkeys(map(str, df.columns)))
        if jsonl:  # a key missing from every row of this chunk is a null here; missing from the file, an error
            df = df.assign(**{c: None for c in columns.values() if c not in df})
        else:
            require_columns(df, path, columns)
        (texts, bad_text), (labels, bad_label) = typed_cells(df[t.text_column], text_strings), \
            typed_cells(df[t.label_column], read_labels)
        frame = pd.DataFrame({"text": texts, "label": labels, "row": first_row + df.index.to_numpy()}, index=df.index)
        reason = np.where(bad_label, "label_not_a_string_or_number", "").astype(object)
        if t.text_pair_column:  # a sentence pair's second text
            pairs, bad_pair = typed_cells(df[t.text_pair_column], text_strings)
            frame.insert(1, "text_pair", pairs)
            reason[bad_pair] = "text_pair_not_a_string"
        reason[bad_text] = "text_not_a_string"
        frame["reason"] = reason
        if t.split_column and df[t.split_column].isna().all() and jsonl:
            no_split = no_split or int(frame["row"].iloc[0])  # reported once the column is known to exist
            frame["split"] = None
        elif t.split_column:
            frame["split"] = split_values(df[t.split_column], frame["row"], path, t.split_column)
        yield frame
    require_columns(pd.DataFrame(columns=list(seen)), path, columns)
    if no_split:
        raise bad_split_value(path, no_split, "nan", t.split_column)


def typed_cells(column: pd.Series, read: Callable[[pd.Series], pd.Series]) -> tuple[pd.Series, np.ndarray]:
    """(strings, wrong): `read` of `column` (a string per cell, None for a cell it refuses), where a refused value is
    shown as JSON instead and marked in `wrong` ((rows,) bool)."""
    values = column.astype(object)  # Parquet's numeric columns: numpy values, refused or read like JSON ones
    out = read(values)
    wrong = out.isna().to_numpy()
    if wrong.any():
        out = out.where(~wrong, values.map(shown))
    return out.astype(object), wrong


def read_labelled_texts(path: Path, params: Params, label_cell: Callable[[Any], str | None] | None = None) -> pd.DataFrame:
    """iter_labelled_texts as one DataFrame (for tasks that clean in memory: seq2seq, whose label column is a target
    text, so both columns are read as texts by default). A cell that is not a string stops with a DataError naming
    its row and field: this reader has no rejected-row reason for it."""
    frame = pd.concat(list(iter_labelled_texts(path, params, label_cell or text_cell)), ignore_index=True)
    bad = frame["reason"] != ""
    if bad.any():
        first = frame[bad].iloc[0]
        field, column = ("label", params.task.label_column) if first["reason"].startswith("label") else \
            ("text", params.task.text_column)
        raise DataError(f"{path}: row {first['row']}: field {column!r} holds {first[field]}, not a string; "
                        f"write the text as a JSON string (quoted) or drop the row")
    return frame.drop(columns="reason")


def split_values(column: pd.Series, rows: pd.Series, path: Path, name: str) -> pd.Series:
    """Map a split column's values (train, validation/val/dev, test; any case) to train/validation/test."""
    raw = column.astype(str).str.strip().str.lower()
    unknown = ~raw.isin(list(SPLIT_NAMES))
    if unknown.any():
        first = int(unknown.to_numpy().argmax())
        raise bad_split_value(path, int(rows.iloc[first]), raw.iloc[first], name)
    return raw.map(SPLIT_NAMES)


def bad_split_value(path: Path, row: int, value: str, name: str) -> DataError:
    return DataError(f"{path}: row {row}: split value {value!r} in column {name!r} is not one of train, "
                     f"validation (val, dev), test; fix the value or set task.split_column: \"\" to split by fractions")


def no_rows_left(path: Path, rejected: pd.DataFrame | int) -> DataError:
    count = rejected if isinstance(rejected, int) else len(rejected)
    return DataError(f"{path}: no usable rows left after cleaning ({count} rejected; see the "
                     f"rejected-rows file for reasons); check task.text_column and task.label_column")


# Streaming clean for the text-level tasks (classification, multilabel, regression). Pass 1 reads the input in
# chunks and keeps only fixed-size numbers per row: the reason code, a 128-bit hash of the normalised text and a
# label key (25 bytes a row). Duplicates and conflicts are then decided with numpy, so the label set and counts are
# known before anything is written. Pass 2 reads the input again and writes the kept rows and the rejected ones.
REASONS = ("", "empty_text", "empty_text_pair", "too_short", "missing_label", "label_not_a_number", "duplicate",
           "conflicting_labels", "train_copy_of_validation_or_test", "text_not_a_string", "text_pair_not_a_string",
           "label_not_a_string_or_number")
KEPT, DUPLICATE, CONFLICTING = 0, REASONS.index("duplicate"), REASONS.index("conflicting_labels")
TRAIN_COPY = REASONS.index("train_copy_of_validation_or_test")
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
# With a split column, repeats are found within each split: the split's code times these is XORed into the text
# key, so equal texts in two splits get different keys (a bijection per split: no new collisions within one).
SPLIT_SALT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], dtype=np.uint64)


@dataclass(frozen=True)
class ChunkedRows:
    """The rows of a text-level task's input, read chunk by chunk and marked by the one-row rules (mark_rows)."""
    path: Path
    params: Params
    label_cell: Callable[[Any], str] | None = None  # one raw label cell -> its string (multilabel: "a|b")
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # per chunk before the rules (regression: numbers)
    chunk_rows: int = io.CHUNK_ROWS
    # canonical label -> {spelling as read: rows} of the labels merged by the number rule ("1.0" into "1"); filled
    # as the rows are read (by label_cell when given, which must then update it itself)
    spellings: dict[str, dict[str, int]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for frame in iter_labelled_texts(self.path, self.params, self.label_cell, self.chunk_rows, self.spellings):
            typed = frame["reason"]  # a cell of the wrong type; `prepare` (regression) may set its own reasons
            frame = self.prepare(frame) if self.prepare else frame
            frame = mark_rows(frame, self.params.clean.lowercase, self.params.clean.min_chars)
            yield frame.assign(reason=typed.where(typed != "", frame["reason"]))


@dataclass(frozen=True)
class Scan:
    """Pass 1's result: per row (in file order) its final reason code and label key, and the label names."""
    reason: np.ndarray  # (rows,) uint8 index into REASONS; KEPT for a kept row
    label_key: np.ndarray  # (rows,) int64: a code into `names`, or the task's own key (regression: the number's bits)
    names: list[str]  # label string of each code
    train_copies: int = 0  # with a split column: train rows whose text is also kept in validation or test

    @property
    def kept(self) -> np.ndarray:
        return self.reason == KEPT

    def kept_label_counts(self) -> dict[str, int]:
        """Label string -> kept rows, in code order."""
        codes, counts = np.unique(self.label_key[self.kept], return_counts=True)
        return {self.names[code]: int(n) for code, n in zip(codes, counts)}


def scan_rows(rows: ChunkedRows, label_key: Callable[[pd.DataFrame], np.ndarray] | None = None) -> Scan:
    """Pass 1: reason codes, text hashes and label keys of every row; then duplicates and conflicts. `label_key`
    (default: codes of the label strings) must be equal exactly when two usable rows' labels are equal."""
    reasons, texts, keys, names, splits = [], [], [], {}, []
    with_split = bool(rows.params.task.split_column)
    for chunk in rows:
        reasons.append(pd.Categorical(chunk["reason"], categories=REASONS).codes.astype(np.uint8))
        texts.append(row_keys(chunk))  # a pair's key covers both texts
        keys.append(label_key(chunk) if label_key else label_codes(chunk["label"], names))
        if with_split:  # a bad split value is raised when the chunks end
            splits.append(chunk["split"].map(SPLIT_CODES).fillna(0).to_numpy(np.uint64))
    reason, keys, texts = np.concatenate(reasons), np.concatenate(keys), np.concatenate(texts)  # frees the chunks
    if not with_split:
        conflicting, duplicate = repeats(texts, keys, reason == KEPT)
        reason[conflicting], reason[duplicate] = CONFLICTING, DUPLICATE
        return Scan(reason=reason, label_key=keys, names=list(names))
    split = np.concatenate(splits)
    conflicting, duplicate = repeats(texts ^ (split[:, None] * SPLIT_SALT), keys, reason == KEPT)  # within a split
    reason[conflicting], reason[duplicate] = CONFLICTING, DUPLICATE
    # Across splits an official validation or test row is never dropped; a train row with the same text is the
    # train copy, dropped or kept as clean.cross_split_duplicates says (the leakage check counts kept ones).
    kept = reason == KEPT
    held_out = texts[kept & (split > 0)].view("V16").ravel()
    train = np.flatnonzero(kept & (split == 0))
    copies = train[np.isin(texts[train].view("V16").ravel(), held_out)]
    if rows.params.clean.cross_split_duplicates == "drop_train":
        reason[copies] = TRAIN_COPY
    return Scan(reason=reason, label_key=keys, names=list(names), train_copies=len(copies))


def streamed_result(rows: ChunkedRows, scan: Scan, labels: list[str], summary: dict,
                    add_columns: Callable[[pd.DataFrame], pd.DataFrame], fields: list[pa.Field]) -> StreamedClean:
    """The StreamedClean whose write() is pass 2: kept rows (plus `add_columns`, typed by `fields`) to data.parquet
    in fixed row groups, rejected rows appended to rejected.csv, both in file order."""
    pair = bool(rows.params.task.text_pair_column)
    base = [pa.field("text", pa.string()), pa.field("label", pa.string()), pa.field("row", pa.int64())]
    if pair:
        base.insert(1, pa.field("text_pair", pa.string()))
    if rows.params.task.split_column:
        base.append(pa.field("split", pa.string()))
    schema = pa.schema(base + fields)

    def write(out_dir: Path) -> None:
        start = 0
        with io.ParquetRowGroups(out_dir / DATA_FILE, schema) as data, \
                open(out_dir / REJECTED_FILE, "w", encoding="utf-8", newline="") as rejected:
            rejected.write("row,reason,label,text,text_pair\n" if pair else "row,reason,label,text\n")
            columns = ["row", "reason", "label", "original"] + (["original_pair"] if pair else [])
            for chunk in rows:
                reason = scan.reason[start:start + len(chunk)]
                start += len(chunk)
                keep = reason == KEPT
                if keep.any():
                    data.write(pa.Table.from_pandas(add_columns(chunk[keep]), schema=schema, preserve_index=False))
                dropped = chunk[~keep].assign(reason=np.asarray(REASONS, dtype=object)[reason[~keep]])
                dropped[columns].to_csv(rejected, header=False, index=False)

    counts = np.bincount(scan.reason, minlength=len(REASONS))
    by_reason = {name: int(counts[i]) for i, name in enumerate(REASONS) if i != KEPT and counts[i]}
    if rows.params.task.split_column:  # repeats are found within a split; across splits only train copies go
        action = rows.params.clean.cross_split_duplicates
        summary = {**summary, "cross_split_duplicates": {"train_copies": scan.train_copies, "action": action}}
    return StreamedClean(labels=labels, summary=summary, rows_kept=int(counts[KEPT]), writer=write,
                         rejected_by_reason=dict(sorted(by_reason.items())))


def clean(path: Path, params: Params, chunk_rows: int = io.CHUNK_ROWS) -> StreamedClean:
    """Read the labelled file in chunks, normalise texts, drop unusable rows (with reasons), map labels to ids."""
    rows = ChunkedRows(path, params, chunk_rows=chunk_rows)
    scan = scan_rows(rows)
    counts = scan.kept_label_counts()
    if not counts:
        raise no_rows_left(path, len(scan.reason))
    labels = sorted_labels(list(counts))
    if len(labels) < 2:
        raise DataError(f"{path}: only one class ({labels[0]!r}) after cleaning; classification needs "
                        f"at least two labels in column {params.task.label_column!r}")
    ids = {name: i for i, name in enumerate(labels)}
    summary = {"label_counts": {name: counts[name] for name in labels}, **label_report(rows.spellings, counts)}
    labels, summary = name_labels(labels, summary, params, path)  # label_id stays the data's label
    return streamed_result(rows, scan, labels, summary,
                           lambda kept: kept.assign(label_id=kept["label"].map(ids).astype("int64")),
                           [pa.field("label_id", pa.int64())])


def name_labels(labels: list[str], summary: dict[str, Any], params: Params,
                path: Path) -> tuple[list[str], dict[str, Any]]:
    """task.label_names: the names that stand for `labels` (the labels found, sorted) from here on: meta.json's
    labels, hence the model's id2label, every report, plot and prediction. The data keeps the labels as read
    (label, label_id). Returns (names, summary with label_counts by name and the label -> name mapping)."""
    names = params.task.label_names
    if not names:
        return labels, summary
    if len(names) != len(labels):
        found = ", ".join(map(repr, labels[:30])) + (f", ... ({len(labels)} in all)" if len(labels) > 30 else "")
        raise DataError(f"{path}: task.label_names has {len(names)} name(s) but column {params.task.label_column!r} "
                        f"holds {len(labels)} label(s) after cleaning: {found}; give one name per label, in this "
                        f"order, or set label_names: [] to keep them as they are")
    mapping = dict(zip(labels, names))
    logger.info("label names: %s", ", ".join(f"{label!r} = {name!r}" for label, name in list(mapping.items())[:10]))
    return list(names), {**summary, "label_counts": {mapping[k]: v for k, v in summary["label_counts"].items()},
                         "label_names": mapping}


def label_report(spellings: dict[str, dict[str, int]], counts: dict[str, int]) -> dict[str, Any]:
    """reports/clean.json's account of the label rule (lmtune.text.label_string): labels_merged (canonical label ->
    {spelling as read: rows}, the number spellings read as that label, e.g. {"1": {"1.0": 3}}) and similar_labels
    (groups of kept labels that differ only in case, width or spacing, {label: rows} each: suspicious, not merged).
    Each key only when it has something to say; both are logged. Call it after the scan, before the write pass
    reads the rows again (and counts the spellings twice)."""
    merged = {label: dict(sorted(found.items())) for label, found in sorted(spellings.items())}
    similar = similar_labels(counts)
    if merged:
        logger.info("labels that are one number, merged: %s", "; ".join(
            f"{', '.join(map(repr, found))} read as {label!r}" for label, found in list(merged.items())[:5]))
    if similar:
        logger.warning("%d group(s) of labels differ only in case or spacing and are kept as different classes, "
                       "e.g. %s; if they mean the same, fix the label column (see similar_labels in the clean "
                       "report)", len(similar), "; ".join(" / ".join(f"{k!r} ({v} rows)" for k, v in group.items())
                                                          for group in similar[:3]))
    return ({"labels_merged": merged} if merged else {}) | ({"similar_labels": similar} if similar else {})


def encode_inputs(tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str] | None,
                  max_length: int) -> Any:
    """One text per input, or with `pairs` a sentence pair encoded as the model's pair (separator, segment ids where
    the model has them) and truncated longest_first: tokens come off the longer text first, so a short premise
    survives a long hypothesis."""
    if pairs is None:
        return tokenizer(texts, truncation=True, max_length=max_length, return_token_type_ids=False)
    return tokenizer(texts, pairs, truncation="longest_first", max_length=max_length)


def features_of(enc: Any) -> list[dict[str, list[int]]]:
    """Per-input feature dicts (input_ids, attention_mask and token_type_ids where encoded) for batched_logits."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    return [dict(zip(names, values)) for values in zip(*(enc[n] for n in names))]


def truncated_sides(tokenizer: PreTrainedTokenizerBase, enc: Any, texts: list[str],
                    pairs: list[str]) -> tuple[list[bool], list[bool]]:
    """Whether each pair lost tokens of its first and of its second text: each side's tokens kept in `enc` (the
    truncated pair encoding) against the side encoded alone without truncation."""
    full = [[len(ids) for ids in tokenizer(side, add_special_tokens=False)["input_ids"]] for side in (texts, pairs)]
    first, second = [], []
    for i, encoding in enumerate(enc.encodings):
        side = encoding.sequence_ids
        first.append(side.count(0) < full[0][i])
        second.append(side.count(1) < full[1][i])
    return first, second


def encode_texts(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
                 labels_of: Any) -> tuple[Dataset, dict[str, int]]:
    """Tokenize `text` (and `text_pair`, a sentence pair's second text, when the data has it) without padding
    (batches are padded at training time) and count truncated inputs; `labels_of(batch)` gives the `labels`
    column. Shared by the text-level tasks."""
    max_length = params.tokenize.max_length
    pair = "text_pair" in ds.column_names

    def encode(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        enc = encode_inputs(tokenizer, batch["text"], batch["text_pair"] if pair else None, max_length)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "labels": labels_of(batch), "length": [len(ids) for ids in enc["input_ids"]],
               "truncated": [bool(e.overflowing) for e in enc.encodings], "example_id": indices}
        if pair:
            out["truncated_first"], out["truncated_second"] = truncated_sides(tokenizer, enc, batch["text"],
                                                                              batch["text_pair"])
            out["truncated"] = [a or b for a, b in zip(out["truncated_first"], out["truncated_second"])]
            if "token_type_ids" in enc:  # segment ids: which text each token belongs to (BERT-style models)
                out["token_type_ids"] = enc["token_type_ids"]
        return out

    out = ds.map(encode, batched=True, with_indices=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in ("text", "text_pair", "row", "split")])
    if not pair:
        return out, {"truncated_texts": int(io.column_numpy(out, "truncated").sum())}
    stats = {"truncated_pairs": int(io.column_numpy(out, "truncated").sum()),
             "truncated_first_texts": int(io.column_numpy(out, "truncated_first").sum()),
             "truncated_second_texts": int(io.column_numpy(out, "truncated_second").sum())}
    return out.remove_columns(["truncated_first", "truncated_second"]), stats


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    return encode_texts(ds, tokenizer, params, lambda batch: batch["label_id"])


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None,
               problem_type: str | None = None, pooling: str = "auto") -> Any:
    """`problem_type` picks the loss (None: inferred from the labels' dtype, i.e. cross-entropy for class ids).
    `pooling` (fine_tune.pooling): what the head reads. cls: the first token, transformers' own head; mean: the mean
    of the token states (lmtune.modeling); auto: mean for a sentence-transformers checkpoint trained on it, else cls.
    A model fine-tuned with either head loads back with that head."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from lmtune import families, models
    from lmtune.modeling import MeanPoolingConfig, MeanPoolingForSequenceClassification

    path = models.resolve(name_or_path)
    head = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={name: i for i, name in enumerate(labels)}, problem_type=problem_type)
    saved_mean = isinstance(AutoConfig.from_pretrained(path, revision=revision), MeanPoolingConfig)
    if saved_mean and pooling == "cls":
        raise ParamsError(f"fine_tune.pooling: {name_or_path} was fine-tuned with a mean-pooling head, which a "
                          f"[CLS] head cannot reuse; set pooling to auto or mean")
    if not saved_mean and (pooling == "mean" or pooling == "auto" and models.sentence_pooling(path, revision) == "mean"):
        return MeanPoolingForSequenceClassification.from_encoder(path, revision, attn_implementation, **head)
    return families.load_model(  # a saved mean-pooling model too: lmtune.modeling
        AutoModelForSequenceClassification, path, revision, attn_implementation=attn_implementation,
        ignore_mismatched_sizes=True, **head)


def collator(tokenizer: PreTrainedTokenizerBase, model: Any, params: Params, max_length: int) -> DataCollatorWithPadding:
    """Pad each batch to its own longest sequence, or to max_length when dynamic padding is off."""
    from transformers import DataCollatorWithPadding

    if params.fine_tune.dynamic_padding:
        return DataCollatorWithPadding(tokenizer, padding="longest")
    return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    from lmtune import metrics

    def fn(pred: Any) -> dict[str, float]:
        return metrics.classification_metrics(pred.label_ids, np.argmax(pred.predictions, axis=-1), len(labels))

    return fn


def text_features(tokenizer: Any, texts: list[str], info: dict[str, Any],
                  pairs: list[str] | None = None) -> list[dict[str, list[int]]]:
    """Normalise and tokenize raw texts (and a pair's second texts) the way clean and tokenize did for training."""
    def clean(values: list[str]) -> list[str]:
        return [normalize_text(t, info["lowercase"]) for t in values]

    return features_of(encode_inputs(tokenizer, clean(texts), None if pairs is None else clean(pairs),
                                     info["max_length"]))


def record_features(tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any]) -> list[dict[str, list[int]]]:
    """text_features of prediction records: {"text"}, or {"text", "text_pair"} for a model trained on pairs."""
    pair = info.get("params", {}).get("task", {}).get("text_pair_column", "")
    return text_features(tokenizer, [r["text"] for r in records], info,
                         [r["text_pair"] for r in records] if pair else None)


def model_features(ds: Dataset) -> list[dict[str, list[int]]]:
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in ds.column_names]
    return [dict(zip(names, values)) for values in zip(*(ds[n] for n in names))]


def input_rows(ds: Dataset) -> list[dict[str, str]]:
    """{"text"} of each row, or {"text", "text_pair"} for sentence pairs: the input fields of predictions.jsonl."""
    if "text_pair" not in ds.column_names:
        return [{"text": text} for text in ds["text"]]
    return [{"text": a, "text_pair": b} for a, b in zip(ds["text"], ds["text_pair"])]


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    from lmtune import metrics, plots
    from lmtune.inference import batched_logits, softmax

    probs = softmax(batched_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True))
    y_true, y_pred = np.asarray(test["labels"]), probs.argmax(axis=-1)
    predictions = [{**inputs, "label": labels[t], "predicted": labels[p], "score": round(float(pr[p]), 6)}
                   for inputs, t, p, pr in zip(input_rows(test), y_true, y_pred, probs)]
    per_class = metrics.per_class_report(y_true, y_pred, labels)
    scored = metrics.label_rows(per_class)  # labels absent from test are listed in per_class, not drawn as 0
    log_absent(per_class, len(labels))
    # the picture: the labels with most test examples only; the whole matrix is reports/eval/confusion.json
    matrix, shown = metrics.top_confusion(y_true, y_pred, len(labels), plots.CONFUSION_LABELS)
    pr_curve = metrics.precision_recall_points(y_true, probs)
    pr_title = f"Precision-recall ({labels[1]!r} vs rest)" if len(labels) == 2 else \
        "Precision-recall (micro-average, one-vs-rest)"
    return EvalResult(
        metrics=metrics.classification_metrics(y_true, y_pred, len(labels)), predictions=predictions,
        reports={"per_class": per_class, "confusion": metrics.confusion_cells(y_true, y_pred, labels)},
        plots={"confusion": [{"actual": p["label"], "predicted": p["predicted"]} for p in predictions],
               "f1_by_label": [{"label": name, "f1": round(v["f1-score"], 6)} for name, v in scored.items()],
               "precision_recall": pr_curve},
        figures={"confusion_matrix.png": lambda path: plots.confusion_matrix(matrix, [labels[i] for i in shown],
                                                                             path, len(labels)),
                 "per_class_f1.png": lambda path: plots.per_class_f1(scored, path),
                 "precision_recall.png": lambda path: plots.precision_recall(pr_curve, pr_title, path)})


def log_absent(per_class: dict[str, Any], n_labels: int) -> None:
    """Say which labels the test split cannot score: macro averages run over the others (metrics.present_labels)."""
    from lmtune import metrics

    absent = per_class.get(metrics.ABSENT_LABELS, [])
    if absent:
        logger.warning("%d of %d labels have no test example and no prediction, so test macro averages run over the "
                       "other %d (listed under %s in the per-class report): %s%s", len(absent), n_labels,
                       n_labels - len(absent), metrics.ABSENT_LABELS, ", ".join(map(repr, absent[:5])),
                       ", ..." if len(absent) > 5 else "")


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    from lmtune.inference import batched_logits, softmax

    probs = softmax(batched_logits(model, tokenizer, record_features(tokenizer, records, info), batch_size))
    labels = info["labels"]
    return [{"label": labels[int(p.argmax())], "score": round(float(p.max()), 6),
             "scores": {name: round(float(s), 6) for name, s in zip(labels, p)}} for p in probs]
