"""``cupy.cuda.runtime``: the devices the stand-in pretends to have."""

from __future__ import annotations

from .. import _state


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return _state.device_count()


def getDevice():
    return _state.CURRENT_DEVICE[0]


def setDevice(device):
    _state.CURRENT_DEVICE[0] = int(device)


def getDeviceProperties(device):
    return {
        "name": b"CuPy stand-in (NumPy on the host)",
        "totalGlobalMem": _state.total_memory(),
        "major": 9,
        "minor": 0,
        "multiProcessorCount": 1,
    }


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    return 13000


def memGetInfo():
    from .memory import MemoryPool

    total = _state.total_memory()
    return total - MemoryPool.DEFAULT.total_bytes(), total


def deviceSynchronize():
    from . import synchronize_all

    _state.COUNTS.syncs += 1
    synchronize_all()
