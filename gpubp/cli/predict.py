"""``gpubp predict``: a model's predictions for the rows of a CSV, Parquet or .npy file,
a chunk at a time, as CSV."""

from __future__ import annotations

import csv
import io
import os
import sys

import numpy as np
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from ..file_formats import write_atomically
from ..persist import load_with_description
from ..tables import (
    check_columns,
    column,
    numbers,
    read_csv,
    read_in_chunks,
    some,
    table_chunks,
)
from .options import CommandError


def run(args) -> int:
    if args.out:
        for other, what in ((args.model, "the model"), (args.csv, "the CSV")):
            if os.path.exists(other) and os.path.realpath(args.out) == os.path.realpath(other):
                raise CommandError(f"--out {args.out} is {what} being read; give another file")
    model, description = load_with_description(args.model, backend=args.backend)
    if not hasattr(model, "n_features_in_"):
        raise CommandError(f"{args.model} holds a bare network; predict needs an estimator")
    if args.proba and not is_classifier(model):
        raise CommandError("--proba needs a classifier")
    trained_on = (description["record"] or {}).get("target")
    if read_in_chunks(args.csv):
        tables = table_chunks(args.csv, args.sep, args.encoding)
    else:
        tables = iter([read_csv(args.csv, args.sep, args.encoding)])
    first = next(tables)
    if args.target:
        column(first, args.target, args.csv)
    check_columns(first, args.drop, args.csv)
    leave_out = {args.target, trained_on, *args.drop}

    def values(table, note):
        X = _features(model, table, leave_out, args, note)
        if args.proba:
            return model.predict_proba(X)
        return np.asarray(model.predict(X)).reshape(len(X), -1)

    head = values(first, True)
    if args.proba:
        columns = [f"p_{c}" for c in model.classes_]
    elif head.shape[1] == 1:
        columns = ["prediction"]
    else:
        columns = [f"prediction_{k}" for k in range(head.shape[1])]

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(head.tolist())
        for table in tables:
            writer.writerows(values(table, False).tolist())

    def write_bytes(f):
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        write(text)
        text.flush()
        text.detach()

    if args.out:
        write_atomically(args.out, write_bytes)
    else:
        write(sys.stdout)
        sys.stdout.flush()
    return 0


def _features(model, table, leave_out, args, note=True):
    """The model's input columns of the CSV: by name when the model knows its features'
    names (reordered; columns it does not know are left out with a note, when ``note``),
    else by position after leaving out ``--target``. A Pipeline takes its columns as they
    are (its own steps encode text); a gpubp estimator takes numbers."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        keep = [c for c in table.columns if c not in leave_out]
        n = model.n_features_in_
        if len(keep) < n:
            raise CommandError(
                f"the model takes {n} features and {args.csv} has {len(keep)} columns to give "
                f"it ({_left_out(table, leave_out)}): {n - len(keep)} missing"
            )
        if len(keep) > n:
            raise CommandError(
                f"the model takes {n} features and {args.csv} has {len(keep)} columns to give "
                f"it ({_left_out(table, leave_out)}): leave out {len(keep) - n} more with "
                "--drop (or --target)"
            )
        return numbers(table[keep], args.csv)
    import pandas as pd

    names = [str(c) for c in names]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise CommandError(
            f"{args.csv} lacks {len(missing)} of the model's {len(names)} columns: "
            f"{some(missing, 10)}"
        )
    unknown = [c for c in table.columns if c not in names and c not in leave_out]
    if unknown and note:
        print(
            f"gpubp predict: note: leaving out columns the model was not trained on: "
            f"{some(unknown, 10)}",
            file=sys.stderr,
        )
    if isinstance(model, Pipeline):
        return table[names]
    return pd.DataFrame(numbers(table[names], args.csv), columns=names)


def _left_out(table, leave_out) -> str:
    """Which columns of ``table`` are left out, in words."""
    gone = [c for c in table.columns if c in leave_out]
    return f"after leaving out {some(gone, 10)}" if gone else "none left out"
