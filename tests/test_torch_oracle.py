"""A second, independent oracle: PyTorch's autograd (skips where torch is absent).

torch is imported when these tests run, not when they are collected: PyTorch slows the
OpenBLAS calls that follow it in its process, and the other tests should not pay for it.
"""

import numpy as np
import pytest
from conftest import PAIRS

import gpubp

pytestmark = pytest.mark.backends


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed (CI installs a CPU build)")


def torch_loss(torch, weights, X, Y, activation, output, loss, weight_decay, reduction):
    sigma = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
    g = {"softmax": lambda t: torch.softmax(t, 1), "sigmoid": torch.sigmoid, "exp": torch.exp}
    Z = X
    for W, b in weights[:-1]:
        A = Z @ W + b
        Z = sigma[activation](A) if activation in sigma else A
    T = Z @ weights[-1][0] + weights[-1][1]
    if loss == "squared_error":
        F = g[output](T) if output in g else T
        R = ((Y - F) ** 2).sum()
    elif loss == "cross_entropy":
        R = -(Y * torch.log_softmax(T, 1)).sum()
    elif loss == "poisson":  # half the Poisson deviance: y log(y / f) - y + f, f = e^T
        R = (torch.special.xlogy(Y, Y) - Y * T - Y + torch.exp(T)).sum()
    else:
        R = torch.nn.functional.binary_cross_entropy_with_logits(T, Y, reduction="sum")
    if reduction == "mean":
        R = R / X.shape[0]
    return R + weight_decay * sum((W**2).sum() for W, _ in weights)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("output,loss", PAIRS)
def test_gradients_equal_torch_autograd_on_random_architectures(torch, seed, output, loss):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(1, 5)) + (output == "softmax")  # a softmax needs K >= 2
    sizes = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(2, 5)))] + [K]
    activation = ["sigmoid", "tanh", "relu", "identity"][seed % 4]
    weight_decay = float(rng.choice([0.0, 0.1]))
    reduction = ["mean", "sum"][seed % 2]
    net = gpubp.MLP(sizes, activation, output, loss, weight_decay, "float64", "numpy", seed=rng)
    N = 7
    X = rng.normal(size=(N, sizes[0]))
    Y = rng.dirichlet(np.ones(K), size=N) if output == "softmax" else rng.uniform(size=(N, K))

    R, grads = net.loss_and_gradients(X, Y, reduction=reduction)
    weights = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in net.get_weights()
    ]
    R_t = torch_loss(
        torch,
        weights,
        torch.tensor(X),
        torch.tensor(Y),
        activation,
        output,
        loss,
        weight_decay,
        reduction,
    )
    R_t.backward()
    assert float(R) == pytest.approx(R_t.item(), rel=1e-12)
    for (dW, db), (W, b) in zip(grads, weights):
        np.testing.assert_allclose(dW, W.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, b.grad.numpy(), rtol=1e-10, atol=1e-14)
