"""Data-parallel inputs: each rank's block of rows, and the check that finds every rank
holding the same rows (each then keeps its own block)."""

from __future__ import annotations

import hashlib

import numpy as np

from ..backend import is_sparse
from ..distributed import DistributedError, shard


def shards(comm, n: int, p: int, K: int) -> tuple[int, int | None]:
    """(offset, n_global) of this rank's n rows of p features and K outputs; every rank
    gets the same error for bad shards."""
    if comm is None:
        return 0, None
    shapes = comm.allgather((int(n), int(p), int(K)))
    empty = [r for r, (rows, _, _) in enumerate(shapes) if rows == 0]
    if empty:
        raise DistributedError(f"rank(s) {empty} hold no training rows; give every rank some")
    for what, k in (("features", 1), ("outputs", 2)):
        if len({shape[k] for shape in shapes}) > 1:
            raise DistributedError(
                f"the ranks hold different numbers of {what}: "
                + ", ".join(f"rank {r}: {shape[k]}" for r, shape in enumerate(shapes))
            )
    sizes = [rows for rows, _, _ in shapes]
    return sum(sizes[: comm.rank]), sum(sizes)


def fingerprint(take, n: int, shape, Y, w) -> str:
    """A digest of X's shape and of up to 64 evenly spaced rows of X (``take(rows)`` gives
    them on the host), Y (an array, or a function of the rows like ``take``) and w."""

    def read(rows):
        return take(rows), Y(rows) if callable(Y) else Y[rows], None if w is None else w[rows]

    return sampled_digest(shape, n, 64, read)


def sampled_digest(head, n: int, count: int, read) -> str:
    """A digest of ``head`` and of the host arrays ``read(rows)`` gives (None: none) for up
    to ``count`` evenly spaced rows of n: each array's shape, dtype and bytes."""
    rows = np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))
    digest = hashlib.blake2b(repr(tuple(head)).encode(), digest_size=16)
    for a in read(rows):
        if a is not None:
            a = np.ascontiguousarray(a)
            digest.update(repr((a.shape, a.dtype.str)).encode())
            digest.update(a.data)
    return digest.hexdigest()


def replicated(comm, take, n: int, shape, Y, w) -> bool:
    """Whether every rank holds the same rows (by their fingerprints)."""
    return len(set(comm.allgather(fingerprint(take, n, shape, Y, w)))) == 1


def own_rows_if_replicated(comm, backend, X, y, Y, w):
    """(X, y, Y, w), cut to this rank's shard when every rank holds the same rows.

    Each rank reading the whole file is the common way to launch; training on R
    copies of the data would be wrong, so each rank takes its block of rows.
    """

    def take(rows):
        sample = backend.take_rows(X, backend.to_device(rows))
        return backend.to_host(sample.toarray() if is_sparse(sample) else sample)

    if comm is None or not replicated(comm, take, X.shape[0], X.shape, Y, w):
        return X, y, Y, w
    part = shard(X.shape[0], comm.rank, comm.size)
    return X[part], y[part], Y[part], None if w is None else w[part]
