"""A feed-forward network with explicit forward and backward passes (ESL 11.4).

For a minibatch X (N x p), layer l = 1..L+1 with weights W_l (fan_in x fan_out)
and biases b_l:

    A_l = Z_{l-1} W_l + b_l,   Z_0 = X,   Z_l = sigma(A_l),   F = g(T),  T = A_{L+1}
    delta = dR/dT                             (output errors)
    dW_l = Z_{l-1}^T Delta_l,  db_l = sum over cases of Delta_l
    s_{l-1} = (Delta_l W_l^T) * sigma'(Z_{l-1})   (back-propagated errors)

with Delta_{L+1} = delta and Delta_l = s_l for the hidden layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import NUMPY, Backend, get_backend, is_sparse
from .errors import InputError
from .functions import (
    ACTIVATIONS,
    CANONICAL_LOSS,
    DERIVATIVES,
    LOSSES,
    OUTPUTS,
    VALID_OUTPUTS,
)
from .validation import real_array

DTYPES = ("float32", "float64")
REDUCTIONS = ("mean", "sum")


@dataclass
class Backprop:
    """One pass at (X, Y): hidden outputs Z = [X, Z_1, ..., Z_L], output
    pre-activations T, outputs F = g(T), output errors delta = dR/dT, hidden
    errors s = [s_1, ..., s_L], the loss and [(dW_l, db_l), ...]. With
    reduction="mean", delta and s carry the factor 1/N.
    """

    Z: list
    T: Any
    F: Any
    delta: Any
    s: list
    loss: Any
    gradients: list


def check_choice(argument: str, value: Any, valid: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``valid``, else an InputError listing them."""
    if not isinstance(value, str) or value not in valid:
        raise InputError(f"{argument}={value!r} is not one of: {', '.join(valid)}")
    return value


def count_parameters(layer_sizes) -> int:
    """Weights and biases of a network ``[p, M_1, ..., M_L, K]``: sum of (fan_in + 1) fan_out."""
    return sum((m + 1) * n for m, n in zip(layer_sizes[:-1], layer_sizes[1:]))


def init_weights(layer_sizes, activation, rng):
    """Glorot-uniform weights and biases near zero, drawn in float64 on the host."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    weights = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        weights.append((W, b))
    return weights


class MLP:
    """Multilayer perceptron ``layer_sizes = [p, M_1, ..., M_L, K]``.

    ``activation`` is sigma for the hidden units, ``output`` is g (a softmax needs
    K >= 2), ``loss`` is R (None picks the canonical loss for g). The loss is ``mean_i R_i`` or
    ``sum_i R_i`` plus ``weight_decay * sum_l ||W_l||^2`` (biases not penalised).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "sigmoid",
        output: str = "softmax",
        loss: str | None = None,
        weight_decay: float = 0.0,
        dtype: str = "float32",
        backend: str | Backend = "auto",
        seed: int | np.random.Generator | None = None,
    ):
        sizes = tuple(layer_sizes) if hasattr(layer_sizes, "__iter__") else ()
        if len(sizes) < 2 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in sizes
        ):
            raise InputError(
                f"layer_sizes={layer_sizes!r} must be at least two positive integers "
                "[p, M_1, ..., M_L, K]"
            )
        self.layer_sizes = tuple(int(n) for n in sizes)
        self.activation = check_choice("activation", activation, tuple(ACTIVATIONS))
        self.output = check_choice("output", output, tuple(OUTPUTS))
        loss = CANONICAL_LOSS[output] if loss is None else loss
        self.loss = check_choice("loss", loss, tuple(LOSSES))
        if output not in VALID_OUTPUTS[loss]:
            raise InputError(
                f"loss={loss!r} cannot be paired with output={output!r}; it needs output in "
                f"{VALID_OUTPUTS[loss]} (squared_error works with every output)"
            )
        if output == "softmax" and self.layer_sizes[-1] == 1:
            raise InputError(
                "output='softmax' needs K >= 2 outputs: with K = 1 it is 1 whatever T is, "
                "so its gradient is zero; for one output use output='sigmoid'"
            )
        if not _real(weight_decay) or not np.isfinite(weight_decay) or weight_decay < 0:
            raise InputError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
        self.weight_decay = float(weight_decay)
        self.dtype = _float_dtype(dtype)
        self.backend = get_backend(backend)
        if not (
            seed is None
            or isinstance(seed, np.random.Generator)
            or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)
        ):
            raise InputError(f"seed={seed!r} must be None, an integer >= 0 or a numpy Generator")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.set_weights(init_weights(self.layer_sizes, self.activation, rng))

    # -- weights ----------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Number of weight layers, L + 1."""
        return len(self.layer_sizes) - 1

    @property
    def _xp_dtype(self):
        return getattr(self.backend.xp, self.dtype.name)

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]`` as NumPy arrays: one copy of theta to
        the host, of which they are views."""
        theta = self.backend.to_host(self.theta)
        if theta is self.theta:
            theta = theta.copy()
        return self.views(theta, np)

    def set_weights(self, weights) -> None:
        """Set every (W_l, b_l) from arrays of any backend; shapes are checked.

        The weights live in one flat vector ``theta`` (W_1, b_1, W_2, b_2, ...)
        and ``W[l]``, ``b[l]`` are views of it, so an optimiser can update all
        of them at once.
        """
        weights = list(weights)
        if len(weights) != self.n_layers:
            raise InputError(f"weights has {len(weights)} layers, the network {self.n_layers}")
        flat = []
        for l, (pair, fan_in, fan_out) in enumerate(
            zip(weights, self.layer_sizes[:-1], self.layer_sizes[1:]), start=1
        ):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(f"weights[{l - 1}] must be a pair (W_{l}, b_{l})")
            Wl = real_array(f"W_{l}", self.backend.to_host(pair[0]), NUMPY, self.dtype)
            bl = real_array(f"b_{l}", self.backend.to_host(pair[1]), NUMPY, self.dtype)
            if Wl.shape != (fan_in, fan_out) or bl.shape != (fan_out,):
                raise InputError(
                    f"layer {l}: W has shape {Wl.shape} and b {bl.shape}, "
                    f"expected {(fan_in, fan_out)} and {(fan_out,)}"
                )
            flat += [Wl.astype(self.dtype).ravel(), bl.astype(self.dtype)]
        self.set_theta(np.concatenate(flat))

    def set_theta(self, theta) -> None:
        """Adopt ``theta`` (any backend) as the flat parameter vector."""
        self.theta = self.backend.to_device(theta, dtype=self._xp_dtype)
        if tuple(self.theta.shape) != (self.n_parameters,):
            raise InputError(
                f"theta has shape {tuple(self.theta.shape)}, expected ({self.n_parameters},)"
            )
        views = self.views(self.theta)
        self.W, self.b = [W for W, _ in views], [b for _, b in views]

    def views(self, flat, xp=None):
        """``[(W_1, b_1), ...]`` as views of a flat vector laid out like ``theta`` (an
        array of ``xp``, the backend's array module unless given)."""
        xp, views, start = xp or self.backend.xp, [], 0
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            stop = start + fan_in * fan_out
            views.append(
                (xp.reshape(flat[start:stop], (fan_in, fan_out)), flat[stop : stop + fan_out])
            )
            start = stop + fan_out
        return views

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases."""
        return count_parameters(self.layer_sizes)

    # -- inputs -----------------------------------------------------------------

    def _inputs(self, X):
        X = real_array("X", X, self.backend, self._xp_dtype)
        p = self.layer_sizes[0]
        if X.ndim != 2 or X.shape[1] != p or X.shape[0] == 0:
            raise InputError(f"X must have shape (N, {p}) with N >= 1, got {tuple(X.shape)}")
        return X

    def _targets(self, Y, N):
        """Y as an (N, K) array; for softmax with K > 1, labels are one-hot encoded."""
        xp, K = self.backend.xp, self.layer_sizes[-1]
        ndim = Y.ndim if hasattr(Y, "ndim") else np.ndim(Y)
        if ndim == 1 and self.output == "softmax" and K > 1:
            labels = self.backend.to_host(Y)
            if labels.dtype.kind not in "iu" or labels.shape != (N,):
                raise InputError(
                    f"a 1-D Y must be ({N},) integer class labels, got shape {labels.shape} "
                    f"of dtype {labels.dtype}"
                )
            if N and (labels.min() < 0 or labels.max() >= K):
                raise InputError(
                    f"class labels must lie in [0, {K}), got [{labels.min()}, {labels.max()}]"
                )
            eye = self.backend.to_device(np.eye(K, dtype=self.dtype))
            return xp.take(eye, self.backend.to_device(labels), axis=0)
        Y = real_array("Y", Y, self.backend, self._xp_dtype)
        if Y.ndim == 1 and K == 1:
            Y = xp.reshape(Y, (-1, 1))
        if tuple(Y.shape) != (N, K):
            raise InputError(f"Y must have shape ({N}, {K}), got {tuple(Y.shape)}")
        return Y

    # -- forward and backward ----------------------------------------------------

    def _propagate(self, X):
        """Forward pass: the hidden outputs Z_0 = X, Z_1, ..., Z_L and T."""
        xp, sigma, fused = self.backend.xp, ACTIVATIONS[self.activation], self.backend.fused
        Z = [X]
        for W, b in zip(self.W[:-1], self.b[:-1]):
            A = Z[-1] @ W
            if fused is not None:  # one kernel for sigma(A + b), in place
                Z.append(fused.BIAS_ACTIVATION[self.activation](A, b, A))
                continue
            A += b
            Z.append(sigma(xp, A))
        T = Z[-1] @ self.W[-1]
        T += self.b[-1]
        return Z, T

    def g(self, T):
        """The output function g applied to the output pre-activations T."""
        return OUTPUTS[self.output](self.backend.xp, T)

    def forward(self, X):
        """f(X) = g(T), one row per case, as a backend array."""
        _, T = self._propagate(self._inputs(X))
        return self.g(T)

    def compute_loss(self, X, Y, reduction: str = "mean"):
        """The loss at (X, Y) as a 0-d backend array, forward pass only."""
        X, Y, scale = self._checked(X, Y, reduction)
        return self._loss(X, Y, scale, self.weight_decay)

    def loss_and_gradients(self, X, Y, reduction: str = "mean"):
        """The loss (0-d backend array) and ``[(dW_l, db_l), ...]`` at (X, Y)."""
        trace = self.backprop(X, Y, reduction)
        return trace.loss, trace.gradients

    def backprop(self, X, Y, reduction: str = "mean") -> Backprop:
        """Every named quantity of one forward and backward pass (for teaching)."""
        X, Y, scale = self._checked(X, Y, reduction)
        return self._backprop(X, Y, scale, self.weight_decay)

    def _checked(self, X, Y, reduction):
        check_choice("reduction", reduction, REDUCTIONS)
        X = self._inputs(X)
        scale = 1.0 / X.shape[0] if reduction == "mean" else 1.0
        return X, self._targets(Y, X.shape[0]), scale

    def _loss(self, X, Y, scale, decay, w=None):
        _, T = self._propagate(X)
        _, R_i, _ = self._evaluate(T, Y)
        return self._objective(R_i, scale, decay, w)

    def _evaluate(self, T, Y):
        """F = g(T), the case losses R_i and the output errors delta = dR_i/dT."""
        fused = self.backend.fused
        if fused is not None and (self.output, self.loss) in fused.LOSSES:
            return fused.LOSSES[self.output, self.loss](T, Y)
        return LOSSES[self.loss](self.backend.xp, self.output, T, Y)

    def penalty(self):
        """J = sum_l ||W_l||^2 (ESL 11.5.2; biases are not penalised), a 0-d backend array."""
        xp = self.backend.xp
        return sum(xp.sum(W * W) for W in self.W)

    def add_penalty_gradient(self, gradients, c) -> None:
        """dW_l += c W_l for every layer, in place: the gradient of (c / 2) J.

        ``c`` is a Python float or a 0-d backend array; one kernel per layer on CuPy.
        """
        fused = self.backend.fused
        for (dW, _), W in zip(gradients, self.W):
            if fused is None:
                dW += c * W
            else:
                fused.AXPY(W, c, dW, dW)

    def _objective(self, R_i, scale, decay, w=None):
        """scale * sum_i w_i R_i + decay * J (w_i = 1 unless given)."""
        xp = self.backend.xp
        R = scale * xp.sum(R_i if w is None else R_i * w)
        if decay:
            R = R + decay * self.penalty()
        return xp.asarray(R)

    def _backprop(self, X, Y, scale, decay, w=None, out=None, penalty=True):
        """One pass of ``scale * sum_i w_i R_i + decay * J``; Python floats scale and decay.

        ``out``, views like ``views(grad)``, receives the gradients (NumPy, CuPy).
        With ``penalty=False`` the loss leaves out decay * J (the training loop adds
        it once per epoch); the gradients always include it.
        """
        xp = self.backend.xp
        Z, T = self._propagate(X)
        F, R_i, delta = self._evaluate(T, Y)
        delta *= scale
        if w is not None:
            delta *= xp.reshape(w, (-1, 1))
        gradients, s = self._backward(Z, delta, out)
        if decay:
            self.add_penalty_gradient(gradients, 2 * decay)
        loss = self._objective(R_i, scale, decay if penalty else 0.0, w)
        return Backprop(Z, T, F, delta, s, loss, gradients)

    def _backward(self, Z, delta, out=None):
        """Back-propagate delta through the W_l: three GEMMs per layer.

        Returns the gradients [(dW_l, db_l)] (written into ``out`` when given) and
        the hidden errors [s_1, ..., s_L].
        """
        xp, sigma_prime = self.backend.xp, DERIVATIVES[self.activation]
        fused = self.backend.fused
        if fused is not None and self.activation in fused.DERIVATIVE:
            kernel = fused.DERIVATIVE[self.activation]

            def sigma_prime(xp, Z, G):  # noqa: F811 - the fused form of the same formula
                return kernel(Z, G, G)

        gradients, s = [None] * self.n_layers, []
        D = delta
        for l in range(self.n_layers - 1, -1, -1):
            if out is None:
                gradients[l] = (Z[l].T @ D, xp.sum(D, axis=0))
            else:
                dW, db = gradients[l] = out[l]
                if is_sparse(Z[l]):  # a sparse X: a sparse-dense product
                    dW[...] = Z[l].T @ D
                else:
                    xp.matmul(Z[l].T, D, out=dW)
                xp.sum(D, axis=0, out=db)
            if l > 0:
                D = sigma_prime(xp, Z[l], D @ self.W[l].T)  # the back-propagation equation
                s.append(D)
        return gradients, s[::-1]

    def __repr__(self) -> str:
        return (
            f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
            f"output={self.output!r}, loss={self.loss!r}, dtype={self.dtype.name!r}, "
            f"backend={self.backend.name!r})"
        )


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _float_dtype(dtype) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    return np.dtype(check_choice("dtype", name, DTYPES))
