"""Prompt -> completion on a decoder-only LM (lmtune.causal): the loss mask, truncation, left-padded generation that
returns only the new tokens, and a tiny GPT-2 that learns to complete its prompts."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmtune import causal, families, models
from lmtune.tasks import TASKS


def test_a_row_is_prompt_then_completion_then_eos_with_the_loss_on_the_completion_only(tiny_family):
    tok = AutoTokenizer.from_pretrained(tiny_family("gpt2"))
    rows = causal.encode(tok, ["summarize: the cat sat"], ["a cat"], max_prompt=64, max_completion=16)
    prompt = tok("summarize: the cat sat" + causal.PROMPT_END)["input_ids"]
    target = tok("a cat", add_special_tokens=False)["input_ids"]
    assert rows["input_ids"][0] == prompt + target + [tok.eos_token_id]
    assert rows["labels"][0] == [causal.IGNORE] * len(prompt) + target + [tok.eos_token_id]
    assert rows["truncated_source"] == [False] and rows["truncated_target"] == [False]


def test_a_long_prompt_keeps_its_end_and_its_bos_and_a_long_completion_keeps_its_eos(tiny_family):
    tok = AutoTokenizer.from_pretrained(tiny_family("llama"))  # adds <s> in front of every text
    long = " ".join(["the cat sat on the mat"] * 20)
    rows = causal.encode(tok, [long], [long], max_prompt=12, max_completion=5)
    ids, labels = rows["input_ids"][0], rows["labels"][0]
    prompt = ids[:labels.count(causal.IGNORE)]
    assert len(prompt) == 12 and prompt[0] == tok.bos_token_id
    assert prompt[-3:] == tok(long + causal.PROMPT_END)["input_ids"][-3:], "the end the completion follows is kept"
    assert len(ids) - len(prompt) == 5 and ids[-1] == tok.eos_token_id
    assert rows["truncated_source"] == [True] and rows["truncated_target"] == [True]


def test_a_tiny_gpt2_learns_to_complete_its_prompts_and_generation_returns_only_the_new_text(tiny_family):
    """Prompts of different lengths in one left-padded batch each get their own completion back, without the
    prompt and without eos: the mask trains what generation reads."""
    path = str(tiny_family("gpt2"))
    tok = models.load_tokenizer(path, "main", TASKS["summarization"])  # pad = eos, as the pipeline does
    torch.manual_seed(0)
    model = families.load_model(AutoModelForCausalLM, path, "main", tokenizer=tok)
    pairs = [("the cat sat on the mat", "cat"), ("a dog", "dog runs"), ("the film was very good indeed", "good")]
    rows = causal.encode(tok, [p for p, _ in pairs], [c for _, c in pairs], max_prompt=32, max_completion=8)
    batch = tok.pad({"input_ids": rows["input_ids"]}, return_tensors="pt")
    labels = torch.full_like(batch["input_ids"], causal.IGNORE)
    for i, row in enumerate(rows["labels"]):
        labels[i, :len(row)] = torch.tensor(row)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    prompts = [row[:labels_row.count(causal.IGNORE)] for row, labels_row in zip(rows["input_ids"], rows["labels"])]
    new = causal.generate_all(model, tok, prompts, batch_size=3, num_beams=1, max_new_tokens=6)
    assert [tok.decode(ids).strip() for ids in new] == [c for _, c in pairs], f"loss {loss.item():.3f}"
