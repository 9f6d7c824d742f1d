"""Shared fixtures: offline guards, a tiny random-init BERT built from config, and small params files."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"  # real public data, read in place (see DEVELOPERS.md)
TEXT_FIXTURES = {".csv", ".tsv", ".conll", ".json", ".jsonl", ".txt", ".en", ".de"}

# Offline guard: a stray download or a write to the real tracking store fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A throwaway MLflow store for the whole session, inherited by subprocesses (dvc, stages)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow store of one test module's own, for tests that count or read back runs: MLflow keeps one dataset per
    name and digest, so another module's run on the same fixture data would own it. Use with `use_module_store`."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-module') / 'mlflow.db'}"


@pytest.fixture
def use_module_store(module_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_store)


@pytest.fixture(autouse=True)
def restore_tracking_uri(mlflow_store: str):
    """`mlflow.set_tracking_uri` also sets the environment variable; undo any test's change after it."""
    yield
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = mlflow_store
    mlflow.set_tracking_uri(mlflow_store)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a word-level vocab covering the fixture texts.

    Saved as a bare encoder (like the packaged checkpoint), so stages add a fresh task head on load.
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = set()
    for path in sorted(FIXTURES.iterdir()):  # every fixture text file, whatever the task
        if path.suffix in TEXT_FIXTURES:
            words |= set(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", path.read_text(encoding="utf-8").lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    out = tmp_path_factory.mktemp("tiny-bert")
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(out / "vocab.txt"), do_lower_case=True)  # transformers 5: `vocab`, not `vocab_file`
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_params(path: Path, overrides: dict[str, object]) -> Path:
    """Write the repo's params.yaml to `path` with "section.key" overrides applied."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def tiny_overrides(model_dir: Path) -> dict[str, object]:
    """Params that make the pipeline take seconds with the tiny model."""
    return {"model.name_or_path": str(model_dir), "fine_tune.epochs": 2, "fine_tune.batch_size": 8,
            "fine_tune.learning_rate": 1e-3, "fine_tune.logging_steps": 2, "split.val_fraction": 0.2,
            "split.test_fraction": 0.2, "fine_tune.early_stopping_patience": 0, "fine_tune.precision": "fp32",
            "tracking.log_model": False}


@pytest.fixture
def tiny_params(tmp_path: Path, tiny_model: Path) -> Path:
    return write_params(tmp_path / "params.yaml", tiny_overrides(tiny_model))


def run_module(module: str, *args: str, cwd: Path = ROOT, check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m module args` as users do; returns the completed process (stdout/stderr captured)."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def prepare_splits(tmp_path: Path, params: Path) -> Path:
    """clean -> tokenize -> split of the sentiment fixture under tmp_path, as subprocesses; returns the splits."""
    p = ["--params", str(params)]
    run_module("stages.clean", str(FIXTURES / "sentiment.csv"), str(tmp_path / "i"), str(tmp_path / "c.json"), *p,
               check=True)
    run_module("stages.tokenize", str(tmp_path / "i"), str(tmp_path / "t"), str(tmp_path / "t.json"), *p, check=True)
    run_module("stages.split", str(tmp_path / "t"), str(tmp_path / "splits"), str(tmp_path / "s.json"), *p, check=True)
    return tmp_path / "splits"


def copy_project(dest: Path) -> Path:
    """Copy what a fresh clone has (pipeline, code, params, demo data) into `dest`."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dest / name)
    for name in ("stages", "src", "data/demo"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "data/no-target", dest / "data/no-target")  # data.target_path's placeholder (a dvc.yaml dep)
    return dest


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory):
    """A function: family name (tests/families.py FAMILIES) -> its tiny checkpoint, built once per test session."""
    from tests.families import build_family

    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_family(name, tmp_path_factory.mktemp(f"tiny-{name}"))
        return built[name]

    return get
