"""Official splits kept intact: with a split column, repeats are dropped within a split only; a validation or test
row is never dropped, and a train copy of its text is dropped or kept as clean.cross_split_duplicates says (counted
in reports/clean.json and reports/split.json); a split column without validation rows gets validation carved from
train by split.val_fraction, or, at 0, a warning that no checkpoint selection happens."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from stages import clean, split, tokenize
from tests.conftest import FIXTURES, tiny_overrides, write_params


def read(path: Path):
    return json.loads(path.read_text())


def official(tmp_path: Path) -> Path:
    """The sentiment fixture's 45 texts as an official train (33) and test (12) set, plus: a test text repeated
    in train (twice, so the second train copy is also a within-train duplicate), a test text repeated in test,
    and a test text that is in train with another label."""
    rows = pd.read_csv(FIXTURES / "sentiment.csv").assign(split="train")
    rows.loc[rows.index[-12:], "split"] = "test"
    test = rows[rows["split"] == "test"]
    extra = pd.DataFrame([
        {**test.iloc[0].to_dict(), "split": "train"}, {**test.iloc[0].to_dict(), "split": "train"},
        {**test.iloc[1].to_dict(), "split": "test"},
        {**test.iloc[2].to_dict(), "split": "train", "label": "neutral" if test.iloc[2]["label"] != "neutral"
         else "positive"}])
    path = tmp_path / "official.csv"
    pd.concat([rows, extra], ignore_index=True).to_csv(path, index=False)
    return path


def stages(tmp_path: Path, data: Path, tiny_model: Path, **overrides: object) -> Path:
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.split_column": "split",
                                                     **overrides})
    p = ["--params", str(params)]
    clean.main([str(data), str(tmp_path / "interim"), str(tmp_path / "clean.json"), *p])
    tokenize.main([str(tmp_path / "interim"), str(tmp_path / "tokenized"), str(tmp_path / "tokenize.json"), *p])
    split.main([str(tmp_path / "tokenized"), str(tmp_path / "splits"), str(tmp_path / "split.json"), *p])
    return tmp_path


def rejected(root: Path) -> list[dict]:
    with open(root / "interim/rejected.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_test_rows_are_never_dropped_and_train_copies_are_dropped_by_default(tmp_path, tiny_model):
    root = stages(tmp_path, official(tmp_path), tiny_model)
    summary = read(root / "clean.json")
    # rows 47-48: train copies of test row 35 (the second is also a within-train duplicate, one reason each);
    # row 49: test row 36 again (a within-test duplicate); row 50: train copy of test row 37 with another label
    assert summary["rejected_by_reason"] == {"duplicate": 2, "train_copy_of_validation_or_test": 2}
    assert {int(r["row"]): r["reason"] for r in rejected(root)} == {
        47: "train_copy_of_validation_or_test", 48: "duplicate", 49: "duplicate",
        50: "train_copy_of_validation_or_test"}
    assert summary["cross_split_duplicates"] == {"train_copies": 2, "action": "drop_train"}
    splits = read(root / "split.json")
    assert splits["test"]["examples"] == 12, "every distinct official test text is kept"
    assert splits["train"]["cross_split_duplicates"] == {"train_copies": 2, "action": "drop_train"}


def test_keep_leaves_train_copies_in_train_and_counts_them(tmp_path, tiny_model):
    root = stages(tmp_path, official(tmp_path), tiny_model, **{"clean.cross_split_duplicates": "keep"})
    summary = read(root / "clean.json")
    assert summary["rejected_by_reason"] == {"duplicate": 2}
    assert summary["cross_split_duplicates"] == {"train_copies": 2, "action": "keep"}
    assert read(root / "split.json")["test"]["examples"] == 12


def test_validation_is_carved_from_train_when_the_split_column_has_none(tmp_path, tiny_model, capsys):
    root = stages(tmp_path, official(tmp_path), tiny_model, **{"split.val_fraction": 0.2})
    splits = read(root / "split.json")
    assert splits["validation"]["examples"] == 7 and splits["train"]["examples"] == 26, "20% of 33 train texts"
    assert splits["validation"]["source"] == "carved from train: split.val_fraction 0.2 of its examples"
    assert splits["test"]["examples"] == 12
    assert all(n >= 1 for n in splits["validation"]["label_counts"].values()), "stratified by label"
    assert "validation is 7 of 33 train examples" in capsys.readouterr().err  # the stages' log


def test_val_fraction_0_keeps_no_validation_with_a_warning(tmp_path, tiny_model, capsys):
    root = stages(tmp_path, official(tmp_path), tiny_model, **{"split.val_fraction": 0.0})
    splits = read(root / "split.json")
    assert splits["validation"]["examples"] == 0 and splits["train"]["examples"] == 33
    assert splits["validation"]["source"].startswith("none")
    assert "no checkpoint selection" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["validation"])
def test_a_split_column_with_validation_rows_is_used_as_is(tmp_path, tiny_model, given):
    data = official(tmp_path)
    frame = pd.read_csv(data)
    frame.loc[frame.index[:5], "split"] = given
    frame.to_csv(data, index=False)
    splits = read(stages(tmp_path, data, tiny_model, **{"split.val_fraction": 0.2}) / "split.json")
    assert splits["validation"]["examples"] == 5 and splits["validation"]["source"] == "the split column"
