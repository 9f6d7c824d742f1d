"""Evaluate the fine-tuned model on the test split (fp32): metrics, per-class report, confusion matrix,
predictions, a train/test leakage check; metrics and plots are added to the fine-tune's MLflow run.

dvc.yaml: python -m stages.evaluate data/processed/splits models/model reports
In: the split DatasetDict and the model directory. Out: reports/metrics.json (DVC metrics), per_class.json,
predictions.jsonl, plots/*.json (confusion, per-class F1, precision-recall) and their PNGs. Params: task, evaluate, tracking.
"""
from __future__ import annotations

import logging
from pathlib import Path

from datasets import load_from_disk
from transformers import AutoTokenizer

from lmtune import io, plots, tracking
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, load_params
from lmtune.errors import DataError
from lmtune.io import INFO_FILE
from lmtune.tasks import TASKS
from lmtune.text import normalize_text

logger = logging.getLogger(__name__)


def leaked_texts(train: list[str], test: list[str]) -> list[str]:
    """Test texts whose case-folded normalised form also appears in train."""
    def key(t: str) -> str:
        return normalize_text(t, lowercase=True)

    seen = {key(t) for t in train}
    return [t for t in test if key(t) in seen]


def run(params: Params, data_dir: Path, model_dir: Path, reports_dir: Path) -> dict:
    run_file = model_dir / tracking.RUN_FILE
    tracking_on = run_file.is_file() and tracking.connect(params.tracking.required)  # fail fast, before any work
    data = load_from_disk(str(data_dir))
    leaks = leaked_texts(data["train"]["text"], data["test"]["text"])
    if leaks and params.evaluate.fail_on_leakage:
        raise DataError(f"{data_dir}: {len(leaks)} test text(s) also appear in train, e.g. {leaks[0]!r}; remove the "
                        f"duplicates from the input or set evaluate.fail_on_leakage: false")
    if leaks:
        logger.warning("%d test text(s) also appear in train (leakage), e.g. %r", len(leaks), leaks[0])
    spec, info = TASKS[params.task.name], io.read_json(model_dir / INFO_FILE)
    model = spec.load_model(str(model_dir), info["labels"], "main")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    result = spec.evaluate(model, tokenizer, data["test"], info["labels"], params.evaluate.batch_size)
    metrics = {k: round(v, 6) for k, v in result.metrics.items()}
    metrics |= {"test_examples": len(data["test"]), "leaked_test_texts": len(leaks)}
    io.write_json(reports_dir / "per_class.json", result.per_class)
    io.write_jsonl(reports_dir / "predictions.jsonl", result.predictions)
    io.write_json(reports_dir / "plots" / "confusion.json",
                  [{"actual": p["label"], "predicted": p["predicted"]} for p in result.predictions])
    io.write_json(reports_dir / "plots" / "per_class_f1.json",
                  [{"label": name, "f1": round(v["f1-score"], 6)} for name, v in result.per_class.items()])
    io.write_json(reports_dir / "plots" / "precision_recall.json", result.pr_curve)
    plots.confusion_matrix(result.confusion, info["labels"], reports_dir / "confusion_matrix.png")
    plots.per_class_f1(result.per_class, reports_dir / "per_class_f1.png")
    pr_title = f"Precision-recall ({info['labels'][1]!r} vs rest)" if len(info["labels"]) == 2 else \
        "Precision-recall (micro-average, one-vs-rest)"
    plots.precision_recall(result.pr_curve, pr_title, reports_dir / "precision_recall.png")
    io.write_json(reports_dir / "metrics.json", metrics)
    if tracking_on:
        artifacts = [reports_dir / name for name in ("metrics.json", "per_class.json", "confusion_matrix.png",
                                                     "per_class_f1.png", "precision_recall.png",
                                                     "learning_curves.png") if (reports_dir / name).is_file()]
        tracking.log_to_run(io.read_json(run_file)["run_id"], {f"test_{k}": v for k, v in metrics.items()}, artifacts)
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, ["data_dir", "model_dir"], ["reports_dir"]).parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    logger.info("evaluate=%s", params.evaluate)
    metrics = run(params, args.data_dir, args.model_dir, args.reports_dir)
    logger.info("test metrics: %s", metrics)


if __name__ == "__main__":
    run_stage(main)
