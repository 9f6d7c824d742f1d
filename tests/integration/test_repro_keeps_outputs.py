"""`dvc repro` with a stage that fails (#16 item 2): its last good outputs stay in place (dvc.yaml marks them
`persist`, so DVC does not delete them first; the stages write atomically), the message says so, `dvc status` names
only the changed input, and a repro after the fix works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmtune import io
from tests.conftest import ROOT
from tests.integration.test_dvc_pipeline import GIT_ENV, repro, set_param, sh, tiny_repo

KEPT = "the outputs of the last successful run are unchanged"


def failing_repro(repo: Path) -> str:
    """Run `dvc repro`, which must fail; return its output."""
    result = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, **GIT_ENV, "PYTHONPATH": str(repo)})
    assert result.returncode != 0, "dvc repro was expected to fail"
    return result.stdout + result.stderr


def status(repo: Path) -> dict:
    return json.loads(sh(repo, "dvc", "status", "--json").strip().splitlines()[-1])


def md5s(repo: Path, *paths: str) -> dict[str, str]:
    return {p: io.content_md5(repo / p) for p in paths}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model) -> Path:
    return tiny_repo(tmp_path_factory, tiny_model, files={".gitignore": ROOT / ".gitignore"})  # .lmtune-tmp/ ignored,
    # as in a clone


def test_bad_input_file_keeps_data_interim_and_clean_json_and_a_fixed_input_is_up_to_date(repo):
    kept = md5s(repo, "data/interim", "reports/clean.json")
    good = (repo / "data/demo/reviews.csv").read_bytes()
    (repo / "data/demo/reviews.csv").write_text("text,label\n")  # header only
    out = failing_repro(repo)
    assert "has a header but no data rows" in out and KEPT in out and "Traceback" not in out
    assert md5s(repo, "data/interim", "reports/clean.json") == kept
    assert status(repo) == {"clean": [{"changed deps": {"data/demo/reviews.csv": "modified"}}]}, \
        "only the input changed; no output is missing or modified"
    assert not list(repo.rglob(io.TMP_DIR))
    (repo / "data/demo/reviews.csv").write_bytes(good)
    assert status(repo) == {}, "with the input fixed, the kept outputs match dvc.lock"
    assert repro(repo) == set()


def test_bad_fine_tune_param_keeps_the_model_and_a_fixed_param_retrains(repo):
    model = md5s(repo, "models/model", "reports/train.json", "reports/metrics.json")
    set_param(repo, "fine_tune.learning_rate", -1.0)
    out = failing_repro(repo)
    assert "learning_rate must lie in" in out and KEPT in out and "Traceback" not in out
    assert md5s(repo, "models/model", "reports/train.json", "reports/metrics.json") == model
    assert set(status(repo)) == {"fine-tune"}, "only the stage whose params changed is out of date"
    set_param(repo, "fine_tune.learning_rate", 5e-4)
    assert repro(repo) == {"fine-tune", "evaluate"}
    assert md5s(repo, "models/model")["models/model"] != model["models/model"]
    assert status(repo) == {}
    assert not list(repo.rglob(io.TMP_DIR))
