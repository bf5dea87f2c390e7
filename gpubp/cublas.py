"""Matrix products through cuBLAS, called directly, for the CuPy backend.

CuPy refuses every cuBLAS call while a stream is being captured into a CUDA
graph (CuPy issue 6290), so a training step that uses ``cupy.matmul`` cannot be
captured. This module calls the cuBLAS library that CuPy itself loaded, through
ctypes, with its own handle: ``cublasGemmEx`` and ``cublasGemmStridedBatchedEx``,
the routines and algorithm choice (``CUBLAS_GEMM_DEFAULT_TENSOR_OP``) that
``cupy.matmul`` uses for float32 and float64, so the products are the same, and
they can be captured. Only ``gpubp.kernels`` imports it, on a working CuPy.

``precision="tf32"`` asks for ``CUBLAS_COMPUTE_32F_FAST_TF32`` (float32 inputs
rounded to TF32 in the tensor cores, float32 sums); the default is full float32.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import cupy as cp

_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE = {  # (dtype, precision) -> cublasComputeType_t; TF32 leaves float64 alone
    ("float32", "float32"): 68,
    ("float32", "tf32"): 77,
    ("float64", "float32"): 70,
    ("float64", "tf32"): 70,
}
_GEMM_DEFAULT_TENSOR_OP = 99
_WORKSPACE_BYTES = 32 << 20  # what cuBLAS recommends for Hopper


def _library_path() -> str | None:
    """The libcublas that CuPy loaded (read from the process's memory map), or the system's."""
    cp.cuda.device.get_cublas_handle()  # makes CuPy load cuBLAS
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcublas.so" in path:
                    return path
    except OSError:
        pass
    return ctypes.util.find_library("cublas")


def _symbol(lib, *names):
    for name in names:
        try:
            return getattr(lib, name)
        except AttributeError:
            continue
    raise OSError(f"cuBLAS has none of {names}")


class Cublas:
    """A cuBLAS handle of our own on the current device, and GEMMs through it."""

    def __init__(self, lib, path: str):
        self._create = _symbol(lib, "cublasCreate_v2", "cublasCreate")
        self._set_stream = _symbol(lib, "cublasSetStream_v2", "cublasSetStream")
        self._set_workspace = _symbol(lib, "cublasSetWorkspace_v2", "cublasSetWorkspace")
        self._gemm = _symbol(lib, "cublasGemmEx")
        self._gemm_batched = _symbol(lib, "cublasGemmStridedBatchedEx")
        vp, i, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        self._gemm.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
        self._gemm_batched.argtypes = [
            vp, i, i, i, i, i, vp, vp, i, i, i64, vp, i, i, i64, vp, vp, i, i, i64, i, i, i,
        ]  # fmt: skip
        handle = ctypes.c_void_p()
        self._check(self._create(ctypes.byref(handle)), "cublasCreate")
        self.handle = handle
        self.path = path
        self._stream = None
        # cuBLAS's scratch memory, fixed so that captured products keep using it
        self._workspace = cp.empty(_WORKSPACE_BYTES, dtype=cp.uint8)
        self._one = {"float32": ctypes.c_float(1.0), "float64": ctypes.c_double(1.0)}
        self._zero = {"float32": ctypes.c_float(0.0), "float64": ctypes.c_double(0.0)}

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with cuBLAS status {status}")

    def _bind_stream(self) -> None:
        stream = cp.cuda.get_current_stream().ptr
        if stream != self._stream:
            self._check(self._set_stream(self.handle, ctypes.c_void_p(stream)), "cublasSetStream")
            self._check(
                self._set_workspace(
                    self.handle, ctypes.c_void_p(self._workspace.data.ptr), _WORKSPACE_BYTES
                ),
                "cublasSetWorkspace",
            )
            self._stream = stream

    def matmul(self, a, b, out=None, precision: str = "float32"):
        """``a @ b`` for float32 or float64 operands whose last two axes are a row-major
        matrix or a transposed one, with at most one leading (batch) axis, which may
        broadcast; None where that does not hold (the caller falls back to CuPy)."""
        name = a.dtype.name
        if name not in ("float32", "float64") or b.dtype != a.dtype or a.ndim < 2 or b.ndim < 2:
            return None
        if a.ndim > 3 or b.ndim > 3 or a.shape[-1] != b.shape[-2]:
            return None
        la, lb = _layout(a), _layout(b)
        if la is None or lb is None:
            return None
        M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
        batch = max(a.shape[0] if a.ndim == 3 else 1, b.shape[0] if b.ndim == 3 else 1)
        for x in (a, b):
            if x.ndim == 3 and x.shape[0] not in (1, batch):
                return None
        shape = (M, N) if a.ndim == 2 and b.ndim == 2 else (batch, M, N)
        if out is None:
            out = cp.empty(shape, dtype=a.dtype)
        elif (
            tuple(out.shape) != shape
            or out.dtype != a.dtype
            or out.strides[-1] != out.itemsize
            or (M > 1 and out.strides[-2] != N * out.itemsize)  # one row: any stride
        ):
            return None
        if min(M, N, K) == 0:
            out[...] = 0
            return out
        item = a.itemsize
        (op_a, ld_a), (op_b, ld_b) = la, lb
        dtype = _CUDA_R_32F if name == "float32" else _CUDA_R_64F
        compute = _COMPUTE[name, precision]
        self._bind_stream()
        # row-major C = A B is column-major C^T = B^T A^T: B comes first
        args_b = (ctypes.c_void_p(b.data.ptr), dtype, ld_b)
        args_a = (ctypes.c_void_p(a.data.ptr), dtype, ld_a)
        if len(shape) == 2:
            status = self._gemm(
                self.handle, op_b, op_a, N, M, K, ctypes.byref(self._one[name]),
                *args_b, *args_a, ctypes.byref(self._zero[name]),
                ctypes.c_void_p(out.data.ptr), dtype, N, compute, _GEMM_DEFAULT_TENSOR_OP,
            )  # fmt: skip
            self._check(status, "cublasGemmEx")
            return out
        stride_a = _batch_stride(a, item)
        stride_b = _batch_stride(b, item)
        stride_c = out.strides[0] // item if batch > 1 else M * N
        status = self._gemm_batched(
            self.handle, op_b, op_a, N, M, K, ctypes.byref(self._one[name]),
            *args_b, stride_b, *args_a, stride_a, ctypes.byref(self._zero[name]),
            ctypes.c_void_p(out.data.ptr), dtype, N, stride_c, batch, compute,
            _GEMM_DEFAULT_TENSOR_OP,
        )  # fmt: skip
        self._check(status, "cublasGemmStridedBatchedEx")
        return out


def _layout(x):
    """(cuBLAS op, leading dimension) of x's last two axes seen from column-major cuBLAS:
    a row-major matrix is its own transpose in column-major order, so it is used as is
    (op N) and a transposed view with op T; None for any other layout."""
    rows, cols = x.shape[-2], x.shape[-1]
    s_row, s_col = (s // x.itemsize for s in x.strides[-2:])
    if any(s % x.itemsize for s in x.strides):
        return None
    if s_col == 1 and (s_row >= max(cols, 1) or rows == 1):
        return _OP_N, max(s_row, cols, 1)
    if s_row == 1 and (s_col >= max(rows, 1) or cols == 1):
        return _OP_T, max(s_col, rows, 1)
    return None


def _batch_stride(x, item: int) -> int:
    """Elements between the matrices of x's batch; 0 for one matrix shared by the batch."""
    if x.ndim == 2 or x.shape[0] == 1:
        return 0
    return x.strides[0] // item


def load() -> tuple[Cublas | None, str]:
    """cuBLAS for direct calls, or None and why not."""
    try:
        path = _library_path()
        if path is None:
            return None, "no libcublas found"
        return Cublas(ctypes.CDLL(path), path), ""
    except Exception as exc:  # any failure only costs the direct calls, never correctness
        return None, f"{type(exc).__name__}: {exc}"
