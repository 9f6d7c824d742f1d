"""Fine-tune speed benchmark: the project's fine-tune vs. a plain run_glue-style Trainer run, side by side.

    python -m bench.speed [--seeds 42 43 44] [--preset presets/fast.yaml] [--set fine_tune.precision=fp32]

For each seed: runs ../shared/bench/hf_trainer_baseline.py (every sequence padded to max_length, no length grouping,
fp32) as a subprocess, then the project's own stages (clean -> tokenize -> split -> fine_tune -> evaluate) in a
temporary directory on the same training sample, model, epochs, batch size, learning rate and seed, with SST-2
dev.tsv as the test split and no validation during training: once with params.yaml's defaults and once per
--preset. Prints every run, then per system the mean train samples/s and dev accuracy over the seeds, the speed
ratio to the baseline and the accuracy delta, and writes the figures (with machine info) to a JSON file. One epoch
at lr 2e-5 is far from converged, so a single seed's accuracy moves by several points: the verdict is on means.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.common import MODEL, ROOT, add_params_args, bench_params, machine_info, prepare, run_pipeline
from lmtune import io, models
from lmtune.cli import run_stage
from lmtune.config import Params, apply_preset, read_preset

BASELINE = (ROOT / "../shared/bench/hf_trainer_baseline.py").resolve()
SPEED_TARGET = 15.0  # ours / baseline train samples per second
ACCURACY_TOLERANCE = 0.5  # dev accuracy points ours may lose against the baseline


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=(ROOT / "../shared/datasets/sst2").resolve(),
                   help="directory with train.tsv and dev.tsv (default: %(default)s)")
    for name, kind, default in (("max-train", int, 4000), ("epochs", float, 1.0), ("batch-size", int, 32),
                                ("lr", float, 2e-5), ("max-length", int, 128)):
        p.add_argument(f"--{name}", type=kind, default=default, help="same for both systems (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                   help="one run of each system per seed (sample, head init, data order); default: %(default)s")
    p.add_argument("--preset", type=Path, action="append", default=None,
                   help="also run ours with this preset (repeatable; default: presets/fast.yaml)")
    p.add_argument("--no-preset", action="store_true", help="run ours with params.yaml's defaults only")
    p.add_argument("--skip-baseline", action="store_true", help="run only our fine-tune (no ratio)")
    add_params_args(p, ROOT / "reports/bench/speed.json")
    return p.parse_args(argv)


def read_tsv(path: Path, limit: int = 0, seed: int = 0) -> pd.DataFrame:
    """text,label rows exactly as the baseline reads and samples them (its `load` function)."""
    df = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False)
    df = df.rename(columns={"sentence" if "sentence" in df.columns else "text": "text"})[["text", "label"]]
    return df.sample(n=limit, random_state=seed) if limit and len(df) > limit else df


def run_baseline(args: argparse.Namespace, seed: int, model_dir: str, work: Path) -> dict:
    """Run the baseline script as a subprocess and return its one JSON output line."""
    cmd = [sys.executable, str(BASELINE), "--train", str(args.data_dir / "train.tsv"),
           "--eval", str(args.data_dir / "dev.tsv"), "--model", model_dir, "--max-train", str(args.max_train),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--seed", str(seed), "--max-length", str(args.max_length), "--out", str(work / "baseline")]
    print(f"[bench] baseline: {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr (warnings) passes through
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"[bench] baseline failed (exit {proc.returncode}); stdout:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def speed_params(args: argparse.Namespace, seed: int, preset: Path | None) -> Params:
    """Our params.yaml with the benchmark's settings (those of the baseline run), the --set overrides, then the
    preset's values (validated like params.yaml)."""
    params = bench_params(args, {
        "task": {"name": "classification", "text_column": "text", "label_column": "label", "split_column": "split"},
        "clean": {"input_format": "csv", "encoding": "utf-8"}, "tokenize": {"max_length": args.max_length},
        "fine_tune": {"epochs": args.epochs, "max_steps": 0, "batch_size": args.batch_size, "learning_rate": args.lr,
                      "seed": seed, "warmup_ratio": 0.0, "weight_decay": 0.0, "lr_scheduler": "linear",
                      "early_stopping_patience": 0}})
    return apply_preset(params, read_preset(preset), str(preset)) if preset else params


def run_ours(system: str, params: Params, train: pd.DataFrame, dev: pd.DataFrame, work: Path) -> dict:
    """The project's stages on the benchmark data: train rows -> train split, dev rows -> test split."""
    frame = pd.concat([train.assign(split="train"), dev.assign(split="test")], ignore_index=True)
    frame.to_csv(work / "input.csv", index=False)
    result = run_pipeline(params, work / "input.csv", work)
    rejected = pd.read_csv(work / "interim/rejected.csv", keep_default_na=False)
    rejected["split"] = frame["split"].to_numpy()[rejected["row"].to_numpy(dtype=int) - 2]  # row 2 = first data row
    summary, metrics = result["fine_tune"], result["metrics"]
    n_train, wall = result["split"]["train"]["examples"], result["train_seconds"]
    return {
        "system": system,
        "train_samples": n_train,
        "train_samples_per_second": round(n_train * summary["epochs"] / wall, 3),  # headline: same formula as baseline
        "train_runtime_s": round(wall, 2),
        "trainer_reported_samples_per_second": summary["train_samples_per_second"],
        "eval_accuracy": round(metrics["accuracy"], 4),
        "eval_f1_macro": round(metrics["f1_macro"], 4),
        "eval_examples": metrics["test_examples"],
        "precision": summary["precision"],
        "rows_dropped_by_clean": {f"{s}/{r}": int(n) for (s, r), n in rejected.groupby(["split", "reason"]).size().items()},
        "rows_in": result["clean"]["rows_in"],
        "fine_tune_summary": summary,
    }


BASELINE_SYSTEM = "hf-trainer-run_glue-defaults"


def report(rows: list[dict]) -> dict:
    """Print every run, then the per-system means over seeds with the ratio and accuracy delta against the baseline;
    return the summary with the target verdicts."""
    print(f"\n{'system':<34}{'seed':>5}{'train samples':>14}{'samples/s':>11}{'runtime s':>11}{'dev acc (n)':>16}")
    for r in rows:
        acc = f"{r['eval_accuracy']:.4f} ({r['eval_examples']})"
        print(f"{r['system']:<34}{r['seed']:>5}{r['train_samples']:>14}{r['train_samples_per_second']:>11.2f}"
              f"{r['train_runtime_s']:>11.2f}{acc:>16}")
    systems: dict[str, dict] = {}
    for name in dict.fromkeys(r["system"] for r in rows):
        runs = [r for r in rows if r["system"] == name]
        systems[name] = {"seeds": [r["seed"] for r in runs],
                         "mean_samples_per_second": round(statistics.mean(r["train_samples_per_second"] for r in runs), 2),
                         "mean_accuracy": round(statistics.mean(r["eval_accuracy"] for r in runs), 4),
                         "accuracies": [r["eval_accuracy"] for r in runs]}
    base = systems.get(BASELINE_SYSTEM)
    print(f"\nmeans over seeds {', '.join(str(seed) for seed in dict.fromkeys(r['seed'] for r in rows))}:")
    for name, m in systems.items():
        line = f"  {name:<32} {m['mean_samples_per_second']:>8.2f} samples/s   dev accuracy {m['mean_accuracy']:.4f}"
        if base and name != BASELINE_SYSTEM:
            ratio = m["mean_samples_per_second"] / base["mean_samples_per_second"]
            delta = 100 * (m["mean_accuracy"] - base["mean_accuracy"])
            m |= {"speed_ratio": round(ratio, 2), "accuracy_delta_points": round(delta, 2),
                  "speed_target_met": ratio >= SPEED_TARGET, "accuracy_target_met": delta >= -ACCURACY_TOLERANCE}
            line += (f"   ratio {ratio:.2f}x ({'MET' if m['speed_target_met'] else 'NOT met'}: >= {SPEED_TARGET:g}x)"
                     f"   accuracy {delta:+.2f} points ({'MET' if m['accuracy_target_met'] else 'NOT met'}: "
                     f">= -{ACCURACY_TOLERANCE})")
        print(line)
    if not base:
        print("(baseline skipped: no ratio)")
    print("samples/s = train samples x epochs / wall-clock of trainer.train(); the baseline is fp32, ours uses "
          f"precision {rows[-1]['precision']} (fine_tune.precision: auto)")
    return systems


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not (args.data_dir / "train.tsv").is_file() or not (args.data_dir / "dev.tsv").is_file():
        print(f"[bench] SKIP: no train.tsv/dev.tsv in {args.data_dir}; pass --data-dir")
        return
    if not args.skip_baseline and not BASELINE.is_file():
        sys.exit(f"[bench] baseline script {BASELINE} not found; pass --skip-baseline to time our fine-tune alone")
    prepare()
    presets = [] if args.no_preset else (args.preset or [ROOT / "presets/fast.yaml"])
    variants = [("lmtune defaults", None)] + [(f"lmtune + {p.name}", p) for p in presets]
    for _, preset in variants[1:]:
        speed_params(args, args.seeds[0], preset)  # a bad preset fails now, not after the first baseline run
    dev = read_tsv(args.data_dir / "dev.tsv")
    settings = {k: v for k, v in vars(args).items() if k not in ("params", "out", "data_dir", "preset")}
    settings |= {"data_dir": str(args.data_dir), "params": str(args.params), "dev_rows": len(dev), "model": MODEL,
                 "presets": {str(p): read_preset(p) for p in presets}}
    rows, params_used = [], {}
    with tempfile.TemporaryDirectory(prefix="lmtune-bench-") as tmp:
        for seed in args.seeds:
            train = read_tsv(args.data_dir / "train.tsv", args.max_train, seed)
            if not args.skip_baseline:
                base = run_baseline(args, seed, models.resolve(MODEL), Path(tmp) / f"{seed}")
                rows.append({**base, "seed": seed, "eval_examples": len(dev)})
            for i, (system, preset) in enumerate(variants):
                params = speed_params(args, seed, preset)
                params_used[system] = dataclasses.asdict(params.fine_tune)
                work = Path(tmp) / f"{seed}-{i}"
                work.mkdir(parents=True)
                rows.append({**run_ours(system, params, train, dev, work), "seed": seed})
    print(f"\n[bench] clean dropped rows (split/reason): {rows[-1]['rows_dropped_by_clean'] or 'none'}; "
          f"dev accuracy on {rows[-1]['eval_examples']} of {len(dev)} dev rows")
    summary = report(rows)
    io.write_json(args.out, {"settings": settings, "machine": machine_info(), "fine_tune_params": params_used,
                             "results": rows, "summary": summary})
    print(f"[bench] results written to {args.out}")


if __name__ == "__main__":
    run_stage(main)  # a params or data error: one message, exit 2
