"""``show_config()``: versions, the backend "auto" picks and why, the GPU, the BLAS, the
CPU kernels and what model files and ONNX export have to work with."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .backend import ENV_VAR, NUMBA_VAR, auto_reason, cpu_kernels_reason, get_backend, probe_cupy


def _blas() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def _installed(name: str) -> str | None:
    """The installed version of a distribution, without importing it; None if absent."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def config_info() -> dict[str, str]:
    """What ``show_config`` prints, as a dict of strings."""
    from . import __version__

    info = {
        "gpubp": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": np.__version__,
        "numpy BLAS": _blas(),
    }
    cupy_backend, why = probe_cupy()
    if cupy_backend is None:
        info["cupy"] = f"unavailable: {why}"
    else:
        cp = cupy_backend.xp
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        info["cupy"] = cp.__version__
        info["CUDA runtime"] = str(cp.cuda.runtime.runtimeGetVersion())
        info["GPU"] = (
            f"{name.decode() if isinstance(name, bytes) else name}, "
            f"{props['totalGlobalMem'] / 2**30:.1f} GiB"
        )
    try:
        info["auto backend"] = f"{get_backend('auto').name} ({auto_reason()})"
    except ValueError as exc:  # a bad GPUBP_BACKEND
        info["auto backend"] = f"error: {exc}"
    info[ENV_VAR] = repr(os.environ.get(ENV_VAR))
    info["CPU kernels"] = cpu_kernels_reason()
    info[NUMBA_VAR] = repr(os.environ.get(NUMBA_VAR))
    info["safetensors"] = _installed("safetensors") or "missing"
    onnx = [f"{n} {v}" for n in ("skl2onnx", "onnxruntime") if (v := _installed(n))]
    missing = "unavailable (pip install skl2onnx onnxruntime: the onnx extra)"
    info["ONNX export"] = ", ".join(onnx) if onnx else missing
    return info


def show_config() -> None:
    """Print versions, the resolved backend and why, the GPU and NumPy's BLAS."""
    info = config_info()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}} : {value}")
