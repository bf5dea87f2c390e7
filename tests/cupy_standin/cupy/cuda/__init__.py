"""``cupy.cuda``: devices, streams, events, the memory pool and NCCL, imitated."""

from __future__ import annotations

import contextlib
import time
import weakref

from .. import _state
from . import memory, nccl, runtime
from .memory import MemoryPool


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
        synchronize_all()

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
    """A stream. The null stream runs its work at once; another stream (``non_blocking``)
    defers the copies put on it (``ndarray.set(..., stream=s)``) until something waits for
    them: an event recorded after them (synchronised, or waited on by another stream), the
    stream's or the device's ``synchronize``. So a copy read before its event is waited
    for finds the buffer as it was, and a host buffer refilled before its copy ran is
    copied with what it holds then, as on a GPU."""

    ptr = 0
    _deferred = weakref.WeakSet()  # the streams with work not yet run (not kept alive)

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.null = null
        self._queue = []  # (sequence number, work) not yet run

    def enqueue(self, work) -> None:
        """``work()`` runs when this stream reaches it (at once on the null stream)."""
        if self.null:
            work()
            return
        Event._recorded += 1
        self._queue.append((Event._recorded, work))
        Stream._deferred.add(self)

    def run_upto(self, seq) -> None:
        while self._queue and self._queue[0][0] <= seq:
            _, work = self._queue.pop(0)
            work()

    def synchronize(self):
        _state.COUNTS.syncs += 1
        self.run_upto(float("inf"))

    def record(self, event=None):
        """An event at this point of the stream."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        if event._seq is None:
            raise runtime.CUDARuntimeError("cudaErrorInvalidResourceHandle: event not recorded")
        if self.null and event._stream is not None:  # the null stream runs at once: so must
            event._stream.run_upto(event._seq)  # what it waits for
        elif event._stream is not None and event._stream is not self:
            # a deferred stream after another's event: that work runs first
            target = event._stream
            self.enqueue(lambda: target.run_upto(event._seq))

    def begin_capture(self, mode=None):
        """Operations from now on are recorded for a ``Graph``, and the device memory they
        change is put back at ``end_capture``: a capture records, it does not run."""
        if _state.CAPTURE[0] is not None:
            raise runtime.CUDARuntimeError("cudaErrorIllegalState: already capturing")
        self._before = [(a, a.copy()) for a in _state.device_arrays()]
        _state.CAPTURE[0], _state.INVALIDATED[0] = [], False

    def end_capture(self):
        ops, _state.CAPTURE[0] = _state.CAPTURE[0], None
        for a, saved in self._before:
            a[...] = saved
        self._before = None
        if _state.INVALIDATED[0]:
            _state.INVALIDATED[0] = False
            raise runtime.CUDARuntimeError("cudaErrorStreamCaptureInvalidated: capture failed")
        return Graph(ops)

    def is_capturing(self):
        return _state.CAPTURE[0] is not None

    def __enter__(self):
        _CURRENT.append(self)
        return self

    def __exit__(self, *exc):
        _CURRENT.pop()


class Graph:
    """A captured sequence of operations. ``launch`` runs them again, each on its arrays
    as they are then and its scalars as they were at the capture, writing into the arrays
    the capture made: what a replayed CUDA graph does (one launch)."""

    def __init__(self, ops):
        self._ops = ops

    def launch(self, stream=None):
        launches = _state.COUNTS.launches
        for function, args, kwargs, made in self._ops:
            _into(made, function(*args, **kwargs))
        _state.COUNTS.launches = launches + 1


def _into(made, new) -> None:
    """The values of ``new`` into the arrays ``made`` at the capture."""
    from .. import ndarray

    if isinstance(made, ndarray) and isinstance(new, ndarray) and new is not made:
        made._a[...] = new._a
    elif isinstance(made, tuple) and isinstance(new, tuple):
        for m, n in zip(made, new):
            _into(m, n)


@contextlib.contextmanager
def using_allocator(allocator=None):
    """The stand-in allocates from its one pool whatever the allocator."""
    yield


def run_current() -> None:
    """The current stream's deferred work, run (before an operation on that stream)."""
    stream = _CURRENT[-1]
    if stream._queue:
        stream.run_upto(float("inf"))


def synchronize_all() -> None:
    """Every stream's deferred work, run (a device synchronisation)."""
    for stream in list(Stream._deferred):
        stream.run_upto(float("inf"))
    Stream._deferred.clear()


Stream.null = Stream(null=True)
_CURRENT = [Stream.null]  # the stream made current by ``with stream:``


class Event:
    """Recorded at a point of a stream; its time can be read once it has completed, which
    waiting for it or for any later event of the stream makes it. Synchronising it runs
    its stream's deferred work up to it."""

    _recorded = 0  # events recorded and work enqueued so far, in order
    _completed_upto = 0  # the null stream has run up to this event

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._time = None
        self._seq = None
        self._stream = None

    def record(self, stream=None):
        Event._recorded += 1
        self._time, self._seq = time.perf_counter(), Event._recorded
        self._stream = None if stream is None or stream.null else stream

    def synchronize(self):
        _state.COUNTS.syncs += 1
        if self._seq is None:
            return
        if self._stream is not None:
            self._stream.run_upto(self._seq)
        else:
            Event._completed_upto = max(Event._completed_upto, self._seq)

    @property
    def done(self):
        if self._seq is None:
            return False
        if self._stream is not None:
            return not any(seq <= self._seq for seq, _ in self._stream._queue)
        return self._seq <= Event._completed_upto


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two events; the later must have completed (synchronize it)."""
    if not end_event.done or start_event._time is None:
        raise runtime.CUDARuntimeError("cudaErrorNotReady: device not ready")
    return (end_event._time - start_event._time) * 1e3


def get_current_stream(device_id=None):
    return _CURRENT[-1]


__all__ = [
    "Device",
    "Event",
    "Graph",
    "MemoryPool",
    "Stream",
    "get_current_stream",
    "get_elapsed_time",
    "memory",
    "nccl",
    "runtime",
    "using_allocator",
]
