"""The starting weights (ESL 11.5.1): near zero, so the network starts nearly linear.

Drawn in float64 on the host from one numpy Generator per network: "glorot" (uniform
on +-sqrt(6 / (fan_in + fan_out)), 2 in place of 6 for the sigmoid, as scikit-learn
draws them) or "esl" (uniform on [-0.7, 0.7], the book's, for standardised inputs).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

INITS = ("glorot", "esl")
ESL_BOUND = 0.7  # ESL 11.5.1: uniform starting weights on [-0.7, 0.7] for standardised inputs


def seeds(seed, n_networks):
    """One numpy Generator per network (a single one, shared, when ``seed`` is one value)."""

    def generator(s):
        if not (
            s is None
            or isinstance(s, np.random.Generator)
            or (isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0)
        ):
            raise InputError(f"seed={s!r} must be None, an integer >= 0 or a numpy Generator")
        return s if isinstance(s, np.random.Generator) else np.random.default_rng(s)

    if n_networks is not None and isinstance(seed, (list, tuple, np.ndarray)):
        if len(seed) != n_networks:
            raise InputError(f"seed has {len(seed)} entries for {n_networks} networks")
        return [generator(s) for s in seed]
    return [generator(seed)] * (n_networks or 1)


def init_weights(layer_sizes, activation, rng, init="glorot"):
    """Starting weights and biases near zero, drawn in float64 on the host: uniform on
    +-sqrt(6 / (fan_in + fan_out)) (Glorot; 2 in place of 6 for the sigmoid), as
    scikit-learn draws them, or with ``init="esl"`` uniform on [-0.7, 0.7] (ESL 11.5.1)."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    weights = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = ESL_BOUND if init == "esl" else np.sqrt(factor / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        weights.append((W, b))
    return weights
