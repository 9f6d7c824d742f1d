"""NER benchmark on WNUT-17 (emerging entities): the project's stages end to end with the packaged model.

    flock /tmp/lmtune_bench.lock python -m bench.ner [--epochs 5] [--lr 5e-5] [--max-train 0]

Reads ../shared/datasets/wnut17 in place (wnut17train.conll -> train, emerging.dev.conll -> validation,
emerging.test.annotated -> test), writes them as one temporary JSONL with a split column, then runs clean ->
tokenize -> split -> fine_tune -> evaluate in a temporary directory. Prints entity precision/recall/F1 (seqeval,
micro) overall and per type, word accuracy, train samples/s and wall time, and writes them with every setting to
reports/bench/ner.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from bench.speed import machine_info, parse_value, timed_trainer_train
from lmtune import io
from lmtune.cli import run_stage, setup_logging
from lmtune.config import Params, load_params, params_from_dict
from lmtune.tasks import ner
from stages import clean, evaluate, fine_tune, split, tokenize

ROOT = Path(__file__).resolve().parents[1]
MODEL = "packaged:all-MiniLM-L6-v2"
FILES = {"train": "wnut17train.conll", "validation": "emerging.dev.conll", "test": "emerging.test.annotated"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=(ROOT / "../shared/datasets/wnut17").resolve(),
                   help="directory with the three WNUT-17 CoNLL files (default: %(default)s)")
    for name, kind, default, help_ in (
            ("epochs", float, 5.0, "passes over the train split"), ("lr", float, 5e-5, "peak learning rate"),
            ("batch-size", int, 16, "train batch size"), ("max-length", int, 128, "tokens per sentence"),
            ("seed", int, 42, "model head init, data order"), ("max-train", int, 0, "train sentences; 0 = all")):
        p.add_argument(f"--{name}", type=kind, default=default, help=f"{help_} (default: %(default)s)")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="base params file (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param after the benchmark settings, e.g. fine_tune.precision=fp32 (repeatable)")
    p.add_argument("--out", type=Path, default=ROOT / "reports/bench/ner.json", help="JSON results file")
    return p.parse_args(argv)


def bench_params(args: argparse.Namespace) -> Params:
    """params.yaml with the benchmark's settings and --set overrides, validated by lmtune.config."""
    raw = dataclasses.asdict(load_params(args.params))
    raw["task"] |= {"name": "ner", "text_column": "tokens", "label_column": "tags", "split_column": "split"}
    raw["model"]["name_or_path"] = MODEL
    raw["clean"] |= {"input_format": "jsonl", "encoding": "utf-8", "lowercase": False}
    raw["ner"] |= {"conll_tag_column": -1, "label_all_tokens": False}
    raw["tokenize"]["max_length"] = args.max_length
    raw["fine_tune"] |= {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size,
                         "learning_rate": args.lr, "seed": args.seed}
    raw["tracking"] |= {"log_model": False, "registered_model": ""}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        raw.setdefault(section, {})[field] = parse_value(value)
    return params_from_dict(raw, source=f"{args.params} with benchmark settings")


def write_input(args: argparse.Namespace, params: Params, path: Path) -> dict[str, int]:
    """The three CoNLL files (parsed by the task's own reader) as one JSONL file with a split column."""
    counts = {}
    with open(path, "w", encoding="utf-8") as out:
        for name, file in FILES.items():
            frame = ner.read_conll(args.data_dir / file, params)
            if name == "train" and args.max_train:
                frame = frame.head(args.max_train)
            counts[name] = len(frame)
            for tokens, tags in zip(frame["tokens"], frame["tags"]):
                out.write(json.dumps({"tokens": tokens, "tags": tags, "split": name}, ensure_ascii=False) + "\n")
    return counts


def run(params: Params, args: argparse.Namespace, work: Path) -> dict:
    sentences = write_input(args, params, work / "input.jsonl")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"  # throwaway store, artifacts in work/
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment(params.tracking.experiment, artifact_location=(work / "mlartifacts").as_uri())
    start = time.perf_counter()
    cleaned = clean.run(params, work / "input.jsonl", work / "interim")
    tokenized = tokenize.run(params, work / "interim", work / "tokenized")
    sizes = split.run(params, work / "tokenized", work / "splits")
    with timed_trainer_train() as train_seconds:
        summary = fine_tune.run(params, work / "splits", work / "model", work / "reports", work / "checkpoints")
    metrics = evaluate.run(params, work / "splits", work / "model", work / "reports")
    n_train = sizes["train"]["rows"]
    return {
        "sentences": sentences, "rows_rejected": cleaned["rows_rejected"], "entity_counts": cleaned["entity_counts"],
        "tokenize": tokenized, "split": {name: s["rows"] for name, s in sizes.items()},
        "metrics": metrics, "per_type": io.read_json(work / "reports/eval/per_type.json"),
        "train_samples_per_second": round(n_train * summary["epochs"] / train_seconds[-1], 2),
        "train_runtime_s": round(train_seconds[-1], 1), "wall_s": round(time.perf_counter() - start, 1),
        "best_step": summary["best_step"], "precision": summary["precision"], "fine_tune_summary": summary,
    }


def report(result: dict) -> None:
    m = result["metrics"]
    print(f"\n[bench] WNUT-17 test ({m['test_examples']} sentences): entity P {m['precision']:.4f} "
          f"R {m['recall']:.4f} F1 {m['f1']:.4f} (seqeval micro); word accuracy {m['accuracy']:.4f}")
    print(f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for kind, s in result["per_type"].items():
        print(f"{kind:<16}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1-score']:>10.4f}{s['support']:>9}")
    print(f"[bench] rows per split {result['split']}; train {result['train_samples_per_second']} samples/s "
          f"({result['precision']}), trainer.train {result['train_runtime_s']} s, pipeline wall {result['wall_s']} s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    missing = [f for f in FILES.values() if not (args.data_dir / f).is_file()]
    if missing:
        sys.exit(f"[bench] {args.data_dir}: missing {', '.join(missing)}; pass --data-dir with the WNUT-17 files")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_logging()
    params = bench_params(args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"} | {"model": MODEL}
    print(f"[bench] settings: {settings}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lmtune-bench-ner-") as tmp:
        result = run(params, args, Path(tmp))
    report(result)
    io.write_json(args.out, {"settings": settings, "machine": machine_info(),
                             "fine_tune_params": dataclasses.asdict(params.fine_tune), "result": result})
    print(f"[bench] results written to {args.out}")


if __name__ == "__main__":
    run_stage(main)
