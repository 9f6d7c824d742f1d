"""Token classification (named entities): CoNLL or JSONL tokens with IOB1/IOB2/IOBES tags, one tag per sub-word
position by word_ids(), entity-level precision/recall/F1 from seqeval."""
from __future__ import annotations

import json

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lmtune import io
from lmtune.errors import DataError, LmtuneError
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import model_features, split_values
from lmtune.text import CleanResult, first_row_number, normalize_text, require_columns

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, PreTrainedTokenizerBase

    from lmtune.config import Params

TAG = re.compile(r"O|[BIMES]-\S+")  # IOB1, IOB2, IOBES and BMES tags (BMES's M- is read as IOBES's I-)
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")  # kana, hanzi, hangul
DOCSTART = "-DOCSTART-"
IGNORED = -100  # label of positions the loss and the metrics skip (special tokens, later sub-words)


def read_conll(path: Path, params: Params) -> pd.DataFrame:
    """Sentences of a CoNLL file as rows tokens, tags, row (line of the first token) and doc (document index:
    -DOCSTART- lines start documents; without them every sentence is its own document)."""
    if not path.is_file():
        raise DataError(f"{path}: input file not found; check data.path in params.yaml "
                        f"(`dvc exp run -S data.path=...`) or add the file")
    data, column = path.read_bytes(), params.ner.conll_tag_column
    try:
        text = data.decode(params.clean.encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}: line {line} is not valid {params.clean.encoding}; set clean.encoding to the "
                        f"file's encoding or re-save it as UTF-8") from None
    sentences: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    docs = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            current = None  # a blank line ends a sentence; -DOCSTART- also starts a document
            docs += bool(fields)
            continue
        if len(fields) < 2 or not -len(fields) < column < len(fields) or column % len(fields) == 0:
            raise DataError(f"{path}: line {number}: expected a token and a tag in column {column} "
                            f"(ner.conll_tag_column), got {line.strip()!r}; add the missing tag, put a blank line "
                            f"between sentences, or set ner.conll_tag_column")
        if current is None:
            current = {"tokens": [], "tags": [], "row": number, "doc": docs, "lines": []}
            sentences.append(current)
        current["tokens"].append(fields[0])
        current["tags"].append(fields[column])
        current["lines"].append(number)
    frame = pd.DataFrame(sentences, columns=["tokens", "tags", "row", "doc", "lines"])
    if not docs:  # no document markers: sentences are independent examples
        frame["doc"] = np.arange(len(frame))
    return frame


def read_jsonl(path: Path, params: Params) -> pd.DataFrame:
    """Rows of a JSONL file with a tokens list (task.text_column) and a tags list (task.label_column)."""
    t = params.task
    df = io.read_table(path, params.clean.input_format, params.clean.encoding)
    columns = {"task.text_column": t.text_column, "task.label_column": t.label_column}
    require_columns(df, path, columns | ({"task.split_column": t.split_column} if t.split_column else {}))
    rows = first_row_number(path, params.clean.input_format) + np.arange(len(df))
    for row, tokens, tags in zip(rows, df[t.text_column], df[t.label_column]):
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise DataError(f"{path}: row {row}: {t.text_column!r} and {t.label_column!r} must be JSON lists "
                            f"(tokens and their tags); got {type(tokens).__name__} and {type(tags).__name__}")
        if len(tokens) != len(tags):
            raise DataError(f"{path}: row {row}: {len(tokens)} tokens but {len(tags)} tags; give exactly one tag "
                            f"per token")
        for what, column, values in (("token", t.text_column, tokens), ("tag", t.label_column, tags)):
            bad = next((i for i, value in enumerate(values) if not isinstance(value, str)), None)
            if bad is not None:  # never trained on as its Python repr (issue #16 item 7)
                raise DataError(f"{path}: row {row}: {column!r} item {bad} is {json.dumps(values[bad])[:80]} "
                                f"({type(values[bad]).__name__}), not a string; every {what} must be a JSON string "
                                f"(quote it)")
    frame = pd.DataFrame({"tokens": [[str(x) for x in v] for v in df[t.text_column]],
                          "tags": [[str(x) for x in v] for v in df[t.label_column]],
                          "row": rows, "doc": np.arange(len(df)), "lines": [[] for _ in rows]})
    if t.split_column:
        frame["split"] = split_values(df[t.split_column], frame["row"], path, t.split_column).to_numpy()
    return frame


def check_tags(frame: pd.DataFrame, path: Path, params: Params) -> None:
    """Every tag must be O or B-/I-/M-/E-/S-<type>; a wrong tag column usually shows up here first. A file uses
    M- (BMES) or I- for the middle of an entity, not both."""
    middle: dict[str, str] = {}  # "M" / "I" -> where it was first seen
    for tags, row, lines in zip(frame["tags"], frame["row"], frame["lines"]):
        for i, tag in enumerate(tags):
            where = f"line {lines[i]}" if lines else f"row {row}"
            if not TAG.fullmatch(tag):
                fix = "ner.conll_tag_column" if lines else "task.label_column"
                raise DataError(f"{path}: {where}: tag {tag!r} is not O or B-/I-/M-/E-/S-<type> (IOB1, IOB2, "
                                f"IOBES or BMES); fix the tag, or check that {fix} names the tag column")
            if tag[0] in "IM":
                middle.setdefault(tag[0], where)
    if len(middle) == 2:
        raise DataError(f"{path}: both I- tags ({middle['I']}) and M- tags ({middle['M']}) mark the middle of an "
                        f"entity; a file uses one scheme: IOBES (I-) or BMES (M-). Fix the tags to one of them")


def tag_scheme(sequences: list[list[str]]) -> str:
    """The tagging scheme of checked tag sequences: BMES (M- middles), IOBES (E- or S- tags), IOB2 (every entity
    starts with B-) or IOB1 (an entity may start with I-; B- only between two entities of one type)."""
    prefixes = {tag[0] for tags in sequences for tag in tags}
    if "M" in prefixes:
        return "BMES"
    if prefixes & {"E", "S"}:
        return "IOBES"
    for tags in sequences:
        for previous, tag in zip(["O", *tags], tags):
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                return "IOB1"
    return "IOB2"


def strict_scheme(labels: list[str]) -> bool:
    """Whether entities are scored in seqeval's strict IOBES mode: tags with E- or S- (IOBES, and BMES once read
    as IOBES). IOB1 and IOB2 are scored in seqeval's default mode, which reads both."""
    return any(tag[:2] in ("E-", "S-") for tag in labels)


def sorted_tags(tags: set[str]) -> list[str]:
    """O first, then by entity type and prefix (B, I, E, S), so a type's tags sit together in a confusion matrix."""
    return sorted(tags, key=lambda tag: ("" if tag == "O" else tag[2:], tag[0]))


def normalise_sentences(frame: pd.DataFrame, lowercase: bool) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Normalise tokens like texts (NFKC, whitespace), drop tokens that become empty with their tags, and reject
    sentences left without tokens; returns (kept, rejected, tokens dropped)."""
    tokens = frame["tokens"].map(lambda words: [normalize_text(w, lowercase) for w in words])
    out = frame.assign(tags=[[tag for w, tag in zip(words, tags) if w] for words, tags in zip(tokens, frame["tags"])],
                       tokens=tokens.map(lambda words: [w for w in words if w]))
    out["text"] = out["tokens"].map(" ".join)
    empty = out["tokens"].map(len) == 0
    rejected = pd.DataFrame({"row": frame.loc[empty, "row"], "reason": "empty_sentence",
                             "label": frame.loc[empty, "tags"].map(" ".join),
                             "text": frame.loc[empty, "tokens"].map(" ".join)}).reset_index(drop=True)
    dropped = int(frame["tokens"].map(len).sum() - out["tokens"].map(len).sum())
    return out[~empty].drop(columns=["lines"]).reset_index(drop=True), rejected, dropped


def clean(path: Path, params: Params) -> CleanResult:
    """Read sentences (CoNLL or JSONL), check tags, normalise tokens, and map tags to ids."""
    from seqeval.metrics.sequence_labeling import get_entities

    fmt = io.detect_format(path, params.clean.input_format)
    if fmt == "conll" and params.task.split_column:
        raise DataError(f"{path}: CoNLL has no split column; set task.split_column: \"\" (split by fractions) or "
                        f"give JSONL with a split column")
    frame = read_conll(path, params) if fmt == "conll" else read_jsonl(path, params)
    check_tags(frame, path, params)
    scheme = tag_scheme(frame["tags"])
    if scheme == "BMES":  # M- (middle) is IOBES's I-: the model learns, scores and predicts IOBES tags
        frame = frame.assign(tags=frame["tags"].map(lambda tags: ["I-" + t[2:] if t[0] == "M" else t for t in tags]))
    kept, rejected, dropped = normalise_sentences(frame, params.clean.lowercase)
    if kept.empty:
        raise DataError(f"{path}: no sentences with tokens; check the file and task.text_column")
    tag_counts = Counter(tag for tags in kept["tags"] for tag in tags)
    if set(tag_counts) == {"O"}:
        raise DataError(f"{path}: every tag is 'O', so there are no entities to learn; check the tag column "
                        f"(ner.conll_tag_column or task.label_column)")
    labels = sorted_tags(set(tag_counts))
    ids = {tag: i for i, tag in enumerate(labels)}
    kept["tag_ids"] = kept["tags"].map(lambda tags: [ids[t] for t in tags])
    entity_counts = Counter(kind for tags in kept["tags"] for kind, _, _ in get_entities(list(tags)))
    return CleanResult(kept=kept, rejected=rejected, labels=labels, summary={
        "tag_scheme": scheme, "scored_as": "strict IOBES" if strict_scheme(labels) else "seqeval default (IOB1/IOB2)",
        "sentences": len(kept), "documents": int(kept["doc"].nunique()),
        "tokens": int(kept["tokens"].map(len).sum()), "empty_tokens_dropped": dropped,
        "tag_counts": {tag: tag_counts[tag] for tag in labels}, "entity_counts": dict(sorted(entity_counts.items()))})


def align_labels(word_ids: list[int], tag_ids: list[int], spans: dict[int, tuple[int, int, int]] | None) -> list[int]:
    """One label per model position: a word's tag on its first sub-word; later sub-words get IGNORED, or, with
    `spans` (label_all_tokens), the middle and last tag of the word's span (subword_spans), so the sub-words of one
    word form one valid span. A word whose tag has no entry in `spans` keeps IGNORED on its later sub-words.
    `word_ids` has -1 for special tokens."""
    labels = []
    for position, word in enumerate(word_ids):
        first = position == 0 or word_ids[position - 1] != word
        last = position + 1 == len(word_ids) or word_ids[position + 1] != word
        tag = tag_ids[word] if word >= 0 else IGNORED
        if word < 0 or first and last:
            labels.append(tag)
        elif spans is None or tag not in spans:
            labels.append(tag if first else IGNORED)
        else:
            labels.append(spans[tag][0 if first else 2 if last else 1])
    return labels


SPAN_SHAPES = {"B": "BII", "I": "III", "E": "IIE", "S": "BIE"}  # word tag prefix -> (first, middle, last) sub-word


def subword_spans(labels: list[str]) -> dict[int, tuple[int, int, int]]:
    """Tag id -> (first, middle, last) sub-word tag ids for a word of several sub-words under label_all_tokens:
    B-X -> B-X I-X .. I-X, I-X -> I-X .. I-X, E-X -> I-X .. E-X, S-X -> B-X I-X .. E-X, O -> O (IOB1, IOB2 and
    IOBES/BMES alike; a one-sub-word word keeps its tag). Repeating the word's tag instead would teach S-X S-X S-X,
    three entities. `labels` is the training data's tag set: a tag whose span needs a tag missing from it (S-X
    without I-X, say) is left out, and its word's later sub-words are ignored rather than given a made-up tag."""
    ids = {tag: i for i, tag in enumerate(labels)}
    spans = {}
    for tag, i in ids.items():
        shape = [tag] * 3 if tag == "O" else [f"{prefix}-{tag[2:]}" for prefix in SPAN_SHAPES[tag[0]]]
        if all(name in ids for name in shape):
            spans[i] = (ids[shape[0]], ids[shape[1]], ids[shape[2]])
    return spans


def word_tag_reader(labels: list[str], label_all_tokens: bool) -> dict[tuple[int, int], int]:
    """(first, last) sub-word tag ids -> the word's tag id, the inverse of subword_spans, so a word is read back
    from the span its sub-words were trained on (B-X .. E-X is S-X, I-X .. E-X is E-X). Empty without
    label_all_tokens: later sub-words were never trained then, so only the first sub-word counts."""
    if not label_all_tokens:
        return {}
    return {(first, last): tag for tag, (first, _, last) in subword_spans(labels).items()}


def encode_words(tokenizer: PreTrainedTokenizerBase, words: list[list[str]], max_length: int) -> tuple[Any, list]:
    """Tokenize pre-split words (truncated, not padded); word ids per position with -1 for special tokens."""
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length,
                    return_token_type_ids=False)
    return enc, [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(words))]


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    """One row per sentence; example_id is the document, so the split stage keeps a document's sentences together.
    Keeps tokens, tag_ids and word_ids for word-level evaluation."""
    spans = subword_spans(labels) if params.ner.label_all_tokens else None

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc, word_ids = encode_words(tokenizer, batch["tokens"], params.tokenize.max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "word_ids": word_ids,
                "labels": [align_labels(w, t, spans) for w, t in zip(word_ids, batch["tag_ids"])],
                "length": [len(ids) for ids in enc["input_ids"]],
                "unseen_words": [len(t) - len({w for w in ws if w >= 0}) for t, ws in zip(batch["tokens"], word_ids)]}

    keep = ("text", "row", "split", "tokens", "tag_ids", "doc")
    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in keep]).rename_column("doc", "example_id")
    unseen = np.asarray(out["unseen_words"])
    # unseen words: cut off by max_length (or made of characters the tokenizer drops); they are predicted O
    return out, {"truncated_sentences": int((unseen > 0).sum()), "unseen_words": int(unseen.sum())}


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    from transformers import AutoModelForTokenClassification

    from lmtune import families, models

    return families.load_model(
        AutoModelForTokenClassification, models.resolve(name_or_path), revision, attn_implementation=attn_implementation,
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={tag: i for i, tag in enumerate(labels)},
        ignore_mismatched_sizes=True)


def collator(tokenizer: PreTrainedTokenizerBase, model: Any, params: Params,
             max_length: int) -> DataCollatorForTokenClassification:
    """Pads input ids and labels (with IGNORED) to the batch's longest sentence, or to max_length."""
    from transformers import DataCollatorForTokenClassification

    if params.fine_tune.dynamic_padding:
        return DataCollatorForTokenClassification(tokenizer, padding="longest")
    return DataCollatorForTokenClassification(tokenizer, padding="max_length", max_length=max_length)


def word_predictions(position_ids: np.ndarray, word_ids: list[int], n_words: int,
                     reader: dict[tuple[int, int], int] | None = None) -> list[int]:
    """The tag id of each word: its first sub-word's prediction, or, with a word_tag_reader (label_all_tokens),
    the tag its (first, last) sub-word predictions spell, falling back to the first. Words without a position
    (truncated) get tag id 0, which is O whenever the data has an O tag (sorted_tags puts it first)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word >= 0:
            first.setdefault(word, int(position_ids[position]))
            last[word] = int(position_ids[position])
    reader = reader or {}
    return [reader.get((first[w], last[w]), first[w]) if w in first else 0 for w in range(n_words)]


def seqeval_scores(gold: list[list[str]], predicted: list[list[str]],
                   strict: bool = False) -> tuple[dict[str, float], dict[str, dict]]:
    """Entity-level micro precision/recall/F1 and word accuracy, and per entity type precision/recall/f1-score/
    support. Default mode: an entity may start with I-, so IOB1 and IOB2 both score correctly. `strict`
    (strict_scheme: IOBES and BMES data): seqeval's strict IOBES mode, where only a well-formed B- .. E- or S-
    span is an entity, so a predicted span without its end tag counts as no entity."""
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOBES

    mode = {"mode": "strict", "scheme": IOBES} if strict else {}
    report = classification_report(gold, predicted, output_dict=True, zero_division=0, **mode)
    micro = report["micro avg"]
    overall = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
               "f1": float(micro["f1-score"]), "accuracy": float(accuracy_score(gold, predicted))}
    per_type = {kind: {k: int(v) if k == "support" else float(v) for k, v in scores.items()}
                for kind, scores in report.items() if not kind.endswith(" avg")}
    return overall, per_type


def tag_sequences(labels: list[str], rows: list[list[int]]) -> list[list[str]]:
    return [[labels[i] for i in row] for row in rows]


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    """Validation metrics per word (word_predictions), like the test evaluation; eval order is the dataset's."""
    word_ids, gold = eval_dataset["word_ids"], tag_sequences(labels, eval_dataset["tag_ids"])
    reader = word_tag_reader(labels, params.ner.label_all_tokens)

    def fn(pred: Any) -> dict[str, float]:
        ids = np.argmax(pred.predictions, axis=-1)  # (sentences, padded positions)
        predicted = [word_predictions(row, w, len(g), reader) for row, w, g in zip(ids, word_ids, gold)]
        return seqeval_scores(gold, tag_sequences(labels, predicted), strict_scheme(labels))[0]

    return fn


def position_logits(model: Any, tokenizer: Any, features: list[dict[str, list[int]]], batch_size: int,
                    progress: bool = False) -> list[np.ndarray]:
    """(positions, labels) logits per feature. Features are grouped by exact length, so each group's batches
    stack without padding (batched_logits concatenates batches, which needs one sequence length)."""
    from lmtune.inference import batched_logits

    by_length: dict[int, list[int]] = defaultdict(list)
    for i, feature in enumerate(features):
        by_length[len(feature["input_ids"])].append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(features)
    for _, members in tqdm(sorted(by_length.items()), desc="predict", unit="length", disable=not progress):
        for i, logits in zip(members, batched_logits(model, tokenizer, [features[i] for i in members], batch_size)):
            out[i] = logits
    return out


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    from lmtune import metrics, plots

    logits = position_logits(model, tokenizer, model_features(test), params.evaluate.batch_size, progress=True)
    gold_ids, reader = test["tag_ids"], word_tag_reader(labels, params.ner.label_all_tokens)
    pred_ids = [word_predictions(x.argmax(axis=-1), w, len(g), reader)
                for x, w, g in zip(logits, test["word_ids"], gold_ids)]
    gold, predicted = tag_sequences(labels, gold_ids), tag_sequences(labels, pred_ids)
    scores, per_type = seqeval_scores(gold, predicted, strict_scheme(labels))
    flat_gold, flat_pred = np.concatenate(gold_ids), np.concatenate(pred_ids)  # (words,)
    matrix = metrics.confusion(flat_gold, flat_pred, len(labels))
    return EvalResult(
        metrics=scores, reports={"per_type": per_type},
        predictions=[{"tokens": t, "tags": g, "predicted": p} for t, g, p in zip(test["tokens"], gold, predicted)],
        plots={"confusion": [{"actual": labels[a], "predicted": labels[p]} for a, p in zip(flat_gold, flat_pred)],
               "f1_by_label": [{"label": kind, "f1": round(v["f1-score"], 6)} for kind, v in per_type.items()]},
        figures={"confusion_matrix.png": lambda path: plots.confusion_matrix(matrix, labels, path),
                 "per_type_f1.png": lambda path: plots.per_class_f1(per_type, path)})


def split_words(record: dict[str, Any]) -> list[str]:
    """A record's words: its "tokens" list, else its text split on whitespace, or into characters when the text
    has no spaces and contains CJK (character-level Chinese/Japanese NER)."""
    if "tokens" in record:
        if not isinstance(record["tokens"], list):
            raise LmtuneError(f"input record {record!r}: \"tokens\" must be a list of words; or give \"text\"")
        return [str(t) for t in record["tokens"]]
    text = str(record["text"]).strip()
    return list(text) if " " not in text and CJK.search(text) else text.split()


def entity_spans(words: list[str], tags: list[str]) -> list[dict[str, Any]]:
    """Entities as {type, text, start, end}: word indices, end exclusive; CJK characters join without spaces."""
    from seqeval.metrics.sequence_labeling import get_entities

    spans = []
    for kind, start, last in get_entities(tags):
        part = words[start:last + 1]
        joiner = "" if all(len(w) == 1 and CJK.match(w) for w in part) else " "
        spans.append({"type": kind, "text": joiner.join(part), "start": start, "end": last + 1})
    return spans


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    labels = info["labels"]
    reader = word_tag_reader(labels, info["params"]["ner"]["label_all_tokens"])
    words = [split_words(r) for r in records]
    normalised = [[normalize_text(w, info["lowercase"]) for w in ws] for ws in words]
    enc, word_ids = encode_words(tokenizer, normalised, info["max_length"])
    features = [{"input_ids": ids, "attention_mask": mask}
                for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]
    rows = []
    for ws, wids, logits in zip(words, word_ids, position_logits(model, tokenizer, features, batch_size)):
        tags = tag_sequences(labels, [word_predictions(logits.argmax(axis=-1), wids, len(ws), reader)])[0]
        rows.append({"tokens": ws, "tags": tags, "entities": entity_spans(ws, tags)})
    return rows
