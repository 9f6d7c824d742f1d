"""Quiet, fast stages (#15 item 5): the data stages start without importing torch, transformers or datasets, each
stage logs its params as one line, and no library warning reaches the user on the default pipeline."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, run_module, tiny_overrides, write_params

HEAVY = ("torch", "transformers", "datasets", "sklearn", "matplotlib", "mlflow")
# UserWarning, FutureWarning, logger warnings through the root logger or transformers' own handler ("[transformers] msg",
# which carries no level), and transformers' weight-loading table
WARNING_LINE = re.compile(r"Warning\b|\bWARNING\b|warnings\.warn|\[(transformers|datasets)\] |LOAD REPORT")


def imported_heavy(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("stage", ["clean", "tokenize", "split"])
def test_data_stage_module_imports_no_torch_transformers_or_datasets(stage):
    assert imported_heavy(f"import stages.{stage}") == [], \
        f"stages.{stage} imports these at start-up; import them inside the function that needs them"


def test_library_modules_the_data_stages_use_import_no_heavy_library():
    assert imported_heavy("import lmtune.config, lmtune.io, lmtune.text, lmtune.cli, lmtune.splitting, "
                          "lmtune.tasks") == []


def test_setup_logging_imports_nothing_heavy_and_still_quiets_transformers():
    code = ("from lmtune.cli import setup_logging\nsetup_logging()\nimport json, sys\n"
            "before = 'transformers' in sys.modules\nimport transformers\n"
            "from transformers.utils import logging as tl\n"
            "print(json.dumps([before, tl.is_progress_bar_enabled(), tl.get_verbosity()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [False, False, 30]  # 30: logging.WARNING


def test_params_line_is_one_line_of_dotted_keys(tmp_path):
    from lmtune.config import load_params, params_line

    params = load_params(write_params(tmp_path / "params.yaml", {"task.name": "ner"}))
    line = params_line(params, "task.name", "split")
    assert "\n" not in line and "split.seed=42" in line and line.startswith("task.name=ner ")
    assert "ner.label_all_tokens=false" in line, "the task's own section is added"
    assert "text_column" not in line, "only the keys asked for"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model) -> tuple[Path, dict[str, str]]:
    """clean -> tokenize -> split -> fine-tune -> evaluate as `python -m stages.<name>` on the fixture data with the
    repo's params.yaml (tiny model, model logged to MLflow as the default pipeline does): the folder and each
    stage's stderr."""
    root = tmp_path_factory.mktemp("quiet")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "tracking.log_model": True,
                                                  "tracking.registered_model": "quiet-test"})
    p = ["--params", str(params)]
    runs = {
        "clean": [str(FIXTURES / "sentiment.csv"), str(root / "interim"), str(root / "reports/clean.json")],
        "tokenize": [str(root / "interim"), str(root / "tokenized"), str(root / "reports/tokenize.json")],
        "split": [str(root / "tokenized"), str(root / "splits"), str(root / "reports/split.json")],
        "fine_tune": [str(root / "splits"), str(root / "model"), str(root / "reports"),
                      "--checkpoints", str(root / "checkpoints")],
        "evaluate": [str(root / "splits"), str(root / "model"), str(root / "reports")],
    }
    stderr = {}
    for stage, args in runs.items():
        result = run_module(f"stages.{stage}", *args, *p, cwd=root)
        assert result.returncode == 0, f"{stage} failed:\n{result.stderr[-3000:]}"
        stderr[stage] = result.stderr
    return root, stderr


@pytest.fixture(scope="module")
def pipeline_stderr(pipeline) -> dict[str, str]:
    return pipeline[1]


@pytest.mark.parametrize("stage", ["clean", "tokenize", "split", "fine_tune", "evaluate"])
def test_default_pipeline_stage_prints_no_warning(pipeline_stderr, stage):
    warnings = [line for line in pipeline_stderr[stage].splitlines() if WARNING_LINE.search(line)]
    assert warnings == [], f"{stage} shows the user warnings; fix their cause:\n" + "\n".join(warnings)


@pytest.mark.parametrize("stage", ["clean", "tokenize", "split", "fine_tune", "evaluate"])
def test_stage_logs_its_params_as_one_line_not_dataclasses(pipeline_stderr, stage):
    lines = [line for line in pipeline_stderr[stage].splitlines() if " INFO " in line and "params: " in line]
    assert len(lines) == 1 and "task.name=classification" in lines[0], pipeline_stderr[stage][-2000:]
    assert "Params(" not in pipeline_stderr[stage], "a whole dataclass was logged"


def test_model_card_is_in_the_model_directory_after_the_default_pipeline(pipeline):
    root, stderr = pipeline
    assert "Add type hints to the `predict` method" not in stderr["fine_tune"]
    assert (root / "model" / "README.md").is_file()


def test_uncut_encodes_of_sft_and_causal_give_no_sequence_length_advice(tiny_model):
    """They encode whole texts on purpose and cut them to tokenize.max_length themselves."""
    import logging

    from transformers import AutoTokenizer

    from lmtune import causal
    from lmtune.tasks import sft

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
        tokenizer.model_max_length = 8
        long_text = "good " * 40
        assert len(sft.encode(tokenizer, long_text)) == 40
        assert len(causal.prompt_ids(tokenizer, [long_text], 6)[0][0]) == 6
        causal.encode(tokenizer, ["good"], [long_text], 6, 6)
        assert not [m for m in messages if "longer than the specified maximum sequence length" in m]
        tokenizer(long_text)  # the test can fail: a plain call does give the advice
        assert [m for m in messages if "longer than the specified maximum sequence length" in m]
    finally:
        logging.getLogger("transformers").removeHandler(handler)


def test_fine_tune_names_the_new_head_weights_in_one_line_instead_of_transformers_table(pipeline_stderr):
    lines = [line for line in pipeline_stderr["fine_tune"].splitlines() if "new weights, randomly initialised" in line]
    assert len(lines) == 1 and "classifier.bias, classifier.weight" in lines[0], pipeline_stderr["fine_tune"][-2000:]
