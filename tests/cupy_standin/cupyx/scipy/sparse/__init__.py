"""cupyx.scipy.sparse for the stand-in: a CSR matrix on the "device" (SciPy underneath).

It keeps CuPy's rules where gpubp's plumbing can break: it is built from a SciPy
matrix (a host-to-device copy) or another device matrix, refuses NumPy operands
in products, indexes rows with device integer arrays or slices, and gives
device arrays from products and ``toarray``.
"""

import cupy
import numpy as _np
import scipy.sparse as _sp
from cupy import _state


def _rows(idx):
    if isinstance(idx, cupy.ndarray):
        return idx._a
    if isinstance(idx, slice):
        return idx
    raise TypeError(
        "the stand-in's sparse matrices index rows by slices or device arrays, not "
        f"{type(idx).__name__}"
    )


class _Matrix:
    format = "csr"

    def __init__(self, m):
        self._m = m

    shape = property(lambda self: self._m.shape)
    dtype = property(lambda self: self._m.dtype)
    nnz = property(lambda self: self._m.nnz)
    ndim = 2

    @property
    def T(self):
        return csc_matrix(self._m.T.tocsc())

    def tocsr(self):
        return csr_matrix(self._m.tocsr())

    def astype(self, dtype):
        return type(self)(self._m.astype(dtype))

    def toarray(self):
        return cupy._wrap(self._m.toarray())

    def __getitem__(self, idx):
        return type(self)(self._m[_rows(idx)])

    def __matmul__(self, other):
        if not isinstance(other, cupy.ndarray):
            raise TypeError(
                f"unsupported operand for a device sparse matrix: {type(other).__name__}"
            )
        cupy._launch()
        return cupy._wrap(_np.asarray(self._m @ other._a))

    def get(self):
        _state.d2h()
        return self._m.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed.")


class csr_matrix(_Matrix):
    def __init__(self, arg):
        if isinstance(arg, _Matrix):
            m = arg._m.tocsr()
        elif _sp.issparse(arg):
            cupy.COUNTS.h2d += 1
            m = arg.tocsr().copy()
        else:
            raise TypeError(
                f"the stand-in's csr_matrix takes a sparse matrix, not {type(arg).__name__}"
            )
        super().__init__(m)


class csc_matrix(_Matrix):
    format = "csc"


def issparse(x):
    return isinstance(x, _Matrix)
