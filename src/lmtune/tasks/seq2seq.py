"""Sequence-to-sequence generation: summarization and translation (one module, two TASKS entries).

Input: a JSONL/CSV file with the source in task.text_column and the target in task.label_column, or two
line-aligned text files (clean.input_format: text; the input path is the source, data.target_path the target).
Any Hub encoder-decoder (T5, BART, Marian, mT5) fine-tunes as is; an encoder-only checkpoint such as the packaged
MiniLM is warm-started into a bert2bert encoder-decoder, so the task also runs offline.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lmtune.config import NO_TARGET
from lmtune.errors import DataError, LmtuneError, ParamsError
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import model_features, no_rows_left, read_labelled_texts, text_features
from lmtune.text import CleanResult, normalize_text

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from lmtune.config import Params

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def read_parallel_texts(source: Path, params: Params) -> pd.DataFrame:
    """Line-aligned source and target files as columns text (source), label (target), row (1-based line)."""
    target, encoding = params.data.target, params.clean.encoding
    if target is None:
        raise DataError(f"{source}: clean.input_format is text, so the target side must come from a second, "
                        f"line-aligned file; set data.target_path to it")
    sides = []
    for path, what in ((source, "input file"), (target, "data.target_path")):
        if not path.is_file():
            raise DataError(f"{path}: {what} not found; check the path")
        try:
            with open(path, encoding=encoding) as f:  # universal newlines: \n and \r\n both end a line
                sides.append([line.rstrip("\n") for line in f])
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not valid {encoding} ({err.reason}); set clean.encoding to the file's "
                            f"encoding or re-save it as UTF-8") from None
    if len(sides[0]) != len(sides[1]):
        raise DataError(f"{source} has {len(sides[0])} lines but {target} has {len(sides[1])}; the source and "
                        f"target files must be line-aligned (line i of one translates or summarises line i of the "
                        f"other)")
    if not sides[0]:
        raise DataError(f"{source}: the file is empty; it needs one source text per line")
    return pd.DataFrame({"text": sides[0], "label": sides[1], "row": np.arange(1, len(sides[0]) + 1)})


def clean(path: Path, params: Params) -> CleanResult:
    """Read source/target pairs, normalise both sides, and drop unusable pairs with a reason. Pairs that share a
    source share an example_id, so the split never puts one source in both train and test, and evaluate scores a
    source against all its references. With task.split_column the id groups by split and source: the split stage
    puts an example in every split any of its rows names, so grouping by source alone would copy a source's train
    pairs into test whenever the file also lists that source (another reference, a repeat) under test."""
    if params.clean.input_format == "text":
        frame = read_parallel_texts(path, params)
    elif params.data.target is not None:
        raise DataError(f"{path}: data.target_path is set, which needs clean.input_format: text (line-aligned "
                        f"source and target files); set it, or set data.target_path: {NO_TARGET} for a "
                        f"{path.suffix} file holding both columns")
    else:
        frame = read_labelled_texts(path, params)
    df = frame.assign(source=frame["text"].map(lambda t: normalize_text(t, params.clean.lowercase)),
                      target=frame["label"].map(normalize_text))  # targets keep their case: they are references
    reason = pd.Series("", index=df.index)
    reason[df["source"].str.len() < params.clean.min_chars] = "too_short"
    reason[df["target"] == ""] = "empty_target"
    reason[df["source"] == ""] = "empty_source"
    reason[(reason == "") & df.duplicated(subset=["source", "target"], keep="first")] = "duplicate"
    rejected = df.loc[reason != "", ["row", "label", "text"]].assign(reason=reason[reason != ""])
    rejected = rejected[["row", "reason", "label", "text"]].reset_index(drop=True)
    kept = df[reason == ""].drop(columns=["text", "label"]).rename(columns={"source": "text"}).reset_index(drop=True)
    if kept.empty:
        raise no_rows_left(path, rejected)
    group = kept["split"] + "\n" + kept["text"] if "split" in kept else kept["text"]  # never across splits
    kept["example_id"] = pd.factorize(group)[0].astype("int64")
    return CleanResult(kept=kept, rejected=rejected, labels=[], summary={
        "pairs": len(kept), "unique_sources": int(kept["text"].nunique()),
        "source_chars_mean": round(float(kept["text"].str.len().mean()), 2),
        "target_chars_mean": round(float(kept["target"].str.len().mean()), 2)})


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    """Encode `source_prefix + text` (truncated to tokenize.max_length) and the target as `labels` (truncated to
    seq2seq.max_target_length), unpadded; `target` keeps the reference text the metrics compare against. For a
    decoder-only model one row holds prompt and target (lmtune.causal: labels -100 on the prompt)."""
    from lmtune import causal, families, models

    s2s = params.seq2seq
    decoder_only = families.is_decoder_only(families.load_config(models.resolve(params.model.name_or_path),
                                                                 params.model.revision))

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = [normalize_text(s2s.source_prefix + t, params.clean.lowercase) for t in batch["text"]]
        if decoder_only:
            rows = causal.encode(tokenizer, sources, batch["target"], params.tokenize.max_length,
                                 s2s.max_target_length)
            return rows | {"length": [len(ids) for ids in rows["input_ids"]]}
        enc = tokenizer(sources, truncation=True, max_length=params.tokenize.max_length,
                        return_token_type_ids=False)
        tgt = tokenizer(text_target=batch["target"], truncation=True, max_length=s2s.max_target_length,
                        return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": tgt["input_ids"],
                "length": [len(ids) for ids in enc["input_ids"]],
                "truncated_source": models.truncated(enc, lambda: tokenizer(sources)["input_ids"]),
                "truncated_target": models.truncated(tgt, lambda: tokenizer(text_target=batch["target"])["input_ids"])}

    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in ("text", "target", "row", "split",
                                                                         "example_id")])
    stats = {"truncated_sources": int(sum(out["truncated_source"])),
             "truncated_targets": int(sum(out["truncated_target"])),
             "target_tokens_mean": round(float(np.mean([len(ids) for ids in out["labels"]])), 2)}
    return out.remove_columns(["truncated_source", "truncated_target"]), stats


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    """An encoder-decoder checkpoint (T5, BART, Marian, mT5, or a fine-tuned model directory) loads as is, and so
    does a decoder-only one (GPT-2, Llama, Qwen2: prompt -> completion, lmtune.causal); an encoder-only one (BERT,
    RoBERTa, the packaged MiniLM) is warm-started as encoder and decoder (bert2bert: the decoder gets fresh
    cross-attention layers and an LM head tied to its embeddings)."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        EncoderDecoderModel,
        GenerationConfig,
    )

    from lmtune import families, models

    path = models.resolve(name_or_path)
    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    config = AutoConfig.from_pretrained(path, revision=revision)
    if config.is_encoder_decoder:
        return families.load_model(AutoModelForSeq2SeqLM, path, revision, **attn)
    if families.is_decoder_only(config):
        return families.load_model(AutoModelForCausalLM, path, revision, **attn)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(  # fp32 master weights, whatever the saved dtype
        path, path, encoder_revision=revision, decoder_revision=revision, encoder_dtype=torch.float32,
        decoder_dtype=torch.float32, **{f"{side}_{k}": v for side in ("encoder", "decoder") for k, v in attn.items()})
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise LmtuneError(f"model.name_or_path: {name_or_path!r} is encoder-only and its tokenizer lacks a "
                          f"start (cls/bos), end (sep/eos) or pad token to warm-start a decoder; use an "
                          f"encoder-decoder checkpoint such as t5-small")
    model.config.decoder_start_token_id, model.config.eos_token_id = start, end
    model.config.pad_token_id, model.config.vocab_size = tokenizer.pad_token_id, model.config.decoder.vocab_size
    model.generation_config = GenerationConfig(decoder_start_token_id=start, bos_token_id=start, eos_token_id=end,
                                               pad_token_id=tokenizer.pad_token_id)  # lengths and beams: params.seq2seq
    return model


def collator(tokenizer: PreTrainedTokenizerBase, model: Any, params: Params, max_length: int) -> Any:
    """Pad inputs (to the batch's longest, or to max_length without dynamic padding) and labels with -100, which
    the loss ignores; the model builds its decoder inputs from the labels. A label sequence that begins with the
    decoder start token (bert2bert: [CLS]) loses it, or the model would learn to emit the start token again."""
    from transformers import DataCollatorForSeq2Seq

    padding: dict[str, Any] = {"padding": "longest"} if params.fine_tune.dynamic_padding else \
        {"padding": "max_length", "max_length": max_length}
    pad = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, **padding)
    start = getattr(model.config, "decoder_start_token_id", None)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad([{**f, "labels": f["labels"][1:]} if start is not None and f["labels"][:1] == [start] else f
                    for f in features])

    return collate


# Scripts that ROUGE and BLEU cannot split into words at spaces, and Latin Extended Additional (Vietnamese):
# (first code point, last code point, script), sorted. A letter below U+0250 is Latin; one in no range is "other"
# (Cyrillic, Greek, Arabic, Hebrew, Devanagari, ...: spaced words, but not the ASCII that 13a and rouge-score expect).
SCRIPT_RANGES = (
    (0x0E00, 0x0EFF, "unspaced"),  # Thai, Lao: no spaces between words
    (0x1000, 0x109F, "unspaced"),  # Myanmar
    (0x1100, 0x11FF, "hangul"),  # Hangul Jamo
    (0x1780, 0x17FF, "unspaced"),  # Khmer
    (0x1E00, 0x1EFF, "latin"),  # Latin Extended Additional
    (0x3040, 0x30FF, "kana"),  # Hiragana, Katakana
    (0x3130, 0x318F, "hangul"),  # Hangul Compatibility Jamo
    (0x31F0, 0x31FF, "kana"),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF, "han"),  # CJK Extension A
    (0x4E00, 0x9FFF, "han"),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF, "hangul"),  # Hangul Syllables
    (0xF900, 0xFAFF, "han"),  # CJK Compatibility Ideographs
    (0x20000, 0x3134F, "han"),  # CJK Extensions B-G
)
_RANGE_STARTS = [first for first, _, _ in SCRIPT_RANGES]
CHARACTER_SCRIPTS = ("han", "kana", "hangul", "unspaced")  # ROUGE counts these scripts' characters, not words
SCRIPT_BLEU_TOKENIZE = {"latin": "13a", "han": "zh", "kana": "ja-mecab", "hangul": "ko-mecab", "unspaced": "char",
                        "other": "intl"}  # sacrebleu tokenizers; the mecab ones fall back to "char" when not installed
# seq2seq.target_language codes whose script is known; any other code (de, fr, sr, ...) takes the detected script
LANGUAGE_SCRIPTS = {"en": "latin", "zh": "han", "ja": "kana", "ko": "hangul", "th": "unspaced", "lo": "unspaced",
                    "km": "unspaced", "my": "unspaced"} | {code: "other" for code in (
                        "ru uk be bg mk kk ky tg mn el ar fa ur ps he yi hi mr ne bn pa gu or ta te kn ml si am ka "
                        "hy").split()}


def script_of(char: str) -> str:
    """The SCRIPT_RANGES script of one letter, digit or mark: latin, han, kana, hangul, unspaced or other."""
    code = ord(char)
    if code < 0x0250:
        return "latin"
    i = bisect_right(_RANGE_STARTS, code) - 1
    return SCRIPT_RANGES[i][2] if i >= 0 and code <= SCRIPT_RANGES[i][1] else "other"


def detect_script(texts: Iterable[str]) -> str:
    """The script most ROUGE tokens of `texts` are written in (a CJK character counts as much as a Latin word, so a
    Chinese sentence with one English name is Chinese). Japanese writes kanji (han) beside kana, so CJK text with a
    tenth or more kana is Japanese, mostly Hangul Korean, else Chinese. No letters at all: latin."""
    words = UnicodeTokenizer(stem=False)
    counts = Counter(script_of(token[0]) for text in texts for token in words.tokenize(text) if token[0].isalpha())
    if not counts:
        return "latin"
    cjk = counts["han"] + counts["kana"] + counts["hangul"]
    top = max(("latin", "other", "unspaced"), key=lambda s: counts[s])
    if counts[top] >= cjk:
        return top
    if counts["hangul"] >= max(counts["han"], counts["kana"]):
        return "hangul"
    return "kana" if counts["kana"] >= 0.1 * cjk else "han"


def bleu_tokenizer_installed(name: str) -> bool:
    """Whether sacrebleu can build tokenizer `name` (ja-mecab and ko-mecab need extra packages: sacrebleu[ja]/[ko])."""
    from sacrebleu.metrics import BLEU

    try:
        BLEU(tokenize=name)
    except (ImportError, RuntimeError):
        return False
    return True


@dataclass(frozen=True)
class Scoring:
    """How generated texts are compared with their references, chosen from seq2seq.target_language: BLEU's
    tokenizer (13a splits no Chinese or Japanese, so a near match there scores 0) and ROUGE's (rouge-score's default
    keeps only [a-z0-9], so Chinese or Russian texts have no tokens and score 0)."""
    target_language: str  # the param: "auto" or a language code
    script: str  # of the references: latin, han, kana, hangul, unspaced or other (LANGUAGE_SCRIPTS or detected)
    bleu_tokenize: str  # sacrebleu tokenizer: 13a, zh, ja-mecab, ko-mecab, char or intl
    rouge_stemming: bool  # Porter stemming of ROUGE words: an English stemmer, so English and auto-detected Latin

    def report(self) -> dict[str, Any]:
        """The choice as reports/eval/generation.json records it (metrics.json holds numbers only)."""
        import sacrebleu

        return {"target_language": self.target_language, "script": self.script, "bleu_tokenize": self.bleu_tokenize,
                "rouge_tokenizer": "lowercased words (letters, marks, digits)" +
                                   (", Porter-stemmed" if self.rouge_stemming else "") +
                                   "; one token per Han, kana, Hangul, Thai, Lao, Khmer or Myanmar character",
                "chrf": "sacrebleu chrF defaults (character 6-grams, beta 2; no tokenizer)",
                "sacrebleu_version": sacrebleu.__version__}


def scoring_for(target_language: str, references: Iterable[str]) -> Scoring:
    """Resolve seq2seq.target_language ("auto", or a code such as en, de, zh, ja, ru, zh-Hant) against the
    references: a code in LANGUAGE_SCRIPTS fixes the script; "auto" and other codes detect it from `references`."""
    code = re.split(r"[-_]", target_language.strip().lower(), maxsplit=1)[0]
    if code != "auto" and not re.fullmatch(r"[a-z]{2,3}", code):
        raise ParamsError(f"seq2seq.target_language: {target_language!r} is neither \"auto\" nor a language code; "
                          f"set it to auto (detect the references' script) or to an ISO 639 code such as en, de, zh, "
                          f"ja, ko, th or ru")
    script = LANGUAGE_SCRIPTS.get(code) or detect_script(references)
    tokenize = SCRIPT_BLEU_TOKENIZE[script]
    if tokenize.endswith("-mecab") and not bleu_tokenizer_installed(tokenize):
        tokenize = "char"
    return Scoring(target_language=target_language, script=script, bleu_tokenize=tokenize,
                   rouge_stemming=script == "latin" and code in ("auto", "en"))


class UnicodeTokenizer:  # rouge_score.tokenizers.Tokenizer's interface (tokenize), without importing it
    """ROUGE tokens for any script: lowercased runs of letters, combining marks and digits are words (rouge-score's
    default keeps [a-z0-9] only, and Python's \\w+ splits Devanagari words at their vowel signs); each character of a
    CHARACTER_SCRIPTS script is a token of its own, as those scripts do not separate words by spaces. With `stem`,
    words longer than 3 characters are Porter-stemmed as rouge-score does, so ASCII text gets the default's tokens."""

    def __init__(self, stem: bool) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer() if stem else None

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        word: list[str] = []
        for ch in text.lower():
            wordlike = unicodedata.category(ch)[0] in "LMN"
            if wordlike and (ord(ch) < 0x0E00 or script_of(ch) not in CHARACTER_SCRIPTS):
                word.append(ch)
                continue
            if word:
                tokens.append("".join(word))
                word = []
            if wordlike:
                tokens.append(ch)
        if word:
            tokens.append("".join(word))
        if self._stemmer is None:
            return tokens
        return [self._stemmer.stem(t) if len(t) > 3 and script_of(t[0]) == "latin" else t for t in tokens]


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's multi-reference layout: stream k holds every source's k-th reference, None where a source has
    fewer (None, unlike "", is dropped rather than counted as an empty reference)."""
    most = max(map(len, references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(most)]


def generation_metrics(generated: list[str], references: list[list[str]], scoring: Scoring) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (each against the best of the source's references, as rouge-score's score_multi,
    averaged over sources) and corpus BLEU and chrF (sacrebleu, all references of a source at once), 0-100.
    `references[i]` holds every reference of `generated[i]`; tokenisation follows `scoring`."""
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU, CHRF

    if not generated:
        return {name: 0.0 for name in (*ROUGE_TYPES, "bleu", "chrf")}
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer(stem=scoring.rouge_stemming))
    scores = [scorer.score_multi(refs, gen) for gen, refs in zip(generated, references)]
    out = {name: 100 * float(np.mean([s[name].fmeasure for s in scores])) for name in ROUGE_TYPES}
    streams = reference_streams(references)
    out["bleu"] = float(BLEU(tokenize=scoring.bleu_tokenize).corpus_score(generated, streams).score)
    out["chrf"] = float(CHRF().corpus_score(generated, streams).score)
    return out


def group_references(example_ids: list[int], targets: list[str]) -> tuple[list[int], list[list[str]]]:
    """The first row of each example (in order of first appearance) and all of that example's references: rows of
    one example share their source (clean groups by it), so one generation per example is scored against them all."""
    position: dict[int, int] = {}
    rows: list[int] = []
    references: list[list[str]] = []
    for row, (example, target) in enumerate(zip(example_ids, targets)):
        if example not in position:
            position[example] = len(rows)
            rows.append(row)
            references.append([])
        references[position[example]].append(target)
    return rows, references


def decode(tokenizer: Any, ids: np.ndarray | list[list[int]]) -> list[str]:
    """Token ids to text; -100 (padding of labels and of generated batches gathered by Trainer) becomes pad."""
    ids = [[tokenizer.pad_token_id if t == -100 else int(t) for t in row] for row in ids]
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    """Validation metrics on generated text against the raw reference texts (`target`, in eval order). The Trainer
    generates for every row; the first row of each source is scored against all of that source's references."""
    rows, references = group_references(eval_dataset["example_id"], eval_dataset["target"])
    scoring = scoring_for(params.seq2seq.target_language, (r for refs in references for r in refs))

    def fn(pred: Any) -> dict[str, float]:
        generated = decode(tokenizer, pred.predictions)
        kept = [i for i, row in enumerate(rows) if row < len(generated)]  # all of them unless a prefix was generated
        return generation_metrics([generated[rows[i]] for i in kept], [references[i] for i in kept], scoring)

    return fn


def batched_generate(model: Any, tokenizer: Any, features: list[dict[str, list[int]]], batch_size: int,
                     generation: dict[str, Any], progress: bool = False) -> tuple[list[str], list[int]]:
    """Generated texts and their lengths in tokens, in input order; batches sorted by source length so each pads
    only to its own longest source; fp32. A decoder-only model continues each prompt (the features' input_ids)."""
    import torch
    from transformers import DataCollatorWithPadding

    from lmtune import causal, families

    if families.is_decoder_only(model.config):
        new = causal.generate_all(model, tokenizer, [f["input_ids"] for f in features], batch_size,
                                  generation["num_beams"], generation["max_new_tokens"], progress)
        return decode(tokenizer, new), [len(ids) for ids in new]
    model.eval()
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    texts, lengths = [""] * len(features), [0] * len(features)
    special = set(tokenizer.all_special_ids)
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", disable=not progress):
        index = order[start:start + batch_size]
        batch = {k: v.to(model.device) for k, v in collate([features[i] for i in index]).items()}
        with torch.inference_mode():
            out = model.generate(**batch, num_beams=generation["num_beams"],
                                 max_new_tokens=generation["max_new_tokens"]).cpu().tolist()  # (batch, tokens)
        for i, ids, text in zip(index, out, decode(tokenizer, out)):
            texts[i], lengths[i] = text, sum(t not in special for t in ids)
    return texts, lengths


def prompt_features(ds: Dataset) -> list[dict[str, list[int]]]:
    """The prompt of each decoder-only row (lmtune.causal): the leading positions whose label is -100."""
    from lmtune import causal

    return [{"input_ids": ids[:next((i for i, label in enumerate(labels) if label != causal.IGNORE), len(ids))]}
            for ids, labels in zip(ds["input_ids"], ds["labels"])]


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    """Generate once per test source and score it against all of its references (a source with two references is
    two test rows). reports/eval/generation.json records the tokenizers seq2seq.target_language chose."""
    from lmtune import families

    rows, references = group_references(test["example_id"], test["target"])
    sources = test.select(rows)
    scoring = scoring_for(params.seq2seq.target_language, (r for refs in references for r in refs))
    generation = {"num_beams": params.seq2seq.num_beams, "max_new_tokens": params.seq2seq.max_new_tokens}
    features = prompt_features(sources) if families.is_decoder_only(model.config) else model_features(sources)
    generated, lengths = batched_generate(model.float(), tokenizer, features, params.evaluate.batch_size, generation,
                                          progress=True)
    metrics = generation_metrics(generated, references, scoring)
    metrics["gen_len"] = float(np.mean(lengths)) if lengths else 0.0  # generated tokens per source
    metrics["references_per_source"] = float(np.mean([len(refs) for refs in references])) if references else 0.0
    predictions = [{"source": s, "references": refs, "generated": g}
                   for s, refs, g in zip(sources["text"], references, generated)]
    report = scoring.report() | {"sources": len(rows), "references": len(test),
                                 "references_per_source": metrics["references_per_source"]}
    return EvalResult(metrics=metrics, predictions=predictions, reports={"generation": report})


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    """Each record's `text` (or `source`) gets `generated`, with the source prefix and generation settings of
    training."""
    from lmtune import causal, families

    s2s = info["params"]["seq2seq"]
    sources = [s2s["source_prefix"] + str(r["text"] if "text" in r else r["source"]) for r in records]
    if families.is_decoder_only(model.config):  # the prompts of training: normalised, with their end marker
        prompts, _ = causal.prompt_ids(tokenizer, [normalize_text(s, info["lowercase"]) for s in sources],
                                       info["max_length"])
        features = [{"input_ids": ids} for ids in prompts]
    else:
        features = text_features(tokenizer, sources, info)
    generated, _ = batched_generate(model, tokenizer, features, batch_size,
                                    {"num_beams": s2s["num_beams"], "max_new_tokens": s2s["max_new_tokens"]})
    return [{"generated": g} for g in generated]
