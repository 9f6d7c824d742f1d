"""Across tasks: every registered task's model is logged and registered in MLflow and serves its own input fields,
and a real encoder-decoder checkpoint (not only the bert2bert warm start) fine-tunes for seq2seq."""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from lmtune.tasks import TASKS
from tests.conftest import FIXTURES, write_params
from tests.stages.test_pipeline_stages import run_all
from tests.tasks.test_ner import ner_params
from tests.tasks.test_qa import SQUAD, qa_overrides
from tests.tasks.test_seq2seq import PAIRS_EN, translation_overrides


def registered(root: Path) -> str:
    version = json.loads((root / "reports/train.json").read_text())["registered_version"]
    return f"models:/{root.name}/{version}"


def test_every_task_in_the_registry_has_its_functions_and_a_default_metric():
    for name, spec in TASKS.items():
        assert spec.name == name and spec.default_metric and spec.input_fields
        for fn in ("clean", "tokenize", "load_model", "collator", "compute_metrics", "evaluate", "predict"):
            assert callable(getattr(spec, fn)), f"{name}.{fn}"


def test_a_registered_qa_model_answers_a_dataframe_of_questions_and_contexts(tmp_path, tiny_model):
    root = tmp_path / "tiny-qa-served"
    root.mkdir()
    params = write_params(root / "params.yaml", qa_overrides(
        tiny_model, **{"tracking.log_model": True, "tracking.registered_model": "{task}-" + root.name}))
    run_all(root, params, data=SQUAD)
    version = json.loads((root / "reports/train.json").read_text())["registered_version"]
    model = mlflow.pyfunc.load_model(f"models:/qa-{root.name}/{version}")
    context = "The bridge was opened by the mayor in 1932 after four years of work."
    out = model.predict(pd.DataFrame({"question": ["Who opened the bridge?"], "context": [context]}))
    assert list(out.columns) == ["answer", "score", "start"] and len(out) == 1
    answer, start = out["answer"][0], int(out["start"][0])
    assert context[start:start + len(answer)] == answer, "the answer is a span of the context"


def test_a_registered_ner_model_tags_a_dataframe_of_texts(tmp_path, tiny_model):
    root = tmp_path / "tiny-ner-served"
    root.mkdir()
    params = ner_params(root / "params.yaml", tiny_model, **{"tracking.log_model": True,
                                                                "tracking.registered_model": root.name})
    run_all(root, params, data=FIXTURES / "ner_en.conll")
    out = mlflow.pyfunc.load_model(registered(root)).predict(pd.DataFrame({"text": ["Alice visited Paris",
                                                                                "Tom met Anna"]}))
    assert {"tokens", "tags", "entities"} <= set(out.columns) and len(out) == 2
    assert [len(t) for t in out["tags"]] == [3, 3], "one tag per whitespace-separated word"


def test_an_encoder_decoder_checkpoint_fine_tunes_as_is_for_translation(tmp_path, tiny_model):
    """A Hub seq2seq model (BART here, tiny and random, with the tiny BERT vocab) loads with AutoModelForSeq2SeqLM
    instead of the bert2bert warm start, trains, and generates."""
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    bart = tmp_path / "tiny-bart"
    config = BartConfig(vocab_size=tokenizer.vocab_size, d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
                        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        decoder_start_token_id=tokenizer.sep_token_id, forced_eos_token_id=tokenizer.sep_token_id)
    BartForConditionalGeneration(config).save_pretrained(bart)
    tokenizer.save_pretrained(bart)
    root = tmp_path / "run"
    root.mkdir()
    run_all(root, write_params(root / "params.yaml", translation_overrides(bart)), PAIRS_EN)
    assert json.loads((root / "model/config.json").read_text())["model_type"] == "bart"
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert 0 <= metrics["bleu"] <= 100 and 0 < metrics["gen_len"] <= 8


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_name_validates_with_the_shipped_params(task):
    import dataclasses

    from lmtune.config import load_params, params_from_dict
    from tests.conftest import ROOT

    raw = dataclasses.asdict(load_params(ROOT / "params.yaml"))
    raw["task"]["name"] = task
    if TASKS[task].head == "causal-lm":  # the shipped model is an encoder: sft refuses it (tests/tasks/test_sft.py)
        raw["model"]["name_or_path"] = "Qwen/Qwen2.5-0.5B-Instruct"
    assert params_from_dict(raw).task.name == task
