"""Checks of user data at the public entry points: clear errors naming the argument."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def real_array(name: str, a, backend, dtype):
    """``a`` as a finite real array of the backend in ``dtype``, or InputError.

    Host data is checked before it moves; an array already on the device is
    checked there (one read of a flag: a host sync, so not for training loops).
    """
    xp = backend.xp
    on_device = not isinstance(a, (list, tuple, np.ndarray, np.generic)) and hasattr(a, "shape")
    if not on_device:
        try:
            a = np.asarray(a)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{name} is not a rectangular array of numbers ({exc})") from exc
    kind = getattr(getattr(a, "dtype", None), "kind", "f")
    if kind == "c":
        raise InputError(f"{name} holds complex numbers; gpubp needs real numbers")
    if kind not in "biuf":
        raise InputError(f"{name} must hold numbers, got an array of dtype {a.dtype}")
    try:
        a = backend.to_device(a, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name} cannot be read as numbers ({exc})") from exc
    if not bool(xp.all(xp.isfinite(a))):
        raise InputError(f"{name} contains NaN or infinity")
    return a
