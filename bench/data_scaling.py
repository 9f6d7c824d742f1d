"""Data-stage scaling benchmark: clean + tokenize + split on 10k, 100k and 1M rows, time per row and peak memory.

    python -m bench.data_scaling [--sizes 10000 100000 1000000]

Builds each input from SST-2 train.tsv (67,349 sentences) repeated with variations (copy k of a sentence ends in
" #k", so no row is a duplicate the clean stage would drop), writes it as TSV under a temporary directory, and runs
the three data stages as subprocesses with the packaged tokenizer, as `dvc repro` does. For each size it prints rows/s
and the peak resident memory (RSS) of each stage, and the time per row relative to the smallest size, and writes the
figures to reports/bench/data_scaling.json. The input file and the stages' outputs are on disk; what the table shows
is whether a stage's memory stays flat as rows grow (streaming, memory-mapped Arrow) or grows with them.
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


def run_stage(name: str, src: Path, dst: Path, work: Path) -> dict[str, float]:
    """Run one stage as a subprocess; return wall seconds and its peak RSS in MiB (from wait4's rusage)."""
    cmd = [sys.executable, "-m", f"stages.{name}", str(src), str(dst), str(work / f"{name}.json"),
           "--params", str(work / "params.yaml")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"[bench] stage {name} failed:\n{proc.stderr.read()[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


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
    base = results[0]["us_per_row"]
    print("\n rows       | s total | rows/s  | us/row (vs first) | peak RSS MiB clean / tokenize / split | split Arrow MiB")
    for r in results:
        r["time_per_row_vs_first"] = round(r["us_per_row"] / base, 3)
        print(f" {r['rows']:>10,} | {r['total_seconds']:>7.1f} | {r['rows_per_second']:>7,.0f} | "
              f"{r['us_per_row']:>6.1f} ({r['time_per_row_vs_first']:.2f}x) | "
              f"{r['clean']['peak_rss_mib']:.0f} / {r['tokenize']['peak_rss_mib']:.0f} / {r['split']['peak_rss_mib']:.0f}"
              f" | {r['arrow_mib']:.0f}")
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"[bench] wrote {args.out}")


if __name__ == "__main__":
    main()
