"""What the stand-in counts: transfers, host waits, kernel lookups and launches."""

from __future__ import annotations

import contextlib
import functools
import os
import traceback
import weakref
from dataclasses import dataclass, field, fields


@dataclass
class Counts:
    """Events since the last reset.

    d2h: device-to-host reads (``.get()``, ``.item()``, ``float()``, ``int()``,
    ``bool()``, ``tolist()``, ``asnumpy``, ``repr``, pickling, and the reads
    CuPy makes to size the result of a boolean mask or ``nonzero``);
    h2d: host-to-device copies (``asarray``/``array`` of host data, ``.set()``,
    host arrays used as indices), their bytes and the largest one; syncs: explicit
    waits (``synchronize()``, event timing); get_function: ``RawModule.get_function`` calls;
    launches: array operations and kernel calls (about one CUDA launch each).
    """

    d2h: int = 0
    h2d: int = 0
    h2d_bytes: int = 0
    largest_h2d: int = 0  # the largest single host-to-device copy, in bytes
    syncs: int = 0
    get_function: int = 0
    launches: int = 0
    where: list = field(default_factory=list)  # the call sites of d2h reads, when tracing


COUNTS = Counts()
TRACE = [False]


def d2h() -> None:
    refuse_in_capture("a device-to-host copy")
    COUNTS.d2h += 1
    if TRACE[0]:
        COUNTS.where.append("".join(traceback.format_stack(limit=8)[:-2]))


@contextlib.contextmanager
def counting(trace: bool = False):
    """Yield a Counts of what happens inside the block (the global counts go on too)."""
    start = {
        f.name: getattr(COUNTS, f.name)
        for f in fields(Counts)
        if f.name not in ("where", "largest_h2d")
    }
    seen = len(COUNTS.where)
    delta = Counts()
    previous, TRACE[0] = TRACE[0], trace
    largest, COUNTS.largest_h2d = COUNTS.largest_h2d, 0
    try:
        yield delta
    finally:
        TRACE[0] = previous
        delta.largest_h2d = COUNTS.largest_h2d
        COUNTS.largest_h2d = max(largest, COUNTS.largest_h2d)
        for name, value in start.items():
            setattr(delta, name, getattr(COUNTS, name) - value)
        delta.where = COUNTS.where[seen:]
        del COUNTS.where[seen:]


def h2d(nbytes: int) -> None:
    """One host-to-device copy of ``nbytes``."""
    refuse_in_capture("a host-to-device copy")
    COUNTS.h2d += 1
    COUNTS.h2d_bytes += int(nbytes)
    COUNTS.largest_h2d = max(COUNTS.largest_h2d, int(nbytes))


# Device memory in use: the bytes of live arrays that own their memory, their peak, and
# the default pool's limit (``MemoryPool.set_limit``; 0: none), which their sum may not pass.
LIVE = [0]
PEAK = [0]
LIMIT = [0]


OWNERS: dict = {}  # the NumPy arrays that hold device memory, weakly, by id


def allocated(owner, nbytes: int) -> None:
    """``owner`` (a NumPy array) holds ``nbytes`` of device memory until it is freed."""
    OWNERS[id(owner)] = weakref.ref(owner)
    LIVE[0] += nbytes
    PEAK[0] = max(PEAK[0], LIVE[0])
    weakref.finalize(owner, _freed, nbytes, id(owner))


def _freed(nbytes: int, key: int) -> None:
    LIVE[0] -= nbytes
    OWNERS.pop(key, None)


def device_arrays() -> list:
    """Every NumPy array that holds device memory now."""
    return [a for a in (ref() for ref in list(OWNERS.values())) if a is not None]


def reset_peak() -> int:
    """Start measuring the peak of device memory from now; returns the bytes in use."""
    PEAK[0] = LIVE[0]
    return LIVE[0]


def device_count() -> int:
    return int(os.environ.get("GPUBP_STANDIN_DEVICES", "1"))


def total_memory() -> int:
    """The imitated card's memory; an allocation larger than what is free raises."""
    return int(os.environ.get("GPUBP_STANDIN_MEMORY", str(2 * 2**30)))


CURRENT_DEVICE = [0]


# A stream capture in progress: the operations recorded for a graph's replays (None: no
# capture), and how deep the operation now running is (only the outermost is recorded).
CAPTURE = [None]
DEPTH = [0]
INVALIDATED = [False]


def operation(function):
    """``function``, an operation on the device: during a capture, its outermost call is
    recorded with its arguments as they are now (arrays by reference, scalars by value)
    and the arrays it made, for ``cuda.Graph.launch`` to run again."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        if CAPTURE[0] is None or DEPTH[0]:
            return function(*args, **kwargs)
        DEPTH[0] += 1
        try:
            result = function(*args, **kwargs)
        finally:
            DEPTH[0] -= 1
        CAPTURE[0].append((function, args, kwargs, result))
        return result

    return run


def refuse_in_capture(what: str) -> None:
    """A transfer between host and device cannot be captured (CUDA refuses it)."""
    if CAPTURE[0] is not None:
        from .cuda.runtime import CUDARuntimeError

        INVALIDATED[0] = True
        raise CUDARuntimeError(
            f"cudaErrorStreamCaptureUnsupported: {what} is not permitted when stream is capturing"
        )
