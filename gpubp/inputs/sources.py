"""Row sources: X (or y) that stays where it is and is read a block of rows at a time.

A NumPy memmap, an HDF5 dataset (h5py), a zarr array, a Dask array or any object
with a ``shape`` whose rows can be sliced (``a[start:stop]``) is wrapped in ``Rows``,
which reads contiguous blocks (``read``) and rows in any order (``take``). Memmaps
and in-memory arrays are read at random cheaply (the page cache or RAM); the others
are read in contiguous runs, and their epochs are shuffled by chunks (``shuffle``).
"""

from __future__ import annotations

import mmap

import numpy as np

from ..backend import is_sparse

MAX_RUNS = 64  # a dense scatter of more runs than this reads the span in one piece
BLOCK_BYTES = 2**26  # what a pass over a source (scaling, checks) reads at a time, about


class Rows:
    """Rows of ``array``, read a block at a time into NumPy arrays on the host.

    ``kind`` is "array", "memmap", "selected", "hdf5", "zarr", "dask" or "sliceable";
    ``random_access`` says whether rows in any order are cheap to read.
    """

    def __init__(self, array, kind: str, random_access: bool):
        self.array = array
        self.kind = kind
        self.random_access = random_access
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(getattr(array, "dtype", np.float64))

    @property
    def n(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.n

    @property
    def block_rows(self) -> int:
        return block_rows(self.shape, self.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start .. stop - 1 as a host array in the source's dtype."""
        block = self.array[int(start) : int(stop)]
        if self.kind == "dask":
            block = block.compute()
        return np.asarray(block)

    def take(self, rows) -> np.ndarray:
        """The rows ``rows`` (integers, any order, repeats allowed) as a host array."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.random_access:
            if isinstance(self.array, np.ndarray):
                return np.take(self.array, rows, axis=0)
            return np.asarray(self.array[rows])
        if len(rows) == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._sorted(unique)[inverse]

    def _sorted(self, unique) -> np.ndarray:
        """Increasing distinct rows: each contiguous run read once, or the whole span when
        the runs are many and the span at most 4 times the rows (a dense scatter)."""
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        span = int(unique[-1] - unique[0]) + 1
        if len(breaks) >= MAX_RUNS and span <= 4 * len(unique):
            return self.read(unique[0], unique[-1] + 1)[unique - unique[0]]
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(unique)]])
        blocks = [self.read(unique[a], unique[b - 1] + 1) for a, b in zip(starts, stops)]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def __repr__(self) -> str:
        return f"Rows({self.kind}, shape={self.shape}, dtype={self.dtype})"


class SelectedRows:
    """The rows ``rows`` (integers, best increasing) of a memmap or in-memory ``array``, each
    block read passed through ``transform``: the parts of a split, by index, nothing copied.
    Read at random cheaply, as its array."""

    def __init__(self, array, rows, transform=None):
        self.array, self.transform = array, transform
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *array.shape[1:])
        self.dtype = np.dtype(np.float64 if transform is not None else array.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def block_rows(self) -> int:
        return block_rows(self.shape, self.dtype)

    def __getitem__(self, positions) -> np.ndarray:
        """The rows at ``positions`` of this selection (a slice or integers)."""
        block = np.asarray(self.array[self.rows[positions]])
        return block if self.transform is None else self.transform(block)

    def subset(self, positions, transform=None) -> SelectedRows:
        """The rows at ``positions`` of this selection, with ``transform``."""
        return SelectedRows(self.array, self.rows[positions], transform)


def block_rows(shape, dtype) -> int:
    """Rows of about BLOCK_BYTES of an array of ``shape`` and ``dtype``: what a pass over
    it reads at a time."""
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def memory_mapped(a) -> bool:
    """Whether the NumPy array ``a`` lies in a memory-mapped file."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def as_rows(a, stream_arrays: bool = False) -> Rows | None:
    """``a`` as Rows when it is read from where it lies (a memmap, HDF5, zarr, Dask or any
    row-sliceable array), else None: in-memory data (NumPy arrays, lists, DataFrames,
    sparse matrices, device arrays), which the estimators validate whole.
    ``stream_arrays`` wraps in-memory NumPy arrays too."""
    if isinstance(a, Rows):
        return a
    if isinstance(a, SelectedRows):
        return Rows(a, "selected", True)
    if isinstance(a, np.ndarray):
        if memory_mapped(a):
            return Rows(a, "memmap", True)
        return Rows(a, "array", True) if stream_arrays and a.ndim in (1, 2) else None
    module = type(a).__module__.split(".")[0]
    shape = getattr(a, "shape", None)
    if shape is None or not hasattr(a, "__getitem__") or is_sparse(a):
        return None
    if module == "h5py":
        return Rows(a, "hdf5", False)
    if module == "zarr":
        return Rows(a, "zarr", False)
    if module == "dask" and hasattr(a, "compute"):
        return Rows(a, "dask", False)
    if any(hasattr(a, k) for k in ("__array__", "__dlpack__", "__cuda_array_interface__")):
        return None  # DataFrames, tensors, device arrays: read whole, as before
    if len(shape) not in (1, 2) or not hasattr(a, "dtype"):
        return None
    return Rows(a, "sliceable", False)


def distinct_values(rows: Rows, block_rows: int = 2**14) -> np.ndarray:
    """The distinct values of ``rows`` (class labels), read a block at a time."""
    values = np.unique(rows.read(0, min(block_rows, rows.n)))
    for start in range(block_rows, rows.n, block_rows):
        block = np.unique(rows.read(start, min(start + block_rows, rows.n)))
        values = np.union1d(values, block)  # of two short arrays: no copy of the block
    return values


def target_rows(y, n: int) -> Rows:
    """y as Rows (read where it lies, or from memory), checked to hold n targets."""
    from ..backend import to_numpy
    from ..errors import InputError

    rows = as_rows(y, stream_arrays=True)
    if rows is None:
        try:
            rows = Rows(np.asarray(to_numpy(y)), "array", True)
        except (ValueError, TypeError) as exc:
            raise InputError(f"y: {exc}") from exc
    if rows.ndim not in (1, 2) or rows.n != n:
        raise InputError(f"y: expected {n} targets for the {n} rows of X, got shape {rows.shape}")
    return rows
