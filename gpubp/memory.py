"""Whether a network will fit, known before it is allocated: the bytes a fit needs, the
memory free where it runs, and an error that says both and what to change.

A fit of a network with P parameters (weights and biases, times R for a stack of R)
in a dtype of b bytes holds theta, its gradient and the weights an epoch started from
(3P), the optimiser's state (Adam 2P, SGD 1P), the best weights with early stopping and
the stopped networks' weights in a stack (1P each), and one minibatch's activations and
output errors (2 x batch x the sum of the layer sizes, times R): all of them b bytes an
element. The starting weights are drawn in float64 on the host first (8P bytes there,
whatever the dtype). The training data is not counted: it is in memory already, and the
memory free is measured after it.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from .backend import out_of_memory
from .errors import DeviceMemoryError, InsufficientMemoryError
from .parameters import count_parameters


def fit_bytes(sizes, n_networks, dtype, solver: str, batch: int, early_stopping: bool) -> dict:
    """{"weights": ..., "activations": ..., "draw": ...}: the bytes a fit's network takes
    (with its gradient and optimiser state), one minibatch's activations, and the starting
    weights' float64 draw on the host."""
    R = n_networks or 1
    P = count_parameters(sizes) * R
    copies = 3 + (2 if solver == "adam" else 1) + bool(early_stopping) + (n_networks is not None)
    itemsize = np.dtype(dtype).itemsize
    return {
        "weights": copies * P * itemsize,
        "activations": 2 * batch * sum(sizes) * R * itemsize,
        "draw": 8 * P,
    }


def host_free() -> int | None:
    """The host memory available to a new allocation (Linux's MemAvailable; else the free
    pages), or None where it cannot be known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_free(backend) -> int:
    """The device memory free: the device's, and the memory pool's unused blocks, within
    the pool's limit if one is set (``cupy.get_default_memory_pool().set_limit``)."""
    xp = backend.xp
    free, _ = xp.cuda.runtime.memGetInfo()
    pool = xp.get_default_memory_pool()
    free += pool.free_bytes()
    limit = pool.get_limit()
    if limit:
        free = min(free, limit - pool.used_bytes())
    return int(free)


def check_fits(who: str, sizes, n_networks, dtype, solver, batch, early_stopping, backend):
    """InsufficientMemoryError, before anything is allocated, when the fit of ``who`` (the
    estimator as the user wrote it) cannot fit in the host's or the device's memory."""
    need = fit_bytes(sizes, n_networks, dtype, solver, batch, early_stopping)
    training = need["weights"] + need["activations"]
    on_device = backend.name == "cupy"
    places = [("host", need["draw"] + (0 if on_device else training), host_free())]
    if on_device:
        places.append(("GPU", training, device_free(backend)))
    for place, bytes_needed, free in places:
        if free is None or bytes_needed <= free:
            continue
        draw = f"the starting weights' float64 draw ({size(need['draw'])})"
        parts = [] if on_device and place == "GPU" else [draw]
        if not (on_device and place == "host"):
            parts[:0] = [
                f"the network's {count_parameters(sizes) * (n_networks or 1):,} parameters with "
                f"their gradient and {solver}'s state ({size(need['weights'])})",
                f"one minibatch's activations ({size(need['activations'])})",
            ]
        remedies = ["smaller or fewer hidden layers"]
        if not (on_device and place == "host"):
            remedies.append("a smaller batch_size")
            if solver == "adam":
                remedies.append("solver='sgd' (less optimiser state)")
            if np.dtype(dtype).itemsize > 4:
                remedies.append("dtype='float32'")
        if place == "GPU":
            remedies.append("backend='numpy' (the host's memory)")
        raise InsufficientMemoryError(
            f"{who} needs about {size(bytes_needed)} of {place} memory with its weights in "
            f"{np.dtype(dtype).name}: {_listed(parts, 'and')}; {size(free)} is free. Use "
            f"{_listed(remedies, 'or')}."
        )


def _listed(items, word: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def size(n: float) -> str:
    """Bytes in the largest unit that keeps a number of at least 1 (1024s: KiB, MiB...)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def device_memory_advice(batch_size):
    """The GPU running out of memory inside becomes a DeviceMemoryError that says what to try."""
    try:
        yield
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        raise DeviceMemoryError(
            f"the GPU ran out of memory ({type(exc).__name__}: {exc}). Try a smaller "
            f"batch_size (now {batch_size!r}), smaller hidden layers, predicting in "
            "smaller chunks, or backend='numpy'."
        ) from exc
