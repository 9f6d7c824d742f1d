"""Text cleaning rules: pure functions on strings and DataFrames."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lmtune.errors import DataError
from lmtune.io import detect_format

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str, lowercase: bool = False) -> str:
    """NFKC (full-width to half-width, so CJK text normalises too), control characters to spaces,
    whitespace collapsed and stripped, optional lowercasing."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    return text.lower() if lowercase else text


def sorted_labels(values: pd.Series) -> list[str]:
    """Stable label order: numeric order when every label is a number, otherwise lexical."""
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def clean_labelled_texts(df: pd.DataFrame, lowercase: bool, min_chars: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise `text` and drop unusable rows; return (kept, rejected).

    `df` has columns text, label (strings) and row (1-based data row in the input file). Each rejected row
    keeps its original text and gets a `reason`: empty_text, too_short, missing_label, duplicate (an exact
    repeat of an earlier text with the same label), conflicting_labels (the text appears with 2+ labels;
    every copy is dropped since none can be trusted).
    """
    df = df.assign(original=df["text"], text=df["text"].map(lambda t: normalize_text(t, lowercase)),
                   label=df["label"].str.strip())
    reason = pd.Series("", index=df.index)
    reason[df["label"] == ""] = "missing_label"
    reason[(reason == "") & (df["text"].str.len() < min_chars)] = "too_short"
    reason[df["text"] == ""] = "empty_text"
    ok = reason == ""
    conflicting = df[ok].groupby("text")["label"].transform("nunique") > 1
    reason[conflicting[conflicting].index] = "conflicting_labels"
    ok = reason == ""
    duplicate = df[ok].duplicated(subset=["text"], keep="first")
    reason[duplicate[duplicate].index] = "duplicate"
    rejected = df[reason != ""].assign(reason=reason[reason != ""])
    kept = df[reason == ""].drop(columns=["original"])
    return kept.reset_index(drop=True), rejected[["row", "reason", "label", "original"]].rename(
        columns={"original": "text"}).reset_index(drop=True)


@dataclass(frozen=True)
class CleanResult:
    kept: pd.DataFrame  # one row per usable example, with the task's columns and `row` (1-based input row)
    rejected: pd.DataFrame  # columns row, reason, label, text: every dropped row and why
    labels: list[str]  # sorted label names; ids are positions in this list ([] when the task has no label set)
    summary: dict = field(default_factory=dict)  # task figures for reports/clean.json, e.g. label_counts


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
