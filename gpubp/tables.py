"""Tables as the command reads them: CSV files (pandas' parser), Parquet files
(pyarrow, by row groups) and .npy files (memory-mapped), with errors that name the
file, the column and the lines.

A file whose numbers fit in memory (``whole_bytes``: a quarter of the host memory
free) is read whole, whatever its format, so the same rows give the same table; a
larger one is read a chunk of rows at a time (``table_chunks``).

A file has a header line and one row per case. The separator (",", ";", tab or
"|") is read from the header unless given; the encoding is UTF-8 (a byte-order
mark is skipped) unless given. Only empty cells are missing values: "NA" or
"null" are text, as a class label may be. Line numbers count the header as
line 1 (a quoted field spanning lines shifts them).
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import os
import warnings

import numpy as np
import pandas as pd

from .errors import InputError
from .memory import host_free

SEPARATORS = (",", ";", "\t", "|")
MAX_CLASSES = 20  # --task auto: integer targets with at most this many values are classes
WHOLE_BYTES = None  # a file of more bytes of numbers is read in chunks (None: whole_bytes())
CHUNK_ROWS = 2**16  # rows per chunk of a table read in chunks


def some(values, k: int = 5) -> str:
    """At most ``k`` values, quoted, and how many more: messages never list hundreds."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:k])
    return shown if len(values) <= k else f"{shown} and {len(values) - k} more"


def file_kind(path) -> str:
    """ "parquet", "npy" or "csv", from the file's name."""
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "npy" if name.endswith(".npy") else "csv"


def whole_bytes() -> int:
    """The most bytes of numbers a file read whole may hold: WHOLE_BYTES if set, else a
    quarter of the host memory free (256 MiB where that is unknown)."""
    if WHOLE_BYTES is not None:
        return WHOLE_BYTES
    free = host_free()
    return 2**28 if free is None else free // 4


def number_bytes(path) -> int:
    """About how many bytes the table in ``path`` takes as float64 numbers: a CSV file's
    size, a Parquet file's rows x columns x 8 (from its metadata), a .npy file's values."""
    kind = file_kind(path)
    if kind == "csv":
        return os.path.getsize(path)
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            return meta.num_rows * meta.num_columns * 8
        except Exception:  # unreadable or no pyarrow: the reader says which, in its words
            return 0
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return 0
    columns = len(a.dtype.names) if a.dtype.names else int(np.prod(a.shape[1:]))
    return len(a) * columns * 8


def read_in_chunks(path) -> tuple[int, int] | None:
    """Whether the command reads ``path`` a chunk at a time: None when it is read whole,
    else why, (its bytes of numbers, ``whole_bytes``)."""
    need, limit = number_bytes(path), whole_bytes()
    return (need, limit) if need > limit else None


def read_table(path, sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """The rows of a CSV, Parquet or .npy file as one DataFrame, indexed as
    ``table_chunks`` indexes them (the same rows, the same table, whatever the format)."""
    if file_kind(path) == "csv":
        return read_csv(path, sep, encoding)
    return pd.concat(list(table_chunks(path, sep, encoding)))


def read_csv(path, sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """The rows of a CSV file as a DataFrame whose index is each row's line number."""
    with _csv_errors(path, encoding):
        table = pd.read_csv(path, **_csv_options(path, sep, encoding))
    table = _tidy(table, 2)
    if table.empty:
        raise InputError(f"{path}: expected a header line and at least one row")
    return table


def table_chunks(path, sep: str | None = None, encoding: str = "utf-8", rows: int = 0):
    """The rows of a CSV, Parquet or .npy file as DataFrames of at most ``rows`` rows
    (default CHUNK_ROWS), indexed by line number (CSV) or row number from 1."""
    rows = rows or CHUNK_ROWS
    kind = file_kind(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if kind == "csv":
        tables = _csv_chunks(path, sep, encoding, rows)
    else:
        tables = (_parquet_chunks if kind == "parquet" else _npy_chunks)(path, rows)
    seen = 0
    for table in tables:
        seen += len(table)
        yield table
    if not seen:
        raise InputError(f"{path}: expected a header line and at least one row")


def _csv_chunks(path, sep, encoding, rows):
    with _csv_errors(path, encoding):
        reader = pd.read_csv(path, chunksize=rows, **_csv_options(path, sep, encoding))
        with reader:
            for table in reader:
                table = _tidy(table, 2)
                if len(table):
                    yield table


def _csv_options(path, sep, encoding) -> dict:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} for {path}") from None
    with _file_errors(path, encoding):
        sep = sep or _separator(path, encoding)
    return dict(
        sep=sep,
        encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding,
        index_col=False,
        skip_blank_lines=False,
        keep_default_na=False,
        na_values=[""],
        skipinitialspace=True,
    )


@contextlib.contextmanager
def _csv_errors(path, encoding):
    """pandas' parser errors as InputErrors in this module's words."""
    try:
        with _file_errors(path, encoding), warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            yield
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: expected a header line and at least one row") from None
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: the rows have more fields than the header") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: {_parser_words(exc)}") from None


def _tidy(table, first_line: int) -> pd.DataFrame:
    """Column names stripped, the index the line numbers, blank lines dropped."""
    table.columns = [str(c).strip() for c in table.columns]
    table.index = table.index + first_line
    return table.dropna(how="all")


def _parquet_chunks(path, rows):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow: pip install pyarrow (the parquet extra)"
        ) from None
    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's own errors: not a Parquet file, damaged
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    first = 1
    with f:
        for batch in f.iter_batches(batch_size=rows):
            table = batch.to_pandas()
            table.columns = [str(c).strip() for c in table.columns]
            table.index = pd.RangeIndex(first, first + len(table))
            first += len(table)
            yield table


def _npy_chunks(path, rows):
    """A 2-D .npy file's columns are named 0, 1, ...; a structured one's by its fields."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if a.dtype.names is None and a.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array or a structured one, got shape {a.shape}")
    for start in range(0, len(a), rows):
        block = np.asarray(a[start : start + rows])
        index = pd.RangeIndex(start + 1, start + 1 + len(block))
        if a.dtype.names is None:
            table = pd.DataFrame(block, columns=[str(i) for i in range(a.shape[1])], index=index)
        else:
            table = pd.DataFrame({name: block[name] for name in a.dtype.names}, index=index)
        yield table


@contextlib.contextmanager
def _file_errors(path, encoding):
    """A missing file, a folder or bytes that are not text in ``encoding``: one InputError."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not {encoding} text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); name its encoding, e.g. --encoding latin-1 or --encoding cp1252"
        ) from None


def _separator(path, encoding) -> str:
    """The separator that occurs most often in the header line (',' if none does)."""
    with open(path, encoding=encoding, newline="") as f:
        header = f.readline()
    counts = [header.count(s) for s in SEPARATORS]
    return SEPARATORS[int(np.argmax(counts))] if max(counts) else ","


def _parser_words(exc) -> str:
    """pandas' 'Expected 3 fields in line 5, saw 4' in the words of this module."""
    text = str(exc).strip()
    words = text.split("Expected ")[-1].split()
    if len(words) >= 6 and words[1] == "fields" and words[3] == "line":
        return f"line {words[4].rstrip(',')}: {words[-1]} fields, the header has {words[0]}"
    return text


def column(table, name, path) -> pd.Series:
    check_columns(table, [name], path)
    return table[name]


def check_columns(table, names, path) -> None:
    """InputError for the first of ``names`` that ``table`` lacks, suggesting the nearest
    of its columns."""
    for name in names:
        if name not in table.columns:
            raise InputError(f"{path} has no column {name!r}{nearest(name, table.columns)}")


def nearest(name, columns) -> str:
    """What follows "has no column ...": the columns nearest ``name`` if any ("; did you
    mean ...? Its N columns: ..."), and the columns."""
    columns = [str(c) for c in columns]
    close = difflib.get_close_matches(str(name), columns, n=3, cutoff=0.6)
    close = close or [c for c in columns if c.lower() == str(name).lower()]  # another case
    listed = f"{len(columns)} columns: {some(columns, 10)}"
    if not close:
        return f"; its {listed}"
    return f"; did you mean {' or '.join(map(repr, close))}? Its {listed}"


def _lines(mask, table) -> str:
    lines = list(table.index[np.asarray(mask)])
    return ", ".join(map(str, lines[:5])) + (
        f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    )


def numbers(table, path, features: bool = True) -> np.ndarray:
    """Every column of ``table`` as float64; an empty cell or text is an error naming
    the column and its lines (and, for ``features``, how to leave it out)."""
    for name in table.columns:
        values = table[name]
        empty = values.isna()
        if empty.any():
            raise InputError(
                f"{path}: column {name!r} is empty on line {_lines(empty, table)} (a row with "
                "too few fields shows as empty cells)"
            )
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            bad = pd.to_numeric(values, errors="coerce").isna()
            if bad.any():
                line = table.index[np.asarray(bad)][0]
                remedy = (
                    f". gpubp takes numbers only: leave the column out with --drop {name}, "
                    "or encode it as numbers (one-hot, for example) first"
                )
                raise InputError(
                    f"{path}, line {line}: column {name!r} holds {values[line]!r}, not a "
                    f"number{remedy if features else ''}"
                )
    return table.to_numpy(dtype=np.float64) if len(table.columns) else np.empty((len(table), 0))


def target(series, task, path) -> tuple[np.ndarray, bool]:
    """(y, is_classification) from the target column.

    ``task="auto"`` treats text, or integers (``1`` or ``1.0``) with at most
    MAX_CLASSES distinct values, as classes; integral class labels become int64.
    """
    name = series.name
    empty = series.isna()
    if empty.any():
        raise InputError(
            f"{path}: the target column {name!r} is empty on line {_lines(empty, series)}; fill "
            "or drop those rows"
        )
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if task == "regression" or (task == "auto" and numeric):
        if not numeric:
            numbers(series.to_frame(), path, features=False)  # raises, naming the text
        y = pd.to_numeric(series).to_numpy(dtype=np.float64)
        integral = bool(np.all(y == np.round(y)))
        if task == "regression" or not integral or len(np.unique(y)) > MAX_CLASSES:
            return y, False
        return y.astype(np.int64), True
    if numeric:
        y = series.to_numpy(dtype=np.float64)
        return (y.astype(np.int64) if np.all(y == np.round(y)) else y), True
    codes, classes = pd.factorize(series.astype(str))  # one str object per class, not per row
    return np.asarray(classes, dtype=object)[codes], True
