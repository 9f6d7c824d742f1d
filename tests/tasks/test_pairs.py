"""Sentence pairs (task.text_pair_column) for classification, multilabel and regression: cleaning keeps and compares
whole pairs, tokenize encodes a pair (segment ids, longest_first truncation counted per side), evaluate's leakage
check compares pairs, and `lmtune predict` and MLflow serving take {"text", "text_pair"}."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoTokenizer

from lmtune import cli
from lmtune.config import load_params
from lmtune.errors import ParamsError
from lmtune.tasks import TASKS, input_fields
from lmtune.tasks.classification import encode_texts
from stages.evaluate import leaked_texts
from tests.conftest import FIXTURES, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

PAIRS = FIXTURES / "pairs.csv"  # 40 rows: 18 paraphrase pairs and 18 unrelated ones, plus one of each problem below
PAIR_COLUMNS = {"task.text_column": "sentence1", "task.text_pair_column": "sentence2"}
# line 38 repeats line 2's pair; line 39 has no second text; line 40 is line 18's pair with another label; line 41
# puts a second text of line 17 first (a new pair, kept)
REJECTED = {"conflicting_labels": 2, "duplicate": 1, "empty_text_pair": 1}


def read(path: Path):
    return json.loads(path.read_text())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("tiny-pairs-served")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), **PAIR_COLUMNS,
                                                  "tracking.log_model": True, "tracking.registered_model": root.name})
    return run_all(root, params, data=PAIRS)


def test_clean_keeps_pairs_and_rejects_a_missing_second_text_duplicates_and_conflicts_by_pair(pipeline):
    summary = read(pipeline / "reports/clean.json")
    assert summary["rows_kept"] == 36 and summary["rejected_by_reason"] == REJECTED
    kept = pd.read_parquet(pipeline / "interim/data.parquet")
    assert list(kept.columns[:2]) == ["text", "text_pair"]
    first = kept[kept["text"] == "The cat sleeps on the warm sofa"]
    assert len(first) == 2, "one first text with two different second texts is two examples, not a duplicate"
    with open(pipeline / "interim/rejected.csv", encoding="utf-8") as f:
        rejected = {int(r["row"]): r for r in csv.DictReader(f)}
    assert {n: r["reason"] for n, r in rejected.items()} == {
        18: "conflicting_labels", 38: "duplicate", 39: "empty_text_pair", 40: "conflicting_labels"}
    assert rejected[38]["text_pair"] == "A cat is sleeping on the sofa", "the rejected row shows its second text"


def test_tokenize_encodes_each_pair_with_segment_ids_and_counts_truncation(pipeline):
    ds = load_from_disk(str(pipeline / "tokenized"))
    assert {"text", "text_pair", "token_type_ids"} <= set(ds.column_names)
    assert set(ds[0]["token_type_ids"]) == {0, 1}, "the second text is segment 1"
    assert ds[0]["input_ids"].count(3) == 2, "[SEP] after each text"  # id 3 is the tiny vocab's [SEP]
    stats = read(pipeline / "reports/tokenize.json")
    assert stats["truncated_pairs"] == stats["truncated_first_texts"] == stats["truncated_second_texts"] == 0


def test_long_pairs_lose_tokens_from_the_longer_text_first(tiny_model, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    long = " ".join(["the cat sleeps on the warm sofa"] * 4)  # 28 words
    ds = Dataset.from_dict({"text": [long, "the cat", long, "the cat"], "text_pair": ["a dog", long, long, "a dog"],
                            "label_id": [0, 1, 0, 1]})
    params = load_params(write_params(tmp_path / "p.yaml", {**PAIR_COLUMNS, "tokenize.max_length": 16}))
    out, stats = encode_texts(ds, tokenizer, params, lambda batch: batch["label_id"])
    assert stats == {"truncated_pairs": 3, "truncated_first_texts": 2, "truncated_second_texts": 2}
    assert [len(ids) for ids in out["input_ids"]] == [16, 16, 16, 7]
    assert out[0]["token_type_ids"].count(1) == 3, "the short second text ('a dog' and [SEP]) is kept whole"


def test_evaluate_predictions_show_both_texts_and_the_leakage_check_compares_pairs(pipeline):
    rows = jsonl(pipeline / "reports/eval/predictions.jsonl")
    assert set(rows[0]) == {"text", "text_pair", "label", "predicted", "score"}
    assert read(pipeline / "reports/metrics.json")["leaked_test_texts"] == 0
    seen = [("A b", "c d"), ("x y", "z")]
    assert leaked_texts(seen, [("a  B", "C d"), ("A b", "z"), ("c d", "A b")]) == [("a  B", "C d")]


def test_lmtune_predict_takes_text_and_text_pair(pipeline, tmp_path, capsys, caplog):
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"text": "The cat sleeps on the sofa", "text_pair": "A cat is sleeping"}) + "\n")
    cli.main(["predict", "--model", str(pipeline / "model"), "--input", str(records)])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["label"] in ("different", "same") and set(row["scores"]) == {"different", "same"}
    records.write_text(json.dumps({"text": "The cat sleeps on the sofa"}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "--model", str(pipeline / "model"), "--input", str(records)])
    assert exit_info.value.code == 2
    assert "missing field(s) ['text_pair']" in caplog.text


def test_the_registered_pair_model_serves_a_dataframe_of_text_and_text_pair(pipeline):
    version = read(pipeline / "reports/train.json")["registered_version"]
    model = mlflow.pyfunc.load_model(f"models:/{pipeline.name}/{version}")
    assert model.metadata.get_input_schema().input_names() == ["text", "text_pair"]
    out = model.predict(pd.DataFrame({"text": ["The train leaves at nine", "Prices rose"],
                                      "text_pair": ["The train departs at nine", "The kitten chased a ball"]}))
    assert list(out.columns) == ["label", "score"] and len(out) == 2


@pytest.mark.parametrize("task,label,prediction", [("regression", "score", "value"), ("multilabel", "label", "labels")])
def test_regression_and_multilabel_pairs_run_every_stage_and_predict(task, label, prediction, tmp_path, tiny_model,
                                                                      capsys):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), **PAIR_COLUMNS,
                                                     "task.name": task, "task.label_column": label})
    root = run_all(tmp_path, params, data=PAIRS)
    assert read(root / "reports/clean.json")["rejected_by_reason"] == REJECTED
    assert "text_pair" in jsonl(root / "reports/eval/predictions.jsonl")[0]
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"text": "Rain is expected", "text_pair": "It should rain"}) + "\n")
    capsys.readouterr()  # the stages' own output
    cli.main(["predict", "--model", str(root / "model"), "--input", str(records)])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert prediction in row and row["text_pair"] == "It should rain"


def test_input_fields_follow_the_trained_params_and_tasks_without_pairs_refuse_the_param(tmp_path):
    assert input_fields(TASKS["classification"], "") == ("text",)
    assert input_fields(TASKS["regression"], "sentence2") == ("text", "text_pair")
    with pytest.raises(ParamsError, match="task.text_pair_column: ner takes one text"):
        load_params(write_params(tmp_path / "p.yaml", {"task.name": "ner", "task.text_pair_column": "b"}))
    with pytest.raises(ParamsError, match="must differ from task.text_column"):
        load_params(write_params(tmp_path / "p.yaml", {"task.text_pair_column": "text"}))
