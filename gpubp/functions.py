"""Tables of activations, outputs and losses (ESL 11.4), written for any ``xp``.

Every function takes the array module first and uses only what NumPy, CuPy and
the array API standard all provide. Derivatives are written from a unit's
*output* Z, so pre-activations need not be kept for hidden layers. Outputs and
losses work on the last axis: T may carry a leading network axis (a stack of
networks, ``MLP(n_networks=R)``), its targets Y broadcast against it.
"""

from __future__ import annotations


def sigmoid(xp, A):
    """1 / (1 + e^-A) = (1 + tanh(A / 2)) / 2: one tanh, which cannot overflow."""
    Z = xp.tanh(A * 0.5)
    Z *= 0.5
    Z += 0.5
    return Z


def softmax(xp, T):
    """g_k(T) = e^T_k / sum_l e^T_l over the last axis, shifted by the maximum."""
    E = xp.exp(T - xp.max(T, axis=-1, keepdims=True))
    return E / xp.sum(E, axis=-1, keepdims=True)


def log_softmax(xp, T):
    S = T - xp.max(T, axis=-1, keepdims=True)
    return S - xp.log(xp.sum(xp.exp(S), axis=-1, keepdims=True))


def softplus(xp, T):
    """log(1 + e^T) without overflow."""
    return xp.maximum(T, 0) + xp.log1p(xp.exp(-xp.abs(T)))


# sigma(A) for the hidden layers.
ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": lambda xp, A: xp.tanh(A),
    "relu": lambda xp, A: xp.maximum(A, 0),
    "identity": lambda xp, A: A,
}


def _sigmoid_prime(xp, Z, G):
    G *= Z
    G *= 1 - Z
    return G


def _tanh_prime(xp, Z, G):
    G *= 1 - Z * Z
    return G


# G * sigma'(A), with sigma' written from the output Z = sigma(A). G, a fresh
# array (the errors back-propagated through W^T), may be overwritten.
DERIVATIVES = {
    "sigmoid": _sigmoid_prime,
    "tanh": _tanh_prime,
    # Z >= 0 for relu, so sign(Z) is its 0/1 derivative in Z's own dtype.
    "relu": lambda xp, Z, G: G * xp.sign(Z),
    "identity": lambda xp, Z, G: G,
}

# The output function g(T).
OUTPUTS = {
    "identity": lambda xp, T: T,
    "softmax": softmax,
    "sigmoid": sigmoid,
    "exp": lambda xp, T: xp.exp(T),  # the log link's inverse: counts and rates
}

# E applied to the transposed Jacobian of g: dR/dT from dR/dF = E (general g).
OUTPUT_JACOBIANS = {
    "identity": lambda xp, F, E: E,
    "sigmoid": lambda xp, F, E: E * F * (1 - F),
    "softmax": lambda xp, F, E: F * (E - xp.sum(F * E, axis=-1, keepdims=True)),
    "exp": lambda xp, F, E: E * F,
}


# Each loss, with the output g it is paired with, gives from T and the targets Y
# the outputs F = g(T), the loss of each case R_i (an (N,) vector) and the
# output errors delta_ik = dR_i/dT_k, sharing what the three have in common.


def squared_error(xp, output, T, Y):
    """R_i = sum_k (y_ik - f_k)^2 (no 1/2); delta = -2 (y - f) applied to g'(T)."""
    F = OUTPUTS[output](xp, T)
    D = F - Y
    return F, xp.sum(D * D, axis=-1), OUTPUT_JACOBIANS[output](xp, F, 2 * D)


def cross_entropy(xp, output, T, Y):
    """Softmax g: R_i = -sum_k y_ik log f_k, with log f = S - log sum e^S, S = T - max T.

    delta = f sum_k y_k - y: g' cancels against the log, leaving f - y for one-hot rows.
    """
    S = T - xp.max(T, axis=-1, keepdims=True)
    E = xp.exp(S)
    sum_E = xp.sum(E, axis=-1, keepdims=True)
    F = E / sum_E
    R_i = -xp.sum(Y * (S - xp.log(sum_E)), axis=-1)
    return F, R_i, F * xp.sum(Y, axis=-1, keepdims=True) - Y


def binary_cross_entropy(xp, output, T, Y):
    """Sigmoid g: R_i = -sum_k [y log f + (1 - y) log(1 - f)] = sum_k softplus(T) - y T.

    delta = f - y: g' cancels against the logs.
    """
    F = sigmoid(xp, T)
    return F, xp.sum(softplus(xp, T) - Y * T, axis=-1), F - Y


def poisson(xp, output, T, Y):
    """Exp g (the log link), y >= 0: half the Poisson deviance,
    R_i = sum_k [y log(y / f) - y + f] = sum_k [f - y T + y log y - y] (y log y = 0 at
    y = 0), which is 0 where f = y.

    delta = f - y: g' = f cancels against the log.
    """
    F = xp.exp(T)
    positive = Y > 0
    y_log_y = xp.where(positive, Y * xp.log(xp.where(positive, Y, 1)), 0)
    return F, xp.sum(F - Y * T + y_log_y - Y, axis=-1), F - Y


LOSSES = {
    "squared_error": squared_error,
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "poisson": poisson,
}

CANONICAL_LOSS = {
    "identity": "squared_error",
    "softmax": "cross_entropy",
    "sigmoid": "binary_cross_entropy",
    "exp": "poisson",
}

# Outputs each loss may be paired with: squared error with any g (delta goes
# through g'), the log losses only with the g whose log they take.
VALID_OUTPUTS = {
    "squared_error": ("identity", "softmax", "sigmoid", "exp"),
    "cross_entropy": ("softmax",),
    "binary_cross_entropy": ("sigmoid",),
    "poisson": ("exp",),
}
