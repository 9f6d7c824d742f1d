"""Reading input with specific errors; atomic writes."""
import pytest

from lmtune.errors import DataError
from lmtune.io import atomic_path, read_table, write_json


def test_missing_file_error_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: input file not found"):
        read_table(tmp_path / "nope.csv")


def test_empty_file_and_header_only_file_get_distinct_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="the file is empty"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="has a header but no data rows"):
        read_table(tmp_path / "header.csv")


def test_non_utf8_bytes_error_names_the_line_and_the_encoding_param(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nfine,pos\ncaf\xe9 au lait,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3 is not valid utf-8.*clean\.encoding"):
        read_table(path)
    assert read_table(path, encoding="latin-1")["text"].tolist() == ["fine", "café au lait"]


def test_gbk_file_reads_with_the_encoding_param(tmp_path):
    path = tmp_path / "zh.tsv"
    path.write_bytes("text\tlabel\n很好\t1\n".encode("gbk"))
    assert read_table(path, encoding="gbk")["text"].tolist() == ["很好"]


def test_jsonl_and_parquet_are_read(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a b", "label": "x"}\n{"text": "c", "label": "y"}\n')
    df = read_table(tmp_path / "d.jsonl")
    df.to_parquet(tmp_path / "d.parquet")
    assert read_table(tmp_path / "d.parquet")["label"].tolist() == ["x", "y"]


def test_unknown_suffix_asks_for_input_format(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="set clean.input_format"):
        read_table(tmp_path / "d.xlsx")


def test_atomic_path_leaves_neither_partial_output_nor_temp_files_on_error(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_an_existing_directory_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        write_json(tmp / "new.json", {"a": 1})
    assert [p.name for p in target.iterdir()] == ["new.json"]
