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

import numpy as np

from .backend import Backend, get_backend, is_sparse
from .backprop import Backprop
from .errors import InputError
from .functions import ACTIVATIONS, DERIVATIVES, LOSSES, OUTPUTS
from .initial_weights import INITS, init_weights, seeds
from .parameters import Parameters, count_parameters
from .penalties import (
    PENALTIES,
    add_penalty_gradient,
    decays,
    nonzero,
    penalty,
    penalty_arguments,
)
from .validation import (
    DTYPES,
    check_choice,
    check_stack_size,
    float_dtype,
    is_real,
    network_arguments,
    network_inputs,
    network_targets,
)

__all__ = ["DTYPES", "INITS", "MATMUL_PRECISIONS", "MLP", "PENALTIES", "count_parameters"]

MATMUL_PRECISIONS = ("float32", "tf32")
REDUCTIONS = ("mean", "sum")


class MLP(Parameters):
    """Multilayer perceptron ``layer_sizes = [p, M_1, ..., M_L, K]``: the textbook's network.

    The loss is ``mean_i R_i`` (or ``sum_i R_i``) plus ``weight_decay * J``, biases not
    penalised. ``n_networks=R`` makes a stack of R networks trained side by side: theta is
    (R, P), W_l (R, fan_in, fan_out), b_l (R, fan_out) and losses (R,) vectors.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[p, M_1, ..., M_L, K]``: inputs, the hidden layers' units, outputs.
    activation : {'sigmoid', 'tanh', 'relu', 'identity'}, default='sigmoid'
        The hidden units' function sigma.
    output : {'softmax', 'sigmoid', 'identity', 'exp'}, default='softmax'
        The output function g; a softmax needs K >= 2; exp is the log link of counts.
    loss : str or None, default=None
        The loss R: 'cross_entropy', 'binary_cross_entropy', 'squared_error' or 'poisson'
        (half the Poisson deviance); None picks the canonical loss for g. Squared error
        works with any g.
    weight_decay : float or sequence of float, default=0.0
        lambda, the weight of J; one value per network in a stack.
    dtype : {'float32', 'float64'}, default='float32'
        The floating-point type of weights and arithmetic.
    backend : {'auto', 'numpy', 'cupy'} or Backend, default='auto'
        Where the network lives; resolved once, here (see ``get_backend``).
    seed : int, numpy.random.Generator, sequence or None, default=None
        Seeds the starting weights, drawn in float64 on the host; for a stack, one seed
        (network 0 is the network that seed gives alone) or R of them.
    n_networks : int or None, default=None
        R, the networks of a stack; None is one network, without the axis.
    matmul_precision : {'float32', 'tf32'}, default='float32'
        'tf32' lets an NVIDIA GPU's tensor cores round the float32 operands of every
        matrix product to TF32 (a relative gradient error up to about 2e-2). CuPy only.
    weights : sequence of (W, b) or None, default=None
        Starting weights, as ``set_weights`` takes them, instead of a draw from ``seed``.
    penalty : {'l2', 'weight_elimination'}, default='l2'
        J: ``sum_l ||W_l||^2`` (weight decay), or weight elimination (ESL 11.5.2,
        eq. 11.17), ``sum u / (1 + u)`` over every weight with ``u = (W / w0)^2``.
    w0 : float, default=1.0
        The scale of weight elimination between small and large weights.
    init : {'glorot', 'esl'}, default='glorot'
        The starting weights: scikit-learn's scaled uniform, or uniform on [-0.7, 0.7]
        (ESL 11.5.1, for standardised inputs).
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
        self.layer_sizes, self.activation, self.output, self.loss = network_arguments(
            layer_sizes, activation, output, loss
        )
        check_stack_size(n_networks)
        self.n_networks = None if n_networks is None else int(n_networks)
        self.weight_decay = decays(weight_decay, self.n_networks)
        self.set_penalty(penalty, w0)
        self.init = check_choice("init", init, INITS)
        self.dtype = float_dtype(dtype)
        self.matmul_precision = check_choice(
            "matmul_precision", matmul_precision, MATMUL_PRECISIONS
        )
        self.backend = get_backend(backend)
        if weights is not None:
            self.set_weights(weights)
            return
        drawn = [
            init_weights(self.layer_sizes, self.activation, rng, self.init)
            for rng in seeds(seed, self.n_networks)
        ]
        if self.n_networks is None:
            self.set_weights(drawn[0])
        else:
            self.set_weights([tuple(np.stack(a) for a in zip(*layer)) for layer in zip(*drawn)])

    def set_penalty(self, penalty: str = "l2", w0: float = 1.0) -> None:
        """Choose J: "l2" (w0 unused) or "weight_elimination" with scale ``w0 > 0``."""
        self.penalty, self.w0 = penalty_arguments(penalty, w0)

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
            decay if is_real(decay) else float(decay[r]),
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
        return network_inputs(X, self.layer_sizes[0], self.backend, self._xp_dtype)

    def _targets(self, Y, N):
        """Y as an (N, K) array; for softmax with K > 1, labels are one-hot encoded."""
        onehot = self.output == "softmax"
        return network_targets(Y, N, self.layer_sizes[-1], onehot, self.backend, self.dtype)

    # -- forward and backward: checked ---------------------------------------------

    def forward(self, X):
        """f(X) = g(T), one row per case (per network of a stack), as a backend array.

        Parameters
        ----------
        X : array-like of shape (n_samples, p)
            The inputs, one row per case, of any backend.

        Returns
        -------
        array of shape (n_samples, K), or (R, n_samples, K) for a stack
            The outputs f(x_i).
        """
        _, T = self.propagate(self._inputs(X))
        return self.g(T)

    def compute_loss(self, X, Y, reduction: str = "mean"):
        """The loss at (X, Y), from the forward pass only.

        Parameters
        ----------
        X : array-like of shape (n_samples, p)
            The inputs x_i, one row per case, of any backend.
        Y : array-like of shape (n_samples, K), or (n_samples,) of class labels
            The targets y_i; class labels work with a softmax output.
        reduction : {'mean', 'sum'}, default='mean'
            The loss is the mean of the R_i, or the textbook's R = sum_i R_i.

        Returns
        -------
        array
            The loss, 0-d (or (R,) for a stack), on the backend: nothing waits for the GPU.
        """
        X, Y, scale = self.check_inputs(X, Y, reduction)
        return self.loss_unchecked(X, Y, scale, self.weight_decay)

    def loss_and_gradients(self, X, Y, reduction: str = "mean"):
        """The loss and its gradients at (X, Y).

        Parameters
        ----------
        X : array-like of shape (n_samples, p)
            The inputs x_i, one row per case, of any backend.
        Y : array-like of shape (n_samples, K), or (n_samples,) of class labels
            The targets y_i; class labels work with a softmax output.
        reduction : {'mean', 'sum'}, default='mean'
            The loss is the mean of the R_i, or the textbook's R = sum_i R_i.

        Returns
        -------
        loss : array
            The loss, 0-d (or (R,) for a stack), on the backend.
        gradients : list of (dW_l, db_l)
            The gradient of every layer's weights and biases, as ``get_weights`` has them.
        """
        trace = self.backprop(X, Y, reduction)
        return trace.loss, trace.gradients

    def backprop(self, X, Y, reduction: str = "mean") -> Backprop:
        """Every named quantity of one forward and backward pass (for teaching).

        Parameters
        ----------
        X : array-like of shape (n_samples, p)
            The inputs x_i, one row per case, of any backend.
        Y : array-like of shape (n_samples, K), or (n_samples,) of class labels
            The targets y_i; class labels work with a softmax output.
        reduction : {'mean', 'sum'}, default='mean'
            The loss is the mean of the R_i, or the textbook's R = sum_i R_i.

        Returns
        -------
        Backprop
            Z, T, F, delta, s, the loss and the gradients.
        """
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
        axes = None if not self._lead else (-2, -1)
        return penalty(self.backend.xp, self.W, self.penalty, self.w0, axes)

    def add_penalty_gradient(self, gradients, c) -> None:
        """dW_l += (c / 2) dJ/dW_l for every layer, in place: the gradient of (c / 2) J.

        That is c W_l for "l2" and c W q / (1 + u)^2 (q = 1 / w0^2, u = q W^2) for weight
        elimination. ``c`` is a Python float or a 0-d backend array (one per network for
        a stack); one kernel per layer on CuPy and numba.
        """
        c = self.per_network(c, 2)
        add_penalty_gradient(self.backend.fused, self.W, gradients, c, self.penalty, self.w0)

    def per_network(self, c, trailing: int):
        """``c`` as it is when it is a number or 0-d; a vector of one number per network
        (host or device) on the device, shaped (R,) + (1,) * trailing to broadcast
        against the stack's arrays."""
        if is_real(c) or getattr(c, "ndim", 0) == 0:
            return c
        c = self.backend.to_device(c, dtype=self._xp_dtype)
        return self.backend.xp.reshape(c, (-1,) + (1,) * trailing)

    def _objective(self, R_i, scale, decay, w=None):
        """scale * sum_i w_i R_i + decay * J (w_i = 1 unless given)."""
        xp = self.backend.xp
        R = self.per_network(scale, 0) * xp.sum(R_i if w is None else R_i * w, axis=-1)
        if nonzero(decay):
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
        if nonzero(decay):
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


def _transposed(xp, a):
    """a with its last two axes swapped: a.T for a matrix (or a sparse X)."""
    if a.ndim == 2:
        return a.T
    swap = getattr(xp, "swapaxes", None)
    if swap is not None:
        return swap(a, -1, -2)
    return xp.permute_dims(a, (*range(a.ndim - 2), a.ndim - 1, a.ndim - 2))
