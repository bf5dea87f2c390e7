"""CSV files as the command reads them: pandas' parser, and errors that name the
file, the column and the lines.

A file has a header line and one row per case. The separator (",", ";", tab or
"|") is read from the header unless given; the encoding is UTF-8 (a byte-order
mark is skipped) unless given. Only empty cells are missing values: "NA" or
"null" are text, as a class label may be. Line numbers count the header as
line 1 (a quoted field spanning lines shifts them).
"""

from __future__ import annotations

import codecs
import contextlib
import warnings

import numpy as np
import pandas as pd

from .errors import InputError

SEPARATORS = (",", ";", "\t", "|")
MAX_CLASSES = 20  # --task auto: integer targets with at most this many values are classes


def some(values, k: int = 5) -> str:
    """At most ``k`` values, quoted, and how many more: messages never list hundreds."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:k])
    return shown if len(values) <= k else f"{shown} and {len(values) - k} more"


def read_csv(path, sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """The rows of a CSV file as a DataFrame whose index is each row's line number."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} for {path}") from None
    with _file_errors(path, encoding):
        sep = sep or _separator(path, encoding)
    try:
        with _file_errors(path, encoding), warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                path,
                sep=sep,
                encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding,
                index_col=False,
                skip_blank_lines=False,
                keep_default_na=False,
                na_values=[""],
                skipinitialspace=True,
            )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: expected a header line and at least one row") from None
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: the rows have more fields than the header") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: {_parser_words(exc)}") from None
    table.columns = [str(c).strip() for c in table.columns]
    table.index = table.index + 2
    table = table.dropna(how="all")  # blank lines
    if table.empty:
        raise InputError(f"{path}: expected a header line and at least one row")
    return table


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
    if name not in table.columns:
        raise InputError(
            f"{path} has no column {name!r}; its {len(table.columns)} columns are "
            f"{some(table.columns, 10)}"
        )
    return table[name]


def _lines(mask, table) -> str:
    lines = list(table.index[np.asarray(mask)])
    return ", ".join(map(str, lines[:5])) + (
        f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    )


def numbers(table, path) -> np.ndarray:
    """Every column of ``table`` as float64; an empty cell or text is an error naming
    the column and its lines."""
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
                raise InputError(
                    f"{path}, line {line}: column {name!r} holds {values[line]!r}, not a number"
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
            numbers(series.to_frame(), path)  # raises, naming the first value that is text
        y = pd.to_numeric(series).to_numpy(dtype=np.float64)
        integral = bool(np.all(y == np.round(y)))
        if task == "regression" or not integral or len(np.unique(y)) > MAX_CLASSES:
            return y, False
        return y.astype(np.int64), True
    if numeric:
        y = series.to_numpy(dtype=np.float64)
        return (y.astype(np.int64) if np.all(y == np.round(y)) else y), True
    return series.astype(str).to_numpy(dtype=object), True
