"""Regression targets are standardised for training (train split's mean and std, stored in the model config) and
every output stays in the original units: validation and test metrics, predictions, `lmtune predict`, MLflow."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import load_from_disk

from lmtune import cli
from lmtune.tasks import regression
from tests.conftest import FIXTURES, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

SHIFT, SCALE = 2000.0, 1000.0  # review scores 1.25..5 become prices 3250..7000


def read(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("regression-thousands")
    with open(FIXTURES / "regression_reviews_large.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    data = root / "prices.csv"
    pd.DataFrame({"text": [r["text"] for r in rows],
                  "price": [float(r["score"]) * SCALE + SHIFT for r in rows]}).to_csv(data, index=False)
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "regression",
                                                 "task.label_column": "price", "fine_tune.epochs": 8})
    return run_all(root, params, data=data)


def test_the_train_splits_mean_and_std_are_stored_with_the_model(pipeline):
    train = np.asarray(load_from_disk(str(pipeline / "splits"))["train"]["labels"], dtype=np.float64)
    scaling = read(pipeline / "model/config.json")[regression.SCALING]
    assert scaling["mean"] == pytest.approx(train.mean()) and scaling["std"] == pytest.approx(train.std())
    assert 4000 < scaling["mean"] < 6000 and scaling["std"] > 300, "the targets are in the thousands"


def test_a_run_with_targets_in_the_thousands_learns_and_reports_in_original_units(pipeline):
    m = read(pipeline / "reports/metrics.json")
    test = np.asarray(load_from_disk(str(pipeline / "splits"))["test"]["labels"], dtype=np.float64)
    assert m["mae"] < test.std(), f"no better than a constant guess in the thousands: {m}"
    assert m["pearson"] > 0.3, f"learned nothing from the texts: {m}"
    rows = [json.loads(line) for line in (pipeline / "reports/eval/predictions.jsonl").read_text().splitlines()]
    predicted = np.array([r["predicted"] for r in rows])
    assert 3000 < predicted.mean() < 7500 and predicted.std() > 100, "predictions in the targets' units"
    assert [r["target"] for r in rows] == pytest.approx(test.tolist())
    plot = read(pipeline / "reports/plots/actual_vs_predicted/test.json")
    assert [p["predicted"] for p in plot] == pytest.approx(predicted.tolist())


def test_validation_metrics_are_in_original_units_and_only_the_loss_is_standardised(pipeline):
    train = read(pipeline / "reports/train.json")
    assert train["best_metric"] > 1000, f"validation mse should be in price units squared: {train['best_metric']}"
    assert train["train_loss"] < 5, "the training loss is in standard units"


def test_lmtune_predict_and_the_mlflow_model_answer_in_original_units(pipeline, tmp_path, capsys):
    from lmtune.serving import LmtuneModel

    texts = ["The battery is superb and the screen is excellent.", "The price is awful and the support is poor."]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    cli.main(["predict", "--model", str(pipeline / "model"), "--input", str(tmp_path / "in.txt")])
    values = [json.loads(line)["value"] for line in capsys.readouterr().out.splitlines()]
    assert len(values) == 2 and all(2000 < v < 8000 for v in values), values
    served = LmtuneModel()
    served.load_context(SimpleNamespace(artifacts={"model_dir": str(pipeline / "model")}))
    out = served.predict(None, pd.DataFrame({"text": texts}))
    assert out["value"].tolist() == pytest.approx(values, abs=1e-4)


def test_the_loss_is_in_standard_units_and_the_logits_in_original_ones(tiny_model):
    model = regression.load_model(str(tiny_model), [], "main").eval()
    targets = np.array([3000.0, 5000.0, 7000.0])
    scaling = regression.standardize_targets(model, targets)
    assert scaling == pytest.approx({"mean": 5000.0, "std": float(np.std(targets))})
    batch = {"input_ids": torch.tensor([[2, 5, 3], [2, 6, 3], [2, 7, 3]]), "attention_mask": torch.ones(3, 3)}
    labels = torch.tensor(targets, dtype=torch.float32)
    with torch.no_grad():
        out = model(**batch, labels=labels)
    raw = (out.logits[:, 0] - scaling["mean"]) / scaling["std"]
    z = (labels - scaling["mean"]) / scaling["std"]
    assert out.loss.item() == pytest.approx(torch.mean((raw - z) ** 2).item(), rel=1e-4)
    assert out.logits.abs().min() > 1000, "outputs are un-standardised: near the mean, not near 0"
    regression.standardize_targets(model, targets)  # again (a second trainer): hooks are not stacked
    with torch.no_grad():
        assert model(**batch).logits == pytest.approx(out.logits.numpy(), rel=1e-5)


def test_a_constant_target_gets_unit_std_rather_than_a_division_by_zero(tiny_model):
    model = regression.load_model(str(tiny_model), [], "main")
    assert regression.standardize_targets(model, np.full(4, 2500.0)) == {"mean": 2500.0, "std": 1.0}


def test_a_lora_model_is_scaled_once_through_the_model_it_wraps(tiny_model):
    import dataclasses

    from lmtune import training
    from lmtune.config import load_params
    from tests.conftest import ROOT

    ft = dataclasses.replace(load_params(ROOT / "params.yaml").fine_tune, lora_rank=4)
    model = training.apply_lora(regression.load_model(str(tiny_model), [], "main"), ft).eval()
    regression.standardize_targets(model, np.array([1000.0, 3000.0]))
    batch = {"input_ids": torch.tensor([[2, 5, 3], [2, 6, 3]]), "attention_mask": torch.ones(2, 3)}
    labels = torch.tensor([1000.0, 3000.0])
    with torch.no_grad():
        out = model(**batch, labels=labels)
    z, raw = (labels - 2000.0) / 1000.0, (out.logits[:, 0] - 2000.0) / 1000.0
    assert out.loss.item() == pytest.approx(torch.mean((raw - z) ** 2).item(), rel=1e-4), "labels standardised once"
    merged = model.merge_and_unload()  # what save_model writes: the config carries the figures
    assert getattr(merged.config, regression.SCALING) == {"mean": 2000.0, "std": 1000.0}
