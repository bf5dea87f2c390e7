"""Training steps as CUDA graphs (``gpubp.graphs``) and direct cuBLAS products.

On the CuPy stand-in a "replay" runs the step's Python code again, so the graph's
device-side bookkeeping (step counter, row gather, rate table, loss sum) is checked
against the one-kernel-at-a-time steps; on a real device (``cuda``) the same tests
run captured graphs, and the cuBLAS products are checked against CuPy's.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import gpubp
from gpubp import graphs
from gpubp.optim import SGD, Adam

pytestmark = pytest.mark.gpu

SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0, learning_rate_init=0.1),
    "nesterov": dict(solver="sgd", momentum=0.9, learning_rate="invscaling"),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}


def digits_like(n=203, p=12, K=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0.3)
    return X, y % K


def fit(monkeypatch, graphs_on: bool, epochs=3, backend="cupy", **kw):
    monkeypatch.setenv(graphs.ENV_VAR, "1" if graphs_on else "0")
    X, y = digits_like()
    est = gpubp.MLPClassifier(
        hidden_layer_sizes=(16, 8),
        batch_size=32,  # 6 full minibatches and a partial one of 11 cases
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=1000,
        random_state=0,
        backend=backend,
        alpha=1e-3,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_graphed_steps_train_exactly_as_single_kernels(monkeypatch, solver):
    on = fit(monkeypatch, True, **SOLVERS[solver])
    off = fit(monkeypatch, False, **SOLVERS[solver])
    steps = graphs.latest(on.get_network())
    assert steps is not None, "the graphed path did not run"
    assert steps.n_steps == 6
    np.testing.assert_array_equal(on.loss_curve_, off.loss_curve_)
    for a, b in zip(on.coefs_ + on.intercepts_, off.coefs_ + off.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert on._optimizer.__dict__.get("t") == off._optimizer.__dict__.get("t")


CHANGES = {  # a parameter baked into the captured step, changed between partial fits
    "penalty": (dict(), dict(penalty="weight_elimination")),
    "w0": (dict(penalty="weight_elimination"), dict(w0=0.7)),
    "alpha": (dict(), dict(alpha=0.05)),
}


@pytest.mark.parametrize("captured", [False, True], ids=["replayed", "captured"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_step_parameter_is_a_new_graph_and_trains_as_single_kernels(
    monkeypatch, request, change, captured
):
    """A captured step has J's kernel and the decay baked in: changing the penalty, w0 or
    alpha between partial fits on the same device X captures a new step, which trains as
    the one-kernel-at-a-time path. ``captured``: on the stand-in, through the fake cuBLAS,
    so that the steps are captured and replayed with their scalars as captured."""
    import cupy

    if captured:
        request.getfixturevalue("fake_cublas")

    X, y = digits_like()
    X = cupy.asarray(X)  # the same X for every call: only the parameter changes the key
    first, then = CHANGES[change]
    results = {}
    for on in (True, False):
        monkeypatch.setenv(graphs.ENV_VAR, "1" if on else "0")
        est = gpubp.MLPClassifier((8,), batch_size=32, alpha=0.5, w0=0.3, random_state=0,
                                  backend="cupy", **first)  # fmt: skip
        est.partial_fit(X, y, classes=np.arange(4))
        before = graphs.latest(est.get_network())
        est.set_params(**then).partial_fit(X, y)
        after = graphs.latest(est.get_network())
        assert (after is not None and after is not before) == on
        results[on] = est
    np.testing.assert_array_equal(results[True].loss_curve_, results[False].loss_curve_)
    for a, b in zip(results[True].coefs_, results[False].coefs_):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_reuses_the_captured_step(monkeypatch):
    import cupy

    monkeypatch.setenv(graphs.ENV_VAR, "1")
    X, y = digits_like()
    X = cupy.asarray(X)  # on the device already: the same X for every call
    est = gpubp.MLPClassifier(hidden_layer_sizes=(8,), batch_size=32, backend="cupy")
    est.partial_fit(X, y, classes=np.arange(4))
    first = graphs.latest(est.get_network())
    est.partial_fit(X, y)
    assert graphs.latest(est.get_network()) is first
    assert first.launch is not None


def test_a_stack_of_networks_runs_graphed_as_alone(monkeypatch):
    from gpubp.epoch import run_epoch
    from gpubp.train import Data, Objective

    X, y = digits_like(n=96)
    Y = np.eye(4, dtype=np.float32)[y]
    results = {}
    for on in (True, False):
        monkeypatch.setenv(graphs.ENV_VAR, "1" if on else "0")
        net = gpubp.MLP([12, 8, 4], "tanh", backend="cupy", seed=[1, 2, 3], n_networks=3)
        xp = net.backend.xp
        opt = Adam(xp, net.theta, learning_rate_init=[0.01, 0.02, 0.03], fused=net.backend.fused)
        data = Data(net.backend.to_device(X), net.backend.to_device(Y))
        order = np.random.default_rng(0).permutation(96)
        objective = Objective(1.0, np.array([0.0, 1e-3, 1e-2]))
        total, steps = run_epoch(net, opt, data, objective, 20, order)
        assert steps == 5
        assert (graphs.latest(net) is not None) == on
        results[on] = (gpubp.to_numpy(total), net.get_weights())
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-6)
    for (Wa, ba), (Wb, bb) in zip(results[True][1], results[False][1]):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ba, bb, rtol=1e-5, atol=1e-7)


def test_case_weights_and_one_minibatch_take_the_single_kernel_path(monkeypatch):
    monkeypatch.setenv(graphs.ENV_VAR, "1")
    X, y = digits_like(n=64)
    est = gpubp.MLPClassifier(hidden_layer_sizes=(8,), batch_size=32, max_iter=1, backend="cupy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=np.ones(64))
        assert graphs.latest(est.get_network()) is None
        est.set_params(batch_size=64).fit(X, y)
        assert graphs.latest(est.get_network()) is None


def test_optimiser_rates_are_the_rates_its_steps_use():
    theta = np.zeros(3)
    adam = Adam(np, theta, learning_rate_init=0.01)
    ahead = adam.rates(4)
    for j in range(4):
        adam.t += 1
        assert ahead[j] == adam._gamma(adam.t)
    sgd = SGD(np, theta, learning_rate_init=[0.1, 0.2])
    np.testing.assert_array_equal(sgd.rates(2), [[0.1, 0.2], [0.1, 0.2]])
    adam.advance(5)
    assert adam.t == 9


def _rand(xp, shape, seed):
    return xp.asarray(np.random.default_rng(seed).normal(size=shape))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_cublas_products_match_cupy(dtype):
    import cupy

    from gpubp import kernels

    direct, why = kernels.direct_cublas()
    assert direct is not None, why
    cases = _products(cupy, dtype)
    for name, (a, b) in cases.items():
        got = direct.matmul(a, b)
        assert got is not None, name
        want = cupy.matmul(a, b)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got.get(), want.get(), rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.cuda
def test_tf32_products_are_tf32_and_float32_ones_are_not():
    import cupy

    from gpubp import kernels

    a = _rand(cupy, (256, 512), 0).astype(cupy.float32)
    b = _rand(cupy, (512, 256), 1).astype(cupy.float32)
    exact = a.get().astype(np.float64) @ b.get().astype(np.float64)

    def error(c):
        return np.linalg.norm(c.get() - exact) / np.linalg.norm(exact)

    full = error(kernels.matmul(a, b))
    tf32 = error(kernels.matmul(a, b, precision="tf32"))
    assert full < 1e-6
    assert 1e-5 < tf32 < 3e-3


@pytest.mark.cuda
def test_the_step_is_captured_on_a_device(monkeypatch):
    est = fit(monkeypatch, True, solver="adam", epochs=2)
    steps = graphs.latest(est.get_network())
    assert steps.why_not_captured == ""
    assert steps.graph is not None


def _products(xp, dtype):
    """(a, b) pairs in every layout a network's products use, and the bias gradients'."""
    Z = _rand(xp, (64, 33), 0).astype(dtype)
    D = _rand(xp, (64, 17), 1).astype(dtype)
    theta = _rand(xp, (3, 33 * 17 + 5), 2).astype(dtype)
    W = theta[:, : 33 * 17].reshape(3, 33, 17)  # a stack's weights: rows of theta
    Zs = _rand(xp, (3, 64, 33), 3).astype(dtype)
    ones = xp.ones((1, 64), dtype=dtype)
    return {
        "Z W": (Z, W[0]),
        "Z^T D": (Z.T, D),
        "D W^T": (D, W[0].T),
        "X W, shared X": (Z, W),
        "Z W, stacked": (Zs, W),
        "Z^T D, stacked": (Zs.swapaxes(-1, -2), xp.stack([D] * 3)),
        "D W^T, stacked": (xp.stack([D] * 3), W.swapaxes(-1, -2)),
        "1^T D": (ones, D),
        "1^T D, stacked": (ones, xp.stack([D, 2 * D, 3 * D])),
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_products_give_the_products_on_the_fake_cublas(fake_cublas, dtype):
    import cupy

    from gpubp import kernels

    direct, _ = kernels.direct_cublas()
    for name, (a, b) in _products(cupy, dtype).items():
        got = direct.matmul(a, b)
        assert got is not None, name
        want = a.get().astype(np.float64) @ b.get().astype(np.float64)
        np.testing.assert_allclose(got.get(), want, rtol=1e-6, atol=1e-6, err_msg=name)
    assert len(fake_cublas.calls) == 9


@pytest.mark.parametrize("stacked", [False, True])
def test_bias_gradients_are_products_with_a_row_of_ones(fake_cublas, stacked):
    """db written into its place in the flat gradient (a strided row of a stack's),
    through cuBLAS, and nothing else of the gradient touched."""
    import cupy

    from gpubp import kernels

    R, N, K, P = 3, 37, 5, 11
    D = _rand(cupy, (R, N, K) if stacked else (N, K), 4).astype(cupy.float32)
    grad = cupy.full((R, P) if stacked else (P,), np.nan, dtype=cupy.float32)
    db = grad[..., 2 : 2 + K]
    assert kernels.column_sums(D, out=db) is db
    assert fake_cublas.calls[-1][0] == ("batched" if stacked else "gemm")
    np.testing.assert_allclose(db.get(), D.get().sum(axis=-2), rtol=1e-5)
    rest = np.delete(grad.get(), np.s_[2 : 2 + K], axis=-1)
    assert np.isnan(rest).all()
    np.testing.assert_allclose(kernels.column_sums(D).get(), D.get().sum(axis=-2), rtol=1e-5)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_steps_through_the_direct_products_train_as_numpy(monkeypatch, fake_cublas, solver):
    """Every product of the graphed step (and the partial minibatch's) through
    ``gpubp.cublas``'s arguments, as cuBLAS reads them: the NumPy backend's training."""
    on = fit(monkeypatch, True, **SOLVERS[solver])
    steps = graphs.latest(on.get_network())
    assert steps.graph is not None, steps.why_not_captured  # captured: replays of a record
    assert fake_cublas.calls
    ref = fit(monkeypatch, True, backend="numpy", **SOLVERS[solver])
    np.testing.assert_allclose(on.loss_curve_, ref.loss_curve_, rtol=1e-5)
    for a, b in zip(on.coefs_ + on.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_captured_step_is_replayed_as_one_launch(monkeypatch, fake_cublas):
    """Through the fake cuBLAS the stand-in captures: each full minibatch after the first
    is one launch of the graph, not the step's kernels one by one."""
    import cupy

    launches = {}
    for on in (True, False):
        with cupy.counting() as counts:
            fit(monkeypatch, on, epochs=2, **SOLVERS["adam"])
        launches[on] = counts.launches
    # 12 full minibatches: 11 replays in place of about 30 launches each
    assert launches[False] - launches[True] > 11 * 20, launches
