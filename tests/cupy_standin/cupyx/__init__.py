"""The stand-in's cupyx: only what gpubp uses (pinned host arrays, scipy.sparse CSR
matrices)."""

import numpy as _np


def empty_pinned(shape, dtype=float, order="C"):
    """A host array in "pinned" memory: on the stand-in, an ordinary NumPy array."""
    return _np.empty(shape, dtype=dtype, order=order)
