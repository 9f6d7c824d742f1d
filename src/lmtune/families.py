"""Model families: what differs between encoder, decoder-only and encoder-decoder checkpoints, in one place.

A task says what it needs from a model (its TaskSpec's `head`, `needs_offsets`, `split_words`); a checkpoint's family,
read from its config and tokenizer, says what it has. `check` compares the two before any heavy work and refuses an
impossible pair in one line; `load_tokenizer` and `load_model` apply each family's rules, so the tasks never branch
on model families:

- kind: encoder (BERT, RoBERTa, DeBERTa, ...: a masked-LM architecture), decoder (GPT-2, Llama, Qwen2, Mistral, Gemma,
  ...: a causal LM with no masked-LM form) or encoder-decoder (T5, mT5, BART, Marian: `config.is_encoder_decoder`).
  Read from transformers' own Auto mappings, so a family transformers adds later is classified without a list here.
- heads: a task's head exists for a family when transformers maps the family's model type to it.
- pad token: decoder-only checkpoints often ship none (GPT-2, Llama); the fallback is the eos token (what their
  model cards and TRL use), set on the tokenizer and on `config.pad_token_id`, and saved with both, so evaluate,
  `lmtune predict` and MLflow serving pad the same way. Padding stays on the right for training and scoring (positions
  start at 0 in every row; the sequence-classification heads of decoders read the last non-pad token either way);
  generation pads on the left (lmtune.tasks.causal).
- pre-split words (NER): byte-level BPE tokenizers (RoBERTa, GPT-2, BART, Qwen2) encode a word differently at the
  start of a text than after a space; `add_prefix_space` makes a pre-split word get the ids it has inside a sentence.
- slow tokenizers (Marian ships only a SentencePiece one): no character offsets, so tasks that map tokens back to
  words or characters (NER, QA) refuse them.
- weights load in fp32 whatever dtype the checkpoint was saved in: the optimizer's master weights must be fp32, and
  mixed precision is autocast on top (fine_tune.precision). A bf16 master copy loses most small updates to rounding.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto import modeling_auto

from lmtune.errors import LmtuneError, ParamsError

if TYPE_CHECKING:
    from lmtune.tasks import TaskSpec

logger = logging.getLogger(__name__)

Kind = Literal["encoder", "decoder", "encoder-decoder"]
Head = Literal["sequence-classification", "token-classification", "question-answering", "generation", "causal-lm"]

HEADS: dict[str, dict[str, str]] = {  # task head -> {model_type: class name}, transformers' own tables
    "sequence-classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "token-classification": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    "question-answering": modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
}
CAUSAL_LM = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
MASKED_LM = modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
SEQ2SEQ_LM = modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
WORKS_INSTEAD = {  # what a refused user can pick, by head
    "sequence-classification": "an encoder (BERT, RoBERTa, DeBERTa-v2, ...), a decoder-only LLM (GPT-2, Llama, Qwen2) "
                               "or T5/BART",
    "token-classification": "an encoder with a fast tokenizer (BERT, RoBERTa, XLM-RoBERTa, DeBERTa-v2, ...)",
    "question-answering": "an encoder whose inputs start with [CLS] or <s> (BERT, RoBERTa, XLM-RoBERTa, DeBERTa-v2, "
                          "ELECTRA, ...) or BART",
    "generation": "an encoder-decoder (T5, mT5, BART, Marian), a decoder-only LLM (GPT-2, Llama, Qwen2), or an encoder "
                  "that can be warm-started as a decoder",
    "causal-lm": "a decoder-only LLM (Qwen/Qwen2.5-0.5B-Instruct, meta-llama/Llama-3.2-1B-Instruct, gpt2, ...)",
}

LOAD_FIX = ("point model.name_or_path (or lmtune predict's --model) at a directory with config.json, the weights and "
            "the tokenizer files, or at a Hub id this machine can reach")


def kind_of(config: PretrainedConfig) -> Kind:
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if config.model_type in CAUSAL_LM and config.model_type not in MASKED_LM:
        return "decoder"
    return "encoder"


def is_decoder_only(config: PretrainedConfig) -> bool:
    return kind_of(config) == "decoder"


def generates_causally(spec: TaskSpec, config: PretrainedConfig) -> bool:
    """A generation task on a decoder-only model: prompt -> completion on the causal LM (lmtune.causal), not the
    encoder-decoder path."""
    return spec.head == "generation" and kind_of(config) == "decoder"


def warm_startable() -> list[str]:
    """Encoder model types that transformers can also build as a decoder with cross-attention (bert2bert)."""
    return sorted(t for t in MASKED_LM if t in CAUSAL_LM and t not in SEQ2SEQ_LM)


@dataclass(frozen=True)
class Family:
    model_type: str
    kind: Kind
    fast_tokenizer: bool  # character offsets and word ids (NER, QA need them)
    byte_level: bool  # byte-level BPE: a pre-split word needs add_prefix_space
    leading_special: bool  # every input starts with a special token ([CLS], <s>): a "no answer" position for QA

    def refusal(self, spec: TaskSpec) -> str | None:
        """Why this family cannot do `spec`'s task, or None when it can."""
        what = f"{self.model_type} ({self.kind})"
        if spec.head == "causal-lm":
            return None if self.kind == "decoder" else \
                f"{what} is not a decoder-only causal LM, which {spec.name} trains"
        if spec.head == "generation":
            if self.kind == "encoder" and self.model_type not in CAUSAL_LM:
                return (f"{what} cannot be warm-started as a decoder for {spec.name}: transformers has no causal-LM "
                        f"form of it; encoders that can: {', '.join(warm_startable())}")
            return None
        if self.model_type not in HEADS[spec.head]:
            return f"{what} has no {spec.head} head in transformers, which {spec.name} needs"
        if spec.needs_offsets and not self.fast_tokenizer:
            return (f"{what} ships only a slow tokenizer, without the character offsets {spec.name} needs to map "
                    f"tokens back to words")
        if spec.head == "question-answering" and self.kind == "decoder":
            return (f"{what} reads left to right, so no position sees the whole question and context to stand for "
                    f"'no answer in this window' (the [CLS] target of extractive QA)")
        if spec.head == "question-answering" and not self.leading_special:
            return (f"{what} starts its inputs with a question token, not a [CLS]/<s> token, so extractive QA has "
                    f"no position for 'no answer in this window'")
        return None


def family(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> Family:
    first = tokenizer("a")["input_ids"][:1]  # what every input starts with
    return Family(model_type=config.model_type, kind=kind_of(config), fast_tokenizer=tokenizer.is_fast,
                  byte_level=is_byte_level(tokenizer),
                  leading_special=bool(first) and first[0] in tokenizer.all_special_ids)


def is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for byte-level BPE (GPT-2, RoBERTa, BART, Qwen2): its pre-tokenizer (alone or in a sequence) is ByteLevel."""
    if not tokenizer.is_fast:
        return False
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    return pre is not None and "ByteLevel" in repr(pre)


def check(spec: TaskSpec, name_or_path: str, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> Family:
    """The checkpoint's family; a ParamsError (one line, exit 2) when it cannot do the task."""
    fam = family(config, tokenizer)
    reason = fam.refusal(spec)
    if reason:
        raise ParamsError(f"model.name_or_path: {name_or_path!r} cannot be used for task {spec.name}: {reason}. "
                          f"Use {WORKS_INSTEAD[spec.head]}, or another task")
    return fam


def set_padding(tokenizer: PreTrainedTokenizerBase, name_or_path: str) -> None:
    """A tokenizer without a pad token pads with its eos token (decoder-only LLMs); padding on the right."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ParamsError(f"model.name_or_path: {name_or_path!r}: the tokenizer has neither a pad nor an eos token "
                              f"to pad batches with; add a pad token to the checkpoint's tokenizer")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.init_kwargs["padding_side"] = "right"  # saved in tokenizer_config.json (Llama's class default is left)


def load_model(auto_class: Any, path: str, revision: str, tokenizer: PreTrainedTokenizerBase | None = None,
               **kwargs: Any) -> Any:
    """`auto_class.from_pretrained` with fp32 weights (any saved dtype) and, when `tokenizer` is given, the
    tokenizer's pad id in the config (decoder heads find each row's last token by it). A missing directory, or one
    without config.json or weights, is refused in one line (LmtuneError, exit code 2), not an OSError traceback."""
    from lmtune.models import check_source, first_line  # lmtune.models imports this module

    check_source(path, what="model", fix=LOAD_FIX, tokenizer=False)  # a model alone loads without a tokenizer
    if kwargs.get("attn_implementation") == "sdpa" and not supports_sdpa(auto_class, path, revision):
        kwargs["attn_implementation"] = "eager"  # DeBERTa-v2 and others have no SDPA attention in transformers
    report = _HeldLoadReport()
    loading_logger = logging.getLogger("transformers.modeling_utils")
    loading_logger.addFilter(report)
    try:
        model, info = auto_class.from_pretrained(path, revision=revision, dtype=torch.float32,
                                                 output_loading_info=True, **kwargs)
    except OSError as err:  # a Hub id this machine cannot fetch, a truncated weights file, ...
        raise LmtuneError(f"model {path!r}: cannot load its weights ({first_line(err)}); {LOAD_FIX}") from None
    except RuntimeError:  # transformers refers to its report ("look at the above report"): show it after all
        report.release(loading_logger)
        raise
    finally:
        loading_logger.removeFilter(report)
    log_loading_info(path, info)
    if tokenizer is not None:
        pad_token_ids(model.config, tokenizer, getattr(model, "generation_config", None))
    return model


class _HeldLoadReport(logging.Filter):
    """Holds back transformers' LOAD REPORT table, a warning it logs whenever a checkpoint lacks some of the model's
    weights: every fine-tune of a bare checkpoint, whose task head is new by design. `log_loading_info` says the
    same in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.records.append(record)
            return False
        return True

    def release(self, target: logging.Logger) -> None:
        target.removeFilter(self)
        for record in self.records:
            target.handle(record)


def log_loading_info(path: str, info: dict[str, Any]) -> None:
    """One line per kind of difference between the checkpoint and the model built from it."""
    def names(keys: Any) -> str:
        keys = sorted(k if isinstance(k, str) else k[0] for k in keys)
        return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

    if info.get("missing_keys"):
        logger.info("new weights, randomly initialised (a new task head; fine-tune trains them): %s",
                    names(info["missing_keys"]))
    if info.get("mismatched_keys"):
        logger.info("weights re-initialised because their shape differs from %s (e.g. another number of labels): "
                    "%s", path, names(info["mismatched_keys"]))
    if info.get("unexpected_keys"):
        logger.info("weights of %s this model does not use (e.g. a pretraining head): %s", path,
                    names(info["unexpected_keys"]))


def supports_sdpa(auto_class: Any, path: str, revision: str) -> bool:
    """Whether the class `auto_class` builds for this checkpoint has torch SDPA attention."""
    model_class = auto_class._model_mapping.get(type(load_config(path, revision)), None)
    return model_class is None or bool(getattr(model_class, "_supports_sdpa", False))


def pad_token_ids(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase,
                  generation_config: Any = None) -> None:
    """The tokenizer's pad id in a config that has none (and in the generation config, which the Trainer would
    otherwise align itself, with a warning)."""
    for target in (config, generation_config):
        if target is not None and getattr(target, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
            target.pad_token_id = tokenizer.pad_token_id


def load_config(path: str, revision: str) -> PretrainedConfig:
    return AutoConfig.from_pretrained(path, revision=revision)
