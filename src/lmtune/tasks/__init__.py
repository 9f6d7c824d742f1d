"""Task registry: everything that differs between tasks lives in a TaskSpec, so stages never branch on task.

A stage does `spec = TASKS[params.task.name]` and calls the spec's functions. Adding a task means writing
one module with these functions and one entry below. The contract between stages:

- clean(path, params) -> CleanResult or StreamedClean (lmtune.text), both with `labels` (the label names; ids =
  positions; [] for tasks without a label set), `summary` (task figures for reports/clean.json), `rows_kept`,
  `rejected_by_reason` and `write(out_dir)`, which writes data.parquet (a `row` column, the 1-based input row, and
  with a split column `split`) and rejected.csv (row, reason, label, text). CleanResult holds the rows in memory;
  StreamedClean (classification, multilabel, regression) reads tabular input in chunks and never holds them.
- tokenize(ds, tokenizer, params, labels) -> (Dataset, stats): one row per model input (a QA example may give
  several windows) with `example_id` (rows of one example share it and always land in one split), `length`
  (tokens), `text` (the normalised input, for the leakage check) and the model's input and label columns.
- load_model(name_or_path, labels, revision, attn_implementation=None): the pretrained model with the task's head,
  or a fine-tuned model directory written by the fine-tune stage. Tasks with `pools` (one prediction per text) also
  take pooling= (fine_tune.pooling: auto, cls or mean), what their head reads.
- collator(tokenizer, model, params, max_length), compute_metrics(labels, params, eval_dataset, tokenizer) -> the
  Trainer's validation metrics function, evaluate(model, tokenizer, test, labels, params) -> EvalResult,
  predict(model, tokenizer, records, info, batch_size) -> one dict per input record (lmtune predict, MLflow serving).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmtune.errors import ParamsError
from lmtune.tasks import classification, multilabel, ner, qa, regression, seq2seq, sft
from lmtune.tasks.base import PLOT_KINDS, EvalResult  # noqa: F401 - re-exported


@dataclass(frozen=True)
class TaskSpec:
    name: str
    clean: Callable[..., Any]
    tokenize: Callable[..., Any]
    stratify_column: str | None  # tokenized column the split stage stratifies on (None: no stratification)
    load_model: Callable[..., Any]
    collator: Callable[..., Any]
    compute_metrics: Callable[..., Any]
    evaluate: Callable[..., Any]
    predict: Callable[..., Any]
    default_metric: str  # validation metric for the kept checkpoint when fine_tune.metric_for_best_model is auto
    metrics: tuple[str, ...]  # the validation metrics compute_metrics returns (the Trainer adds loss)
    input_fields: tuple[str, ...] = ("text",)  # fields every prediction request needs (lmtune predict, MLflow serving);
    # a plain-text input line becomes {"text": line}, so single-input tasks use ("text",)
    alternative_input: str | tuple[str, ...] | None = None  # fields that may stand in for input_fields (NER: tokens)
    generates: bool = False  # sequence-to-sequence: Seq2SeqTrainer, with generation during validation
    pools: bool = False  # one prediction per text from a pooled representation: fine_tune.pooling applies
    pairs: bool = False  # takes sentence pairs (task.text_pair_column): a second input field, PAIR_FIELD
    # what the task needs from a model family (lmtune.families checks it before any heavy work)
    head: str = "sequence-classification"  # or token-classification, question-answering, generation
    needs_offsets: bool = False  # maps tokens back to words or characters: a fast tokenizer
    split_words: bool = False  # feeds pre-split words: byte-level BPE tokenizers need add_prefix_space
    logits_outputs: int = 1  # leading model outputs that validation metrics read (QA: start and end logits)
    prepare_tokenizer: Callable[..., Any] | None = None  # (tokenizer, params): task setup saved with it (sft: template)


PAIR_FIELD = "text_pair"  # a prediction request's second text, for a model trained on pairs


def input_fields(spec: TaskSpec, text_pair_column: str) -> tuple[str, ...]:
    """The fields a prediction request needs for a model trained with task.text_pair_column (read back from the
    model's lmtune.json by lmtune predict and MLflow serving): the task's, plus PAIR_FIELD for a pair model."""
    return (*spec.input_fields, PAIR_FIELD) if spec.pairs and text_pair_column else spec.input_fields


def AVERAGED(*averages: str) -> tuple[str, ...]:
    return tuple(f"{m}_{a}" for a in averages for m in ("precision", "recall", "f1"))


CLASSIFICATION_METRICS = ("accuracy", *AVERAGED("macro", "micro", "weighted"))
LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "hamming_loss")  # validation metrics where smaller wins


def best_metric(spec: TaskSpec, name: str) -> str:
    """fine_tune.metric_for_best_model as the Trainer's metric name without its prefix: auto is the task's default,
    and `eval_loss` (the Trainer's own spelling) means loss. An error when the task does not produce it."""
    metric = spec.default_metric if name == "auto" else name.removeprefix("eval_")
    if metric not in ("loss", *spec.metrics):
        raise ParamsError(f"fine_tune.metric_for_best_model: {spec.name} has no validation metric {name!r}; "
                          f"choose auto, loss or one of {', '.join(spec.metrics)}")
    return metric


TASKS: dict[str, TaskSpec] = {
    "classification": TaskSpec(
        name="classification",
        clean=classification.clean,
        tokenize=classification.tokenize,
        stratify_column="labels",
        load_model=classification.load_model,
        collator=classification.collator,
        compute_metrics=classification.compute_metrics,
        evaluate=classification.evaluate,
        predict=classification.predict,
        pools=True,
        pairs=True,
        default_metric="f1_macro",
        metrics=CLASSIFICATION_METRICS,
    ),
    "multilabel": TaskSpec(
        name="multilabel",
        clean=multilabel.clean,
        tokenize=multilabel.tokenize,
        stratify_column=None,  # a label set per text: no single class to stratify on
        load_model=multilabel.load_model,
        collator=classification.collator,
        compute_metrics=multilabel.compute_metrics,
        evaluate=multilabel.evaluate,
        predict=multilabel.predict,
        pools=True,
        pairs=True,
        default_metric="f1_micro",
        metrics=("subset_accuracy", "hamming_loss", "f1_samples", *AVERAGED("micro", "macro")),
    ),
    "regression": TaskSpec(
        name="regression",
        clean=regression.clean,
        tokenize=regression.tokenize,
        stratify_column=None,
        load_model=regression.load_model,
        collator=classification.collator,
        compute_metrics=regression.compute_metrics,
        evaluate=regression.evaluate,
        predict=regression.predict,
        pools=True,
        pairs=True,
        default_metric="mse",
        metrics=("mse", "rmse", "mae", "r2", "pearson", "spearman"),
    ),
    "qa": TaskSpec(
        name="qa",
        clean=qa.clean,
        tokenize=qa.tokenize,
        stratify_column=None,
        load_model=qa.load_model,
        collator=qa.collator,
        compute_metrics=qa.compute_metrics,
        evaluate=qa.evaluate,
        predict=qa.predict,
        default_metric="f1",
        metrics=("exact_match", "f1"),
        input_fields=("question", "context"),
        head="question-answering",
        needs_offsets=True,
        logits_outputs=2,
    ),
    **{name: TaskSpec(
        name=name,
        clean=seq2seq.clean,
        tokenize=seq2seq.tokenize,
        stratify_column=None,
        load_model=seq2seq.load_model,
        collator=seq2seq.collator,
        compute_metrics=seq2seq.compute_metrics,
        evaluate=seq2seq.evaluate,
        predict=seq2seq.predict,
        default_metric=metric,
        metrics=("rouge1", "rouge2", "rougeL", "bleu", "chrf"),
        alternative_input="source",  # {"source": ...} records work too
        generates=True,
        head="generation",
    ) for name, metric in (("summarization", "rougeL"), ("translation", "bleu"))},
    "ner": TaskSpec(
        name="ner",
        clean=ner.clean,
        tokenize=ner.tokenize,
        stratify_column=None,  # example_id is the document; a sentence's tags are no single stratum
        load_model=ner.load_model,
        collator=ner.collator,
        compute_metrics=ner.compute_metrics,
        evaluate=ner.evaluate,
        predict=ner.predict,
        default_metric="f1",  # entity-level micro F1 (seqeval)
        metrics=("precision", "recall", "f1", "accuracy"),
        input_fields=("text",),
        alternative_input="tokens",  # pre-split words instead of a text
        head="token-classification",
        needs_offsets=True,
        split_words=True,
    ),
    "sft": TaskSpec(
        name="sft",
        clean=sft.clean,
        tokenize=sft.tokenize,
        stratify_column=None,
        load_model=sft.load_model,
        collator=sft.collator,
        compute_metrics=sft.compute_metrics,
        evaluate=sft.evaluate,
        predict=sft.predict,
        default_metric="loss",  # validation is the answer-token loss (cheap, no generation)
        metrics=(),
        input_fields=("text",),  # a plain text line is one user message
        alternative_input=("messages", "instruction"),
        head="causal-lm",
        prepare_tokenizer=sft.prepare_tokenizer,
    ),
}
