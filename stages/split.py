"""Split the tokenized data into train / validation / test: by a split column when the data has one, else by
fractions and a seed, stratified by label, keeping all rows of one example in one split.

dvc.yaml: python -m stages.split data/processed/tokenized data/processed/splits reports/split.json
In: the tokenized `datasets` directory. Out: a DatasetDict directory with meta.json. Params: task, split.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from lmtune import io
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params, params_line
from lmtune.errors import DataError
from lmtune.io import META_FILE
from lmtune.splitting import SPLITS, assign_splits, carve_validation, label_counts, label_coverage
from lmtune.tasks import TASKS

logger = logging.getLogger(__name__)


def run(params: Params, in_dir: Path, out_dir: Path) -> dict:
    from datasets import DatasetDict, load_from_disk  # imported here, after the stage has logged its params

    ds = load_from_disk(str(in_dir))  # memory-mapped; columns are read as numpy arrays, never as Python lists
    labels = io.read_json(in_dir / META_FILE)["labels"]
    example_ids = io.column_numpy(ds, "example_id")
    column = TASKS[params.task.name].stratify_column
    # label names (one shared str object per label, not a copy per row) so errors name the class
    strata = np.asarray(labels, dtype=object)[io.column_numpy(ds, column)] if column else None
    source = f"split.val_fraction {params.split.val_fraction} of the examples"
    if params.task.split_column:
        split_of = io.column_numpy(ds, "split")
        members = {name: np.unique(example_ids[split_of == name]) for name in SPLITS}
        source = "the split column"
        if len(members["validation"]) == 0 and params.split.val_fraction > 0 and len(members["train"]):
            members["train"], members["validation"] = carve_validation(
                example_ids, strata, members["train"], params.split.val_fraction, params.split.seed)
            source = f"carved from train: split.val_fraction {params.split.val_fraction} of its examples"
            logger.info("the split column has no validation rows: validation is %d of %d train examples "
                        "(split.val_fraction %s, %s)", len(members["validation"]),
                        len(members["train"]) + len(members["validation"]), params.split.val_fraction,
                        "stratified by label" if strata is not None else "not stratified")
        elif len(members["validation"]) == 0:
            source = "none: the split column has no validation rows and split.val_fraction is 0"
            logger.warning("the split column has no validation rows and split.val_fraction is 0: no validation, so "
                           "no checkpoint selection and no early stopping (the last checkpoint is kept); set "
                           "split.val_fraction > 0 to carve validation from train")
    else:
        members = assign_splits(example_ids, strata, params.split.val_fraction, params.split.test_fraction,
                                params.split.seed)
    for name in ("train", "test"):
        if len(members[name]) == 0:
            raise DataError(f"{in_dir}: the {name} split is empty; check the split column values or fractions")
    rows = {name: np.flatnonzero(np.isin(example_ids, ids)) for name, ids in members.items()}
    summary = {name: {"examples": len(members[name]), "rows": len(rows[name])} for name in SPLITS}
    summary["validation"]["source"] = source
    meta = io.read_json(in_dir / META_FILE)
    if "cross_split_duplicates" in meta:  # clean's count of train copies of validation/test texts
        summary["train"]["cross_split_duplicates"] = meta["cross_split_duplicates"]
    counts = label_counts(ds, rows, len(labels)) if labels else None  # class ids or multi-hot; not per-token tags
    if counts is not None:  # per split: label_counts, labels_present, labels_absent; no train rows: an error
        for name, coverage in label_coverage(counts, labels, str(in_dir)).items():
            summary[name] |= coverage
    with io.atomic_path(out_dir) as tmp:
        io.save_dataset(DatasetDict({name: ds.select(rows[name]) for name in SPLITS}), tmp)
        shutil.copy(in_dir / META_FILE, tmp / META_FILE)
    return summary


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["in_dir"], ["out_dir", "metrics"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    logger.info("params: %s", params_line(params, "task.name", "task.split_column", "split"))
    with io.atomic_outputs(args.out_dir, args.metrics) as (out_dir, metrics):  # both move in together, or neither
        summary = run(params, args.in_dir, out_dir)
        io.write_json(metrics, summary)
    logger.info("examples per split: %s", {name: s["examples"] for name, s in summary.items()})


if __name__ == "__main__":
    run_stage(main)
