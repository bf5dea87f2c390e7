"""The training cases as the loop sees them: resident on the device, or streamed.

``Data`` holds X, Y and the case weights on the device (NumPy: in memory), with
``rows`` naming the cases of a subset (the training part of an early-stopping
split) without copying them. ``Streamed`` leaves X and y where they lie (a
memmap, an HDF5 or zarr dataset, a Dask array, ...) and hands the loop one chunk
of rows at a time, in the epoch's order: read and converted on a thread of its
own while the previous chunk trains, and on CuPy copied to the device through a
pinned buffer on a second stream (``gpubp.inputs.device``).

The epoch's order is a permutation of the cases (``rng.permutation``, as
scikit-learn's), or for data read in chunks a ``BufferedOrder``: blocks of about
BLOCK_BYTES in a new random order every epoch and the rows of a chunk's worth of
them shuffled together (CorgiPile). A chunk of rows is a whole number of minibatches, so a streamed
epoch takes the same minibatches, in the same order, as a resident one.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .device import ChunkFeed
from .sources import Rows

CHUNK_BYTES = 2**26  # rows of X, Y and w read, converted and copied at a time, about
BLOCK_BYTES = 2**18  # buffered shuffling reads contiguous blocks of about this size
SHUFFLES = ("full", "buffered")


@dataclass
class Data:
    """Training cases on the device; case weights also on the host for batch sums."""

    X: Any
    Y: Any
    w: Any = None  # (n,), or (R, n) for a stack: the cases on the last axis
    w_host: np.ndarray | None = None
    offset: int = 0  # data-parallel: this rank's rows are offset .. offset + n of n_global
    n_total: int | None = None
    rows: np.ndarray | None = None  # the rows of X in this set (a split's part); None: all

    streamed = False

    @property
    def n(self) -> int:
        return int(self.X.shape[0]) if self.rows is None else len(self.rows)

    @property
    def n_global(self) -> int:
        return self.n if self.n_total is None else self.n_total

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def weight_sum(self):
        """The sum of the case weights: a float, or one per network for a stack's weights."""
        if self.w_host is None:
            return float(self.n)
        w = self.w_host if self.rows is None else self.w_host[..., self.rows]
        if w.ndim == 1:
            return float(w.sum())
        return w.sum(axis=-1, dtype=np.float64)

    def with_rows(self, positions) -> Data:
        """The cases at ``positions`` of this set, by index: nothing is copied (a shallow
        copy of this Data, or Streamed, with its own rows)."""
        positions = np.asarray(positions, dtype=np.int64)
        part = copy.copy(self)
        part.rows = positions if self.rows is None else self.rows[positions]
        part.offset, part.n_total = 0, None
        return part

    def source_rows(self, order):
        """The rows of X that the positions ``order`` of this set are (None: all, in turn)."""
        if self.rows is None:
            return order
        return self.rows if order is None else self.rows[order]

    def subset(self, backend, idx, rows) -> Data:
        """The cases at ``idx`` (a slice, or device indices whose host copy is ``rows``)."""

        def pick(a):
            if a is None:
                return None
            return a[idx] if isinstance(idx, slice) else backend.take_rows(a, idx)

        w, w_host = self.w, self.w_host
        if w is not None and w.ndim == 2:  # a stack's weights: pick columns
            w = w[:, idx] if isinstance(idx, slice) else backend.xp.take(w, idx, axis=1)
        else:
            w = pick(w)
        w_host = None if w_host is None else w_host[..., rows]
        return Data(pick(self.X), pick(self.Y), w, w_host)

    def epoch_order(self, rng: np.random.Generator, shuffle, batch_size: int):
        """This epoch's order of the cases: None (in turn), a permutation of n_global, or a
        BufferedOrder (``shuffle="buffered"``)."""
        if not shuffle:
            return None
        if shuffle == "buffered":
            block = self.chunk_rows(batch_size, BLOCK_BYTES)
            per_buffer = max(1, self.chunk_rows(batch_size) // block)
            return BufferedOrder(self.n_global, block, per_buffer, rng)
        return permutation(rng, self.n_global)

    def chunk_rows(self, batch_size: int, nbytes: int = 0) -> int:
        """Rows per chunk: a whole number of minibatches (at least one) in about ``nbytes``
        (default CHUNK_BYTES)."""
        row_bytes = max(1, self.row_bytes())
        per_chunk = (nbytes or CHUNK_BYTES) // row_bytes
        return max(batch_size, per_chunk // batch_size * batch_size)

    def row_bytes(self) -> int:
        Y = self.Y
        K = int(Y.shape[1]) if getattr(Y, "ndim", 2) == 2 else 1
        itemsize = np.dtype(getattr(self.X, "dtype", np.float32)).itemsize
        return itemsize * (self.n_features + K + self.weight_columns())

    def weight_columns(self) -> int:
        """The case weights' values per row: none, one, or one per network of a stack."""
        w = self.w_host
        return 0 if w is None else 1 if w.ndim == 1 else int(w.shape[0])


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """``rng.permutation(n)``, the same numbers from the same draws, in int32 where n allows
    (4 bytes a row, not 8: the one per-row array a streamed epoch keeps)."""
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    rng.shuffle(order)
    return order


class BufferedOrder:
    """An epoch in buffers (CorgiPile): blocks of ``block_rows`` cases in a random order,
    the rows of every ``per_buffer`` of them shuffled together; the last, shorter block
    joins the last buffer. Many small blocks per buffer make each buffer a fair sample
    of the data even when it is sorted (by label, by time), while each block is still
    read in one piece. Draws two numbers from ``rng``; holds O(n / block_rows)."""

    def __init__(self, n: int, block_rows: int, per_buffer: int, rng: np.random.Generator):
        self.n, self.block_rows, self.per_buffer = n, block_rows, per_buffer
        self.block_order = rng.permutation(n // block_rows)
        self.seed = int(rng.integers(2**63 - 1))

    def blocks(self):
        """The positions of each buffer, shuffled, in the epoch's order: a whole number of
        blocks (so of minibatches) each, but the last."""
        bs, order, m = self.block_rows, self.block_order, self.per_buffer
        starts = range(0, len(order), m) or range(1)
        for b, first in enumerate(starts):
            parts = [np.arange(c * bs, (c + 1) * bs) for c in order[first : first + m]]
            if b == len(starts) - 1:  # the rows after the last whole block
                parts.append(np.arange(len(order) * bs, self.n))
            positions = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            if len(positions):
                rng = np.random.default_rng([self.seed, b])
                yield positions[rng.permutation(len(positions))]

    def materialize(self) -> np.ndarray:
        """The whole order as one permutation (for data held in memory)."""
        return np.concatenate(list(self.blocks())) if self.n else np.empty(0, dtype=np.int64)


class Streamed(Data):
    """Cases read from X and y where they lie, a chunk at a time.

    ``X`` and ``y`` are ``Rows``; ``encode(y_rows)`` gives their (k, K) targets in
    ``dtype``; ``convert(X_rows, rows)`` checks a block of X and casts it to ``dtype``
    (``rows``, a slice or integers, name its rows in messages). ``w`` stays None: the case
    weights go with each chunk from ``w_host``.
    """

    streamed = True

    def __init__(self, X: Rows, y: Rows, encode, convert, n_outputs: int, dtype, **kw):
        super().__init__(X, None, **kw)
        self.y, self.encode, self.convert = y, encode, convert
        self.n_outputs, self.dtype = n_outputs, np.dtype(dtype)

    def row_bytes(self) -> int:
        return self.dtype.itemsize * (self.n_features + self.n_outputs + self.weight_columns())

    def subset(self, backend, idx, rows) -> Data:
        """The cases ``rows`` (host integers) read and moved to the device (data-parallel
        epochs take their batches this way)."""
        X, Y, w = self.gather(np.asarray(rows, dtype=np.int64), source=True)
        to_device = backend.to_device
        return Data(to_device(X), to_device(Y), None if w is None else to_device(w), w)

    def gather(self, positions, source: bool = False):
        """(X, Y, w) on the host for the ``positions`` of this set (a slice or integers;
        ``source``: rows of X already), X and Y in ``dtype``."""
        rows = positions if source else self.source_rows(positions)
        if isinstance(rows, slice):
            X, y = self.X.read(rows.start, rows.stop), self.y.read(rows.start, rows.stop)
        else:
            X, y = self.X.take(rows), self.y.take(rows)
        w = None if self.w_host is None else np.ascontiguousarray(self.w_host[..., rows])
        return self.convert(X, rows), self.encode(y), w

    def blocks(self, order, batch_size: int, skip: int = 0):
        """The positions of each chunk of this epoch, in order, after its first ``skip``
        positions (a resumed epoch's rows already passed)."""
        if isinstance(order, BufferedOrder):
            pieces = order.blocks()
        else:
            step = self.chunk_rows(batch_size)
            pieces = (
                slice(start, min(start + step, self.n))
                if order is None
                else order[start : start + step]
                for start in range(0, self.n, step)
            )
        for positions in pieces:
            size = (
                positions.stop - positions.start if isinstance(positions, slice) else len(positions)
            )
            if skip >= size:
                skip -= size
                continue
            if skip and isinstance(positions, slice):
                positions = slice(positions.start + skip, positions.stop)
            elif skip:
                positions = positions[skip:]
            skip = 0
            yield positions

    def chunks(self, backend, order, batch_size: int, skip: int = 0):
        """Resident ``Data`` for each chunk of the epoch (after its first ``skip`` positions),
        on the backend's device: read on a thread of their own one chunk ahead; on CuPy
        through ``device.ChunkFeed``."""
        host = prefetched(self.gather(p) for p in self.blocks(order, batch_size, skip))
        with contextlib.closing(host):
            if backend.name != "cupy":
                for X, Y, w in host:
                    yield Data(X, Y, w, w)
                return
            if getattr(self, "_feed", None) is None:  # its buffers serve every epoch
                self._feed = ChunkFeed(backend)
            feed = self._feed
            ahead = next(host, None)
            if ahead is None:
                return
            feed.send(ahead)
            for following in host:
                current = Data(*feed.receive())
                feed.send(following)
                yield current
            yield Data(*feed.receive())


def held_out_pieces(data: Data, positions, y, backend, batch_size: int):
    """A function that yields (resident Data, host targets y) for the cases at
    ``positions`` of ``data``: one copy on the device of them all for resident data (a
    tenth of it, for early stopping), a chunk at a time for streamed data (``y`` then
    Rows, its column read as a vector)."""
    if not data.streamed:
        rows = data.source_rows(positions)
        held = data.subset(backend, backend.to_device(rows), rows)
        labels = y[positions]

        def resident():
            yield held, labels

        return resident
    held_out = data.with_rows(positions)
    step = held_out.chunk_rows(batch_size)

    def streamed():
        for start in range(0, held_out.n, step):
            part = slice(start, min(start + step, held_out.n))
            X, Y, w = held_out.gather(part)
            w_dev = None if w is None else backend.to_device(w)
            labels = y.take(held_out.source_rows(part))
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            yield Data(backend.to_device(X), backend.to_device(Y), w_dev, w), labels

    return streamed


def prefetched(items, depth: int = 1):
    """``items`` made on a thread of their own, up to ``depth`` ahead of the consumer; an
    error there is raised here, and closing this generator stops the thread."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    done = threading.Event()

    def put(entry) -> bool:
        while not done.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=produce, name="gpubp-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        done.set()
        thread.join()


def check_finite(block, rows, name: str = "X", original=None) -> None:
    """InputError naming the first row of ``block`` that is not finite (``rows``, a slice
    or integers, are the block's rows); ``original``, the block before a cast, tells
    overflow from NaN."""
    if np.isfinite(block).all():
        return
    bad = int(np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0])
    row = rows.start + bad if isinstance(rows, slice) else int(rows[bad])
    if original is not None and np.isfinite(original[bad]).all():
        raise InputError(
            f"{name} holds values beyond the range of {block.dtype} in row {row} (largest "
            f"magnitude {np.abs(original[bad]).max():.3g}); use dtype='float64'"
        )
    raise InputError(f"Input {name} contains NaN or infinity (row {row}).")
