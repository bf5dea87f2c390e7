"""The gradients of loss_and_gradients against central differences (float64)."""

import itertools
import zlib

import numpy as np
import pytest
from conftest import PAIRS
from conftest import problem as shared_problem

import gpubp
from gpubp.functions import ACTIVATIONS, LOSSES, OUTPUTS

pytestmark = pytest.mark.backends("numba", "reference")

DEPTHS = {1: [3, 4], 2: [3, 4, 3], 3: [3, 4, 3, 2]}  # hidden sizes before K


def problem(layer_sizes, output, seed):
    return shared_problem(layer_sizes, output, seed, N=5)


# Every activation x output x loss x depth x K x weight decay x reduction, except a
# softmax with K = 1 (refused by MLP: its gradient is identically zero): 576 nets.
SWEEP = [
    case
    for case in itertools.product(ACTIVATIONS, PAIRS, DEPTHS, [1, 3], [0.0, 0.3], ["mean", "sum"])
    if not (case[1][0] == "softmax" and case[3] == 1)
]


def test_the_sweep_covers_576_nets_and_no_softmax_with_one_output():
    assert len(SWEEP) == 576
    with pytest.raises(ValueError, match="K >= 2"):
        gpubp.MLP([3, 1], output="softmax")


@pytest.mark.parametrize(
    "activation,pair,depth,K,weight_decay,reduction",
    SWEEP,
    ids=["-".join(map(str, (a, *p, d, K, wd, r))) for a, p, d, K, wd, r in SWEEP],
)
def test_gradients_match_central_differences(activation, pair, depth, K, weight_decay, reduction):
    output, loss = pair
    sizes = DEPTHS[depth][: depth + 1] + [K]
    seed = zlib.crc32(repr((activation, output, loss, depth, K, weight_decay, reduction)).encode())
    net = gpubp.MLP(
        sizes, activation, output, loss, weight_decay, dtype="float64", backend="numpy", seed=seed
    )
    X, Y = problem(sizes, output, seed)
    result = gpubp.gradcheck(net, X, Y, reduction=reduction)
    assert result.max_rel_error < 1e-6, str(result)


def test_gradients_with_integer_labels_equal_one_hot():
    net = gpubp.MLP([4, 5, 3], "tanh", "softmax", dtype="float64", backend="numpy", seed=0)
    X = np.random.default_rng(1).normal(size=(7, 4))
    labels = np.array([0, 2, 1, 1, 0, 2, 2])
    loss_l, grads_l = net.loss_and_gradients(X, labels)
    loss_h, grads_h = net.loss_and_gradients(X, np.eye(3)[labels])
    assert float(loss_l) == pytest.approx(float(loss_h), rel=1e-15)
    for (dW1, db1), (dW2, db2) in zip(grads_l, grads_h):
        np.testing.assert_array_equal(dW1, dW2)
        np.testing.assert_array_equal(db1, db2)
    assert gpubp.gradcheck(net, X, labels).max_rel_error < 1e-6


@pytest.mark.backends
@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_float32_gradients_agree_with_float64_differences(activation, output, loss):
    """float32 arithmetic against float64 central differences at the same (rounded)
    weights. float32 rounding is relative to the largest terms, so entries below 1% of
    the largest gradient entry are compared on that scale (floor=1e-2): measured at most
    1.2e-5 over 320 such nets (8 seeds, N = 5 and 8). On every backend: the fused
    kernels' path in float32 too."""
    net = gpubp.MLP([4, 6, 3], activation, output, loss, 0.1, dtype="float32", seed=0)
    X, Y = problem([4, 6, 3], output, 0)
    assert gpubp.gradcheck(net, X, Y, floor=1e-2).max_rel_error < 1e-4


def test_gradcheck_finds_a_wrong_gradient(monkeypatch):
    """The checker itself can fail: break sigma' and it must point at a hidden layer (on
    the reference formulas, which the broken table entry feeds)."""
    from gpubp import functions
    from gpubp.backend import NUMPY

    monkeypatch.setitem(functions.DERIVATIVES, "tanh", lambda xp, Z, G: G * (1 - Z))
    net = gpubp.MLP([3, 4, 2], "tanh", "identity", dtype="float64", backend=NUMPY, seed=0)
    X, Y = problem([3, 4, 2], "identity", 0)
    result = gpubp.gradcheck(net, X, Y)
    assert result.max_rel_error > 1e-2
    assert result.layer == 1
    assert result.param in "Wb"
    assert result.analytic != pytest.approx(result.numeric)
    assert result.errors[0][0].shape == (3, 4) and result.errors[1][1].shape == (2,)


def test_squared_error_has_no_half_and_reductions_differ_by_n():
    """R = sum_i sum_k (y - f)^2 and mean = sum / N, also for K > 1 (sklearn #8349)."""
    net = gpubp.MLP([2, 3, 2], "tanh", "identity", dtype="float64", backend="numpy", seed=0)
    X, Y = problem([2, 3, 2], "identity", 0)
    F = gpubp.to_numpy(net.forward(X))
    total = float(net.compute_loss(X, Y, reduction="sum"))
    assert total == pytest.approx(np.sum((Y - F) ** 2), rel=1e-14)
    assert float(net.compute_loss(X, Y)) == pytest.approx(total / len(X), rel=1e-14)
    _, g_sum = net.loss_and_gradients(X, Y, reduction="sum")
    _, g_mean = net.loss_and_gradients(X, Y, reduction="mean")
    for (a, _), (b, _) in zip(g_sum, g_mean):
        np.testing.assert_allclose(a / len(X), b, rtol=1e-13)


def test_weight_decay_adds_lambda_sum_of_squared_weights_not_biases():
    kw = dict(dtype="float64", backend="numpy", seed=4)
    plain = gpubp.MLP([3, 4, 2], "relu", "identity", **kw)
    decayed = gpubp.MLP([3, 4, 2], "relu", "identity", weight_decay=0.25, **kw)
    X, Y = problem([3, 4, 2], "identity", 4)
    J = sum(np.sum(W**2) for W, _ in plain.get_weights())
    assert float(decayed.compute_loss(X, Y)) == pytest.approx(
        float(plain.compute_loss(X, Y)) + 0.25 * J
    )
    _, gp = plain.loss_and_gradients(X, Y)
    _, gd = decayed.loss_and_gradients(X, Y)
    for (dWp, dbp), (dWd, dbd), (W, _) in zip(gp, gd, plain.get_weights()):
        np.testing.assert_allclose(dWd, dWp + 0.5 * W, rtol=1e-13)
        np.testing.assert_array_equal(dbd, dbp)


def test_the_matrix_covers_every_pairing_the_network_accepts():
    accepted = set()
    for output, loss in itertools.product(OUTPUTS, LOSSES):
        try:
            gpubp.MLP([2, 2], output=output, loss=loss, backend="numpy")
            accepted.add((output, loss))
        except ValueError as exc:
            assert "cannot be paired" in str(exc)
    assert accepted == set(PAIRS) and len(PAIRS) == 7


def test_case_weights_scale_each_cases_contribution():
    """sum_i w_i R_i: the gradient is the w-weighted sum of one-case gradients."""
    net = gpubp.MLP([3, 4, 2], "sigmoid", "sigmoid", dtype="float64", backend="numpy", seed=2)
    X, Y = problem([3, 4, 2], "sigmoid", 2)
    w = np.array([0.0, 1.0, 2.5, 0.5, 3.0])
    bp = net.backprop_unchecked(X, Y, 0.5, 0.1, w)
    loss, want = 0.0, [(0.0, 0.0)] * 2
    for i in range(len(X)):
        one = net.backprop_unchecked(X[i : i + 1], Y[i : i + 1], 0.5 * w[i], 0.0)
        loss += float(one.loss)
        want = [(a + dW, b + db) for (a, b), (dW, db) in zip(want, one.gradients)]
    J = sum(np.sum(W**2) for W, _ in net.get_weights())
    assert float(bp.loss) == pytest.approx(loss + 0.1 * J, rel=1e-13)
    for (dW, db), (eW, eb), W in zip(bp.gradients, want, net.W):
        np.testing.assert_allclose(dW, eW + 0.2 * W, rtol=1e-12)
        np.testing.assert_allclose(db, eb, rtol=1e-12)
