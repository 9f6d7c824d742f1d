"""Proof that SFT learns, offline: a small decoder-only model from random init learns "reverse: a b c" -> "c b a"
through every stage and reaches >= 95% exact match on held-out prompts. Template, answer masking, training and
generation must all agree for that. Minutes on 2 CPU cores: run with -m slow."""
from __future__ import annotations

import itertools
import json
import random

import pytest

from tests.conftest import tiny_overrides, write_params
from tests.families import build_family
from tests.stages.test_pipeline_stages import run_all

EPOCHS, LEARNING_RATE = 50, 4e-3


@pytest.mark.slow
def test_a_random_init_chat_model_learns_to_reverse_letters_on_held_out_prompts(tmp_path):
    model = build_family("qwen2", tmp_path / "model", hidden_size=64, intermediate_size=256, num_attention_heads=4,
                         num_key_value_heads=4, head_dim=16)
    rows = [{"instruction": "reverse: " + " ".join(w), "output": " ".join(reversed(w)), "system": "x"}
            for w in itertools.product("abcdefgh", repeat=3)]
    random.Random(0).shuffle(rows)
    data = tmp_path / "reverse.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = write_params(tmp_path / "params.yaml", {
        **tiny_overrides(model), "task.name": "sft", "fine_tune.epochs": EPOCHS, "fine_tune.batch_size": 32,
        "fine_tune.learning_rate": LEARNING_RATE, "fine_tune.lr_scheduler": "cosine", "fine_tune.warmup_ratio": 0.05,
        "fine_tune.weight_decay": 0.0, "fine_tune.logging_steps": 50, "fine_tune.eval_strategy": "epoch",
        "sft.max_new_tokens": 8, "tokenize.max_length": 64, "split.val_fraction": 0.05, "split.test_fraction": 0.1})
    root = run_all(tmp_path, params, data)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["test_examples"] >= 50
    assert metrics["exact_match"] >= 95, metrics
