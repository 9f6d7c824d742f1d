"""Typed params: one frozen dataclass per params.yaml section, validated once, all problems reported together.

Fields have no defaults: params.yaml is the only source of values, so a missing or misspelled key is an
error rather than a silent fallback. `load_params` is the only reader of params.yaml.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from lmtune.errors import ParamsError


NO_TARGET = "data/no-target"  # data.target_path when there is no target file: a placeholder file shipped with the project,
# because dvc.yaml lists data.target_path as a dependency and DVC refuses an empty path there ("" is accepted outside DVC)


@dataclass(frozen=True)
class DataParams:
    path: str  # the input file the clean stage reads; dvc.yaml passes it (${data.path}) and tracks it as a dependency
    target_path: str  # summarization/translation with clean.input_format: text: the line-aligned target file (line i
    # is the target of the input's line i), also a dvc.yaml dependency; data/no-target (or "") = none

    @property
    def target(self) -> Path | None:
        """The target file, or None when there is none."""
        return None if self.target_path in ("", NO_TARGET) else Path(self.target_path)


@dataclass(frozen=True)
class TaskParams:
    name: str  # key in lmtune.tasks.TASKS
    text_column: str  # input column holding the text
    text_pair_column: str  # input column holding a pair's second text (classification, multilabel, regression); "" = single text
    label_column: str  # input column holding the label (name or number)
    split_column: str  # optional column with train/validation/test per row; "" splits by fractions
    label_names: list[str]  # classification, multilabel: a name per label, in the labels' sorted order (numeric when
    # every label is a number); used in reports, plots, predictions and the model; the data keeps the labels. [] = none


@dataclass(frozen=True)
class ModelParams:
    name_or_path: str  # Hub id, local directory, or "packaged:all-MiniLM-L6-v2"
    revision: str  # Hub revision (branch, tag or commit); ignored for local directories


@dataclass(frozen=True)
class CleanParams:
    input_format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll", "squad", "text"]
    encoding: str  # text encoding of CSV/TSV/JSONL input, e.g. utf-8, latin-1, gbk
    lowercase: bool
    min_chars: int  # texts shorter than this after normalisation are dropped
    cross_split_duplicates: Literal["drop_train", "keep"]  # with task.split_column: a train text also in validation
    # or test loses its train copy (drop_train) or keeps it (keep); validation and test rows are never dropped


@dataclass(frozen=True)
class NerParams:
    conll_tag_column: int  # which whitespace-separated CoNLL column holds the tag; -1 = the last
    label_all_tokens: bool  # true: every sub-word of a word carries its tag; false: the first (the rest are ignored)


@dataclass(frozen=True)
class MultilabelParams:
    label_separator: str  # separates labels inside one CSV/TSV cell, e.g. "|"; JSONL may hold lists instead
    threshold: float  # sigmoid probability at or above which a label is predicted


@dataclass(frozen=True)
class QaParams:
    question_column: str  # input column (or SQuAD key) with the question
    context_column: str  # input column (or SQuAD key) with the passage the answer is found in
    answers_column: str  # {"text": [...], "answer_start": [...]} per row (SQuAD's layout)
    stride: int  # tokens shared by neighbouring windows of a long context
    max_answer_length: int  # longest answer span considered, in tokens
    n_best: int  # start/end candidates per window scanned in post-processing


@dataclass(frozen=True)
class Seq2SeqParams:
    source_prefix: str  # prepended to every source, e.g. "summarize: " for T5
    max_target_length: int  # target tokens kept for training
    num_beams: int  # beam search width at validation, test and prediction time
    max_new_tokens: int  # generated tokens at most
    target_language: str  # "auto" (detect the references' script) or a code (en, de, zh, ja, ru): BLEU/ROUGE tokenizers


@dataclass(frozen=True)
class SftParams:
    instruction_field: str  # Alpaca records: the instruction
    input_field: str  # Alpaca: optional extra input, appended to the instruction after a blank line
    output_field: str  # Alpaca: the answer
    system_field: str  # Alpaca: optional system prompt
    history_field: str  # Alpaca: optional earlier [question, answer] pairs
    messages_field: str  # chat records: [{role, content}] (OpenAI form)
    conversations_field: str  # ShareGPT records: [{from, value}]
    fallback_template: Literal["alpaca", "chatml"]  # chat template for a model whose tokenizer has none
    train_on_prompt: bool  # false: loss on the assistant turns only
    packing: bool  # several conversations per row, attention and loss kept apart (no padding)
    num_beams: int  # generation at test and prediction time
    max_new_tokens: int  # longest generated answer, in tokens
    temperature: float  # 0: greedy (or beam search); > 0: sampling at this temperature
    top_p: float  # nucleus sampling mass when temperature > 0


@dataclass(frozen=True)
class TokenizeParams:
    max_length: int  # longer texts are truncated (and counted)
    batch_size: int  # rows per tokenizer call


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float  # share of the examples held out for validation (checkpoint selection, early stopping)
    test_fraction: float  # share of the examples held out for the test metrics (a split column overrides both)
    seed: int  # the random split, stratified by label where the task has one


@dataclass(frozen=True)
class FineTuneParams:
    epochs: float
    max_steps: int  # > 0 overrides epochs
    batch_size: int  # per device
    eval_batch_size: int  # per device, for validation
    learning_rate: float
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"]
    warmup_ratio: float
    weight_decay: float  # decoupled (AdamW) or L2 weight decay; biases and LayerNorm weights excluded
    optimizer: Literal["adamw", "adagrad", "adadelta", "sgd", "adafactor"]  # adamw: torch's fused AdamW
    momentum: float  # SGD's momentum (0 = plain SGD); other optimizers refuse a nonzero value
    grad_accum_steps: int
    max_grad_norm: float  # clip the gradient norm to this (0 = no clipping)
    seed: int  # model head init, data order, dropout
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    attention: Literal["auto", "eager", "sdpa"]  # attention kernels; auto picks the faster for device and precision
    dropout: float  # -1 keeps the model's dropout; 0 <= p < 1 sets every dropout layer to p
    pooling: Literal["auto", "cls", "mean"]  # what a text-level head reads: first token, mean of tokens, or auto
    freeze_embeddings: bool
    freeze_layers: int  # freeze the first N encoder layers
    train_head_only: bool
    lora_rank: int  # > 0: train LoRA adapters of this rank (peft) instead of all weights; 0 = full fine-tuning
    lora_alpha: int  # LoRA scaling numerator (scale = alpha / rank)
    lora_dropout: float  # dropout on the LoRA adapters' input
    lora_target_modules: str  # comma-separated module names to adapt, e.g. "query,value"; all-linear: every linear
    gradient_checkpointing: bool  # recompute activations in the backward pass: less memory, ~30% slower
    quantization: Literal["none", "4bit"]  # 4bit: QLoRA (bitsandbytes NF4 base weights + LoRA), CUDA only
    eval_strategy: Literal["epoch", "steps"]
    eval_steps: int  # used when eval_strategy is "steps"
    logging_steps: int
    early_stopping_patience: int  # evaluations without improvement before stopping; 0 disables
    metric_for_best_model: str  # a validation metric name (f1_macro, accuracy, loss, ...); auto = the task's default
    group_by_length: bool
    dynamic_padding: bool
    torch_compile: bool
    num_threads: int  # torch intra-op threads; 0 keeps torch's default
    num_processes: int  # > 1: the stage relaunches itself under torchrun (DDP) with this many processes
    deepspeed: str  # path to a DeepSpeed JSON config passed to Trainer; "" = off
    save_total_limit: int  # checkpoints kept for resuming
    resume: bool  # resume from the last checkpoint of an interrupted run with the same inputs


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int  # test rows per forward pass
    fail_on_leakage: bool  # fail when a test text also appears in train


@dataclass(frozen=True)
class TrackingParams:
    experiment: str
    registered_model: str  # registered model name; "{task}" is replaced by task.name; "" skips registration
    log_model: bool  # log the fine-tuned model (once per run) as an MLflow pyfunc artifact
    required: bool  # false: an unreachable tracking server only warns


@dataclass(frozen=True)
class Params:
    data: DataParams
    task: TaskParams
    model: ModelParams
    clean: CleanParams
    ner: NerParams
    multilabel: MultilabelParams
    qa: QaParams
    seq2seq: Seq2SeqParams
    sft: SftParams
    tokenize: TokenizeParams
    split: SplitParams
    fine_tune: FineTuneParams
    evaluate: EvaluateParams
    tracking: TrackingParams


MOVED = {"seq2seq.target_file": "data.target_path"}  # old key -> its new home, named in the error

LABEL_NAME_TASKS = ("classification", "multilabel")  # tasks whose labels task.label_names may name

# Range and cross-field rules, each (section, check, message). Messages say how to fix the value.
_RULES: list[tuple[str, typing.Callable[[Any], bool], str]] = [
    ("data", lambda s: s.path.strip() != "", "path must name the input file, e.g. data/demo/reviews.csv"),
    ("tokenize", lambda s: s.max_length >= 8, "max_length must be >= 8"),
    ("tokenize", lambda s: s.batch_size >= 1, "batch_size must be >= 1"),
    ("split", lambda s: 0 <= s.val_fraction < 1 and 0 < s.test_fraction < 1, "fractions must lie in [0, 1)"),
    ("split", lambda s: s.val_fraction + s.test_fraction < 1, "val_fraction + test_fraction must be < 1"),
    ("clean", lambda s: s.min_chars >= 1, "min_chars must be >= 1"),
    ("fine_tune", lambda s: s.epochs > 0 or s.max_steps > 0, "set epochs > 0 or max_steps > 0"),
    ("fine_tune", lambda s: s.batch_size >= 1 and s.eval_batch_size >= 1, "batch sizes must be >= 1"),
    ("fine_tune", lambda s: 0 < s.learning_rate < 1 or s.optimizer == "adadelta" and 0 < s.learning_rate <= 1,
     "learning_rate must lie in (0, 1) (adadelta: (0, 1], 1.0 being torch's default for it)"),
    ("fine_tune", lambda s: 0 <= s.momentum < 1, "momentum must lie in [0, 1)"),
    ("fine_tune", lambda s: s.momentum == 0 or s.optimizer == "sgd",
     "momentum applies to optimizer sgd only; set momentum: 0.0 or optimizer: sgd"),
    ("task", lambda s: all(isinstance(n, str) and n.strip() for n in s.label_names),
     "label_names must be non-empty strings"),
    ("task", lambda s: len(set(s.label_names)) == len(s.label_names), "label_names must not repeat a name"),
    ("fine_tune", lambda s: 0 <= s.warmup_ratio < 1, "warmup_ratio must lie in [0, 1)"),
    ("fine_tune", lambda s: s.weight_decay >= 0, "weight_decay must be >= 0"),
    ("fine_tune", lambda s: s.grad_accum_steps >= 1, "grad_accum_steps must be >= 1"),
    ("fine_tune", lambda s: s.freeze_layers >= 0, "freeze_layers must be >= 0"),
    ("fine_tune", lambda s: s.dropout == -1 or 0 <= s.dropout < 1, "dropout must be -1 (the model's) or lie in [0, 1)"),
    ("fine_tune", lambda s: s.lora_rank >= 0 and s.lora_alpha >= 1, "lora_rank must be >= 0 and lora_alpha >= 1"),
    ("fine_tune", lambda s: 0 <= s.lora_dropout < 1, "lora_dropout must lie in [0, 1)"),
    ("fine_tune", lambda s: s.lora_rank == 0 or bool(s.lora_target_modules.strip(", ")),
     "lora_target_modules must name at least one module when lora_rank > 0"),
    ("fine_tune", lambda s: s.eval_steps >= 1 and s.logging_steps >= 1, "eval_steps and logging_steps must be >= 1"),
    ("fine_tune", lambda s: s.early_stopping_patience >= 0, "early_stopping_patience must be >= 0 (0 disables)"),
    ("fine_tune", lambda s: s.num_threads >= 0, "num_threads must be >= 0 (0 keeps torch's default)"),
    ("fine_tune", lambda s: s.num_processes >= 1, "num_processes must be >= 1"),
    ("fine_tune", lambda s: s.save_total_limit >= 1, "save_total_limit must be >= 1"),
    ("evaluate", lambda s: s.batch_size >= 1, "batch_size must be >= 1"),
    ("multilabel", lambda s: 0 < s.threshold < 1, "threshold must lie in (0, 1)"),
    ("multilabel", lambda s: s.label_separator != "", "label_separator must not be empty"),
    ("qa", lambda s: s.stride >= 0 and s.max_answer_length >= 1 and s.n_best >= 1,
     "stride must be >= 0, max_answer_length and n_best >= 1"),
    ("sft", lambda s: s.num_beams >= 1 and s.max_new_tokens >= 1 and s.temperature >= 0 and 0 < s.top_p <= 1,
     "num_beams and max_new_tokens must be >= 1, temperature >= 0, top_p in (0, 1]"),
    ("fine_tune", lambda s: s.quantization == "none" or s.lora_rank > 0,
     "quantization: 4bit trains LoRA adapters on frozen 4-bit weights; set lora_rank > 0"),
    ("seq2seq", lambda s: re.fullmatch(r"auto|[A-Za-z]{2,3}([-_]\w+)?", s.target_language.strip()) is not None,
     "target_language must be auto or a language code such as en, de, zh, ja, ko, th, ru (zh-Hant works too)"),
    ("seq2seq", lambda s: s.num_beams >= 1 and s.max_new_tokens >= 1 and s.max_target_length >= 1,
     "num_beams, max_new_tokens and max_target_length must be >= 1"),
]


# A decimal number in exponent or plain form: 3e-05, 1E-4, 5.0e-5, -0.5, .5. YAML 1.1 (PyYAML) reads exponents
# without a dot (3e-05, which `dvc exp run -S fine_tune.learning_rate=3e-5` writes) as text, so float fields parse
# such text here. Nothing looser: no nan/inf, hex, underscores or surrounding words.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _float_text(value: Any) -> float | None:
    """The float a YAML text such as "3e-05" spells, or None when it is not strictly a decimal number."""
    return float(value) if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()) else None


def _type_problem(value: Any, hint: Any) -> str | None:
    """Return a description of why `value` does not fit the annotation `hint`, or None."""
    if typing.get_origin(hint) is list:  # list[str]: a YAML list of that item type
        item = typing.get_args(hint)[0]
        ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
        quote = " (quote items YAML reads as numbers or booleans: \"1\", \"yes\")" if item is str else ""
        return None if ok else f"must be a list of {item.__name__}, got {value!r}{quote}"
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}, got {value!r}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) or _float_text(value) is not None
        if not ok and isinstance(value, str):
            return f"must be float, got str {value!r} (write a number such as 3e-5 or 0.001)"
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    return None if ok else f"must be {hint.__name__}, got {type(value).__name__} {value!r}"


def _build_section(name: str, cls: type, raw: Any, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{name}: must be a mapping of keys to values, got {type(raw).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if f"{name}.{key}" in MOVED:
            problems.append(f"{name}.{key}: moved to {MOVED[f'{name}.{key}']}; set it there (and remove this key)")
            continue
        if key not in hints:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(fields)})"
            problems.append(f"{name}.{key}: unknown key{hint}")
            continue
        problem = _type_problem(value, hints[key])
        if problem:
            problems.append(f"{name}.{key}: {problem}")
        elif hints[key] is float:
            values[key] = float(value) if not isinstance(value, str) else _float_text(value)
        else:
            values[key] = value
    missing = [f for f in fields if f not in raw]
    problems.extend(f"{name}.{key}: missing key" for key in missing)
    return cls(**values) if len(values) == len(fields) else None


def params_from_dict(raw: Any, source: str = "params.yaml") -> Params:
    """Build and validate `Params` from a parsed YAML mapping; every problem is reported in one ParamsError."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    problems: list[str] = []
    hints = typing.get_type_hints(Params)
    sections = list(hints)
    built = {}
    for key in raw:
        if key not in sections:
            close = difflib.get_close_matches(str(key), sections, n=1)
            problems.append(f"{key}: unknown section" + (f" (did you mean '{close[0]}'?)" if close else ""))
    for name in sections:
        if name not in raw:
            problems.append(f"{name}: missing section")
            continue
        built[name] = _build_section(name, hints[name], raw[name], problems)
    for name, check, message in _RULES:
        if built.get(name) is not None and not check(built[name]):
            problems.append(f"{name}: {message}")
    if all(built.get(k) is not None for k in ("task", "qa", "tokenize")) and built["task"].name == "qa" and \
            built["qa"].stride >= built["tokenize"].max_length // 2:
        problems.append("qa.stride: must be less than half of tokenize.max_length, or windows barely advance")
    if built.get("task") is not None:
        from lmtune.tasks import TASKS  # local import: tasks import heavy libraries

        if built["task"].name not in TASKS:
            problems.append(f"task.name: unknown task {built['task'].name!r}; choose one of {', '.join(TASKS)}")
        elif built["task"].text_pair_column and not TASKS[built["task"].name].pairs:
            problems.append(f"task.text_pair_column: {built['task'].name} takes one text; set it to \"\" (sentence "
                            f"pairs work with classification, multilabel and regression)")
        elif built["task"].text_pair_column and built["task"].text_pair_column == built["task"].text_column:
            problems.append("task.text_pair_column: must differ from task.text_column (or be \"\" for one text)")
        if built.get("data") is not None and built["data"].target is not None and \
                built["task"].name not in ("summarization", "translation"):
            problems.append(f"data.target_path: only summarization and translation read a separate target file; "
                            f"set it to {NO_TARGET} (the placeholder for none)")
        if built["task"].label_names and built["task"].name not in LABEL_NAME_TASKS:
            problems.append(f"task.label_names: {built['task'].name} has no class labels to name; set it to [] "
                            f"(label names work with {' and '.join(LABEL_NAME_TASKS)})")
        task, ft, model = built["task"].name, built.get("fine_tune"), built.get("model")
        if task in TASKS and ft is not None:
            from lmtune.tasks import best_metric

            try:
                best_metric(TASKS[task], ft.metric_for_best_model)
            except ParamsError as err:
                problems.append(str(err))
            if ft.quantization != "none" and task != "sft":
                problems.append("fine_tune.quantization: 4bit (QLoRA) applies to task sft (decoder-only LLMs); set "
                                "it to none")
        if task == "sft" and model is not None and model.name_or_path.startswith("packaged:"):
            problems.append(f"model.name_or_path: task sft fine-tunes a decoder-only causal LM, and "
                            f"{model.name_or_path} is an encoder; set it to one, e.g. Qwen/Qwen2.5-0.5B-Instruct "
                            f"or a local directory")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ParamsError(f"{source} has {len(problems)} problem(s); fix them and run again:\n{lines}")
    return Params(**built)


def _read_yaml(path: Path, missing: str) -> Any:
    """Parse a YAML file; a missing file or bad syntax is a ParamsError naming the file (`missing`: the fix)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: {missing}") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err}); fix the syntax") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    raw = _read_yaml(path, "params file not found; run from the project root or pass --params")
    return params_from_dict(raw, source=str(path))


def read_preset(path: str | Path) -> dict[str, Any]:
    """A preset: a YAML mapping of "section.key" to value (see presets/), read with specific errors."""
    path = Path(path)
    raw = _read_yaml(path, "preset file not found; see presets/ for the shipped ones")
    if not isinstance(raw, dict) or not all(isinstance(k, str) and "." in k for k in raw):
        raise ParamsError(f"{path}: a preset is a mapping of section.key: value lines, e.g. fine_tune.epochs: 3")
    spaced = [k for k, v in raw.items() if any(c.isspace() for c in str(v))]
    if spaced:
        raise ParamsError(f"{path}: {spaced[0]}: values with spaces cannot be passed as -S arguments; set it in "
                          f"params.yaml instead")
    return raw


def apply_preset(params: Params, overrides: dict[str, Any], source: str) -> Params:
    """`params` with the preset's "section.key" values, validated like params.yaml (unknown keys, types, ranges)."""
    raw = dataclasses.asdict(params)
    problems = []
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in raw or key not in raw[section]:
            problems.append(f"{dotted}: not a params key")
        else:
            raw[section][key] = value
    if problems:
        raise ParamsError(f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return params_from_dict(raw, source=f"params with {source}")


def flatten(params: Params) -> dict[str, Any]:
    """Flatten to {"section.key": value}, e.g. for MLflow params."""
    return {f"{section}.{key}": value for section, values in dataclasses.asdict(params).items()
            for key, value in values.items()}


TASK_SECTIONS = {"ner": "ner", "multilabel": "multilabel", "qa": "qa", "summarization": "seq2seq",
                 "translation": "seq2seq", "sft": "sft"}  # the section each task reads besides the shared ones


def params_line(params: Params, *sections: str) -> str:
    """One readable log line of the params a stage uses: `section.key=value` as `dvc exp run -S` takes them, for
    `sections` (a section name, or one "section.key") plus the task's own section (TASK_SECTIONS); unset values
    (empty strings and lists) are left out."""
    own = TASK_SECTIONS.get(params.task.name)
    parts = []
    for section in (*sections, *([own] if own and own not in sections else [])):
        section, _, only = section.partition(".")
        for key, value in dataclasses.asdict(getattr(params, section)).items():
            if value in ("", [], ()) or only and key != only:
                continue
            text = str(value).lower() if isinstance(value, bool) else \
                ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            parts.append(f"{section}.{key}={text}")
    return " ".join(parts)
