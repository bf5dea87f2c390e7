"""The core uses only what CuPy also provides.

array_api_strict arrays placed on its non-default device refuse conversion to
NumPy, as CuPy arrays do, and refuse functions outside the array API standard.
A stray ``numpy`` call, an implicit host transfer or a NumPy-only method in the
forward or backward pass fails here, on a machine without a GPU.
"""

import functools

import numpy as np
import pytest
from conftest import PAIRS, named_quantities, problem

import gpubp
from gpubp.functions import ACTIVATIONS

pytestmark = pytest.mark.backends("numba", "reference")

xp = pytest.importorskip("array_api_strict")

DEVICE = xp.Device("device1")


def host(a):
    if not isinstance(a, np.ndarray):
        a = a.to_device(xp.Device("CPU_DEVICE"))
    return np.asarray(a)


STRICT = gpubp.Backend(
    "array_api_strict", xp, functools.partial(xp.asarray, device=DEVICE), to_host=host
)


def test_strict_arrays_refuse_numpy_like_cupy_does():
    a = STRICT.to_device(np.ones(3))
    with pytest.raises(RuntimeError):
        np.asarray(a)
    with pytest.raises(RuntimeError):
        np.exp(a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_forward_and_backward_run_on_a_strict_device(activation, output, loss, dtype):
    sizes = [3, 5, 4, 2]
    X, Y = problem(sizes, output)
    kw = dict(weight_decay=0.1, dtype=dtype, seed=5)
    strict = gpubp.MLP(sizes, activation, output, loss, backend=STRICT, **kw)
    ref = gpubp.MLP(sizes, activation, output, loss, backend="numpy", **kw)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for name, (got, expected) in named_quantities(
        strict.backprop(X, Y), ref.backprop(X, Y)
    ).items():
        assert got.device == DEVICE, name
        assert got.dtype == getattr(xp, dtype), name
        np.testing.assert_allclose(host(got), expected, rtol=rtol, atol=rtol * 1e-2, err_msg=name)
    assert host(strict.forward(X)).shape == (6, 2)


def test_class_labels_and_weights_round_trip_on_a_strict_device():
    strict = gpubp.MLP([3, 4, 3], "relu", backend=STRICT, seed=0)
    X = np.random.default_rng(0).normal(size=(4, 3))
    labels = np.array([2, 0, 1, 2])
    loss_labels, _ = strict.loss_and_gradients(X, labels)
    loss_onehot, _ = strict.loss_and_gradients(X, np.eye(3)[labels])
    assert host(loss_labels) == host(loss_onehot)
    ref = gpubp.MLP([3, 4, 3], "relu", backend="numpy", seed=1)
    ref.set_weights(strict.get_weights())
    np.testing.assert_array_equal(host(strict.forward(X)), ref.forward(X))


def test_gradcheck_accepts_a_network_on_another_device():
    net = gpubp.MLP([2, 3, 2], "tanh", "identity", dtype="float64", backend=STRICT, seed=0)
    X = np.random.default_rng(1).normal(size=(4, 2))
    assert gpubp.gradcheck(net, X, np.zeros((4, 2))).max_rel_error < 1e-6
