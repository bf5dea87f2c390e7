"""``cupy.random``: numbers drawn on the device (NumPy's generators underneath)."""

from __future__ import annotations

import numpy as np


class Generator:
    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        from . import _launch, _wrap

        method = getattr(self._rng, name)

        def draw(*args, **kwargs):
            _launch()
            return _wrap(np.asarray(method(*args, **kwargs)))

        return draw


def default_rng(seed=None):
    return Generator(seed)
