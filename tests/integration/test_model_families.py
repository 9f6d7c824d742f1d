"""The model-family compatibility matrix: tiny random checkpoints of 15 families (tests/families.py), each through
every task it supports (a few steps, then `lmtune predict`), and each unsupported pair refused in one line before any
heavy work. The default run keeps one decoder-only (GPT-2, no pad token) and one encoder-decoder family (T5) end to
end; the full matrix is marked slow."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmtune import families, models
from lmtune.errors import ParamsError
from lmtune.inference import Predictor
from lmtune.tasks import TASKS
from tests.conftest import FIXTURES, run_module, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

TEXT_TASKS = ("classification", "multilabel", "regression")
GENERATION = ("summarization", "translation")
ALL = (*TEXT_TASKS, "ner", "qa", *GENERATION)
# family -> the tasks it supports (docs/models.md's matrix); every other task must be refused
SUPPORTED: dict[str, tuple[str, ...]] = {
    "bert": ALL, "bert-zh": ALL, "roberta": ALL, "xlm-roberta": ALL, "electra": ALL,
    "distilbert": (*TEXT_TASKS, "ner", "qa"), "deberta-v2": (*TEXT_TASKS, "ner", "qa"),
    "albert": (*TEXT_TASKS, "ner", "qa"),
    "gpt2": (*TEXT_TASKS, "ner", *GENERATION), "llama": (*TEXT_TASKS, "ner", *GENERATION),
    "qwen2": (*TEXT_TASKS, "ner", *GENERATION),
    "t5": (*TEXT_TASKS, "ner", *GENERATION), "mt5": (*TEXT_TASKS, "ner", *GENERATION),
    "bart": (*TEXT_TASKS, "qa", *GENERATION),
    "marian": GENERATION,
}
REFUSED = [(family, task) for family, tasks in SUPPORTED.items() for task in ALL if task not in tasks]
TASK_DATA: dict[str, tuple[Path, dict[str, object]]] = {
    "classification": (FIXTURES / "sentiment.csv", {}),
    "multilabel": (FIXTURES / "multilabel_topics.csv", {}),
    "regression": (FIXTURES / "regression_reviews.csv", {"task.label_column": "score"}),
    "ner": (FIXTURES / "ner_en.conll", {"clean.input_format": "conll"}),
    "qa": (FIXTURES / "qa_squad.json", {"clean.input_format": "squad"}),
    "summarization": (FIXTURES / "seq2seq_dialogues.jsonl", {"task.text_column": "dialogue",
                                                            "task.label_column": "summary"}),
    "translation": (FIXTURES / "seq2seq_pairs.en", {"clean.input_format": "text",
                                                    "data.target_path": str(FIXTURES / "seq2seq_pairs.de")}),
}
REQUESTS = {"qa": {"question": "Who met Ann?", "context": "Tom met Ann in Paris."}}
PREDICTED = {"classification": "label", "multilabel": "labels", "regression": "value", "ner": "tags",
             "qa": "answer", "summarization": "generated", "translation": "generated"}


def run_task(root: Path, model: Path, task: str) -> Path:
    """Every stage of `task` on `model` for 4 steps (one validation), then `lmtune predict` on two records."""
    data, extra = TASK_DATA[task]
    params = write_params(root / "params.yaml", {
        **tiny_overrides(model), "task.name": task, "fine_tune.max_steps": 4, "fine_tune.eval_strategy": "steps",
        "fine_tune.eval_steps": 4, "seq2seq.num_beams": 2, "seq2seq.max_new_tokens": 6, **extra})
    run_all(root, params, data)
    record = REQUESTS.get(task, {"text": "Tom met Ann in Paris and the film was good ."})
    rows = Predictor(root / "model").predict([record, record])
    assert len(rows) == 2 and PREDICTED[task] in rows[0], rows
    return root


def check_family_task(tmp_path: Path, tiny_family, family: str, task: str) -> dict:
    root = run_task(tmp_path, tiny_family(family), task)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["test_examples"] > 0
    saved = json.loads((root / "model/config.json").read_text())["model_type"]
    base = json.loads((tiny_family(family) / "config.json").read_text())["model_type"]
    assert saved == base or (saved == "encoder-decoder" and task in GENERATION), "bert2bert is an encoder-decoder"
    return metrics


@pytest.mark.parametrize("family, task", REFUSED, ids=[f"{f}-{t}" for f, t in REFUSED])
def test_an_unsupported_family_and_task_is_refused_naming_both_and_what_works(tiny_family, family, task):
    with pytest.raises(ParamsError) as err:
        models.load_tokenizer(str(tiny_family(family)), "main", TASKS[task])
    message = str(err.value)
    assert f"task {task}" in message and "\n" not in message and "Use " in message, message


def test_the_tokenize_stage_refuses_an_unsupported_pair_with_exit_2_and_one_line(tmp_path, tiny_family):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_family("gpt2")), "task.name": "qa",
                                                      "clean.input_format": "squad"})
    run_module("stages.clean", str(FIXTURES / "qa_squad.json"), str(tmp_path / "i"), str(tmp_path / "c.json"),
               "--params", str(params), check=True)
    result = run_module("stages.tokenize", str(tmp_path / "i"), str(tmp_path / "t"), str(tmp_path / "t.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gpt2 (decoder)" in result.stderr and "task qa" in result.stderr
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("family", ["roberta", "gpt2", "qwen2"])
def test_byte_level_bpe_encodes_a_pre_split_word_as_it_is_inside_a_sentence(tiny_family, family):
    tokenizer = models.load_tokenizer(str(tiny_family(family)), "main", TASKS["ner"])
    assert families.is_byte_level(tokenizer)
    words = tokenizer(["Tom", "met", "Ann"], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    sentence = tokenizer(" Tom met Ann", add_special_tokens=False)["input_ids"]
    assert words == sentence, "each pre-split word must get the ids it has after a space in running text"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_decoder_without_a_pad_token_pads_with_eos_and_the_saved_model_pads_the_same(tmp_path, tiny_family,
                                                                                      family):
    assert models.AutoTokenizer.from_pretrained(tiny_family(family)).pad_token is None, "shipped without one"
    root = run_task(tmp_path, tiny_family(family), "classification")
    saved = models.AutoTokenizer.from_pretrained(root / "model")
    assert saved.pad_token == saved.eos_token and saved.padding_side == "right"
    assert json.loads((root / "model/config.json").read_text())["pad_token_id"] == saved.eos_token_id


@pytest.mark.parametrize("family, task", [("gpt2", "ner"), ("t5", "classification"), ("t5", "regression"),
                                          ("gpt2", "summarization"), ("t5", "translation")])
def test_one_decoder_and_one_encoder_decoder_family_run_end_to_end(tmp_path, tiny_family, family, task):
    check_family_task(tmp_path, tiny_family, family, task)


MATRIX = [(family, task) for family, tasks in SUPPORTED.items() for task in tasks]


@pytest.mark.slow
@pytest.mark.parametrize("family, task", MATRIX, ids=[f"{f}-{t}" for f, t in MATRIX])
def test_every_supported_family_and_task_runs_every_stage_and_predicts(tmp_path, tiny_family, family, task):
    check_family_task(tmp_path, tiny_family, family, task)


def test_a_family_without_sdpa_attention_loads_with_eager_attention_instead(tiny_family):
    from transformers import AutoModelForSequenceClassification

    deberta, bert = str(tiny_family("deberta-v2")), str(tiny_family("bert"))
    assert not families.supports_sdpa(AutoModelForSequenceClassification, deberta, "main")
    assert families.supports_sdpa(AutoModelForSequenceClassification, bert, "main")
    model = families.load_model(AutoModelForSequenceClassification, deberta, "main", attn_implementation="sdpa",
                                num_labels=2)
    assert model.config._attn_implementation == "eager"
