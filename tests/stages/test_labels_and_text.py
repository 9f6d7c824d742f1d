"""Labels and texts as a new user's data has them (issue #16 items 4-8, #14's multilabel train-rows check), through
the stages: many labels stay bounded in evaluate; 1, "1" and 1.0 are one class in every tabular format and case
variants are reported; rare classes missing from validation/test are warned about and listed; non-string texts
are rejected with a reason; joiners and direction marks survive cleaning."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from stages import clean, fine_tune, split, tokenize
from tests.conftest import ROOT, run_module, tiny_overrides, write_params

N_LABELS = 2000
WORDS = ["good", "bad", "movie", "service", "food", "great", "terrible", "ok", "fine", "slow"]


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def one_line_failure(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The stage's last stderr line after asserting exit 2, no traceback and each fragment in that line."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in line, line
    return line


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# --- item 4: many labels ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def many_labels(tmp_path_factory, tiny_model) -> Path:
    """2,000 classes x 4 rows cleaned, tokenized, split 50/25/25 and fine-tuned for 2 steps (in-process: the stage
    under test is evaluate)."""
    root = tmp_path_factory.mktemp("many-labels")
    lines = ["text,label"] + [f"{WORDS[c % 10]} {WORDS[c // 10 % 10]} {WORDS[c // 100 % 10]} {c} {r},c{c}"
                              for c in range(N_LABELS) for r in range(4)]
    (root / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "split.val_fraction": 0.25,
                                                  "split.test_fraction": 0.25, "fine_tune.max_steps": 2})
    p = ["--params", str(params)]
    clean.main([str(root / "data.csv"), str(root / "interim"), str(root / "clean.json"), *p])
    tokenize.main([str(root / "interim"), str(root / "tokenized"), str(root / "tokenize.json"), *p])
    split.main([str(root / "tokenized"), str(root / "splits"), str(root / "split.json"), *p])
    fine_tune.main([str(root / "splits"), str(root / "model"), str(root / "reports"), "--checkpoints",
                    str(root / "checkpoints"), *p])
    return root


def test_evaluate_with_2000_labels_is_bounded_in_time_memory_and_picture_size(many_labels):
    root, reports = many_labels, many_labels / "reports"
    # the evaluate stage alone in a child process, whose peak memory its parent reads after it ends
    probe = ("import resource, subprocess, sys; r = subprocess.run([sys.executable, '-m', 'stages.evaluate', "
             "*sys.argv[1:]]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", probe, str(root / "splits"), str(root / "model"), str(reports),
                             "--params", str(root / "params.yaml")], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    peak_mb = int(result.stdout.strip().splitlines()[-1]) / 1024
    assert seconds < 180 and peak_mb < 3000, f"{seconds:.0f} s, {peak_mb:.0f} MB (was minutes and 15 GB)"
    for picture in ("confusion_matrix.png", "per_class_f1.png"):
        width, height = Image.open(reports / "eval/figures" / picture).size
        assert width < 4000 and height < 4000, (picture, width, height)
    cells = read(reports / "eval/confusion.json")  # the whole matrix as data: non-zero cells
    assert sum(c["count"] for c in cells) == read(reports / "metrics.json")["test_examples"] == N_LABELS
    assert len(read(reports / "plots/confusion/test.json")) == N_LABELS, "DVC's confusion data: one row a text"


def test_split_error_for_2000_classes_that_cannot_be_stratified_is_one_short_line(many_labels, tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "split.test_fraction": 0.1})
    result = run_module("stages.split", str(many_labels / "tokenized"), str(tmp_path / "splits"),
                        str(tmp_path / "split.json"), "--params", str(params))
    line = one_line_failure(result, "2000 classes", "split.test_fraction")
    assert len(line) < 600, f"was a 54 KB line; now {len(line)} characters"
    assert not (tmp_path / "splits").exists()


# --- item 5: labels that mean the same ---------------------------------------------------------------------------

LABEL_ROWS = [("good movie one", 1), ("good movie two", "1"), ("good movie three", 1.0), ("good film four", " 1.0 "),
              ("bad movie one", 0), ("bad movie two", "0.0"), ("bad film three", "00"),
              ("fine movie one", "Pos"), ("fine movie two", "pos"), ("fine movie three", "pos")]


def labels_file(tmp_path: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        return write_jsonl(tmp_path / "labels.jsonl", [{"text": t, "label": label} for t, label in LABEL_ROWS])
    frame = pd.DataFrame({"text": [t for t, _ in LABEL_ROWS], "label": [str(label) for _, label in LABEL_ROWS]})
    if fmt == "parquet":  # a float label column beside the strings would not fit one Parquet column: two files' worth
        frame["label"] = frame["label"].str.strip()
        frame.to_parquet(tmp_path / "labels.parquet", index=False)
        return tmp_path / "labels.parquet"
    frame.to_csv(tmp_path / f"labels.{fmt}", sep="," if fmt == "csv" else "\t", index=False)
    return tmp_path / f"labels.{fmt}"


def test_clean_jsonl_merges_number_labels_and_reports_case_variants(tmp_path, tiny_params):
    result = run_module("stages.clean", str(labels_file(tmp_path, "jsonl")), str(tmp_path / "interim"),
                        str(tmp_path / "clean.json"), "--params", str(tiny_params))
    assert result.returncode == 0, result.stderr
    summary = read(tmp_path / "clean.json")
    assert summary["label_counts"] == {"0": 3, "1": 4, "Pos": 1, "pos": 2}, "1, '1', 1.0 and ' 1.0 ' are one class"
    assert summary["labels_merged"] == {"0": {"0.0": 1, "00": 1}, "1": {"1.0": 2}}
    assert summary["similar_labels"] == [{"Pos": 1, "pos": 2}], "reported as suspicious, not merged"
    assert "differ only in case or spacing" in result.stderr and "'Pos' (1 rows)" in result.stderr
    assert read(tmp_path / "interim/meta.json")["labels"] == ["0", "1", "Pos", "pos"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_every_tabular_format_reads_number_labels_as_one_class(fmt, tmp_path, tiny_params):
    clean.main([str(labels_file(tmp_path, fmt)), str(tmp_path / "interim"), str(tmp_path / "clean.json"),
                "--params", str(tiny_params)])
    summary = read(tmp_path / "clean.json")
    assert summary["label_counts"] == {"0": 3, "1": 4, "Pos": 1, "pos": 2}, fmt
    assert summary["labels_merged"] == {"0": {"0.0": 1, "00": 1}, "1": {"1.0": 2}}, fmt


def test_parquet_float_label_column_reads_integral_values_as_ints(tmp_path, tiny_params):
    pd.DataFrame({"text": ["good movie one", "good movie two", "bad movie one", "bad movie two"],
                  "label": [1.0, 1.0, 0.0, 0.5]}).to_parquet(tmp_path / "floats.parquet", index=False)
    clean.main([str(tmp_path / "floats.parquet"), str(tmp_path / "interim"), str(tmp_path / "clean.json"),
                "--params", str(tiny_params)])
    assert read(tmp_path / "interim/meta.json")["labels"] == ["0", "0.5", "1"]


def test_multilabel_list_items_follow_the_same_number_rule(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel"})
    write_jsonl(tmp_path / "ml.jsonl", [{"text": "good movie one", "label": [1, "2"]},
                                        {"text": "good movie two", "label": [1.0]},
                                        {"text": "bad movie one", "label": "2.0|1"},
                                        {"text": "bad movie two", "label": {"not": "a label"}}])
    clean.main([str(tmp_path / "ml.jsonl"), str(tmp_path / "interim"), str(tmp_path / "clean.json"),
                "--params", str(params)])
    summary = read(tmp_path / "clean.json")
    assert summary["label_counts"] == {"1": 3, "2": 2} and summary["labels_merged"] == {"1": {"1.0": 1}, "2": {"2.0": 1}}
    assert summary["rejected_by_reason"] == {"label_not_a_string_or_number": 1}


# --- item 6: rare classes ------------------------------------------------------------------------------------------

def test_split_warns_and_lists_a_rare_class_missing_from_validation_and_test(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "split.val_fraction": 0.1,
                                                      "split.test_fraction": 0.1})
    rows = ["text,label"] + [f"{WORDS[i % 10]} review {i},{'pos' if i % 2 else 'neg'}" for i in range(100)] + [
        "rare one here,rare", "rare two here,rare", "rare three here,rare"]  # 0.3 of a test row: none
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = ["--params", str(params)]
    clean.main([str(tmp_path / "data.csv"), str(tmp_path / "interim"), str(tmp_path / "c.json"), *p])
    tokenize.main([str(tmp_path / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), *p])
    result = run_module("stages.split", str(tmp_path / "tok"), str(tmp_path / "splits"), str(tmp_path / "s.json"), *p)
    assert result.returncode == 0, result.stderr
    summary = read(tmp_path / "s.json")
    for name in ("validation", "test"):
        assert f"1 of 3 labels have no {name} rows" in result.stderr and "'rare' (3 rows in all)" in result.stderr
        assert summary[name]["labels_absent"] == ["rare"] and summary[name]["labels_present"] == 2
        assert summary[name]["label_counts"]["rare"] == 0
    assert summary["train"]["labels_absent"] == [] and summary["train"]["label_counts"]["rare"] == 3


def test_multilabel_split_refuses_a_label_without_train_rows(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel",
                                                      "task.split_column": "part"})
    rows = ["text,label,part"] + [f"{WORDS[i % 10]} review {i},{'food|sports' if i % 2 else 'food'},train"
                                  for i in range(10)] + ["a new topic,politics|food,test", "more food,food,test"]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = ["--params", str(params)]
    clean.main([str(tmp_path / "data.csv"), str(tmp_path / "interim"), str(tmp_path / "c.json"), *p])
    tokenize.main([str(tmp_path / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), *p])
    result = run_module("stages.split", str(tmp_path / "tok"), str(tmp_path / "splits"), str(tmp_path / "s.json"), *p)
    one_line_failure(result, "label 'politics' has no train rows (only in test)")
    assert not (tmp_path / "splits").exists()


# --- items 7 and 8: texts that are not strings; characters that carry meaning -----------------------------------

ZWNJ, ZWJ = "\u200c", "\u200d"
KEPT_TEXTS = [f"می{ZWNJ}خواهم کتاب بخوانم", "family 👨\u200d👩\u200d👧 photo", f"ශ්{ZWJ}රී ලංකාව", "\u200fשלום\u200e friend"]


def test_clean_rejects_non_string_texts_with_a_reason_and_keeps_joiners(tmp_path, tiny_params):
    rows = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(KEPT_TEXTS)] + [
        {"text": 123, "label": "pos"}, {"text": ["a", "list"], "label": "neg"}, {"text": {"an": "object"}, "label": "pos"},
        {"text": True, "label": "neg"}, {"text": None, "label": "pos"}, {"text": "a fine text", "label": ["pos"]}]
    path = write_jsonl(tmp_path / "texts.jsonl", rows)
    result = run_module("stages.clean", str(path), str(tmp_path / "interim"), str(tmp_path / "clean.json"),
                        "--params", str(tiny_params))
    assert result.returncode == 0, result.stderr
    summary = read(tmp_path / "clean.json")
    assert summary["rejected_by_reason"] == {"empty_text": 1, "label_not_a_string_or_number": 1,
                                             "text_not_a_string": 4}
    rejected = pd.read_csv(tmp_path / "interim/rejected.csv", keep_default_na=False)
    shown = dict(zip(rejected["row"], rejected["text"]))
    assert [shown[5], shown[6], shown[7], shown[8]] == ["123", '["a", "list"]', '{"an": "object"}', "true"]
    assert "text_not_a_string" in result.stderr, "the log names the reason"
    kept = pd.read_parquet(tmp_path / "interim/data.parquet")["text"].tolist()
    assert kept == KEPT_TEXTS, "ZWNJ, ZWJ and direction marks kept, not turned into spaces"


def test_clean_rejects_a_non_string_second_text_of_a_pair(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.text_pair_column": "other"})
    rows = [{"text": "good movie one", "other": "fine", "label": "pos"}, {"text": "bad movie", "other": 4, "label": "neg"},
            {"text": "good movie two", "other": "ok then", "label": "neg"}]
    clean.main([str(write_jsonl(tmp_path / "pairs.jsonl", rows)), str(tmp_path / "interim"),
                str(tmp_path / "clean.json"), "--params", str(params)])
    assert read(tmp_path / "clean.json")["rejected_by_reason"] == {"text_pair_not_a_string": 1}


def test_seq2seq_jsonl_with_a_number_as_source_stops_naming_the_row(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "summarization",
                                                      "task.label_column": "summary"})
    rows = [{"text": "a long text to summarise", "summary": "short"}, {"text": 42, "summary": "the answer"}]
    result = run_module("stages.clean", str(write_jsonl(tmp_path / "s2s.jsonl", rows)), str(tmp_path / "interim"),
                        str(tmp_path / "clean.json"), "--params", str(params))
    one_line_failure(result, "s2s.jsonl: row 2: field 'text' holds 42, not a string")
    assert not (tmp_path / "interim").exists()
