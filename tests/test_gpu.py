"""The same equations on CuPy and NumPy (run only where CuPy has a device)."""

import numpy as np
import pytest
from conftest import PAIRS, DLPackProducer, load_without_cupy, named_quantities, problem
from sklearn.exceptions import ConvergenceWarning

import gpubp
from gpubp.functions import ACTIVATIONS

pytestmark = pytest.mark.gpu

RTOL = {"float32": 1e-4, "float64": 1e-10}


def assert_close(got, expected, dtype, name):
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected), initial=0.0)) or 1.0
    rtol = RTOL[dtype]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_cupy_matches_numpy_quantity_by_quantity(activation, output, loss, dtype):
    import cupy

    sizes = [20, 32, 16, 5]
    X, Y = problem(sizes, output, N=64)
    kw = dict(weight_decay=0.01, dtype=dtype, seed=11)
    gpu = gpubp.MLP(sizes, activation, output, loss, backend="cupy", **kw)
    cpu = gpubp.MLP(sizes, activation, output, loss, backend="numpy", **kw)
    for (Wg, bg), (Wc, bc) in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_array_equal(Wg, Wc)  # same seed, same starting weights
        np.testing.assert_array_equal(bg, bc)

    bp = gpu.backprop(X, Y)
    assert isinstance(bp.loss, cupy.ndarray) and bp.loss.shape == ()
    for name, (got, expected) in named_quantities(bp, cpu.backprop(X, Y)).items():
        assert isinstance(got, cupy.ndarray), name
        assert got.dtype == expected.dtype == np.dtype(dtype), name
        assert_close(cupy.asnumpy(got), expected, dtype, name)
    assert_close(gpubp.to_numpy(gpu.forward(X)), cpu.forward(X), dtype, "forward")


@pytest.mark.parametrize("output,loss", PAIRS)
def test_a_stack_on_cupy_matches_numpy_with_its_own_scales_and_case_weights(output, loss):
    """Each network of a stack its own biases, loss scale, decay and case weights: the
    fused output kernel's per-network reads (bias, scale, shared targets)."""
    sizes, R = [12, 9, 5], 3
    X, Y = problem(sizes, output, N=40)
    rng = np.random.default_rng(3)
    w = rng.uniform(0.0, 2.0, size=(R, 40)).astype(np.float32)
    scale = np.array([0.5, 1.0, 2.0]) / w.sum(axis=1)
    decay = np.array([0.0, 1e-2, 1e-1])
    kw = dict(seed=[4, 5, 6], n_networks=R)
    gpu = gpubp.MLP(sizes, "tanh", output, loss, backend="cupy", **kw)
    cpu = gpubp.MLP(sizes, "tanh", output, loss, backend="numpy", **kw)
    theta = rng.normal(size=cpu.theta.shape).astype(np.float32)  # biases unlike each other
    gpu.set_theta(theta)
    cpu.set_theta(theta)
    got = gpu.backprop_unchecked(
        *(gpu.backend.to_device(a, dtype=gpu._xp_dtype) for a in (X, Y)), scale, decay,
        gpu.backend.to_device(w),
    )  # fmt: skip
    want = cpu.backprop_unchecked(X.astype(np.float32), Y.astype(np.float32), scale, decay, w)
    for name, (g, e) in named_quantities(got, want).items():
        assert_close(gpubp.to_numpy(g), e, "float32", name)


def test_inputs_already_on_the_gpu_and_labels_work():
    import cupy

    net = gpubp.MLP([4, 8, 3], "relu", backend="cupy", seed=0)
    X = cupy.asarray(np.random.default_rng(0).normal(size=(10, 4)), dtype=cupy.float32)
    labels = cupy.asarray([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    loss, grads = net.loss_and_gradients(X, labels)
    loss_onehot, _ = net.loss_and_gradients(X, cupy.eye(3, dtype=cupy.float32)[labels])
    assert float(loss) == pytest.approx(float(loss_onehot), rel=1e-6)
    assert all(isinstance(g, cupy.ndarray) for pair in grads for g in pair)


def test_weights_move_between_backends():
    gpu = gpubp.MLP([3, 5, 2], backend="cupy", seed=1)
    cpu = gpubp.MLP([3, 5, 2], backend="numpy", seed=2)
    cpu.set_weights(list(zip(gpu.W, gpu.b)))  # CuPy arrays into a NumPy network
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(gpubp.to_numpy(gpu.forward(X)), cpu.forward(X), rtol=1e-5)


def test_gradcheck_on_a_gpu_network():
    net = gpubp.MLP([3, 4, 2], "tanh", "softmax", dtype="float64", backend="cupy", seed=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    assert gpubp.gradcheck(net, X, np.array([0, 1, 1, 0, 1])).max_rel_error < 1e-6


def test_auto_picks_cupy_and_show_config_names_the_gpu(monkeypatch, capsys):
    monkeypatch.delenv("GPUBP_BACKEND", raising=False)
    assert gpubp.get_backend().name == "cupy"
    gpubp.show_config()
    out = capsys.readouterr().out
    assert "GPU" in out and "GiB" in out


def test_estimator_trains_on_the_gpu_and_matches_numpy():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    kw = dict(
        hidden_layer_sizes=(32,),
        solver="sgd",
        max_iter=5,
        random_state=0,
        dtype="float64",
        shuffle=True,
    )
    gpu = gpubp.MLPClassifier(backend="cupy", **kw).fit(X, y)
    cpu = gpubp.MLPClassifier(backend="numpy", **kw).fit(X, y)
    assert gpu.backend_ == "cupy" and isinstance(gpu.coefs_[0], np.ndarray)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
    P = gpu.predict_proba(X)
    assert isinstance(P, np.ndarray)
    np.testing.assert_allclose(P, cpu.predict_proba(X), rtol=1e-8, atol=1e-12)


def test_gpu_inputs_are_taken_without_a_host_copy():
    import cupy

    X = cupy.random.default_rng(0).standard_normal((200, 6), dtype=cupy.float32)
    y = (X[:, 0] > 0).astype(cupy.int64)
    kw = dict(hidden_layer_sizes=(8,), max_iter=100, learning_rate_init=0.01, random_state=0)
    clf = gpubp.MLPClassifier(backend="cupy", **kw)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.n_features_in_ == 6 and isinstance(clf.predict(X), np.ndarray)
    assert clf.score(X, y) > 0.9  # a device y is scored on the host
    reg = gpubp.MLPRegressor(backend="cupy", **kw)
    with pytest.warns(ConvergenceWarning):  # 100 epochs: R^2 0.99 on the CPU
        reg.fit(X, X[:, 0] * 2)
    on_cpu = gpubp.MLPRegressor(backend="numpy", **kw)
    with pytest.warns(ConvergenceWarning):
        on_cpu.fit(X.get(), X.get()[:, 0] * 2)
    score = reg.score(X, X[:, 0] * 2)
    assert score > 0.95 and score == pytest.approx(on_cpu.score(X.get(), X.get()[:, 0] * 2), 1e-4)
    with pytest.raises(ValueError, match="NaN or infinity"):
        clf.predict(cupy.full((2, 6), cupy.nan, dtype=cupy.float32))


def test_a_model_trained_on_the_gpu_pickles_and_saves_as_numpy(tmp_path):
    import pickle

    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=100, n_features=5, random_state=0)
    clf = gpubp.MLPClassifier((8,), max_iter=10, backend="cupy", random_state=0).fit(X, y)
    back = load_without_cupy(pickle.dumps(clf))  # the pickle must not need CuPy to load
    back.set_params(backend="numpy")
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    gpubp.save(clf, tmp_path / "m.safetensors")
    on_cpu = gpubp.load(tmp_path / "m.safetensors", backend="numpy")
    np.testing.assert_allclose(on_cpu.predict_proba(X), clf.predict_proba(X), rtol=1e-5)


@pytest.mark.parametrize("ensemble", ["average", "bagging"])
def test_a_stack_trained_on_the_gpu_pickles_and_saves_in_a_pipeline_as_numpy(tmp_path, ensemble):
    """A stack's record keeps the weights of its stopped networks on the device: a pickle
    and a pipeline's skops file take host copies, and load without CuPy's types."""
    import pickle

    import skops.io
    from sklearn.datasets import make_classification
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=100, n_features=5, random_state=0)
    kw = dict(max_iter=4, n_init=2, ensemble=ensemble, backend="cupy", random_state=0)
    with pytest.warns(ConvergenceWarning):
        pipe = make_pipeline(StandardScaler(), gpubp.MLPClassifier((8,), **kw)).fit(X, y)
    want = pipe.predict_proba(X)
    back = load_without_cupy(pickle.dumps(pipe))
    back.set_params(mlpclassifier__backend="numpy")
    np.testing.assert_allclose(back.predict_proba(X), want, rtol=1e-5)
    gpubp.save(pipe, tmp_path / "m.skops")
    assert not any("cupy" in t for t in skops.io.get_untrusted_types(file=tmp_path / "m.skops"))
    on_cpu = gpubp.load(tmp_path / "m.skops", backend="numpy")
    np.testing.assert_allclose(on_cpu.predict_proba(X), want, rtol=1e-5)


def test_partial_fit_and_score_take_targets_on_the_gpu():
    """Every call into scikit-learn gets host arrays, whatever the caller passed."""
    import cupy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    Y = np.c_[X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0].astype(np.int64)  # multi-label
    w = rng.uniform(0.5, 1.5, size=80)
    dev = cupy.asarray
    for targets, classes in ((y, np.arange(3)), (Y, np.arange(3))):
        kw = dict(hidden_layer_sizes=(8,), random_state=0, backend="cupy")
        on_gpu, on_host = gpubp.MLPClassifier(**kw), gpubp.MLPClassifier(**kw)
        for _ in range(3):
            on_gpu.partial_fit(
                dev(X), dev(targets), classes=None if classes is None else dev(classes)
            )
            on_host.partial_fit(X, targets, classes=classes)
        np.testing.assert_array_equal(on_gpu.predict(X), on_host.predict(X))
        assert on_gpu.score(dev(X), dev(targets), dev(w)) == on_host.score(X, targets, w)
    reg = gpubp.MLPRegressor(hidden_layer_sizes=(8,), random_state=0, backend="cupy")
    reg.partial_fit(dev(X), dev(X[:, 0]), dev(w))
    assert reg.score(dev(X), dev(X[:, 0]), dev(w)) == reg.score(X, X[:, 0], w)


def test_gpu_tensors_of_other_libraries_as_x_and_y():
    """What a PyTorch or JAX GPU tensor offers: DLPack on a CUDA device."""
    import cupy

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    X_t, y_t = DLPackProducer(cupy.asarray(X)), DLPackProducer(cupy.asarray(y))
    assert np.array_equal(gpubp.to_numpy(y_t), y)
    kw = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, backend="cupy")
    with pytest.warns(ConvergenceWarning):
        clf = gpubp.MLPClassifier(**kw).fit(X_t, y_t)
    with pytest.warns(ConvergenceWarning):
        ref = gpubp.MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))
    assert clf.score(X_t, y_t) == ref.score(X, y)


@pytest.mark.parametrize("solver", ["plain", "nesterov", "momentum", "adam"])
def test_a_stacks_optimiser_steps_on_cupy_take_each_networks_rate(solver):
    """(R, P) updates with one rate per network (the fused steps read them by row)."""
    import cupy

    from gpubp import kernels
    from gpubp.optim import SGD, Adam

    rng = np.random.default_rng(1)
    theta0 = rng.normal(size=(3, 7)).astype(np.float32)
    grads = [rng.normal(size=(3, 7)).astype(np.float32) for _ in range(3)]
    rates = [0.1, 0.01, 0.5]

    def make(xp, fused):
        theta = xp.asarray(theta0)
        if solver == "adam":
            return theta, Adam(xp, theta, rates, fused=fused)
        momentum = 0.0 if solver == "plain" else 0.9
        opt = SGD(xp, theta, rates, momentum=momentum, nesterov=solver == "nesterov", fused=fused)
        return theta, opt

    (t1, o1), (t2, o2) = make(cupy, kernels), make(np, None)
    for g in grads:
        o1.step(t1, cupy.asarray(g))
        o2.step(t2, g.copy())
    np.testing.assert_allclose(cupy.asnumpy(t1), t2, rtol=1e-5, atol=1e-6)
