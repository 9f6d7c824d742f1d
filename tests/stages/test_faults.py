"""Faults mid-write (#16 item 10): a full disk while saving the model, a read-only reports/ folder, a stage killed
with SIGKILL. Each stops with one line and no traceback, leaves the last good outputs as they were (and in step with
each other), and leaves no temporary file outside a `.lmtune-tmp/` folder, which the next run sweeps."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmtune import io
from lmtune.errors import LmtuneError
from tests.conftest import FIXTURES, ROOT, prepare_splits, run_module, tiny_overrides, write_params

# Runs a stage module with one fault injected: `python fault.py MODE MODULE ARGS...`.
FAULT_RUNNER = '''
import contextlib, errno, os, runpy, sys, time
from pathlib import Path
from lmtune import io, training

mode, module = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
if mode == "enospc-saving-model":  # the disk fills up half-way through the weights
    def save_model(trainer, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.safetensors").write_bytes(b"\\0" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(path) / "model.safetensors"))
    training.save_model = save_model
elif mode == "hang-before-commit":  # everything written to temp paths; the test kills the process here
    real = io.atomic_outputs
    @contextlib.contextmanager
    def atomic_outputs(*paths):
        with real(*paths) as temps:
            yield temps
            Path(os.environ["FAULT_READY"]).touch()
            time.sleep(600)
    io.atomic_outputs = atomic_outputs
runpy.run_module(module, run_name="__main__", alter_sys=True)
'''


def run_with_fault(tmp_path: Path, mode: str, module: str, *args: str, tmpdir: Path | None = None,
                   wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    runner = tmp_path / "fault.py"
    runner.write_text(FAULT_RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAULT_READY": str(tmp_path / "ready")}
    if tmpdir is not None:
        env |= {"TMPDIR": str(tmpdir), "TMP": str(tmpdir), "TEMP": str(tmpdir)}
    cmd = [sys.executable, str(runner), mode, module, *args]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr", "w"))


def snapshot(*paths: Path) -> dict[str, str]:
    return {str(p): io.content_md5(p) for p in paths}


def temp_leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(io.TMP_DIR))


@contextlib.contextmanager
def read_only(folder: Path):
    """A folder nothing can be created in, renamed into or out of; as root (who ignores mode bits) the immutable
    attribute does it."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr: cannot make a folder read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_atomic_outputs_put_earlier_outputs_back_when_a_later_move_fails(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/part.txt").write_text("old data")
    (tmp_path / "report.json").write_text("old report")
    real_replace = os.replace

    def replace(src, dst):  # the second output's new copy cannot move in
        if Path(dst) == tmp_path / "report.json" and io.TMP_DIR in str(src) and not str(src).endswith(".old"):
            raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(LmtuneError, match=r"report.json: cannot write .*last successful run are unchanged"):
        with io.atomic_outputs(tmp_path / "data", tmp_path / "report.json") as (data, report):
            data.mkdir()
            (data / "part.txt").write_text("new data")
            report.write_text("new report")
    assert (tmp_path / "data/part.txt").read_text() == "old data"
    assert (tmp_path / "report.json").read_text() == "old report"
    assert not temp_leftovers(tmp_path)


def test_stale_temp_of_a_dead_process_is_swept_but_a_live_ones_is_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / io.TMP_DIR / f"{dead.stdout.strip()}-interim-x"
    live = tmp_path / io.TMP_DIR / f"{os.getpid()}-interim-y"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "data.parquet").write_bytes(b"x" * 100)
    io.write_json(tmp_path / "out.json", {})
    assert not stale.exists() and live.exists()


def test_read_only_reports_stops_clean_before_any_output_changes(tmp_path, tiny_params):
    out, metrics = tmp_path / "data/interim", tmp_path / "reports/clean.json"
    args = [str(FIXTURES / "sentiment.csv"), str(out), str(metrics), "--params", str(tiny_params)]
    run_module("stages.clean", *args, check=True)
    before = snapshot(out, metrics)
    with read_only(tmp_path / "reports"):
        result = run_module("stages.clean", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "reports: cannot write" in result.stderr and "chmod u+w" in result.stderr
    assert "the outputs of the last successful run are unchanged" in result.stderr
    assert "kept" not in result.stderr, "the stage stopped before doing any work"
    assert snapshot(out, metrics) == before
    assert not temp_leftovers(tmp_path)


def test_full_disk_while_saving_the_model_keeps_the_last_model_and_its_reports(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", tiny_overrides(tiny_model))
    prepare_splits(tmp_path, params)
    args = [str(tmp_path / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"), "--checkpoints",
            str(tmp_path / "ckpt"), "--params", str(params)]
    run_module("stages.fine_tune", *args, check=True)
    reports = [tmp_path / "reports" / name for name in ("train.json", "train_summary.json", "learning_curves.png")]
    before = snapshot(tmp_path / "model", *reports)
    result = run_with_fault(tmp_path, "enospc-saving-model", "stages.fine_tune", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "model.safetensors: cannot write (No space left on device); free some space" in result.stderr
    assert "the outputs of the last successful run are unchanged" in result.stderr
    assert snapshot(tmp_path / "model", *reports) == before, "the model and its reports stay in step"
    assert not temp_leftovers(tmp_path)


@pytest.mark.parametrize("stage", ["clean", "tokenize"])
def test_sigkilled_stage_leaves_temp_files_only_in_lmtune_tmp_and_the_next_run_sweeps_them(tmp_path, tiny_params,
                                                                                        stage):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    interim = tmp_path / "data/interim"
    clean_args = [str(FIXTURES / "sentiment.csv"), str(interim), str(tmp_path / "reports/clean.json")]
    args = {"clean": clean_args, "tokenize": [str(interim), str(tmp_path / "data/processed/tokenized"),
                                              str(tmp_path / "reports/tokenize.json")]}[stage]
    args += ["--params", str(tiny_params)]
    if stage == "tokenize":
        run_module("stages.clean", *clean_args, "--params", str(tiny_params), check=True)
    outputs = [Path(args[1]), Path(args[2])]
    before = {str(p): p.exists() and io.content_md5(p) for p in outputs}
    proc = run_with_fault(tmp_path, "hang-before-commit", f"stages.{stage}", *args, tmpdir=system_tmp, wait=False)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not (tmp_path / "ready").exists():
        time.sleep(0.1)
    assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {str(p): p.exists() and io.content_md5(p) for p in outputs} == before, "outputs untouched by the kill"
    assert not list(system_tmp.iterdir()), "nothing in the system temp folder"
    left = [p for p in tmp_path.rglob("*") if p.is_file() and io.TMP_DIR in p.parts]
    assert left, "the killed run had written its outputs to temp paths"
    relative = str(left[0].relative_to(tmp_path))  # as if in the project: the project's .gitignore applies
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", relative], cwd=ROOT)
    assert ignored.returncode == 0, f"{relative} is not git-ignored"
    run_module(f"stages.{stage}", *args, check=True)
    assert not temp_leftovers(tmp_path), "the next run swept the killed run's temp files"
    assert all(p.exists() for p in outputs)


def test_read_only_reports_stops_fine_tune_before_training(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", tiny_overrides(tiny_model))
    prepare_splits(tmp_path, params)
    (tmp_path / "reports").mkdir()
    with read_only(tmp_path / "reports"):
        result = run_module("stages.fine_tune", str(tmp_path / "splits"), str(tmp_path / "model"),
                            str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt"), "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "reports: cannot write" in result.stderr and "Running training" not in result.stderr
    assert not (tmp_path / "model").exists() and not temp_leftovers(tmp_path)
