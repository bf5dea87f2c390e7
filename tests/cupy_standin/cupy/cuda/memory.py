"""``cupy.cuda.memory``: the out-of-memory error and a memory pool that holds nothing.

The stand-in does not track device memory: an allocation fails only when it is
larger than the whole imitated card (``GPUBP_STANDIN_MEMORY`` bytes).
"""

from __future__ import annotations


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
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        self.freed += 1

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


MemoryPool.DEFAULT = MemoryPool()
MemoryPool.PINNED = MemoryPool()
