"""Checks of user data at the public entry points: clear errors naming the argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError
from .functions import ACTIVATIONS, CANONICAL_LOSS, LOSSES, OUTPUTS, VALID_OUTPUTS

DTYPES = ("float32", "float64")


def check_choice(argument: str, value: Any, valid: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``valid``, else an InputError listing them."""
    if not isinstance(value, str) or value not in valid:
        raise InputError(f"{argument}={value!r} is not one of: {', '.join(valid)}")
    return value


def is_real(x) -> bool:
    """Whether x is a real Python or NumPy number (not a bool)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def float_dtype(dtype) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    return np.dtype(check_choice("dtype", name, DTYPES))


def network_arguments(layer_sizes, activation, output, loss):
    """(layer sizes, activation, output, loss) of an ``MLP`` checked, the loss the
    output's canonical one when None."""
    sizes = tuple(layer_sizes) if hasattr(layer_sizes, "__iter__") else ()
    if len(sizes) < 2 or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in sizes
    ):
        raise InputError(
            f"layer_sizes={layer_sizes!r} must be at least two positive integers "
            "[p, M_1, ..., M_L, K]"
        )
    activation = check_choice("activation", activation, tuple(ACTIVATIONS))
    output = check_choice("output", output, tuple(OUTPUTS))
    loss = CANONICAL_LOSS[output] if loss is None else loss
    loss = check_choice("loss", loss, tuple(LOSSES))
    if output not in VALID_OUTPUTS[loss]:
        raise InputError(
            f"loss={loss!r} cannot be paired with output={output!r}; it needs output in "
            f"{VALID_OUTPUTS[loss]} (squared_error works with every output)"
        )
    if output == "softmax" and sizes[-1] == 1:
        raise InputError(
            "output='softmax' needs K >= 2 outputs: with K = 1 it is 1 whatever T is, "
            "so its gradient is zero; for one output use output='sigmoid'"
        )
    return tuple(int(n) for n in sizes), activation, output, loss


def check_stack_size(n_networks) -> None:
    """n_networks is None (one network) or an integer >= 1."""
    if n_networks is not None and not (
        isinstance(n_networks, (int, np.integer))
        and not isinstance(n_networks, bool)
        and n_networks >= 1
    ):
        raise InputError(f"n_networks={n_networks!r} must be None or an integer >= 1")


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


def network_inputs(X, p: int, backend, dtype):
    """X checked: a finite (N, p) array with N >= 1, on the backend in ``dtype``."""
    X = real_array("X", X, backend, dtype)
    if X.ndim != 2 or X.shape[1] != p or X.shape[0] == 0:
        raise InputError(f"X must have shape (N, {p}) with N >= 1, got {tuple(X.shape)}")
    return X


def network_targets(Y, N: int, K: int, onehot: bool, backend, dtype):
    """Y as an (N, K) array on the backend; with ``onehot`` (a softmax) and K > 1, 1-D
    integer class labels are one-hot encoded."""
    xp = backend.xp
    ndim = Y.ndim if hasattr(Y, "ndim") else np.ndim(Y)
    if ndim == 1 and onehot and K > 1:
        labels = backend.to_host(Y)
        if labels.dtype.kind not in "iu" or labels.shape != (N,):
            raise InputError(
                f"a 1-D Y must be ({N},) integer class labels, got shape {labels.shape} "
                f"of dtype {labels.dtype}"
            )
        if N and (labels.min() < 0 or labels.max() >= K):
            raise InputError(
                f"class labels must lie in [0, {K}), got [{labels.min()}, {labels.max()}]"
            )
        eye = backend.to_device(np.eye(K, dtype=dtype))
        return xp.take(eye, backend.to_device(labels), axis=0)
    Y = real_array("Y", Y, backend, getattr(xp, np.dtype(dtype).name))
    if Y.ndim == 1 and K == 1:
        Y = xp.reshape(Y, (-1, 1))
    if tuple(Y.shape) != (N, K):
        raise InputError(f"Y must have shape ({N}, {K}), got {tuple(Y.shape)}")
    return Y
