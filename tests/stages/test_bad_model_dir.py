"""A model directory that cannot be used is refused in one line before any work: weights without tokenizer files
(transformers 5 would build an empty tokenizer, every word [UNK], training at chance with exit 0), a tokenizer
without weights (an OSError traceback in fine-tune before), a path that does not exist (the Hub's "Repo id must be
in the form ..." before). Checked where the model is first read (tokenize, through models.load_tokenizer), again in
fine-tune (load_tokenizer, families.load_model) and in lmtune predict. Broken variants are copies of the tiny BERT."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lmtune import families, models
from lmtune.errors import LmtuneError
from lmtune.tasks import TASKS, classification
from stages import clean, fine_tune, split, tokenize
from tests.conftest import FIXTURES, run_module, tiny_overrides, write_params
from tests.unit.test_predict_input import fine_tuned_dir

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
NO_TOKENIZER = "has weights but no tokenizer files"
NO_WEIGHTS = "has no model weights (model.safetensors or pytorch_model.bin"


def without(source: Path, dest: Path, names: tuple[str, ...]) -> Path:
    shutil.copytree(source, dest)
    for name in names:
        (dest / name).unlink(missing_ok=True)
    return dest


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken-models")
    return {"weights_only": without(tiny_model, root / "weights-only", TOKENIZER_FILES),
            "tokenizer_only": without(tiny_model, root / "tokenizer-only", ("model.safetensors",)),
            "missing": root / "no-such-model"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """clean -> tokenize -> split of the sentiment fixture with the good tiny model, in-process."""
    root = tmp_path_factory.mktemp("bad-model-project")
    p = ["--params", str(write_params(root / "params.yaml", tiny_overrides(tiny_model)))]
    clean.main([str(FIXTURES / "sentiment.csv"), str(root / "interim"), str(root / "clean.json"), *p])
    tokenize.main([str(root / "interim"), str(root / "tokenized"), str(root / "tokenize.json"), *p])
    split.main([str(root / "tokenized"), str(root / "splits"), str(root / "split.json"), *p])
    return root


def params_for(root: Path, tiny_model: Path, model: str) -> list[str]:
    path = write_params(root / f"params-{abs(hash(model))}.yaml",
                        {**tiny_overrides(tiny_model), "model.name_or_path": model})
    return ["--params", str(path)]


# ---- the checks themselves, in-process ---------------------------------------------------------------------

def test_load_tokenizer_refuses_weights_without_tokenizer_files(broken):
    with pytest.raises(LmtuneError, match=rf"model\.name_or_path: '.*weights-only' {NO_TOKENIZER} .*it holds "
                                          r"config\.json, model\.safetensors\).*save_pretrained"):
        models.load_tokenizer(str(broken["weights_only"]), "main", TASKS["classification"])


def test_load_tokenizer_refuses_a_tokenizer_without_weights(broken):
    with pytest.raises(LmtuneError, match=rf"'.*tokenizer-only' {re.escape(NO_WEIGHTS)}"):
        models.load_tokenizer(str(broken["tokenizer_only"]), "main", TASKS["classification"])


@pytest.mark.parametrize("path", ["./no-such-model", "{tmp}/no-such-model", "~/lmtune-no-such-model-dir",
                                  "models/no-such-model", "a/b/c", "..\\model"])
def test_a_missing_directory_says_no_such_directory_not_the_hubs_repo_id_rule(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # models/x: the folder is here, so x is a local directory, not a Hub namespace
    path = path.format(tmp=tmp_path)
    with pytest.raises(LmtuneError, match=r"no such directory \(") as err:
        models.load_tokenizer(path, "main", TASKS["classification"])
    assert "Repo id" not in str(err.value) and path in str(err.value)


def test_a_hub_id_that_cannot_be_loaded_names_both_readings():
    """Hub ids are left to transformers (offline in tests: not cached); the message says it is no directory either."""
    assert not models.looks_local("bert-base-uncased") and not models.looks_local("google-bert/bert-base-uncased")
    with pytest.raises(LmtuneError, match=r"'someone/no-such-model-xyz' is neither a local directory \(no such "
                                          r"directory: .*\) nor a Hub model this machine can load"):
        models.load_tokenizer("someone/no-such-model-xyz", "main", TASKS["classification"])


def test_a_tokenizer_with_only_special_tokens_is_refused(broken):
    """The guard behind the file check, for Hub checkpoints: what transformers builds without tokenizer files."""
    empty = AutoTokenizer.from_pretrained(broken["weights_only"])
    with pytest.raises(LmtuneError, match="no vocabulary beyond its special tokens"):
        models.require_vocabulary(empty, "x", "model.name_or_path", "fix it")


def test_families_load_model_refuses_missing_weights_and_directories_in_one_line(broken):
    with pytest.raises(LmtuneError, match=rf"model: '.*tokenizer-only' {re.escape(NO_WEIGHTS)}"):
        classification.load_model(str(broken["tokenizer_only"]), ["a", "b"], "main")
    with pytest.raises(LmtuneError, match=r"model: '.*no-such-model': no such directory"):
        families.load_model(AutoModelForSequenceClassification, str(broken["missing"]), "main")
    # weights alone are enough for the model (the tokenizer is checked where it loads)
    assert families.load_model(AutoModelForSequenceClassification, str(broken["weights_only"]), "main", num_labels=2)


# ---- through the stages: tokenize (first to read the model), fine-tune, predict ------------------------------

@pytest.mark.parametrize("case, message", [("weights_only", NO_TOKENIZER), ("tokenizer_only", NO_WEIGHTS),
                                           ("missing", "no such directory")])
def test_tokenize_refuses_the_model_before_writing_anything(project, broken, tiny_model, tmp_path, case, message):
    out = tmp_path / "tokenized"
    with pytest.raises(LmtuneError, match=re.escape(message)):
        tokenize.main([str(project / "interim"), str(out), str(tmp_path / "t.json"),
                       *params_for(tmp_path, tiny_model, str(broken[case]))])
    assert not out.exists() and not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("case, message", [("weights_only", NO_TOKENIZER), ("tokenizer_only", NO_WEIGHTS)])
def test_fine_tune_refuses_the_model_before_training(project, broken, tiny_model, tmp_path, case, message):
    """The data tokenized with a good model, then model.name_or_path changed (fine-tune run on its own)."""
    with pytest.raises(LmtuneError, match=re.escape(message)):
        fine_tune.main([str(project / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"),
                        "--checkpoints", str(tmp_path / "checkpoints"),
                        *params_for(tmp_path, tiny_model, str(broken[case]))])
    assert not (tmp_path / "model").exists()


def test_as_commands_tokenize_and_predict_exit_2_with_one_line_and_no_traceback(project, broken, tiny_model,
                                                                                tmp_path):
    """As DVC and users run them: a subprocess each (seconds of start-up apiece, so only these two)."""
    result = run_module("stages.tokenize", str(project / "interim"), str(tmp_path / "t"), str(tmp_path / "t.json"),
                        *params_for(tmp_path, tiny_model, str(broken["weights_only"])))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if "ERROR" in line][0].count(NO_TOKENIZER) == 1
    assert not (tmp_path / "t").exists()
    model = fine_tuned_dir(tmp_path / "model", tiny_model)
    for name in TOKENIZER_FILES:
        (model / name).unlink(missing_ok=True)
    result = run_module("lmtune.cli", "predict", "--model", str(model), "--input", str(FIXTURES / "sentiment.csv"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"--model: '{model}' {NO_TOKENIZER}" in result.stderr and result.stdout == ""


def test_predict_refuses_a_fine_tuned_directory_without_weights(tiny_model, tmp_path, capsys, caplog):
    from lmtune import cli

    model = fine_tuned_dir(tmp_path / "model", tiny_model)
    (model / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "--model", str(model), "--input", str(FIXTURES / "sentiment.csv")])
    assert exit_info.value.code == 2 and f"--model: '{model}' {NO_WEIGHTS}" in caplog.text
    assert capsys.readouterr().out == ""
