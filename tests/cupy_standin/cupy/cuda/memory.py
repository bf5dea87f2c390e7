"""``cupy.cuda.memory``: the out-of-memory error and the default memory pool.

The stand-in counts the bytes of the live device arrays (``_state.LIVE``): an
allocation fails when it is larger than the whole imitated card (``GPUBP_STANDIN_MEMORY``
bytes; an array of at most 64 KiB always fits), or when it would take the live bytes past
the default pool's limit (``set_limit``, as CuPy's). The pool keeps no free blocks.
"""

from __future__ import annotations

from .. import _state


class OutOfMemoryError(MemoryError):
    def __init__(self, size, total, limit=0):
        self._size, self._total, self._limit = size, total, limit
        super().__init__(
            f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes)."
        )

    def __reduce__(self):
        return type(self), (self._size, self._total, self._limit)


class MemoryPool:
    def __init__(self):
        self.freed = 0

    def used_bytes(self):
        return _state.LIVE[0] if self is MemoryPool.DEFAULT else 0

    def total_bytes(self):
        return self.used_bytes()

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def malloc(self, size):
        raise NotImplementedError("the stand-in's arrays allocate their own memory")

    def free_all_blocks(self, stream=None):
        self.freed += 1

    def set_limit(self, size=None, fraction=None):
        if self is MemoryPool.DEFAULT:
            if fraction is not None:
                size = int(fraction * _state.total_memory())
            _state.LIMIT[0] = int(size or 0)

    def get_limit(self):
        return _state.LIMIT[0] if self is MemoryPool.DEFAULT else 0


MemoryPool.DEFAULT = MemoryPool()
MemoryPool.PINNED = MemoryPool()
