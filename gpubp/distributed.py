"""Data-parallel training: the gradient's sum over cases is an all-reduce.

Launched with ``mpiexec -n R``, each rank holds a shard of the rows. The
communication is MPI through mpi4py (host buffers; CuPy arrays go through the
host) or, with ``distributed="nccl"``, NCCL through CuPy for arrays on the GPU,
with MPI only to set NCCL up. mpi4py is imported only when asked for.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from .errors import InputError

MODES = ("mpi", "nccl", "auto")
TIMEOUT_VARIABLE = "GPUBP_COLLECTIVE_TIMEOUT"  # seconds one all-reduce of a step may wait
DEFAULT_TIMEOUT = 600.0  # longer than any step, or checkpoint write, that a rank waits for


class DistributedError(RuntimeError):
    """Data-parallel training cannot start, or a rank reported a problem."""


class MPIComm:
    """An MPI communicator with what the training loop needs, timing its all-reduces."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._seconds = 0.0
        self.watchdog = None
        if self.size > 1:
            abort_on_uncaught_exceptions()
            self.watchdog = Watchdog(collective_timeout(), self.rank)

    @property
    def seconds(self) -> float:
        """Seconds spent in all-reduces since the last ``reset_timer`` (for benchmarks)."""
        return self._seconds

    def reset_timer(self) -> None:
        self._seconds = 0.0

    def allreduce(self, buf):
        """Sum ``buf`` over the ranks, in place (NumPy; CuPy through the host)."""
        start = time.perf_counter()
        host = buf if isinstance(buf, np.ndarray) else buf.get()
        if self.watchdog is not None:
            self.watchdog.since = time.monotonic()
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        if self.watchdog is not None:
            self.watchdog.since = None
        if host is not buf:
            buf.set(host)
        self._seconds += time.perf_counter() - start
        return buf

    def sum(self, values) -> np.ndarray:
        """The sums over the ranks of a few host numbers."""
        values = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, values, op=self.MPI.SUM)
        return values

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)


class NCCLComm(MPIComm):
    """NCCL for the device all-reduce (one GPU per rank); MPI to exchange NCCL's id.

    Each all-reduce is timed by CUDA events around it on the stream, read only when
    ``seconds`` is asked for, so timing never makes a step wait.
    """

    def __init__(self, comm):
        super().__init__(comm)
        import cupy
        from cupy.cuda import nccl

        if not nccl.available:
            raise DistributedError(
                "distributed='nccl' needs NCCL, which CuPy could not load here: pip install "
                "nvidia-nccl-cu12 (CUDA 12) or nvidia-nccl-cu13 (CUDA 13), or use "
                "distributed='mpi'"
            )
        device = cupy.cuda.Device()
        places = comm.allgather((self.MPI.Get_processor_name(), device.pci_bus_id))
        for place in places:
            shared = [q for q, other in enumerate(places) if other == place]
            if len(shared) > 1:
                raise DistributedError(
                    f"ranks {shared} share the GPU {place[1]} on {place[0]}; NCCL needs one "
                    "GPU per rank: run at most as many ranks on a machine as it has GPUs, or "
                    "use distributed='mpi'"
                )
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        self.nccl = nccl
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self.cupy = cupy
        self._events = []

    @property
    def seconds(self) -> float:
        if self._events:
            self._events[-1][1].synchronize()
            elapsed = self.cupy.cuda.get_elapsed_time
            self._seconds += sum(elapsed(start, end) for start, end in self._events) / 1e3
            self._events.clear()
        return self._seconds

    def reset_timer(self) -> None:
        self._events.clear()
        self._seconds = 0.0

    def allreduce(self, buf):
        if isinstance(buf, np.ndarray):
            return super().allreduce(buf)
        kind = {
            np.dtype(np.float32): self.nccl.NCCL_FLOAT32,
            np.dtype(np.float64): self.nccl.NCCL_FLOAT64,
        }[buf.dtype]
        stream = self.cupy.cuda.get_current_stream()
        start, end = self.cupy.cuda.Event(), self.cupy.cuda.Event()
        start.record(stream)
        self.nccl_comm.allReduce(
            buf.data.ptr, buf.data.ptr, buf.size, kind, self.nccl.NCCL_SUM, stream.ptr
        )
        end.record(stream)
        self._events.append((start, end))
        return buf


def collective_timeout() -> float:
    """GPUBP_COLLECTIVE_TIMEOUT (seconds; default DEFAULT_TIMEOUT)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r} must be more than 0 seconds")
    return seconds


def abort_job(code: int = 1) -> None:
    """End every rank of the MPI job (MPI_Abort), where one of several is running."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return
    if MPI.COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        time.sleep(0.5)  # for the launcher to pass on what this rank said before it ends
        MPI.COMM_WORLD.Abort(code)


_HOOKED = []


def abort_on_uncaught_exceptions() -> None:
    """An exception that ends this rank ends the job (as ``python -m mpi4py`` does): the
    other ranks would otherwise wait in their next all-reduce for ever."""
    if _HOOKED:
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        abort_job(1)

    sys.excepthook = hook
    _HOOKED.append(hook)


class Watchdog:
    """Ends the job when this rank has waited more than ``seconds`` in one all-reduce of a
    training step (``since``: when the wait began, None outside one): a rank that stopped
    without a word (suspended, cut off, hung) would otherwise keep the others waiting."""

    def __init__(self, seconds: float, rank: int):
        self.seconds, self.rank, self.since = seconds, rank, None
        thread = threading.Thread(target=self._watch, name="gpubp-watchdog", daemon=True)
        thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.seconds / 4))
            since = self.since
            if since is not None and time.monotonic() - since > self.seconds:
                print(
                    f"gpubp: rank {self.rank} waited more than {self.seconds:g} s for the other "
                    f"ranks in an all-reduce ({TIMEOUT_VARIABLE}); one of them has stopped: "
                    "ending the job",
                    file=sys.stderr,
                    flush=True,
                )
                abort_job(1)
                os._exit(1)


_COMMUNICATORS: dict = {}  # one per (mode, backend) and process: NCCL's is costly to build


def communicator(mode, backend_name: str):
    """The communicator for ``distributed=mode``, or None for one process.

    "auto" is MPI when mpi4py imports and more than one rank runs, else None;
    "mpi" and "nccl" insist, with an error that says what to install.
    """
    if mode is None:
        return None
    if mode not in MODES:
        raise InputError(f"distributed={mode!r} is not one of: None, {', '.join(MODES)}")
    try:
        from mpi4py import MPI
    except Exception as exc:
        if mode == "auto":
            return None
        raise DistributedError(
            f"distributed={mode!r} needs mpi4py and an MPI runtime ({type(exc).__name__}: "
            f"{exc}); pip install mpi4py mpich (the mpi extra), then launch with "
            "mpiexec -n R python ..."
        ) from exc
    world = MPI.COMM_WORLD
    if mode == "auto" and world.Get_size() == 1:
        return None
    if mode == "nccl" and backend_name != "cupy":
        raise DistributedError("distributed='nccl' needs backend='cupy'")
    key = (mode, backend_name)
    if key not in _COMMUNICATORS:
        if backend_name == "cupy":  # one GPU per rank: rank modulo the visible devices
            import cupy

            cupy.cuda.Device(world.Get_rank() % cupy.cuda.runtime.getDeviceCount()).use()
        _COMMUNICATORS[key] = NCCLComm(world) if mode == "nccl" else MPIComm(world)
    return _COMMUNICATORS[key]


def communicators() -> list:
    """The communicators this process has made (each kept for later fits)."""
    return list(_COMMUNICATORS.values())


def agree(comm, check):
    """Run ``check()`` on every rank; if it fails anywhere, raise on every rank.

    Returns what ``check()`` returned on this rank. A rank that raised would
    otherwise leave the others waiting in the next collective forever. With no
    communicator, just ``check()``.
    """
    if comm is None:
        return check()
    try:
        result, problem = check(), None
    except Exception as exc:  # reported to every rank below
        result, problem = None, f"{type(exc).__name__}: {exc}"
    problems = [(r, p) for r, p in enumerate(comm.allgather(problem)) if p is not None]
    if problems:
        text = "; ".join(f"rank {r}: {p}" for r, p in problems)
        raise DistributedError(f"data-parallel training cannot go on: {text}")
    return result


def shard(n: int, rank: int, size: int) -> slice:
    """The contiguous block of ``n`` rows that ``rank`` of ``size`` holds."""
    return slice(rank * n // size, (rank + 1) * n // size)
