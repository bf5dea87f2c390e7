"""A feed-forward network with explicit forward and backward passes (ESL 11.4).

For a minibatch X (N x p), layer l = 1..L+1 with weights W_l (fan_in x fan_out)
and biases b_l:

    A_l = Z_{l-1} W_l + b_l,   Z_0 = X,   Z_l = sigma(A_l),   F = g(T),  T = A_{L+1}
    delta = dR/dT                             (output errors)
    dW_l = Z_{l-1}^T Delta_l,  db_l = sum over cases of Delta_l
    s_{l-1} = (Delta_l W_l^T) * sigma'(Z_{l-1})   (back-propagated errors)

with Delta_{L+1} = delta and Delta_l = s_l for the hidden layers.

A stack of R networks of one architecture (``n_networks=R``, ESL 11.5's random
starts and cross-validation) runs the same equations with a leading network
axis: W_l (R, fan_in, fan_out), Z_l (R, N, M_l), and every product a batched
matrix multiply; X and Y are shared, the case weights may be one row per network.
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
PENALTIES = ("l2", "weight_elimination")
INITS = ("glorot", "esl")
ESL_BOUND = 0.7  # ESL 11.5.1: uniform starting weights on [-0.7, 0.7] for standardised inputs
MATMUL_PRECISIONS = ("float32", "tf32")
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


def _seeds(seed, n_networks):
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


class MLP:
    """Multilayer perceptron ``layer_sizes = [p, M_1, ..., M_L, K]``.

    ``activation`` is sigma for the hidden units, ``output`` is g (a softmax needs
    K >= 2), ``loss`` is R (None picks the canonical loss for g). The loss is ``mean_i R_i`` or
    ``sum_i R_i`` plus ``weight_decay * J`` (biases not penalised), where J is
    ``sum_l ||W_l||^2`` for ``penalty="l2"`` (weight decay) and, for
    ``penalty="weight_elimination"`` (ESL 11.5.2, eq. 11.17), ``sum u / (1 + u)`` over
    every weight with ``u = (W / w0)^2``: small weights are shrunk harder than large ones.
    ``init`` draws the starting weights: "glorot" (scikit-learn's scaled uniform) or
    "esl" (uniform on [-0.7, 0.7], the book's, for standardised inputs).

    ``n_networks=R`` makes a stack of R networks trained side by side: theta is
    (R, P), W_l (R, fan_in, fan_out), b_l (R, fan_out), losses are (R,) vectors,
    ``weight_decay`` may be one value per network and ``seed`` a list of R seeds
    (one seed draws the R networks in turn from one generator, so network 0 is
    the network that seed gives alone). None (the default) is one network,
    without the axis.

    ``matmul_precision="tf32"`` lets the GPU's tensor cores round the float32
    operands of every matrix product to TF32 (10-bit mantissa, float32 sums): 3.6x
    faster for 4096-wide layers on an H100, at a relative gradient error up to 2e-2
    (README). It applies on CuPy only; the default keeps every product in full float32.

    ``weights``, ``[(W_1, b_1), ...]`` as ``set_weights`` takes them, starts the
    network from those instead of drawing its weights from ``seed``.
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
        seed: int | np.random.Generator | Sequence | None = None,
        n_networks: int | None = None,
        matmul_precision: str = "float32",
        weights: Sequence | None = None,
        penalty: str = "l2",
        w0: float = 1.0,
        init: str = "glorot",
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
        if n_networks is not None and not (
            isinstance(n_networks, (int, np.integer))
            and not isinstance(n_networks, bool)
            and n_networks >= 1
        ):
            raise InputError(f"n_networks={n_networks!r} must be None or an integer >= 1")
        self.n_networks = None if n_networks is None else int(n_networks)
        self.weight_decay = _decays(weight_decay, self.n_networks)
        self.set_penalty(penalty, w0)
        self.init = check_choice("init", init, INITS)
        self.dtype = _float_dtype(dtype)
        self.matmul_precision = check_choice(
            "matmul_precision", matmul_precision, MATMUL_PRECISIONS
        )
        self.backend = get_backend(backend)
        if weights is not None:
            self.set_weights(weights)
            return
        drawn = [
            init_weights(self.layer_sizes, self.activation, rng, self.init)
            for rng in _seeds(seed, self.n_networks)
        ]
        if self.n_networks is None:
            self.set_weights(drawn[0])
        else:
            self.set_weights([tuple(np.stack(a) for a in zip(*layer)) for layer in zip(*drawn)])

    def set_penalty(self, penalty: str = "l2", w0: float = 1.0) -> None:
        """Choose J: "l2" (w0 unused) or "weight_elimination" with scale ``w0 > 0``."""
        self.penalty = check_choice("penalty", penalty, PENALTIES)
        if not _real(w0) or not 0 < w0 < np.inf:
            raise InputError(f"w0={w0!r} must be a finite number > 0")
        self.w0 = float(w0)

    # -- weights ----------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Number of weight layers, L + 1."""
        return len(self.layer_sizes) - 1

    @property
    def _xp_dtype(self):
        return getattr(self.backend.xp, self.dtype.name)

    @property
    def _lead(self) -> tuple[int, ...]:
        """The leading network axis of every weight array: () or (R,)."""
        return () if self.n_networks is None else (self.n_networks,)

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]`` as NumPy arrays: one copy of theta to
        the host, of which they are views (with the network axis first for a stack)."""
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
            shape_W, shape_b = (*self._lead, fan_in, fan_out), (*self._lead, fan_out)
            if Wl.shape != shape_W or bl.shape != shape_b:
                raise InputError(
                    f"layer {l}: W has shape {Wl.shape} and b {bl.shape}, "
                    f"expected {shape_W} and {shape_b}"
                )
            flat += [a.astype(self.dtype, copy=False).reshape(*self._lead, -1) for a in (Wl, bl)]
        self.set_theta(np.concatenate(flat, axis=-1))

    def set_theta(self, theta) -> None:
        """Adopt ``theta`` (any backend) as the flat parameter vector, (R, P) for a stack."""
        self.theta = self.backend.to_device(theta, dtype=self._xp_dtype)
        expected = (*self._lead, self.n_parameters)
        if tuple(self.theta.shape) != expected:
            raise InputError(f"theta has shape {tuple(self.theta.shape)}, expected {expected}")
        views = self.views(self.theta)
        self.W, self.b = [W for W, _ in views], [b for _, b in views]
        # the biases as they broadcast against A_l: (R, 1, fan_out) for a stack
        xp = self.backend.xp
        self._bias = (
            self.b if not self._lead else [xp.reshape(b, (b.shape[0], 1, -1)) for b in self.b]
        )

    def views(self, flat, xp=None):
        """``[(W_1, b_1), ...]`` as views of a flat vector laid out like ``theta`` (an
        array of ``xp``, the backend's array module unless given; one row per network
        for a stack)."""
        xp, views, start = xp or self.backend.xp, [], 0
        lead = self._lead
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            stop = start + fan_in * fan_out
            views.append(
                (
                    xp.reshape(flat[..., start:stop], (*lead, fan_in, fan_out)),
                    flat[..., stop : stop + fan_out],
                )
            )
            start = stop + fan_out
        return views

    def network(self, r: int) -> MLP:
        """Network ``r`` of a stack as a network of its own (a copy of its weights)."""
        if self.n_networks is None or not 0 <= r < self.n_networks:
            raise InputError(f"network({r!r}) needs a stack with more than {r} networks")
        decay = self.weight_decay
        alone = MLP(
            self.layer_sizes,
            self.activation,
            self.output,
            self.loss,
            decay if _real(decay) else float(decay[r]),
            dtype=self.dtype.name,
            backend=self.backend,
            seed=0,
            matmul_precision=self.matmul_precision,
            penalty=self.penalty,
            w0=self.w0,
            init=self.init,
        )
        alone.set_theta(self.theta[r].copy())
        return alone

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases."""
        return count_parameters(self.layer_sizes)

    # -- inputs -----------------------------------------------------------------

    def check_inputs(self, X, Y, reduction: str = "mean"):
        """(X, Y, scale): X and Y checked and on the device in the network's dtype (class
        labels one-hot encoded), scale = 1/N for ``reduction="mean"``, 1 for "sum"."""
        check_choice("reduction", reduction, REDUCTIONS)
        X = self._inputs(X)
        scale = 1.0 / X.shape[0] if reduction == "mean" else 1.0
        return X, self._targets(Y, X.shape[0]), scale

    def _inputs(self, X):
        if self._lead and is_sparse(X):
            raise InputError("a stack of networks needs a dense X (use X.toarray())")
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

    # -- forward and backward: checked ---------------------------------------------

    def forward(self, X):
        """f(X) = g(T), one row per case (per network of a stack), as a backend array."""
        _, T = self.propagate(self._inputs(X))
        return self.g(T)

    def compute_loss(self, X, Y, reduction: str = "mean"):
        """The loss at (X, Y) as a backend array (0-d, or (R,) for a stack), forward
        pass only."""
        X, Y, scale = self.check_inputs(X, Y, reduction)
        return self.loss_unchecked(X, Y, scale, self.weight_decay)

    def loss_and_gradients(self, X, Y, reduction: str = "mean"):
        """The loss (backend array) and ``[(dW_l, db_l), ...]`` at (X, Y)."""
        trace = self.backprop(X, Y, reduction)
        return trace.loss, trace.gradients

    def backprop(self, X, Y, reduction: str = "mean") -> Backprop:
        """Every named quantity of one forward and backward pass (for teaching)."""
        X, Y, scale = self.check_inputs(X, Y, reduction)
        return self.backprop_unchecked(X, Y, scale, self.weight_decay)

    # -- forward and backward: unchecked, for the training loop --------------------
    # X, Y and w are arrays of the backend in the network's dtype, as check_inputs
    # gives them; scale and decay are Python floats, or for a stack one number per
    # network (a host or device vector).

    def propagate(self, X, output_bias: bool = True):
        """Forward pass: the hidden outputs Z_0 = X, Z_1, ..., Z_L and T (unchecked); with
        ``output_bias=False``, Z_L W_{L+1} in place of T (a fused loss adds b_{L+1})."""
        xp, sigma, fused = self.backend.xp, ACTIVATIONS[self.activation], self.backend.fused
        Z = [X]
        for W, b in zip(self.W[:-1], self._bias[:-1]):
            A = self.matmul(Z[-1], W)
            if fused is not None:  # one kernel for sigma(A + b), in place
                Z.append(fused.BIAS_ACTIVATION[self.activation](A, b, A))
                continue
            A += b
            Z.append(sigma(xp, A))
        T = self.matmul(Z[-1], self.W[-1])
        if output_bias:
            T += self._bias[-1]
        return Z, T

    def matmul(self, a, b, out=None):
        """``a @ b`` (into ``out`` when given): on CuPy through cuBLAS called directly, in
        ``matmul_precision``, so that a training step can be captured in a CUDA graph."""
        fused = self.backend.fused
        if is_sparse(a):  # a sparse X: a sparse-dense product
            if out is None:
                return a @ b
            out[...] = a @ b
            return out
        if fused is not None:
            return fused.matmul(a, b, out, self.matmul_precision)
        return a @ b if out is None else self.backend.xp.matmul(a, b, out=out)

    def g(self, T):
        """The output function g applied to the output pre-activations T."""
        return OUTPUTS[self.output](self.backend.xp, T)

    def evaluate(self, T, Y):
        """F = g(T), the case losses R_i and the output errors delta = dR_i/dT (unchecked)."""
        fused = self.backend.fused
        if fused is not None and (self.output, self.loss) in fused.LOSSES:
            return fused.LOSSES[self.output, self.loss](T, Y)
        return LOSSES[self.loss](self.backend.xp, self.output, T, Y)

    def loss_unchecked(self, X, Y, scale, decay, w=None):
        """``scale * sum_i w_i R_i + decay * J`` at (X, Y), forward pass only."""
        _, T = self.propagate(X)
        _, R_i, _ = self.evaluate(T, Y)
        return self._objective(R_i, scale, decay, w)

    def J(self):
        """The penalty J (ESL 11.5.2; biases are not penalised): sum_l ||W_l||^2, or for
        weight elimination sum u / (1 + u) with u = (W / w0)^2. A 0-d backend array,
        (R,) for a stack."""
        xp, axes = self.backend.xp, None if not self._lead else (-2, -1)
        if self.penalty == "l2":
            return sum(xp.sum(W * W, axis=axes) for W in self.W)
        q = 1.0 / self.w0**2
        return sum(xp.sum(_eliminated(W * W * q), axis=axes) for W in self.W)

    def add_penalty_gradient(self, gradients, c) -> None:
        """dW_l += (c / 2) dJ/dW_l for every layer, in place: the gradient of (c / 2) J.

        That is c W_l for "l2" and c W q / (1 + u)^2 (q = 1 / w0^2, u = q W^2) for weight
        elimination. ``c`` is a Python float or a 0-d backend array (one per network for
        a stack); one kernel per layer on CuPy and numba.
        """
        fused, c = self.backend.fused, self.per_network(c, 2)
        q = 1.0 / self.w0**2
        for (dW, _), W in zip(gradients, self.W):
            if self.penalty == "l2":
                if fused is None:
                    dW += c * W
                else:
                    fused.AXPY(W, c, dW, dW)
            elif fused is None:
                dW += c * weight_elimination_slope(W, q)
            else:
                fused.WEIGHT_ELIMINATION(W, c, q, dW, dW)

    def per_network(self, c, trailing: int):
        """``c`` as it is when it is a number or 0-d; a vector of one number per network
        (host or device) on the device, shaped (R,) + (1,) * trailing to broadcast
        against the stack's arrays."""
        if _real(c) or getattr(c, "ndim", 0) == 0:
            return c
        c = self.backend.to_device(c, dtype=self._xp_dtype)
        return self.backend.xp.reshape(c, (-1,) + (1,) * trailing)

    def _objective(self, R_i, scale, decay, w=None):
        """scale * sum_i w_i R_i + decay * J (w_i = 1 unless given)."""
        xp = self.backend.xp
        R = self.per_network(scale, 0) * xp.sum(R_i if w is None else R_i * w, axis=-1)
        if _nonzero(decay):
            R = R + self.per_network(decay, 0) * self.J()
        return xp.asarray(R)

    def backprop_unchecked(self, X, Y, scale, decay, w=None, out=None, penalty=True):
        """One pass of ``scale * sum_i w_i R_i + decay * J`` (unchecked, the training loop's).

        ``w`` holds the case weights, (N,) or (R, N) for a stack. ``out``, views
        like ``views(grad)``, receives the gradients (NumPy, CuPy). With
        ``penalty=False`` the loss leaves out decay * J (the training loop adds it
        once per epoch); the gradients always include it.
        """
        xp, fused = self.backend.xp, self.backend.fused
        output_errors = None if fused is None else fused.OUTPUT_ERRORS.get((self.output, self.loss))
        if output_errors is None:
            Z, T = self.propagate(X)
            F, R_i, delta = self.evaluate(T, Y)
            delta *= self.per_network(scale, 2)
        else:  # one kernel: T = A + b_{L+1}, F, R_i and the scaled delta
            Z, A = self.propagate(X, output_bias=False)
            P, K = self.n_parameters, self.layer_sizes[-1]
            bias = xp.reshape(self.theta, (-1,))[P - K :]  # network r's b_{L+1} at r P
            T, F, R_i, delta = output_errors(A, Y, bias, P, self.per_network(scale, 0))
        if w is not None:
            delta *= xp.reshape(w, (*w.shape, 1))
        gradients, s = self._backward(Z, delta, out)
        if _nonzero(decay):
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
        if fused is None:

            def column_sums(D, out=None):  # the array API's sum takes no out
                return xp.sum(D, axis=-2) if out is None else xp.sum(D, axis=-2, out=out)

        else:
            column_sums = fused.column_sums
        if fused is not None and self.activation in fused.DERIVATIVE:
            kernel = fused.DERIVATIVE[self.activation]

            def sigma_prime(xp, Z, G):  # noqa: F811 - the fused form of the same formula
                return kernel(Z, G, G)

        gradients, s = [None] * self.n_layers, []
        D = delta
        for l in range(self.n_layers - 1, -1, -1):
            Zt = _transposed(xp, Z[l])
            if out is None:
                gradients[l] = (self.matmul(Zt, D), column_sums(D))
            else:
                dW, db = gradients[l] = out[l]
                self.matmul(Zt, D, out=dW)
                column_sums(D, out=db)
            if l > 0:  # the back-propagation equation
                D = sigma_prime(xp, Z[l], self.matmul(D, _transposed(xp, self.W[l])))
                s.append(D)
        return gradients, s[::-1]

    def __repr__(self) -> str:
        return (
            f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
            f"output={self.output!r}, loss={self.loss!r}, dtype={self.dtype.name!r}, "
            f"backend={self.backend.name!r}"
            + ("" if self.matmul_precision == "float32" else ", matmul_precision='tf32'")
            + ")"
        )


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _nonzero(c) -> bool:
    """Whether a decay may be nonzero (a device vector is assumed to be)."""
    if _real(c) or isinstance(c, np.ndarray):
        return bool(np.any(c))
    return c is not None


def _eliminated(u):
    """u / (1 + u): weight elimination's penalty of one weight, u = (W / w0)^2."""
    return u / (1 + u)


def weight_elimination_slope(W, q):
    """(1/2) d/dW of u / (1 + u), u = q W^2: W q / (1 + u)^2 (the kernels' formula)."""
    d = 1 + W * W * q
    return W * q / (d * d)


def _transposed(xp, a):
    """a with its last two axes swapped: a.T for a matrix (or a sparse X)."""
    if a.ndim == 2:
        return a.T
    swap = getattr(xp, "swapaxes", None)
    if swap is not None:
        return swap(a, -1, -2)
    return xp.permute_dims(a, (*range(a.ndim - 2), a.ndim - 1, a.ndim - 2))


def _decays(weight_decay, n_networks):
    """weight_decay as a float, or for a stack optionally one float64 per network."""
    if n_networks is not None and np.ndim(weight_decay) == 1 and not _real(weight_decay):
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
    if not _real(weight_decay) or not np.isfinite(weight_decay) or weight_decay < 0:
        raise InputError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
    return float(weight_decay)


def _float_dtype(dtype) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    return np.dtype(check_choice("dtype", name, DTYPES))
