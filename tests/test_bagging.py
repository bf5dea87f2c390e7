"""Bagging (``ensemble="bagging"``): each network of the stack trains on a bootstrap
sample drawn as scikit-learn's bagging draws it, the predictions are averaged, and the
out-of-bag predictions and score are those written out here."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split

import gpubp
from gpubp import MLPClassifier, MLPRegressor
from gpubp.errors import InputError
from gpubp.estimators.bagging import bagged, bootstrap_counts
from gpubp.inputs.data import Data
from gpubp.lbfgs import fit_lbfgs
from gpubp.network import MLP
from gpubp.optim import Adam
from gpubp.train import Objective
from gpubp.train_stack import StackHistory, fit_stack

pytestmark = [
    pytest.mark.backends,
    pytest.mark.usefixtures("leaves_nothing_behind"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


def drawn(n, R, rng):
    """R bootstrap samples of n cases, as scikit-learn's bagging draws them (indices with
    replacement), as counts per case."""
    return np.array([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(R)])


def replayed(random_state, sizes, activation, output, R, n):
    """(rng, counts) as a bagged fit draws them: the starting weights, then the samples'
    seed, from the estimator's generator; the samples from a generator of that seed."""
    rng = np.random.default_rng(random_state)
    net = MLP(sizes, activation, output, dtype="float64", seed=rng, n_networks=R,
              backend="numpy")  # fmt: skip
    return rng, net, drawn(n, R, np.random.default_rng(rng.integers(2**63)))


def test_bootstrap_counts_are_samples_with_replacement_and_ranks_share_them():
    counts = bootstrap_counts(1000, 50, np.random.default_rng(0), 0, 1000)
    np.testing.assert_array_equal(counts, drawn(1000, 50, np.random.default_rng(0)))
    assert (counts.sum(axis=1) == 1000).all()
    assert np.mean(counts == 0) == pytest.approx((1 - 1 / 1000) ** 1000, abs=0.01)  # 0.368
    parts = [bootstrap_counts(1000, 50, np.random.default_rng(0), lo, n)
             for lo, n in ((0, 400), (400, 600))]  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), counts)


def test_bagged_weights_are_counts_times_sample_weights_on_the_sets_rows():
    X = np.zeros((6, 2))
    w = np.arange(1.0, 7.0)
    part = Data(X, np.zeros((6, 1)), w, w).with_rows([4, 1, 2])
    counts = np.array([[2, 0, 1], [1, 1, 1]])
    bag = bagged(part, counts, gpubp.get_backend("numpy"), np.dtype("float32"))
    want = np.zeros((2, 6), dtype=np.float32)
    want[:, [4, 1, 2]] = counts * w[[4, 1, 2]]
    np.testing.assert_array_equal(bag.w_host, want)
    np.testing.assert_array_equal(bag.w, want)
    assert bag.w_host.dtype == np.float32
    np.testing.assert_array_equal(bag.weight_sum(), (counts * w[[4, 1, 2]]).sum(axis=1))


def test_each_network_trains_on_its_bootstrap_sample(digits):
    """The estimator's weights are a stack trained with each network's counts as its case
    weights, the samples drawn after the starting weights from the same generator."""
    X, y = digits
    R, kw = 3, dict(max_iter=4, random_state=7, dtype="float64", learning_rate_init=0.01)
    est = MLPClassifier((10,), n_init=R, ensemble="bagging", **kw).fit(X, y)
    rng, net, counts = replayed(7, [64, 10, 10], "relu", "softmax", R, len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_stack(net, Adam(np, net.theta, 0.01), Data(X, np.eye(10)[y], counts, counts),
                  Objective(1.0, 1e-4), StackHistory(R), batch_size=200, rng=rng, max_iter=4,
                  shuffle=True, tol=1e-4, n_iter_no_change=10)  # fmt: skip
    for got, want in zip(est.coefs_, [W for W, _ in net.get_weights()]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    F = gpubp.to_numpy(est.get_network().forward(X))  # (R, n, K): the networks do differ
    assert np.abs(F[0] - F[1]).max() > 1e-3
    np.testing.assert_allclose(est.predict_proba(X), F.mean(axis=0), rtol=1e-12)


def out_of_bag_by_hand(est, X, counts):
    """Each case's mean output over the networks that did not draw it (NaN: none)."""
    F = np.asarray(gpubp.to_numpy(est.get_network().forward(X)), dtype=np.float64)
    out = (counts == 0)[..., None]
    voters = out.sum(axis=0)
    with np.errstate(invalid="ignore"):
        return (F * out).sum(axis=0) / voters


def test_the_out_of_bag_score_is_the_score_of_the_out_of_bag_predictions(digits):
    X, y = digits
    R = 4
    est = MLPClassifier((10,), n_init=R, ensemble="bagging", max_iter=20, random_state=1,
        learning_rate_init=0.01,
                        dtype="float64").fit(X, y)  # fmt: skip
    _, _, counts = replayed(1, [64, 10, 10], "relu", "softmax", R, len(y))
    F = out_of_bag_by_hand(est, X, counts)
    np.testing.assert_allclose(est.oob_decision_function_, F, rtol=1e-12)
    seen = ~np.isnan(F).any(axis=1)
    assert 0.1 * len(y) < (~seen).sum() < 0.25 * len(y)  # about 0.632^4 of the cases: 16%
    assert np.isnan(est.oob_decision_function_[~seen]).all()
    want = accuracy_score(y[seen], est.classes_[np.argmax(F[seen], axis=1)])
    assert est.oob_score_ == pytest.approx(want, rel=1e-12)
    assert est.oob_score_ < est.score(X, y)  # out of bag is the honest estimate


def test_the_regressors_out_of_bag_score_is_r2(digits):
    X, y = make_regression(n_samples=120, n_features=5, noise=5.0, random_state=0)
    y = y / y.std()
    R = 5
    est = MLPRegressor(
        hidden_layer_sizes=(8,),
        n_init=R,
        ensemble="bagging",
        max_iter=30,
        learning_rate_init=0.01,
        random_state=2,
        dtype="float64",
    ).fit(X, y)
    _, _, counts = replayed(2, [5, 8, 1], "relu", "identity", R, len(y))
    F = out_of_bag_by_hand(est, X, counts)[:, 0]
    np.testing.assert_allclose(est.oob_prediction_, F, rtol=1e-12)
    seen = ~np.isnan(F)
    assert est.oob_score_ == pytest.approx(r2_score(y[seen], F[seen]), rel=1e-10)


def test_with_early_stopping_the_held_out_cases_are_in_no_bag(digits):
    """The validation cases are split off first (as without bagging); the samples are
    drawn from the training cases only, and the held-out ones have no out-of-bag output."""
    X, y = digits
    R = 3
    est = MLPClassifier((10,), n_init=R, ensemble="bagging", early_stopping=True,
                        validation_fraction=0.2, max_iter=5, random_state=0).fit(X, y)  # fmt: skip
    rng = np.random.default_rng(0)
    MLP([64, 10, 10], "relu", "softmax", seed=rng, n_networks=R)
    bags = np.random.default_rng(rng.integers(2**63))
    # not stratified: as scikit-learn's MLP, only a single-output classifier stratifies
    train, val = train_test_split(np.arange(len(y)), test_size=0.2,
                                  random_state=int(rng.integers(2**31 - 1)))  # fmt: skip
    counts = drawn(len(train), R, bags)
    missing = np.isnan(est.oob_decision_function_).any(axis=1)
    assert missing[val].all()
    np.testing.assert_array_equal(missing[train], (counts > 0).all(axis=0))
    assert np.isfinite(est.oob_score_) and len(est.validation_scores_) == est.n_iter_


def test_bagging_is_refused_where_it_cannot_work(digits):
    X, y = digits
    est = MLPClassifier((4,), n_init=2, ensemble="bagging")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        est.partial_fit(X, y, classes=np.arange(10))
    est.fit(X, y)
    with pytest.raises(InputError, match="ensemble='bagging'"):
        est.to_sklearn()


def test_no_out_of_bag_case_is_a_nan_score_and_a_warning():
    X, y = np.array([[0.0], [1.0]]), np.array([0, 1])
    both = [
        s for s in range(100) if (replayed(s, [1, 2, 1], "relu", "sigmoid", 1, 2)[2] == 1).all()
    ]
    seed = both[0]  # a seed whose one sample draws both cases
    est = MLPClassifier((2,), n_init=1, ensemble="bagging", max_iter=2, random_state=seed)
    with pytest.warns(UserWarning, match="no case was out of bag"):
        est.fit(X, y)
    assert np.isnan(est.oob_score_) and est.coefs_[0].shape == (1, 1, 2)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_saved_bag_predicts_as_before_and_keeps_its_score(tmp_path, digits, suffix):
    X, y = digits
    est = MLPClassifier((6,), n_init=3, ensemble="bagging", max_iter=3, random_state=0).fit(X, y)
    gpubp.save(est, tmp_path / f"bag{suffix}")
    back = gpubp.load(tmp_path / f"bag{suffix}")
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.oob_score_ == est.oob_score_ and back.ensemble == "bagging"
    assert back.bootstrap_seed_ == est.bootstrap_seed_


def test_a_warm_refit_trains_on_the_same_samples(digits):
    """The samples come from bootstrap_seed_, kept by the model (and its file): a warm refit
    of a loaded bag goes on as the first fit's weights would with those samples."""
    X, y = digits
    kw = dict(n_init=2, ensemble="bagging", random_state=0, dtype="float64", max_iter=2)
    est = MLPClassifier((6,), **kw).fit(X, y)
    seed, oob = est.bootstrap_seed_, est.oob_decision_function_.copy()
    _, _, counts = replayed(0, [64, 6, 10], "relu", "softmax", 2, len(y))
    est.set_params(warm_start=True, random_state=99).fit(X, y)  # another generator
    assert est.bootstrap_seed_ == seed
    np.testing.assert_array_equal(np.isnan(est.oob_decision_function_), np.isnan(oob))
    np.testing.assert_array_equal(np.isnan(oob).any(axis=1), (counts > 0).all(axis=0))
    est.set_params(warm_start=False).fit(X, y)  # a fresh fit draws afresh
    assert est.bootstrap_seed_ != seed
    est.set_params(warm_start=True, ensemble="average").fit(X, y)  # the bag goes on, unbagged
    assert est.coefs_[0].shape == (2, 64, 6)
    assert not hasattr(est, "oob_score_") and not hasattr(est, "bootstrap_seed_")


def test_with_lbfgs_each_network_trains_alone_on_its_sample(digits):
    X, y = digits
    R = 2
    est = MLPClassifier((6,), n_init=R, ensemble="bagging", solver="lbfgs", max_iter=15,
                        random_state=3, dtype="float64").fit(X, y)  # fmt: skip
    _, net, counts = replayed(3, [64, 6, 10], "relu", "softmax", R, len(y))
    for r in range(R):
        alone = net.network(r)
        w = counts[r].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_lbfgs(alone, Data(X, np.eye(10)[y], w, w), Objective(1.0, 1e-4), max_iter=15,
                      max_fun=15000, tol=1e-4)  # fmt: skip
        np.testing.assert_allclose(est.coefs_[0][r], alone.get_weights()[0][0], rtol=1e-8,
                                   atol=1e-10)  # fmt: skip
