"""MLPRegressor(loss="poisson"): scikit-learn 1.7's loss and log link, carried through the
model file, ``to_sklearn``, ONNX, the CV form and a stack (the steps against scikit-learn's
are in test_optimizers.py)."""

import numpy as np
import pytest
from sklearn.metrics import mean_poisson_deviance

import gpubp
from gpubp import MLP


def counts(n=120, K=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, rng.poisson(np.exp(X[:, :K] / 2)).astype(float)


def test_the_loss_is_half_the_poisson_deviance_and_delta_is_f_minus_y():
    X, Y = counts(n=30)
    Y[:5] = 0  # y log y = 0 at y = 0
    net = MLP([4, 5, 2], "tanh", "exp", dtype="float64", backend="numpy", seed=0)
    F = net.forward(X)
    half_deviance = sum(mean_poisson_deviance(Y[:, k], F[:, k]) / 2 for k in range(2))
    assert net.loss == "poisson"
    assert net.compute_loss(X, Y) == pytest.approx(half_deviance, rel=1e-12)
    _, T = net.propagate(X)
    _, _, delta = net.evaluate(T, Y)
    np.testing.assert_allclose(delta, F - Y, rtol=1e-12)
    assert gpubp.gradcheck(net, X, Y).max_rel_error < 1e-6


def test_negative_targets_are_refused_where_scikit_learn_takes_them():
    X, Y = counts()
    Y[3, 1] = -0.5
    with pytest.raises(ValueError, match=r"loss='poisson' needs y >= 0.*1 negative.*-0\.5"):
        gpubp.MLPRegressor(loss="poisson", max_iter=2).fit(X, Y)
    gpubp.MLPRegressor(loss="squared_error", max_iter=2).fit(X, Y)  # squared error takes it


def test_a_poisson_model_predicts_alike_from_its_file_sklearn_and_onnx(tmp_path):
    X, Y = counts()
    est = gpubp.MLPRegressor(loss="poisson", hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    est.fit(X, Y)
    want = est.predict(X)
    assert est.out_activation_ == "exp" and (want > 0).all()
    np.testing.assert_allclose(want, np.exp(est.get_network().propagate(X)[1]), rtol=1e-6)
    gpubp.save(est, tmp_path / "m.safetensors")
    loaded = gpubp.load(tmp_path / "m.safetensors")
    assert loaded.loss == "poisson"
    np.testing.assert_array_equal(loaded.predict(X), want)
    np.testing.assert_allclose(est.to_sklearn().predict(X), want, rtol=1e-6)
    pytest.importorskip("onnxruntime")
    import onnxruntime

    session = onnxruntime.InferenceSession(gpubp.export_onnx(est).SerializeToString())
    got = session.run(None, {"X": X.astype(np.float32)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_the_cv_form_and_a_stack_train_the_poisson_loss():
    X, Y = counts(n=150)
    cv = gpubp.MLPRegressorCV(
        loss="poisson",
        alphas=[1e-4, 1.0],
        cv=3,
        hidden_layer_sizes=(6,),
        max_iter=20,
        learning_rate_init=0.03,
        n_init=2,
        random_state=0,
    ).fit(X, Y)
    best = cv.best_estimator_
    assert best.loss == "poisson" and best.out_activation_ == "exp"
    assert (cv.predict(X) > 0).all()
    # it learned the rates: the half deviance of its predictions beats the mean's
    F, mean = cv.predict(X), np.broadcast_to(Y.mean(0), Y.shape)
    for k in range(2):
        assert mean_poisson_deviance(Y[:, k], F[:, k]) < 0.9 * mean_poisson_deviance(
            Y[:, k], mean[:, k]
        )
