"""Prompt -> completion on a decoder-only causal LM (GPT-2, Llama, Qwen2, ...): encoding with the loss on the
completion only, and batched generation with left padding (also inside validation:
lmtune.training.CausalGenerationTrainer).

A training row is `prompt + completion + eos`: input_ids hold both, labels hold -100 on the prompt (no loss there)
and the completion's ids, so the model learns to continue a prompt with its completion and then stop. At generation
time only the prompt goes in, padded on the left so every row's last position is its own last prompt token, and only
the new tokens come back.
"""
from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

IGNORE = -100  # label id the loss skips
PROMPT_END = "\n"  # ends every prompt, so the completion starts on a fresh line (a base LM's natural boundary)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int) -> tuple[list[list[int]],
                                                                                                list[bool]]:
    """Token ids of each prompt (with PROMPT_END) and whether it was cut. A long prompt keeps its last tokens, the
    end the completion follows, and its leading bos token (Llama's <s>) when the tokenizer adds one."""
    ids, cut = [], []
    # uncut (cut below, keeping the end); verbose=False: no "longer than the maximum sequence length" advice
    for row in tokenizer([p + PROMPT_END for p in prompts], add_special_tokens=True, verbose=False)["input_ids"]:
        cut.append(len(row) > max_length)
        head = row[:1] if len(row) > max_length and tokenizer.bos_token_id is not None and \
            row[:1] == [tokenizer.bos_token_id] else []
        ids.append(head + row[len(row) - max_length + len(head):] if len(row) > max_length else row)
    return ids, cut


def encode(tokenizer: PreTrainedTokenizerBase, prompts: list[str], completions: list[str], max_prompt: int,
           max_completion: int) -> dict[str, list[Any]]:
    """input_ids = prompt + completion + eos, attention_mask, labels (-100 on the prompt), and what was cut."""
    eos = tokenizer.eos_token_id
    prompt, cut_prompt = prompt_ids(tokenizer, prompts, max_prompt)
    target = tokenizer(completions, add_special_tokens=False, verbose=False)["input_ids"]  # uncut: cut below
    cut_target = [len(t) + 1 > max_completion for t in target]
    target = [t[:max_completion - 1] + [eos] for t in target]  # eos teaches the model where to stop
    input_ids = [p + t for p, t in zip(prompt, target)]
    return {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids],
            "labels": [[IGNORE] * len(p) + t for p, t in zip(prompt, target)],
            "truncated_source": cut_prompt, "truncated_target": cut_target}


@torch.inference_mode()
def generate(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]], num_beams: int,
             max_new_tokens: int, sampling: dict[str, float] | None = None,
             stop: list[int] | None = None) -> list[list[int]]:
    """The new tokens generated after each prompt (up to and without the first stop token: eos, and the `stop` ids,
    e.g. a chat template's end-of-turn marker), for one batch of prompt id lists. Greedy (or beam search) unless
    `sampling` has a temperature > 0 (then top_p sampling at that temperature)."""
    stops = list(dict.fromkeys([tokenizer.eos_token_id, *(stop or [])]))
    batch = tokenizer.pad({"input_ids": prompts}, padding_side="left", return_tensors="pt").to(model.device)
    sample = bool(sampling and sampling["temperature"] > 0)
    options = {"do_sample": True, "temperature": sampling["temperature"], "top_p": sampling["top_p"]} if sample \
        else {"do_sample": False}
    out = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_new_tokens, use_cache=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=stops, **options)
    new = out[:, batch["input_ids"].shape[1]:].tolist()  # (batch, generated tokens)
    return [ids[:min((ids.index(s) for s in stops if s in ids), default=len(ids))] for ids in new]


def generate_all(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]], batch_size: int,
                 num_beams: int, max_new_tokens: int, progress: bool = False,
                 sampling: dict[str, float] | None = None, stop: list[int] | None = None) -> list[list[int]]:
    """`generate` over all prompts in batches of similar length, results in input order."""
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", disable=not progress):
        index = order[start:start + batch_size]
        batch = generate(model, tokenizer, [prompts[i] for i in index], num_beams, max_new_tokens, sampling, stop)
        for i, ids in zip(index, batch):
            out[i] = ids
    return out
