"""Outputs of a fitted network for many rows: a chunk of rows at a time, so that the
activations of a chunk take at most PREDICT_CHUNK_BYTES of device memory, X read
from where it lies a chunk at a time when it is a memmap, HDF5, zarr, Dask or other
row source."""

from __future__ import annotations

import numpy as np

from ..backend import is_sparse
from ..inputs.checks import check_source, converter, validated
from ..inputs.sources import as_rows

PREDICT_CHUNK_BYTES = 2**28  # predict's activations per chunk of rows, at most


def chunk_rows(net, dtype) -> int:
    """Rows whose activations and outputs take at most PREDICT_CHUNK_BYTES."""
    per_row = np.dtype(dtype).itemsize * (sum(net.layer_sizes) + net.layer_sizes[-1])
    return max(1, PREDICT_CHUNK_BYTES // (per_row * (net.n_networks or 1)))


def predicted(est, net, X, output):
    """``output(net, T)`` for the rows of X as one NumPy array (X checked against what
    ``est`` was fitted on)."""
    backend = net.backend
    source = as_rows(X)  # None for device arrays too
    if source is None:
        X = validated(est, X, backend, reset=False)
    else:
        check_source(est, source, reset=False)
        convert = converter(est.dtype)
    rows = chunk_rows(net, est.dtype)
    parts = []
    for start in range(0, X.shape[0], rows):
        if source is None:
            part = X[start : start + rows]
        else:
            part = slice(start, min(start + rows, source.n))
            part = convert(source.read(part.start, part.stop), part)
        if net.n_networks is not None and is_sparse(part):
            part = part.toarray()  # a stack takes dense X
        _, T = net.propagate(backend.to_device(part))
        parts.append(backend.to_host(output(net, T)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
