"""Evaluate the fine-tuned model on the test split (fp32) with the task's metrics, reports, predictions and plots,
plus a leakage check (test texts also in train or validation); metrics and plots are added to the fine-tune's
MLflow run.

dvc.yaml: python -m stages.evaluate data/processed/splits models/model reports
In: the split DatasetDict and the model directory. Out: reports/metrics.json (DVC metrics); reports/eval/ (task
reports such as per_class.json, predictions.jsonl, figures/*.png); reports/plots/<kind>/test.json (plot data drawn by
dvc.yaml's `plots:`). Params: task, the task's section, evaluate, tracking.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_from_disk
from transformers import AutoTokenizer

from lmtune import io, tracking
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params, params_line
from lmtune.errors import DataError
from lmtune.io import INFO_FILE
from lmtune.tasks import PLOT_KINDS, TASKS
from lmtune.text import normalize_text

logger = logging.getLogger(__name__)


def leaked_texts(seen: list[Any], test: list[Any]) -> list[Any]:
    """Distinct test texts whose case-folded normalised form also appears in `seen`, in test order. Distinct, so
    a long QA question counts once, not once per window (its windows share the question-and-context text). A
    sentence pair is a (text, text_pair) tuple and leaks when the whole pair, in that order, is seen."""
    def key(t: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(t, tuple):
            return tuple(normalize_text(part, lowercase=True) for part in t)
        return normalize_text(t, lowercase=True)

    seen_keys = {key(t) for t in seen}
    return list(dict.fromkeys(t for t in test if key(t) in seen_keys))


def leakage(data: DatasetDict) -> dict[str, list[str]]:
    """Test texts also found in train, and in validation (which picks the checkpoint, so a leak there inflates the
    test score too): {"train": [...], "validation": [...]}."""
    test = inputs(data["test"])
    return {name: leaked_texts(inputs(data[name]), test) for name in ("train", "validation")}


def inputs(ds: Dataset) -> list[Any]:
    """The `text` of each row, or (text, text_pair) for sentence pairs: what the leakage check compares."""
    if "text_pair" in ds.column_names:
        return list(zip(ds["text"], ds["text_pair"]))
    return ds["text"]


def run(params: Params, data_dir: Path, model_dir: Path, reports_dir: Path) -> dict:
    run_file = model_dir / tracking.RUN_FILE
    tracking_on = run_file.is_file() and tracking.connect(params.tracking.required)  # fail fast, before any work
    io.check_writable(reports_dir)
    data = load_from_disk(str(data_dir))
    found = leakage(data)
    leaks = list(dict.fromkeys(found["train"] + found["validation"]))
    where = f"train or validation ({len(found['train'])} in train, {len(found['validation'])} in validation)"
    if leaks and params.evaluate.fail_on_leakage:
        raise DataError(f"{data_dir}: {len(leaks)} test text(s) also appear in {where}, e.g. {leaks[0]!r}; remove "
                        f"the duplicates from the input or set evaluate.fail_on_leakage: false")
    if leaks:
        logger.warning("%d test text(s) also appear in %s (leakage), e.g. %r", len(leaks), where, leaks[0])
    spec, info = TASKS[params.task.name], io.read_json(model_dir / INFO_FILE)
    model = spec.load_model(str(model_dir), info["labels"], "main")
    # with the model's config and trust_remote_code=False, as lmtune predict: a mean-pooling config names lmtune's
    # own classes (registered on import); read again, it logs a type warning or asks on stdin whether to run code
    tokenizer = AutoTokenizer.from_pretrained(model_dir, config=model.config, trust_remote_code=False)
    result = spec.evaluate(model, tokenizer, data["test"], info["labels"], params)
    metrics = {k: round(v, 6) for k, v in result.metrics.items()}
    metrics |= {"test_examples": len(set(data["test"]["example_id"])), "leaked_test_texts": len(leaks),
                "leaked_test_texts_in_train": len(found["train"]),
                "leaked_test_texts_in_validation": len(found["validation"])}
    eval_dir, plots_dir = reports_dir / "eval", reports_dir / "plots"
    # all four move in together, or none; the folders are replaced whole, so no file of an earlier run lingers
    with io.atomic_outputs(eval_dir, plots_dir, reports_dir / "metrics.json", reports_dir / tracking.SUMMARY) \
            as (eval_tmp, plots_tmp, metrics_tmp, summary_tmp):
        eval_tmp.mkdir()
        for name, document in result.reports.items():
            io.write_json(eval_tmp / f"{name}.json", document)
        io.write_jsonl(eval_tmp / "predictions.jsonl", result.predictions)
        (eval_tmp / "figures").mkdir()
        for name, draw in result.figures.items():
            draw(eval_tmp / "figures" / name)
        for kind in PLOT_KINDS:  # every kind's directory exists; DVC skips the empty ones
            (plots_tmp / kind).mkdir(parents=True)
            if kind in result.plots:
                io.write_json(plots_tmp / kind / "test.json", result.plots[kind])
        io.write_json(metrics_tmp, metrics)
        io.write_json(summary_tmp, tracking.summary(params.task.name, metrics, reports_dir))  # DVC's metrics
    if tracking_on:
        artifacts = [reports_dir / "metrics.json", *sorted(p for p in eval_dir.rglob("*") if p.suffix in (".json", ".png"))]
        artifacts += [reports_dir / "learning_curves.png"] if (reports_dir / "learning_curves.png").is_file() else []
        tracking.log_to_run(io.read_json(run_file)["run_id"], {f"test_{k}": v for k, v in metrics.items()}, artifacts,
                            task=params.task.name)
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["data_dir", "model_dir"], ["reports_dir"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    logger.info("params: %s", params_line(params, "task.name", "evaluate"))
    metrics = run(params, args.data_dir, args.model_dir, args.reports_dir)
    logger.info("test metrics: %s", metrics)


if __name__ == "__main__":
    run_stage(main)
