"""Bad input: a non-zero exit, one clear message naming the file, row or key and the fix, no traceback,
and no half-written output. Runs the stages as DVC does, in a subprocess."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_module, tiny_overrides, write_params


def run_clean(tmp_path: Path, params: Path, content: str | bytes, name: str = "data.csv"):
    data = tmp_path / name
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "interim"
    result = run_module("stages.clean", str(data), str(out), str(tmp_path / "clean.json"), "--params", str(params))
    return result, out


def assert_clean_failure(result, out: Path, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert not out.exists(), "no half-written output"
    assert not list(out.parent.glob(".interim.*")), "no temp directories left behind"


CASES = {
    "missing_text_column_lists_columns_found": ("sentence,label\nhello there,pos\n",
                                                ["column 'text' (set by task.text_column) not found",
                                                 "columns found: ['sentence', 'label']"]),
    "wrong_delimiter_is_diagnosed": ("text;label\nhello there;pos\nbad day;neg\n",
                                     ["The header was read as one column: the delimiter looks wrong"]),
    "single_class_is_rejected": ("text,label\nhello there,pos\ngood day,pos\n", ["only one class ('pos')"]),
    "no_usable_rows_left": ("text,label\n ,pos\n\t,neg\n", ["no usable rows left after cleaning"]),
    "header_only": ("text,label\n", ["has a header but no data rows"]),
    "empty_file": ("", ["the file is empty"]),
    "non_utf8_names_the_line": (b"text,label\nok fine,pos\nna\xefve,neg\n", ["line 3 is not valid utf-8",
                                                                            "clean.encoding"]),
}


@pytest.mark.parametrize("case", CASES)
def test_clean_rejects_unusable_input_with_a_specific_message(case, tmp_path, tiny_params):
    content, fragments = CASES[case]
    result, out = run_clean(tmp_path, tiny_params, content)
    assert_clean_failure(result, out, "data.csv", *fragments)


def test_missing_input_file_is_named(tmp_path, tiny_params):
    out = tmp_path / "interim"
    result = run_module("stages.clean", str(tmp_path / "absent.csv"), str(out), str(tmp_path / "c.json"),
                        "--params", str(tiny_params))
    assert_clean_failure(result, out, "absent.csv: input file not found")


def test_params_with_typo_wrong_type_and_range_fail_before_any_work(tmp_path, tiny_params):
    text = tiny_params.read_text().replace("lowercase:", "lowercas:").replace("max_length: 128", "max_length: 4")
    tiny_params.write_text(text.replace("val_fraction: 0.2", "val_fraction: high"))
    result, out = run_clean(tmp_path, tiny_params, "text,label\na b,x\nc d,y\n")
    assert_clean_failure(result, out, "4 problem(s)", "clean.lowercas: unknown key (did you mean 'lowercase'?)",
                         "split.val_fraction: must be float, got str 'high'", "clean.lowercase: missing key",
                         "tokenize: max_length must be >= 8")


def split_failure(tmp_path: Path, params: Path, rows: list[str]) -> str:
    """Clean and tokenize `rows` (which must pass), then run split, which must fail cleanly; return its stderr."""
    result, _ = run_clean(tmp_path, params, "\n".join(rows) + "\n")
    assert result.returncode == 0, result.stderr
    p = ["--params", str(params)]
    run_module("stages.tokenize", str(tmp_path / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), *p,
               check=True)
    result = run_module("stages.split", str(tmp_path / "tok"), str(tmp_path / "splits"), str(tmp_path / "s.json"), *p)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "splits").exists()
    return result.stderr


def test_split_with_a_class_too_small_to_stratify_names_the_class(tmp_path, tiny_params):
    rows = ["text,label"] + [f"text number {i},{'a' if i < 10 else 'b'}" for i in range(20)] + ["lonely one,c"]
    assert "1 of 3 classes have fewer than 2 examples, e.g. 'c' (1)" in split_failure(tmp_path, tiny_params, rows)


def test_label_seen_only_in_the_test_split_is_refused(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.split_column": "part"})
    rows = ["text,label,part"] + [f"review number {i},{'good' if i % 2 else 'bad'},train" for i in range(8)] + [
        "a fine one,good,test", "so so,meh,test"]
    assert "label 'meh' has no train rows (only in test)" in split_failure(tmp_path, params, rows)
