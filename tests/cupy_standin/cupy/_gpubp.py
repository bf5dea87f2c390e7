"""gpubp's CUDA kernels (``gpubp/kernels.py``) as the formulas they implement.

Keyed by kernel name. The activations, derivatives and losses come from
``gpubp.functions``, the reference the NumPy backend runs; the optimiser steps
are the update rules of ``gpubp.optim``. A kernel missing here fails loudly.
"""

from __future__ import annotations

import re

import numpy as np

from gpubp.functions import ACTIVATIONS, DERIVATIVES, LOSSES, sigmoid, softplus
from gpubp.penalties import weight_elimination_slope

ELEMENTWISE = {}
for _name, _sigma in ACTIVATIONS.items():
    ELEMENTWISE[f"gpubp_bias_{_name}"] = lambda a_in, b, _s=_sigma: {"z": _s(np, a_in + b)}
    ELEMENTWISE[f"gpubp_bias_rows_{_name}"] = lambda a_in, b, K, _s=_sigma: {
        "z": _s(np, a_in + b[np.arange(a_in.size) % int(K)].reshape(a_in.shape))
    }
for _name, _prime in DERIVATIVES.items():
    ELEMENTWISE[f"gpubp_d{_name}"] = lambda z, g_in, _p=_prime: {"g": _p(np, z, g_in.copy())}


def _sigmoid_bce(t, y):
    f = sigmoid(np, t)
    return {"f": f, "r": softplus(np, t) - y * t, "d": f - y}


ELEMENTWISE["gpubp_sigmoid_bce"] = _sigmoid_bce
ELEMENTWISE["gpubp_axpy"] = lambda x, a, y_in: {"y": y_in + a * x}
ELEMENTWISE["gpubp_weight_elimination"] = lambda x, a, q, y_in: {
    "y": y_in + a * weight_elimination_slope(x, q)
}
ELEMENTWISE["gpubp_sgd"] = lambda g, lr, theta_in: {"theta": theta_in - lr * g}


def _momentum(g, lr, mu, v_in, theta_in):
    v = mu * v_in - lr * g
    return {"v": v, "theta": theta_in + v}


def _nesterov(g, lr, mu, v_in, theta_in):
    v = mu * v_in - lr * g
    return {"v": v, "theta": theta_in + mu * v - lr * g}


def _adam(g, lr_t, b1, b2, eps, m_in, v_in, theta_in):
    one = g.dtype.type(1)
    m = b1 * m_in + (one - b1) * g
    v = b2 * v_in + (one - b2) * g * g
    return {"m": m, "v": v, "theta": theta_in - lr_t * m / (np.sqrt(v) + eps)}


ELEMENTWISE |= {"gpubp_sgd_momentum": _momentum, "gpubp_sgd_nesterov": _nesterov}
ELEMENTWISE["gpubp_adam"] = _adam


def _by_row(step, rate):
    """A step whose rate is read by row: element i of the (R, P) arrays takes rate[i // P]
    (P = 0: rate[0])."""

    def run(g, P, **args):
        rows = args.pop(f"{rate}_rows").reshape(-1)
        row = np.arange(g.size) // int(P) if P else np.zeros(g.size, dtype=np.intp)
        per_element = rows[row].reshape(g.shape)
        return step(g=g, **{rate: per_element}, **args)

    return run


for _name, _rate in [("gpubp_sgd", "lr"), ("gpubp_sgd_momentum", "lr"),
                     ("gpubp_sgd_nesterov", "lr"), ("gpubp_adam", "lr_t")]:  # fmt: skip
    ELEMENTWISE[f"{_name}_rows"] = _by_row(ELEMENTWISE[_name], _rate)


def _softmax_ce(threads, t, b, b_stride, has_b, y, y_rows, scales, n_scales, scale, f, r, d,
                N, n_cases, K):  # fmt: skip
    """One thread per case: rows the grid does not reach stay unwritten, as on a GPU.
    Case i belongs to network i // n_cases: its bias, its scale; its targets are row
    i % y_rows of y."""
    rows, K = min(int(N), threads), int(K)
    t, y, f, d = (a.reshape(-1, K) for a in (t, y, f, d))  # pointers: flat memory
    r = r.reshape(-1)
    i = np.arange(rows)
    j = i // int(n_cases)
    if has_b:
        t[:rows] = t[:rows] + b[j[:, None] * int(b_stride) + np.arange(K)]
    if n_scales == 0:
        c = np.full(rows, scale)
    else:
        c = np.broadcast_to(scales[0] if n_scales == 1 else scales[j], (rows,))
    F, R_i, delta = LOSSES["cross_entropy"](np, "softmax", t[:rows], y[i % int(y_rows)])
    f[:rows], r[:rows], d[:rows] = F, R_i, c[:, None] * delta


RAW = {"softmax_ce_float": _softmax_ce, "softmax_ce_double": _softmax_ce}


def _vectorized(formula, names):
    """A ``Vectorized`` kernel (gpubp.vectorized): its ElementwiseKernel's formula over the
    first n elements of each array parameter (named ``_x`` in its C; written if not
    const), the raw and value parameters as they are; the outputs written in place."""

    def run(threads, *values):
        assert threads >= 1
        *values, n = values
        n = int(n)
        args, outs = {}, {}
        for (name, written), value in zip(names[:-1], values):
            if not name.startswith("_"):
                args[name] = value
            elif written:
                outs[name[1:]] = value.reshape(-1)
            else:
                args[name[1:]] = value.reshape(-1)[:n].copy()
        for name, result in formula(**args).items():
            outs[name][:n] = np.asarray(result).reshape(-1)

    return run


def vectorized(name, names):
    """The formula of a ``Vectorized`` kernel ``name`` whose C parameters are ``names``,
    or None where ``name`` is not one."""
    vector = re.fullmatch(r"(.+)_vec_(float|double)", name)
    if vector is None or vector.group(1) not in ELEMENTWISE:
        return None
    return _vectorized(ELEMENTWISE[vector.group(1)], names)


def _gather_rows(src, order, k, width, batch):
    rows = order[int(k[0]) * int(batch) : (int(k[0]) + 1) * int(batch)]
    return {"dst": src.reshape(-1, int(width))[rows]}


ELEMENTWISE["gpubp_gather_rows"] = _gather_rows
ELEMENTWISE["gpubp_table_row"] = lambda table, k, width: {
    "dst": table.reshape(-1, int(width))[int(k[0])]
}
ELEMENTWISE["gpubp_increment"] = lambda k_in: {"k": k_in + 1}
