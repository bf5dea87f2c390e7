"""The Python API's edges: float32's range, the lazy plotting module, what verbose says,
warnings' addresses, predicting in chunks, sparse input, tests that keep the
machine's environment."""

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import standin_installed
from sklearn.exceptions import ConvergenceWarning

import gpubp
from gpubp.estimators import MLPClassifier, MLPRegressor, predicting

pytestmark = pytest.mark.backends

HERE = Path(__file__).resolve().parent


def data(n=80, p=6, seed=0, density=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if density is not None:
        X[rng.random(X.shape) > density] = 0.0
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


# -- 13. float32's range ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "binary"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_probabilities_at_logits_of_plus_minus_1000_are_the_exact_limits(kind, dtype):
    """Output weights that give T = +-1000 (one hidden identity unit, z = x): finite
    probabilities and log-probabilities at their limits, log f = T - max T - log sum."""
    X = np.array([[1.0], [-1.0]])
    if kind == "multiclass":
        y, beta = np.arange(6) % 3, [[1000.0, -1000.0, 0.0]]
        P = [[1, 0, 0], [0, 1, 0]]
        log_P = [[0, -2000, -1000], [-2000, 0, -1000]]
    elif kind == "multilabel":
        y, beta = np.eye(3, dtype=int)[np.arange(6) % 3], [[1000.0, -1000.0, 0.0]]
        P = [[1, 0, 0.5], [0, 1, 0.5]]
        log_P = [[0, -1000, -np.log(2)], [-1000, 0, -np.log(2)]]
    else:
        y, beta = np.arange(6) % 2, [[1000.0]]
        P = [[0, 1], [1, 0]]
        log_P = [[-1000, 0], [0, -1000]]
    clf = MLPClassifier((1,), activation="identity", max_iter=1, dtype=dtype, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.linspace(-1, 1, 6)[:, None], y)
    clf.coefs_ = [np.ones((1, 1)), np.array(beta)]
    clf.intercepts_ = [np.zeros(1), np.zeros(len(beta[0]))]
    with np.errstate(over="raise", invalid="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(clf.predict_proba(X), P)
        np.testing.assert_allclose(clf.predict_log_proba(X), log_P, rtol=1e-7, atol=0)


def test_values_beyond_float32_are_an_input_error_that_suggests_float64():
    X, y = data()
    X[3, 2] = 1e39
    with pytest.raises(gpubp.InputError, match="beyond the range of float32.*dtype='float64'"):
        MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.raises(gpubp.InputError, match="y holds values beyond the range of float32"):
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(data()[0], np.full(80, 1e39))
    clf = MLPClassifier((4,), max_iter=50, random_state=0).fit(*data())
    with pytest.raises(gpubp.InputError, match="X holds values beyond the range of float32"):
        clf.predict_proba(X)
    wide = MLPClassifier((4,), max_iter=50, random_state=0, dtype="float64").fit(X, y)
    assert np.isfinite(wide.predict_proba(X)).all()


# -- 14. gpubp.plotting without importing it -------------------------------------------------------


@pytest.mark.backends("numba")  # a process's imports, whatever the backend
def test_plotting_is_a_lazy_submodule():
    code = (
        "import sys, gpubp; assert 'gpubp.plotting' not in sys.modules; "
        "print(gpubp.plotting.plot_loss_curves.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "plot_loss_curves", out.stderr
    with pytest.raises(AttributeError, match="no attribute 'plotter'"):
        gpubp.plotter  # noqa: B018


# -- 15. verbose says why training stopped; warnings point at the caller ---------------------------


@pytest.mark.parametrize(
    "params,reason,words",
    [
        (dict(max_iter=3), "max_iter", "max_iter=3 reached without converging"),
        (
            dict(max_iter=500, tol=10.0, n_iter_no_change=2),
            "no_improvement",
            "the training loss did not improve by tol=10.0 for 2 consecutive epochs",
        ),
        (
            dict(max_iter=500, tol=10.0, n_iter_no_change=2, early_stopping=True),
            "no_improvement",
            "the validation score did not improve",
        ),
        (dict(solver="lbfgs", max_iter=500), "converged", "lbfgs converged"),
        (dict(solver="lbfgs", max_iter=2), "not_converged", "lbfgs stopped without converging"),
    ],
)
def test_verbose_says_why_training_stopped(capsys, params, reason, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((4,), random_state=0, verbose=True, **params).fit(*data())
    err = capsys.readouterr().err
    assert clf.stop_reason_ == reason
    assert f"training stopped after {clf.n_iter_} " in err and words in err, err
    assert ("lbfgs:" if params.get("solver") == "lbfgs" else "epochs:") in err  # progress bar


def test_warnings_point_at_the_callers_line():
    X, y = data()
    with pytest.warns(ConvergenceWarning) as record:
        MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.warns(ConvergenceWarning) as lbfgs:
        MLPClassifier((4,), solver="lbfgs", max_iter=1).fit(X, y)
    with pytest.warns(UserWarning, match="batch_size") as clipped:
        MLPClassifier((4,), max_iter=1, batch_size=500).partial_fit(X, y, classes=[0, 1])
    for caught in (record, lbfgs, clipped):
        assert [Path(w.filename).name for w in caught] == [Path(__file__).name] * len(caught)


# -- 16. predicting in chunks ----------------------------------------------------------------


def test_predict_in_chunks_gives_the_same_answers(monkeypatch):
    X, y = data(n=500)
    clf = MLPClassifier((7, 5), max_iter=30, random_state=0).fit(X, y)
    whole = clf.predict_proba(X), clf.predict_log_proba(X), clf.predict(X)
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", 4 * 64 * (6 + 7 + 5 + 2 * 1))
    net, calls = clf.get_network(), []
    propagate = net.propagate
    monkeypatch.setattr(net, "propagate", lambda X: calls.append(len(X)) or propagate(X))
    chunked = clf.predict_proba(X), clf.predict_log_proba(X), clf.predict(X)
    assert calls == ([64] * 7 + [52]) * 3  # chunks of 64 rows, three predictions
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert chunked[0].shape == (500, 2) and chunked[1].shape == (500, 2)


@pytest.mark.gpu
def test_predicting_more_rows_than_the_device_holds_goes_in_chunks(monkeypatch):
    if not standin_installed():
        pytest.skip("sizes the stand-in's memory; a real GPU has its own")
    X, y = data(n=20000, p=50)
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=2, random_state=0, backend="cupy")
    with pytest.warns(ConvergenceWarning):
        reg.fit(X[:200], y[:200])
    monkeypatch.setenv("GPUBP_STANDIN_MEMORY", str(2 * 2**20))  # X is 4 MB in float32
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", 2**19)
    assert reg.predict(X).shape == (20000,)
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", 2**30)
    with pytest.raises(gpubp.DeviceMemoryError, match="predicting in smaller chunks"):
        reg.predict(X)


# -- 17. sparse input ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_x_trains_and_predicts_as_the_dense_x(fmt, solver):
    X, y = data(n=120, p=30, density=0.2)
    S = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    kw = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0, dtype="float64", solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense, sparse = MLPClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(S, y)
    for a, b in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(S), dense.predict_proba(X), rtol=1e-9)
    if solver != "lbfgs":
        dense.partial_fit(X, y)
        sparse.partial_fit(S, y)
        np.testing.assert_allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-9, atol=1e-12)


def test_sparse_gradients_are_the_dense_gradients():
    X, y = data(n=40, p=12, density=0.3)
    net = gpubp.MLP([12, 5, 3, 2], activation="tanh", dtype="float64", seed=1)
    Y = np.eye(2)[y]
    backend = net.backend
    dense = net.backprop_unchecked(backend.to_device(X), backend.to_device(Y), 1 / 40, 1e-3)
    sparse = net.backprop_unchecked(
        backend.to_device(sp.csr_matrix(X)), backend.to_device(Y), 1 / 40, 1e-3
    )
    grad = backend.xp.empty_like(net.theta)
    into = net.backprop_unchecked(
        backend.to_device(sp.csr_matrix(X)), backend.to_device(Y), 1 / 40, 1e-3, out=net.views(grad)
    )
    for (dW, db), (sW, sb), (oW, ob) in zip(dense.gradients, sparse.gradients, into.gradients):
        for a, b in ((dW, sW), (db, sb), (dW, oW), (db, ob)):
            np.testing.assert_allclose(backend.to_host(b), backend.to_host(a), rtol=1e-12)


# -- 18. tests that keep the machine's environment ------------------------------------------------


def test_subprocesses_in_the_tests_keep_the_environment():
    """A child given an emptied environment picks other BLAS kernels (OPENBLAS_CORETYPE) and
    differs in the last bit: every ``env=`` of a test's subprocess must start from
    os.environ."""
    offenders = []
    for path in sorted(HERE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "env" and not _starts_from_environ(kw.value, path):
                        offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def _starts_from_environ(value, path) -> bool:
    if isinstance(value, ast.Dict):  # {**os.environ, ...}
        return any(
            k is None and "environ" in ast.unparse(v) for k, v in zip(value.keys, value.values)
        )
    if isinstance(value, ast.Name):  # a variable built from os.environ in the same file
        text = path.read_text()
        return f"{value.id} = {{**os.environ" in text or f"{value.id} = dict(os.environ" in text
    return "environ" in ast.unparse(value)
