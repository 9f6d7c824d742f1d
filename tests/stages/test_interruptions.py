"""Faults around training: a killed run resumes from its last checkpoint; tracking that is down fails fast or,
when optional, only warns; train/test leakage is reported or refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmtune import io
from stages import evaluate
from tests.conftest import ROOT, prepare_splits, tiny_overrides, write_params


def fine_tune_cmd(tmp_path: Path, params: Path) -> list[str]:
    return [sys.executable, "-m", "stages.fine_tune", str(tmp_path / "splits"), str(tmp_path / "model"),
            str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt"), "--params", str(params)]


def test_sigkilled_fine_tune_resumes_from_its_last_checkpoint_with_the_same_step_count(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "fine_tune.max_steps": 600,
                                                     "fine_tune.batch_size": 2, "fine_tune.eval_strategy": "steps",
                                                     "fine_tune.eval_steps": 40, "fine_tune.logging_steps": 20})
    prepare_splits(tmp_path, params)
    system_tmp = tmp_path / "system-tmp"  # the kill must leave nothing in the system temp folder
    system_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(system_tmp)}
    proc = subprocess.Popen(fine_tune_cmd(tmp_path, params), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list((tmp_path / "ckpt").glob("checkpoint-*")):
        time.sleep(0.2)
    time.sleep(1.0)  # let the checkpoint finish writing (an incomplete one is skipped on resume anyway)
    assert proc.poll() is None, "the run finished before it could be killed; raise max_steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model").exists(), "a killed run leaves no model output"
    assert not list(system_tmp.iterdir()) and not list(tmp_path.rglob(io.TMP_DIR)), "nor temporary files"
    done = subprocess.run(fine_tune_cmd(tmp_path, params), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "reports/train.json").read_text())
    assert summary["resumed"] is True and summary["global_steps"] == 600
    assert "resuming from" in done.stderr


def test_unreachable_tracking_server_fails_fast_before_training(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", tiny_overrides(tiny_model))
    prepare_splits(tmp_path, params)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # nothing listens
    start = time.time()
    result = subprocess.run(fine_tune_cmd(tmp_path, params), cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "MLflow tracking store http://127.0.0.1:9 is unreachable" in result.stderr
    assert "tracking.required: false" in result.stderr
    assert "Running training" not in result.stderr and not (tmp_path / "model").exists()
    assert time.time() - start < 60


def test_git_repo_without_commits_stops_fine_tune_with_what_to_do(tmp_path, tiny_model):
    """DVCLive fails with a traceback in a git repo that has no commit; the stage says so first, before training."""
    params = write_params(tmp_path / "params.yaml", tiny_overrides(tiny_model))
    prepare_splits(tmp_path, params)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run(fine_tune_cmd(tmp_path, params), cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no commits yet" in result.stderr and "git commit" in result.stderr
    assert "Running training" not in result.stderr and not (tmp_path / "model").exists()


def test_optional_tracking_trains_anyway_and_warns(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "tracking.required": False})
    prepare_splits(tmp_path, params)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    result = subprocess.run(fine_tune_cmd(tmp_path, params), cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("continuing without MLflow tracking") == 1
    assert (tmp_path / "reports/train.json").is_file() and not (tmp_path / "model/mlflow_run.json").exists()


def test_leaked_texts_are_found_after_normalisation():
    assert evaluate.leaked_texts(["Great  Phone", "meh"], ["great phone", "new text"]) == ["great phone"]


def test_fail_on_leakage_refuses_to_evaluate(tmp_path, tiny_model):
    from datasets import DatasetDict, load_from_disk

    from lmtune.config import load_params
    from lmtune.errors import DataError

    params_path = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "evaluate.fail_on_leakage": True})
    splits = prepare_splits(tmp_path, params_path)
    data = load_from_disk(str(splits))
    leaky = DatasetDict({"train": data["train"], "validation": data["validation"],
                         "test": data["test"].add_item(data["train"][0])})
    leaky.save_to_disk(str(tmp_path / "leaky"))
    with pytest.raises(DataError, match="1 test text\\(s\\) also appear in train"):
        evaluate.run(load_params(params_path), tmp_path / "leaky", tmp_path / "no-model", tmp_path / "reports")


def test_ctrl_c_stops_cleanly_with_a_checkpoint_and_exit_130(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "fine_tune.max_steps": 3000,
                                                     "fine_tune.batch_size": 2, "fine_tune.eval_strategy": "steps",
                                                     "fine_tune.eval_steps": 2000})
    prepare_splits(tmp_path, params)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(fine_tune_cmd(tmp_path, params), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    lines = []
    while time.time() < deadline:  # wait until training has started
        line = proc.stderr.readline()
        lines.append(line)
        if "Running training" in line or not line:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(lines) + rest
    assert "run `dvc repro` again to resume" in rest and "Traceback" not in rest
    assert list((tmp_path / "ckpt").glob("checkpoint-*")), "a checkpoint is saved on Ctrl-C"
    assert not (tmp_path / "model").exists()
