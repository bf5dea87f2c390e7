"""Random starts (n_init, ensemble) and the cross-validated estimators."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import gpubp
from gpubp import MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from gpubp.errors import InputError
from gpubp.network import MLP
from gpubp.optim import Adam
from gpubp.train import Data, History, Objective, fit_stochastic

pytestmark = [
    pytest.mark.backends,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


def expected_failures(est) -> dict:
    """The checks a stack is expected to fail, and why."""
    if est.n_init > 1 and est.ensemble == "best":
        return dict.fromkeys(
            ["check_estimators_partial_fit_n_features", "check_n_features_in_after_fitting"],
            "partial_fit cannot choose the best of n_init starts after one epoch: it refuses "
            "n_init > 1 with ensemble='best'",
        )
    if est.ensemble == "bagging":
        return dict.fromkeys(
            [
                "check_sample_weight_equivalence_on_dense_data",
                "check_sample_weight_equivalence_on_sparse_data",
            ],
            "a bootstrap sample draws rows: a row of weight 2 is drawn as one row, two copies "
            "of it as two (scikit-learn's BaggingClassifier fails this check too)",
        )
    return {}


# A rate of 0.01 learns the checks' small problems in 40 epochs.
FAST = dict(max_iter=40, dtype="float64")


@pytest.mark.backends("numba", "cupy")  # the scikit-learn face: host or device, not formulas
@parametrize_with_checks(
    [
        MLPClassifierCV((8,), cv=2, alphas=[1e-4, 1e-1], learning_rate_inits=[1e-2], **FAST),
        MLPRegressorCV(
            hidden_layer_sizes=(8,), cv=2, alphas=[1e-4, 1e-1], learning_rate_inits=[1e-2], **FAST
        ),
    ],
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.backends("numba")  # on the CuPy path, the CV estimators' stacks above
@parametrize_with_checks(
    [
        MLPClassifier(learning_rate_init=1e-2, n_init=3, ensemble="average", **FAST),
        MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=1e-2, n_init=2, **FAST),
        MLPClassifier(learning_rate_init=1e-2, n_init=3, ensemble="bagging", **FAST),
        MLPRegressor(
            hidden_layer_sizes=(8,), learning_rate_init=1e-2, n_init=2, ensemble="bagging", **FAST
        ),
    ],
    expected_failed_checks=expected_failures,
)
def test_scikit_learn_estimator_checks_of_stacks(estimator, check):
    check(estimator)


def trained_alone(X, y, seed, alpha, rate, w, permutations, epochs=6, **penalty):
    """A network trained alone as one network of a CV stack is: the stack's seed, decay,
    rate and case weights (and ``penalty``, ``w0``, ``init``), shuffled by the
    permutations the stack's generator drew."""
    net = MLP(
        [64, 12, 10], "relu", "softmax", dtype="float64", backend="numpy", seed=seed, **penalty
    )
    history = History()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit_stochastic(
            net,
            Adam(np, net.theta, rate),
            Data(X, np.eye(10)[y], w, w),
            Objective(1.0, alpha),
            history,
            batch_size=50,
            max_iter=epochs,
            shuffle=True,
            rng=_Replay(permutations),
            tol=1e-4,
            n_iter_no_change=10,
        )
    return net, history


def test_the_cv_scores_are_those_of_each_network_trained_alone(digits):
    """Setting s, fold f: a network alone with the same seed, decay, rate and case weights
    (its held-out fold weighing 0), shuffled by the same generator, scores the same."""
    X, y = digits
    kw = dict(max_iter=6, random_state=3, batch_size=50, dtype="float64")
    cv = StratifiedKFold(3)
    model = MLPClassifierCV(
        (12,), alphas=[1e-4, 0.5], learning_rate_inits=[1e-3, 1e-2], cv=cv, **kw
    ).fit(X, y)
    rng = np.random.default_rng(3)
    seed = int(rng.integers(2**32, size=1)[0])
    shuffle = np.random.default_rng(rng.integers(2**32))
    assert model.cv_results_["params"][3] == {"alpha": 0.5, "learning_rate_init": 1e-2}
    folds = list(cv.split(X, y))
    # network order: setting-major, then fold; one chunk, so one shuffling generator
    permutations = [shuffle.permutation(len(y)) for _ in range(6)]
    for s, (alpha, rate) in enumerate([(1e-4, 1e-3), (1e-4, 1e-2), (0.5, 1e-3), (0.5, 1e-2)]):
        for f, (train, test) in enumerate(folds):
            w = np.zeros(len(y))
            w[train] = 1
            net, _ = trained_alone(X, y, seed, alpha, rate, w, permutations)
            accuracy = np.mean(np.argmax(net.forward(X[test]), axis=1) == y[test])
            assert model.cv_results_[f"split{f}_test_score"][s] == pytest.approx(accuracy)
    best = np.argmax(model.cv_results_["mean_test_score"])
    assert model.best_index_ == best and model.best_params_ == model.cv_results_["params"][best]
    assert (model.alpha_, model.learning_rate_init_) == (
        model.best_params_["alpha"],
        model.best_params_["learning_rate_init"],
    )


def test_with_n_init_best_each_fold_is_scored_by_its_start_of_lowest_loss(digits):
    """n_init=2, ensemble="best": each setting and fold scores the start whose training
    loss ended lower, as its two starts trained alone show."""
    X, y = digits
    cv = StratifiedKFold(3)
    model = MLPClassifierCV(
        (12,),
        alphas=[1e-4, 0.3],
        cv=cv,
        n_init=2,
        max_iter=3,
        random_state=5,
        batch_size=50,
        dtype="float64",
        learning_rate_init=0.05,
    ).fit(X, y)
    rng = np.random.default_rng(5)
    seeds = [int(s) for s in rng.integers(2**32, size=2)]
    shuffle = np.random.default_rng(rng.integers(2**32))
    permutations = [shuffle.permutation(len(y)) for _ in range(3)]
    chose_the_other = 0
    for s, alpha in enumerate([1e-4, 0.3]):
        for f, (train, test) in enumerate(cv.split(X, y)):
            w = np.zeros(len(y))
            w[train] = 1
            losses, accuracies = [], []
            for seed in seeds:
                net, history = trained_alone(X, y, seed, alpha, 0.05, w, permutations, epochs=3)
                losses.append(history.loss)
                accuracies.append(np.mean(np.argmax(net.forward(X[test]), axis=1) == y[test]))
            score = model.cv_results_[f"split{f}_test_score"][s]
            assert score == pytest.approx(accuracies[int(np.argmin(losses))])
            chose_the_other += accuracies[0] != accuracies[1]
    assert chose_the_other  # the starts score apart somewhere: picking the wrong one shows


def test_the_refit_has_the_chosen_parameters(digits):
    """best_estimator_ is the plain estimator with best_params_, trained as one would train
    it: learning_rate_init is the chosen rate, not the CV estimator's own (1e-5 here)."""
    X, y = digits
    kw = dict(max_iter=4, random_state=0, learning_rate_init=1e-5)
    model = MLPClassifierCV((8,), alphas=[1e-4, 1e-1], learning_rate_inits=[1e-3, 3e-2], **kw)
    model.fit(X, y)
    best = model.best_estimator_
    params = best.get_params()
    assert {k: params[k] for k in model.best_params_} == model.best_params_
    assert best.learning_rate_init != 1e-5
    alone = MLPClassifier((8,), **{**kw, **model.best_params_}).fit(X, y)
    np.testing.assert_array_equal(best.coefs_[0], alone.coefs_[0])


def test_weight_elimination_cv_scores_are_those_of_each_network_trained_alone(digits):
    """As above with weight elimination and the book's starting weights, scored by the log
    loss (which sees every probability, not only the argmax)."""
    X, y = digits
    kw = dict(max_iter=4, random_state=5, batch_size=50, dtype="float64")
    cv = StratifiedKFold(2)
    book = dict(penalty="weight_elimination", w0=0.3, init="esl")
    model = MLPClassifierCV(
        (12,), alphas=[1e-3, 3.0], cv=cv, scoring="neg_log_loss", refit=False, **book, **kw
    ).fit(X, y)
    rng = np.random.default_rng(5)
    seed = int(rng.integers(2**32, size=1)[0])
    shuffle = np.random.default_rng(rng.integers(2**32))
    permutations = [shuffle.permutation(len(y)) for _ in range(4)]
    for s, alpha in enumerate([1e-3, 3.0]):
        for f, (train, test) in enumerate(cv.split(X, y)):
            w = np.zeros(len(y))
            w[train] = 1
            net, _ = trained_alone(X, y, seed, alpha, 1e-3, w, list(permutations), 4, **book)
            F = net.forward(X[test])
            want = -log_loss(y[test], F / F.sum(axis=1, keepdims=True), labels=np.arange(10))
            assert model.cv_results_[f"split{f}_test_score"][s] == pytest.approx(want, rel=1e-9)


class _Replay:
    """A generator whose permutations are given (the loop shuffles 0 .. n - 1 in place)."""

    def __init__(self, permutations):
        self.permutations = list(permutations)

    def shuffle(self, order):
        order[...] = self.permutations.pop(0)


def test_cv_results_have_grid_search_cvs_keys_and_the_refit_predicts(digits, tmp_path):
    X, y = digits
    model = MLPClassifierCV(
        (16,), alphas=[1e-4, 1e-2, 10.0], cv=3, max_iter=30, random_state=0
    ).fit(X, y)
    grid = GridSearchCV(
        MLPClassifier((16,), max_iter=1, random_state=0), {"alpha": [1e-4, 10.0]}, cv=2
    ).fit(X[:100], y[:100])
    for key in (
        "params",
        "param_alpha",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "split0_test_score",
        "mean_fit_time",
    ):
        assert key in grid.cv_results_ and len(model.cv_results_[key]) == 3
    assert model.alpha_ < 10.0  # a decay of 10 cannot fit digits
    assert model.cv_results_["rank_test_score"][2] == 3
    best = model.best_estimator_
    assert type(best) is MLPClassifier and best.alpha == model.alpha_
    np.testing.assert_array_equal(model.predict_proba(X), best.predict_proba(X))
    gpubp.save(model, tmp_path / "cv.npz")
    np.testing.assert_array_equal(
        gpubp.load(tmp_path / "cv.npz").predict_proba(X), best.predict_proba(X)
    )


def test_the_cv_regressor_picks_a_small_decay_and_works_in_a_pipeline():
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    pipe = make_pipeline(
        StandardScaler(),
        MLPRegressorCV(
            hidden_layer_sizes=(16,),
            alphas=[1e-3, 100.0],
            cv=3,
            max_iter=200,
            learning_rate_init=0.01,
            random_state=0,
        ),
    )
    pipe.fit(X, y / 100)
    model = pipe[-1]
    assert model.alpha_ == 1e-3 and model.best_score_ > 0.9
    assert pipe.score(X, y / 100) > 0.9


def test_scoring_chunks_and_starts_in_cv(digits, monkeypatch):
    X, y = digits
    kw = dict(alphas=[1e-4, 1e-2], cv=3, max_iter=5, random_state=1, n_init=2)
    whole = MLPClassifierCV((8,), scoring="neg_log_loss", ensemble="average", **kw).fit(X, y)
    assert (whole.cv_results_["mean_test_score"] < 0).all()
    from gpubp.estimators import cv_search as cv_module

    monkeypatch.setattr(cv_module, "STACK_BYTES", 1)  # one network per chunk
    chunked = MLPClassifierCV((8,), scoring="neg_log_loss", ensemble="average", **kw).fit(X, y)
    np.testing.assert_allclose(
        chunked.cv_results_["mean_test_score"], whole.cv_results_["mean_test_score"], rtol=1e-5
    )


def test_cv_refuses_what_it_cannot_do(digits):
    X, y = digits
    for kw, match in [
        (dict(solver="lbfgs"), "stochastic"),
        (dict(early_stopping=True), "early_stopping"),
        (dict(alphas=[-1.0]), "alphas"),
        (dict(learning_rate_inits=[0.0]), "learning_rate_inits"),
        (dict(warm_start=True), "warm-start"),
        (dict(ensemble="bagging", n_init=2), "bagging"),
    ]:
        with pytest.raises(InputError, match=match):
            MLPClassifierCV((4,), max_iter=1, **kw).fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_n_init_best_keeps_the_start_with_the_lowest_loss(digits, solver):
    X, y = digits
    model = MLPClassifier((8,), n_init=4, max_iter=15, random_state=0, solver=solver).fit(X, y)
    assert len(model.init_losses_) == 4 and model.best_init_ == np.argmin(model.init_losses_)
    assert model.coefs_[0].shape == (64, 8)
    assert model.loss_ == pytest.approx(model.init_losses_.min(), rel=1e-6)


def test_n_init_average_averages_the_starts_probabilities(digits):
    X, y = digits
    model = MLPClassifier((8,), n_init=3, ensemble="average", max_iter=10, random_state=0).fit(X, y)
    net = model.get_network()
    assert net.n_networks == 3 and model.coefs_[0].shape == (3, 64, 8)
    each = [net.backend.to_host(net.network(r).forward(X)) for r in range(3)]
    np.testing.assert_allclose(model.predict_proba(X), np.mean(each, axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        np.exp(model.predict_log_proba(X)), model.predict_proba(X), rtol=1e-4, atol=1e-7
    )
    with pytest.raises(InputError, match="partial_fit"):
        MLPClassifier((8,), n_init=2).partial_fit(X, y, classes=np.arange(10))


def test_with_early_stopping_the_start_of_lowest_validation_loss_is_kept(digits):
    """n_init with early stopping: ensemble="best" keeps the start whose validation loss
    (at its kept weights) is lowest, here not the one of lowest training loss; the
    averaged ensemble trains the same stack and reports its longest start's epochs."""
    X, y = digits[0][:300], digits[1][:300]
    kw = dict(n_init=4, early_stopping=True, max_iter=40, random_state=0, n_iter_no_change=3)
    kw.update(learning_rate_init=0.02)
    average = MLPClassifier((8,), ensemble="average", **kw).fit(X, y)
    stack = average._history
    by_validation = int(np.argmin(stack.best_validation_loss))
    assert by_validation != int(np.argmin(stack.final_losses))
    best = MLPClassifier((8,), **kw).fit(X, y)
    assert best.best_init_ == by_validation
    kept = average.get_network().network(by_validation)
    np.testing.assert_array_equal(best.coefs_[0], kept.get_weights()[0][0])
    assert len(set(stack.n_iter)) > 1  # the starts stopped at different epochs
    assert average.n_iter_ == len(average.loss_curve_) == stack.n_iter.max()
    assert len(average.validation_scores_) == average.n_iter_


def test_n_init_one_is_todays_estimator(digits):
    X, y = digits
    one = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    same = MLPClassifier((8,), max_iter=5, random_state=0, n_init=1, ensemble="average")
    np.testing.assert_array_equal(same.fit(X, y).coefs_[0], one.coefs_[0])
