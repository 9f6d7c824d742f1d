"""Extractive QA (SQuAD v1.1): reading, windowing, decoding, official EM/F1, every stage with the tiny model,
bad input, `lmtune predict` and a real `dvc repro`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk
from transformers import AutoTokenizer

from lmtune.config import load_params
from lmtune.tasks import qa
from tests.conftest import FIXTURES, copy_project, run_module, tiny_overrides, write_params
from tests.integration.test_dvc_pipeline import init_repo, repro
from tests.stages.test_pipeline_stages import run_all

SQUAD = FIXTURES / "qa_squad.json"
JSONL = FIXTURES / "qa_squad.jsonl"  # the same questions as JSON lines, with a split column by paragraph
WINDOW = {"tokenize.max_length": 64, "qa.stride": 16}  # the railway paragraph (~150 tokens) needs several windows


def qa_overrides(tiny_model: Path, **extra: object) -> dict[str, object]:
    return {**tiny_overrides(tiny_model), **WINDOW, "task.name": "qa", **extra}


def read(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def squad_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("qa-json")
    return run_all(root, write_params(root / "params.yaml", qa_overrides(tiny_model)), data=SQUAD)


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("qa-jsonl")
    params = write_params(root / "params.yaml", qa_overrides(tiny_model, **{"task.split_column": "split"}))
    return run_all(root, params, data=JSONL)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


# ---- every stage, in-process ------------------------------------------------------------------------------------

@pytest.mark.parametrize("run", ["squad_run", "jsonl_run"])
def test_every_stage_runs_and_reports_exact_match_and_f1(run, request):
    root = request.getfixturevalue(run)
    assert read(root / "reports/clean.json") | {} and read(root / "reports/clean.json")["questions"] == 32
    assert read(root / "reports/clean.json")["contexts"] == 6
    tok = read(root / "reports/tokenize.json")
    assert tok["questions"] == 32 and tok["windows"] > 32 and tok["windows_per_question_max"] >= 3
    metrics = read(root / "reports/metrics.json")
    assert 0 <= metrics["exact_match"] <= 100 and 0 <= metrics["f1"] <= 100 and metrics["exact_match"] <= metrics["f1"]
    assert metrics["questions"] >= 4
    assert np.isfinite(read(root / "reports/train.json")["train_loss"])
    rows = [json.loads(line) for line in (root / "reports/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == metrics["questions"]
    assert set(rows[0]) >= {"id", "question", "predicted", "answers", "f1", "exact_match", "score"}


def test_validation_during_fine_tune_logs_exact_match_and_f1(squad_run):
    logged = read(squad_run / "reports/live/metrics.json")["eval"]
    assert {"exact_match", "f1"} <= set(logged)


def test_questions_on_one_paragraph_share_an_example_id_and_split(squad_run):
    splits = load_from_disk(str(squad_run / "splits"))
    contexts = {name: set(splits[name]["context"]) for name in ("train", "validation", "test")}
    assert not contexts["train"] & contexts["test"] and not contexts["train"] & contexts["validation"]
    ids = load_from_disk(str(squad_run / "tokenized")).select_columns(["example_id", "context", "question_id"])
    by_context = {}
    for example_id, context in zip(ids["example_id"], ids["context"]):
        by_context.setdefault(context, set()).add(example_id)
    assert all(len(v) == 1 for v in by_context.values()) and len(by_context) == 6


def test_split_column_of_jsonl_is_honoured(jsonl_run):
    splits = load_from_disk(str(jsonl_run / "splits"))
    assert {c[:25] for c in splits["test"]["context"]} == {"The botanical garden grow"}
    assert {c[:25] for c in splits["validation"]["context"]} == {"The city library lends bo"}


def test_unusable_questions_are_rejected_with_reasons(tmp_path, tiny_model):
    doc = read(SQUAD)
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    qas[0]["answers"], qas[1]["question"] = [], "   "
    qas.append(dict(qas[2]))  # the same question again (same id)
    qas.append({**qas[3], "id": "copy"})  # the same question and context under another id
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(doc))
    params = load_params(write_params(tmp_path / "p.yaml", qa_overrides(tiny_model)))
    result = qa.clean(data, params)
    assert dict(zip(result.rejected["id"], result.rejected["reason"])) == {
        "q01": "no_answer", "q02": "empty_question", "q03": "duplicate_id", "copy": "duplicate"}
    assert len(result.kept) == 30 and list(result.rejected.columns[:4]) == ["row", "reason", "label", "text"]


def test_contexts_are_kept_unchanged_so_answer_offsets_hold(tmp_path, tiny_model):
    context = "  Odd\u00a0spacing:\tthe answer is\u00a0  Zed .  "
    line = {"question": "  What  is the answer? ", "context": context,
            "answers": {"text": ["Zed"], "answer_start": [context.index("Zed")]}}
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps(line) + "\n")
    kept = qa.clean(data, load_params(write_params(tmp_path / "p.yaml", qa_overrides(tiny_model)))).kept
    assert kept["context"][0] == context and kept["question"][0] == "What is the answer?"
    assert kept["id"][0] == "1"  # no id column: the line number


# ---- windowing ----------------------------------------------------------------------------------------------------

def test_long_context_gives_overlapping_windows_with_the_answer_span_mapping_back_to_the_text(tokenizer):
    railway = read(SQUAD)["data"][4]["paragraphs"][0]
    context = railway["context"]
    windows, cut = qa.encode_windows(tokenizer, ["which village is near the steepest section?"] * 1, [context], 64, 16)
    assert len(windows["input_ids"]) >= 3 and cut == 0 and set(windows["sample"]) == {0}
    assert all(len(ids) <= 64 for ids in windows["input_ids"])
    assert "token_type_ids" in windows, "BERT pairs need segment ids"
    first, second = windows["offset_mapping"][0], windows["offset_mapping"][1]
    assert max(o[1] for o in first) > min(o[0] for o in second if o[0] >= 0), "neighbours overlap"
    start_char = context.index("Ossa")
    found = []
    for offsets in windows["offset_mapping"]:
        s, e = qa.answer_tokens(offsets, start_char, start_char + len("Ossa"))
        if s:
            found.append(context[offsets[s][0]:offsets[e][1]])
        else:
            assert e == 0, "an answer outside the window points at [CLS] for both ends"
    assert found and set(found) == {"Ossa"}
    assert len(found) < len(windows["input_ids"]), "windows without the answer point at [CLS]"


def test_an_overlong_question_is_cut_so_windows_still_fit(tokenizer):
    question = " ".join(["glacier"] * 80)
    windows, cut = qa.encode_windows(tokenizer, [question], ["the harbor museum"], 64, 16)
    assert cut == 1 and all(len(ids) <= 64 for ids in windows["input_ids"])


def test_tokenized_windows_carry_positions_offsets_and_gold_answers(squad_run):
    ds = load_from_disk(str(squad_run / "tokenized"))
    assert {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions", "offset_mapping",
            "question_id", "context", "answer_texts", "example_id", "text", "length"} <= set(ds.column_names)
    for row in ds:
        if row["start_positions"]:
            offsets = row["offset_mapping"]
            span = row["context"][offsets[row["start_positions"]][0]:offsets[row["end_positions"]][1]]
            assert span == row["answer_texts"][0]
        assert row["length"] == len(row["input_ids"]) and row["text"].endswith(row["context"])
    railway = ds.filter(lambda r: r["question_id"] == "q23")  # "How many tunnels are on the line?"
    assert len(railway) >= 3 and len(set(railway["example_id"])) == 1


# ---- official SQuAD v1.1 metrics and decoding ----------------------------------------------------------------------

@pytest.mark.parametrize("prediction,golds,exact,f1", [
    ("The Eiffel Tower!", ["eiffel tower"], 1.0, 1.0),  # case, article, punctuation
    ("an apple", ["the apple", "a pear"], 1.0, 1.0),
    ("red and white", ["red", "white and red"], 0.0, 1.0),  # F1 is over a bag of tokens: order does not matter
    ("the big red barn", ["red barn"], 0.0, 0.8),  # p = 2/3, r = 1 -> 0.8
    ("seven", ["eight", "nine"], 0.0, 0.0),
    ("two  hundred people", ["two hundred", "about two hundred people"], 0.0, 6 / 7),  # max(0.8, 2 * 0.75 / 1.75)
])
def test_exact_match_and_f1_follow_the_official_squad_script(prediction, golds, exact, f1):
    got_exact, got_f1 = qa.squad_scores(prediction, golds)
    assert got_exact == exact and got_f1 == pytest.approx(f1)


def test_squad_metrics_are_averaged_percentages():
    assert qa.squad_metrics(["a cat", "dog"], [["cat"], ["the bird"]]) == {"exact_match": 50.0, "f1": 50.0}


def test_decoding_picks_the_best_span_across_windows_and_respects_limits():
    context = "alpha beta gamma delta epsilon"
    spans = [(0, 5), (6, 10), (11, 16), (17, 22), (23, 30)]
    offsets = [list(qa.NO_OFFSET), *map(list, spans[:3]), list(qa.NO_OFFSET)]  # window 1: alpha beta gamma
    offsets2 = [list(qa.NO_OFFSET), *map(list, spans[2:]), list(qa.NO_OFFSET)]  # window 2: gamma delta epsilon
    windows = {"question_id": ["q", "q"], "context": [context] * 2, "offset_mapping": [offsets, offsets2]}
    start1, end1 = np.array([9., 1, 2, 0, 9]), np.array([9., 0, 2, 1, 9])  # best: "beta" (4); [CLS]/[SEP] ignored
    start2, end2 = np.array([0., 0, 3, 0, 0]), np.array([0., 0, 0, 3, 0])  # best: "delta epsilon" (6)
    best = qa.decode([start1, start2], [end1, end2], windows, n_best=20, max_answer_length=30)
    assert best["q"] == {"answer": "delta epsilon", "score": 6.0, "start": 17}
    best = qa.decode([start1, start2], [end1, end2], windows, n_best=20, max_answer_length=1)
    assert best["q"]["answer"] in {"beta", "gamma"} and best["q"]["score"] == 4.0  # two-token spans too long
    one_window = {"question_id": ["r"], "context": [context], "offset_mapping": [offsets]}
    reversed_only = qa.decode([np.array([0., 0, 0, 5, 0])], [np.array([0., 5, 0, 0, 0])], one_window, n_best=1,
                              max_answer_length=30)
    assert reversed_only["r"] == {"answer": "", "score": None, "start": None}  # end before start: no span


# ---- bad input (as DVC runs it) -----------------------------------------------------------------------------------

def run_clean_on(tmp_path: Path, params: Path, name: str, content: str):
    data = tmp_path / name
    data.write_text(content)
    out = tmp_path / "interim"
    result = run_module("stages.clean", str(data), str(out), str(tmp_path / "clean.json"), "--params", str(params))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    return result.stderr


@pytest.fixture
def qa_params(tmp_path, tiny_model) -> Path:
    return write_params(tmp_path / "params.yaml", qa_overrides(tiny_model))


def test_squad_answer_not_matching_its_offset_names_the_question_id_and_the_fix(tmp_path, qa_params):
    doc = read(SQUAD)
    doc["data"][1]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] += 3
    err = run_clean_on(tmp_path, qa_params, "bad.json", json.dumps(doc))
    assert "bad.json" in err and "question id 'q07'" in err and "'nearly two kilometres'" in err
    assert "the text first occurs at offset" in err and "fix answer_start" in err


def test_jsonl_answer_not_matching_its_offset_names_the_line(tmp_path, qa_params):
    lines = JSONL.read_text().splitlines()
    row = json.loads(lines[2])
    row["answers"]["text"] = ["purple and gold"]
    lines[2] = json.dumps(row)
    err = run_clean_on(tmp_path, qa_params, "bad.jsonl", "\n".join(lines) + "\n")
    assert "bad.jsonl: line 3" in err and "does not occur in the context" in err


def test_squad_missing_keys_are_named(tmp_path, qa_params):
    doc = read(SQUAD)
    del doc["data"][2]["paragraphs"][0]["qas"][0]["question"]
    del doc["data"][2]["paragraphs"][0]["qas"][0]["answers"]
    err = run_clean_on(tmp_path, qa_params, "nokey.json", json.dumps(doc))
    assert "nokey.json: data[2].paragraphs[0].qas[0] (question id 'q10'): missing key(s) ['question', 'answers']" in err


def test_jsonl_answers_of_the_wrong_shape_name_the_line_and_column(tmp_path, qa_params):
    err = run_clean_on(tmp_path, qa_params, "shape.jsonl",
                       '{"question": "q?", "context": "c", "answers": {"text": "c", "answer_start": 0}}\n')
    assert "shape.jsonl: line 1: 'answers' must be" in err


# ---- lmtune predict and dvc repro ---------------------------------------------------------------------------------

def test_lmtune_predict_answers_a_question_with_a_span_of_its_context(squad_run):
    context = read(SQUAD)["data"][4]["paragraphs"][0]["context"]
    line = json.dumps({"question": "Which village is near the steepest section?", "context": context})
    result = subprocess.run([sys.executable, "-m", "lmtune.cli", "predict", "--model", str(squad_run / "model")],
                            input=line + "\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["answer"] and context[row["start"]:row["start"] + len(row["answer"])] == row["answer"]
    assert isinstance(row["score"], float) and row["question"].startswith("Which village")


def test_predict_without_a_context_names_the_missing_field(squad_run):
    result = subprocess.run([sys.executable, "-m", "lmtune.cli", "predict", "--model", str(squad_run / "model")],
                            input='{"question": "Where?"}\n', capture_output=True, text=True)
    assert result.returncode == 2 and "missing field(s) ['context']" in result.stderr


def test_dvc_repro_on_squad_json_writes_exact_match_and_f1(tmp_path, tiny_model):
    repo = copy_project(tmp_path)
    shutil.copy(SQUAD, repo / "data/demo/squad.json")
    write_params(repo / "params.yaml", {**qa_overrides(tiny_model), "data.path": "data/demo/squad.json"})
    init_repo(repo)
    assert repro(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
    metrics = read(repo / "reports/metrics.json")
    assert {"exact_match", "f1", "questions"} <= set(metrics) and 0 <= metrics["f1"] <= 100


@pytest.mark.parametrize("field, value", [("question", 5), ("context", ["Paris is in France."])])
def test_jsonl_question_or_context_that_is_not_a_string_is_refused(tmp_path, tiny_model, field, value):
    """Issue #16 item 7: a number or list is never trained on as its Python repr."""
    row = {"question": "Where is Paris?", "context": "Paris is in France.",
           "answers": {"text": ["France"], "answer_start": [12]}} | {field: value}
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps(row) + "\n")
    params = load_params(write_params(tmp_path / "p.yaml", qa_overrides(tiny_model)))
    with pytest.raises(qa.DataError, match=rf"qa\.jsonl: line 1: '{field}' is .*not a string.*quote it"):
        qa.read_qa_jsonl(data, params)


def test_squad_question_that_is_not_a_string_is_refused(tmp_path):
    doc = {"data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": 7, "answers": [{"text": "France", "answer_start": 12}]}]}]}]}
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(doc))
    with pytest.raises(qa.DataError, match=r"question id 'q1'.*'question' is 7 \(int\), not a string"):
        qa.read_squad_json(data, "utf-8")
