"""Reading tabular input with specific errors, and writing outputs atomically (temp path, then rename)."""
from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lmtune.errors import DataError, LmtuneError

INFO_FILE = "lmtune.json"  # written next to the fine-tuned model: task, labels, text normalisation, lineage
META_FILE = "meta.json"  # travels with the data from clean onwards: labels, lowercase, max_length
DATA_FILE = "data.parquet"  # clean's kept rows, read by tokenize
REJECTED_FILE = "rejected.csv"  # clean's dropped rows: row, reason, label, text
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


CHUNK_ROWS = 50_000  # rows per chunk when streaming tabular input: a few MB of text each, whatever the file's size


def _decode_error_line(path: Path, encoding: str) -> int:
    """1-based line number of the first line that `encoding` cannot decode (read line by line, never whole)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return number


def _check_file(path: Path, input_format: str) -> str:
    """The file's format; DataError for a missing or empty file."""
    if not path.is_file():
        raise DataError(f"{path}: input file not found; check data.path in params.yaml "
                        f"(`dvc exp run -S data.path=...`) or add the file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it needs a header row and labelled rows")
    return detect_format(path, input_format)


@contextlib.contextmanager
def _read_errors(path: Path, fmt: str, encoding: str) -> Iterator[None]:
    """Turn a reader's exceptions into one DataError naming the file (and the line) and the fix."""
    try:
        yield
    except UnicodeDecodeError as err:
        line = _decode_error_line(path, encoding)
        raise DataError(f"{path}: line {line} is not valid {encoding} ({err.reason}); set clean.encoding "
                        f"to the file's encoding (e.g. latin-1, gbk) or re-save it as UTF-8") from None
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise DataError(f"{path}: cannot be read as {fmt} ({str(err).splitlines()[0]}); check the file "
                        f"or set clean.input_format") from None


def _header_only(path: Path) -> DataError:
    return DataError(f"{path}: has a header but no data rows; add labelled rows")


def read_table(path: str | Path, input_format: str = "auto", encoding: str = "utf-8") -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet into a DataFrame of strings (Parquet keeps its types).

    Raises DataError naming the file and the fix for: a missing, empty or unreadable file, bytes that are not
    valid in `encoding` (with the line), and a header-only file.
    """
    path = Path(path)
    fmt = _check_file(path, input_format)
    with _read_errors(path, fmt, encoding):
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
        else:
            df = pd.read_csv(path, sep="," if fmt == "csv" else "\t", encoding=encoding, dtype=str,
                             keep_default_na=False, quoting=3 if fmt == "tsv" else 0)
    if len(df) == 0:
        raise _header_only(path)
    return df


def iter_table(path: str | Path, input_format: str = "auto", encoding: str = "utf-8",
               chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Read CSV, TSV, JSONL or Parquet in DataFrames of at most `chunk_rows` rows, so memory does not grow with
    the file. Each chunk's index numbers its rows from the file's first data row (0, 1, ... across chunks).

    Cells are what read_table gives, except where read_table's type inference depends on the whole file:
    JSONL values stay Python objects (1 stays 1, a missing key is None), and Parquet integer columns with nulls
    keep integers (None for a null) rather than becoming floats. So a chunk never depends on its neighbours.
    The same DataErrors as read_table, raised when the reader reaches the bad part.
    """
    path = Path(path)
    fmt = _check_file(path, input_format)
    with _read_errors(path, fmt, encoding), contextlib.ExitStack() as stack:
        if fmt == "parquet":
            chunks = _parquet_chunks(path, chunk_rows)
        elif fmt == "jsonl":
            chunks = _jsonl_chunks(path, encoding, chunk_rows)
        else:
            chunks = stack.enter_context(pd.read_csv(
                path, sep="," if fmt == "csv" else "\t", encoding=encoding, dtype=str, keep_default_na=False,
                quoting=3 if fmt == "tsv" else 0, chunksize=chunk_rows))
        rows = 0
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            yield chunk.set_axis(pd.RangeIndex(rows, rows + len(chunk)))
            rows += len(chunk)
        if rows == 0:
            raise _header_only(path)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for batch in f.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas(integer_object_nulls=True)


def _jsonl_chunks(path: Path, encoding: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """One JSON object per line; blank lines are skipped (as pandas does)."""
    records: list[dict[str, Any]] = []
    with open(path, encoding=encoding) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                                f"fix the line (JSONL holds one JSON object per line)") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object; JSONL "
                                f"needs one object per line, e.g. {{\"text\": ..., \"label\": ...}}")
            records.append(record)
            if len(records) == chunk_rows:
                yield pd.DataFrame(records, dtype=object)
                records = []
    if records:
        yield pd.DataFrame(records, dtype=object)


TMP_DIR = ".lmtune-tmp"  # beside each output: its temporary copy until it is moved in (git- and dvc-ignored)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
KEPT = "the outputs of the last successful run are unchanged"


class WriteError(LmtuneError):
    """An output cannot be written: a full disk, a read-only or unwritable folder."""


def write_error(err: OSError, where: str | Path) -> WriteError:
    """One line naming the path, the reason and the fix, for an OSError met while writing outputs."""
    fix = "free some space" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) \
        else f"make {where} writable (e.g. chmod u+w {where})"
    return WriteError(f"{err.filename or where}: cannot write ({err.strerror or err}); {fix} and rerun; "
                      f"nothing was moved into place, {KEPT}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: str | Path) -> None:
    """Remove what killed processes left in `folder`'s temp area (entries are named after their process id)."""
    root = Path(folder) / TMP_DIR
    if not root.is_dir():
        return
    for entry in root.iterdir():
        pid = entry.name.split("-", 1)[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only when empty


def temp_dir(folder: str | Path, label: str) -> Path:
    """A new empty directory in `folder`/.lmtune-tmp, named after this process (so a later run can tell a dead
    one's leftovers from a live one's), after sweeping dead processes' leftovers there. WriteError when `folder`
    cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):  # the final rename needs it, even where the temp area already exists
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
        sweep_stale(folder)
        (folder / TMP_DIR).mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{label}-", dir=folder / TMP_DIR))
    except OSError as err:
        raise write_error(err, folder) from None


def remove_temp(path: Path) -> None:
    """Remove a temp_dir and, when it was the last one, its .lmtune-tmp folder."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def check_writable(*folders: str | Path) -> None:
    """WriteError unless each folder takes new files (a missing one: its nearest existing parent), creating nothing
    that stays: for a stage that works long before it writes, so a read-only folder stops it first."""
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            remove_temp(temp_dir(folder, "check"))
            continue
        parent = next(p for p in folder.absolute().parents if p.exists())
        if not os.access(parent, os.W_OK):
            raise write_error(PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(parent)), parent)


@contextlib.contextmanager
def work_dir(folder: str | Path) -> Iterator[Path]:
    """A scratch directory beside the outputs in `folder` (not the system temp folder), removed afterwards; a
    killed run's is swept by the next run."""
    path = temp_dir(folder, "work")
    try:
        yield path
    finally:
        remove_temp(path)


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per output; when the block succeeds move them all into place, else remove them.

    Every output's folder is checked writable before the block runs, so a read-only folder stops the stage before
    any work and before any output changes. If one move fails, the outputs already moved are put back: a stage's
    outputs are never out of step with each other, and a reader (or DVC) never sees a half-written one, even if the
    process is killed (its temporary copy is swept by the next run).
    """
    paths = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for path in paths:
            temps.append(temp_dir(path.parent, path.name))
        yield tuple(t / p.name for t, p in zip(temps, paths))
        moved: list[tuple[Path, Path, Path]] = []  # (output, its new copy's temp path, where its old copy went)
        try:
            for temp, path in zip(temps, paths):
                old = temp / ".old"
                if path.exists() or path.is_symlink():
                    os.replace(path, old)
                moved.append((path, temp / path.name, old))
                os.replace(temp / path.name, path)
        except OSError as err:
            for path, new, old in reversed(moved):  # put the old copies back
                with contextlib.suppress(OSError):
                    if path.exists() and not new.exists():
                        os.replace(path, new)
                    if old.exists() or old.is_symlink():
                        os.replace(old, path)
            raise write_error(err, path.parent) from None
    except OSError as err:
        if err.errno in WRITE_ERRNOS:
            raise write_error(err, err.filename or "the output folder") from None
        raise
    finally:
        for temp in temps:
            remove_temp(temp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success move it onto `path`, on error remove it (atomic_outputs for one)."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


class ParquetRowGroups:
    """A Parquet file written in row groups of exactly `group_rows` rows (the last one shorter), however the tables
    arrive: its bytes do not depend on how the writer chunked its input, and at most one group is held in memory.

        with ParquetRowGroups(path, schema) as out:
            out.write(table)  # any number of rows, `schema`'s columns
    """

    def __init__(self, path: Path, schema: Any, group_rows: int = 100_000) -> None:
        import pyarrow.parquet as pq

        self.schema, self.group_rows = schema, group_rows
        self.pending: list[Any] = []
        self.writer = pq.ParquetWriter(path, schema)

    def write(self, table: Any) -> None:
        self.pending.append(table)
        if sum(len(t) for t in self.pending) >= self.group_rows:
            import pyarrow as pa

            rest = pa.concat_tables(self.pending)
            while len(rest) >= self.group_rows:
                self.writer.write_table(rest.slice(0, self.group_rows))
                rest = rest.slice(self.group_rows)
            self.pending = [rest]

    def __enter__(self) -> ParquetRowGroups:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        import pyarrow as pa

        try:
            rest = pa.concat_tables(self.pending) if self.pending else None
            if exc_type is None and rest is not None and len(rest):
                self.writer.write_table(rest)
        finally:
            self.writer.close()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def save_dataset(ds: Any, path: Path) -> None:
    """`save_to_disk` without a progress bar (saving is fast; the bars would only add noise to the logs).

    An empty split is written as one empty shard: with zero shards `load_from_disk` fails on it. The fingerprint in
    each state.json is replaced by one of the saved Arrow bytes: the one `datasets` derives from the map functions
    depends on where the code and the tokenizer are installed, so the same data would get a new DVC hash on every
    machine and rerun the stages after it.
    """
    import datasets

    parts = ds if isinstance(ds, datasets.DatasetDict) else None
    num_shards = {name: 1 for name, part in parts.items() if len(part) == 0} if parts is not None else None
    datasets.disable_progress_bars()
    try:
        ds.save_to_disk(str(path), num_shards=num_shards or None)
    finally:
        datasets.enable_progress_bars()
    for state_file in sorted(Path(path).rglob("state.json")):
        state = json.loads(state_file.read_text(encoding="utf-8"))
        digest = hashlib.md5()
        for shard in sorted(state_file.parent.glob("*.arrow")):
            digest.update(bytes.fromhex(content_md5(shard)))
        state["_fingerprint"] = digest.hexdigest()[:16]
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def mapped_parquet(path: Path, work_dir: Path, batch_rows: int = CHUNK_ROWS) -> Any:
    """A Parquet file as a memory-mapped `datasets.Dataset`, copied batch by batch into an Arrow file in `work_dir`
    (which must outlive the dataset). Neither the copy nor a later `map` holds the table in memory: `map` writes its
    results beside the file, to disk (an in-memory Dataset would keep every mapped row in RAM)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    arrow = work_dir / f"{path.stem}.arrow"
    with pq.ParquetFile(path) as f, pa.OSFile(str(arrow), "wb") as sink, \
            pa.ipc.new_stream(sink, f.schema_arrow) as stream:
        for batch in f.iter_batches(batch_size=batch_rows):
            stream.write_batch(batch)
    return Dataset.from_file(str(arrow))


def content_md5(path: str | Path) -> str:
    """md5 over the relative paths and bytes of every file under `path` (or of one file)."""
    path = Path(path)
    digest = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def column_numpy(ds: Any, name: str) -> Any:
    """One column of a `datasets.Dataset` as a numpy array taken from its Arrow data (no Python object per row)."""
    return ds.select_columns([name]).with_format("arrow")[:][name].to_numpy()


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
