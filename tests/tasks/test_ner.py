"""NER (token classification): every stage on CoNLL, JSONL and character-level Chinese with the tiny model, label
alignment to sub-words, document-level splitting, seqeval metrics, predictions, bad input, and one `dvc repro`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoTokenizer

from lmtune import cli
from lmtune.config import load_params
from lmtune.tasks import ner
from stages import clean
from tests.conftest import FIXTURES, copy_project, run_module, tiny_overrides, write_params
from tests.integration.test_dvc_pipeline import init_repo, repro
from tests.stages.test_pipeline_stages import run_all

EN_CONLL, EN_JSONL, ZH_CONLL = FIXTURES / "ner_en.conll", FIXTURES / "ner_en.jsonl", FIXTURES / "ner_zh.conll"
JSONL_COLUMNS = {"task.text_column": "tokens", "task.label_column": "tags"}
METRICS = {"precision", "recall", "f1", "accuracy"}


def ner_params(path: Path, model_dir: Path, **overrides: object) -> Path:
    return write_params(path, {**tiny_overrides(model_dir), "task.name": "ner", **overrides})


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def conll(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("ner-conll")
    return run_all(root, ner_params(root / "params.yaml", tiny_model), EN_CONLL)


@pytest.fixture(scope="module")
def chinese(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("ner-zh")
    return run_all(root, ner_params(root / "params.yaml", tiny_model), ZH_CONLL)


def test_conll_clean_counts_sentences_documents_tags_and_entities(conll):
    summary = read(conll / "reports/clean.json")
    assert (summary["sentences"], summary["documents"], summary["rows_rejected"]) == (30, 10, 0)
    assert summary["entity_counts"] == {"LOC": 18, "ORG": 12, "PER": 18}
    assert summary["tag_counts"]["B-PER"] == 18 and sum(summary["tag_counts"].values()) == summary["tokens"]
    assert read(conll / "interim/meta.json")["labels"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_docstart_documents_stay_whole_in_one_split(conll):
    splits = load_from_disk(str(conll / "splits"))
    docs = {name: set(part["example_id"]) for name, part in splits.items()}
    assert not (docs["train"] & docs["test"]) and not (docs["train"] & docs["validation"])
    assert not (docs["validation"] & docs["test"])
    for name, part in splits.items():  # the fixture's documents have 3 sentences each: none was cut
        assert len(part) == 3 * len(docs[name]), name
    assert splits["test"][0]["text"] == " ".join(splits["test"][0]["tokens"])


def test_fine_tune_validates_with_seqeval_f1_and_keeps_the_task_in_the_model(conll):
    assert read(conll / "model/lmtune.json")["task"] == "ner"
    assert METRICS <= set(read(conll / "reports/live/metrics.json")["eval"])
    config = read(conll / "model/config.json")
    assert config["id2label"]["0"] == "O" and len(config["id2label"]) == 7


def test_evaluate_writes_seqeval_metrics_per_type_word_confusion_plots_and_predictions(conll):
    metrics = read(conll / "reports/metrics.json")
    assert all(0.0 <= metrics[key] <= 1.0 for key in METRICS)
    test = load_from_disk(str(conll / "splits"))["test"]
    words = sum(len(t) for t in test["tokens"])
    assert len(read(conll / "reports/plots/confusion/test.json")) == words, "one confusion row per test word"
    f1_rows = read(conll / "reports/plots/f1_by_label/test.json")
    per_type = read(conll / "reports/eval/per_type.json")
    assert {r["label"] for r in f1_rows} == set(per_type) <= {"LOC", "ORG", "PER"}
    predictions = read_jsonl(conll / "reports/eval/predictions.jsonl")
    assert len(predictions) == len(test)
    assert all(len(p["tokens"]) == len(p["tags"]) == len(p["predicted"]) for p in predictions)
    for name in ("confusion_matrix.png", "per_type_f1.png"):
        assert (conll / "reports/eval/figures" / name).stat().st_size > 1000, name


def test_lmtune_predict_tags_text_lines_and_json_records(conll, tmp_path, capsys):
    lines = tmp_path / "in.txt"
    lines.write_text('Alice Smith visited Paris .\n{"text": "北京下雨了"}\n', encoding="utf-8")
    cli.main(["predict", "--model", str(conll / "model"), "--input", str(lines)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["tokens"] == ["Alice", "Smith", "visited", "Paris", "."]
    assert rows[1]["tokens"] == ["北", "京", "下", "雨", "了"], "CJK text without spaces is split per character"
    labels = read(conll / "model/config.json")["label2id"]
    for row in rows:
        assert len(row["tags"]) == len(row["tokens"]) and set(row["tags"]) <= set(labels)
        assert all(row["tokens"][e["start"]:e["end"]] and e["type"] in ("LOC", "ORG", "PER") for e in row["entities"])


def test_predict_accepts_a_tokens_record(conll):
    model_dir = conll / "model"
    info = read(model_dir / "lmtune.json")
    model = ner.load_model(str(model_dir), info["labels"], "main")
    rows = ner.predict(model, AutoTokenizer.from_pretrained(model_dir), [{"tokens": ["Jean-Luc", "met", "Tom"]}],
                       info, batch_size=4)
    assert rows[0]["tokens"] == ["Jean-Luc", "met", "Tom"] and len(rows[0]["tags"]) == 3


def test_entity_spans_are_word_indices_with_exclusive_end_and_cjk_joined_without_spaces():
    words, tags = ["张", "伟", "去", "了", "New", "York"], ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]
    assert ner.entity_spans(words, tags) == [{"type": "PER", "text": "张伟", "start": 0, "end": 2},
                                             {"type": "LOC", "text": "New York", "start": 4, "end": 6}]


def test_jsonl_with_iob1_tags_and_a_split_column_runs_every_stage(tmp_path, tiny_model):
    params = ner_params(tmp_path / "params.yaml", tiny_model, **JSONL_COLUMNS, **{"task.split_column": "split"})
    run_all(tmp_path, params, EN_JSONL)
    assert {k: v["examples"] for k, v in read(tmp_path / "reports/split.json").items()} == \
        {"train": 20, "validation": 5, "test": 5}
    assert read(tmp_path / "interim/meta.json")["labels"][0] == "O"
    assert METRICS <= set(read(tmp_path / "reports/metrics.json"))


def test_chinese_character_level_conll_gets_one_subword_per_character(chinese):
    tokenized = load_from_disk(str(chinese / "tokenized"))
    assert all(length == len(tokens) + 2 for length, tokens in zip(tokenized["length"], tokenized["tokens"]))
    assert all(len(token) == 1 for tokens in tokenized["tokens"] for token in tokens)
    assert read(chinese / "reports/clean.json")["entity_counts"].keys() == {"LOC", "ORG", "PER"}
    assert all(0.0 <= read(chinese / "reports/metrics.json")[key] <= 1.0 for key in METRICS)
    assert len(read_jsonl(chinese / "reports/eval/predictions.jsonl")[0]["predicted"][0]) >= 1


@pytest.fixture(scope="module")
def hyphen_sentence(tiny_model) -> tuple[Dataset, AutoTokenizer, list[str]]:
    """'Jean-Luc' is one word but three sub-words (jean, -, luc) for a BERT tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    labels = ["O", "B-PER", "I-PER"]
    ds = Dataset.from_dict({"tokens": [["Jean-Luc", "Picard", "smiled"]], "tag_ids": [[1, 2, 0]], "doc": [0],
                            "text": ["Jean-Luc Picard smiled"]})
    return ds, tokenizer, labels


@pytest.mark.parametrize("label_all_tokens,expected", [
    (False, [-100, 1, -100, -100, 2, 0, -100]),  # only a word's first sub-word is labelled
    (True, [-100, 1, 2, 2, 2, 0, -100]),  # every sub-word, B-PER continuing as I-PER
])
def test_tokenize_aligns_tags_to_subwords(hyphen_sentence, tmp_path, tiny_model, label_all_tokens, expected):
    ds, tokenizer, labels = hyphen_sentence
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model, **{"ner.label_all_tokens": label_all_tokens}))
    out, stats = ner.tokenize(ds, tokenizer, params, labels)
    assert tokenizer.convert_ids_to_tokens(out[0]["input_ids"])[1:4] == ["jean", "-", "luc"]
    assert out[0]["labels"] == expected and out[0]["example_id"] == 0
    assert stats == {"truncated_sentences": 0, "unseen_words": 0}


IOBES = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]  # ids 0..4


@pytest.mark.parametrize("labels,tags,expected", [
    # positions: [CLS] jean - luc picard smiled [SEP]; the word Jean-Luc is three sub-words
    (IOBES, ["S-PER", "O", "O"], [-100, 1, 2, 3, 0, 0, -100]),  # S-X -> B-X I-X E-X
    (IOBES, ["B-PER", "E-PER", "O"], [-100, 1, 2, 2, 3, 0, -100]),  # B-X -> B-X I-X I-X; one-sub-word E-X stays
    (IOBES, ["E-PER", "S-PER", "O"], [-100, 2, 2, 3, 4, 0, -100]),  # E-X -> I-X I-X E-X; one-sub-word S-X stays
    (IOBES, ["I-PER", "E-PER", "O"], [-100, 2, 2, 2, 3, 0, -100]),  # I-X -> I-X I-X I-X
    (["O", "B-PER", "I-PER", "S-PER"], ["S-PER", "O", "O"], [-100, 3, -100, -100, 0, 0, -100]),  # no E-PER label
])
def test_label_all_tokens_gives_the_subwords_of_a_word_one_valid_span(hyphen_sentence, tmp_path, tiny_model, labels,
                                                                      tags, expected):
    _, tokenizer, _ = hyphen_sentence
    ds = Dataset.from_dict({"tokens": [["Jean-Luc", "Picard", "smiled"]], "tag_ids": [[labels.index(t) for t in tags]],
                            "doc": [0], "text": ["Jean-Luc Picard smiled"]})
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model, **{"ner.label_all_tokens": True}))
    out, _ = ner.tokenize(ds, tokenizer, params, labels)
    assert tokenizer.convert_ids_to_tokens(out[0]["input_ids"])[1:4] == ["jean", "-", "luc"]
    assert out[0]["labels"] == expected
    # predicting exactly the trained sub-word tags reads back the word's own tag
    trained = np.where(np.asarray(expected) < 0, 0, expected)
    reader = ner.word_tag_reader(labels, label_all_tokens=True)
    assert ner.word_predictions(trained, out[0]["word_ids"], 3, reader) == ds[0]["tag_ids"]


def test_word_tags_are_read_from_the_first_subword_only_without_label_all_tokens():
    word_ids = [-1, 0, 0, 0, 1, -1]
    predicted = np.array([0, 1, 2, 3, 0, 0])  # B-PER I-PER E-PER over one word spells S-PER
    assert ner.word_predictions(predicted, word_ids, 2, ner.word_tag_reader(IOBES, label_all_tokens=True)) == [4, 0]
    assert ner.word_predictions(predicted, word_ids, 2, ner.word_tag_reader(IOBES, label_all_tokens=False)) == [1, 0]


def test_tokenize_counts_words_cut_by_max_length_and_they_are_predicted_o(hyphen_sentence, tmp_path, tiny_model):
    ds, tokenizer, labels = hyphen_sentence
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model, **{"tokenize.max_length": 8}))
    long = Dataset.from_dict({k: [v[0] * 3] if k in ("tokens", "tag_ids") else v for k, v in ds.to_dict().items()})
    out, stats = ner.tokenize(long, tokenizer, params, labels)
    assert len(out[0]["input_ids"]) == 8 and stats == {"truncated_sentences": 1, "unseen_words": 5}
    predicted = ner.word_predictions(np.full(8, 2), out[0]["word_ids"], n_words=9)
    assert predicted == [2] * 4 + [0] * 5, "words beyond max_length get O (id 0)"


def test_seqeval_scores_entities_not_tags_and_accept_iob1():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "O"]]  # the second sentence is IOB1
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O"]]
    overall, per_type = ner.seqeval_scores(gold, predicted)
    # entities: gold PER, LOC, ORG; predicted PER, ORG, both right. I-ORG vs B-ORG is one tag wrong, same entity.
    assert overall == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "accuracy": 4 / 6})
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    assert per_type["ORG"]["f1-score"] == 1.0


def test_clean_rejects_empty_sentences_and_drops_empty_tokens(tmp_path, tiny_model):
    data = tmp_path / "d.jsonl"
    rows = [{"tokens": ["Tom", "\u200b", "smiled"], "tags": ["B-PER", "O", "O"]}, {"tokens": [], "tags": []},
            {"tokens": ["\u200b"], "tags": ["O"]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = ner_params(tmp_path / "p.yaml", tiny_model, **JSONL_COLUMNS)
    clean.main([str(data), str(tmp_path / "out"), str(tmp_path / "c.json"), "--params", str(params)])
    summary = read(tmp_path / "c.json")
    assert summary["rejected_by_reason"] == {"empty_sentence": 2} and summary["empty_tokens_dropped"] == 2
    rejected = (tmp_path / "out/rejected.csv").read_text().splitlines()
    assert rejected[1:] == ["2,empty_sentence,,", "3,empty_sentence,O,\u200b"]


BAD_INPUT = {
    "conll_line_without_tag": ("d.conll", "-DOCSTART- O\n\nTom B-PER\nsmiled\n", {},
                               ["d.conll: line 4: expected a token and a tag", "ner.conll_tag_column"]),
    "conll_tag_that_is_no_iob_tag": ("d.conll", "Tom NNP PER\nsmiled VBD O\n", {},
                                     ["d.conll: line 1: tag 'PER' is not O or B-/I-/M-/E-/S-<type>"]),
    "jsonl_tokens_and_tags_lengths_differ": ("d.jsonl", '{"tokens": ["a", "b"], "tags": ["O", "O"]}\n'
                                             '{"tokens": ["Tom", "x", "y"], "tags": ["B-PER", "O"]}\n',
                                             JSONL_COLUMNS, ["d.jsonl: row 2: 3 tokens but 2 tags"]),
    "only_o_tags": ("d.conll", "a O\nb O\n", {}, ["every tag is 'O'"]),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_exits_2_with_one_message_naming_the_line(case, tmp_path, tiny_model):
    name, content, overrides, fragments = BAD_INPUT[case]
    (tmp_path / name).write_text(content)
    params = ner_params(tmp_path / "p.yaml", tiny_model, **overrides)
    result = run_module("stages.clean", str(tmp_path / name), str(tmp_path / "out"), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert all(fragment in result.stderr for fragment in fragments), result.stderr
    assert not (tmp_path / "out").exists()


def test_dvc_repro_runs_the_ner_pipeline_end_to_end(tmp_path, tiny_model):
    repo = copy_project(tmp_path)
    (repo / "data/demo/ner.conll").write_bytes(EN_CONLL.read_bytes())
    ner_params(repo / "params.yaml", tiny_model, **{"data.path": "data/demo/ner.conll"})  # dvc.yaml as shipped
    init_repo(repo)
    assert repro(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
    assert METRICS <= set(read(repo / "reports/metrics.json"))
    assert read(repo / "reports/plots/f1_by_label/test.json")
    assert read(repo / "reports/clean.json")["documents"] == 10


@pytest.mark.parametrize("tokens, tags, item", [(["John", 5, "Paris"], ["B-PER", "O", "B-LOC"], "'tokens' item 1 is 5"),
                                                (["John", ["x"]], ["B-PER", "O"], "'tokens' item 1 is [\"x\"]"),
                                                (["John", None], ["B-PER", "O"], "'tokens' item 1 is null"),
                                                (["John", "Paris"], ["B-PER", 0], "'ner_tags' item 1 is 0")])
def test_jsonl_tokens_and_tags_that_are_not_strings_are_refused_naming_row_and_item(tmp_path, tiny_model, tokens,
                                                                                      tags, item):
    """Issue #16 item 7: never trained on as a Python repr ("['x']", "None")."""
    data = tmp_path / "ner.jsonl"
    data.write_text(json.dumps({"tokens": tokens, "ner_tags": tags}) + "\n")
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model, **{"task.text_column": "tokens",
                                                                        "task.label_column": "ner_tags"}))
    with pytest.raises(ner.DataError, match=rf"ner\.jsonl: row 1: {re.escape(item)}.*not a string.*quote it"):
        ner.read_jsonl(data, params)
