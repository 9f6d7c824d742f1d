"""Sequence-to-sequence generation: summarization and translation (one module, two TASKS entries).

Input: a JSONL/CSV file with the source in task.text_column and the target in task.label_column, or two
line-aligned text files (clean.input_format: text; the input path is the source, seq2seq.target_file the target).
Any Hub encoder-decoder (T5, BART, Marian, mT5) fine-tunes as is; an encoder-only checkpoint such as the packaged
MiniLM is warm-started into a bert2bert encoder-decoder, so the task also runs offline.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sacrebleu
import torch
from datasets import Dataset
from rouge_score import rouge_scorer, tokenizers
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, DataCollatorWithPadding, \
    EncoderDecoderModel, GenerationConfig, PreTrainedTokenizerBase

from lmtune import models
from lmtune.errors import DataError, LmtuneError
from lmtune.tasks.base import EvalResult
from lmtune.tasks.classification import model_features, no_rows_left, read_labelled_texts, text_features
from lmtune.text import CleanResult, normalize_text

if TYPE_CHECKING:
    from lmtune.config import Params

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def read_parallel_texts(source: Path, params: Params) -> pd.DataFrame:
    """Line-aligned source and target files as columns text (source), label (target), row (1-based line)."""
    target_file, encoding = params.seq2seq.target_file, params.clean.encoding
    if not target_file:
        raise DataError(f"{source}: clean.input_format is text, so the target side must come from a second, "
                        f"line-aligned file; set seq2seq.target_file to it")
    target = Path(target_file)
    sides = []
    for path, what in ((source, "input file"), (target, "seq2seq.target_file")):
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
    source share an example_id, so the split never puts one source in both train and test."""
    if params.clean.input_format == "text":
        frame = read_parallel_texts(path, params)
    elif params.seq2seq.target_file:
        raise DataError(f"{path}: seq2seq.target_file is set, which needs clean.input_format: text (line-aligned "
                        f"source and target files); set it, or set seq2seq.target_file: \"\" for a {path.suffix} "
                        f"file holding both columns")
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
    kept["example_id"] = pd.factorize(kept["text"])[0].astype("int64")
    return CleanResult(kept=kept, rejected=rejected, labels=[], summary={
        "pairs": len(kept), "unique_sources": int(kept["example_id"].nunique()),
        "source_chars_mean": round(float(kept["text"].str.len().mean()), 2),
        "target_chars_mean": round(float(kept["target"].str.len().mean()), 2)})


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    """Encode `source_prefix + text` (truncated to tokenize.max_length) and the target as `labels` (truncated to
    seq2seq.max_target_length), unpadded; `target` keeps the reference text the metrics compare against."""
    s2s = params.seq2seq

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = [normalize_text(s2s.source_prefix + t, params.clean.lowercase) for t in batch["text"]]
        enc = tokenizer(sources, truncation=True, max_length=params.tokenize.max_length,
                        return_token_type_ids=False)
        tgt = tokenizer(text_target=batch["target"], truncation=True, max_length=s2s.max_target_length,
                        return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": tgt["input_ids"],
                "length": [len(ids) for ids in enc["input_ids"]],
                "truncated_source": [bool(e.overflowing) for e in enc.encodings],
                "truncated_target": [bool(e.overflowing) for e in tgt.encodings]}

    out = ds.map(encode, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize",
                 remove_columns=[c for c in ds.column_names if c not in ("text", "target", "row", "split",
                                                                         "example_id")])
    stats = {"truncated_sources": int(sum(out["truncated_source"])),
             "truncated_targets": int(sum(out["truncated_target"])),
             "target_tokens_mean": round(float(np.mean([len(ids) for ids in out["labels"]])), 2)}
    return out.remove_columns(["truncated_source", "truncated_target"]), stats


def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None) -> Any:
    """An encoder-decoder checkpoint (T5, BART, Marian, mT5, or a fine-tuned model directory) loads as is; an
    encoder-only one (BERT, RoBERTa, the packaged MiniLM) is warm-started as encoder and decoder (bert2bert:
    the decoder gets fresh cross-attention layers and an LM head tied to its embeddings)."""
    path = models.resolve(name_or_path)
    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if AutoConfig.from_pretrained(path, revision=revision).is_encoder_decoder:
        return AutoModelForSeq2SeqLM.from_pretrained(path, revision=revision, **attn)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(
        path, path, encoder_revision=revision, decoder_revision=revision,
        **{f"{side}_{k}": v for side in ("encoder", "decoder") for k, v in attn.items()})
    tokenizer = models.load_tokenizer(name_or_path, revision)
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
    padding: dict[str, Any] = {"padding": "longest"} if params.fine_tune.dynamic_padding else \
        {"padding": "max_length", "max_length": max_length}
    pad = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, **padding)
    start = getattr(model.config, "decoder_start_token_id", None)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad([{**f, "labels": f["labels"][1:]} if start is not None and f["labels"][:1] == [start] else f
                    for f in features])

    return collate


def generation_metrics(generated: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (rouge-score, Porter stemming, averaged over examples) and corpus BLEU and chrF
    (sacrebleu, default 13a tokenisation), all on a 0-100 scale."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))
    scores = [scorer.score(ref, gen) for gen, ref in zip(generated, references)]
    out = {name: 100 * float(np.mean([s[name].fmeasure for s in scores])) if scores else 0.0 for name in ROUGE_TYPES}
    out["bleu"] = float(sacrebleu.corpus_bleu(generated, [references]).score)
    out["chrf"] = float(sacrebleu.corpus_chrf(generated, [references]).score)
    return out


def decode(tokenizer: Any, ids: np.ndarray | list[list[int]]) -> list[str]:
    """Token ids to text; -100 (padding of labels and of generated batches gathered by Trainer) becomes pad."""
    ids = [[tokenizer.pad_token_id if t == -100 else int(t) for t in row] for row in ids]
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> Any:
    """Validation metrics on generated text against the raw reference texts (`target`, in eval order)."""
    references = eval_dataset["target"]

    def fn(pred: Any) -> dict[str, float]:
        generated = decode(tokenizer, pred.predictions)
        return generation_metrics(generated, references[:len(generated)])

    return fn


@torch.inference_mode()
def batched_generate(model: Any, tokenizer: Any, features: list[dict[str, list[int]]], batch_size: int,
                     generation: dict[str, Any], progress: bool = False) -> tuple[list[str], list[int]]:
    """Generated texts and their lengths in tokens, in input order; batches sorted by source length so each pads
    only to its own longest source; fp32."""
    model.eval()
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    texts, lengths = [""] * len(features), [0] * len(features)
    special = set(tokenizer.all_special_ids)
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", disable=not progress):
        index = order[start:start + batch_size]
        batch = {k: v.to(model.device) for k, v in collate([features[i] for i in index]).items()}
        out = model.generate(**batch, num_beams=generation["num_beams"],
                             max_new_tokens=generation["max_new_tokens"]).cpu().tolist()  # (batch, tokens)
        for i, ids, text in zip(index, out, decode(tokenizer, out)):
            texts[i], lengths[i] = text, sum(t not in special for t in ids)
    return texts, lengths


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    generation = {"num_beams": params.seq2seq.num_beams, "max_new_tokens": params.seq2seq.max_new_tokens}
    generated, lengths = batched_generate(model.float(), tokenizer, model_features(test), params.evaluate.batch_size,
                                          generation, progress=True)
    metrics = generation_metrics(generated, test["target"])
    metrics["gen_len"] = float(np.mean(lengths)) if lengths else 0.0  # generated tokens per example
    predictions = [{"source": s, "target": t, "generated": g}
                   for s, t, g in zip(test["text"], test["target"], generated)]
    return EvalResult(metrics=metrics, predictions=predictions)


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    """Each record's `text` (or `source`) gets `generated`, with the source prefix and generation settings of
    training."""
    s2s = info["params"]["seq2seq"]
    sources = [s2s["source_prefix"] + str(r["text"] if "text" in r else r["source"]) for r in records]
    generated, _ = batched_generate(model, tokenizer, text_features(tokenizer, sources, info), batch_size,
                                    {"num_beams": s2s["num_beams"], "max_new_tokens": s2s["max_new_tokens"]})
    return [{"generated": g} for g in generated]
