"""Batched inference in fp32 with per-batch padding, shared by the evaluate stage, `lmtune predict` and MLflow."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorWithPadding

from lmtune.errors import LmtuneError
from lmtune.io import INFO_FILE, read_json


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


def require_fields(records: list[dict[str, Any]], fields: tuple[str, ...], task: str,
                   alternative: str | tuple[str, ...] | None = None) -> None:
    """Raise LmtuneError naming the first record (1-based) that lacks one of `fields` (and every `alternative`)."""
    alternatives = (alternative,) if isinstance(alternative, str) else alternative or ()
    for i, record in enumerate(records, start=1):
        missing = [f for f in fields if f not in record]
        if missing and not any(a in record for a in alternatives):
            instead = f" (or {' or '.join(map(repr, alternatives))})" if alternatives else ""
            raise LmtuneError(f"input record {i}: missing field(s) {missing}{instead}; a {task} model needs "
                              f"{list(fields)}{instead} in each JSON line")


class Predictor:
    """Predicts with a fine-tuned model directory written by the fine-tune stage, for any task: each input record
    (a dict with the task's input fields, e.g. text, or question and context) gets the task's prediction fields."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64):
        from lmtune.tasks import TASKS, input_fields

        self.model_dir = Path(model_dir)
        self.info = read_json(self.model_dir / INFO_FILE)
        self.spec = TASKS[self.info.get("task", "classification")]
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = self.spec.load_model(str(self.model_dir), self.info["labels"], "main").eval()
        self.batch_size = batch_size
        # a model trained on sentence pairs (task.text_pair_column) needs text and text_pair in every request
        self.input_fields = input_fields(self.spec, self.info.get("params", {}).get("task", {}).get(
            "text_pair_column", ""))

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        require_fields(records, self.input_fields, self.spec.name, self.spec.alternative_input)
        rows = self.spec.predict(self.model, self.tokenizer, records, self.info, self.batch_size)
        return [{**record, **row} for record, row in zip(records, rows)]
