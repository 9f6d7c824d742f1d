"""Batched inference in fp32 with per-batch padding, shared by the evaluate stage, `lmtune predict` and MLflow."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from lmtune.io import INFO_FILE, read_json
from lmtune.text import normalize_text


@torch.inference_mode()
def batched_logits(model: torch.nn.Module, tokenizer: Any, features: list[dict[str, list[int]]],
                   batch_size: int, progress: bool = False) -> np.ndarray:
    """Logits for `features` (dicts of input_ids/attention_mask), in input order.

    Features are sorted by length so each batch pads only to its own longest sequence; fp32 throughout,
    since evaluation must not lose accuracy to reduced precision.
    """
    model.eval()
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    chunks = []
    for start in tqdm(range(0, len(order), batch_size), desc="predict", unit="batch", disable=not progress):
        batch = collate([features[i] for i in order[start:start + batch_size]])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        chunks.append(model(**batch).logits.float().cpu().numpy())
    logits = np.concatenate(chunks) if chunks else np.zeros((0, model.config.num_labels), dtype=np.float32)
    out = np.empty_like(logits)
    out[order] = logits
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class Predictor:
    """Labels raw texts with a fine-tuned model directory written by the fine-tune stage."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64):
        self.model_dir = Path(model_dir)
        self.info = read_json(self.model_dir / INFO_FILE)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval()
        self.batch_size = batch_size

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        clean = [normalize_text(t, self.info["lowercase"]) for t in texts]
        enc = self.tokenizer(clean, truncation=True, max_length=self.info["max_length"],
                             return_token_type_ids=False)
        features = [{"input_ids": ids, "attention_mask": mask}
                    for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]
        probs = softmax(batched_logits(self.model, self.tokenizer, features, self.batch_size))
        labels = self.info["labels"]
        return [{"text": text, "label": labels[int(p.argmax())], "score": round(float(p.max()), 6),
                 "scores": {name: round(float(s), 6) for name, s in zip(labels, p)}}
                for text, p in zip(texts, probs)]
