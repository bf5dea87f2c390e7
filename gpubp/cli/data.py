"""The data ``gpubp train`` trains on: a bundled data set, or a CSV, Parquet or .npy
file (read whole, or a chunk at a time into a float64 copy of its features)."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile

import numpy as np

from ..inputs.sources import SelectedRows
from ..memory import size
from ..tables import (
    check_columns,
    column,
    numbers,
    read_in_chunks,
    read_table,
    some,
    table_chunks,
    target,
)
from .options import DATASETS, CommandError


def dataset(args, cleanup):
    """(X, y, is_classification, name, (X_test, y_test) or None, feature names or None).

    A file read in chunks gives X as a SelectedRows of a float64 copy of its features
    in a temporary folder in --out (removed by ``cleanup``)."""
    if args.data in DATASETS and (args.target or args.drop):
        option = "--target" if args.target else "--drop"
        raise CommandError(
            f"{option} is for a data file; the {args.data} data set has its own columns"
        )
    if args.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X, y, True, "digits", None, None
    if args.data == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return X, y, False, "diabetes", None, None
    if args.data == "mnist1d":
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as exc:
            raise CommandError("the mnist1d data set needs `pip install mnist1d`") from exc
        data = make_dataset(get_dataset_args())
        test = (data["x_test"], data["y_test"])
        return data["x"], data["y"], True, "mnist1d", test, None
    if not os.path.exists(args.data):
        raise CommandError(
            f"--data {args.data!r} is neither one of {', '.join(DATASETS)} nor an existing file"
        )
    chunked = read_in_chunks(args.data)
    if chunked:
        return _chunked_dataset(args, cleanup, *chunked)
    table = read_table(args.data, args.sep, args.encoding)
    features = _features(table, args)
    y, classify = target(column(table, args.target, args.data), args.task, args.data)
    X = numbers(table[features], args.data)
    return X, y, classify, os.path.basename(args.data), None, features


def _features(table, args) -> list:
    """The columns the model takes: all but --target and --drop (each checked)."""
    if not args.target:
        raise CommandError(
            f"--target is required for a data file: name the column to predict. Its "
            f"{len(table.columns)} columns: {some(table.columns, 10)}"
        )
    column(table, args.target, args.data)
    check_columns(table, args.drop, args.data)
    features = [c for c in table.columns if c != args.target and c not in args.drop]
    if not features:
        raise CommandError(f"{args.data}: no columns are left to learn from besides --target")
    return features


def _chunked_dataset(args, cleanup, need: int, limit: int):
    """``dataset`` for a file read a chunk at a time (its ``need`` bytes of numbers more
    than the ``limit`` read whole, which the note says): one pass writes its features to a
    float64 file in a temporary folder in --out and keeps the target column (the
    classes and the scaling are then found from those, with the CSV rules)."""
    import pandas as pd

    chunks = table_chunks(args.data, args.sep, args.encoding)
    first = next(chunks)
    features = _features(first, args)
    print(
        f"gpubp train: note: {args.data} is read a chunk at a time (about "
        f"{size(need)} of numbers, more than the {size(limit)} "
        "read whole, a quarter of the memory free): its standardisation is fitted chunk by "
        "chunk, which can round differently from reading it whole",
        file=sys.stderr,
    )
    folder = tempfile.mkdtemp(prefix=".gpubp-data-", dir=args.out)
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "features.f64")
    targets, n = [], 0
    with open(path, "wb") as f:
        for table in itertools.chain([first], chunks):
            if list(table.columns) != list(first.columns):
                raise CommandError(f"{args.data}: the columns change at row {table.index[0]}")
            f.write(numbers(table[features], args.data).tobytes())
            targets.append(table[args.target])
            n += len(table)
    y, classify = target(pd.concat(targets), args.task, args.data)
    shape = (n, len(features))
    if n * len(features):
        X = np.memmap(path, dtype=np.float64, mode="r", shape=shape)
    else:  # no features: a file of no bytes cannot be mapped
        X = np.empty(shape)
    return SelectedRows(X, np.arange(n)), y, classify, os.path.basename(args.data), None, features
