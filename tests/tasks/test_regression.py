"""Regression: every stage on the tiny model, numeric-label cleaning, the metric definitions, `lmtune predict`,
a real `dvc repro`, and a quality floor (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk

from lmtune import cli, metrics
from stages import clean
from tests.conftest import FIXTURES, run_module, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all
from tests.tasks.test_multilabel import repro_on_fixture

REGRESSION = {"task.name": "regression", "task.label_column": "score"}


def read(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("regression")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), **REGRESSION})
    return run_all(root, params, data=FIXTURES / "regression_reviews.csv")


@pytest.fixture
def params(tmp_path, tiny_model) -> Path:
    return write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), **REGRESSION})


def test_clean_reports_target_statistics_and_no_label_set(pipeline):
    summary = read(pipeline / "reports/clean.json")
    assert summary["rows_kept"] == 48 and summary["num_labels"] == 0
    assert summary["target"] == {"mean": 3.244792, "std": 0.98622, "min": 1.25, "max": 5.0}
    assert read(pipeline / "interim/meta.json")["labels"] == []


def test_tokenize_writes_float_targets_and_split_keeps_every_example(pipeline):
    ds = load_from_disk(str(pipeline / "tokenized"))
    assert ds.features["labels"].dtype in ("float32", "float64"), "MSELoss needs float targets"
    assert sorted(ds["labels"])[:2] == [1.25, 1.5]
    assert sum(s["examples"] for s in read(pipeline / "reports/split.json").values()) == 48


def test_fine_tune_saves_a_single_output_regression_head(pipeline):
    config = read(pipeline / "model/config.json")
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "value"}
    assert (pipeline / "reports/live/plots/metrics/eval/mse.tsv").is_file(), "validated on mse"


def test_evaluate_writes_error_metrics_predictions_and_a_scatter_plot(pipeline):
    m = read(pipeline / "reports/metrics.json")
    assert m["mse"] >= 0 and m["rmse"] == pytest.approx(np.sqrt(m["mse"]), abs=1e-5) and m["mae"] >= 0
    assert -1 <= m["pearson"] <= 1 and -1 <= m["spearman"] <= 1 and m["r2"] <= 1
    rows = [json.loads(line) for line in (pipeline / "reports/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == m["test_examples"] == 10 and set(rows[0]) == {"text", "target", "predicted", "error"}
    assert all(r["error"] == pytest.approx(r["predicted"] - r["target"], abs=1e-5) for r in rows)
    assert (pipeline / "reports/eval/figures/predicted_vs_actual.png").stat().st_size > 1000
    points = read(pipeline / "reports/plots/actual_vs_predicted/test.json")
    assert [(p["actual"], p["predicted"]) for p in points] == [(r["target"], r["predicted"]) for r in rows]
    assert [p.parent.name for p in (pipeline / "reports/plots").rglob("*.json")] == ["actual_vs_predicted"]


def test_lmtune_predict_returns_a_value_per_text(pipeline, tmp_path, capsys):
    texts = tmp_path / "in.txt"
    texts.write_text('The battery is superb and the screen is excellent.\n{"text": "The price is awful."}\n')
    cli.main(["predict", "--model", str(pipeline / "model"), "--input", str(texts)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["The battery is superb and the screen is excellent.", "The price is awful."]
    assert all(isinstance(r["value"], float) and np.isfinite(r["value"]) for r in rows)


def test_clean_rejects_non_numeric_labels_with_a_reason_and_counts_them(tmp_path, params):
    (tmp_path / "d.csv").write_text("text,score\ngood phone,4\ngood phone,4.0\nbad phone,n/a\nodd phone,inf\n"
                                    "new phone,nan\nold phone,\nfine phone, 2.5 \nfine phone,3\n")
    clean.main([str(tmp_path / "d.csv"), str(tmp_path / "out"), str(tmp_path / "c.json"), "--params", str(params)])
    summary = read(tmp_path / "c.json")
    assert summary["rejected_by_reason"] == {"conflicting_labels": 2, "duplicate": 1, "label_not_a_number": 3,
                                             "missing_label": 1}, "4 and 4.0 are one value: a duplicate"
    assert summary["rows_kept"] == 1 and summary["target"]["mean"] == 4.0
    rejected = (tmp_path / "out/rejected.csv").read_text().splitlines()
    assert rejected[1:4] == ["3,duplicate,4.0,good phone", "4,label_not_a_number,n/a,bad phone",
                             "5,label_not_a_number,inf,odd phone"]


def test_clean_fails_naming_the_row_and_column_when_no_label_is_a_number(tmp_path, params):
    (tmp_path / "d.csv").write_text("text,score\ngood phone,high\nbad phone,low\n")
    result = run_module("stages.clean", str(tmp_path / "d.csv"), str(tmp_path / "out"), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "d.csv: row 2: label 'high' in column 'score' is not a number" in result.stderr, result.stderr
    assert "task.label_column" in result.stderr and not (tmp_path / "out").exists()


def test_regression_metrics_match_hand_computed_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = metrics.regression_metrics(y, y)
    assert perfect["mse"] == 0 and perfect["mae"] == 0 and perfect["r2"] == 1
    assert perfect["pearson"] == pytest.approx(1) and perfect["spearman"] == pytest.approx(1)
    m = metrics.regression_metrics(y, np.array([2.0, 2.0, 3.0, 6.0]))  # errors 1, 0, 0, 2
    assert m["mse"] == pytest.approx(5 / 4) and m["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert m["mae"] == pytest.approx(3 / 4) and m["r2"] == pytest.approx(1 - 5 / 5)
    assert m["spearman"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1])
    flat = metrics.regression_metrics(y, np.full(4, 2.5))
    assert flat["pearson"] == 0 and flat["spearman"] == 0, "undefined correlation reported as 0, not NaN"


def test_dvc_repro_runs_the_regression_pipeline_end_to_end(tmp_path, tiny_model):
    m = repro_on_fixture(tmp_path, tiny_model, FIXTURES / "regression_reviews.csv", REGRESSION)
    assert {"mse", "rmse", "mae", "pearson", "spearman", "r2"} <= set(m) and m["test_examples"] == 10


@pytest.mark.slow
def test_packaged_checkpoint_learns_the_review_scores(tmp_path):
    """240 generated reviews scored 1-5 (36 in the test split), 10 epochs at learning rate 1e-4: the new output unit
    starts near 0 and must climb to the 1-5 range, which 4 epochs at 5e-5 do not reach (pearson 0.23). Measured on a
    2-core CPU (bf16, about 20 s of pipeline): pearson 0.975, spearman 0.972, mae 0.201, r2 0.927."""
    params = write_params(tmp_path / "params.yaml", {**REGRESSION, "fine_tune.epochs": 10,
                                                     "fine_tune.learning_rate": 1e-4, "tracking.log_model": False})
    run_all(tmp_path, params, data=FIXTURES / "regression_reviews_large.csv")
    m = read(tmp_path / "reports/metrics.json")
    assert m["pearson"] >= 0.93 and m["mae"] <= 0.35, m
