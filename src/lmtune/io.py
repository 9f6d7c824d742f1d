"""Reading tabular input with specific errors, and writing outputs atomically (temp path, then rename)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lmtune.errors import DataError

INFO_FILE = "lmtune.json"  # written next to the fine-tuned model: task, labels, text normalisation, lineage
META_FILE = "meta.json"  # travels with the data from clean onwards: labels, lowercase, max_length
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
           ".conll": "conll"}


def detect_format(path: Path, input_format: str) -> str:
    if input_format != "auto":
        return input_format
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
                        f"set clean.input_format (csv, tsv, jsonl, parquet, conll, squad or text)")
    return fmt


def _decode_error_line(path: Path, encoding: str, err: UnicodeDecodeError) -> int:
    """1-based line number of the first byte that `encoding` cannot decode."""
    with open(path, "rb") as f:
        data = f.read()
    bad = data.find(err.object[err.start:err.end]) if err.object else -1
    return data.count(b"\n", 0, max(bad, 0)) + 1


def read_table(path: str | Path, input_format: str = "auto", encoding: str = "utf-8") -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet into a DataFrame of strings (Parquet keeps its types).

    Raises DataError naming the file and the fix for: a missing, empty or unreadable file, bytes that are not
    valid in `encoding` (with the line), and a header-only file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found; check the path in dvc.yaml (clean stage) "
                        f"or add the file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it needs a header row and labelled rows")
    fmt = detect_format(path, input_format)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
        else:
            df = pd.read_csv(path, sep="," if fmt == "csv" else "\t", encoding=encoding, dtype=str,
                             keep_default_na=False, quoting=3 if fmt == "tsv" else 0)
    except UnicodeDecodeError as err:
        line = _decode_error_line(path, encoding, err)
        raise DataError(f"{path}: line {line} is not valid {encoding} ({err.reason}); set clean.encoding "
                        f"to the file's encoding (e.g. latin-1, gbk) or re-save it as UTF-8") from None
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise DataError(f"{path}: cannot be read as {fmt} ({str(err).splitlines()[0]}); check the file "
                        f"or set clean.input_format") from None
    if len(df) == 0:
        raise DataError(f"{path}: has a header but no data rows; add labelled rows")
    return df


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path`, on error remove it.

    A reader (or DVC) never sees a half-written file or directory, even if the process is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def save_dataset(ds: Any, path: Path) -> None:
    """`save_to_disk` without a progress bar (saving is fast; the bars would only add noise to the logs).

    An empty split is written as one empty shard: with zero shards `load_from_disk` fails on it.
    """
    import datasets

    parts = ds if isinstance(ds, datasets.DatasetDict) else None
    num_shards = {name: 1 for name, part in parts.items() if len(part) == 0} if parts is not None else None
    datasets.disable_progress_bars()
    try:
        ds.save_to_disk(str(path), num_shards=num_shards or None)
    finally:
        datasets.enable_progress_bars()


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
