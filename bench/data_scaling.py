"""Data-stage scaling benchmark: clean + tokenize + split on 10k, 100k and 1M rows, time per row and peak memory.

    python -m bench.data_scaling [--sizes 10000 100000 1000000]

Builds each input from SST-2 train.tsv (67,349 sentences) repeated with variations (copy k of a sentence ends in
" #k", so no row is a duplicate the clean stage would drop), writes it as TSV under a temporary directory, and runs
the three data stages as subprocesses with the packaged tokenizer, as `dvc repro` does. For each size it prints rows/s
and, per stage, the peak resident memory (RSS) and the peak anonymous RSS (the heap; RSS also counts the pages of
memory-mapped Arrow files, which the kernel can drop), then two verdicts: the time per row of the stages' work (their
main(), without the ~6 s of start-up imports) at each size, and each stage's memory growth over the smallest size next
to the size of the Arrow data. Figures go to reports/bench/data_scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.common import ROOT

STAGES = (("clean", "input.tsv", "interim"), ("tokenize", "interim", "tokenized"), ("split", "tokenized", "splits"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=(ROOT / "../shared/datasets/sst2").resolve())
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--out", type=Path, default=ROOT / "reports/bench/data_scaling.json")
    return p.parse_args(argv)


def write_input(sentences: pd.DataFrame, rows: int, path: Path) -> None:
    """`rows` rows of SST-2, copy k of each sentence suffixed with " #k" so every text is unique."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for start in range(0, rows, len(sentences)):
            part = sentences.iloc[: min(len(sentences), rows - start)]
            copy = start // len(sentences)
            texts = part["sentence"] if copy == 0 else part["sentence"] + f" #{copy}"
            f.writelines(f"{t}\t{y}\n" for t, y in zip(texts, part["label"]))


# Runs a stage's main() and records how long it took once the imports are done (the work that scales with rows).
TIMED_MAIN = ("import importlib, json, sys, time; stage = importlib.import_module(sys.argv[1]); start = time.perf_counter(); "
              "stage.main(sys.argv[3:]); open(sys.argv[2], 'w').write(json.dumps(time.perf_counter() - start))")


def _status_kib(pid: int, field: str) -> int:
    """One `kB` field of /proc/<pid>/status (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_stage(name: str, src: Path, dst: Path, work: Path) -> dict[str, float]:
    """Run one stage as a subprocess. Returns wall seconds, the seconds of its main() (without start-up imports),
    peak RSS in MiB (wait4's rusage) and peak anonymous RSS (heap, sampled every 20 ms from /proc): RSS also counts
    the pages of memory-mapped Arrow files the stage reads, which the kernel can drop; anonymous memory is what
    the stage itself holds."""
    timing = work / f"{name}.seconds"
    cmd = [sys.executable, "-c", TIMED_MAIN, f"stages.{name}", str(timing), str(src), str(dst),
           str(work / f"{name}.json"), "--params", str(work / "params.yaml")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})
    peak_anon = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_anon = max(peak_anon, _status_kib(proc.pid, "RssAnon"))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"[bench] stage {name} failed:\n{proc.stderr.read()[-3000:]}")
    return {"seconds": round(seconds, 2), "main_seconds": round(float(timing.read_text()), 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "peak_anon_rss_mib": round(peak_anon / 1024, 1)}


def print_summary(results: list[dict]) -> None:
    """The table, then the two verdicts: time per row of the stages' work (main() without start-up imports) at each
    size, and each stage's memory growth over the smallest size next to the Arrow data size."""
    base = results[0]
    print("\n rows       | s total (work) | rows/s | work us/row | peak RSS MiB clean / tokenize / split | "
          "peak anonymous MiB clean / tokenize / split | split Arrow MiB")
    for r in results:
        r["time_per_row_vs_first"] = round(r["us_per_row"] / base["us_per_row"], 3)
        r["work_seconds"] = round(sum(r[name]["main_seconds"] for name, _, _ in STAGES), 2)
        r["work_us_per_row"] = round(1e6 * r["work_seconds"] / r["rows"], 2)
        r["rss_growth_mib"] = {name: round(r[name]["peak_rss_mib"] - base[name]["peak_rss_mib"], 1)
                               for name, _, _ in STAGES}
        r["anon_growth_mib"] = {name: round(r[name]["peak_anon_rss_mib"] - base[name]["peak_anon_rss_mib"], 1)
                                for name, _, _ in STAGES}
        rss = " / ".join(f"{r[name]['peak_rss_mib']:.0f} (+{r['rss_growth_mib'][name]:.0f})" for name, _, _ in STAGES)
        anon = " / ".join(f"{r[name]['peak_anon_rss_mib']:.0f} (+{r['anon_growth_mib'][name]:.0f})"
                          for name, _, _ in STAGES)
        print(f" {r['rows']:>10,} | {r['total_seconds']:>6.1f} ({r['work_seconds']:>5.1f}) | "
              f"{r['rows_per_second']:>6,.0f} | {r['work_us_per_row']:>11.1f} | {rss} | {anon} | {r['arrow_mib']:.0f}")
    for prev, r in zip(results, results[1:]):  # fixed costs inside main() (tokenizer load, ...) cancel out
        r["marginal_work_us_per_row"] = round(1e6 * (r["work_seconds"] - prev["work_seconds"])
                                              / (r["rows"] - prev["rows"]), 2)
    per_row = [r["work_us_per_row"] for r in results]
    marginal = [r["marginal_work_us_per_row"] for r in results[1:]]
    print(f"[bench] work time per row: {' -> '.join(f'{x:.1f}' for x in per_row)} us (spread "
          f"{max(per_row) / min(per_row) - 1:.0%}, fixed costs included)")
    if marginal:
        spread = max(marginal) / min(marginal) - 1
        print(f"[bench] marginal work time per row between sizes: {' -> '.join(f'{x:.1f}' for x in marginal)} us; "
              f"spread {spread:.0%} ({'flat within 20%' if spread <= 0.2 else 'NOT flat within 20%'})")
    top = results[-1]
    for kind in ("rss", "anon"):
        worst = max(top[f"{kind}_growth_mib"].values())
        print(f"[bench] peak {'RSS' if kind == 'rss' else 'anonymous RSS'} grew by at most {worst:.0f} MiB from "
              f"{base['rows']:,} to {top['rows']:,} rows; split Arrow data {top['arrow_mib']:.0f} MiB "
              f"({'within' if worst <= top['arrow_mib'] else 'BEYOND'} the Arrow data)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    train = args.data_dir / "train.tsv"
    if not train.is_file():
        sys.exit(f"[bench] {train} not found: this benchmark reads SST-2 from ../shared/datasets/sst2")
    sentences = pd.read_csv(train, sep="\t", quoting=3, keep_default_na=False, dtype=str)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["task"].update(text_column="sentence", label_column="label", split_column="")
    results = []
    for rows in args.sizes:
        with tempfile.TemporaryDirectory(prefix="lmtune-scaling-") as tmp:
            work = Path(tmp)
            (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            write_input(sentences, rows, work / "input.tsv")
            input_mib = (work / "input.tsv").stat().st_size / 2**20
            row = {"rows": rows, "input_mib": round(input_mib, 1)}
            for name, src, dst in STAGES:
                row[name] = run_stage(name, work / src, work / dst, work)
                print(f"[bench] {rows:>9,} rows  {name:<8} {row[name]['seconds']:>8.2f} s  "
                      f"{rows / row[name]['seconds']:>10,.0f} rows/s  peak RSS {row[name]['peak_rss_mib']:>7.1f} MiB",
                      flush=True)
            total = sum(row[name]["seconds"] for name, _, _ in STAGES)
            row |= {"total_seconds": round(total, 2), "rows_per_second": round(rows / total, 1),
                    "us_per_row": round(1e6 * total / rows, 2),
                    "arrow_mib": round(sum(f.stat().st_size for f in (work / "splits").rglob("*.arrow")) / 2**20, 1)}
            results.append(row)
    print_summary(results)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"[bench] wrote {args.out}")


if __name__ == "__main__":
    main()
