"""The penalties J that ``alpha`` (``weight_decay``) multiplies (ESL 11.5.2); biases are
not penalised.

- "l2", weight decay: J = sum of W^2, dJ/dW = 2 W;
- "weight_elimination": J = sum of u / (1 + u) with u = (W / w0)^2, eq. 11.17, which
  shrinks the small weights harder than the large ones; w0 is the scale between them.

``gpubp.network.MLP.J`` and ``add_penalty_gradient`` use these.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .validation import check_choice, is_real

PENALTIES = ("l2", "weight_elimination")


def penalty_arguments(penalty, w0) -> tuple[str, float]:
    """(penalty, w0) checked: "l2" (w0 unused) or "weight_elimination" with w0 > 0."""
    penalty = check_choice("penalty", penalty, PENALTIES)
    if not is_real(w0) or not 0 < w0 < np.inf:
        raise InputError(f"w0={w0!r} must be a finite number > 0")
    return penalty, float(w0)


def nonzero(c) -> bool:
    """Whether a decay may be nonzero (a device vector is assumed to be)."""
    if is_real(c) or isinstance(c, np.ndarray):
        return bool(np.any(c))
    return c is not None


def eliminated(u):
    """u / (1 + u): weight elimination's penalty of one weight, u = (W / w0)^2."""
    return u / (1 + u)


def weight_elimination_slope(W, q):
    """(1/2) d/dW of u / (1 + u), u = q W^2: W q / (1 + u)^2 (the kernels' formula)."""
    d = 1 + W * W * q
    return W * q / (d * d)


def decays(weight_decay, n_networks):
    """weight_decay as a float, or for a stack optionally one float64 per network."""
    if n_networks is not None and np.ndim(weight_decay) == 1 and not is_real(weight_decay):
        try:
            values = np.asarray(weight_decay, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if (
            values is None
            or values.shape != (n_networks,)
            or not np.isfinite(values).all()
            or (values < 0).any()
        ):
            raise InputError(
                f"weight_decay={weight_decay!r} must be a finite number >= 0 or "
                f"{n_networks} of them, one per network"
            )
        return values
    if not is_real(weight_decay) or not np.isfinite(weight_decay) or weight_decay < 0:
        raise InputError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
    return float(weight_decay)


def penalty(xp, W, kind: str, w0: float, axes=None):
    """J of the weight matrices W (summed over ``axes`` of each: a stack's one per network)."""
    if kind == "l2":
        return sum(xp.sum(Wl * Wl, axis=axes) for Wl in W)
    q = 1.0 / w0**2
    return sum(xp.sum(eliminated(Wl * Wl * q), axis=axes) for Wl in W)


def add_penalty_gradient(fused, W, gradients, c, kind: str, w0: float) -> None:
    """dW_l += (c / 2) dJ/dW_l in place (``fused``: the backend's kernels, or None)."""
    q = 1.0 / w0**2
    for (dW, _), Wl in zip(gradients, W):
        if kind == "l2":
            if fused is None:
                dW += c * Wl
            else:
                fused.AXPY(Wl, c, dW, dW)
        elif fused is None:
            dW += c * weight_elimination_slope(Wl, q)
        else:
            fused.WEIGHT_ELIMINATION(Wl, c, q, dW, dW)
