"""Multi-process training through torchrun (DDP, gloo on CPU): a params value asks for 2 processes; the model
trains, only rank 0 writes outputs and logs to MLflow, and results match the single-process run."""
from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import prepare_splits, run_module, tiny_overrides, write_params


def fine_tune(tmp_path: Path, name: str, overrides: dict) -> dict:
    params = write_params(tmp_path / f"{name}.yaml", overrides)
    out = tmp_path / name
    result = run_module("stages.fine_tune", str(tmp_path / "splits"), str(out / "model"), str(out / "reports"),
                        "--checkpoints", str(out / "ckpt"), "--params", str(params))
    assert result.returncode == 0, result.stderr[-4000:]
    run_module("stages.evaluate", str(tmp_path / "splits"), str(out / "model"), str(out / "reports"), "--params",
               str(params), check=True)
    return {"train": json.loads((out / "reports/train.json").read_text()),
            "test": json.loads((out / "reports/metrics.json").read_text()), "log": result.stderr, "dir": out}


def test_two_process_torchrun_trains_with_rank_zero_outputs_and_matches_single_process(tmp_path, tiny_model):
    base = {**tiny_overrides(tiny_model), "fine_tune.epochs": 4, "fine_tune.learning_rate": 3e-4}
    params = write_params(tmp_path / "data.yaml", base)
    prepare_splits(tmp_path, params)
    single = fine_tune(tmp_path, "single", {**base, "tracking.experiment": "ddp-single"})
    ddp = fine_tune(tmp_path, "ddp", {**base, "fine_tune.num_processes": 2, "fine_tune.batch_size": 4,
                                      "tracking.experiment": "ddp-two"})  # same effective batch: 2 x 4 = 8

    assert "launching 2 processes with torchrun" in ddp["log"]
    assert "effective batch size: 8 (4 per device x 1 accumulation x 2 processes)" in ddp["log"]
    assert ddp["train"]["global_steps"] == single["train"]["global_steps"]
    assert abs(ddp["train"]["train_loss"] - single["train"]["train_loss"]) < 0.15
    assert abs(ddp["test"]["accuracy"] - single["test"]["accuracy"]) <= 0.34  # 9 test texts: 3 of them
    assert (ddp["dir"] / "model/model.safetensors").is_file() and not (ddp["dir"] / "ckpt").exists()
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("ddp-two").experiment_id])
    assert len(runs) == 1, "only rank 0 logs to MLflow"


def test_two_process_torchrun_trains_a_mean_pooling_head(tmp_path, tiny_model):
    base = {**tiny_overrides(tiny_model), "fine_tune.pooling": "mean"}
    params = write_params(tmp_path / "data.yaml", base)
    prepare_splits(tmp_path, params)
    ddp = fine_tune(tmp_path, "ddp", {**base, "fine_tune.num_processes": 2, "fine_tune.batch_size": 4,
                                      "tracking.experiment": "ddp-mean"})
    assert "launching 2 processes with torchrun" in ddp["log"]
    assert json.loads((ddp["dir"] / "model/config.json").read_text())["model_type"] == "lmtune-mean-pooling"
    assert 0 <= ddp["test"]["accuracy"] <= 1
