"""Deploying a model: scikit-learn's own MLP (to_sklearn) and ONNX (export_onnx) predict
as gpubp does."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn import neural_network
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gpubp
from gpubp import MLPClassifier, MLPClassifierCV, MLPRegressor

pytestmark = pytest.mark.backends

ACTIVATIONS = ["identity", "logistic", "sigmoid", "tanh", "relu"]
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X.astype(np.float32), y


def targets(task, y):
    """(targets, estimator class) of each kind of output gpubp trains."""
    names = np.array([f"class {k}" for k in range(10)])
    return {
        "multiclass": (names[y], MLPClassifier),  # softmax, text labels
        "binary": (np.where(y > 4, "big", "small"), MLPClassifier),  # sigmoid, one output
        "multilabel": (np.c_[y > 4, y % 2, y % 3 == 0], MLPClassifier),  # sigmoid, K outputs
        "regression": (np.c_[y, y % 3].astype(float), MLPRegressor),  # identity, K = 2
    }[task]


def fitted(task, X, y, **params):
    Y, kind = targets(task, y)
    params = {"hidden_layer_sizes": (12,), "max_iter": 15, "random_state": 0, **params}
    return kind(**params).fit(X, Y), Y


def agree_on_labels(ours, theirs, P):
    """Labels equal wherever the probabilities are not a near tie (rounding may break one)."""
    top = np.sort(P, axis=1)
    clear = (top[:, -1] - top[:, -2] > 1e-5) & (np.abs(P - 0.5) > 1e-5).all(axis=1)
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    same = (ours == theirs) if ours.ndim == 1 else (ours == theirs).all(axis=1)
    assert same[clear].all() and clear.mean() > 0.9


# -- to_sklearn ----------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression"])
def test_sklearn_predicts_as_gpubp(digits, activation, task):
    X, y = digits
    est, Y = fitted(task, X, y, activation=activation)
    sk = est.to_sklearn()
    expected = neural_network.MLPRegressor if task == "regression" else neural_network.MLPClassifier
    assert type(sk) is expected
    assert sk.activation == ("logistic" if activation == "sigmoid" else activation)
    if task == "regression":
        ours, theirs = est.predict(X), sk.predict(X)
        np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6 * np.abs(ours).max())
        assert sk.score(X, Y) == pytest.approx(est.score(X, Y), abs=1e-6)
        return
    P = est.predict_proba(X)
    np.testing.assert_allclose(sk.predict_proba(X), P, rtol=0, atol=TOLERANCE["float32"])
    agree_on_labels(est.predict(X), sk.predict(X), P)
    np.testing.assert_array_equal(sk.classes_, est.classes_)
    assert sk.score(X, Y) == pytest.approx(est.score(X, Y), abs=0.002)


@pytest.mark.parametrize("solver", ["adam", "sgd", "gd", "lbfgs"])
def test_float64_models_agree_to_float64_rounding(digits, solver):
    X, y = digits
    est, _ = fitted("multiclass", X, y, solver=solver, dtype="float64")
    sk = est.to_sklearn()
    assert sk.coefs_[0].dtype == np.float64
    P = est.predict_proba(X)
    np.testing.assert_allclose(sk.predict_proba(X), P, rtol=0, atol=TOLERANCE["float64"])
    np.testing.assert_array_equal(sk.predict(X), est.predict(X))


def test_the_copy_is_independent_valid_and_trains_on(digits):
    X, y = digits
    est, Y = fitted("multiclass", X, y, solver="gd", random_state=np.random.default_rng(0))
    sk = est.to_sklearn()
    before = sk.predict_proba(X)
    est.partial_fit(X, Y)  # gpubp's weights move; the copy's stay
    np.testing.assert_array_equal(sk.predict_proba(X), before)
    assert sk.solver == "sgd" and sk.momentum == 0.0 and sk.random_state is None
    sk._validate_params()  # every parameter is one scikit-learn accepts
    again = pickle.loads(pickle.dumps(sk))
    np.testing.assert_array_equal(again.predict_proba(X), before)
    sk.set_params(warm_start=True, max_iter=2, solver="adam").fit(X, Y)
    assert sk.n_iter_ == est.n_iter_ - 1 + 2  # went on from the copied weights and count


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_warm_started_copy_goes_on_where_no_epoch_improves(digits, early_stopping):
    """With tol so large that no epoch improves, scikit-learn's warm start counts epochs
    without improvement from the copy's count (and, with early stopping, keeps the best
    weights from the copy's): the copy carries that state for every stochastic solver."""
    X, y = digits
    kw = dict(max_iter=4, random_state=0, early_stopping=early_stopping)
    est = MLPClassifier((8,), **kw).fit(X, y)
    sk = est.to_sklearn().set_params(warm_start=True, max_iter=3, tol=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)
    assert sk.n_iter_ == 3 and sk._no_improvement_count == 3
    if early_stopping:
        assert len(sk.validation_scores_) == len(est.validation_scores_) + 3


def test_feature_names_carry_over(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"pixel {i}" for i in range(64)])
    est = MLPClassifier((8,), max_iter=5, random_state=0).fit(frame, y)
    sk = est.to_sklearn()
    assert list(sk.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(sk.predict(frame), est.predict(frame))


def test_what_scikit_learn_cannot_hold_is_refused(digits):
    X, y = digits
    with pytest.raises(NotFittedError):
        MLPClassifier().to_sklearn()
    average = MLPClassifier((8,), max_iter=5, n_init=3, ensemble="average", random_state=0)
    with pytest.raises(gpubp.InputError, match="averages 3 networks.*ensemble='best'"):
        average.fit(X, y).to_sklearn()
    best = MLPClassifier((8,), max_iter=5, n_init=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(best.to_sklearn().predict_proba(X), best.predict_proba(X), atol=1e-6)


def test_a_cross_validated_model_converts_its_best_estimator(digits):
    X, y = digits
    cv = MLPClassifierCV(hidden_layer_sizes=(8,), alphas=[1e-4, 1e-1], max_iter=8, random_state=0)
    cv.fit(X, y)
    sk = cv.to_sklearn()
    assert sk.alpha == cv.alpha_ and type(sk) is neural_network.MLPClassifier
    np.testing.assert_allclose(sk.predict_proba(X), cv.predict_proba(X), atol=1e-6)
    unrefitted = MLPClassifierCV(hidden_layer_sizes=(4,), alphas=[1e-4], max_iter=2, refit=False)
    with pytest.raises(gpubp.InputError, match="refit=True"):
        unrefitted.fit(X, y).to_sklearn()


# -- ONNX ------------------------------------------------------------------------------


def onnx_run(onx, X):
    """{output name: array} of an ONNX model run by ONNX Runtime on the CPU."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X})))


@pytest.fixture(scope="module")
def onnx_available():
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression"])
def test_onnx_predicts_as_gpubp(onnx_available, digits, diabetes, task, dtype):
    """Digits for the classifiers, diabetes for the regressor: to 1e-5 (float64: 1e-12)."""
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    X, y = digits
    if task == "regression":
        X, y_reg = diabetes
        est = MLPRegressor(
            hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200, random_state=0, dtype=dtype
        )
        est.fit(X, np.c_[y_reg, y_reg / 2 - 50])
        out = onnx_run(gpubp.export_onnx(est), X.astype(dtype))
        assert list(out) == ["variable"] and out["variable"].shape == (len(X), 2)
        ours = est.predict(X)
        assert np.abs(out["variable"] - ours).max() <= tolerance * np.abs(ours).max()
        return
    est, _ = fitted(task, X, y, hidden_layer_sizes=(32,), max_iter=30, dtype=dtype)
    out = onnx_run(gpubp.export_onnx(est), X.astype(dtype))
    P = est.predict_proba(X)
    assert out["probabilities"].shape == P.shape and out["probabilities"].dtype == dtype
    np.testing.assert_allclose(out["probabilities"], P, rtol=0, atol=tolerance)
    labels = out["label"]
    if task == "multilabel":
        assert labels.shape == P.shape and labels.dtype == np.int64
    agree_on_labels(est.predict(X), labels, P)


def test_onnx_multilabel_with_two_labels(onnx_available, digits):
    """skl2onnx's converter takes two labels for a binary problem."""
    X, y = digits
    Y = np.c_[y > 4, y % 2]
    clf = MLPClassifier((16,), max_iter=20, random_state=0).fit(X, Y)
    out = onnx_run(gpubp.export_onnx(clf), X)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
    agree_on_labels(clf.predict(X), out["label"], clf.predict_proba(X))


def test_one_output_regression_and_integer_classes(onnx_available, digits, diabetes):
    X, y = diabetes
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0)
    out = onnx_run(gpubp.export_onnx(est.fit(X, y)), X)["variable"]
    assert out.shape == (len(X), 1)
    assert np.abs(out[:, 0] - est.predict(X)).max() <= 1e-5 * np.abs(y).max()
    X, y = digits
    clf = MLPClassifier((16,), max_iter=20, random_state=0).fit(X, y * 100 - 300)
    out = onnx_run(gpubp.export_onnx(clf), X)
    agree_on_labels(clf.predict(X), out["label"], clf.predict_proba(X))


def test_onnx_of_float64_pipelines_and_cv_models(onnx_available, digits, diabetes, tmp_path):
    X, y = digits
    clf = MLPClassifier((16,), max_iter=20, random_state=0, dtype="float64").fit(X, y)
    out = onnx_run(gpubp.export_onnx(clf, tmp_path / "m.onnx"), X.astype(np.float64))
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), rtol=0, atol=1e-12)
    onnx = pytest.importorskip("onnx")
    assert onnx.load(tmp_path / "m.onnx").graph.input[0].name == "X"
    X, y = diabetes
    pipe = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0)
    ).fit(X, y)
    out = onnx_run(gpubp.export_onnx(pipe), X)["variable"][:, 0]
    assert np.abs(out - pipe.predict(X)).max() <= 1e-5 * np.abs(y).max()
    X, y = digits
    cv = MLPClassifierCV(hidden_layer_sizes=(8,), alphas=[1e-4, 1e-2], max_iter=8, random_state=0)
    out = onnx_run(gpubp.export_onnx(cv.fit(X, y), zipmap=True), X)
    maps = out["output_probability"]
    assert isinstance(maps, list) and set(maps[0]) == set(range(10))
    np.testing.assert_array_equal(out["output_label"], cv.predict(X))


def test_skl2onnx_converts_a_pipeline_once_registered(onnx_available, digits):
    from skl2onnx import to_onnx

    from gpubp.onnx_export import register

    X, y = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=10, random_state=0))
    pipe.fit(X, y)
    register()
    out = onnx_run(to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(X), atol=1e-5)


def test_what_onnx_cannot_carry_is_refused(onnx_available, digits):
    X, y = digits
    clf = MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y.astype(np.int64) + 2**31)
    with pytest.raises(gpubp.InputError, match="32-bit integers or text"):
        gpubp.export_onnx(clf)
    with pytest.raises(gpubp.InputError, match="not fitted"):
        gpubp.export_onnx(MLPClassifier())
    with pytest.raises(gpubp.InputError, match="not StandardScaler"):
        gpubp.export_onnx(StandardScaler().fit(X))
    average = MLPClassifier((4,), max_iter=3, n_init=2, ensemble="average", random_state=0)
    with pytest.raises(gpubp.InputError, match="ensemble='best'"):
        gpubp.export_onnx(average.fit(X, y))


def test_without_skl2onnx_the_error_says_what_to_install(monkeypatch, digits, tmp_path, capsys):
    import sys

    from gpubp.cli import main

    X, y = digits
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # import skl2onnx fails
    with pytest.raises(ImportError, match=r"pip install skl2onnx onnxruntime"):
        gpubp.export_onnx(clf)
    gpubp.save(clf, tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), str(tmp_path / "m.onnx")]) == 1
    assert "gpubp export: error: ONNX export needs skl2onnx" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    gpubp.save(clf, tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), str(tmp_path / "m.onnx")]) == 1
    assert "gpubp export: error: ONNX export needs skl2onnx" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
