"""Summarization and translation: every stage on the tiny model for a JSONL file and for line-aligned text files,
the bert2bert warm start, the metric functions, bad input, `lmtune predict`, and one real `dvc repro`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoTokenizer, EncoderDecoderModel

from lmtune.config import load_params
from lmtune.errors import DataError
from lmtune.tasks import TASKS, seq2seq
from stages import clean, split, tokenize
from tests.conftest import FIXTURES, copy_project, run_module, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

PAIRS_EN, PAIRS_DE, DIALOGUES = FIXTURES / "seq2seq_pairs.en", FIXTURES / "seq2seq_pairs.de", \
    FIXTURES / "seq2seq_dialogues.jsonl"
GENERATION = {"seq2seq.num_beams": 2, "seq2seq.max_new_tokens": 8}


def translation_overrides(model: Path) -> dict[str, object]:
    return {**tiny_overrides(model), **GENERATION, "task.name": "translation", "clean.input_format": "text",
            "data.target_path": str(PAIRS_DE)}


def summarization_overrides(model: Path) -> dict[str, object]:
    return {**tiny_overrides(model), **GENERATION, "task.name": "summarization", "task.text_column": "dialogue",
            "task.label_column": "summary"}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("translation")
    return run_all(root, write_params(root / "params.yaml", translation_overrides(tiny_model)), PAIRS_EN)


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("summarization")
    return run_all(root, write_params(root / "params.yaml", summarization_overrides(tiny_model)), DIALOGUES)


def read(path: Path):
    return json.loads(path.read_text())


def test_clean_parallel_files_rejects_an_empty_target_line_with_its_reason(text_run):
    summary = read(text_run / "reports/clean.json")
    assert summary["rows_in"] == 36 and summary["rows_kept"] == 35
    assert summary["rejected_by_reason"] == {"empty_target": 1}
    assert summary["source_chars_mean"] > 0 and summary["target_chars_mean"] > 0
    rejected = (text_run / "interim/rejected.csv").read_text().splitlines()
    assert rejected[1].startswith("5,empty_target,,A man is playing"), rejected
    assert read(text_run / "interim/meta.json")["labels"] == []


def test_clean_jsonl_rejects_empty_targets_and_duplicate_pairs(jsonl_run):
    summary = read(jsonl_run / "reports/clean.json")
    assert summary["rejected_by_reason"] == {"duplicate": 1, "empty_target": 1}
    assert summary["pairs"] == 30 and summary["num_labels"] == 0


def test_pairs_sharing_a_source_share_an_example_id(tmp_path, tiny_model):
    data = tmp_path / "d.jsonl"
    rows = [("hello there", "hallo"), ("hello there", "guten tag"), ("good night", "gute nacht"), ("", "leer")]
    data.write_text("".join(json.dumps({"text": s, "label": t}) + "\n" for s, t in rows))
    params = load_params(write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.name": "translation"}))
    result = seq2seq.clean(data, params)
    assert result.kept["example_id"].tolist() == [0, 0, 1], "one source -> one example, so one split"
    assert result.rejected[["row", "reason"]].values.tolist() == [[4, "empty_source"]]


def test_a_split_column_keeps_each_pair_in_the_split_its_row_names(tmp_path, tiny_model):
    # "hello there" has a train reference and a test reference: grouped by source alone, the split stage put the
    # example (both pairs) into train and test, so test scored a pair the model had trained on
    rows = [("hello there", "hallo", "train"), ("hello there", "guten tag", "test"),
            ("good night", "gute nacht", "test"), ("good morning", "guten morgen", "train"),
            ("see you", "bis bald", "validation")]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": s, "label": t, "split": p}) + "\n" for s, t, p in rows))
    p = ["--params", str(write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.name": "translation",
                                                            "task.split_column": "split"}))]
    clean.main([str(data), str(tmp_path / "interim"), str(tmp_path / "c.json"), *p])
    tokenize.main([str(tmp_path / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), *p])
    split.main([str(tmp_path / "tok"), str(tmp_path / "splits"), str(tmp_path / "s.json"), *p])
    splits = load_from_disk(str(tmp_path / "splits"))
    assert sorted(splits["train"]["target"]) == ["guten morgen", "hallo"]
    assert sorted(splits["test"]["target"]) == ["gute nacht", "guten tag"]
    assert splits["validation"]["target"] == ["bis bald"]
    assert read(tmp_path / "c.json")["unique_sources"] == 4


def test_tokenize_encodes_source_and_target_and_keeps_the_reference_text(text_run):
    ds = load_from_disk(str(text_run / "tokenized"))
    assert {"input_ids", "attention_mask", "labels", "length", "example_id", "text", "target"} <= set(ds.column_names)
    assert ds["length"] == [len(ids) for ids in ds["input_ids"]]
    assert ds[0]["target"] == "Ein mann läuft auf der straße."
    tok = AutoTokenizer.from_pretrained(text_run / "model")
    assert ds[0]["labels"] == tok(text_target=ds[0]["target"])["input_ids"]
    assert TASKS["translation"].stratify_column is None


def test_tokenize_counts_truncated_sources_and_targets_and_adds_the_prefix(text_run, tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**translation_overrides(tiny_model), "tokenize.max_length": 8,
                                                "seq2seq.max_target_length": 5, "seq2seq.source_prefix": "translate: "})
    tokenize.main([str(text_run / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), "--params", str(params)])
    summary, ds = read(tmp_path / "t.json"), load_from_disk(str(tmp_path / "tok"))
    assert summary["truncated_sources"] > 0 and summary["truncated_targets"] > 0
    assert max(map(len, ds["input_ids"])) == 8 and max(map(len, ds["labels"])) == 5
    plain = load_from_disk(str(text_run / "tokenized"))
    assert ds[0]["input_ids"][:3] == AutoTokenizer.from_pretrained(text_run / "model")("translate:")["input_ids"][:3]
    assert ds[0]["input_ids"][3:7] == plain[0]["input_ids"][1:5], "the source follows the prefix"


def test_bert2bert_warm_start_adds_cross_attention_and_sets_special_tokens(tiny_model):
    model = seq2seq.load_model(str(tiny_model), [], "main")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert isinstance(model, EncoderDecoderModel)
    assert model.config.decoder.is_decoder and model.config.decoder.add_cross_attention
    assert hasattr(model.decoder.bert.encoder.layer[0], "crossattention")
    assert not model.config.encoder.add_cross_attention
    assert (model.config.decoder_start_token_id, model.config.eos_token_id, model.config.pad_token_id) == \
        (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
    gen = model.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id) == \
        (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
    assert model.config.vocab_size == model.config.decoder.vocab_size


def test_fine_tune_validates_with_generation_metrics(text_run, jsonl_run):
    for run, metric in ((text_run, "bleu"), (jsonl_run, "rougeL")):  # the tasks' default_metric
        live = read(run / "reports/live/metrics.json")["eval"]
        assert {"rouge1", "rouge2", "rougeL", "bleu", "chrf"} <= set(live)
        info = read(run / "model/lmtune.json")
        assert info["params"]["seq2seq"]["max_new_tokens"] == 8 and info["labels"] == []
        assert info["params"]["seq2seq"]["target_language"] == "auto", "the scoring choice is saved with the model"
        best = read(run / "reports/train.json")["best_metric"]
        assert best is not None and 0 <= best <= 100, f"{metric}: the kept checkpoint is picked by it"


def test_saved_model_reloads_as_encoder_decoder_and_generates(text_run):
    model = seq2seq.load_model(str(text_run / "model"), [], "main")
    tok = AutoTokenizer.from_pretrained(text_run / "model")
    assert isinstance(model, EncoderDecoderModel)
    out = model.generate(**tok(["A dog is running."], return_tensors="pt", return_token_type_ids=False),
                         max_new_tokens=8, num_beams=2)
    assert out[0, 0].item() == tok.cls_token_id and 2 <= out.shape[1] <= 9


@pytest.mark.parametrize("run_name", ["text_run", "jsonl_run"])
def test_evaluate_writes_generation_metrics_and_predictions(run_name, request):
    run = request.getfixturevalue(run_name)
    metrics = read(run / "reports/metrics.json")
    for name in ("rouge1", "rouge2", "rougeL", "bleu", "chrf"):
        assert 0 <= metrics[name] <= 100
    assert 0 < metrics["gen_len"] <= 8 and metrics["test_examples"] > 0 and metrics["references_per_source"] >= 1
    rows = [json.loads(line) for line in (run / "reports/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == metrics["test_examples"], "one row per source"
    assert all(set(r) == {"source", "references", "generated"} and isinstance(r["generated"], str) for r in rows)
    assert sum(map(len, (r["references"] for r in rows))) == len(load_from_disk(str(run / "splits"))["test"])
    generation = read(run / "reports/eval/generation.json")
    assert (generation["target_language"], generation["script"], generation["bleu_tokenize"]) == \
        ("auto", "latin", "13a"), "English and German references: sacrebleu's default tokenizer"


def test_evaluate_generates_once_per_source_and_scores_all_its_references(text_run, tmp_path, tiny_model):
    test = load_from_disk(str(text_run / "splits"))["test"]
    two = test.select([0, 1]).to_dict()
    rows = {k: [v[0], v[0], v[1]] for k, v in two.items()}  # source 0 gets a second reference
    rows["target"][1] = "Eine zweite Referenz."
    params = load_params(write_params(tmp_path / "p.yaml", translation_overrides(tiny_model)))
    model = seq2seq.load_model(str(text_run / "model"), [], "main")
    tok = AutoTokenizer.from_pretrained(text_run / "model")
    result = seq2seq.evaluate(model, tok, Dataset.from_dict(rows), [], params)
    assert [r["references"] for r in result.predictions] == [[two["target"][0], "Eine zweite Referenz."],
                                                             [two["target"][1]]]
    assert result.metrics["references_per_source"] == pytest.approx(1.5)
    assert result.reports["generation"]["sources"] == 2 and result.reports["generation"]["references"] == 3


def test_validation_scores_the_first_row_of_each_source_against_all_its_references(tiny_model, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    validation = Dataset.from_dict({"example_id": [0, 0, 1], "target": [  # words of the tiny model's vocabulary
        "a dog is running on the", "a man is running on the street", "two girls are playing in the park"]})
    params = load_params(write_params(tmp_path / "p.yaml", translation_overrides(tiny_model)))
    fn = seq2seq.compute_metrics([], params, validation, tok)
    texts = ["a man is running on the street", "a dog", "two girls are playing in the park"]  # row 1: ignored
    ids = [tok(t)["input_ids"] for t in texts]
    padded = np.array([row + [-100] * (max(map(len, ids)) - len(row)) for row in ids])
    scores = fn(type("Pred", (), {"predictions": padded})())
    assert scores["bleu"] == pytest.approx(100) and scores["rougeL"] == pytest.approx(100), scores


def test_generation_metrics_are_100_for_identical_and_0_for_disjoint_text():
    english = seq2seq.scoring_for("auto", ["the cat sat on the mat"])
    same = seq2seq.generation_metrics(["the cat sat on the mat", "a dog runs"],
                                      [["the cat sat on the mat"], ["a dog runs"]], english)
    assert all(v == pytest.approx(100) for v in same.values()), same
    disjoint = seq2seq.generation_metrics(["xyz qqq"], [["the cat sat on the mat"]], english)
    assert all(v == pytest.approx(0, abs=1e-9) for v in disjoint.values()), disjoint


def test_rouge_is_the_f_measure_with_stemming():
    # generated "the cats" vs reference "the cat sat on the mat": stemming matches cats/cat, so 2 of 2 unigrams
    # match out of 6 in the reference: P 1, R 1/3, F 2PR/(P+R) = 0.5; one bigram "the cat" of 1 and 5: F = 1/3
    scores = seq2seq.generation_metrics(["the cats"], [["the cat sat on the mat"]],
                                        seq2seq.scoring_for("en", []))
    assert scores["rouge1"] == pytest.approx(50) and scores["rouge2"] == pytest.approx(100 / 3)
    assert scores["rougeL"] == pytest.approx(50)


def test_decode_turns_label_padding_into_text():
    class Tok:  # the two tokenizer members decode uses
        pad_token_id = 0

        @staticmethod
        def batch_decode(ids, skip_special_tokens):
            return [" ".join(str(t) for t in row if t != 0) + " " for row in ids]

    assert seq2seq.decode(Tok, np.array([[5, 6, -100], [7, -100, -100]])) == ["5 6", "7"]


def test_line_count_mismatch_exits_2_naming_both_files_and_counts(tmp_path, tiny_model):
    (tmp_path / "source.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "target.de").write_text("eins\nzwei\n")
    params = write_params(tmp_path / "p.yaml", {**translation_overrides(tiny_model),
                                                "data.target_path": str(tmp_path / "target.de")})
    out = tmp_path / "interim"
    result = run_module("stages.clean", str(tmp_path / "source.en"), str(out), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'source.en'} has 3 lines but {tmp_path / 'target.de'} has 2" in result.stderr
    assert not out.exists(), "no half-written output"


BAD_PARALLEL = {
    "text_format_without_target_file": ({"data.target_path": "data/no-target"}, "set data.target_path"),
    "missing_target_file": ({"data.target_path": "absent.de"}, "absent.de: data.target_path not found"),
}


@pytest.mark.parametrize("case", BAD_PARALLEL)
def test_unusable_parallel_file_settings_raise_a_data_error(case, tmp_path, tiny_model):
    overrides, message = BAD_PARALLEL[case]
    params = load_params(write_params(tmp_path / "p.yaml", {**translation_overrides(tiny_model), **overrides}))
    with pytest.raises(DataError, match=message):
        seq2seq.clean(PAIRS_EN, params)


def test_target_file_with_a_jsonl_input_is_refused(tmp_path, tiny_model):
    params = load_params(write_params(tmp_path / "p.yaml", {**summarization_overrides(tiny_model),
                                                            "data.target_path": str(PAIRS_DE)}))
    with pytest.raises(DataError, match="needs clean.input_format: text"):
        seq2seq.clean(DIALOGUES, params)


def test_lmtune_predict_generates_text_for_plain_lines_and_json(text_run, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text('A dog is running.\n{"source": "Two girls are playing.", "id": 7}\n')
    result = run_module("lmtune.cli", "predict", "--model", str(text_run / "model"), "--input", str(inputs))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["text"] == "A dog is running." and rows[1]["source"] == "Two girls are playing."
    assert rows[1]["id"] == 7
    assert all(isinstance(r["generated"], str) for r in rows)


def test_dvc_repro_translation_end_to_end(tmp_path, tiny_model):
    from tests.integration.test_dvc_pipeline import init_repo, repro

    repo = copy_project(tmp_path)
    (repo / "data/pairs").mkdir(parents=True)
    shutil.copy(PAIRS_EN, repo / "data/pairs/train.en")
    shutil.copy(PAIRS_DE, repo / "data/pairs/train.de")
    write_params(repo / "params.yaml", {**translation_overrides(tiny_model), "data.path": "data/pairs/train.en",
                                        "data.target_path": "data/pairs/train.de", "fine_tune.epochs": 1})
    init_repo(repo)
    assert repro(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
    metrics = read(repo / "reports/metrics.json")
    assert {"rouge1", "rouge2", "rougeL", "bleu", "chrf", "gen_len"} <= set(metrics)
    assert metrics["test_examples"] > 0 and read(repo / "reports/clean.json")["rows_rejected"] == 1


def test_collator_drops_a_leading_decoder_start_token_and_pads_labels_with_minus_100(tmp_path, tiny_model):
    model = seq2seq.load_model(str(tiny_model), [], "main")
    params = load_params(write_params(tmp_path / "p.yaml", translation_overrides(tiny_model)))
    start = model.config.decoder_start_token_id
    batch = seq2seq.collator(AutoTokenizer.from_pretrained(tiny_model), model, params, 16)([
        {"input_ids": [start, 7, 3], "attention_mask": [1, 1, 1], "labels": [start, 8, 9, 3]},
        {"input_ids": [start, 3], "attention_mask": [1, 1], "labels": [start, 8, 3]}])
    assert batch["labels"].tolist() == [[8, 9, 3], [8, 3, -100]]
    assert batch["decoder_input_ids"][:, 0].tolist() == [start, start], "the model inserts the start token itself"
