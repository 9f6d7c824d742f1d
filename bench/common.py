"""What the benchmarks share: params from params.yaml plus overrides, the five stages in a temporary directory with a
throwaway MLflow store, the Trainer's wall-clock time, and machine facts for the results file."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import mlflow
import torch
import transformers
import yaml

from lmtune.cli import setup_logging
from lmtune.config import Params, load_params, params_from_dict
from stages import clean, evaluate, fine_tune, split, tokenize

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT / "../shared/datasets").resolve()
MODEL = "packaged:all-MiniLM-L6-v2"


def add_params_args(p: argparse.ArgumentParser, out: Path) -> None:
    """--params, --set KEY=VALUE (repeatable) and --out, the same in every benchmark."""
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="base params file (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param after the benchmark settings, e.g. fine_tune.precision=fp32 (repeatable)")
    p.add_argument("--out", type=Path, default=out, help="JSON results file (default: %(default)s)")


def parse_value(text: str) -> object:
    """A --set value as YAML (true, 3, fp32), with 2e-5-style floats that YAML 1.1 leaves as strings."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def bench_params(args: argparse.Namespace, settings: dict[str, dict[str, Any]]) -> Params:
    """params.yaml (args.params) with the benchmark's `settings` ({section: {key: value}}), then the --set overrides,
    validated by lmtune.config like any params file. MLflow model logging is off: benchmarks measure training."""
    raw = dataclasses.asdict(load_params(args.params))
    raw["model"]["name_or_path"] = MODEL
    raw["tracking"] |= {"log_model": False, "registered_model": ""}
    for section, values in settings.items():
        raw[section] |= values
    for item in args.set:
        key, sep, value = item.partition("=")
        section, _, field = key.partition(".")
        if not sep or not field:
            sys.exit(f"[bench] --set {item!r}: expected SECTION.KEY=VALUE, e.g. fine_tune.precision=fp32")
        raw.setdefault(section, {})[field] = parse_value(value)
    return params_from_dict(raw, source=f"{args.params} with benchmark settings")


def prepare() -> None:
    """Offline, quiet, and lmtune's logging, as the stages have it."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_logging()


@contextlib.contextmanager
def timed_trainer_train() -> Iterator[list[float]]:
    """Wall-clock seconds of each Trainer.train() call, measured as the baseline does (perf_counter around it)."""
    original, seconds = transformers.Trainer.train, []

    def train(self, *a, **kw):
        start = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            seconds.append(time.perf_counter() - start)

    with mock.patch.object(transformers.Trainer, "train", train):
        yield seconds


def run_pipeline(params: Params, input_path: Path, work: Path) -> dict[str, Any]:
    """clean -> tokenize -> split -> fine-tune -> evaluate on `input_path` under `work`, as `dvc repro` runs them,
    with a throwaway MLflow store in `work`. Returns each stage's summary and the timings."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment(params.tracking.experiment, artifact_location=(work / "mlartifacts").as_uri())
    start = time.perf_counter()
    out: dict[str, Any] = {"clean": clean.run(params, input_path, work / "interim"),
                           "tokenize": tokenize.run(params, work / "interim", work / "tokenized"),
                           "split": split.run(params, work / "tokenized", work / "splits")}
    with timed_trainer_train() as train_seconds:
        out["fine_tune"] = fine_tune.run(params, work / "splits", work / "model", work / "reports",
                                         work / "checkpoints")
    evaluate_start = time.perf_counter()
    out["metrics"] = evaluate.run(params, work / "splits", work / "model", work / "reports")
    out |= {"train_seconds": round(train_seconds[-1], 2),
            "evaluate_seconds": round(time.perf_counter() - evaluate_start, 2),
            "wall_seconds": round(time.perf_counter() - start, 1)}
    return out


def machine_info() -> dict:
    """CPU model, core counts and library versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "gpu": gpu,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0]}
