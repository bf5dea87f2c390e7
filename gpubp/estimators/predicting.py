"""Outputs of a fitted network for many rows: a chunk of rows at a time, so that the
activations of a chunk take at most PREDICT_CHUNK_BYTES of device memory, X read
from where it lies a chunk at a time when it is a memmap, HDF5, zarr, Dask or other
row source."""

from __future__ import annotations

import numpy as np

from ..inputs.prepare import prediction_chunks

PREDICT_CHUNK_BYTES = 2**28  # predict's activations per chunk of rows, at most


def chunk_rows(net, dtype) -> int:
    """Rows whose activations and outputs take at most PREDICT_CHUNK_BYTES."""
    per_row = np.dtype(dtype).itemsize * (sum(net.layer_sizes) + net.layer_sizes[-1])
    return max(1, PREDICT_CHUNK_BYTES // (per_row * (net.n_networks or 1)))


def predicted(est, net, X, output):
    """``output(net, T)`` for the rows of X as one NumPy array (X checked against what
    ``est`` was fitted on, ``gpubp.inputs.prepare.prediction_chunks``)."""
    backend = net.backend
    stack = net.n_networks is not None  # a stack takes dense X
    parts = []
    for part in prediction_chunks(est, X, backend, chunk_rows(net, est.dtype), stack):
        _, T = net.propagate(part)
        parts.append(backend.to_host(output(net, T)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
