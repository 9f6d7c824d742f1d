"""What a user reads after a run (issue #18): `dvc metrics show`, `dvc metrics diff` and `dvc exp show` lead with
the headline test metrics and fit a 160-column terminal; the MLflow run of a `dvc exp run` carries the experiment's
name, a description, the splits as datasets, and a tagged registered model version."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lmtune import tracking
from tests.integration.test_dvc_pipeline import sh, tiny_repo

WIDTH = 160
TEST = ["accuracy", "f1_macro", "precision_macro", "recall_macro"]  # classification's headline, sorted
TRAIN = ["train_samples_per_s", "train_steps", "val_best_f1_macro"]


def widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def columns(header: str) -> list[str]:
    return header.split()


pytestmark = pytest.mark.usefixtures("use_module_store")  # its own MLflow store: the splits' dataset is this repo's


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model, module_store) -> Path:
    return tiny_repo(tmp_path_factory, tiny_model, {"tracking.log_model": True}, module_store)  # a model version


def test_metrics_show_has_the_test_metrics_first_and_fits(repo):
    out = sh(repo, "dvc", "metrics", "show")
    lines = [line for line in out.splitlines() if line.strip()]
    assert columns(lines[0]) == ["Path", *TEST, *TRAIN], out
    assert lines[1].startswith("reports/summary.json")
    assert len(lines) == 2 and widest(out) <= WIDTH, out


def test_metrics_diff_and_exp_show_after_an_experiment(repo):
    name = "lower-lr"
    sh(repo, "dvc", "exp", "run", "-n", name, "-S", "fine_tune.learning_rate=1e-4")
    full = sh(repo, "dvc", "exp", "show")  # every param too: a pager scrolls sideways, the first screen leads
    header = next(line for line in full.splitlines() if "Experiment" in line)
    first_screen = columns(header[:WIDTH])
    assert first_screen[:2 + len(TEST) + len(TRAIN)] == ["Experiment", "Created", *TEST, *TRAIN], header
    changed = sh(repo, "dvc", "exp", "show", "--only-changed")  # what differs between the experiments
    assert widest(changed) <= WIDTH and "learning_rate" in changed and name in changed, changed

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "lower learning rate")
    diff = sh(repo, "dvc", "metrics", "diff", "HEAD~1", "--all")
    rows = [line.split()[:2] for line in diff.splitlines()[1:] if line.strip()]
    assert rows == [["reports/summary.json", m] for m in (*TEST, *TRAIN)], diff
    assert widest(diff) <= WIDTH, diff

    check_mlflow_run(repo, name)


def check_mlflow_run(repo: Path, exp_name: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    run_id = json.loads((repo / "models/model" / tracking.RUN_FILE).read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.run_name == exp_name
    tags = run.data.tags
    note = tags["mlflow.note.content"]
    headline = json.loads((repo / "reports/summary.json").read_text())
    assert "classification" in note and tags["lmtune.base_model"] in note and "data/processed/splits" in note
    assert f"f1_macro {headline['f1_macro']:.4g}" in note, note

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["split"]["outs"]
    dvc_hash = next(out["md5"] for out in lock if out["path"] == "data/processed/splits")
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    history = sh(repo, "git", "log", "--format=%H").split()
    assert set(inputs) == {"splits/train", "splits/validation", "splits/test"}
    for name, context in (("splits/train", "training"), ("splits/test", "testing")):
        dataset = inputs[name].dataset
        assert dataset.digest == dvc_hash
        source = json.loads(dataset.source)
        # one dataset per name and digest: the data first logged by the first run, at its commit
        assert source["path"] == "data/processed/splits" and source["rev"] in history
        assert {t.key: t.value for t in inputs[name].tags}["mlflow.data.context"] == context

    (version,) = client.search_model_versions(f"run_id = '{run_id}'")
    vtags = version.tags
    assert vtags["git_commit"] == tags["lmtune.git_commit"] and vtags["dvc_data_md5"] == dvc_hash
    assert vtags["task"] == "classification" and float(vtags["test_f1_macro"]) == pytest.approx(headline["f1_macro"])
    assert "val_best_f1_macro" in vtags


def test_run_name_outside_an_experiment(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert tracking.run_name("ner", "0123456789abcdef") == "ner-0123456"
    assert tracking.run_name("ner", "0123456789abcdef-dirty") == "ner-0123456-dirty"
    monkeypatch.setenv("DVC_EXP_NAME", "proof-knit")
    assert tracking.run_name("ner", "0123456789abcdef") == "proof-knit"


def test_headline_metrics_are_few_for_every_task():
    from lmtune.tasks import TASKS

    for name, names in tracking.HEADLINE_METRICS.items():
        assert len(names) <= 4, name
        if TASKS[name].metrics:  # sft validates on loss only; its headline is checked on its evaluate's output
            assert set(names) <= set(TASKS[name].metrics), name
    assert list(tracking.headline_metrics("unknown", dict.fromkeys("abcdef", 0.5))) == ["a", "b", "c", "d"]
