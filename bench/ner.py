"""NER benchmark on WNUT-17 (emerging entities): the project's stages end to end with the packaged model.

    python -m bench.ner [--epochs 5] [--lr 5e-5] [--max-train 0]

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
import sys
import tempfile
from pathlib import Path

from bench.common import DATASETS, MODEL, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline
from lmtune import io
from lmtune.cli import run_stage
from lmtune.config import Params
from lmtune.tasks import ner

FILES = {"train": "wnut17train.conll", "validation": "emerging.dev.conll", "test": "emerging.test.annotated"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DATASETS / "wnut17",
                   help="directory with the three WNUT-17 CoNLL files (default: %(default)s)")
    for name, kind, default, help_ in (
            ("epochs", float, 5.0, "passes over the train split"), ("lr", float, 5e-5, "peak learning rate"),
            ("batch-size", int, 16, "train batch size"), ("max-length", int, 128, "tokens per sentence"),
            ("seed", int, 42, "model head init, data order"), ("max-train", int, 0, "train sentences; 0 = all")):
        p.add_argument(f"--{name}", type=kind, default=default, help=f"{help_} (default: %(default)s)")
    add_params_args(p, ROOT / "reports/bench/ner.json")
    return p.parse_args(argv)


def ner_params(args: argparse.Namespace) -> Params:
    return bench_params(args, {
        "task": {"name": "ner", "text_column": "tokens", "label_column": "tags", "split_column": "split"},
        "clean": {"input_format": "jsonl", "encoding": "utf-8", "lowercase": False},
        "ner": {"conll_tag_column": -1, "label_all_tokens": False}, "tokenize": {"max_length": args.max_length},
        "fine_tune": {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size, "learning_rate": args.lr,
                      "seed": args.seed}})


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
    out = run_pipeline(params, work / "input.jsonl", work)
    summary, sizes = out["fine_tune"], out["split"]
    return {
        "sentences": sentences, "rows_rejected": out["clean"]["rows_rejected"],
        "entity_counts": out["clean"]["entity_counts"], "tokenize": out["tokenize"],
        "split": {name: s["rows"] for name, s in sizes.items()},
        "metrics": out["metrics"], "per_type": io.read_json(work / "reports/eval/per_type.json"),
        "train_samples_per_second": round(sizes["train"]["rows"] * summary["epochs"] / out["train_seconds"], 2),
        "train_runtime_s": out["train_seconds"], "wall_s": out["wall_seconds"],
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
    prepare()
    params = ner_params(args)
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
