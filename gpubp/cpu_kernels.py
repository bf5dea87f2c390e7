"""Fused CPU kernels for the NumPy backend (numba), handed out by ``gpubp.backend``.

The CPU twin of ``gpubp.kernels``: the same names, called the same way, each doing
in one pass over memory what the reference formulas of ``gpubp.functions`` and
``gpubp.optim`` do in several NumPy calls (bias + activation, the activation
derivative, softmax + cross-entropy, the bias sums, the penalty gradients of weight
decay and weight elimination, every optimiser step). Each computes its formula in the
reference's order and dtype, so the results are the reference's bits, except the
softmax's exp and log (numba's libm against NumPy's vectorised ones: float32 rounding)
and Adam's (1 - beta) factors (rounded as the CUDA kernel rounds them). tanh, and the
sigmoid through it, stays NumPy's vectorised ufunc between two fused passes: a scalar
tanh in a numba loop is 9x slower. Single-threaded: the BLAS owns the cores.

Every kernel loops over arrays of three axes (network, row, column); a single
network's arrays get a leading axis of 1, and a per-network number is a vector of R
(or 1) values. Only ``gpubp.backend`` imports this module, after numba has imported.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


# -- the loops ----------------------------------------------------------------------


# Each loop updates its first array in place: with one array for input and output the
# compiler can prove the others apart and vectorise (an input and an output that are the
# same array fail its overlap check and run one element at a time).


IDENTITY, RELU, HALVED, SIGMOID, TANH = range(5)  # which formula a loop applies


@njit(**_JIT)
def _add_bias(a, b, then):
    """a <- a + b, then for RELU max(., 0), for HALVED times 0.5 (the sigmoid's tanh
    argument)."""
    R, N, M = a.shape
    zero, half = a.dtype.type(0), a.dtype.type(0.5)
    for r in range(R):
        for i in range(N):
            for j in range(M):
                x = a[r, i, j] + b[r, 0, j]
                if then == RELU:
                    x = zero if x < zero else x  # NaN stays NaN, as np.maximum's
                elif then == HALVED:
                    x = x * half
                a[r, i, j] = x


@njit(**_JIT)
def _half_plus_half(z):
    R, N, M = z.shape
    half = z.dtype.type(0.5)
    for r in range(R):
        for i in range(N):
            for j in range(M):
                z[r, i, j] = z[r, i, j] * half + half


@njit(**_JIT)
def _times_sigma_prime(g, z, sigma):
    """g <- g * sigma'(z), sigma' written from the output z as ``functions.DERIVATIVES``."""
    R, N, M = z.shape
    one = z.dtype.type(1)
    for r in range(R):
        for i in range(N):
            for j in range(M):
                x = z[r, i, j]
                if sigma == SIGMOID:
                    g[r, i, j] = g[r, i, j] * x * (one - x)
                elif sigma == TANH:
                    g[r, i, j] = g[r, i, j] * (one - x * x)
                else:
                    g[r, i, j] = g[r, i, j] * np.sign(x)


@njit(**_JIT)
def _softmax_cross_entropy(t, y, f, loss, d):
    R, N, K = t.shape
    zero = t.dtype.type(0)
    for r in range(R):
        for i in range(N):
            m = t[r, i, 0]
            for k in range(1, K):
                m = max(m, t[r, i, k])
            s = zero
            for k in range(K):
                f[r, i, k] = math.exp(t[r, i, k] - m)
                s += f[r, i, k]
            log_s = math.log(s)
            y_sum, loss_i = zero, zero
            for k in range(K):
                f[r, i, k] = f[r, i, k] / s
                y_sum += y[i, k]
                loss_i += y[i, k] * (log_s - (t[r, i, k] - m))
            loss[r, i] = loss_i
            for k in range(K):
                d[r, i, k] = f[r, i, k] * y_sum - y[i, k]


@njit(**_JIT)
def _column_sums(out, d):
    R, N, M = d.shape
    for r in range(R):
        for j in range(M):
            out[r, j] = 0
        for i in range(N):
            for j in range(M):
                out[r, j] += d[r, i, j]


@njit(**_JIT)
def _axpy(y, a, x):
    R, N, M = x.shape
    for r in range(R):
        c = a[r % a.size]
        for i in range(N):
            for j in range(M):
                y[r, i, j] = y[r, i, j] + c * x[r, i, j]


@njit(**_JIT)
def _weight_elimination(y, a, q, x):
    R, N, M = x.shape
    one = x.dtype.type(1)
    for r in range(R):
        c = a[r % a.size]
        for i in range(N):
            for j in range(M):
                w = x[r, i, j]
                d = one + w * w * q
                y[r, i, j] = y[r, i, j] + c * (w * q / (d * d))


@njit(**_JIT)
def _sgd(theta, lr, g):
    R, P = g.shape
    for r in range(R):
        rate = lr[r % lr.size]
        for i in range(P):
            theta[r, i] = theta[r, i] - g[r, i] * rate


@njit(**_JIT)
def _sgd_momentum(theta, v, lr, mu, g, nesterov):
    R, P = g.shape
    for r in range(R):
        rate = lr[r % lr.size]
        for i in range(P):
            step = g[r, i] * rate
            velocity = v[r, i] * mu - step
            v[r, i] = velocity
            if nesterov:  # theta - (gamma g - mu v), the reference's order
                theta[r, i] = theta[r, i] - (step - mu * velocity)
            else:
                theta[r, i] = theta[r, i] + velocity


@njit(**_JIT)
def _adam(theta, m, v, lr, b1, b2, eps, g):
    R, P = g.shape
    c1 = g.dtype.type(1) - b1
    c2 = g.dtype.type(1) - b2
    for r in range(R):
        rate = lr[r % lr.size]
        for i in range(P):
            gi = g[r, i]
            mi = m[r, i] * b1 + c1 * gi
            vi = v[r, i] * b2 + c2 * (gi * gi)
            m[r, i] = mi
            v[r, i] = vi
            theta[r, i] = theta[r, i] - rate * mi / (math.sqrt(vi) + eps)


# -- the calls, as gpubp.kernels offers them ------------------------------------------


def _cube(a):
    """An array of one network (2 axes) or of a stack (3) as (R, N, M), a view."""
    return a[None] if a.ndim == 2 else a


def _bias(b):
    """A bias (M,) or a stack's (R, 1, M) as (R, 1, M), a view."""
    return b[None, None] if b.ndim == 1 else b


def _rows(theta):
    """theta (P,) or a stack's (R, P) as (R, P), a view."""
    return theta[None] if theta.ndim == 1 else theta


def _numbers(c, dtype):
    """A number, a 0-d array or one number per network as a vector of ``dtype``."""
    return np.asarray(c, dtype=dtype).reshape(-1)


def _into(out, a):
    """``out`` holding a's values (the loops update their first array in place)."""
    if out is not a:
        out[...] = a
    return out


def _bias_then(then):
    def kernel(a, b, out):
        _add_bias(_cube(_into(out, a)), _bias(b), then)
        return out

    return kernel


def _bias_sigmoid(a, b, out):
    """sigma(a + b) = 0.5 tanh(0.5 (a + b)) + 0.5, as ``functions.sigmoid`` computes it."""
    z = _cube(_into(out, a))
    _add_bias(z, _bias(b), HALVED)
    np.tanh(z, out=z)
    _half_plus_half(z)
    return out


def _bias_tanh(a, b, out):
    _add_bias(_cube(_into(out, a)), _bias(b), IDENTITY)
    return np.tanh(out, out=out)


BIAS_ACTIVATION = {
    "sigmoid": _bias_sigmoid,
    "tanh": _bias_tanh,
    "relu": _bias_then(RELU),
    "identity": _bias_then(IDENTITY),
}


def _derivative(sigma):
    def kernel(z, g_in, g):  # g <- g * sigma'(z): called with g as input and output
        _times_sigma_prime(_cube(_into(g, g_in)), _cube(z), sigma)
        return g

    return kernel


DERIVATIVE = {"sigmoid": _derivative(SIGMOID), "tanh": _derivative(TANH), "relu": _derivative(RELU)}


def softmax_cross_entropy(T, Y):
    """(F, R_i, delta) of softmax + cross-entropy, one pass per case (Y (N, K) is shared
    by the networks of a stack)."""
    F, D = np.empty_like(T), np.empty_like(T)
    R_i = np.empty(T.shape[:-1], dtype=T.dtype)
    Y = np.asarray(Y, dtype=T.dtype)
    _softmax_cross_entropy(_cube(T), Y, _cube(F), R_i[None] if R_i.ndim == 1 else R_i, _cube(D))
    return F, R_i, D


LOSSES = {("softmax", "cross_entropy"): softmax_cross_entropy}
OUTPUT_ERRORS = {}  # none fused here: T += b and delta *= scale stay passes of their own


def column_sums(D, out=None):
    """db = the sum of D over its cases (axis -2), into ``out`` when given."""
    if out is None:
        out = np.empty(D.shape[:-2] + D.shape[-1:], dtype=D.dtype)
    _column_sums(out[None] if out.ndim == 1 else out, _cube(D))
    return out


def AXPY(x, a, y_in, y):
    """y = y_in + a x (weight decay's dW += 2 lambda W), ``a`` one number or one per network."""
    _axpy(_cube(_into(y, y_in)), _numbers(a, x.dtype), _cube(x))
    return y


def WEIGHT_ELIMINATION(x, a, q, y_in, y):
    """y = y_in + a x q / (1 + q x^2)^2 (weight elimination's gradient, ESL eq. 11.17)."""
    _weight_elimination(_cube(_into(y, y_in)), _numbers(a, x.dtype), x.dtype.type(q), _cube(x))
    return y


def SGD(g, lr, theta_in, theta):
    _sgd(_rows(_into(theta, theta_in)), _numbers(lr, g.dtype), _rows(g))
    return theta


def _momentum(nesterov):
    def kernel(g, lr, mu, v_in, theta_in, v, theta):
        _into(theta, theta_in)
        _into(v, v_in)
        c = g.dtype.type
        _sgd_momentum(_rows(theta), _rows(v), _numbers(lr, g.dtype), c(mu), _rows(g), nesterov)
        return v, theta

    return kernel


SGD_MOMENTUM, SGD_NESTEROV = _momentum(False), _momentum(True)


def ADAM(g, lr_t, b1, b2, eps, m_in, v_in, theta_in, m, v, theta):
    for out, a in ((m, m_in), (v, v_in), (theta, theta_in)):
        _into(out, a)
    c = g.dtype.type
    _adam(*map(_rows, (theta, m, v)), _numbers(lr_t, g.dtype), c(b1), c(b2), c(eps), _rows(g))
    return m, v, theta


def matmul(a, b, out=None, precision="float32"):
    """``a @ b`` through NumPy's BLAS (``precision`` is for the GPU's tensor cores)."""
    return a @ b if out is None else np.matmul(a, b, out=out)
