"""The fused CPU kernels (numba): each gives the reference formula's numbers, a whole
pass and a whole fit agree with the reference path, and the backend says which runs."""

import numpy as np
import pytest
from conftest import PAIRS, named_quantities, problem

import gpubp
from gpubp import backend as backend_module
from gpubp import functions
from gpubp.backend import NUMPY, get_backend, probe_numba
from gpubp.optim import SGD, Adam

pytest.importorskip("numba")
FUSED, WHY = probe_numba()
pytestmark = pytest.mark.skipif(FUSED is None, reason=f"numba does not work here: {WHY}")
DTYPES = ["float32", "float64"]


def kernels():
    return FUSED.fused


def shapes(stack):
    """(A's shape, b's shape as the network broadcasts it): one network, or a stack of 3."""
    return ((3, 17, 33), (3, 1, 33)) if stack else ((17, 33), (33,))


def arrays(dtype, stack, seed=0):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes(stack)
    A = rng.normal(scale=3, size=a_shape).astype(dtype)
    A.flat[:4] = [0.0, -0.0, 1e4, -1e4]
    theta = rng.normal(size=(3, 40) if stack else 40).astype(dtype)
    b = theta[..., 7:40] if stack else theta[7:40]  # a strided view of theta, as the network's
    return A, np.reshape(b, b_shape), rng.normal(size=a_shape).astype(dtype)


def test_every_kernel_the_network_and_optimisers_call_is_there():
    k = kernels()
    assert set(k.BIAS_ACTIVATION) == set(functions.ACTIVATIONS)
    assert set(k.DERIVATIVE) == set(functions.ACTIVATIONS) - {"identity"}
    assert set(k.LOSSES) == {("softmax", "cross_entropy")}
    for name in (
        "AXPY",
        "WEIGHT_ELIMINATION",
        "SGD",
        "SGD_MOMENTUM",
        "SGD_NESTEROV",
        "ADAM",
        "matmul",
        "column_sums",
    ):
        assert callable(getattr(k, name)), name


@pytest.mark.parametrize("stack", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_activation_and_derivative_give_the_reference_numbers(dtype, stack):
    """Same formula, same order, same dtype: equal, not just close."""
    A, b, G = arrays(dtype, stack)
    for name, sigma in functions.ACTIVATIONS.items():
        a = A.copy()
        Z = kernels().BIAS_ACTIVATION[name](a, b, a)
        assert Z is a and Z.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(Z, sigma(np, A + b), err_msg=name)
        if name in kernels().DERIVATIVE:
            g = G.copy()
            got = kernels().DERIVATIVE[name](Z, g, g)
            assert got is g
            want = functions.DERIVATIVES[name](np, Z, G.copy())
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_relu_keeps_nan_and_its_derivative_is_the_references():
    A = np.array([[np.nan, -1.0, 0.0, -0.0, 2.0]], dtype=np.float32)
    b = np.zeros(5, dtype=np.float32)
    Z = kernels().BIAS_ACTIVATION["relu"](A.copy(), b, A.copy())
    np.testing.assert_array_equal(Z, np.maximum(A, 0))
    G = np.array([[1.0, -2.0, -3.0, 4.0, 5.0]], dtype=np.float32)
    got = kernels().DERIVATIVE["relu"](Z, G.copy(), G.copy())
    np.testing.assert_array_equal(got, G * np.sign(Z))


@pytest.mark.parametrize("stack", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_column_sums_and_axpy_give_the_reference_numbers(dtype, stack):
    A, b, G = arrays(dtype, stack)
    out = np.empty_like(b.reshape(b.shape[0], -1) if stack else b)
    assert kernels().column_sums(G, out=out) is out
    np.testing.assert_array_equal(out, np.sum(G, axis=-2))
    np.testing.assert_array_equal(kernels().column_sums(G[..., :0, :]), np.sum(G[..., :0, :], -2))
    c = np.array([0.3, 0.0, 2.5], dtype=dtype).reshape(-1, 1, 1) if stack else 0.3
    y = G.copy()
    assert kernels().AXPY(A, c, y, y) is y
    np.testing.assert_array_equal(y, G + c * A)


@pytest.mark.parametrize("stack", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_agrees_with_the_reference(dtype, stack):
    rng = np.random.default_rng(2)
    T = rng.normal(scale=5, size=(3, 70, 7) if stack else (70, 7)).astype(dtype)
    T[..., 0, 0], T[..., 1, 1] = 1000, -1000
    T[..., 3, -1] = 200  # the largest logit in the last column: the max must reach it
    Y = rng.dirichlet(np.ones(7), size=70).astype(dtype)
    Y[2] = 0  # a row that weighs nothing
    rtol = 1e-6 if dtype == "float32" else 1e-14
    got = kernels().LOSSES["softmax", "cross_entropy"](T, Y)
    want = functions.cross_entropy(np, "softmax", T, Y)
    for name, g, w in zip(("F", "R_i", "delta"), got, want):
        assert g.shape == w.shape and g.dtype == w.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=name)
    F, R_i, D = kernels().LOSSES["softmax", "cross_entropy"](T[..., :0, :], Y[:0])
    assert F.shape == D.shape == T[..., :0, :].shape and R_i.shape == T.shape[:-2] + (0,)


def optimiser(kind, theta, fused, rate):
    if kind == "adam":
        return Adam(np, theta, rate, fused=fused)
    momentum = 0.0 if kind == "plain" else 0.9
    return SGD(np, theta, rate, momentum=momentum, nesterov=kind == "nesterov", fused=fused)


@pytest.mark.parametrize("stack", [False, True])
@pytest.mark.parametrize("kind", ["plain", "momentum", "nesterov", "adam"])
def test_optimiser_steps_give_the_reference_numbers(kind, stack):
    """SGD in all three forms to the bit; Adam to float32 rounding (its 1 - beta factors
    are rounded in float32, as the CUDA kernel rounds them)."""
    rng = np.random.default_rng(1)
    shape = (3, 5000) if stack else (70_000,)  # more than one piece of the reference update
    rate = [0.1, 0.01, 0.2] if stack else 0.1
    theta0 = rng.normal(size=shape).astype(np.float32)
    runs = []
    for fused in (kernels(), None):
        theta = theta0.copy()
        opt = optimiser(kind, theta, fused, rate)
        for step in range(4):
            g = np.random.default_rng(step).normal(size=shape).astype(np.float32)
            active = np.array([True, step != 1, True]) if stack else None
            opt.step(theta, g, active)
        runs.append((theta, opt))
    (theta, opt), (theta_ref, opt_ref) = runs
    assert theta.dtype == np.float32
    if kind == "adam":  # 1 - beta_2 is 1.3e-5 smaller in float32: the moves differ by ~1e-5
        np.testing.assert_allclose(theta - theta0, theta_ref - theta0, rtol=5e-5, atol=1e-6)
        np.testing.assert_allclose(opt.m, opt_ref.m, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(opt.v, opt_ref.v, rtol=5e-5, atol=1e-9)
        assert opt.t == opt_ref.t if not stack else np.array_equal(opt.t, opt_ref.t)
        return
    np.testing.assert_array_equal(theta, theta_ref)
    if kind != "plain":
        np.testing.assert_array_equal(opt.velocity, opt_ref.velocity)


def test_a_strided_array_is_computed_where_it_lies():
    """Kernels loop over any strides (a transposed or sliced array is not copied away)."""
    rng = np.random.default_rng(3)
    Z = rng.uniform(size=(40, 30)).astype(np.float32)[::2].T  # (30, 20), strided
    G = rng.normal(size=(30, 20)).astype(np.float32)
    g = G.copy(order="F")
    assert kernels().DERIVATIVE["sigmoid"](Z, g, g) is g
    np.testing.assert_array_equal(g, functions.DERIVATIVES["sigmoid"](np, Z, G.copy()))


@pytest.mark.parametrize("stack", [None, 3])
@pytest.mark.parametrize("activation", list(functions.ACTIVATIONS))
@pytest.mark.parametrize("output,loss", PAIRS)
def test_a_whole_pass_agrees_with_the_reference_path(output, loss, activation, stack):
    """Every named quantity (Z, T, F, delta, s, the loss, every gradient) of a float32
    pass with the fused CPU kernels against the reference formulas."""
    sizes = [5, 8, 6, 3]
    X, Y = problem(sizes, output, N=9)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    kw = dict(activation=activation, output=output, loss=loss, weight_decay=0.01, seed=4)
    nets = [gpubp.MLP(sizes, **kw, backend=b, n_networks=stack) for b in (FUSED, NUMPY)]
    got, want = (net.backprop(X, Y) for net in nets)
    for name, (g, w) in named_quantities(got, want).items():
        assert g.dtype == w.dtype == np.float32, name
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-7, err_msg=name)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_fit_with_the_fused_kernels_follows_the_reference_fit(solver, monkeypatch):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    fits = {}
    for numba in ("1", "0"):
        monkeypatch.setenv("GPUBP_NUMBA", numba)
        clf = gpubp.MLPClassifier(
            hidden_layer_sizes=(32,), solver=solver, max_iter=5, random_state=0, backend="numpy"
        )
        with pytest.warns(Warning):  # max_iter reached
            clf.fit(X, y)
        assert clf.get_network().backend is (FUSED if numba == "1" else NUMPY)
        fits[numba] = clf
    np.testing.assert_allclose(fits["1"].loss_curve_, fits["0"].loss_curve_, rtol=1e-5)
    # Adam divides by sqrt(v): a weight whose gradients are ~0 moves by the ratio of two
    # roundings, so its weights agree less closely than SGD's
    atol = 1e-5 if solver == "sgd" else 2e-3
    for W, W0 in zip(fits["1"].coefs_, fits["0"].coefs_):
        np.testing.assert_allclose(W, W0, rtol=1e-4, atol=atol)
    assert (fits["1"].predict(X) == fits["0"].predict(X)).mean() > 0.99


def test_the_backend_says_which_cpu_kernels_run(monkeypatch, capsys):
    monkeypatch.setenv("GPUBP_BACKEND", "numpy")
    monkeypatch.delenv("GPUBP_NUMBA", raising=False)
    assert get_backend() is FUSED and get_backend("numpy") is FUSED
    gpubp.show_config()
    assert "gpubp's numba kernels (numba" in capsys.readouterr().out
    monkeypatch.setenv("GPUBP_NUMBA", "0")
    assert get_backend() is NUMPY and NUMPY.fused is None
    gpubp.show_config()
    assert "the reference NumPy formulas (GPUBP_NUMBA=0)" in capsys.readouterr().out


def test_without_numba_the_reference_formulas_run_and_say_why(monkeypatch):
    monkeypatch.delenv("GPUBP_NUMBA", raising=False)
    monkeypatch.setattr(backend_module, "probe_numba", lambda: (None, "numba is not installed"))
    assert get_backend("numpy") is NUMPY
    assert "pip install numba" in backend_module.cpu_kernels_reason()
