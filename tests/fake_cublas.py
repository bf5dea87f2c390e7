"""cuBLAS's GEMM routines written out in NumPy, for ``gpubp.cublas.Cublas`` on the CuPy
stand-in (whose arrays live in host memory at real addresses).

Each routine does what the cuBLAS documentation says, column-major: C = alpha op(A)
op(B) + beta C, op(A) m x k, A read through its leading dimension lda (and batch
stride), C written only where the routine writes it. So the arguments gpubp works
out for cuBLAS (operations, leading dimensions, strides, the order of A and B) are
checked on the CPU: a wrong one reads or writes the wrong elements.
"""

from __future__ import annotations

import ctypes

import numpy as np

DTYPES = {0: np.float32, 1: np.float64}  # cudaDataType: CUDA_R_32F, CUDA_R_64F
COMPUTE = {68, 70, 77}  # CUBLAS_COMPUTE_32F, _64F, _32F_FAST_TF32


def _matrix(address: int, dtype, rows: int, cols: int, ld: int) -> np.ndarray:
    """The column-major rows x cols matrix at ``address`` with leading dimension ld."""
    assert ld >= max(rows, 1), f"leading dimension {ld} < rows {rows}"
    item = np.dtype(dtype).itemsize
    span = ld * (cols - 1) + rows
    base = np.ctypeslib.as_array((ctypes.c_char * (span * item)).from_address(address))
    flat = base.view(dtype)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))


def _scalar(ref, dtype):
    return dtype(ref._obj.value)


def _launched(work) -> None:
    """Run a GEMM; during a capture on the CuPy stand-in, also keep it (its pointers and
    scalars as they are now) for the graph's replays (the capture puts back what it
    wrote)."""
    from cupy import _state

    if _state.CAPTURE[0] is not None:
        _state.CAPTURE[0].append((work, (), {}, None))
    work()


class _Routine:
    """A Python function standing for a ctypes one: it takes ``argtypes`` too."""

    def __init__(self, function):
        self.function, self.argtypes = function, None

    def __call__(self, *args):
        assert self.argtypes is None or len(args) == len(self.argtypes)
        return self.function(*args)


class FakeCublasLibrary:
    """The five entry points ``Cublas`` looks up, with a record of the GEMMs called."""

    def __init__(self):
        self.calls = []

        def create(handle_ref):
            handle_ref._obj.value = 1
            return 0

        self.cublasCreate_v2 = _Routine(create)
        self.cublasSetStream_v2 = _Routine(lambda handle, stream: 0)
        self.cublasSetWorkspace_v2 = _Routine(lambda handle, workspace, size: 0)
        self.cublasGemmEx = _Routine(self._gemm)
        self.cublasGemmStridedBatchedEx = _Routine(self._gemm_batched)

    def _one(self, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, dtype):
        a = _matrix(A, dtype, *((m, k) if ta == 0 else (k, m)), lda)
        b = _matrix(B, dtype, *((k, n) if tb == 0 else (n, k)), ldb)
        c = _matrix(C, dtype, m, n, ldc)
        product = (a if ta == 0 else a.T).astype(np.float64) @ (b if tb == 0 else b.T)
        result = alpha * product + (beta * c if beta != 0 else 0)  # beta 0: C is not read
        c[...] = result.astype(dtype)

    def _gemm(self, handle, ta, tb, m, n, k, alpha, A, atype, lda, B, btype, ldb, beta, C,
              ctype, ldc, compute, algo):  # fmt: skip
        assert atype == btype == ctype and compute in COMPUTE
        dtype = DTYPES[atype]
        self.calls.append(("gemm", ta, tb, m, n, k))
        args = (ta, tb, m, n, k, _scalar(alpha, dtype), A.value, lda, B.value, ldb,
                _scalar(beta, dtype), C.value, ldc, dtype)  # fmt: skip
        _launched(lambda: self._one(*args))
        return 0

    def _gemm_batched(self, handle, ta, tb, m, n, k, alpha, A, atype, lda, stride_a, B,
                      btype, ldb, stride_b, beta, C, ctype, ldc, stride_c, batch, compute,
                      algo):  # fmt: skip
        assert atype == btype == ctype and compute in COMPUTE
        dtype = DTYPES[atype]
        item = np.dtype(dtype).itemsize
        self.calls.append(("batched", ta, tb, m, n, k, batch))
        a, b = _scalar(alpha, dtype), _scalar(beta, dtype)
        pa, pb, pc = A.value, B.value, C.value  # as now, as the scalars

        def run():
            for j in range(batch):
                self._one(
                    ta, tb, m, n, k, a,
                    pa + j * stride_a * item, lda, pb + j * stride_b * item, ldb,
                    b, pc + j * stride_c * item, ldc, dtype,
                )  # fmt: skip

        _launched(run)
        return 0
