"""Extractive question answering (SQuAD v1.1): the answer is a span of the context. Contexts longer than max_length
are split into overlapping windows; each question's answer is the best span over all of its windows."""
from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lmtune import io
from lmtune.errors import DataError, LmtuneError
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import collator, split_values  # noqa: F401 - collator: the same padding collator
from lmtune.text import CleanResult, normalize_text, require_columns

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from lmtune.config import Params

SQUAD_KEYS = {"article": ("paragraphs",), "paragraph": ("context", "qas"), "question": ("id", "question", "answers"),
              "answer": ("text", "answer_start")}
NO_OFFSET = (-1, -1)  # offset_mapping entry of a token outside the context (question, special tokens)


# ---- clean -------------------------------------------------------------------------------------------------------

def _require(obj: Any, kind: str, where: str, path: Path) -> None:
    """Raise DataError naming every SQuAD key that `obj` (an article, paragraph, question or answer) lacks."""
    missing = [k for k in SQUAD_KEYS[kind] if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise DataError(f"{path}: {where}: missing key(s) {missing}; a SQuAD v1.1 {kind} needs "
                        f"{list(SQUAD_KEYS[kind])} (see https://rajpurkar.github.io/SQuAD-explorer/)")


def require_text(value: Any, path: Path, where: str, field: str) -> None:
    """A question or context must be a string (or null, read as empty): never trained on as its Python repr."""
    if value is not None and not isinstance(value, str):
        raise DataError(f"{path}: {where}: {field!r} is {json.dumps(value)[:80]} ({type(value).__name__}), not a "
                        f"string; write it as a JSON string (quote it)")


def read_squad_json(path: Path, encoding: str) -> pd.DataFrame:
    """One row per question of a SQuAD v1.1 JSON file: id, question, context, answer_texts, answer_starts, row
    (1-based question number in the file) and where (how messages name the question)."""
    try:
        doc = json.loads(path.read_text(encoding=encoding))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid SQuAD JSON ({err}); check the file or set clean.input_format") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: missing key(s) ['data']; SQuAD v1.1 JSON is {{\"data\": [articles]}}")
    rows = []
    for a, article in enumerate(doc["data"]):
        _require(article, "article", f"data[{a}]", path)
        for p, paragraph in enumerate(article["paragraphs"]):
            _require(paragraph, "paragraph", f"data[{a}].paragraphs[{p}]", path)
            for q, question in enumerate(paragraph["qas"]):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]" + \
                    (f" (question id {question['id']!r})" if isinstance(question, dict) and "id" in question else "")
                _require(question, "question", where, path)
                require_text(question["question"], path, where, "question")
                require_text(paragraph["context"], path, f"data[{a}].paragraphs[{p}]", "context")
                for k, answer in enumerate(question["answers"]):
                    _require(answer, "answer", f"{where}.answers[{k}]", path)
                rows.append({"id": str(question["id"]), "question": str(question["question"] or ""),
                             "context": paragraph["context"], "answer_texts": [a["text"] for a in question["answers"]],
                             "answer_starts": [a["answer_start"] for a in question["answers"]],
                             "row": len(rows) + 1, "where": f"question id {str(question['id'])!r}"})
    if not rows:
        raise DataError(f"{path}: no questions found; SQuAD JSON needs data[].paragraphs[].qas[]")
    return pd.DataFrame(rows)


def read_qa_jsonl(path: Path, params: Params) -> pd.DataFrame:
    """The same columns from JSONL: the qa section's question, context and answers columns ({"text": [...],
    "answer_start": [...]}), an optional `id` (default: the line number) and task.split_column."""
    qa, split_column = params.qa, params.task.split_column
    df = io.read_table(path, "jsonl", params.clean.encoding)
    columns = {"qa.question_column": qa.question_column, "qa.context_column": qa.context_column,
               "qa.answers_column": qa.answers_column} | ({"task.split_column": split_column} if split_column else {})
    require_columns(df, path, columns)
    lines = np.arange(1, len(df) + 1)
    answers = df[qa.answers_column].tolist()
    for line, value in zip(lines, answers):
        if not (isinstance(value, dict) and isinstance(value.get("text"), list) and
                isinstance(value.get("answer_start"), list) and len(value["text"]) == len(value["answer_start"])):
            raise DataError(f"{path}: line {line}: {qa.answers_column!r} must be {{\"text\": [...], \"answer_start\": "
                            f"[...]}} with one start per text, got {value!r}; fix the line or set qa.answers_column")
    for column in (qa.question_column, qa.context_column):
        for line, value in zip(lines, df[column]):
            require_text(None if value is None or value != value else value, path, f"line {line}", column)  # NaN: null
    ids = df["id"].astype(str).tolist() if "id" in df.columns else [str(n) for n in lines]
    frame = pd.DataFrame({
        "id": ids, "question": df[qa.question_column].fillna("").astype(str),
        "context": df[qa.context_column].fillna("").astype(str),
        "answer_texts": [v["text"] for v in answers], "answer_starts": [v["answer_start"] for v in answers],
        "row": lines, "where": [f"line {n}" for n in lines]})
    if split_column:
        frame["split"] = split_values(df[split_column], frame["row"], path, split_column)
    return frame


def is_squad_json(path: Path, input_format: str) -> bool:
    """`squad`, or `auto` with a .json file whose top level is an object (SQuAD's {"data": ...}), not JSON lines."""
    if input_format != "auto" or path.suffix.lower() != ".json" or not path.is_file():
        return input_format == "squad"
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{") and re.match(rb'\{\s*"(data|version)"', head) is not None


def check_answer_offsets(frame: pd.DataFrame, path: Path) -> None:
    """Every answer must be the context's text at answer_start: the model is trained on those character offsets."""
    for r in frame.itertuples():
        for text, start in zip(r.answer_texts, r.answer_starts):
            ok_start = isinstance(start, int) and not isinstance(start, bool) and start >= 0
            if ok_start and r.context[start:start + len(text)] == text:
                continue
            found = r.context[start:start + len(text)] if ok_start else None
            pos = r.context.find(text)
            fix = f"the text first occurs at offset {pos}" if pos >= 0 else "the text does not occur in the context"
            raise DataError(f"{path}: {r.where}: answer {text!r} does not match the context at answer_start "
                            f"{start!r} (the context has {found!r} there; {fix}); fix answer_start or the answer "
                            f"text (offsets count characters of the unmodified context)")


def clean(path: Path, params: Params) -> CleanResult:
    """Read SQuAD JSON or JSONL, check every answer against its context, and drop unusable questions (with reasons).

    Contexts are kept byte for byte (answer offsets point into them); questions are normalised like other texts.
    `example_id` numbers the distinct contexts, so all questions on one paragraph land in one split.
    """
    if is_squad_json(path, params.clean.input_format):
        if not path.is_file():
            io.read_table(path, "jsonl")  # raises the project's "input file not found" message
        frame = read_squad_json(path, params.clean.encoding)
    else:
        frame = read_qa_jsonl(path, params)
    check_answer_offsets(frame, path)
    frame["question"] = frame["question"].map(lambda t: normalize_text(t, params.clean.lowercase))
    reason = pd.Series("", index=frame.index)
    reason[frame.duplicated(subset=["question", "context"])] = "duplicate"
    reason[frame["id"].duplicated()] = "duplicate_id"
    reason[frame["answer_texts"].map(len) == 0] = "no_answer"
    reason[frame["question"] == ""] = "empty_question"
    reason[frame["context"].str.strip() == ""] = "empty_context"
    rejected = frame[reason != ""].assign(reason=reason[reason != ""], label=lambda d: d["answer_texts"].map(
        lambda a: a[0] if len(a) else ""), text=lambda d: d["question"])[["row", "reason", "label", "text", "id"]]
    kept = frame[reason == ""].drop(columns=["where"]).reset_index(drop=True)
    if kept.empty:
        raise DataError(f"{path}: no usable questions left after cleaning ({len(rejected)} rejected; see the "
                        f"rejected-rows file for reasons)")
    group = kept["split"] + "\n" + kept["context"] if "split" in kept else kept["context"]  # never across splits
    kept["example_id"] = pd.factorize(group)[0]
    return CleanResult(kept=kept, rejected=rejected.reset_index(drop=True), labels=[],
                       summary={"questions": len(kept), "contexts": int(kept["example_id"].nunique())})


# ---- tokenize: overlapping windows -------------------------------------------------------------------------------

def encode_windows(tokenizer: PreTrainedTokenizerBase, questions: list[str], contexts: list[str], max_length: int,
                   stride: int) -> tuple[dict[str, list[Any]], int]:
    """Tokenize (question, context) pairs into windows of at most max_length tokens, neighbours sharing `stride`
    context tokens. Returns the model inputs per window plus `sample` (index of its pair) and `offset_mapping`
    (character span in the context per token, NO_OFFSET outside it), and the number of questions cut short.

    A question is cut to max_length // 2 tokens minus the special ones, so every window keeps more than `stride`
    context tokens (config checks stride < max_length // 2) and the tokenizer never fails on a long question.
    """
    limit = max_length // 2 - tokenizer.num_special_tokens_to_add(pair=True)
    spans = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut = [q[:s[limit - 1][1]] if len(s) > limit else q for q, s in zip(questions, spans)]
    enc = tokenizer(cut, contexts, truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    windows = {k: enc[k] for k in tokenizer.model_input_names if k in enc}  # BERT keeps token_type_ids
    windows["sample"] = enc["overflow_to_sample_mapping"]
    windows["offset_mapping"] = [[o if s == 1 else NO_OFFSET for o, s in zip(offsets, enc.sequence_ids(i))]
                                 for i, offsets in enumerate(enc["offset_mapping"])]
    return windows, sum(len(s) > limit for s in spans)


def answer_tokens(offsets: list[tuple[int, int]], start_char: int, end_char: int) -> tuple[int, int]:
    """Token positions of the first and last answer token in one window, or (0, 0) (the [CLS] token) when the
    answer is not wholly inside the window's context."""
    context = [i for i, o in enumerate(offsets) if o[0] >= 0]
    if offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > start_char)  # the token holding the answer's first char
    end = next(i for i in reversed(context) if offsets[i][0] < end_char)  # ... and its last char
    return start, end


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, Any]]:
    """One row per window, with start/end_positions of the first gold answer, and what decoding needs: the
    question id, the context, the offsets and all gold answers."""
    carried = [c for c in ("id", "question", "context", "answer_texts", "example_id", "row", "split")
               if c in ds.column_names]
    max_length, stride = params.tokenize.max_length, params.qa.stride

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out, cut = encode_windows(tokenizer, batch["question"], batch["context"], max_length, stride)
        samples = out.pop("sample")
        positions = [answer_tokens(offsets, batch["answer_starts"][i][0],
                                   batch["answer_starts"][i][0] + len(batch["answer_texts"][i][0]))
                     for offsets, i in zip(out["offset_mapping"], samples)]
        out |= {c: [batch[c][i] for i in samples] for c in carried}
        return out | {"start_positions": [p[0] for p in positions], "end_positions": [p[1] for p in positions],
                      "text": [f"{batch['question'][i]} {batch['context'][i]}" for i in samples],
                      "length": [len(ids) for ids in out["input_ids"]],
                      "questions_cut": [cut] + [0] * (len(samples) - 1)}  # the batch's count, on its first row

    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, remove_columns=ds.column_names,
                 desc="tokenize").rename_column("id", "question_id")
    found = pd.DataFrame({"q": out["question_id"], "in": np.asarray(out["start_positions"]) > 0})
    per_question = found.groupby("q", sort=False)["in"].agg(["size", "any"])
    stats = {"questions": len(per_question), "windows": len(out),
             "windows_per_question_mean": round(float(per_question["size"].mean()), 3),
             "windows_per_question_max": int(per_question["size"].max()),
             "answers_cut_off": int((~per_question["any"]).sum()),  # the answer is in no window: nothing to learn
             "questions_cut_short": int(sum(out["questions_cut"]))}
    return out.remove_columns("questions_cut"), stats


# ---- model, validation metrics ------------------------------------------------------------------------------------

def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    from transformers import AutoModelForQuestionAnswering

    from lmtune import families, models

    return families.load_model(AutoModelForQuestionAnswering, models.resolve(name_or_path), revision,
                               attn_implementation=attn_implementation)


def squad_normalize(text: str) -> str:
    """The official SQuAD v1.1 normalize_answer: lowercase, drop punctuation, articles and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_f1(prediction: str, gold: str) -> float:
    """Official SQuAD v1.1 token F1 between two answers (bag of normalised tokens)."""
    pred, truth = squad_normalize(prediction).split(), squad_normalize(gold).split()
    same = sum((Counter(pred) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, golds: list[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the best over its gold answers, as the official script does."""
    return (max(float(squad_normalize(prediction) == squad_normalize(g)) for g in golds),
            max(squad_f1(prediction, g) for g in golds))


def squad_metrics(predictions: list[str], golds: list[list[str]]) -> dict[str, float]:
    """exact_match and f1 averaged over questions, x100 (the official SQuAD v1.1 evaluation)."""
    scores = np.array([squad_scores(p, g) for p, g in zip(predictions, golds)]).reshape(-1, 2)
    return {"exact_match": 100 * float(scores[:, 0].mean()), "f1": 100 * float(scores[:, 1].mean())}


# ---- decoding: best span per question over all of its windows ----------------------------------------------------

def best_span(start: np.ndarray, end: np.ndarray, offsets: np.ndarray, n_best: int,
              max_answer_length: int) -> tuple[float, int, int] | None:
    """(start + end logit, start token, end token) of the best span in one window: among the n_best start and end
    tokens inside the context, end >= start and at most max_answer_length tokens. start, end: (tokens,)."""
    context = np.flatnonzero(offsets[:, 0] >= 0)
    starts = context[np.argsort(-start[context], kind="stable")[:n_best]]
    ends = context[np.argsort(-end[context], kind="stable")[:n_best]]
    span = ends[None, :] - starts[:, None]  # (n_best, n_best) tokens from start to end
    score = np.where((span >= 0) & (span < max_answer_length), start[starts][:, None] + end[ends][None, :], -np.inf)
    if not np.isfinite(score).any():
        return None
    i, j = np.unravel_index(np.argmax(score), score.shape)
    return float(score[i, j]), int(starts[i]), int(ends[j])


def decode(start_logits: list[np.ndarray], end_logits: list[np.ndarray], windows: Any,
           n_best: int, max_answer_length: int) -> dict[str, dict[str, Any]]:
    """question id -> {answer, score (start + end logit), start (character offset)}: the best span over all of the
    question's windows; an empty answer with score and start None when no window has a valid span."""
    best: dict[str, dict[str, Any]] = {}
    for qid, context, offsets, start, end in zip(windows["question_id"], windows["context"],
                                                 windows["offset_mapping"], start_logits, end_logits):
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)  # (tokens, 2) character spans
        found = best_span(start[:len(offsets)], end[:len(offsets)], offsets, n_best, max_answer_length)
        best.setdefault(qid, {"answer": "", "score": None, "start": None})
        if found and (best[qid]["score"] is None or found[0] > best[qid]["score"]):
            first, last = offsets[found[1], 0], offsets[found[2], 1]
            best[qid] = {"answer": context[first:last], "score": round(found[0], 6), "start": int(first)}
    return best


class SpanLogits:
    """A QA model as inference.batched_logits expects one: `logits` (batch, width, 2) = per-token start and end
    logits, padded to a fixed width so batches of different lengths concatenate. A plain wrapper (eval, device,
    call), not a torch Module, so that importing this module does not import torch."""

    def __init__(self, model: torch.nn.Module, width: int) -> None:
        self.qa, self.width, self.config = model, width, model.config

    @property
    def device(self) -> torch.device:
        return self.qa.device

    def eval(self) -> SpanLogits:
        self.qa.eval()
        return self

    def __call__(self, **batch: torch.Tensor) -> SimpleNamespace:
        import torch

        out = self.qa(**batch)
        logits = torch.stack([out.start_logits, out.end_logits], dim=-1)  # (batch, tokens, 2)
        return SimpleNamespace(logits=torch.nn.functional.pad(logits, (0, 0, 0, self.width - logits.shape[1])))


def answer(model: Any, tokenizer: Any, windows: Any, qa: Any, batch_size: int,
           progress: bool = False) -> dict[str, dict[str, Any]]:
    """Run the model over the windows (a Dataset or dict of columns) and decode each question's answer."""
    from lmtune.inference import batched_logits

    names = [k for k in tokenizer.model_input_names if k in windows]
    features = [dict(zip(names, values)) for values in zip(*(windows[k] for k in names))]
    width = max((len(f["input_ids"]) for f in features), default=1)
    logits = batched_logits(SpanLogits(model, width), tokenizer, features, batch_size, progress=progress)
    return decode(list(logits[..., 0]), list(logits[..., 1]), windows, qa.n_best, qa.max_answer_length)


def first_per_question(windows: Any, column: str) -> list[Any]:
    """`column` of each question's first window, in order of first appearance."""
    seen: dict[str, Any] = {}
    for qid, value in zip(windows["question_id"], windows[column]):
        seen.setdefault(qid, value)
    return list(seen.values())


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    """Validation exact_match and F1: the Trainer's (start, end) logits, (windows, padded tokens) each, in
    eval_dataset order, decoded per question."""
    columns = eval_dataset.select_columns(["question_id", "context", "offset_mapping", "answer_texts"])[:]
    ids, golds = first_per_question(columns, "question_id"), first_per_question(columns, "answer_texts")

    def fn(pred: Any) -> dict[str, float]:
        start, end = pred.predictions[:2]
        best = decode(list(start), list(end), columns, params.qa.n_best, params.qa.max_answer_length)
        return squad_metrics([best[q]["answer"] for q in ids], golds)

    return fn


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    test = test[:]  # dict of columns
    best = answer(model, tokenizer, test, params.qa, params.evaluate.batch_size, progress=True)
    ids = first_per_question(test, "question_id")
    questions, golds = first_per_question(test, "question"), first_per_question(test, "answer_texts")
    predictions = []
    for qid, question, gold in zip(ids, questions, golds):
        exact, f1 = squad_scores(best[qid]["answer"], gold)
        predictions.append({"id": qid, "question": question, "predicted": best[qid]["answer"], "answers": gold,
                            "score": best[qid]["score"], "exact_match": exact, "f1": round(f1, 6)})
    scores = squad_metrics([p["predicted"] for p in predictions], golds)
    return EvalResult(metrics={**scores, "questions": len(ids)}, predictions=predictions)


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    """{"answer", "score", "start"} per {"question", "context"} record, windowed and decoded as in evaluate."""
    qa = SimpleNamespace(**info["params"]["qa"])
    questions = [normalize_text(str(r["question"]), info["lowercase"]) for r in records]
    contexts = [str(r["context"]) for r in records]
    if not all(questions) or not all(c.strip() for c in contexts):
        empty = next(i for i, (q, c) in enumerate(zip(questions, contexts), start=1) if not q or not c.strip())
        raise LmtuneError(f"input record {empty}: empty question or context; give both as non-empty strings")
    windows, _ = encode_windows(tokenizer, questions, contexts, info["max_length"], qa.stride)
    windows |= {"question_id": [str(i) for i in windows["sample"]], "context": [contexts[i] for i in windows["sample"]]}
    best = answer(model, tokenizer, windows, qa, batch_size)
    return [best[str(i)] for i in range(len(records))]
