"""Tokenize the cleaned data with the model's fast tokenizer: batched, truncated to max_length, not padded.

dvc.yaml: python -m stages.tokenize data/interim data/processed/tokenized reports/tokenize.json
In: data.parquet + meta.json from clean. Out: a `datasets` Arrow directory (memory-mapped by later stages)
with meta.json (labels, lowercase, max_length) beside it. Params: task, model, tokenize.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lmtune import io
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params, params_line
from lmtune.io import DATA_FILE, META_FILE
from lmtune.tasks import TASKS

logger = logging.getLogger(__name__)


def run(params: Params, in_dir: Path, out_dir: Path) -> dict:
    from lmtune import models  # transformers (and torch): imported here, after the stage has logged its params

    spec = TASKS[params.task.name]
    tokenizer = models.load_tokenizer(params.model.name_or_path, params.model.revision, spec, params)  # refuses a bad pair
    meta = io.read_json(in_dir / META_FILE)
    # memory-mapped input and map() output, beside the output (not the system temp folder: swept if killed)
    with io.work_dir(Path(out_dir).parent) as work:
        ds = io.mapped_parquet(in_dir / DATA_FILE, work)
        tokenized, stats = spec.tokenize(ds, tokenizer, params, meta["labels"])
        with io.atomic_path(out_dir) as tmp:
            io.save_dataset(tokenized, tmp)
            io.write_json(tmp / META_FILE, {**meta, "max_length": params.tokenize.max_length})
        lengths = io.column_numpy(tokenized, "length")  # (examples,) int64
    return {"examples": len(lengths), **stats, "max_length": params.tokenize.max_length,
            "tokens_mean": round(float(lengths.mean()), 2), "tokens_p95": int(np.percentile(lengths, 95))}


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["in_dir"], ["out_dir", "metrics"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    logger.info("params: %s", params_line(params, "task.name", "model", "tokenize"))
    with io.atomic_outputs(args.out_dir, args.metrics) as (out_dir, metrics):  # both move in together, or neither
        summary = run(params, args.in_dir, out_dir)
        io.write_json(metrics, summary)
    logger.info("tokenized: %s", summary)


if __name__ == "__main__":
    run_stage(main)
