"""A real `mlflow server` on 127.0.0.1: the pipeline logs and registers to it, the registered model loads back
and serves REST predictions, and when the server stops mid-pipeline the next stage fails fast (or, with
tracking optional, warns once and writes its metrics locally)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, run_module, tiny_overrides, write_params


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", proc)
        yield url, proc
    finally:
        stop(proc)


def stage(module: str, tmp_path: Path, params: Path, *paths: str, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri}
    return subprocess.run([sys.executable, "-m", module, *paths, "--params", str(params)], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_pipeline_against_a_real_server_that_stops_mid_pipeline(server, tmp_path, tiny_model):
    url, proc = server
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "tracking.log_model": True,
                                                     "tracking.registered_model": "served-model"})
    p = ["--params", str(params)]
    run_module("stages.clean", str(FIXTURES / "sentiment.csv"), str(tmp_path / "i"), str(tmp_path / "c.json"), *p,
               check=True)
    run_module("stages.tokenize", str(tmp_path / "i"), str(tmp_path / "t"), str(tmp_path / "t.json"), *p, check=True)
    run_module("stages.split", str(tmp_path / "t"), str(tmp_path / "s"), str(tmp_path / "s.json"), *p, check=True)
    trained = stage("stages.fine_tune", tmp_path, params, str(tmp_path / "s"), str(tmp_path / "model"),
                    str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt"), uri=url)
    assert trained.returncode == 0, trained.stderr[-3000:]

    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(url)
    model = mlflow.pyfunc.load_model("models:/served-model/1")
    assert set(model.predict(pd.DataFrame({"text": ["great phone"]}))["label"]) <= {"negative", "neutral", "positive"}

    serve_port = free_port()
    serving = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/served-model/1",
                                "--env-manager", "local", "--host", "127.0.0.1", "--port", str(serve_port)],
                               env={**os.environ, "MLFLOW_TRACKING_URI": url}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{serve_port}/ping", serving)
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [["great phone"], ["awful"]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{serve_port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
        assert len(predictions) == 2 and {"label", "score"} <= set(predictions[0])
    finally:
        stop(serving)

    stop(proc)  # the tracking server goes down between fine-tune and evaluate
    paths = (str(tmp_path / "s"), str(tmp_path / "model"), str(tmp_path / "reports"))
    start = time.time()
    failed = stage("stages.evaluate", tmp_path, params, *paths, uri=url)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert f"MLflow tracking store {url} is unreachable" in failed.stderr
    assert not (tmp_path / "reports/metrics.json").exists() and time.time() - start < 60

    optional = write_params(tmp_path / "optional.yaml", {**tiny_overrides(tiny_model), "tracking.required": False})
    done = stage("stages.evaluate", tmp_path, optional, *paths, uri=url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("without MLflow tracking") == 1
    assert json.loads((tmp_path / "reports/metrics.json").read_text())["test_examples"] == 9
