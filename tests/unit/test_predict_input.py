"""`lmtune predict` input rules (lmtune.inference.read_requests, check_records): every bad input is one line on
stderr naming the line or field and the fix, exit code 2, no traceback and nothing on stdout; unusual but valid
input (a byte-order mark, CRLF, blank lines, UTF-16 with a BOM, stdin) is read. Every case runs through
lmtune.cli.main in this process (a traceback would fail the test as an uncaught exception); a few also run as
users run them, in subprocesses, which cost seconds each in interpreter start-up."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lmtune.errors import LmtuneError
from tests.conftest import ROOT

LABELS = ["negative", "positive"]


def fine_tuned_dir(out: Path, tiny_model: Path, pair_column: str = "") -> Path:
    """A model directory as the fine-tune stage leaves it, for predict's input handling: the tiny BERT with a
    classification head, its tokenizer, and the lmtune.json keys classification's predict reads. The fine-tune
    stage's own output is checked by the pipeline tests; this one takes a second instead of a training run."""
    from transformers import AutoTokenizer

    from lmtune.io import write_json
    from lmtune.tasks import classification

    classification.load_model(str(tiny_model), LABELS, "main", pooling="cls").save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    write_json(out / "lmtune.json", {"task": "classification", "labels": LABELS, "lowercase": True, "max_length": 32,
                                     "params": {"task": {"text_pair_column": pair_column}}})
    return out


def run_predict(args: list[str], stdin: bytes | None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmtune.cli", "predict", *args], cwd=ROOT, capture_output=True,
                          input=stdin if stdin is not None else b"", env={**os.environ, "PYTHONPATH": str(ROOT)})


def run_many(cases: dict[str, tuple[list[str], bytes | None]]) -> dict[str, subprocess.CompletedProcess]:
    """Run each case's predict command, three at a time (2 shared cores; each run is mostly start-up)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_predict, args, stdin) for name, (args, stdin) in cases.items()}
    return {name: future.result() for name, future in futures.items()}


# name -> (input bytes written to in.txt, or a special marker; the message expected, as a regex on one line)
BAD = {
    "empty_file": (b"", r"in\.txt: no input \(empty\); give one text or one JSON object per line"),
    "only_blank_lines": (b"\n   \n\r\n", r"in\.txt: no input \(only blank lines\)"),
    "text_is_a_number": (b'{"text": "fine"}\n{"text": 123}\n',
                         r"in\.txt line 2: field 'text' must be a string, got a number \(123\); quote it, "
                         r"e\.g\. \{\"text\": \"123\"\}"),
    "text_is_null": (b'{"text": null}\n', r"in\.txt line 1: field 'text' is null; give the text as a JSON string"),
    "text_is_blank": (b'{"text": "   "}\n', r"in\.txt line 1: field 'text' is empty; give a non-empty text"),
    "text_is_a_list": (b'{"text": ["a", "b"]}\n', r"line 1: field 'text' must be a string, got an array"),
    "text_is_missing": (b'{"id": 4}\n', r"line 1: missing field\(s\) \['text'\]; a classification model needs"),
    # line numbers count every line, blank ones too: the bad JSON is on line 3
    "line_is_not_json": (b'good movie\n\n{"text": "bad movie"\n',
                         r"in\.txt line 3: not valid JSON \(Expecting ',' delimiter at column 21\); give one JSON "
                         r"object or one plain text per line"),
    "not_utf8": (b"good movie\ncaf\xe9 bad\n", r"in\.txt line 2: not UTF-8 \(byte 0xe9 at byte 14\); save the input "
                                             r"as UTF-8"),
    "utf16_without_bom": ("good movie\n".encode("utf-16-le"), r"in\.txt line 1: contains NUL bytes \(UTF-16 without "
                                                              r"a byte-order mark\?\)"),
    "missing_input_file": (None, r"--input .*no-such-input\.txt: no such file; give a text or JSONL file, or pipe"),
    "input_is_a_directory": (None, r"--input .*: cannot read it \(Is a directory\)"),
    "missing_model_dir": (b"good movie\n", r"--model: '.*no-such-model': no such directory \(.*\); pass --model DIR"),
    "model_dir_without_lmtune_json": (b"good movie\n", r"--model: '.*' is not a model written by the fine-tune "
                                                      r"stage \(no lmtune\.json\)"),
    "batch_size_zero": (b"good movie\n", r"--batch-size 0: must be at least 1"),
    "pair_model_given_one_text": (b"good movie\n", r"in\.txt line 1: missing field\(s\) \['text_pair'\]"),
}
GOOD = {  # name -> (input bytes, whether it goes through stdin, the texts expected back in order)
    "bom_crlf_and_blank_lines": (b'\xef\xbb\xbfgood movie\r\n\r\n{"text": "bad movie", "id": 7}\r\n', False,
                                 ["good movie", "bad movie"]),
    "stdin": (b'good movie\n{"text": "bad movie", "id": 7}\n', True, ["good movie", "bad movie"]),
    "utf16_with_bom": ("good movie\nbad movie\n".encode("utf-16"), False, ["good movie", "bad movie"]),
    "old_mac_line_ends": (b"good movie\rbad movie\r", False, ["good movie", "bad movie"]),
}


SUBPROCESS = ("text_is_a_number", "not_utf8", "bom_crlf_and_blank_lines")  # the same cases, run as users run them


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, tuple[list[str], bytes | None]]:
    """name -> (the predict arguments, stdin bytes or None) for every BAD and GOOD case, files written."""
    root = tmp_path_factory.mktemp("predict-input")
    model = fine_tuned_dir(root / "model", tiny_model)
    pair_model = fine_tuned_dir(root / "pair-model", tiny_model, pair_column="text_b")
    cases = {}
    for name, (data, _) in {**BAD, **{k: (v[0], None) for k, v in GOOD.items()}}.items():
        folder = root / name
        folder.mkdir()
        args = ["--model", str(pair_model if name.startswith("pair_") else model)]
        if name in GOOD and GOOD[name][1]:
            cases[name] = (args, data)
            continue
        if data is not None:
            (folder / "in.txt").write_bytes(data)
        cases[name] = ([*args, "--input", str(folder / "in.txt")], None)
    cases["missing_input_file"][0][-1] = str(root / "no-such-input.txt")
    cases["input_is_a_directory"][0][-1] = str(root)
    cases["missing_model_dir"][0][1] = str(root / "no-such-model")
    cases["model_dir_without_lmtune_json"][0][1] = str(tiny_model)
    cases["batch_size_zero"][0].extend(["--batch-size", "0"])
    return cases


@pytest.fixture(scope="module")
def subprocess_runs(commands) -> dict[str, subprocess.CompletedProcess]:
    return run_many({name: commands[name] for name in SUBPROCESS})


def run_in_process(args: list[str], stdin: bytes | None, monkeypatch, capsys, caplog) -> tuple[int, str, str]:
    """(exit code, stdout, the ERROR lines logged) of lmtune.cli.main(["predict", *args])."""
    from lmtune import cli

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
    caplog.clear()
    try:
        cli.main(["predict", *args])
        code = 0
    except SystemExit as err:
        code = err.code
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    return code, capsys.readouterr().out, errors


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_predicted(commands, name, monkeypatch, capsys, caplog):
    code, out, errors = run_in_process(*commands[name], monkeypatch, capsys, caplog)
    assert code == 2, errors
    assert "\n" not in errors and re.search(BAD[name][1], errors), errors
    assert out == "", "nothing predicted for input that was refused"


@pytest.mark.parametrize("name", GOOD)
def test_valid_input_in_any_line_ending_or_encoding_is_read(commands, name, monkeypatch, capsys, caplog):
    code, out, errors = run_in_process(*commands[name], monkeypatch, capsys, caplog)
    assert code == 0, errors
    check_rows(name, out)


def check_rows(name: str, out: str) -> None:
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["text"] for row in rows] == GOOD[name][2], "one output line per non-blank input line, in order"
    assert all(row["label"] in LABELS and set(row["scores"]) == set(LABELS) for row in rows)
    if name in ("bom_crlf_and_blank_lines", "stdin"):
        assert rows[1]["id"] == 7, "keys besides the input fields are copied to the output"


@pytest.mark.parametrize("name", SUBPROCESS)
def test_as_a_command_bad_input_exits_2_with_one_line_and_no_traceback(subprocess_runs, name):
    result, stderr = subprocess_runs[name], subprocess_runs[name].stderr.decode()
    assert "Traceback" not in stderr, stderr
    if name in GOOD:
        assert result.returncode == 0, stderr
        check_rows(name, result.stdout.decode())
        return
    assert result.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and re.search(BAD[name][1], errors[0]), stderr
    assert result.stdout == b""


def test_a_pair_model_takes_text_and_text_pair(commands, monkeypatch, capsys, caplog):
    pair_model = commands["pair_model_given_one_text"][0][1]
    code, out, errors = run_in_process(["--model", pair_model], b'{"text": "good movie", "text_pair": "bad movie"}\n',
                                       monkeypatch, capsys, caplog)
    assert code == 0, errors
    assert json.loads(out)["label"] in LABELS


def test_serving_names_records_by_position_and_checks_types(tmp_path, tiny_model):
    """MLflow serving passes records without line numbers: messages say "input record N"."""
    from lmtune.inference import Predictor

    predictor = Predictor(fine_tuned_dir(tmp_path / "model", tiny_model))
    assert [r["label"] in LABELS for r in predictor.predict([{"text": "good movie"}])] == [True]
    with pytest.raises(LmtuneError, match=r"input record 2: field 'text' must be a string, got a number \(NaN\)"):
        predictor.predict([{"text": "good movie"}, {"text": float("nan")}])
