"""Tables of activations, outputs and losses (ESL 11.4), written for any ``xp``.

Every function takes the array module first and uses only what NumPy, CuPy and
the array API standard all provide. Derivatives are written from a unit's
*output* Z, so pre-activations need not be kept for hidden layers.
"""

from __future__ import annotations


def sigmoid(xp, A):
    """1 / (1 + e^-A) without overflow: only e^-|A| is ever formed."""
    E = xp.exp(-xp.abs(A))
    R = 1 / (1 + E)
    return xp.where(A >= 0, R, E * R)


def softmax(xp, T):
    """g_k(T) = e^T_k / sum_l e^T_l, shifted by the row maximum."""
    E = xp.exp(T - xp.max(T, axis=1, keepdims=True))
    return E / xp.sum(E, axis=1, keepdims=True)


def log_softmax(xp, T):
    S = T - xp.max(T, axis=1, keepdims=True)
    return S - xp.log(xp.sum(xp.exp(S), axis=1, keepdims=True))


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

# G * sigma'(A), with sigma' written from the output Z = sigma(A).
DERIVATIVES = {
    "sigmoid": lambda xp, Z, G: G * Z * (1 - Z),
    "tanh": lambda xp, Z, G: G * (1 - Z * Z),
    # Z >= 0 for relu, so sign(Z) is its 0/1 derivative in Z's own dtype.
    "relu": lambda xp, Z, G: G * xp.sign(Z),
    "identity": lambda xp, Z, G: G,
}

# The output function g(T).
OUTPUTS = {
    "identity": lambda xp, T: T,
    "softmax": softmax,
    "sigmoid": sigmoid,
}

# E applied to the transposed Jacobian of g, i.e. dR/dT from dR/dF = E.
OUTPUT_JACOBIANS = {
    "identity": lambda xp, F, E: E,
    "sigmoid": lambda xp, F, E: E * F * (1 - F),
    "softmax": lambda xp, F, E: F * (E - xp.sum(F * E, axis=1, keepdims=True)),
}


# The loss of each case, R_i, as an (N,) vector.


def squared_error(xp, T, F, Y):
    """R_i = sum_k (y_ik - f_k(x_i))^2 -- no factor 1/2."""
    D = Y - F
    return xp.sum(D * D, axis=1)


def cross_entropy(xp, T, F, Y):
    """R_i = -sum_k y_ik log f_k(x_i), with log f from T (softmax output)."""
    return -xp.sum(Y * log_softmax(xp, T), axis=1)


def binary_cross_entropy(xp, T, F, Y):
    """R_i = -sum_k [y log f + (1 - y) log(1 - f)] = sum_k softplus(T) - y T (sigmoid g)."""
    return xp.sum(softplus(xp, T) - Y * T, axis=1)


LOSSES = {
    "squared_error": squared_error,
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
}

CANONICAL_LOSS = {
    "identity": "squared_error",
    "softmax": "cross_entropy",
    "sigmoid": "binary_cross_entropy",
}

# Outputs each loss may be paired with: squared error with any g (delta goes
# through g'), the two log losses only with the g whose log they take.
VALID_OUTPUTS = {
    "squared_error": ("identity", "softmax", "sigmoid"),
    "cross_entropy": ("softmax",),
    "binary_cross_entropy": ("sigmoid",),
}


def output_delta(xp, output, loss, T, F, Y):
    """delta_ki = dR_i/dT_k, one row per case.

    The canonical pairs cancel g' against the loss:
    softmax + cross-entropy gives f * sum_k y_k - y (f - y for one-hot rows),
    sigmoid + binary cross-entropy gives f - y.
    Squared error with any g is the textbook's general form,
    delta = -2 (y - f) applied to g'(T).
    """
    if loss == "cross_entropy":
        return F * xp.sum(Y, axis=1, keepdims=True) - Y
    if loss == "binary_cross_entropy":
        return F - Y
    return OUTPUT_JACOBIANS[output](xp, F, 2 * (F - Y))
