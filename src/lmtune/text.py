"""Text cleaning rules: pure functions on strings and DataFrames."""
from __future__ import annotations

import decimal
import json
import math
import numbers
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmtune.errors import DataError
from lmtune.io import DATA_FILE, REJECTED_FILE, detect_format

# What the normaliser changes, besides NFKC. Only true control characters (Unicode category Cc, C0 and C1) and
# U+200B ZERO WIDTH SPACE (an invisible word break, as in Thai or Khmer) become spaces; tab and line feed are left to
# the whitespace rule of each function. Format characters that carry meaning are kept as they are: U+200C/U+200D
# zero-width non-joiner and joiner (Persian and Indic words, emoji ZWJ sequences), direction marks and isolates
# (U+200E/U+200F, U+061C, U+202A-U+202E, U+2066-U+2069), variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF), emoji
# tag characters (U+E0020-U+E007F, subdivision flags), soft hyphens. U+FEFF (a byte-order mark inside a text, an
# encoding leftover) is removed, and a lone surrogate (invalid UTF-16 escaped in JSON, which no file can store)
# becomes U+FFFD, the replacement character.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b]")
_DROPPED = re.compile(r"\ufeff")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SPACE = re.compile(r"\s+")  # Unicode whitespace (str.isspace), which includes U+2028/U+2029 but no format character


def _clean_characters(text: str) -> str:
    """NFKC, then the character rules above (controls and U+200B to spaces, U+FEFF removed, surrogates replaced)."""
    text = _SURROGATE.sub("\ufffd", text)  # first: NFKC and the writers cannot take a lone surrogate
    return _CONTROL.sub(" ", _DROPPED.sub("", unicodedata.normalize("NFKC", text)))


def normalize_text(text: str, lowercase: bool = False) -> str:
    """NFKC (full-width to half-width, so CJK text normalises too), control characters to spaces (the characters
    that carry meaning, such as zero-width joiners and direction marks, are kept: see _CONTROL), whitespace
    collapsed and stripped, optional lowercasing."""
    text = _SPACE.sub(" ", _clean_characters(text)).strip()
    return text.lower() if lowercase else text


def normalize_lines(text: str) -> str:
    """normalize_text for texts whose lines matter (chat messages, answers with lists or code): NFKC, control
    characters to spaces, line breaks (and U+2028/U+2029 line and paragraph separators, as line feeds) and
    indentation kept, outer whitespace stripped."""
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return _clean_characters(text).strip()


def sorted_labels(values: pd.Series) -> list[str]:
    """Stable label order: numeric order when every label is a number, otherwise lexical."""
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


# Labels: one rule for every tabular reader (CSV, TSV, JSONL, Parquet). A label is compared as a number when it is
# one (an int or float cell, or a string spelling a plain decimal number in ASCII digits): 1, "1", "1.0", "01",
# "+1" and 1e0 are one class, written as its shortest form ("1"; an integral value is written as an int, others as
# the normalised decimal, "0.5"). Booleans are "true"/"false". Other strings are compared as written (outer spaces
# stripped): labels that differ only in case, width or inner spacing are reported (similar_labels), never merged.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def canonical_number(text: str) -> str | None:
    """The one spelling of the number `text` spells ("1.0" -> "1", "0.50" -> "0.5", "1e3" -> "1000"), or None
    when `text` is not a plain decimal number (exact: Decimal, never float rounding)."""
    if not _NUMBER.fullmatch(text):
        return None
    value = decimal.Decimal(text)
    if value == value.to_integral_value() and value.adjusted() < 40:  # 1e999 stays 1E+999, not a 1000-digit int
        return str(int(value))
    return str(value.normalize(decimal.Context(prec=len(text))))  # every digit kept: no rounding merges two labels


def label_string(value: Any, spellings: dict[str, dict[str, int]] | None = None) -> str | None:
    """One label cell as its label string ("" when missing), by the rule above; None when the cell is neither a
    string nor a number (a list or an object), which the reader rejects. `spellings` (canonical -> {spelling as
    read: rows}) collects the spellings that were merged into another ("1.0" and "01" into "1")."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        if isinstance(value, float) and math.isnan(value):
            return ""  # pandas' missing value
        raw = repr(float(value)) if isinstance(value, numbers.Real) else str(value)
    elif isinstance(value, str):
        raw = value.strip()
    else:
        return None
    canonical = canonical_number(raw) or raw
    if spellings is not None and canonical != raw:
        merged = spellings.setdefault(canonical, {})
        merged[raw] = merged.get(raw, 0) + 1
    return canonical


_ONE_TYPE = ("string", "integer", "floating", "boolean")  # pandas.api.types.infer_dtype kinds with one Python type


def label_strings(values: pd.Series, spellings: dict[str, dict[str, int]] | None = None) -> pd.Series:
    """label_string of every cell (None where the cell is a list or an object), worked out once per distinct value
    when the column holds one type, as labels repeat (mixed types go cell by cell: 1, 1.0 and True are equal as
    Python values, so they must not share one lookup)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in _ONE_TYPE:
        return values.map(lambda value: label_string(value, spellings))
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    out = np.empty(len(uniques), dtype=object)
    for code, (value, rows) in enumerate(zip(uniques, np.bincount(codes, minlength=len(uniques)))):
        found: dict[str, dict[str, int]] = {}
        out[code] = label_string(value, found)
        for label, merged in found.items() if spellings is not None else ():
            for spelling in merged:
                spellings.setdefault(label, {})
                spellings[label][spelling] = spellings[label].get(spelling, 0) + int(rows)
    return pd.Series(out[codes], index=values.index, dtype=object)


def text_strings(values: pd.Series) -> pd.Series:
    """text_cell of every cell; a column of strings (and missing values) is taken as it is."""
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        return values.where(values.notna(), "").astype(object)
    return values.map(text_cell)


def text_cell(value: Any) -> str | None:
    """A text cell as read: a string as it is, "" when missing (null, NaN or no key); None for anything else (a
    number, boolean, list or object in JSONL or Parquet), which the reader rejects rather than train on its repr."""
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return None


def shown(value: Any) -> str:
    """A cell that is not a string, as JSON (for rejected.csv and messages): 123, true, ["a", "b"], {"k": 1}."""
    value = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
    return json.dumps(value, ensure_ascii=False, default=str)


def similar_labels(counts: dict[str, int]) -> list[dict[str, int]]:
    """Groups of 2+ labels that differ only in case, character width or spacing ("Pos", "pos", "po s" does not
    count), each as {label: rows}. Reported as suspicious and not merged: case can carry meaning ("US" and "us")."""
    groups: dict[str, dict[str, int]] = {}
    for name, rows in counts.items():
        groups.setdefault(" ".join(unicodedata.normalize("NFKC", name).casefold().split()), {})[name] = rows
    return [group for _, group in sorted(groups.items()) if len(group) > 1]


def mark_rows(df: pd.DataFrame, lowercase: bool, min_chars: int) -> pd.DataFrame:
    """The rules one row decides alone: add `original` (the text as read), normalise `text`, strip `label`, and
    set `reason` to empty_text, too_short or missing_label ("" for a usable row). With a `text_pair` column (a
    sentence pair) the second text is normalised too (as read: `original_pair`), a row without it is rejected as
    empty_text_pair, and too_short applies to either text. A row that arrives with a
    reason (e.g. regression's label_not_a_number) keeps it, and its label as read."""
    preset = df["reason"] if "reason" in df else pd.Series("", index=df.index)
    df = df.assign(original=df["text"], text=df["text"].map(lambda t: normalize_text(t, lowercase)),
                   label=df["label"].where(preset != "", df["label"].str.strip()))
    pair = "text_pair" in df  # a sentence pair: both texts are normalised, kept and checked
    if pair:
        df = df.assign(original_pair=df["text_pair"],
                       text_pair=df["text_pair"].map(lambda t: normalize_text(t, lowercase)))
    reason = pd.Series("", index=df.index)
    reason[df["label"] == ""] = "missing_label"
    short = df["text"].str.len() < min_chars
    if pair:
        short |= (df["text_pair"].str.len() < min_chars) & (df["text_pair"] != "")
    reason[(reason == "") & short] = "too_short"
    if pair:
        reason[df["text_pair"] == ""] = "empty_text_pair"
    reason[df["text"] == ""] = "empty_text"
    return df.assign(reason=preset.where(preset != "", reason))


def text_keys(texts: pd.Series) -> np.ndarray:
    """(rows, 2) uint64: a 128-bit hash of each text (two SipHash keys), so repeats can be found without holding
    the texts. Two different texts share a key with probability about rows**2 / 2**129 (1e-21 at a billion rows)."""
    values = texts.to_numpy(dtype=object)
    return np.stack([pd.util.hash_array(values, hash_key=key) for key in _HASH_KEYS], axis=1)


_HASH_KEYS = ("lmtune-text-a-01", "lmtune-text-b-02")  # 16 characters each, as SipHash needs
PAIR_SEPARATOR = "\x00"  # joins a pair's two texts for hashing; normalize_text turns it into a space in a text


def row_keys(df: pd.DataFrame) -> np.ndarray:
    """text_keys of each row's input: its `text`, or with a `text_pair` column the pair (both normalised), so
    duplicates and conflicts compare whole pairs ("a" + "bc" and "ab" + "c" differ: the separator is in no text)."""
    if "text_pair" not in df:
        return text_keys(df["text"])
    return text_keys(df["text"] + PAIR_SEPARATOR + df["text_pair"])


def repeats(text_key: np.ndarray, label_key: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(conflicting, duplicate) row masks among the `usable` rows, from per-row keys alone.

    A text (equal `text_key` rows) seen with 2+ different `label_key`s is conflicting in every copy; otherwise
    each copy after the first (in row order) is a duplicate. text_key: (rows, 2) uint64; label_key: (rows,)
    int64 (any exact encoding of the label); usable: (rows,) bool.
    """
    rows = np.flatnonzero(usable)
    rows = rows[np.lexsort((text_key[rows, 1], text_key[rows, 0]))]  # stable: equal texts stay in row order
    keys = text_key[rows]
    first = np.ones(len(rows), dtype=bool)  # first copy of each distinct text
    first[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    del keys  # the temporaries here are freed as soon as they are used: a few bytes a row at the peak
    group = np.cumsum(first) - 1  # (usable rows,) group number of each row's text, in sorted order
    labels = label_key[rows]
    other_label = labels != labels[np.flatnonzero(first)][group]
    del labels
    conflicted = np.bincount(group, weights=other_label, minlength=int(first.sum())) > 0
    conflicting = np.zeros(len(usable), dtype=bool)
    duplicate = np.zeros(len(usable), dtype=bool)
    conflicting[rows] = conflicted[group]
    duplicate[rows] = ~first & ~conflicting[rows]
    return conflicting, duplicate


def label_codes(labels: pd.Series, names: dict[str, int]) -> np.ndarray:
    """int64 code of each label, adding labels not seen before to `names` (label -> code, in order of first sight)."""
    for label in labels.unique():
        names.setdefault(label, len(names))
    return labels.map(names).to_numpy(dtype=np.int64)


def clean_labelled_texts(df: pd.DataFrame, lowercase: bool, min_chars: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise `text` and drop unusable rows; return (kept, rejected).

    `df` has columns text, label (strings) and row (1-based data row in the input file). Each rejected row
    keeps its original text and gets a `reason`: empty_text, too_short, missing_label, duplicate (an exact
    repeat of an earlier text with the same label), conflicting_labels (the text appears with 2+ labels;
    every copy is dropped since none can be trusted). The in-memory form of the streaming clean
    (lmtune.tasks.classification.clean_in_chunks), with the same rules.
    """
    df = mark_rows(df, lowercase, min_chars)
    conflicting, duplicate = repeats(row_keys(df), label_codes(df["label"], {}),
                                     (df["reason"] == "").to_numpy())
    reason = df["reason"].mask(conflicting, "conflicting_labels").mask(duplicate, "duplicate")
    rejected = df[reason != ""].assign(reason=reason[reason != ""])
    kept = df[reason == ""].drop(columns=["original", "original_pair", "reason"], errors="ignore")
    return kept.reset_index(drop=True), rejected[["row", "reason", "label", "original"]].rename(
        columns={"original": "text"}).reset_index(drop=True)


@dataclass(frozen=True)
class CleanResult:
    kept: pd.DataFrame  # one row per usable example, with the task's columns and `row` (1-based input row)
    rejected: pd.DataFrame  # columns row, reason, label, text: every dropped row and why
    labels: list[str]  # sorted label names; ids are positions in this list ([] when the task has no label set)
    summary: dict = field(default_factory=dict)  # task figures for reports/clean.json, e.g. label_counts

    @property
    def rows_kept(self) -> int:
        return len(self.kept)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.rejected["reason"].value_counts().sort_index().items()}

    def write(self, out_dir: Path) -> None:
        """data.parquet (kept rows) and rejected.csv into `out_dir`."""
        self.kept.to_parquet(out_dir / DATA_FILE, index=False)
        self.rejected.to_csv(out_dir / REJECTED_FILE, index=False)


@dataclass(frozen=True)
class StreamedClean:
    """A clean result that never holds the rows: counts and labels were decided from a first pass over the input,
    and `write(out_dir)` makes a second pass, writing data.parquet and rejected.csv chunk by chunk. It has the
    same interface as CleanResult apart from `kept` and `rejected`."""
    labels: list[str]
    summary: dict
    rows_kept: int
    rejected_by_reason: dict[str, int]
    writer: Callable[[Path], None]

    def write(self, out_dir: Path) -> None:
        self.writer(out_dir)


def require_columns(df: pd.DataFrame, path: Path, columns: dict[str, str]) -> None:
    """Raise DataError if a configured column is absent, listing the columns found and a delimiter hint."""
    found = [str(c) for c in df.columns]
    for param, column in columns.items():
        if column not in df.columns:
            hint = ""
            if len(found) == 1 and any(sep in found[0] for sep in (",", "\t", ";", "|")):
                hint = " The header was read as one column: the delimiter looks wrong; set clean.input_format."
            raise DataError(f"{path}: column {column!r} (set by {param}) not found; columns found: "
                            f"{found}. Set {param} to one of them.{hint}")


def first_row_number(path: Path, input_format: str) -> int:
    """Line number of the first data row as an editor shows it: 2 below a CSV/TSV header, else 1."""
    return 2 if detect_format(path, input_format) in ("csv", "tsv") else 1
