"""What the stand-in counts: transfers, host waits, kernel lookups and launches."""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import dataclass, field, fields


@dataclass
class Counts:
    """Events since the last reset.

    d2h: device-to-host reads (``.get()``, ``.item()``, ``float()``, ``int()``,
    ``bool()``, ``tolist()``, ``asnumpy``, ``repr``, pickling, and the reads
    CuPy makes to size the result of a boolean mask or ``nonzero``);
    h2d: host-to-device copies (``asarray``/``array`` of host data, ``.set()``,
    host arrays used as indices); syncs: explicit waits (``synchronize()``,
    event timing); get_function: ``RawModule.get_function`` calls;
    launches: array operations and kernel calls (about one CUDA launch each).
    """

    d2h: int = 0
    h2d: int = 0
    syncs: int = 0
    get_function: int = 0
    launches: int = 0
    where: list = field(default_factory=list)  # the call sites of d2h reads, when tracing


COUNTS = Counts()
TRACE = [False]


def d2h() -> None:
    COUNTS.d2h += 1
    if TRACE[0]:
        COUNTS.where.append("".join(traceback.format_stack(limit=8)[:-2]))


@contextlib.contextmanager
def counting(trace: bool = False):
    """Yield a Counts of what happens inside the block (the global counts go on too)."""
    start = {f.name: getattr(COUNTS, f.name) for f in fields(Counts) if f.name != "where"}
    seen = len(COUNTS.where)
    delta = Counts()
    previous, TRACE[0] = TRACE[0], trace
    try:
        yield delta
    finally:
        TRACE[0] = previous
        for name, value in start.items():
            setattr(delta, name, getattr(COUNTS, name) - value)
        delta.where = COUNTS.where[seen:]
        del COUNTS.where[seen:]


def device_count() -> int:
    return int(os.environ.get("GPUBP_STANDIN_DEVICES", "1"))


def total_memory() -> int:
    """The imitated card's memory; an allocation larger than what is free raises."""
    return int(os.environ.get("GPUBP_STANDIN_MEMORY", str(2 * 2**30)))


CURRENT_DEVICE = [0]
