"""Sequence-to-sequence benchmark: the project's stages on Multi30k EN->DE (translation) and DialogSum (summarization).

    python -m bench.seq2seq --part translation [--max-train 1000 --max-test 100]
    python -m bench.seq2seq --part summarization [--max-train 300 --max-test 50]

Reads the data in place from ../shared/datasets (multi30k_en_de: train.en/.de and test_2016_flickr.en/.de;
dialogsum: dialogsum.train.prerelease.jsonl and dialogsum.test.jsonl, whose first reference, summary1, is the
target), takes the first --max-train train pairs and --max-test test pairs (deterministic), and runs clean ->
tokenize -> split (by a split column) -> fine-tune (no validation) -> evaluate in a temporary directory with the
packaged MiniLM warm-started as a bert2bert encoder-decoder. Prints and writes the test metrics (ROUGE-1/2/L, BLEU,
chrF, generated length), train samples/s, generation examples/s, wall time and every setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import DATASETS, MODEL, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline
from lmtune import io
from lmtune.cli import run_stage
from lmtune.config import Params

# part -> (data directory, per-part defaults: max_train, max_test, source tokens, target tokens, new tokens)
PARTS = {"translation": ("multi30k_en_de", {"max_train": 1000, "max_test": 100, "max_length": 48,
                                             "max_target_length": 48, "max_new_tokens": 40}),
         "summarization": ("dialogsum", {"max_train": 300, "max_test": 50, "max_length": 192,
                                         "max_target_length": 64, "max_new_tokens": 48})}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=list(PARTS), required=True)
    p.add_argument("--data-dir", type=Path, help="dataset directory (default: ../shared/datasets/<part's data>)")
    for name in ("max-train", "max-test", "max-length", "max-target-length", "max-new-tokens"):
        p.add_argument(f"--{name}", type=int, help="default: the part's value in PARTS")
    for name, kind, default in (("epochs", float, 1.0), ("batch-size", int, 16), ("lr", float, 1e-4),
                                ("num-beams", int, 1), ("seed", int, 42)):
        p.add_argument(f"--{name}", type=kind, default=default, help="default: %(default)s")
    add_params_args(p, None)  # None: reports/bench/<part>.json
    args = p.parse_args(argv)
    folder, defaults = PARTS[args.part]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.data_dir = args.data_dir or DATASETS / folder
    args.out = args.out or ROOT / f"reports/bench/{args.part}.json"
    return args


def read_lines(path: Path, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(limit), f)]


def load_pairs(args: argparse.Namespace) -> pd.DataFrame | None:
    """source, target, split rows: the first max_train train pairs and max_test test pairs; None if absent."""
    d = args.data_dir
    if args.part == "translation":
        files = [d / f"{name}.{lang}" for name in ("train", "test_2016_flickr") for lang in ("en", "de")]
        if not all(f.is_file() for f in files):
            return None
        parts = [pd.DataFrame({"source": read_lines(files[i], n), "target": read_lines(files[i + 1], n), "split": s})
                 for i, n, s in ((0, args.max_train, "train"), (2, args.max_test, "test"))]
    else:
        files = [d / "dialogsum.train.prerelease.jsonl", d / "dialogsum.test.jsonl"]
        if not all(f.is_file() for f in files):
            return None
        parts = [pd.read_json(f, lines=True, nrows=n).assign(split=s).rename(
                     columns={"dialogue": "source", target: "target"})[["source", "target", "split"]]
                 for f, n, s, target in ((files[0], args.max_train, "train", "summary"),
                                         (files[1], args.max_test, "test", "summary1"))]
    return pd.concat(parts, ignore_index=True)


def seq2seq_params(args: argparse.Namespace) -> Params:
    return bench_params(args, {
        "task": {"name": args.part, "text_column": "source", "label_column": "target", "split_column": "split"},
        "clean": {"input_format": "jsonl", "encoding": "utf-8"},
        "seq2seq": {"source_prefix": "", "max_target_length": args.max_target_length,
                    "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens},
        "tokenize": {"max_length": args.max_length}, "evaluate": {"batch_size": 32},
        "fine_tune": {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size, "learning_rate": args.lr,
                      "seed": args.seed, "early_stopping_patience": 0}})


def run_stages(params: Params, pairs: pd.DataFrame, work: Path) -> dict:
    pairs.to_json(work / "pairs.jsonl", orient="records", lines=True, force_ascii=False)
    out = run_pipeline(params, work / "pairs.jsonl", work)
    samples = [json.loads(line) for line in (work / "reports/eval/predictions.jsonl").read_text().splitlines()[:3]]
    return {"clean": out["clean"], "tokenize": out["tokenize"], "split": out["split"], "fine_tune": out["fine_tune"],
            "test_metrics": out["metrics"], "evaluate_runtime_s": out["evaluate_seconds"],
            "generate_examples_per_second": round(out["metrics"]["test_examples"] / out["evaluate_seconds"], 3),
            "samples": samples}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pairs = load_pairs(args)
    if pairs is None:
        raise SystemExit(f"[bench] {args.data_dir}: dataset files for {args.part} not found; pass --data-dir")
    prepare()
    params = seq2seq_params(args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings |= {"model": MODEL, "references": "summary1" if args.part == "summarization" else "test_2016_flickr.de",
                 "validation": "none (no checkpoint selection)"}
    print(f"[bench] settings: {settings}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmtune-bench-s2s-") as tmp:
        result = run_stages(params, pairs, Path(tmp))
    wall = round(time.perf_counter() - start, 1)
    m, ft = result["test_metrics"], result["fine_tune"]
    print(f"\n[bench] {args.part}: train pairs {result['split']['train']['examples']}, test pairs "
          f"{m['test_examples']}, epochs {ft['epochs']}, precision {ft['precision']}")
    print("[bench] test: " + ", ".join(f"{k} {m[k]:.2f}" for k in ("rouge1", "rouge2", "rougeL", "bleu", "chrf",
                                                                      "gen_len")))
    print(f"[bench] train {ft['train_samples_per_second']} samples/s ({ft['train_runtime_s']} s); generate "
          f"{result['generate_examples_per_second']} examples/s ({result['evaluate_runtime_s']} s); wall {wall} s")
    for s in result["samples"]:
        print(f"[bench] sample: {s['source'][:80]!r} -> {s['generated'][:80]!r} (ref {s['references'][0][:80]!r})")
    io.write_json(args.out, {"settings": settings, "machine": machine_info(), "wall_s": wall,
                             "params": {k: dataclasses.asdict(getattr(params, k)) for k in
                                        ("tokenize", "seq2seq", "fine_tune")}, **result})
    print(f"[bench] results written to {args.out}")


if __name__ == "__main__":
    run_stage(main)  # a params or data error: one message, exit 2
