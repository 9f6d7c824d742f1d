"""Sentence-pair benchmarks (task.text_pair_column): MRPC (paraphrase, accuracy and F1 on the official test set),
STS-B (similarity regression, Pearson and Spearman on its dev set) and LCQMC (Chinese question matching, accuracy
on its test set), each beside a plain Hugging Face Trainer baseline on the same rows, model and settings.

    python -m bench.pairs --part mrpc|stsb|lcqmc [--max-train 1000] [--epochs 1] [--max-test 0]

Reads ../shared/datasets/<part> in place, as distributed (no file is edited): MRPC's train.txt and dev.txt have no
header and test.txt starts with a UTF-8 BOM and a header (read with encoding utf-8-sig); STS-B's TSVs and LCQMC's
text files have no header. The rows are written as one temporary TSV with columns sentence1, sentence2, label and
split, which the five stages read with task.text_column: sentence1, task.text_pair_column: sentence2 and
task.split_column: split. Splits: MRPC train <- train.txt, validation <- dev.txt (both from the official train set),
test <- test.txt (validation: --val-rows of dev.txt); STS-B train <- train.tsv less a validation slice (--val-rows), test <- dev.tsv; LCQMC (no train
file here) train <- dev.txt less a validation slice, test <- test.txt. --max-train samples the train rows
(seeded), --max-test the test rows (0 = all). The baseline is configured as transformers' run_glue.py does by
default (pairs padded to max_length, tokenizer(sentence1, sentence2, truncation=True), fp32, no evaluation during
training) and trains on exactly our train rows. Writes the figures with every setting to reports/bench/pairs_<part>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score

from bench.common import DATASETS, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline
from lmtune import models
from lmtune.cli import run_stage
from lmtune.config import Params

COLUMNS = ["sentence1", "sentence2", "label"]
TASKS = {"mrpc": "classification", "stsb": "regression", "lcqmc": "classification"}


def read_tsv(path: Path, header: bool, usecols: list[int], encoding: str = "utf-8") -> pd.DataFrame:
    """A TSV as distributed: quotes are text (QUOTE_NONE); `usecols`: positions of sentence1, sentence2, label."""
    df = pd.read_csv(path, sep="\t", header=0 if header else None, quoting=3, dtype=str,
                     keep_default_na=False, encoding=encoding)
    out = df.iloc[:, usecols]
    out.columns = COLUMNS
    return out


def load(part: str, data_dir: Path, val_rows: int, seed: int) -> dict[str, pd.DataFrame]:
    """{train, validation, test} frames of sentence1, sentence2, label (strings)."""
    if part == "mrpc":  # Quality, #1 ID, #2 ID, #1 String, #2 String
        return {"train": read_tsv(data_dir / "train.txt", False, [3, 4, 0]),
                "validation": read_tsv(data_dir / "dev.txt", False, [3, 4, 0]).sample(
                    n=val_rows, random_state=seed),
                "test": read_tsv(data_dir / "test.txt", True, [3, 4, 0], encoding="utf-8-sig")}
    if part == "stsb":  # 10 columns: sentences in 8 and 9, score in 10
        train, test = read_tsv(data_dir / "train.tsv", False, [7, 8, 9]), read_tsv(data_dir / "dev.tsv", False, [7, 8, 9])
    else:  # lcqmc: text_a, text_b, label
        train, test = read_tsv(data_dir / "dev.txt", False, [0, 1, 2]), read_tsv(data_dir / "test.txt", False, [0, 1, 2])
    train = train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return {"train": train.iloc[val_rows:], "validation": train.iloc[:val_rows], "test": test}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=list(TASKS), required=True)
    p.add_argument("--data-dir", type=Path, help="dataset directory (default: ../shared/datasets/<part>)")
    for name, kind, default, help_ in (
            ("epochs", float, 1.0, "passes over the train rows"), ("lr", float, 5e-5, "peak learning rate"),
            ("batch-size", int, 32, "train batch size"), ("max-length", int, 128, "tokens per pair"),
            ("seed", int, 42, "row sample, head init, data order"), ("max-train", int, 1000, "train rows; 0 = all"),
            ("max-test", int, 0, "test rows; 0 = all"), ("val-rows", int, 500, "validation rows (MRPC: sampled from dev.txt; else sliced off train)")):
        p.add_argument(f"--{name}", type=kind, default=default, help=f"{help_} (default: %(default)s)")
    p.add_argument("--skip-baseline", action="store_true", help="run only our pipeline")
    args, _ = p.parse_known_args(argv)
    add_params_args(p, ROOT / f"reports/bench/pairs_{args.part}.json")
    return p.parse_args(argv)


def pair_params(args: argparse.Namespace) -> Params:
    return bench_params(args, {
        "task": {"name": TASKS[args.part], "text_column": "sentence1", "text_pair_column": "sentence2",
                 "label_column": "label", "split_column": "split"},
        "clean": {"input_format": "tsv", "encoding": "utf-8", "lowercase": False},
        "tokenize": {"max_length": args.max_length},
        "fine_tune": {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size, "learning_rate": args.lr,
                      "seed": args.seed, "early_stopping_patience": 0}})


def subsample(frames: dict[str, pd.DataFrame], args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    out = dict(frames)
    for name, limit in (("train", args.max_train), ("test", args.max_test)):
        if limit and len(out[name]) > limit:
            out[name] = out[name].sample(n=limit, random_state=args.seed)
    return out


def scores(part: str, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The part's headline figures: MRPC accuracy and F1 of class 1 (paraphrase), STS-B Pearson and Spearman,
    LCQMC accuracy."""
    if part == "stsb":
        return {"pearson": round(float(pearsonr(actual, predicted)[0]), 4),
                "spearman": round(float(spearmanr(actual, predicted)[0]), 4)}
    out = {"accuracy": round(float(accuracy_score(actual, predicted)), 4)}
    if part == "mrpc":
        out["f1"] = round(float(f1_score(actual, predicted, pos_label=1)), 4)
    return out


def ours(args: argparse.Namespace, params: Params, frames: dict[str, pd.DataFrame], work: Path) -> dict:
    path = work / "pairs.tsv"
    pd.concat([f.assign(split=name) for name, f in frames.items()]).to_csv(path, sep="\t", index=False, quoting=3)
    out = run_pipeline(params, path, work / "ours")
    rows = [json.loads(line) for line in (work / "ours/reports/eval/predictions.jsonl").read_text().splitlines()]
    if args.part == "stsb":
        actual, predicted = np.array([r["target"] for r in rows]), np.array([r["predicted"] for r in rows])
    else:
        actual, predicted = (np.array([int(r[k]) for r in rows]) for k in ("label", "predicted"))
    n_train = out["split"]["train"]["examples"]
    return {"system": "lmtune", **scores(args.part, actual, predicted), "test_rows": len(rows),
            "train_rows": n_train, "train_seconds": out["train_seconds"],
            "train_samples_per_second": round(n_train * args.epochs / out["train_seconds"], 2),
            "evaluate_seconds": out["evaluate_seconds"], "wall_seconds": out["wall_seconds"],
            "clean": out["clean"]["rejected_by_reason"], "tokenize": out["tokenize"], "split": out["split"],
            "lmtune_metrics": out["metrics"]}


def baseline(args: argparse.Namespace, frames: dict[str, pd.DataFrame], model_dir: str, work: Path) -> dict:
    """A plain Trainer as run_glue.py sets it up by default, on the same train rows, scored on the same test rows."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    regression = args.part == "stsb"
    set_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1 if regression else 2)

    def dataset(frame: pd.DataFrame) -> Dataset:
        labels = frame["label"].astype(float if regression else int).tolist()
        ds = Dataset.from_dict({"sentence1": frame["sentence1"].tolist(), "sentence2": frame["sentence2"].tolist(),
                                "label": labels})
        return ds.map(lambda b: tok(b["sentence1"], b["sentence2"], padding="max_length", max_length=args.max_length,
                                    truncation=True), batched=True, remove_columns=["sentence1", "sentence2"])

    train, test = dataset(frames["train"]), dataset(frames["test"])
    trainer = Trainer(model=model, args=TrainingArguments(
        output_dir=str(work / "baseline"), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        learning_rate=args.lr, num_train_epochs=args.epochs, seed=args.seed, save_strategy="no", eval_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0), train_dataset=train)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    logits = trainer.predict(test).predictions
    predicted = logits[:, 0] if regression else logits.argmax(axis=-1)
    return {"system": "hf-trainer-run_glue-defaults", **scores(args.part, np.asarray(test["label"]), predicted),
            "test_rows": len(test), "train_rows": len(train), "train_seconds": round(train_seconds, 2),
            "train_samples_per_second": round(len(train) * args.epochs / train_seconds, 2),
            "evaluate_seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepare()
    params = pair_params(args)
    data_dir = args.data_dir or DATASETS / args.part
    if not data_dir.is_dir():
        sys.exit(f"[bench] {data_dir} not found; pass --data-dir")
    frames = subsample(load(args.part, data_dir, args.val_rows, args.seed), args)
    print(f"[bench] {args.part}: " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix=f"lmtune-bench-{args.part}-") as tmp:
        work = Path(tmp)
        results = [ours(args, params, frames, work)]
        if not args.skip_baseline:
            results.append(baseline(args, frames, str(models.resolve(params.model.name_or_path)), work))
    for r in results:
        figures = {k: v for k, v in r.items() if k in ("accuracy", "f1", "pearson", "spearman")}
        print(f"[bench] {r['system']:>30}: {figures}  train {r['train_rows']} rows in {r['train_seconds']} s "
              f"({r['train_samples_per_second']}/s), test {r['test_rows']} rows")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"settings": settings, "params": dataclasses.asdict(params), "results": results,
                                    "rows": {k: len(v) for k, v in frames.items()}, "machine": machine_info()},
                                   indent=2, ensure_ascii=False) + "\n")
    print(f"[bench] wrote {args.out}")


if __name__ == "__main__":
    run_stage(main)
