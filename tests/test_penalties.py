"""Weight elimination (ESL 11.5.2, eq. 11.17) beside weight decay, and the book's
starting weights (ESL 11.5.1): the formulas written out, on every backend, in stacks,
the estimators, the CV estimators, saved models and the command."""

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from test_cli import gpubp_cmd

import gpubp
from gpubp import MLPClassifier, MLPClassifierCV, MLPRegressor
from gpubp.backend import NUMPY, probe_numba
from gpubp.errors import InputError, ModelFileError
from gpubp.penalties import weight_elimination_slope

pytestmark = [
    pytest.mark.backends,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

BACKENDS = ["numpy", "numba", "auto"]  # the reference, the fused CPU kernels, the default


def backend(name):
    if name == "numba":
        fused, why = probe_numba()
        if fused is None:
            pytest.skip(f"numba does not work here: {why}")
        return fused
    return NUMPY if name == "numpy" else name


def J_by_hand(weights, w0):
    """sum over every weight (not the biases) of u / (1 + u), u = (W / w0)^2, in float64."""
    total = 0.0
    for W, _ in weights:
        u = (np.asarray(W, dtype=np.float64) / w0) ** 2
        total += float(np.sum(u / (1.0 + u)))
    return total


def problem(seed=0, N=30):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 4)), rng.integers(0, 3, N)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("w0", [1.0, 0.3])
def test_the_penalty_and_its_gradient_are_the_books_formula(name, w0):
    """J = sum u / (1 + u) and d(lambda J)/dW = 2 lambda W / (w0^2 (1 + u)^2), against the
    same network without the penalty; the biases' gradients are untouched."""
    X, y = problem()
    kw = dict(dtype="float64", seed=3, backend=backend(name))
    net = gpubp.MLP([4, 6, 3], "tanh", weight_decay=0.25, penalty="weight_elimination", w0=w0, **kw)
    bare = gpubp.MLP([4, 6, 3], "tanh", weight_decay=0.0, **kw)
    weights = net.get_weights()
    bare.set_weights(weights)
    to_host = net.backend.to_host
    assert float(to_host(net.J())) == pytest.approx(J_by_hand(weights, w0), rel=1e-13)
    loss, grads = net.loss_and_gradients(X, y)
    loss0, grads0 = bare.loss_and_gradients(X, y)
    want = float(to_host(loss0)) + 0.25 * J_by_hand(weights, w0)
    assert float(to_host(loss)) == pytest.approx(want, rel=1e-13)
    for (dW, db), (dW0, db0), (W, _) in zip(grads, grads0, weights):
        u = (W / w0) ** 2
        np.testing.assert_allclose(
            to_host(dW) - to_host(dW0), 2 * 0.25 * W / (w0**2 * (1 + u) ** 2), atol=1e-14
        )
        np.testing.assert_array_equal(to_host(db), to_host(db0))


@pytest.mark.parametrize("name", BACKENDS)
def test_weight_decay_is_still_the_sum_of_squares(name):
    X, y = problem()
    net = gpubp.MLP([4, 6, 3], "relu", weight_decay=0.5, dtype="float64", seed=0,
                    backend=backend(name))  # fmt: skip
    weights = net.get_weights()
    assert net.penalty == "l2"
    assert float(net.backend.to_host(net.J())) == pytest.approx(
        sum(float(np.sum(W**2)) for W, _ in weights), rel=1e-13
    )
    bare = gpubp.MLP([4, 6, 3], "relu", dtype="float64", backend=net.backend, weights=weights)
    (dW, _), (dW0, _) = net.loss_and_gradients(X, y)[1][0], bare.loss_and_gradients(X, y)[1][0]
    to_host = net.backend.to_host
    np.testing.assert_allclose(to_host(dW) - to_host(dW0), 2 * 0.5 * weights[0][0], atol=1e-14)


@pytest.mark.parametrize("name", BACKENDS)
def test_float32_stays_float32(name):
    X, y = problem()
    net = gpubp.MLP([4, 6, 3], weight_decay=0.1, penalty="weight_elimination", w0=0.5, seed=0,
                    backend=backend(name))  # fmt: skip
    assert net.J().dtype == np.float32
    loss, grads = net.loss_and_gradients(X, y)
    assert loss.dtype == np.float32 and all(dW.dtype == np.float32 for dW, _ in grads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fused_cpu_kernel_gives_the_reference_bits(dtype):
    """numba's loop computes the reference's formula in its order and dtype: equal bits,
    for one network (one c) and a stack (one c per network)."""
    fused, why = probe_numba()
    if fused is None:
        pytest.skip(f"numba does not work here: {why}")
    rng = np.random.default_rng(0)
    for shape, c in (((17, 33), 0.3), ((3, 17, 33), np.array([0.0, 0.1, 2.5]).reshape(-1, 1, 1))):
        W = rng.normal(scale=2, size=shape).astype(dtype)
        W.flat[:3] = [0.0, 1e4, -1e-4]
        G = rng.normal(size=shape).astype(dtype)
        c = np.asarray(c, dtype=dtype)
        y = G.copy()
        assert fused.fused.WEIGHT_ELIMINATION(W, c, 1 / 0.7**2, y, y) is y
        want = G + c * weight_elimination_slope(W, 1 / 0.7**2)
        assert want.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("penalty", ["l2", "weight_elimination"])
def test_gradcheck_passes_for_each_penalty_and_each_network_of_a_stack(penalty):
    X, y = problem(N=8)
    for R in (None, 3):
        net = gpubp.MLP([4, 5, 3], "tanh", weight_decay=[0.0, 0.3, 3.0] if R else 0.7,
                        dtype="float64", seed=[4, 5, 6] if R else 4, n_networks=R,
                        penalty=penalty, w0=0.4)  # fmt: skip
        assert gpubp.gradcheck(net, X, y).max_rel_error < 1e-6


def test_each_network_of_a_stack_has_its_own_lambda_and_copies_keep_the_penalty():
    X, y = problem()
    decays = [0.0, 0.1, 1.0]
    stack = gpubp.MLP([4, 6, 3], "tanh", weight_decay=decays, dtype="float64", seed=[0, 1, 2],
                      n_networks=3, penalty="weight_elimination", w0=0.5)  # fmt: skip
    losses = stack.backend.to_host(stack.compute_loss(X, y))
    grads = stack.loss_and_gradients(X, y)[1]
    for r in range(3):
        alone = stack.network(r)
        assert (alone.penalty, alone.w0, alone.weight_decay) == ("weight_elimination", 0.5,
                                                                 decays[r])  # fmt: skip
        assert float(alone.backend.to_host(alone.compute_loss(X, y))) == pytest.approx(
            losses[r], rel=1e-13
        )
        for (dW, _), (dW_r, _) in zip(grads, alone.loss_and_gradients(X, y)[1]):
            to_host = stack.backend.to_host
            np.testing.assert_allclose(to_host(dW)[r], to_host(dW_r), rtol=1e-12, atol=1e-15)


def test_weight_elimination_shrinks_small_weights_harder_than_large_ones():
    """Relative to weight decay's pull 2 lambda W: 1 / (1 + u)^2 with w0 = 1, near 1 for
    small weights and near 0 for large ones (ESL 11.5.2's reason for it)."""
    W = np.array([[0.01, -0.05], [4.0, -10.0]])
    net = gpubp.MLP(
        [2, 2],
        "identity",
        "identity",
        weight_decay=1.0,
        dtype="float64",
        backend="numpy",
        weights=[(W, np.zeros(2))],
        penalty="weight_elimination",
    )
    decay = gpubp.MLP([2, 2], "identity", "identity", weight_decay=1.0, dtype="float64",
                      backend="numpy", weights=[(W, np.zeros(2))])  # fmt: skip
    X, Y = np.zeros((1, 2)), np.zeros((1, 2))
    ratio = net.loss_and_gradients(X, Y)[1][0][0] / decay.loss_and_gradients(X, Y)[1][0][0]
    assert (ratio[0] > 0.99).all() and (ratio[1] < 0.01).all()


def test_bad_penalties_are_refused():
    for kw in (
        dict(penalty="l1"),
        dict(penalty=None),
        dict(penalty="weight_elimination", w0=0.0),
        dict(penalty="weight_elimination", w0=-1.0),
        dict(penalty="weight_elimination", w0=np.inf),
        dict(w0="1"),
        dict(init="normal"),
    ):
        with pytest.raises(InputError):
            gpubp.MLP([2, 3, 2], **kw)
    for kw in (dict(penalty="l1"), dict(w0=0.0), dict(init="he")):
        with pytest.raises(ValueError):
            MLPClassifier(**kw).fit([[0.0], [1.0]], [0, 1])


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_the_books_starting_weights_are_uniform_on_plus_minus_0_7(activation):
    sizes = [30, 40, 20]
    net = gpubp.MLP(sizes, activation, init="esl", seed=0, dtype="float64")
    draws = np.concatenate([np.ravel(a) for pair in net.get_weights() for a in pair])
    assert np.abs(draws).max() <= 0.7 and np.abs(draws).max() > 0.69
    assert abs(np.mean(np.abs(draws)) - 0.35) < 0.02  # uniform: E|w| = 0.7 / 2
    glorot = gpubp.MLP(sizes, activation, seed=0, dtype="float64")
    bound = np.sqrt((2.0 if activation == "sigmoid" else 6.0) / (30 + 40))
    assert np.abs(glorot.get_weights()[0][0]).max() <= bound
    same = gpubp.MLP(sizes, activation, init="esl", seed=0, dtype="float64", n_networks=2)
    np.testing.assert_array_equal(same.get_weights()[0][0][0], net.get_weights()[0][0])


def test_the_estimators_start_where_init_says(digits):
    X, y = digits
    esl = MLPClassifier((16,), init="esl", max_iter=1, solver="sgd", learning_rate_init=1e-12,
                        random_state=0, dtype="float64").fit(X, y)  # fmt: skip
    assert 0.69 < np.abs(esl.coefs_[0]).max() <= 0.7
    default = MLPClassifier((16,), max_iter=1, solver="sgd", learning_rate_init=1e-12,
                            random_state=0, dtype="float64").fit(X, y)  # fmt: skip
    assert np.abs(default.coefs_[0]).max() <= np.sqrt(6 / (64 + 16))
    assert esl.get_network().init == "esl"


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


def test_the_estimator_trains_with_the_penalty_it_is_given(digits):
    """The estimator's loss is scikit-learn's mean loss + alpha / (2 n) J with the J it
    is given, written out here; a warm refit after set_params switches J."""
    X, y = digits
    kw = dict(solver="sgd", batch_size=len(X), max_iter=1, shuffle=False, random_state=0,
              dtype="float64", alpha=5.0, learning_rate_init=1e-300)  # fmt: skip
    curves = {}
    for penalty, w0 in (("weight_elimination", 0.5), ("l2", 1.0)):
        est = MLPClassifier((8,), penalty=penalty, w0=w0, **kw).fit(X, y)
        net = est.get_network()
        assert net.weight_decay == 0.0  # the estimator's alpha is the objective's
        weights = net.get_weights()
        J = J_by_hand(weights, w0) if penalty != "l2" else sum(np.sum(W**2) for W, _ in weights)
        want = float(net.compute_loss(X, y)) + 5.0 / (2 * len(X)) * J
        assert est.loss_curve_[0] == pytest.approx(want, rel=1e-12)
        trained = MLPClassifier((8,), penalty=penalty, w0=w0, **kw | dict(max_iter=3,
                                learning_rate_init=0.1)).fit(X, y)  # fmt: skip
        curves[penalty] = trained.loss_curve_
    assert curves["l2"][-1] != pytest.approx(curves["weight_elimination"][-1], rel=1e-6)
    trained.set_params(warm_start=True, penalty="weight_elimination", w0=0.5, max_iter=1)
    trained.fit(X, y)
    assert trained.get_network().penalty == "weight_elimination"
    assert trained.get_network().w0 == 0.5


def test_the_cv_estimator_chooses_lambda_for_weight_elimination(digits):
    X, y = digits
    kw = dict(alphas=[1e-3, 30.0], cv=2, max_iter=15, random_state=0, dtype="float64")
    cv = MLPClassifierCV((8,), penalty="weight_elimination", w0=0.5, **kw).fit(X, y)
    assert cv.best_estimator_.get_params()["penalty"] == "weight_elimination"
    assert cv.best_estimator_.get_params()["w0"] == 0.5
    decay = MLPClassifierCV((8,), **kw).fit(X, y)
    assert not np.allclose(cv.cv_results_["mean_test_score"],
                           decay.cv_results_["mean_test_score"])  # fmt: skip
    # fold 0's score at the large lambda is that of the plain estimator trained on fold 0
    # with weight elimination (the stack uses J, not weight decay)
    assert cv.cv_results_["split0_test_score"][1] != decay.cv_results_["split0_test_score"][1]


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_saved_models_keep_the_penalty(tmp_path, suffix, digits):
    net = gpubp.MLP([4, 6, 3], weight_decay=[0.1, 0.2], n_networks=2, seed=[0, 1],
                    penalty="weight_elimination", w0=0.25)  # fmt: skip
    gpubp.save(net, tmp_path / f"net{suffix}")
    back = gpubp.load(tmp_path / f"net{suffix}", backend="numpy")
    assert (back.penalty, back.w0) == ("weight_elimination", 0.25)
    X, y = problem()
    np.testing.assert_array_equal(
        back.compute_loss(X, y), net.backend.to_host(net.compute_loss(X, y))
    )
    X, y = digits
    book = dict(penalty="weight_elimination", w0=2.0, init="esl")
    clf = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0, **book).fit(X, y)
    gpubp.save(clf, tmp_path / f"clf{suffix}")
    again = gpubp.load(tmp_path / f"clf{suffix}")
    assert {k: again.get_params()[k] for k in ("penalty", "w0", "init")} == {
        "penalty": "weight_elimination", "w0": 2.0, "init": "esl"}  # fmt: skip
    assert again.get_network().penalty == "weight_elimination"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.set_params(warm_start=True, max_iter=1).fit(X, y)


def _edited_npz(path, out, edit):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__gpubp__")))
    edit(meta["network"])
    np.savez(out, **arrays, __gpubp__=np.array(json.dumps(meta)))


def test_a_file_from_before_weight_elimination_loads_as_weight_decay(tmp_path):
    net = gpubp.MLP([3, 4, 2], weight_decay=0.5, seed=0, penalty="weight_elimination")
    gpubp.save(net, tmp_path / "new.npz")
    _edited_npz(
        tmp_path / "new.npz", tmp_path / "old.npz", lambda m: [m.pop("penalty"), m.pop("w0")]
    )
    back = gpubp.load(tmp_path / "old.npz")
    assert (back.penalty, back.w0, back.weight_decay) == ("l2", 1.0, 0.5)
    _edited_npz(tmp_path / "new.npz", tmp_path / "bad.npz", lambda m: m.update(w0=-1))
    with pytest.raises(ModelFileError, match="inconsistent.*w0"):
        gpubp.load(tmp_path / "bad.npz")


def test_the_command_passes_the_penalty_and_starting_weights(tmp_path):
    X, y = load_digits(return_X_y=True)
    rows = np.column_stack([X[:200], y[:200]])
    data = tmp_path / "d.csv"
    header = ",".join([f"x{i}" for i in range(64)] + ["label"])
    np.savetxt(data, rows, delimiter=",", header=header, comments="", fmt="%g")
    out = gpubp_cmd(
        "train", "--data", str(data), "--target", "label", "--hidden", "8", "--epochs", "3",
        "--penalty", "weight_elimination", "--w0", "0.5", "--init", "esl",
        "--out", str(tmp_path / "run"), "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    params = gpubp.load(tmp_path / "run" / "model.safetensors").get_params()
    assert (params["penalty"], params["w0"], params["init"]) == ("weight_elimination", 0.5, "esl")


def test_to_sklearn_predicts_as_gpubp_whatever_the_penalty(digits):
    X, y = digits
    book = dict(penalty="weight_elimination", w0=0.5, init="esl")
    clf = MLPClassifier((8,), max_iter=5, random_state=0, dtype="float64", **book).fit(X, y)
    sk = clf.to_sklearn()
    np.testing.assert_allclose(sk.predict_proba(X), clf.predict_proba(X), rtol=1e-12)


def test_onnx_exports_a_model_trained_with_weight_elimination(digits):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = digits
    book = dict(penalty="weight_elimination", w0=0.5, init="esl")
    clf = MLPClassifier((8,), max_iter=5, random_state=0, **book).fit(X, y)
    onx = gpubp.export_onnx(clf)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(None, {"X": X.astype(np.float32)})))
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), atol=1e-5)
