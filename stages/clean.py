"""Clean labelled data: normalise texts, drop unusable rows (each written out with its reason), map labels to ids.

dvc.yaml: python -m stages.clean data/demo/reviews.csv data/interim reports/clean.json
In: the task's input file (CSV, TSV, JSONL, Parquet; CoNLL for ner, SQuAD JSON for qa, line-aligned text for seq2seq). Out: data.parquet, meta.json (labels, lowercase), rejected.csv; counts in a metrics JSON.
Params: task, clean.
"""
from __future__ import annotations

import logging
from pathlib import Path

from lmtune import io
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params
from lmtune.io import META_FILE
from lmtune.tasks import TASKS

logger = logging.getLogger(__name__)


def run(params: Params, in_path: Path, out_dir: Path) -> dict:
    result = TASKS[params.task.name].clean(in_path, params)
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        result.kept.to_parquet(tmp / "data.parquet", index=False)
        result.rejected.to_csv(tmp / "rejected.csv", index=False)
        io.write_json(tmp / META_FILE, {"labels": result.labels, "lowercase": params.clean.lowercase})
    return {
        "rows_in": len(result.kept) + len(result.rejected),
        "rows_kept": len(result.kept),
        "rows_rejected": len(result.rejected),
        "rejected_by_reason": {k: int(v) for k, v in result.rejected["reason"].value_counts().sort_index().items()},
        "num_labels": len(result.labels),
        **result.summary,
    }


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["input"], ["out_dir", "metrics"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    logger.info("task=%s clean=%s", params.task, params.clean)
    summary = run(params, args.input, args.out_dir)
    io.write_json(args.metrics, summary)
    logger.info("kept %d of %d rows; rejected %s (see %s)", summary["rows_kept"], summary["rows_in"],
                summary["rejected_by_reason"] or "none", args.out_dir / "rejected.csv")


if __name__ == "__main__":
    run_stage(main)
