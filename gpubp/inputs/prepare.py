"""``prepare``: what ``fit`` was handed, made ready for training, once.

The one place where X, y and sample_weight become the training set: X resident on
the device or streamed from where it lies (``residency``), checked and in the
training dtype (``checks``), y encoded by the estimator's targets object
(``gpubp.estimators.targets``), the case weights checked and multiplied by the class
weights, and with several ranks
every rank agreeing that its inputs are valid, the classes gathered from all
ranks, replicated data cut to this rank's rows and the rows numbered across ranks
(``shards``). A stack of networks takes a dense X.

``prediction_chunks`` is the same for the X of ``predict`` and ``score``: checked against
what the estimator was fitted on and handed over a chunk of rows at a time, on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from ..backend import is_sparse, to_numpy
from ..distributed import agree, shard
from .checks import check_source, converter, inputs, named, sample_weights, validated
from .data import Data, Streamed
from .residency import streamed_source
from .shards import own_rows_if_replicated, replicated, shards
from .sources import as_rows, distinct_values, target_rows


@dataclass
class Prepared:
    """The training set: ``data`` (``Data`` or ``Streamed``), y on the host (an array, or
    ``Rows`` when streamed) and its encoded width; ``targets`` as it encoded y; and
    ``last`` (the raw y, y and the device targets) for a partial_fit that follows."""

    data: Any
    y: Any
    n_outputs: int
    targets: Any
    last: tuple | None = None


def prepare(
    est,
    X,
    y,
    sample_weight,
    *,
    targets,
    backend,
    comm,
    reset,
    incremental,
    stack,
    last=None,
    streaming=None,
) -> Prepared:
    """The training set of a fit (``reset``: its first, where X's features are recorded on
    ``est`` as scikit-learn's ``validate_data`` records them; ``incremental``: a
    partial_fit, whose ``last`` targets are reused when y is the same; ``streaming``:
    ``est.streaming`` unless given)."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None.")
    streaming = est.streaming if streaming is None else streaming
    source = streamed_source(X, backend, streaming, est.solver, est.dtype)
    if source is None:
        prepared = _resident(
            est, X, y, sample_weight, targets, backend, comm, reset, incremental, last
        )
        if stack and is_sparse(prepared.data.X):
            prepared.data.X = prepared.data.X.toarray()
        return prepared
    return _streamed(est, source, y, sample_weight, targets, comm, reset, incremental)


def _resident(
    est, X, y, sample_weight, targets, backend, comm, reset, incremental, last
) -> Prepared:
    """X and y checked whole; X on the device."""
    y = to_numpy(y)
    reused = _same_targets(last, y) if comm is None else None
    if reused is not None:  # partial_fit on the targets of the last call: encoded already
        X = inputs(est, X, backend, reset=reset, training=True)
        y_host, Y, y_raw = reused
        named("y", check_consistent_length, X, y_host)
    else:
        y_raw = np.array(y, copy=True)  # the caller may change y in place later
        X, y = agree(comm, lambda: inputs(est, X, backend, reset=reset, y=y))
        labels = all_labels(comm, targets, y) if reset or not incremental else None
        y_host, Y = agree(comm, lambda: named("y", targets.encode, y, incremental, labels))
    w_host = sample_weights(comm, sample_weight, X.shape[0], est.dtype)
    w_host = agree(comm, lambda: named("class_weight", targets.weigh, y_host, w_host, comm))
    X, y_host, Y, w_host = own_rows_if_replicated(comm, backend, X, y_host, Y, w_host)
    offset, n_total = shards(comm, X.shape[0], X.shape[1], Y.shape[1])
    Y = backend.to_device(Y, dtype=np.dtype(est.dtype))
    w = None if w_host is None else backend.to_device(w_host)
    data = Data(X, Y, w, w_host, offset, n_total)
    last = (y_raw, y_host, Y) if comm is None else None
    return Prepared(data, y_host, int(Y.shape[1]), targets, last)


def _same_targets(last, y):
    """(y_host, Y, y) of the last fit or partial_fit where ``y`` equals its y, else None: a
    partial_fit loop over the same targets encodes them (and moves them to the device)
    once."""
    if last is None:
        return None
    raw, y_host, Y = last
    if raw.shape != y.shape or raw.dtype != y.dtype or not np.array_equal(raw, y):
        return None
    return y_host, Y, raw


def all_labels(comm, targets, y):
    """Every rank's class labels (data-parallel classifiers only), else None."""
    if comm is None or not targets.classifier or type_of_target(y).startswith("multilabel"):
        return None
    return unique_labels(*comm.allgather(unique_labels(y)))


def _streamed(est, source, y, sample_weight, targets, comm, reset, incremental) -> Prepared:
    """X and y stay where they lie; y's classes are found by a pass over y, and each
    chunk's targets are encoded as it is read."""
    agree(comm, lambda: check_source(est, source, reset=reset))
    ys = target_rows(y, source.n)
    flat = ys.ndim == 2 and ys.shape[1] == 1  # a column: one target, as (n,)
    first = ys.read(0, 1)
    if flat:
        first = column_or_1d(first, warn=True)  # scikit-learn's column warning
    if targets.classifier and first.ndim == 1:
        values = named("y", distinct_values, ys)
        labels = values if comm is None else unique_labels(*comm.allgather(values))
        named("y", targets.encode, labels, incremental, labels)
    elif reset or not incremental:
        named("y", targets.encode, first, incremental)

    def encode(block):
        if not len(block):  # a data-parallel batch may hold none of this rank's rows
            return np.empty((0, n_outputs), dtype=est.dtype)
        block = named(
            "y",
            check_array,
            block[:, 0] if flat else block,
            ensure_2d=False,
            input_name="y",
            dtype=None if targets.classifier else np.float64,
        )
        return named("y", targets.encode, block, True)[1]

    n_outputs = encode(ys.read(0, 1)).shape[1]
    w_host = sample_weights(comm, sample_weight, source.n, est.dtype)
    if targets.class_weight is not None:  # the labels of every row, read once
        labels = ys.read(0, source.n)
        w_host = named(
            "class_weight", targets.weigh, labels[:, 0] if flat else labels, w_host, comm
        )
    data = Streamed(source, ys, encode, converter(est.dtype), n_outputs, est.dtype, w_host=w_host)
    if comm is not None and replicated(comm, source.take, source.n, source.shape, ys.take, w_host):
        data = data.with_rows(np.arange(source.n)[shard(source.n, comm.rank, comm.size)])
    data.offset, data.n_total = shards(comm, data.n, data.n_features, n_outputs)
    return Prepared(data, ys, n_outputs, targets)


def prediction_chunks(est, X, backend, rows: int, dense: bool):
    """X's rows, ``rows`` at a time, checked against what ``est`` was fitted on and on the
    backend's device (dense for a stack); X that lies outside memory (a memmap, HDF5,
    zarr, Dask, ...) is read a chunk at a time."""
    source = as_rows(X)  # None for device arrays too
    if source is None:
        X = validated(est, X, backend, reset=False)
        n = X.shape[0]
    else:
        check_source(est, source, reset=False)
        convert, n = converter(est.dtype), source.n
    for start in range(0, n, rows):
        if source is None:
            part = X[start : start + rows]
        else:
            part = slice(start, min(start + rows, n))
            part = convert(source.read(part.start, part.stop), part)
        if dense and is_sparse(part):
            part = part.toarray()
        yield backend.to_device(part)
