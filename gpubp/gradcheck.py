"""Central finite differences of the loss against ``loss_and_gradients``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .backend import NUMPY
from .errors import InputError
from .network import MLP


@dataclass(frozen=True)
class GradcheckResult:
    """The largest relative error of a gradient check and where it occurs.

    Parameters
    ----------
    max_rel_error : float
        The largest relative error over every weight and bias.
    layer : int
        The layer where it occurs, from 1.
    param : {'W', 'b'}
        Weights or biases.
    index : tuple of int
        The entry's index in that array.
    analytic : float
        The backward pass's gradient there.
    numeric : float
        The central difference there.
    errors : list of (numpy.ndarray, numpy.ndarray)
        ``errors[l]`` is ``(err_W, err_b)`` for layer l + 1, entry by entry:
        ``|analytic - numeric| / max(|analytic|, |numeric|, floor * G)`` with G the
        largest ``|numeric|`` entry of the whole network.
    network : int or None, default=None
        For a stack, the network where the largest error occurs (``errors`` are its own).
    """

    max_rel_error: float
    layer: int
    param: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    errors: list[tuple[np.ndarray, np.ndarray]]
    network: int | None = None

    def __float__(self) -> float:
        return self.max_rel_error

    def __str__(self) -> str:
        where = "" if self.network is None else f"network {self.network}, "
        return (
            f"{where}max relative error {self.max_rel_error:.3e} at {self.param}_{self.layer}"
            f"{list(self.index)}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g}"
        )


def gradcheck(
    net: MLP, X, Y, eps: float = 1e-4, reduction: str = "mean", floor: float = 1e-4
) -> GradcheckResult:
    """Compare ``net.loss_and_gradients(X, Y)`` with central differences.

    The differences are taken on a float64 NumPy copy of the network, one
    weight at a time, with the fourth-order central stencil
    (8 (R(w + eps) - R(w - eps)) - (R(w + 2 eps) - R(w - 2 eps))) / (12 eps):
    its truncation error is O(eps^4), so a larger eps (less rounding) still
    gives about ``1e-16 |R| / eps`` absolute accuracy. Entries below
    ``floor`` times the largest gradient entry are compared on that scale, so
    vanishing gradients do not divide rounding noise by almost nothing.

    On a stack (``n_networks=R``) each network is checked against differences of
    its own loss: the gradient of the stack's loss vector, row r, is the gradient
    of network r's loss.

    Parameters
    ----------
    net : MLP
        The network to check, on any backend and in any dtype.
    X : array-like of shape (n_samples, p)
        The inputs.
    Y : array-like of shape (n_samples, K), or (n_samples,) of class labels
        The targets.
    eps : float, default=1e-4
        The step of the differences.
    reduction : {'mean', 'sum'}, default='mean'
        The loss checked: the mean or the sum of the R_i.
    floor : float, default=1e-4
        Entries below ``floor`` times the largest gradient entry are compared on that
        scale.

    Returns
    -------
    GradcheckResult
        The largest relative error, where it occurs, and every entry's error.
    """
    if not isinstance(net, MLP):
        raise InputError(f"gradcheck needs a gpubp.MLP, not {type(net).__name__}")
    if not isinstance(eps, (int, float)) or not 0 < eps < np.inf:
        raise InputError(f"eps={eps!r} must be a positive number")
    if not isinstance(floor, (int, float)) or not 0 <= floor < np.inf:
        raise InputError(f"floor={floor!r} must be a number >= 0")
    _, analytic = net.loss_and_gradients(X, Y, reduction=reduction)
    analytic = [(net.backend.to_host(dW), net.backend.to_host(db)) for dW, db in analytic]
    X, Y = net.backend.to_host(X), net.backend.to_host(Y)
    if net.n_networks is None:
        return _check(net, analytic, X, Y, reduction, eps, floor)
    results = [
        _check(net.network(r), [(dW[r], db[r]) for dW, db in analytic], X, Y, reduction, eps, floor)
        for r in range(net.n_networks)
    ]
    r = int(np.argmax([result.max_rel_error for result in results]))
    return replace(results[r], network=r)


def _check(net, analytic, X, Y, reduction, eps, floor) -> GradcheckResult:
    """One network's analytic gradients against central differences of its float64 copy."""
    ref = MLP(
        net.layer_sizes,
        net.activation,
        net.output,
        net.loss,
        net.weight_decay,
        dtype="float64",
        backend=NUMPY,
        penalty=net.penalty,
        w0=net.w0,
    )
    ref.set_weights(net.get_weights())
    params = list(zip(ref.W, ref.b))  # perturbed in place, one entry at a time
    X64, Y64, scale = ref.check_inputs(X, Y, reduction)

    def loss() -> float:
        return float(ref.loss_unchecked(X64, Y64, scale, ref.weight_decay))

    numeric = []
    for layer in params:
        numeric.append(tuple(_central_differences(theta, loss, eps) for theta in layer))
    scale = floor * max(float(np.max(np.abs(n), initial=0)) for layer in numeric for n in layer)

    best = None
    errors = []
    for l, (nums, grads) in enumerate(zip(numeric, analytic), start=1):
        layer_errors = []
        for name, n, g in zip("Wb", nums, grads):
            g = g.astype(np.float64)
            err = np.abs(g - n) / np.maximum(np.maximum(np.abs(g), np.abs(n)), scale or 1.0)
            layer_errors.append(err)
            if best is None or err.max() > best.max_rel_error:
                i = np.unravel_index(np.argmax(err), err.shape)
                best = GradcheckResult(
                    float(err[i]),
                    l,
                    name,
                    tuple(int(k) for k in i),
                    float(g[i]),
                    float(n[i]),
                    errors,
                )
        errors.append(tuple(layer_errors))
    return best


def _central_differences(theta, loss, eps):
    """dR/dtheta entry by entry, perturbing theta in place and restoring it."""
    numeric = np.empty_like(theta)
    for idx in np.ndindex(theta.shape):
        saved = theta[idx]
        R = {}
        for k in (-2, -1, 1, 2):
            theta[idx] = saved + k * eps
            R[k] = loss()
        theta[idx] = saved
        numeric[idx] = (8 * (R[1] - R[-1]) - (R[2] - R[-2])) / (12 * eps)
    return numeric
