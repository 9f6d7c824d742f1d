"""The streaming clean (chunked reads, hashed repeats, two passes) gives the same rows, reasons and files whatever
the chunk size, and its errors still name the file and the row or line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmtune import io
from lmtune.config import load_params
from lmtune.errors import DataError
from lmtune.tasks import classification, multilabel, regression
from lmtune.text import repeats
from tests.conftest import write_params

# Rows 2..13 of a CSV. Repeats and conflicts are far apart, so with chunks of 1-3 rows they span chunk boundaries:
# "good film" (rows 2, 9 same label, 12 after normalisation) -> 9 and 12 duplicates; "dull plot" (rows 3, 11) has two
# labels -> both conflicting; "nice cast" (row 5, then row 13 with another label) -> conflicting, first copy too.
CSV = ("text,label\n"
       "good film,pos\n"     # 2 kept
       "dull plot,neg\n"     # 3 conflicting_labels
       "  ,pos\n"            # 4 empty_text
       "nice cast,pos\n"     # 5 conflicting_labels
       "x,neg\n"             # 6 too_short
       "long scenes,\n"      # 7 missing_label
       "slow start,neg\n"    # 8 kept
       "good film,pos\n"     # 9 duplicate
       "fine score, neg \n"  # 10 kept (label stripped)
       "dull plot,pos\n"     # 11 conflicting_labels
       "ｇood  film,pos\n"   # 12 duplicate (equal after NFKC and whitespace)
       "nice cast,neg\n")    # 13 conflicting_labels
EXPECTED_REJECTED = {3: "conflicting_labels", 4: "empty_text", 5: "conflicting_labels", 6: "too_short",
                     7: "missing_label", 9: "duplicate", 11: "conflicting_labels", 12: "duplicate",
                     13: "conflicting_labels"}


def params_for(tmp_path, **overrides):
    return load_params(write_params(tmp_path / "params.yaml", {"model.name_or_path": "unused", **overrides}))


def clean_files(task, path, params, chunk_rows, out):
    """Run one task's streaming clean with `chunk_rows` and write its files into `out`."""
    result = task.clean(path, params, chunk_rows=chunk_rows)
    out.mkdir()
    result.write(out)
    return result


def test_classification_stream_keeps_first_copies_and_drops_conflicts_across_chunk_boundaries(tmp_path):
    (tmp_path / "d.csv").write_text(CSV)
    result = clean_files(classification, tmp_path / "d.csv", params_for(tmp_path), 2, tmp_path / "out")
    rejected = pd.read_csv(tmp_path / "out" / io.REJECTED_FILE, keep_default_na=False)
    assert dict(zip(rejected["row"], rejected["reason"])) == EXPECTED_REJECTED
    assert rejected.set_index("row").loc[12, "text"] == "ｇood  film", "rejected rows keep the text as read"
    kept = pd.read_parquet(tmp_path / "out" / io.DATA_FILE)
    assert kept[["text", "label", "row", "label_id"]].values.tolist() == [
        ["good film", "pos", 2, 1], ["slow start", "neg", 8, 0], ["fine score", "neg", 10, 0]]
    assert result.labels == ["neg", "pos"] and result.summary == {"label_counts": {"neg": 2, "pos": 1}}
    assert result.rows_kept == 3 and sum(result.rejected_by_reason.values()) == 9


@pytest.mark.parametrize("task,overrides,content", [
    (classification, {}, CSV),
    (multilabel, {"task.name": "multilabel"},
     "text,label\nbig news,a|b\nother,c\nbig news,b| a\nmore,[]\nother,c|d\nmore,[]\nlast one,d\n"),
    (regression, {"task.name": "regression"},
     "text,label\ngood,4\nbad,n/a\ngood,4.0\nodd,1\nodd,2\nnew, 2.5 \nnew,2.5\nlast,-1\n"),
], ids=["classification", "multilabel", "regression"])
def test_stream_writes_byte_identical_files_whatever_the_chunk_size(task, overrides, content, tmp_path):
    (tmp_path / "d.csv").write_text(content)
    params = params_for(tmp_path, **overrides)
    whole = clean_files(task, tmp_path / "d.csv", params, 10_000, tmp_path / "whole")
    for chunk_rows in (1, 2, 3):
        part = clean_files(task, tmp_path / "d.csv", params, chunk_rows, tmp_path / f"chunks{chunk_rows}")
        for name in (io.DATA_FILE, io.REJECTED_FILE):
            assert (tmp_path / f"chunks{chunk_rows}" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), \
                f"{name} differs with chunks of {chunk_rows} rows"
        assert (part.labels, part.summary, part.rows_kept, part.rejected_by_reason) == \
            (whole.labels, whole.summary, whole.rows_kept, whole.rejected_by_reason)


@pytest.mark.parametrize("suffix", ["tsv", "jsonl", "parquet"])
def test_every_tabular_format_streams_to_the_same_rows_as_csv(suffix, tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(CSV), dtype=str, keep_default_na=False)
    path = tmp_path / f"d.{suffix}"
    if suffix == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    clean_files(classification, path, params_for(tmp_path), 2, tmp_path / "out")
    rejected = pd.read_csv(tmp_path / "out" / io.REJECTED_FILE)
    first = 2 if suffix == "tsv" else 1  # line numbers: below a header for TSV, from 1 for JSONL and Parquet
    assert dict(zip(rejected["row"] - first + 2, rejected["reason"])) == EXPECTED_REJECTED


def test_repeats_marks_every_copy_of_a_conflicting_text_and_later_copies_of_the_rest():
    text_key = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [2, 2], [1, 9], [3, 3]], dtype=np.uint64)
    label_key = np.array([0, 0, 0, 1, 1, 0, 1])
    usable = np.array([True, True, True, True, True, True, False])
    conflicting, duplicate = repeats(text_key, label_key, usable)
    assert conflicting.tolist() == [False, True, False, False, True, False, False]
    assert duplicate.tolist() == [False, False, True, False, False, False, False], \
        "[1, 9] differs from [1, 1] in its second half; the unusable copy of text 3 is no repeat"


def test_bad_split_value_in_a_later_chunk_names_its_row_and_value(tmp_path):
    rows = [f"text {i},{'pos' if i % 2 else 'neg'},{'train' if i != 7 else 'holdout'}" for i in range(10)]
    (tmp_path / "d.csv").write_text("text,label,part\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"d\.csv: row 9: split value 'holdout' in column 'part'"):
        classification.clean(tmp_path / "d.csv", params_for(tmp_path, **{"task.split_column": "part"}),
                             chunk_rows=3)


def test_non_utf8_bytes_in_a_later_chunk_name_the_line(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\n" + b"fine text,pos\n" * 20 + b"na\xefve,neg\n")
    with pytest.raises(DataError, match=r"line 22 is not valid utf-8.*clean\.encoding"):
        classification.clean(tmp_path / "d.csv", params_for(tmp_path), chunk_rows=4)


def test_jsonl_errors_name_the_line(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "fine", "label": "a"}\n\n{"text": "oops"\n')
    with pytest.raises(DataError, match=r"d\.jsonl: line 3 is not valid JSON"):
        classification.clean(tmp_path / "d.jsonl", params_for(tmp_path), chunk_rows=1)


def test_jsonl_column_is_required_in_the_file_not_in_every_chunk(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "no label here"}\n{"text": "good one", "label": "a"}\n{"text": "bad one", "label": "b"}\n')
    result = classification.clean(path, params_for(tmp_path), chunk_rows=1)
    assert result.rejected_by_reason == {"missing_label": 1} and result.labels == ["a", "b"]
    path.write_text('{"text": "good one", "lab": "a"}\n{"text": "bad one", "lab": "b"}\n')
    with pytest.raises(DataError, match=r"column 'label' \(set by task.label_column\) not found; columns found: "
                                        r"\['text', 'lab'\]"):
        classification.clean(path, params_for(tmp_path), chunk_rows=1)


def test_regression_error_without_any_number_names_the_first_row_even_in_a_later_chunk(tmp_path):
    (tmp_path / "d.csv").write_text("text,score\n" + "".join(f"text {i},\n" for i in range(5)) + "late,high\nend,low\n")
    with pytest.raises(DataError, match=r"row 7: label 'high' in column 'score' is not a number"):
        regression.clean(tmp_path / "d.csv", params_for(tmp_path, **{"task.name": "regression",
                                                                      "task.label_column": "score"}), chunk_rows=2)


def test_parquet_row_groups_do_not_depend_on_how_the_rows_arrive(tmp_path):
    schema = pa.schema([pa.field("n", pa.int64())])
    for step in (1, 3, 10):
        with io.ParquetRowGroups(tmp_path / f"{step}.parquet", schema, group_rows=4) as out:
            for start in range(0, 10, step):
                out.write(pa.table({"n": list(range(start, min(start + step, 10)))}, schema=schema))
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "3.parquet").read_bytes() == \
        (tmp_path / "10.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "3.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 2]


def test_tokenize_input_is_memory_mapped_so_map_writes_to_disk(tmp_path):
    pd.DataFrame({"text": ["a", "b", "c"]}).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "work").mkdir()
    ds = io.mapped_parquet(tmp_path / "d.parquet", tmp_path / "work", batch_rows=2)
    mapped = ds.map(lambda b: {"n": [len(t) for t in b["text"]]}, batched=True)
    assert ds.cache_files and all(f["filename"].startswith(str(tmp_path / "work")) for f in mapped.cache_files), \
        "an in-memory dataset would keep map's output in RAM"
    assert io.column_numpy(mapped, "n").tolist() == [1, 1, 1]
