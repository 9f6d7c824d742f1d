"""Instruction and chat SFT (task.name: sft): reading Alpaca, chat and ShareGPT records with reasons for bad ones,
the answer-only loss mask token by token, the saved chat template, packing that keeps examples apart, every stage
with tiny Qwen2-, Llama- and GPT-2-style models, `lmtune predict`, and the refusal of an encoder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from lmtune import causal, models, tracking
from lmtune.config import load_params
from lmtune.errors import LmtuneError, ParamsError
from lmtune.inference import Predictor
from lmtune.tasks import TASKS, sft
from tests.conftest import FIXTURES, ROOT, run_module, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

ALPACA, CHAT, SHAREGPT = FIXTURES / "sft_alpaca.json", FIXTURES / "sft_chat.jsonl", FIXTURES / "sft_sharegpt.jsonl"


def sft_overrides(model: Path, **extra: object) -> dict[str, object]:
    return {**tiny_overrides(model), "task.name": "sft", "fine_tune.max_steps": 4, "fine_tune.eval_strategy": "steps",
            "fine_tune.eval_steps": 4, "sft.max_new_tokens": 6, "tokenize.max_length": 96, **extra}


def params_for(tmp_path: Path, model: Path, **extra: object):
    return load_params(write_params(tmp_path / "params.yaml", sft_overrides(model, **extra)))


def read(path: Path):
    return json.loads(path.read_text())


def test_alpaca_records_become_conversations_and_bad_ones_are_rejected_with_reasons(tmp_path, tiny_family):
    result = sft.clean(ALPACA, params_for(tmp_path, tiny_family("qwen2")))
    assert result.rows_kept == 17
    assert result.rejected_by_reason == {"content_not_a_string": 1, "duplicate": 1, "empty_assistant_message": 1,
                                         "no_instruction": 1}
    repeat = json.loads(result.kept["messages"][0])
    assert repeat == [{"role": "user", "content": "Repeat the colour.\n\nred"}, {"role": "assistant", "content": "red"}]
    hello = json.loads(result.kept["messages"][16])
    assert [m["role"] for m in hello] == ["system", "user", "assistant", "user", "assistant"], "system and history"


def test_chat_and_sharegpt_records_are_read_and_bad_roles_or_order_are_rejected(tmp_path, tiny_family):
    params = params_for(tmp_path, tiny_family("qwen2"))
    chat = sft.clean(CHAT, params)
    assert chat.rows_kept == 8 and chat.summary["multi_turn"] == 8
    assert chat.rejected_by_reason == {"no_assistant_turn": 1, "roles_out_of_order": 1, "unknown_role": 1}
    share = sft.clean(SHAREGPT, params)
    assert share.rows_kept == 8
    assert json.loads(share.kept["messages"][0])[1] == {"role": "assistant", "content": "red"}


def test_a_file_with_no_usable_record_stops_naming_the_first_reason(tmp_path, tiny_family):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(Exception, match=r"no usable records.*record 1: no_assistant_turn"):
        sft.clean(bad, params_for(tmp_path, tiny_family("qwen2")))


def test_the_loss_mask_covers_exactly_the_assistant_turns_of_a_multi_turn_chat(tiny_family):
    """Token by token against a hand-built ChatML rendering: labels are the assistant contents and their
    <|im_end|> markers; system, user and the assistant headers are -100."""
    tok = AutoTokenizer.from_pretrained(tiny_family("qwen2"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "red"}, {"role": "user", "content": "An animal?"},
                {"role": "assistant", "content": "the cat"}]
    ids, labels = sft.encode_conversation(tok, messages, train_on_prompt=False)
    pieces = [("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n"
               "<|im_start|>assistant\n", False), ("red<|im_end|>\n", True),
              ("<|im_start|>user\nAn animal?<|im_end|>\n<|im_start|>assistant\n", False), ("the cat<|im_end|>\n", True)]
    expected_ids, expected_labels = [], []
    for text, trained in pieces:
        piece = tok(text, add_special_tokens=False)["input_ids"]
        expected_ids += piece
        expected_labels += piece if trained else [causal.IGNORE] * len(piece)
    assert "".join(t for t, _ in pieces) == sft.render(tok, messages, generation_prompt=False), "the template"
    assert ids == expected_ids
    assert labels == expected_labels
    _, everything = sft.encode_conversation(tok, messages, train_on_prompt=True)
    assert everything == ids, "train_on_prompt trains every token"


def test_a_base_model_without_a_template_gets_the_fallback_ending_answers_with_eos(tiny_family):
    tok = models.load_tokenizer(str(tiny_family("gpt2")), "main", TASKS["sft"])
    assert not tok.chat_template
    assert sft.use_template(tok, "alpaca") == "alpaca"
    ids, labels = sft.encode_conversation(tok, [{"role": "user", "content": "Say hi."},
                                                {"role": "assistant", "content": "hi"}], False)
    answer = [t for t in labels if t != causal.IGNORE]
    assert answer[-1] == tok.eos_token_id and tok.decode(answer[:-1]) == "hi", tok.decode(answer)


def test_packing_keeps_attention_and_loss_inside_each_conversation(tmp_path, tiny_family):
    """The summed answer-token loss of one packed row equals the sum over the same conversations run one by one."""
    path = tiny_family("llama")
    params = params_for(tmp_path, path, **{"sft.packing": True})
    tok = models.load_tokenizer(str(path), "main", TASKS["sft"], params)
    torch.manual_seed(0)
    model = sft.load_model(str(path), [], "main").eval()
    rows = [dict(zip(("input_ids", "labels"), sft.encode_conversation(tok, json.loads(m), False)))
            for m in sft.clean(CHAT, params).kept["messages"][:3]]

    def summed(batch: dict) -> float:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        return float(torch.nn.functional.cross_entropy(logits.detach().reshape(-1, logits.shape[-1]),
                                                       batch["labels"][:, 1:].reshape(-1),
                                                       ignore_index=causal.IGNORE, reduction="sum"))

    packed = sft.collator(tok, model, params, 96)(rows)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed, "one row, no padding"
    alone = sum(summed({k: torch.tensor([v]) for k, v in row.items()}) for row in rows)
    assert summed(packed) == pytest.approx(alone, rel=1e-4)


def test_an_encoder_is_refused_for_sft_before_any_work(tmp_path, tiny_model):
    raw = {**sft_overrides(tiny_model), "model.name_or_path": "packaged:all-MiniLM-L6-v2"}
    with pytest.raises(ParamsError, match="task sft fine-tunes a decoder-only causal LM"):
        load_params(write_params(tmp_path / "params.yaml", raw))
    with pytest.raises(ParamsError, match=r"bert \(encoder\) is not a decoder-only causal LM"):
        models.load_tokenizer(str(tiny_model), "main", TASKS["sft"])


def test_qlora_is_refused_clearly_without_a_gpu(tmp_path, tiny_family):
    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    with pytest.raises(LmtuneError, match="4bit \\(QLoRA\\) needs a CUDA GPU"):
        sft.load_model(str(tiny_family("qwen2")), [], "main", quantization="4bit")


@pytest.fixture(scope="module")
def qwen_run(tmp_path_factory, tiny_family) -> Path:
    root = tmp_path_factory.mktemp("sft-qwen2")
    params = write_params(root / "params.yaml", sft_overrides(tiny_family("qwen2"), **{"tracking.log_model": True,
                                                                                      "fine_tune.lora_rank": 4,
                                                                                      "fine_tune.lora_target_modules":
                                                                                      "all-linear"}))
    return run_all(root, params, CHAT)


def test_every_stage_runs_for_a_chat_model_with_lora_and_reports_generation_metrics(qwen_run):
    metrics = read(qwen_run / "reports/metrics.json")
    for name in ("rougeL", "bleu", "chrf", "exact_match", "loss", "perplexity"):
        assert name in metrics, name
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["loss"], rel=1e-4)
    test_metrics = {name for name in read(qwen_run / "reports/summary.json") if not name.startswith(("train_", "val_"))}
    assert test_metrics == set(tracking.HEADLINE_METRICS["sft"]), "the DVC metrics carry sft's headline"
    assert read(qwen_run / "reports/tokenize.json")["template"] == "own"
    rows = [json.loads(line) for line in (qwen_run / "reports/eval/predictions.jsonl").read_text().splitlines()]
    assert {"prompt", "reference", "generated"} <= set(rows[0])
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n")
    train = read(qwen_run / "reports/train.json")
    assert train["trainable_params"] < train["frozen_params"], "LoRA adapters only"


def test_predict_formats_prompts_byte_for_byte_as_evaluate_did(qwen_run):
    """The tokenizer saved with the model (what predict and serving load) renders the first test conversation's
    prompt exactly as the evaluate stage wrote it."""
    from datasets import load_from_disk

    predictor = Predictor(qwen_run / "model")
    evaluated = json.loads((qwen_run / "reports/eval/predictions.jsonl").read_text().splitlines()[0])
    conversation = json.loads(load_from_disk(str(qwen_run / "splits"))["test"]["messages"][0])
    prompt, reference = sft.prompt_and_reference(conversation)
    assert reference == evaluated["reference"]
    assert sft.render(predictor.tokenizer, prompt, generation_prompt=True) == evaluated["prompt"]
    rows = predictor.predict([{"messages": [{"role": "user", "content": "Name a colour like red."}]},
                              {"instruction": "Name a colour like red."}, {"text": "Name a colour like red."}])
    assert len({r["generated"] for r in rows}) == 1, "the three request forms are one conversation"
    with pytest.raises(LmtuneError, match="input record 1: missing field"):
        predictor.predict([{"question": "?"}])


@pytest.mark.parametrize("family, data", [("llama", ALPACA), ("gpt2", SHAREGPT)])
def test_every_stage_runs_for_a_llama_style_chat_model_and_a_gpt2_base_model(tmp_path, tiny_family, family, data):
    root = run_all(tmp_path, write_params(tmp_path / "params.yaml", sft_overrides(tiny_family(family),
                                                                                  **{"sft.packing": True})), data)
    assert read(root / "reports/tokenize.json")["template"] == ("own" if family == "llama" else "alpaca")
    saved = AutoTokenizer.from_pretrained(root / "model")
    assert saved.chat_template, "the template used is saved with the model"
    out = run_module("lmtune.cli", "predict", "--model", str(root / "model"), "--input", str(FIXTURES / "sentiment.csv"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert all("generated" in json.loads(line) for line in out.stdout.splitlines())
