"""The real `dvc` on a temporary git + DVC copy of the project: full repro, granular re-runs, metrics diff."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, copy_project, tiny_overrides, write_params

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def sh(repo: Path, *cmd: str) -> str:
    """Run a command in the repo (`dvc` through this interpreter, so the installed dvc is the one tested)."""
    cmd = (sys.executable, "-m", "dvc", *cmd[1:]) if cmd[0] == "dvc" else cmd
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(repo)}
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def init_repo(repo: Path) -> None:
    """git + DVC in `repo`, with everything committed (DVCLive and the run's lineage need a commit)."""
    for cmd in (("git", "init", "-q"), ("dvc", "init", "-q"), ("dvc", "config", "core.analytics", "false"),
                ("git", "add", "-A"), ("git", "commit", "-qm", "init")):
        sh(repo, *cmd)


def repro(repo: Path) -> set[str]:
    """Run `dvc repro`; return the stages that actually ran."""
    return set(re.findall(r"Running stage '([\w-]+)'", sh(repo, "dvc", "repro")))


def tiny_repo(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, overrides: dict | None = None,
              store: str | None = None, run: bool = True, files: dict[str, Path] | None = None) -> Path:
    """The project on the sentiment fixture with the tiny model, under git + DVC; with `run`, reproduced once and
    committed. `store`: the MLflow store its runs log to (else the session's); `files`: more files to copy in
    before the first commit (path in the repo -> source)."""
    repo = copy_project(tmp_path_factory.mktemp("repo"))
    for path, source in {"data/demo/reviews.csv": FIXTURES / "sentiment.csv", **(files or {})}.items():  # small, fast
        shutil.copy(source, repo / path)
    write_params(repo / "params.yaml", {**tiny_overrides(tiny_model), **(overrides or {})})
    with pytest.MonkeyPatch.context() as patch:
        if store:
            patch.setenv("MLFLOW_TRACKING_URI", store)
        init_repo(repo)
        if run:
            assert repro(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
            sh(repo, "git", "add", "-A")
            sh(repo, "git", "commit", "-qm", "first run")
    return repo


def set_param(repo: Path, dotted: str, value: object) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    section, key = dotted.split(".")
    raw[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model) -> Path:
    return tiny_repo(tmp_path_factory, tiny_model)


def test_full_repro_writes_metrics_and_a_second_repro_does_nothing(repo):
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert {"accuracy", "f1_macro"} <= set(metrics)
    assert repro(repo) == set()
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")


# Ordered from the last stage back: each change reruns its stage and everything downstream, nothing upstream.
RERUNS = [
    ("evaluate.batch_size", 16, {"evaluate"}, {"evaluate"}),
    ("fine_tune.learning_rate", 5e-4, {"fine-tune"}, {"fine-tune", "evaluate"}),
    ("split.seed", 7, {"split"}, {"split", "fine-tune", "evaluate"}),
    ("tokenize.max_length", 8, {"tokenize"}, {"tokenize", "split", "fine-tune", "evaluate"}),
    ("clean.lowercase", True, {"clean"}, {"clean", "tokenize", "split", "fine-tune", "evaluate"}),
]


@pytest.mark.parametrize("key,value,changed,reran", RERUNS, ids=[r[0] for r in RERUNS])
def test_changing_a_param_reruns_only_the_stages_that_use_it(repo, key, value, changed, reran):
    set_param(repo, key, value)
    status = json.loads(sh(repo, "dvc", "status", "--json").strip().splitlines()[-1])
    assert set(status) == changed, f"dvc status after changing {key}: {status}"
    assert repro(repo) == reran


def test_metrics_and_params_diff_between_two_commits(repo):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "--allow-empty", "-qm", "before")
    old = yaml.safe_load((repo / "params.yaml").read_text())["fine_tune"]["learning_rate"]
    set_param(repo, "fine_tune.learning_rate", 1e-4)
    assert repro(repo) == {"fine-tune", "evaluate"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "lower learning rate")
    params = json.loads(sh(repo, "dvc", "params", "diff", "HEAD~1", "HEAD", "--json").strip().splitlines()[-1])
    change = params["params.yaml"]["fine_tune.learning_rate"]
    assert (change["old"], change["new"]) == (old, 1e-4)
    metrics = json.loads(sh(repo, "dvc", "metrics", "diff", "HEAD~1", "HEAD", "--all", "--json")
                         .strip().splitlines()[-1])
    speed = metrics["reports/summary.json"]["train_samples_per_s"]  # the one DVC metrics file (issue #18)
    assert speed["old"] != speed["new"]
    assert "accuracy" in metrics["reports/summary.json"] and "reports/metrics.json" not in metrics


def test_dvc_plots_show_renders_every_plot(repo, tmp_path):
    out = tmp_path / "plots"
    sh(repo, "dvc", "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    for data in ("reports/live/plots/metrics/train/loss.tsv", "reports/live/plots/metrics/eval/f1_macro.tsv",
                 "reports/plots/confusion/test.json", "reports/plots/f1_by_label/test.json",
                 "reports/plots/precision_recall/test.json"):  # vega plots are titled by their data file
        assert f'"text": "{data}"' in html, data
    for png in ("reports/learning_curves.png", "reports/eval/figures/confusion_matrix.png",
                "reports/eval/figures/per_class_f1.png", "reports/eval/figures/precision_recall.png"):
        assert png.replace("/", "_") in html, png
    assert "failed to load" not in html


def test_forced_repro_with_the_same_seed_gives_byte_identical_metrics(repo):
    before = (repo / "reports/metrics.json").read_bytes()
    assert repro_forced(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
    assert (repo / "reports/metrics.json").read_bytes() == before


def repro_forced(repo: Path) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", sh(repo, "dvc", "repro", "--force")))


def test_push_then_fresh_clone_pull_is_up_to_date_and_the_pulled_model_predicts(repo, tmp_path):
    remote = tmp_path / "remote"
    sh(repo, "dvc", "remote", "add", "-f", "-d", "local", str(remote))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "--allow-empty", "-qm", "remote")
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(repo, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull")
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "status")
    assert repro(clone) == set()
    result = subprocess.run([sys.executable, "-m", "lmtune.cli", "predict", "--model", "models/model"], cwd=clone,
                            input="great phone\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in {"negative", "neutral", "positive"}


def test_queued_learning_rate_grid_runs_and_exp_show_compares_results(repo):
    """The hyper-parameter search recipe from docs/experiments.md: queue a grid, start the queue, compare."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "--allow-empty", "-qm", "before grid")
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "fine_tune.learning_rate=1e-3,3e-4")
    sh(repo, "dvc", "queue", "start", "-j", "1")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = sh(repo, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    table = json.loads(sh(repo, "dvc", "exp", "show", "--json").strip().splitlines()[-1])
    results = [exp for commit in table for exp in (commit.get("experiments") or [])]
    rates = set()
    for exp in results:
        data = exp["revs"][0]["data"]
        rates.add(data["params"]["params.yaml"]["data"]["fine_tune"]["learning_rate"])
        assert {"accuracy", "val_best_f1_macro"} <= set(data["metrics"]["reports/summary.json"]["data"])
    assert rates == {1e-3, 3e-4}
