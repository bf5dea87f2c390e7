"""The network's contract: dtypes, seeds, weights, shapes, stability, errors."""

import warnings

import numpy as np
import pytest
from conftest import PAIRS

import gpubp
from gpubp.functions import ACTIVATIONS

pytestmark = pytest.mark.backends("numba", "reference")

RAISE = dict(over="raise", divide="raise", invalid="raise")  # e^-1000 = 0 is right


def data(N=6, p=3, K=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, p)), rng.uniform(size=(N, K))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", PAIRS)
def test_dtype_is_preserved_everywhere(dtype, output, loss):
    net = gpubp.MLP([3, 5, 4, 2], "tanh", output, loss, 0.1, dtype=dtype, backend="numpy", seed=0)
    X, Y = data()  # float64 inputs: the network's dtype decides
    assert net.forward(X).dtype == dtype
    bp = net.backprop(X, Y)
    quantities = bp.Z + bp.s + [bp.T, bp.F, bp.delta, bp.loss]
    quantities += [g for pair in bp.gradients for g in pair]
    assert all(q.dtype == dtype for q in quantities)
    loss_value, _ = net.loss_and_gradients(X.astype(np.float32), Y.astype(np.float32))
    assert isinstance(loss_value, np.ndarray) and loss_value.shape == ()
    assert loss_value.dtype == dtype
    assert all(W.dtype == dtype and b.dtype == dtype for W, b in net.get_weights())


def test_same_seed_same_weights_and_different_seed_different_weights():
    a = gpubp.MLP([4, 8, 3], seed=7, backend="numpy").get_weights()
    b = gpubp.MLP([4, 8, 3], seed=7, backend="numpy").get_weights()
    c = gpubp.MLP([4, 8, 3], seed=8, backend="numpy").get_weights()
    for (Wa, ba), (Wb, bb), (Wc, _) in zip(a, b, c):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
        assert not np.array_equal(Wa, Wc)


def test_float32_weights_are_the_float64_draw_rounded():
    w32 = gpubp.MLP([4, 8, 3], seed=1, dtype="float32", backend="numpy").get_weights()
    w64 = gpubp.MLP([4, 8, 3], seed=1, dtype="float64", backend="numpy").get_weights()
    for (W32, _), (W64, _) in zip(w32, w64):
        np.testing.assert_array_equal(W32, W64.astype(np.float32))


def test_initial_weights_are_small_and_shaped_fan_in_by_fan_out():
    weights = gpubp.MLP([10, 20, 5], "relu", seed=0, backend="numpy").get_weights()
    assert [W.shape for W, _ in weights] == [(10, 20), (20, 5)]
    assert [b.shape for _, b in weights] == [(20,), (5,)]
    for (W, _), (fan_in, fan_out) in zip(weights, [(10, 20), (20, 5)]):
        assert np.abs(W).max() <= np.sqrt(6 / (fan_in + fan_out))
        assert W.std() > 0


def test_get_set_weights_round_trip_and_copies():
    net = gpubp.MLP([3, 4, 2], seed=0, backend="numpy")
    other = gpubp.MLP([3, 4, 2], seed=1, backend="numpy")
    other.set_weights(net.get_weights())
    X, _ = data()
    np.testing.assert_array_equal(net.forward(X), other.forward(X))
    weights = net.get_weights()
    weights[0][0][:] = 0  # a returned copy must not alias the network
    assert np.abs(net.get_weights()[0][0]).sum() > 0


def test_set_weights_checks_shapes_and_count():
    net = gpubp.MLP([3, 4, 2], backend="numpy")
    with pytest.raises(ValueError, match="layer 2"):
        net.set_weights([(np.zeros((3, 4)), np.zeros(4)), (np.zeros((4, 3)), np.zeros(3))])
    with pytest.raises(ValueError, match="1 layers"):
        net.set_weights([(np.zeros((3, 4)), np.zeros(4))])


def test_forward_shapes_and_softmax_rows_sum_to_one():
    net = gpubp.MLP([3, 6, 4], "relu", "softmax", backend="numpy", seed=0)
    F = net.forward(data(N=9)[0])
    assert F.shape == (9, 4)
    np.testing.assert_allclose(F.sum(axis=1), 1, rtol=1e-6)


# T = (1000, -1000, 0) for the first case and (-1000, 1000, 0) for the second, whose
# targets are classes 1 and 2: f, the mean loss and delta = dR/dT (with the 1/N of the
# mean) at their exact limits.
LIMITS = {
    ("identity", "squared_error"): (
        [[1000, -1000, 0], [-1000, 1000, 0]],
        999**2 + 1000**2,
        [[999, -1000, 0], [-1000, 999, 0]],
    ),
    ("softmax", "cross_entropy"): ([[1, 0, 0], [0, 1, 0]], 0.0, [[0, 0, 0], [0, 0, 0]]),
    ("softmax", "squared_error"): ([[1, 0, 0], [0, 1, 0]], 0.0, [[0, 0, 0], [0, 0, 0]]),
    ("sigmoid", "binary_cross_entropy"): (
        [[1, 0, 0.5], [0, 1, 0.5]],
        np.log(2),
        [[0, 0, 0.25], [0, 0, 0.25]],
    ),
    ("sigmoid", "squared_error"): (  # g'(T) = f (1 - f) is 0 at +-1000, 1/4 at 0
        [[1, 0, 0.5], [0, 1, 0.5]],
        0.25,
        [[0, 0, 0.125], [0, 0, 0.125]],
    ),
}


# The exp output (the log link of counts) grows without bound: at T = 1000 it overflows,
# in scikit-learn's MLP as here, so it has no limits to pin.
SATURATING = [pair for pair in PAIRS if pair[0] != "exp"]


def test_the_limits_cover_every_pairing():
    assert set(LIMITS) == set(SATURATING) and len(SATURATING) == len(PAIRS) - 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", SATURATING)
def test_logits_of_plus_minus_1000_give_the_exact_limits(dtype, output, loss):
    net = gpubp.MLP([1, 3], "identity", output, loss, dtype=dtype, backend="numpy")
    net.set_weights([(np.array([[1000.0, -1000.0, 0.0]]), np.zeros(3))])
    X = np.array([[1.0], [-1.0]])
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with np.errstate(**RAISE), warnings.catch_warnings():
        warnings.simplefilter("error")
        F = net.forward(X)
        bp = net.backprop(X, Y)
    F_want, loss_want, delta_want = LIMITS[output, loss]
    np.testing.assert_array_equal(F, F_want)
    assert float(bp.loss) == pytest.approx(loss_want, rel=1e-7, abs=0)
    np.testing.assert_allclose(bp.delta, delta_want, rtol=1e-7, atol=0)
    assert all(np.all(np.isfinite(g)) for pair in bp.gradients for g in pair)


def test_log_losses_are_exact_for_large_logits():
    """-log f for a class 1000 below the winner is 1000, not inf; the winner costs 0."""
    net = gpubp.MLP([1, 2], "identity", "softmax", dtype="float64", backend="numpy")
    net.set_weights([(np.array([[1000.0, 0.0]]), np.zeros(2))])
    assert float(net.compute_loss([[1.0]], [[0.0, 1.0]])) == pytest.approx(1000.0)
    assert float(net.compute_loss([[1.0]], [[1.0, 0.0]])) == 0.0
    net = gpubp.MLP([1, 1], "identity", "sigmoid", dtype="float64", backend="numpy")
    net.set_weights([(np.array([[1000.0]]), np.zeros(1))])
    assert float(net.compute_loss([[1.0]], [[0.0]])) == pytest.approx(1000.0)
    assert float(net.compute_loss([[1.0]], [[1.0]])) == 0.0


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_activations_are_stable_for_large_inputs(activation):
    net = gpubp.MLP([1, 2, 1], activation, "identity", dtype="float32", backend="numpy")
    net.set_weights([(np.array([[1e4, -1e4]], np.float32), np.zeros(2)), (np.ones((2, 1)), [0])])
    with np.errstate(**RAISE):
        assert np.all(np.isfinite(net.loss_and_gradients([[1.0], [-1.0]], [[0.0], [1.0]])[1][0][0]))


def test_invalid_names_and_pairings_are_clear_errors():
    with pytest.raises(ValueError, match="activation='softsign'.*sigmoid, tanh, relu, identity"):
        gpubp.MLP([2, 2], activation="softsign")
    with pytest.raises(ValueError, match="output='linear'"):
        gpubp.MLP([2, 2], output="linear")
    with pytest.raises(ValueError, match="loss='hinge'"):
        gpubp.MLP([2, 2], loss="hinge")
    with pytest.raises(gpubp.InputError, match="cannot be paired"):
        gpubp.MLP([2, 2], output="identity", loss="cross_entropy")
    with pytest.raises(ValueError, match="cannot be paired"):
        gpubp.MLP([2, 2], output="softmax", loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="dtype='float16'"):
        gpubp.MLP([2, 2], dtype="float16")
    with pytest.raises(ValueError, match="layer_sizes"):
        gpubp.MLP([2, 0, 2])
    with pytest.raises(ValueError, match="layer_sizes"):
        gpubp.MLP([2])
    with pytest.raises(ValueError, match="weight_decay"):
        gpubp.MLP([2, 2], weight_decay=-1)
    with pytest.raises(ValueError, match="reduction='avg'"):
        gpubp.MLP([2, 2], backend="numpy").loss_and_gradients([[0, 0]], [0], reduction="avg")


def test_input_and_target_shapes_are_checked():
    net = gpubp.MLP([3, 4, 2], backend="numpy")
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        net.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"Y must have shape \(5, 2\)"):
        net.loss_and_gradients(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        net.loss_and_gradients(np.zeros((2, 3)), np.array([0, 2]))
    with pytest.raises(ValueError, match="integer class labels"):
        net.loss_and_gradients(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_k_equals_one_accepts_a_target_vector():
    net = gpubp.MLP([3, 4, 1], "tanh", "identity", backend="numpy", seed=0)
    X, Y = data(K=1)
    assert float(net.compute_loss(X, Y[:, 0])) == float(net.compute_loss(X, Y))
