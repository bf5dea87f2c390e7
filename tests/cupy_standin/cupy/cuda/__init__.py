"""``cupy.cuda``: devices, streams, events, the memory pool and NCCL, imitated."""

from __future__ import annotations

import time

from .. import _state
from . import memory, nccl, runtime


class Device:
    def __init__(self, device=None):
        self.id = _state.CURRENT_DEVICE[0] if device is None else int(device)
        if device is not None and not 0 <= self.id < _state.device_count():
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def use(self):
        _state.CURRENT_DEVICE[0] = self.id

    def __enter__(self):
        self._previous = _state.CURRENT_DEVICE[0]
        self.use()
        return self

    def __exit__(self, *exc):
        _state.CURRENT_DEVICE[0] = self._previous

    def synchronize(self):
        _state.COUNTS.syncs += 1

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    @property
    def pci_bus_id(self):
        return f"0000:{self.id + 1:02X}:00.0"

    @property
    def compute_capability(self):
        return "90"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (stand-in)>"


class Stream:
    ptr = 0

    def __init__(self, null=False, non_blocking=False, ptds=False):
        pass

    def synchronize(self):
        _state.COUNTS.syncs += 1

    def record(self, event=None):
        """An event at this point of the stream (the stand-in runs everything at once)."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        if event._seq is None:
            raise runtime.CUDARuntimeError("cudaErrorInvalidResourceHandle: event not recorded")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


Stream.null = Stream(null=True)


class Event:
    """Recorded at a point of the (one) stream; its time can be read once it has completed,
    which waiting for it or for any later event of the stream makes it."""

    _recorded = 0  # events recorded so far, in stream order
    _completed_upto = 0  # the stream has run up to this event

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._time = None
        self._seq = None

    def record(self, stream=None):
        Event._recorded += 1
        self._time, self._seq = time.perf_counter(), Event._recorded

    def synchronize(self):
        _state.COUNTS.syncs += 1
        if self._seq is not None:
            Event._completed_upto = max(Event._completed_upto, self._seq)

    @property
    def done(self):
        return self._seq is not None and self._seq <= Event._completed_upto


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two events; the later must have completed (synchronize it)."""
    if not end_event.done or start_event._time is None:
        raise runtime.CUDARuntimeError("cudaErrorNotReady: device not ready")
    return (end_event._time - start_event._time) * 1e3


def get_current_stream(device_id=None):
    return Stream.null


__all__ = [
    "Device",
    "Event",
    "Stream",
    "get_current_stream",
    "get_elapsed_time",
    "memory",
    "nccl",
    "runtime",
]
