"""Data is a param and a project holds several pipelines (issue #15 items 1-2); the docs' `dvc exp run -S
fine_tune.learning_rate=3e-5` works (issue #16 item 3). The real `dvc` on temporary git + DVC copies of the project."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmtune.config import NO_TARGET, load_params, params_from_dict
from lmtune.errors import ParamsError
from tests.conftest import FIXTURES, ROOT, run_module, tiny_overrides, write_params
from tests.integration.test_dvc_pipeline import sh, tiny_repo

STAGES = {"clean", "tokenize", "split", "fine-tune", "evaluate"}


def ran(output: str) -> set[str]:
    """Stages a `dvc repro`/`dvc exp run` ran: 'clean' at the root, 'pipelines/ner/dvc.yaml:clean' in a folder."""
    return set(re.findall(r"Running stage '([\w/.:-]+)'", output))


def set_params(path: Path, overrides: dict[str, object]) -> None:
    raw = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


pytestmark = pytest.mark.usefixtures("use_module_store")  # its own MLflow store: the pipelines' runs are counted


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model, module_store) -> Path:
    """The project with the tiny model, committed; nothing run yet (the first test's `dvc exp run` runs it all)."""
    return tiny_repo(tmp_path_factory, tiny_model, store=module_store, run=False,
                     files={"data/ner.conll": FIXTURES / "ner_en.conll"})


# --- issue #16 item 3: what `dvc exp run -S` writes is a valid float -------------------------------------------------

def test_docs_exp_run_with_learning_rate_3e_5_runs(repo):
    """docs/experiments.md: `dvc exp run -S fine_tune.learning_rate=3e-5`; DVC writes 3e-05, which YAML 1.1 reads
    as text."""
    out = sh(repo, "dvc", "exp", "run", "-S", "fine_tune.learning_rate=3e-5")
    assert ran(out) == STAGES
    assert re.search(r"learning_rate: 3e-05\b", (repo / "params.yaml").read_text())
    assert load_params(repo / "params.yaml").fine_tune.learning_rate == 3e-5
    assert "f1_macro" in json.loads((repo / "reports/summary.json").read_text())
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "learning rate 3e-5")


@pytest.mark.slow
def test_docs_queued_learning_rate_grid_runs(repo):
    """docs/experiments.md's grid with the same spellings: `dvc exp run --queue -S 'fine_tune.learning_rate=1e-5,3e-5'`,
    then run the queue."""
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "fine_tune.learning_rate=1e-5,3e-5")
    sh(repo, "dvc", "exp", "run", "--run-all", "-j", "1")
    table = json.loads(sh(repo, "dvc", "exp", "show", "--json").strip().splitlines()[-1])
    runs = [exp["revs"][0] for commit in table for exp in (commit.get("experiments") or [])]
    rates = {float(r["data"]["params"]["params.yaml"]["data"]["fine_tune"]["learning_rate"]) for r in runs
             if r["data"].get("metrics")}
    assert {1e-5, 3e-5} <= rates, runs  # queued runs ran in their own temporary folders: the workspace is as it was


# --- issue #15 item 1: data is a param ------------------------------------------------------------------------------

def test_switching_data_and_task_by_params_alone(repo):
    """`dvc exp run -S data.path=... -S task.name=ner` with dvc.yaml untouched; `dvc params diff` shows it."""
    pipeline = (repo / "dvc.yaml").read_bytes()
    try:
        out = sh(repo, "dvc", "exp", "run", "-S", "data.path=data/ner.conll", "-S", "task.name=ner")
        assert ran(out) == STAGES
        assert (repo / "dvc.yaml").read_bytes() == pipeline
        assert {"precision", "recall", "f1"} <= set(json.loads((repo / "reports/metrics.json").read_text()))
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["clean"]
        assert {"data/ner.conll", NO_TARGET} <= {d["path"] for d in lock["deps"]}  # both files are dependencies
        diff = json.loads(sh(repo, "dvc", "params", "diff", "--json").strip().splitlines()[-1])["params.yaml"]
        assert (diff["data.path"]["old"], diff["data.path"]["new"]) == ("data/demo/reviews.csv", "data/ner.conll")
        assert diff["task.name"]["new"] == "ner"
    finally:  # back to the committed sentiment run for the next tests (reports are in git, models in DVC)
        sh(repo, "git", "checkout", "--", ".")
        sh(repo, "git", "clean", "-fdq", "reports")
        sh(repo, "dvc", "checkout", "-q")
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")


def test_a_missing_data_file_fails_before_any_stage_runs(repo):
    result = subprocess.run([sys.executable, "-m", "dvc", "repro", "--dry"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0
    set_params(repo / "params.yaml", {"data.path": "data/absent.csv"})
    try:
        result = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, capture_output=True, text=True)
        assert result.returncode != 0 and "data/absent.csv" in result.stderr and "Traceback" not in result.stderr
        assert "Running stage" not in result.stdout
    finally:
        sh(repo, "git", "checkout", "--", "params.yaml")


def test_the_clean_stage_names_a_missing_target_file_and_exits_2(tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.name": "translation",
                                                "clean.input_format": "text", "data.target_path": "absent.de"})
    out = tmp_path / "interim"
    result = run_module("stages.clean", str(FIXTURES / "seq2seq_pairs.en"), str(out), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "absent.de: target file not found" in result.stderr and "data.target_path" in result.stderr
    assert not out.exists()


def test_the_old_target_file_key_says_where_it_moved():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["seq2seq"]["target_file"] = "data/pairs.de"
    with pytest.raises(ParamsError, match=r"seq2seq.target_file: moved to data.target_path"):
        params_from_dict(raw)


def test_a_target_file_for_a_task_without_targets_is_refused():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["target_path"] = "data/pairs.de"
    with pytest.raises(ParamsError, match=rf"data.target_path: only summarization and translation .* {NO_TARGET}"):
        params_from_dict(raw)


# --- issue #15 item 2: several pipelines in one project ------------------------------------------------------------

def lmtune_new(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmtune.cli", "new", *args], cwd=repo, capture_output=True,
                          text=True)


def test_lmtune_new_refuses_a_missing_data_file_and_an_existing_pipeline(repo):
    result = lmtune_new(repo, "pipelines/x", "--task", "ner", "--data", "data/absent.conll")
    assert result.returncode == 2 and "data/absent.conll: --data file not found" in result.stderr
    assert "Traceback" not in result.stderr and not (repo / "pipelines/x").exists()
    result = lmtune_new(repo, "pipelines/x", "--task", "nre", "--data", "data/ner.conll")
    assert result.returncode == 2 and "task.name: unknown task 'nre'" in result.stderr
    result = lmtune_new(repo, ".", "--task", "ner", "--data", "data/ner.conll")
    assert result.returncode == 2 and "below its root" in result.stderr


def test_two_pipelines_run_apart_and_a_change_in_one_reruns_nothing_in_the_other(repo, tiny_model, module_store):
    for folder, task, data in (("pipelines/sentiment", "classification", "data/demo/reviews.csv"),
                               ("pipelines/ner", "ner", "data/ner.conll")):
        result = lmtune_new(repo, folder, "--task", task, "--data", data)
        assert result.returncode == 0, result.stderr
        assert f"dvc repro {folder}/dvc.yaml" in result.stdout
        set_params(repo / folder / "params.yaml", tiny_overrides(tiny_model))
    assert lmtune_new(repo, "pipelines/ner", "--task", "ner", "--data", "data/ner.conll").returncode == 2  # no overwrite
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "two pipelines")

    out = sh(repo, "dvc", "repro", "--all-pipelines")
    assert ran(out) == {f"pipelines/{p}/dvc.yaml:{s}" for p in ("sentiment", "ner") for s in STAGES}  # root: as was
    for folder in ("pipelines/sentiment", "pipelines/ner"):
        assert (repo / folder / "models/model/lmtune.json").is_file()
        assert (repo / folder / "reports/summary.json").is_file()
    metrics = json.loads(sh(repo, "dvc", "metrics", "show", "--json").strip().splitlines()[-1])
    files = {f for rev in metrics.values() for f in rev["data"]}
    assert {"reports/summary.json", "pipelines/sentiment/reports/summary.json",
            "pipelines/ner/reports/summary.json"} <= files
    shown = sh(repo, "dvc", "exp", "show", "--no-pager", "--csv")
    assert "pipelines/ner/params.yaml:task.name" in shown or "pipelines/ner/params.yaml" in shown

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=module_store)
    for folder, task in (("pipelines/sentiment", "classification"), ("pipelines/ner", "ner")):
        experiment = client.get_experiment_by_name(folder)
        assert experiment is not None, f"no MLflow experiment {folder}"
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 1 and runs[0].data.params["task.name"] == task
        assert runs[0].data.tags["lmtune.dvc_data_md5"] != "not-in-dvc.lock"  # the folder's dvc.lock

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "ran both")
    set_params(repo / "pipelines/sentiment/params.yaml", {"fine_tune.learning_rate": 5e-4})
    status = json.loads(sh(repo, "dvc", "status", "--json").strip().splitlines()[-1])
    assert set(status) == {"pipelines/sentiment/dvc.yaml:fine-tune"}, status
    assert ran(sh(repo, "dvc", "repro", "--all-pipelines")) == {"pipelines/sentiment/dvc.yaml:fine-tune",
                                                                "pipelines/sentiment/dvc.yaml:evaluate"}
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")
