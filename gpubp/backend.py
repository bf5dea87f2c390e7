"""The backend as a value: an array module plus the two transfer points.

Only this module imports CuPy, and only when a backend is first resolved, so
``import gpubp`` never touches CUDA. Likewise numba: where it imports, the NumPy
backend hands out ``gpubp.cpu_kernels`` (fused CPU loops) unless ``GPUBP_NUMBA=0``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BackendError

BACKENDS = ("auto", "numpy", "cupy")
_DLPACK_CUDA = 2  # DLDeviceType kDLCUDA
UPLOAD_BYTES = 2**26  # a larger host array goes to the GPU in blocks of about this size
ENV_VAR = "GPUBP_BACKEND"
NUMBA_VAR = "GPUBP_NUMBA"


def to_numpy(a: Any) -> np.ndarray:
    """Return ``a`` as a NumPy array, from NumPy, CuPy or any DLPack producer.

    Arrays on a CUDA device (a PyTorch or JAX GPU tensor) are copied to the host
    through CuPy, which must then work here (else BackendError).

    Parameters
    ----------
    a : array-like
        A NumPy or CuPy array, a DLPack producer, or anything ``numpy.asarray`` takes.

    Returns
    -------
    numpy.ndarray
        ``a`` itself when it is one already, else a host copy.
    """
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    device = getattr(a, "__dlpack_device__", None)
    if device is not None and not isinstance(a, np.generic):
        if device()[0] == _DLPACK_CUDA:
            cupy_backend, why = probe_cupy()
            if cupy_backend is None:
                raise BackendError(f"an array on a CUDA device needs CuPy to reach the host: {why}")
            return cupy_backend.xp.from_dlpack(a).get()
        try:
            return np.from_dlpack(a)
        except (BufferError, RuntimeError, TypeError, ValueError):
            pass
    return np.asarray(a)


def is_sparse(a: Any) -> bool:
    """Whether ``a`` is a scipy.sparse or cupyx.scipy.sparse matrix."""
    return hasattr(a, "nnz") and hasattr(a, "tocsr")


@dataclass(frozen=True, eq=False)
class Backend:
    """An array module ``xp`` with its to-device and to-host transfers.

    Parameters
    ----------
    name : {'numpy', 'cupy'}
        The backend's name.
    xp : module
        The array module, ``numpy`` or ``cupy``.
    to_device : callable
        ``to_device(array, dtype=None)``: the array on the backend's device, in ``dtype``.
    to_host : callable, default=to_numpy
        ``to_host(array)``: a NumPy array.
    reason : str, default=''
        Why ``"auto"`` resolved to this backend.
    fused : module or None, default=None
        The fused kernels: ``gpubp.kernels`` on CuPy, ``gpubp.cpu_kernels`` on NumPy with
        numba; None runs the reference formulas.
    """

    name: str
    xp: Any
    to_device: Callable[..., Any]  # (array, dtype=None) -> array of xp on its device
    to_host: Callable[[Any], np.ndarray] = to_numpy
    reason: str = ""
    fused: Any = None

    def resident(self, a: Any) -> Any:
        """``a`` as a CuPy array, without a copy, if it already lives on the GPU; else None.

        That is a CuPy array or a DLPack producer on a CUDA device (a PyTorch or
        JAX GPU tensor). Host data, and every array on the NumPy backend, gives None.
        """
        if self.name != "cupy":
            return None
        if isinstance(a, self.xp.ndarray):
            return a
        device = getattr(a, "__dlpack_device__", None)
        if device is not None and device()[0] == _DLPACK_CUDA:
            return self.xp.from_dlpack(a)
        return None

    def take_rows(self, a: Any, idx: Any) -> Any:
        """The rows ``idx`` (device integers) of a dense or sparse matrix ``a``."""
        return a[idx] if is_sparse(a) else self.xp.take(a, idx, axis=0)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


def _numpy_to_device(a: Any, dtype: Any = None) -> np.ndarray:
    if is_sparse(a):  # stays a scipy.sparse CSR matrix
        return a.tocsr().astype(dtype or a.dtype, copy=False)
    return np.asarray(to_numpy(a), dtype=dtype)


def _cupy_to_device(cupy: Any) -> Callable[..., Any]:
    def to_device(a: Any, dtype: Any = None) -> Any:
        if is_sparse(a):
            import cupyx.scipy.sparse

            if type(a).__module__.startswith("cupyx"):
                return a.tocsr().astype(dtype or a.dtype)
            return cupyx.scipy.sparse.csr_matrix(a.tocsr().astype(dtype or a.dtype, copy=False))
        if isinstance(a, np.ndarray) and a.ndim and a.nbytes > UPLOAD_BYTES:
            return _in_blocks(cupy, a, np.dtype(dtype or a.dtype))
        return cupy.asarray(a, dtype=dtype)

    return to_device


def _in_blocks(cupy: Any, a: np.ndarray, dtype: np.dtype) -> Any:
    """``a`` on the GPU, copied UPLOAD_BYTES at a time: CuPy's ``asarray`` stages a host
    array in a pinned buffer as large as the array (CuPy issues 6360, 7532)."""
    out = cupy.empty(a.shape, dtype=dtype)
    step = max(1, UPLOAD_BYTES // max(1, a[:1].nbytes))
    for start in range(0, a.shape[0], step):
        out[start : start + step].set(np.ascontiguousarray(a[start : start + step], dtype=dtype))
    return out


NUMPY = Backend("numpy", np, _numpy_to_device)  # the reference formulas, without numba


@functools.cache
def probe_numba() -> tuple[Backend | None, str]:
    """The NumPy backend with numba's fused kernels, or None and why not: import numba
    and run one kernel once (cached; compiled on a machine's first run, then read from
    numba's cache)."""
    try:
        from . import cpu_kernels

        theta = np.zeros(1, dtype=np.float32)
        cpu_kernels.SGD(theta, np.float32(1), theta, theta)
    except Exception as exc:  # ImportError, or a broken numba/llvmlite raising anything
        return None, f"numba is not installed or does not work ({type(exc).__name__}: {exc})"
    import numba

    reason = f"NumPy with gpubp's numba kernels (numba {numba.__version__})"
    return Backend("numpy", np, _numpy_to_device, reason=reason, fused=cpu_kernels), ""


def switched_on(var: str) -> bool:
    """Whether the on/off environment variable ``var`` is on: unset, or not one of 0,
    false, no, off."""
    return os.environ.get(var, "1").strip().lower() not in ("0", "false", "no", "off")


def numba_wanted() -> bool:
    """Whether the NumPy backend may use numba's kernels (``GPUBP_NUMBA`` is not 0)."""
    return switched_on(NUMBA_VAR)


def numpy_backend() -> Backend:
    """The NumPy backend: with numba's fused kernels where numba works and
    ``GPUBP_NUMBA`` is not 0, else ``NUMPY``, the reference formulas."""
    if not numba_wanted():
        return NUMPY
    fused, _ = probe_numba()
    return NUMPY if fused is None else fused


def cpu_kernels_reason() -> str:
    """Which CPU kernels the NumPy backend runs, and why, in words."""
    if not numba_wanted():
        return f"the reference NumPy formulas ({NUMBA_VAR}={os.environ[NUMBA_VAR]})"
    fused, why = probe_numba()
    if fused is None:
        return f"the reference NumPy formulas: {why} (pip install numba: the numba extra)"
    return fused.reason


@functools.cache
def probe_cupy() -> tuple[Backend | None, str]:
    """The CuPy backend, or None and why not: import and allocate once (cached)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install raising anything
        return None, f"CuPy is not installed or does not import ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"the CUDA driver or runtime failed ({type(exc).__name__}: {exc})"
    if count == 0:
        return None, "CuPy imports but no CUDA device is visible"
    try:
        cupy.zeros(1, dtype=cupy.float32).sum().item()
    except Exception as exc:
        return None, f"a tiny allocation on the GPU failed ({type(exc).__name__}: {exc})"
    try:
        from . import kernels
    except Exception as exc:
        return None, f"gpubp's CUDA kernels failed to load ({type(exc).__name__}: {exc})"
    reason = f"CuPy {cupy.__version__} with {count} device(s)"
    return Backend("cupy", cupy, _cupy_to_device(cupy), reason=reason, fused=kernels), ""


def _requested(name: str) -> str:
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        if env not in BACKENDS:
            raise ValueError(f"{ENV_VAR}={env!r} is not one of {', '.join(BACKENDS)}")
        return env
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is not one of {', '.join(BACKENDS)}")
    return name


def get_backend(name: str | Backend = "auto") -> Backend:
    """Resolve ``"auto" | "numpy" | "cupy"`` (or pass a Backend through).

    "auto" honours the ``GPUBP_BACKEND`` environment variable, then picks CuPy
    when it imports and a device answers, NumPy otherwise. The probe runs once per
    process; importing gpubp never touches CUDA.

    Parameters
    ----------
    name : {'auto', 'numpy', 'cupy'} or Backend, default='auto'
        The backend asked for; 'cupy' where CuPy cannot work raises ``BackendError``,
        saying why.

    Returns
    -------
    Backend
        The resolved backend.
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name or a Backend, not {type(name).__name__}")
    requested = _requested(name.lower())
    if requested == "numpy":
        return numpy_backend()
    cupy_backend, why = probe_cupy()
    if cupy_backend is not None:
        return cupy_backend
    if requested == "cupy":
        raise BackendError(
            f"backend 'cupy' is unavailable: {why}. Install CuPy for your CUDA version "
            "(pip install cupy-cuda12x or cupy-cuda13x: the cuda12 or cuda13 extra), check "
            "that `nvidia-smi` sees a GPU, or use backend='numpy'."
        )
    return numpy_backend()


def auto_reason() -> str:
    """Why "auto" resolves the way it does, in words."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env and env.lower() != "auto":
        return f"{ENV_VAR}={env}"
    cupy_backend, why = probe_cupy()
    if cupy_backend is not None:
        return cupy_backend.reason
    return f"falling back to NumPy: {why}"


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device allocation failure (CuPy's pool, cuBLAS, the CUDA
    runtime or driver)."""
    text = str(exc)
    return type(exc).__name__ == "OutOfMemoryError" or any(
        code in text
        for code in (
            "CUBLAS_STATUS_ALLOC_FAILED",
            "cudaErrorMemoryAllocation",
            "CUDA_ERROR_OUT_OF_MEMORY",
        )
    )
