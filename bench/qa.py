"""Extractive QA benchmark on SQuAD v1.1: fine-tune the packaged model with the project's stages, report EM/F1.

    python -m bench.qa [--epochs 1] [--max-test 0] [--set fine_tune.precision=fp32]

Only the SQuAD v1.1 dev set is on this machine, split by article into part_a (4,961 questions) and part_b (5,609).
Train on part_a with about --val-fraction of its questions' articles held out for validation (checkpoint choice),
test on part_b, through clean -> tokenize -> split (split column) -> fine_tune -> evaluate in a temporary directory.
By default each split is a seeded sample of whole paragraphs (--max-train 1200, --max-val 300, --max-test 1000
questions; 0 = all): ~2.5 minutes on an idle 2-core CPU. All of part_a for one epoch trains ~5,000 windows (~6 minutes
idle at ~14 windows/s, 3-4 times longer when the cores are shared). The inputs
are read in place and converted to one temporary JSONL file. Prints exact match / F1 (official SQuAD v1.1
definitions), windows, train windows/s and wall time, and writes them with every setting to reports/bench/qa.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DATASETS, MODEL, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline
from lmtune import io
from lmtune.cli import run_stage
from lmtune.config import Params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DATASETS / "squad_v1.1",
                   help="directory with dev-v1.1.part_a.json and dev-v1.1.part_b.json (default: %(default)s)")
    for name, kind, default, text in (
            ("max-length", int, 256, "tokens per window"), ("stride", int, 64, "tokens shared by neighbouring windows"),
            ("epochs", float, 1.0, "passes over the train windows"), ("batch-size", int, 16, "windows per step"),
            ("lr", float, 1e-4, "peak learning rate"), ("warmup", float, 0.1, "warmup fraction of the steps"),
            ("seed", int, 42, "model head, data order and validation articles"),
            ("val-fraction", float, 0.1, "share of part_a questions whose articles are held out for validation"),
            ("max-train", int, 1200, "train questions: a seeded sample of whole paragraphs; 0 = all"),
            ("max-val", int, 300, "validation questions (same sampling); 0 = all"),
            ("max-test", int, 1000, "part_b test questions (same sampling); 0 = all 5,609")):
        p.add_argument(f"--{name}", type=kind, default=default, help=f"{text} (default: %(default)s)")
    add_params_args(p, ROOT / "reports/bench/qa.json")
    return p.parse_args(argv)


def paragraphs(path: Path) -> list[tuple[str, dict]]:
    """(article title, paragraph) pairs of a SQuAD file, in file order."""
    return [(a["title"], p) for a in json.loads(path.read_text(encoding="utf-8"))["data"] for p in a["paragraphs"]]


def sample(paras: list[tuple[str, dict]], max_questions: int, seed: int) -> list[tuple[str, dict]]:
    """Whole paragraphs in a seeded random order until at least max_questions questions; 0 keeps them all."""
    if not max_questions:
        return paras
    chosen, count = [], 0
    for title, para in random.Random(seed).sample(paras, len(paras)):
        if count >= max_questions:
            break
        chosen.append((title, para))
        count += len(para["qas"])
    return chosen


def jsonl_rows(paras: list[tuple[str, dict]], split_name: str) -> list[dict]:
    """The JSONL rows (id, question, context, answers, split) the qa task reads."""
    return [{"id": q["id"], "question": q["question"], "context": para["context"], "split": split_name,
             "answers": {"text": [a["text"] for a in q["answers"]],
                         "answer_start": [a["answer_start"] for a in q["answers"]]}}
            for _, para in paras for q in para["qas"]]


def build_rows(args: argparse.Namespace, part_a: Path, part_b: Path) -> tuple[list[dict], dict]:
    """Train/validation rows from part_a (validation: whole articles, about val_fraction of its questions, chosen
    with the seed), test rows from part_b; each capped by --max-train/--max-val/--max-test. Also what was chosen."""
    paras = paragraphs(part_a)
    titles = list(dict.fromkeys(t for t, _ in paras))
    per_title = {t: sum(len(p["qas"]) for tt, p in paras if tt == t) for t in titles}
    held_out: list[str] = []
    for title in random.Random(args.seed).sample(titles, len(titles)):
        if sum(per_title[t] for t in held_out) >= args.val_fraction * sum(per_title.values()):
            break
        held_out.append(title)
    train = sample([p for p in paras if p[0] not in held_out], args.max_train, args.seed)
    val = sample([p for p in paras if p[0] in held_out], args.max_val, args.seed)
    test = sample(paragraphs(part_b), args.max_test, args.seed)
    rows = jsonl_rows(train, "train") + jsonl_rows(val, "validation") + jsonl_rows(test, "test")
    chosen = {"validation_articles": sorted(held_out), "questions": {
        "train": sum(len(p["qas"]) for _, p in train), "validation": sum(len(p["qas"]) for _, p in val),
        "test": sum(len(p["qas"]) for _, p in test)}}
    return rows, chosen


def qa_params(args: argparse.Namespace) -> Params:
    return bench_params(args, {
        "task": {"name": "qa", "split_column": "split"}, "clean": {"input_format": "jsonl", "encoding": "utf-8"},
        "qa": {"question_column": "question", "context_column": "context", "answers_column": "answers",
               "stride": args.stride},
        "tokenize": {"max_length": args.max_length},
        "fine_tune": {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size, "learning_rate": args.lr,
                      "warmup_ratio": args.warmup, "seed": args.seed, "early_stopping_patience": 0,
                      "metric_for_best_model": "auto"}})


def run(params: Params, input_path: Path, work: Path) -> dict:
    """The project's stages on the benchmark JSONL; returns the figures to report."""
    out = run_pipeline(params, input_path, work)
    metrics, summary = out["metrics"], out["fine_tune"]
    windows = {name: s["rows"] for name, s in out["split"].items()}
    return {
        "exact_match": round(metrics["exact_match"], 2), "f1": round(metrics["f1"], 2),
        "test_questions": metrics["questions"], "test_paragraphs": metrics["test_examples"],
        "windows": windows, "tokenize": out["tokenize"], "rows_rejected": out["clean"]["rows_rejected"],
        "train_samples_per_second": round(windows["train"] * summary["epochs"] / out["train_seconds"], 3),  # windows
        "train_runtime_s": out["train_seconds"], "evaluate_runtime_s": out["evaluate_seconds"],
        "best_validation_f1": summary["best_metric"], "fine_tune_summary": summary,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    parts = [args.data_dir / f"dev-v1.1.part_{p}.json" for p in "ab"]
    if not all(p.is_file() for p in parts):
        sys.exit(f"[bench] SQuAD v1.1 not found: need {parts[0].name} and {parts[1].name} in {args.data_dir}; "
                 f"pass --data-dir")
    prepare()
    params = qa_params(args)
    rows, chosen = build_rows(args, *parts)
    settings = {k: v for k, v in vars(args).items() if k not in ("params", "out", "data_dir", "set")}
    settings |= {"data_dir": str(args.data_dir), "overrides": args.set, "model": MODEL, **chosen}
    print(f"[bench] questions {chosen['questions']} (train/validation: part_a, {len(chosen['validation_articles'])} "
          f"articles held out; test: part_b); max_length {args.max_length}, stride {args.stride}, epochs "
          f"{args.epochs}, batch {args.batch_size}, lr {args.lr}, seed {args.seed}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmtune-bench-qa-") as tmp:
        work = Path(tmp)
        with open(work / "squad.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        result = run(params, work / "squad.jsonl", work)
    result["wall_time_s"] = round(time.perf_counter() - start, 1)
    print(f"\n[bench] SQuAD v1.1 part_b ({result['test_questions']} questions): exact match "
          f"{result['exact_match']:.2f}, F1 {result['f1']:.2f} (validation F1 {result['best_validation_f1']})")
    print(f"[bench] windows train/validation/test {result['windows']}; windows per question "
          f"{result['tokenize']['windows_per_question_mean']}, answers cut off {result['tokenize']['answers_cut_off']}")
    print(f"[bench] train {result['train_samples_per_second']:.2f} windows/s ({result['train_runtime_s']} s, "
          f"precision {result['fine_tune_summary']['precision']}); evaluate {result['evaluate_runtime_s']} s; "
          f"wall time {result['wall_time_s']} s")
    io.write_json(args.out, {"settings": settings, "machine": machine_info(),
                             "fine_tune_params": dataclasses.asdict(params.fine_tune), "results": result})
    print(f"[bench] results written to {args.out}")


if __name__ == "__main__":
    run_stage(main)  # a params or data error: one message, exit 2
