"""Batched inference in fp32 with per-batch padding, shared by the evaluate stage, `lmtune predict` and MLflow."""
from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorWithPadding

from lmtune import models
from lmtune.errors import LmtuneError
from lmtune.io import INFO_FILE, read_json

if TYPE_CHECKING:
    from lmtune.tasks import TaskSpec

PREDICT_FIX = "pass --model DIR, a directory written by the fine-tune stage (`dvc repro` writes models/model)"
LIST_FIELDS = {"tokens": "a list of words (strings)", "messages": "a list of {\"role\", \"content\"} objects"}
JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


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


def check_records(records: list[dict[str, Any]], fields: tuple[str, ...], spec: TaskSpec,
                  names: list[str] | None = None) -> None:
    """Raise LmtuneError naming the first record (by `names`, else "input record N", 1-based) that lacks one of
    `fields` (and every alternative of `spec`) or whose input field has the wrong type: text fields (text,
    text_pair, question, context, source, instruction) must be non-blank strings, tokens a list of strings,
    messages a list of {role, content} objects. Other keys are not read (lmtune predict copies them to the output)."""
    alternative = spec.alternative_input
    alternatives = (alternative,) if isinstance(alternative, str) else alternative or ()
    instead = f" (or {' or '.join(map(repr, alternatives))})" if alternatives else ""
    for i, record in enumerate(records):
        name = names[i] if names else f"input record {i + 1}"
        if not isinstance(record, dict):
            raise LmtuneError(f"{name}: expected a JSON object with {list(fields)}{instead}, got {kind(record)}")
        missing = [f for f in fields if f not in record]
        if missing and not any(a in record for a in alternatives):
            raise LmtuneError(f"{name}: missing field(s) {missing}{instead}; a {spec.name} model needs "
                              f"{list(fields)}{instead} in each JSON line (a plain-text line gives only text)")
        for field in (*fields, *alternatives):
            problem = field_problem(field, record[field]) if field in record else None
            if problem:
                raise LmtuneError(f"{name}: field {field!r} {problem}")


def field_problem(field: str, value: Any) -> str | None:
    """What is wrong with an input field's value, with the fix, or None when it can be used."""
    if field in LIST_FIELDS:
        ok = isinstance(value, list) and bool(value) and all(
            isinstance(v, str) if field == "tokens" else
            isinstance(v, dict) and isinstance(v.get("role"), str) and isinstance(v.get("content"), str)
            for v in value)
        return None if ok else f"must be a non-empty {LIST_FIELDS[field]}, got {kind(value)}"
    if value is None:
        return f"is null; give the text as a JSON string, e.g. {{\"{field}\": \"...\"}}, or leave the line out"
    if not isinstance(value, str):
        return (f"must be a string, got {kind(value)}; quote it, e.g. "
                f"{{\"{field}\": {json.dumps(json.dumps(value) if isinstance(value, (int, float)) else '...')}}}")
    if not value.strip():
        return "is empty; give a non-empty text, or leave the line out"
    return None


def kind(value: Any) -> str:
    """A JSON value's type in words, with the value when short: "a number (123)", "null"."""
    if value is None:
        return "null"
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return f"{JSON_TYPES.get(type(value), type(value).__name__)} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def read_requests(data: bytes, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`lmtune predict`'s input: one request per line, as (records, names): names say "SOURCE line N", N counting
    every line. A line whose first non-blank character is "{" is a JSON object; any other line is one plain text,
    {"text": line}. Blank lines are skipped. UTF-8 (a byte-order mark is dropped), or UTF-16/32 with a byte-order
    mark; LF, CRLF or CR line ends. Raises LmtuneError for input that is not text, not valid JSON, or has no
    request at all."""
    text = decode(data, source)
    records, names = [], []
    for number, line in enumerate(text.split("\n") if "\n" in text else text.split("\r"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        name = f"{source} line {number}"
        if line.lstrip().startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise LmtuneError(f"{name}: not valid JSON ({err.msg} at column {err.colno}); give one JSON object "
                                  f"or one plain text per line (a text that starts with {{ goes in as "
                                  f"{{\"text\": \"...\"}})") from None
        else:
            records.append({"text": line})
        names.append(name)
    if not records:
        raise LmtuneError(f"{source}: no input ({'empty' if not data else 'only blank lines'}); give one text or one "
                          f"JSON object per line")
    return records, names


def decode(data: bytes, source: str) -> str:
    """UTF-8 text, or UTF-16/UTF-32 when a byte-order mark says so; a UTF-8 byte-order mark is dropped."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise LmtuneError(f"{source} line {line}: not UTF-8 (byte 0x{data[err.start]:02x} at byte {err.start}); "
                          f"save the input as UTF-8, e.g. iconv -f latin1 -t utf-8 IN > OUT") from None
    if "\x00" in text:  # UTF-16 without a byte-order mark decodes as "UTF-8" with a NUL after every ASCII letter
        line = text[:text.index("\x00")].count("\n") + 1
        raise LmtuneError(f"{source} line {line}: contains NUL bytes (UTF-16 without a byte-order mark?); save the "
                          f"input as UTF-8")
    return text


def read_model_info(model_dir: Path, what: str) -> tuple[dict[str, Any], TaskSpec, tuple[str, ...]]:
    """A fine-tuned model directory's lmtune.json, its task and the fields a request needs, after checking the
    directory exists and holds weights and tokenizer files (one-line LmtuneError otherwise; nothing loaded yet)."""
    from lmtune.tasks import TASKS, input_fields

    if not model_dir.exists():  # always a local directory here, even when it reads like a Hub id (models)
        raise LmtuneError(f"{what}: {str(model_dir)!r}: no such directory ({model_dir.absolute()}); {PREDICT_FIX}")
    models.check_source(str(model_dir), what=what, fix=PREDICT_FIX)  # a directory: config.json, weights, tokenizer
    if not (model_dir / INFO_FILE).is_file():
        raise LmtuneError(f"{what}: {str(model_dir)!r} is not a model written by the fine-tune stage (no {INFO_FILE}); "
                          f"{PREDICT_FIX}")
    try:
        info = read_json(model_dir / INFO_FILE)
        spec = TASKS[info.get("task", "classification")]
        labels = info["labels"]
    except (ValueError, KeyError, AttributeError) as err:  # ValueError: not JSON; KeyError: an unknown task, no labels
        raise LmtuneError(f"{what}: {model_dir / INFO_FILE} is damaged ({type(err).__name__}: {err}); run the "
                          f"fine-tune stage again (`dvc repro`)") from None
    if not isinstance(labels, list):
        raise LmtuneError(f"{what}: {model_dir / INFO_FILE} is damaged (labels is not a list); run the fine-tune "
                          f"stage again (`dvc repro`)")
    # a model trained on sentence pairs (task.text_pair_column) needs text and text_pair in every request
    return info, spec, input_fields(spec, info.get("params", {}).get("task", {}).get("text_pair_column", ""))


class Predictor:
    """Predicts with a fine-tuned model directory written by the fine-tune stage, for any task: each input record
    (a dict with the task's input fields, e.g. text, or question and context) gets the task's prediction fields."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64, what: str = "model directory"):
        """`what` names the directory in error messages (lmtune predict: --model)."""
        self.model_dir = Path(model_dir)
        self.info, self.spec, self.input_fields = read_model_info(self.model_dir, what)
        self.model = self.spec.load_model(str(self.model_dir), self.info["labels"], "main").eval()
        try:  # with the model's config: read again from the directory, a mean-pooling config logs a type warning;
            # trust_remote_code=False: that config names its code (lmtune.modeling, registered on import), and without
            # it transformers asks on stdin whether to run the code, where stdin is the prediction input
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, config=self.model.config,
                                                           trust_remote_code=False)
        except (OSError, ValueError, TypeError) as err:
            raise LmtuneError(f"{what}: cannot load the tokenizer saved in {str(self.model_dir)!r} "
                              f"({models.first_line(err)}); {PREDICT_FIX}") from None
        models.require_vocabulary(self.tokenizer, str(self.model_dir), what, PREDICT_FIX)
        self.batch_size = batch_size

    def predict(self, records: list[dict[str, Any]], names: list[str] | None = None) -> list[dict[str, Any]]:
        """`names`: how error messages call each record (lmtune predict: "FILE line N"); default "input record N"."""
        check_records(records, self.input_fields, self.spec, names)
        rows = self.spec.predict(self.model, self.tokenizer, records, self.info, self.batch_size)
        return [{**record, **row} for record, row in zip(records, rows)]
