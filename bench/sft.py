"""SFT speed: lmtune's sft task against a plain Trainer + DataCollatorForLanguageModeling run on the same data.

    python -m bench.sft [--model DIR_OR_HUB_ID] [--records 400] [--set KEY=VALUE ...]

Data: ../shared/datasets/alpaca_demo/alpaca_en_demo.json (the first --records records). Model: a small random
Qwen2-shaped decoder built offline (tests/families.py; hidden 256, 4 layers, so that compute, not per-step overhead,
dominates a step) unless --model names one. Both systems train one epoch on the
same train split (lmtune's split stage), the same max_length, batch size, learning rate, seed and fp32, in separate
processes (peak RSS per process). The baseline is what a plain Trainer user writes: the chat template rendered to
text, every row padded to max_length, labels = the input ids (no answer masking), no length grouping, no packing.
lmtune twice: answer-only labels with length-grouped, dynamically padded batches (sft.packing false), and with
sft.packing (no padding at all; on a CPU the packed row's attention is computed over the whole row with a
block-diagonal mask, so long packed rows cost more attention than separate ones; GPUs with flash-attention skip it).

Figures: trained answer tokens per second (answer tokens in the train split / Trainer.train seconds: the same count
for both, so the ratio is the speed-up in delivering answer-token gradients), the padding share of the token
positions computed, and peak RSS. Results: reports/bench/sft.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from bench.common import DATASETS, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline

DATA = DATASETS / "alpaca_demo" / "alpaca_en_demo.json"
SETTINGS = {"task": {"name": "sft"}, "tokenize": {"max_length": 1024},  # TRL SFTTrainer's default max_length
            "split": {"val_fraction": 0.0, "test_fraction": 0.05, "seed": 42},  # no validation: timed like the baseline
            "fine_tune": {"epochs": 1, "max_steps": 0, "batch_size": 8, "learning_rate": 2e-4, "precision": "fp32",
                          "group_by_length": True, "eval_strategy": "epoch", "early_stopping_patience": 0,
                          "logging_steps": 10, "save_total_limit": 1},
            "sft": {"packing": True, "max_new_tokens": 16}}


@contextlib.contextmanager
def counted_positions() -> Iterator[dict[str, int]]:
    """Token positions the model computes in training (batch rows x their padded length) and how many of them are
    real tokens (attention mask 1; a packed row has no mask and no padding), counted at every training step."""
    import transformers

    original, counts = transformers.Trainer.training_step, {"positions": 0, "tokens": 0}

    def training_step(self, model, inputs, *a, **kw):
        counts["positions"] += int(inputs["input_ids"].numel())
        mask = inputs.get("attention_mask")
        counts["tokens"] += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        return original(self, model, inputs, *a, **kw)

    with mock.patch.object(transformers.Trainer, "training_step", training_step):
        yield counts


def tiny_model(out: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.families import build_family

    return str(build_family("qwen2", out, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                            num_attention_heads=8, num_key_value_heads=4, head_dim=32, layer_types=["full_attention"] * 4))


def run_lmtune(args: argparse.Namespace, work: Path) -> dict:
    from datasets import load_from_disk

    settings = {**SETTINGS, "model": {"name_or_path": args.model}}
    params = bench_params(args, settings)
    records = json.loads(DATA.read_text(encoding="utf-8"))[:args.records]
    work.mkdir(parents=True, exist_ok=True)
    data = work / "alpaca.json"
    data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    with counted_positions() as counts:
        out = run_pipeline(params, data, work)
    train = load_from_disk(str(work / "splits"))["train"]
    answer = sum(sum(t != -100 for t in labels[1:]) for labels in train["labels"])
    return {"system": f"lmtune sft (packing {params.sft.packing})", "train_seconds": out["train_seconds"],
            "answer_tokens": answer, "token_positions": counts["positions"],
            "padding_share": round(1 - counts["tokens"] / counts["positions"], 4), "test_metrics": out["metrics"],
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
    with counted_positions() as counts:
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    answer = sum(sum(t != -100 for t in labels[1:]) for labels in train["labels"])
    return {"system": "baseline (Trainer + DataCollatorForLanguageModeling, padded to max_length)",
            "train_seconds": round(seconds, 2), "answer_tokens": answer, "token_positions": counts["positions"],
            "padding_share": round(1 - counts["tokens"] / counts["positions"], 4)}


def child(system: str, args: argparse.Namespace, work: Path, *extra: str) -> dict:
    """Run one system in its own process (`extra`: more --set arguments); returns its figures with its peak RSS."""
    cmd = [sys.executable, "-m", "bench.sft", "--system", system, "--work", str(work), "--model", args.model,
           "--records", str(args.records), "--params", str(args.params),
           *sum((["--set", s] for s in [*args.set, *extra]), [])]
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
        grouped = child("lmtune", args, work / "grouped", "sft.packing=false")  # the baseline trains on its split
        packed = child("lmtune", args, work / "packed", "sft.packing=true")
        base = child("baseline", args, work / "grouped")
    for r in (base, grouped, packed):  # the baseline first: the ratios divide by its rate
        r["answer_tokens_per_second"] = round(r["answer_tokens"] / r["train_seconds"], 1)
        r["ratio"] = round(r["answer_tokens_per_second"] / base["answer_tokens_per_second"], 2)
    result = {"data": str(DATA.relative_to(DATASETS.parent)), "records": args.records,
              "model": "small random Qwen2-shaped (hidden 256, 4 layers, 4.5M parameters)" if "tiny-qwen2" in args.model else args.model,
              "lmtune_length_grouped": grouped, "lmtune_packed": packed, "baseline": base, "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    for r in (base, grouped, packed):
        print(f"{r['system']}: {r['answer_tokens_per_second']} answer tokens/s ({r['ratio']}x), padding share "
              f"{r['padding_share']}, {r['token_positions']} positions, peak RSS {r['peak_rss_mib']} MiB")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
