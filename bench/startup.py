"""Start-up of the data stages: seconds from launch to the first log line (the params line: the stage has started
working) and to exit, for clean, tokenize and split run as `dvc repro` runs them (`python -m stages.<name>`).

    python -m bench.startup [--repeats 3] [--data data/demo/reviews.csv]

Each stage runs on the previous one's output in a temporary directory with the project's params.yaml and a throwaway
MLflow store; the medians (and minima) of --repeats runs are printed. Nothing is written in the project.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # not bench.common: it imports torch, which this benchmark times


def time_stage(name: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first INFO line, seconds to exit) of one run of stages.<name>."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"stages.{name}", *args, "--params", str(ROOT / "params.yaml")],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    first = None
    for line in proc.stderr:
        if first is None and " INFO " in line:
            first = time.perf_counter() - start
    if proc.wait():
        sys.exit(f"stages.{name} failed with exit code {proc.returncode}")
    return first if first is not None else float("nan"), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", type=Path, default=ROOT / "data/demo/reviews.csv")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}"}
        stages = {"clean": [str(args.data.resolve()), f"{out}/interim", f"{out}/clean.json"],
                  "tokenize": [f"{out}/interim", f"{out}/tokenized", f"{out}/tokenize.json"],
                  "split": [f"{out}/tokenized", f"{out}/splits", f"{out}/split.json"]}
        for name, stage_args in stages.items():
            first, total = zip(*(time_stage(name, stage_args, env) for _ in range(args.repeats)))
            print(f"{name:9s} first log line {statistics.median(first):.2f} s (min {min(first):.2f}), "
                  f"exit {statistics.median(total):.2f} s (min {min(total):.2f})  [median of {args.repeats}]")


if __name__ == "__main__":
    main()
