"""Host arrays to the CuPy device a chunk at a time, never the whole array at once.

CuPy copies a pageable host array by staging it in a pinned buffer as large as
the array (CuPy issues 6360 and 7532), which doubles host memory for large X;
the backend's ``to_device`` therefore copies large arrays a block at a time, and
``ChunkFeed`` streams chunks for training. One pinned buffer, allocated once, is
copied on a stream of its own into a staging buffer on the device while the
previous chunk trains; the compute stream then moves the chunk into a fixed
buffer that the steps (and their CUDA graph) read. Events guard each buffer: the
host refills the pinned buffer only after its copy has finished, and the copy
stream refills the staging buffer only after the compute stream has moved its
last chunk out.
"""

from __future__ import annotations

import numpy as np

from ..memory import device_free

DEVICE_SHARE = 0.5  # "auto" keeps X on the device when it takes at most this share of the free


def fits_on_device(backend, source, dtype) -> bool:
    """Whether all of ``source`` in ``dtype`` takes at most DEVICE_SHARE of the device
    memory still free (in the memory pool too, within its limit if one is set)."""
    free = device_free(backend)
    need = source.n * int(np.prod(source.shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    return need <= DEVICE_SHARE * free


class _Staged:
    """One array's pinned host buffer and its two device buffers (staging and compute),
    flat, sized for the largest chunk so far."""

    def __init__(self, xp, size: int, dtype):
        import cupyx

        self.pinned = cupyx.empty_pinned((size,), dtype=dtype)
        self.staging = xp.empty(size, dtype=dtype)
        self.compute = xp.empty(size, dtype=dtype)

    @property
    def size(self) -> int:
        return self.pinned.size


class ChunkFeed:
    """Double-buffered host-to-device copies of training chunks (see the module's text).

    ``send(parts)`` starts copying a chunk (a tuple of host arrays, None allowed);
    ``receive()`` gives that chunk on the device, (X, Y, w, w on the host), for the compute
    stream.
    """

    def __init__(self, backend):
        self.xp = backend.xp
        self.stream = self.xp.cuda.Stream(non_blocking=True)
        self.buffers: list[_Staged | None] = []
        self.shapes: list = []
        self.filled = None  # the copy of the chunk in the staging buffers has finished
        self.drained = None  # the compute stream has moved the staging buffers' chunk out

    def send(self, parts) -> None:
        if self.filled is not None:
            self.filled.synchronize()  # the pinned buffers' last copy is done: refill them
        self.shapes = [None if a is None else a.shape for a in parts]
        self.w_host = parts[2]  # the batch sums of the weights are taken on the host
        with self.stream:
            if self.drained is not None:
                self.stream.wait_event(self.drained)
            for i, a in enumerate(parts):
                if a is None:
                    continue
                buffer = self._buffer(i, a)
                pinned = buffer.pinned[: a.size]
                pinned[...] = a.reshape(-1)
                buffer.staging[: a.size].set(pinned, stream=self.stream)
            self.filled = self.stream.record()

    def receive(self) -> tuple:
        compute = self.xp.cuda.get_current_stream()
        compute.wait_event(self.filled)
        parts = []
        for i, shape in enumerate(self.shapes):
            if shape is None:
                parts.append(None)
                continue
            buffer = self.buffers[i]
            size = int(np.prod(shape, dtype=np.int64))
            buffer.compute[:size] = buffer.staging[:size]
            parts.append(self.xp.reshape(buffer.compute[:size], shape))
        self.drained = compute.record()
        return (*parts, self.w_host)

    def _buffer(self, i: int, a) -> _Staged:
        while len(self.buffers) <= i:
            self.buffers.append(None)
        buffer = self.buffers[i]
        if buffer is None or buffer.size < a.size or buffer.pinned.dtype != a.dtype:
            if buffer is not None:
                self.stream.synchronize()  # its last copy must finish before it goes
            buffer = self.buffers[i] = _Staged(self.xp, a.size, a.dtype)
        return buffer
