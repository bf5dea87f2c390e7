"""Matrix products on the CuPy device: cuBLAS called directly (``gpubp.cublas``), which a
CUDA graph can capture, where it can be; CuPy's otherwise. ``gpubp.kernels`` hands
them out with the kernels."""

from __future__ import annotations

import cupy as cp

DIRECT = {}  # device id -> (gpubp.cublas.Cublas or None, why not); the tests set a fake


def direct_cublas():
    """This device's cuBLAS for direct calls (capturable in a CUDA graph), or None and why."""
    device = cp.cuda.Device().id
    if device not in DIRECT:
        from . import cublas

        DIRECT[device] = cublas.load()
    return DIRECT[device]


def matmul(a, b, out=None, precision="float32"):
    """``a @ b`` through cuBLAS called directly where it can be (float32/float64, at most
    one batch axis), else ``cupy.matmul``, which cannot be captured in a CUDA graph and
    ignores ``precision="tf32"``."""
    direct, _ = direct_cublas()
    if direct is not None:
        result = direct.matmul(a, b, out, precision)
        if result is not None:
            return result
    return cp.matmul(a, b, out=out)


_ONES = {}  # (device id, N, dtype) -> a row of N ones; kept: captured graphs read it by address


def column_sums(D, out=None):
    """db = the sum of D over its cases (axis -2), into ``out`` when given: the product
    1^T D through cuBLAS (capturable, and it reads D at memory speed, where a sum over
    axis -2 reads it a column at a time); ``cupy.sum`` where cuBLAS cannot be called."""
    direct, _ = direct_cublas()
    if direct is not None and D.ndim in (2, 3):
        key = (cp.cuda.Device().id, D.shape[-2], D.dtype.name)
        if key not in _ONES:
            _ONES[key] = cp.ones((1, D.shape[-2]), dtype=D.dtype)
        lead = D.shape[:-2]
        row = None if out is None else out[..., None, :]  # (..., 1, K) views of db
        result = direct.matmul(_ONES[key], D, row)
        if result is not None:
            return out if out is not None else result.reshape(*lead, D.shape[-1])
    return cp.sum(D, axis=-2, out=out)
