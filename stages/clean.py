"""Clean labelled data: normalise texts, drop unusable rows (each written out with its reason), map labels to ids.

dvc.yaml: python -m stages.clean ${data.path} data/interim reports/clean.json
In: the task's input file (CSV, TSV, JSONL, Parquet; CoNLL for ner, SQuAD JSON for qa, line-aligned text for seq2seq). Out: data.parquet, meta.json (labels, lowercase), rejected.csv; counts in a metrics JSON.
Params: data (data.target_path: seq2seq's target file), task, clean.
"""
from __future__ import annotations

import logging
from pathlib import Path

from lmtune import io
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params, params_line
from lmtune.errors import DataError
from lmtune.io import META_FILE
from lmtune.tasks import TASKS

logger = logging.getLogger(__name__)


def run(params: Params, in_path: Path, out_dir: Path) -> dict:
    result = TASKS[params.task.name].clean(in_path, params)
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        result.write(tmp)  # data.parquet, rejected.csv (text-level tasks: streamed in chunks)
        io.write_json(tmp / META_FILE, {"labels": result.labels, "lowercase": params.clean.lowercase,
                                        **({"cross_split_duplicates": result.summary["cross_split_duplicates"]}
                                           if "cross_split_duplicates" in result.summary else {})})  # for split.json
    rejected = sum(result.rejected_by_reason.values())
    return {
        "rows_in": result.rows_kept + rejected,
        "rows_kept": result.rows_kept,
        "rows_rejected": rejected,
        "rejected_by_reason": result.rejected_by_reason,
        "num_labels": len(result.labels),
        **result.summary,
    }


def check_inputs(params: Params, in_path: Path) -> None:
    """One clear error for a missing input or target file, before any reading (DVC reports a missing dependency
    itself; this covers runs outside DVC and a data.target_path set outside dvc.yaml)."""
    for path, what, key in ((in_path, "input file", "data.path"), (params.data.target, "target file",
                                                                     "data.target_path")):
        if path is not None and not path.exists():
            raise DataError(f"{path}: {what} not found; check the path (relative to the project root) or set "
                            f"{key}, e.g. dvc exp run -S {key}=data/my_file")


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["input"], ["out_dir", "metrics"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    check_inputs(params, args.input)
    logger.info("params: %s", params_line(params, "data", "task", "clean"))
    with io.atomic_outputs(args.out_dir, args.metrics) as (out_dir, metrics):  # both move in together, or neither
        summary = run(params, args.input, out_dir)
        io.write_json(metrics, summary)
    logger.info("kept %d of %d rows; rejected %s (see %s)", summary["rows_kept"], summary["rows_in"],
                summary["rejected_by_reason"] or "none", args.out_dir / "rejected.csv")


if __name__ == "__main__":
    run_stage(main)
