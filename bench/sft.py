"""SFT speed: lmtune's sft task against a plain Trainer + DataCollatorForLanguageModeling run on the same data.

    python -m bench.sft [--model DIR_OR_HUB_ID] [--records 400] [--set KEY=VALUE ...]

Data: ../shared/datasets/alpaca_demo/alpaca_en_demo.json (the first --records records). Model: a tiny random
Qwen2-shaped decoder built offline (tests/families.py) unless --model names one. Both systems train one epoch on the
same train split (lmtune's split stage), the same max_length, batch size, learning rate, seed and fp32, in separate
processes (peak RSS per process). The baseline is what a plain Trainer user writes: the chat template rendered to
text, every row padded to max_length, labels = the input ids (no answer masking), no length grouping, no packing.
lmtune: answer-only labels and sft.packing (no padding at all) with length-grouped batches.

Figures: trained answer tokens per second (answer tokens in the train split / Trainer.train seconds: the same count
for both, so the ratio is the speed-up in delivering answer-token gradients), the padding share of the token
positions computed, and peak RSS. Results: reports/bench/sft.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DATASETS, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline

DATA = DATASETS / "alpaca_demo" / "alpaca_en_demo.json"
SETTINGS = {"task": {"name": "sft"}, "tokenize": {"max_length": 256},
            "split": {"val_fraction": 0.05, "test_fraction": 0.05, "seed": 42},
            "fine_tune": {"epochs": 1, "max_steps": 0, "batch_size": 8, "learning_rate": 2e-4, "precision": "fp32",
                          "group_by_length": True, "eval_strategy": "epoch", "early_stopping_patience": 0,
                          "logging_steps": 10, "save_total_limit": 1},
            "sft": {"packing": True, "max_new_tokens": 16}}


def tiny_model(out: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.families import build_family

    return str(build_family("qwen2", out, hidden_size=64, intermediate_size=256, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=16))


def run_lmtune(args: argparse.Namespace, work: Path) -> dict:
    from datasets import load_from_disk

    settings = {**SETTINGS, "model": {"name_or_path": args.model}}
    params = bench_params(args, settings)
    records = json.loads(DATA.read_text(encoding="utf-8"))[:args.records]
    data = work / "alpaca.json"
    data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    out = run_pipeline(params, data, work)
    train = load_from_disk(str(work / "splits"))["train"]
    answer = sum(sum(t != -100 for t in labels[1:]) for labels in train["labels"])
    real = sum(train["length"])
    return {"system": "lmtune", "train_seconds": out["train_seconds"], "answer_tokens": answer,
            "token_positions": real, "padding_share": 0.0, "test_metrics": out["metrics"],
            "params": {"tokenize.max_length": params.tokenize.max_length, "sft.packing": params.sft.packing,
                       **{f"fine_tune.{k}": getattr(params.fine_tune, k) for k in SETTINGS["fine_tune"]}}}


def run_baseline(args: argparse.Namespace, work: Path) -> dict:
    """The plain Trainer recipe on lmtune's train split (written by the lmtune run in `work`)."""
    import torch
    from datasets import Dataset, load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, \
        TrainingArguments, set_seed

    params = bench_params(args, {**SETTINGS, "model": {"name_or_path": args.model}})
    ft, max_length = params.fine_tune, params.tokenize.max_length
    tokenizer = AutoTokenizer.from_pretrained(work / "model")  # the same chat template and pad token as lmtune's
    train = load_from_disk(str(work / "splits"))["train"]
    texts = [tokenizer.apply_chat_template(json.loads(m), tokenize=False) for m in train["messages"]]
    ds = Dataset.from_dict(dict(tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length,
                                          padding="max_length")))
    set_seed(ft.seed)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    targs = TrainingArguments(output_dir=str(work / "baseline"), num_train_epochs=ft.epochs,
                              per_device_train_batch_size=ft.batch_size, learning_rate=ft.learning_rate,
                              seed=ft.seed, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
                              logging_steps=ft.logging_steps, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    answer = sum(sum(t != -100 for t in labels[1:]) for labels in train["labels"])
    positions = len(ds) * max_length
    return {"system": "baseline (Trainer + DataCollatorForLanguageModeling, padded to max_length)",
            "train_seconds": round(seconds, 2), "answer_tokens": answer, "token_positions": positions,
            "padding_share": round(1 - sum(train["length"]) / positions, 4)}


def child(system: str, args: argparse.Namespace, work: Path) -> dict:
    """Run one system in its own process; returns its figures with its peak RSS."""
    cmd = [sys.executable, "-m", "bench.sft", "--system", system, "--work", str(work), "--model", args.model,
           "--records", str(args.records), "--params", str(args.params), *sum((["--set", s] for s in args.set), [])]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"[bench] {system} run failed (status {status})")
    result = json.loads(stdout.strip().splitlines()[-1])
    return result | {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_params_args(p, ROOT / "reports/bench/sft.json")
    p.add_argument("--model", default="", help="decoder-only model (default: a tiny random Qwen2-shaped one)")
    p.add_argument("--records", type=int, default=400, help="alpaca records to use (default: %(default)s)")
    p.add_argument("--system", choices=["lmtune", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    prepare()
    if args.system:  # a child process: one system, its figures as the last stdout line
        result = (run_lmtune if args.system == "lmtune" else run_baseline)(args, args.work)
        print(json.dumps(result, default=str))
        return
    if not DATA.is_file():
        sys.exit(f"[bench] {DATA} not found: this benchmark reads ../shared/datasets/alpaca_demo in place")
    with tempfile.TemporaryDirectory(prefix="lmtune-bench-sft-") as tmp:
        work = Path(tmp)
        args.model = args.model or tiny_model(work / "tiny-qwen2")
        ours = child("lmtune", args, work)  # first: the baseline trains on its split
        base = child("baseline", args, work)
    for r in (ours, base):
        r["answer_tokens_per_second"] = round(r["answer_tokens"] / r["train_seconds"], 1)
    ratio = round(ours["answer_tokens_per_second"] / base["answer_tokens_per_second"], 2)
    result = {"data": str(DATA.relative_to(DATASETS.parent)), "records": args.records,
              "model": "tiny random Qwen2-shaped (hidden 64, 2 layers)" if "tiny-qwen2" in args.model else args.model,
              "lmtune": ours, "baseline": base, "answer_tokens_per_second_ratio": ratio, "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"answer tokens/s: lmtune {ours['answer_tokens_per_second']}, baseline {base['answer_tokens_per_second']} "
          f"-> {ratio}x; padding share {ours['padding_share']} vs {base['padding_share']}; peak RSS "
          f"{ours['peak_rss_mib']} vs {base['peak_rss_mib']} MiB; written to {args.out}")


if __name__ == "__main__":
    main()
