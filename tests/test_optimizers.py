"""The optimisers against values worked out independently: numbers by hand for the first
steps, Kingma and Ba's Adam as their paper writes it, and scikit-learn's MLP trained from
the same weights (every solver and learning-rate schedule, several epochs, float64)."""

import math
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sknn
from sklearn.datasets import make_classification, make_regression

import gpubp
from gpubp.optim import SGD, Adam

pytestmark = pytest.mark.backends

THETA_0 = [1.0, -2.0]
GRADS = [[0.5, -0.25], [0.1, 0.4]]  # the gradients of steps 1 and 2


def steps(optimizer_class, **kw):
    """theta after each step of ``optimizer_class`` fed GRADS (NumPy, float64)."""
    theta = np.array(THETA_0)
    opt = optimizer_class(np, theta, **kw)
    seen = []
    for g in GRADS:
        opt.step(theta, np.array(g))
        seen.append(theta.copy())
    return seen


@pytest.mark.parametrize(
    "kw,want",
    [
        # theta <- theta - 0.1 g
        (dict(momentum=0.0), [[0.95, -1.975], [0.94, -2.015]]),
        # v1 = -0.1 g1 = (-0.05, 0.025), theta1 = theta0 + v1;
        # v2 = 0.9 v1 - 0.1 g2 = (-0.055, -0.0175), theta2 = theta1 + v2
        (dict(momentum=0.9, nesterov=False), [[0.95, -1.975], [0.895, -1.9925]]),
        # Nesterov as scikit-learn has it: theta <- theta + 0.9 v - 0.1 g with the new v.
        # theta1 = (1 - 0.045 - 0.05, -2 + 0.0225 + 0.025);
        # theta2 = theta1 + 0.9 (-0.055, -0.0175) - (0.01, 0.04)
        (dict(momentum=0.9, nesterov=True), [[0.905, -1.9525], [0.8455, -2.00825]]),
    ],
    ids=["sgd", "momentum", "nesterov"],
)
def test_sgd_steps_worked_by_hand(kw, want):
    got = steps(SGD, learning_rate_init=0.1, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def kingma_ba(theta, grads, alpha=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Algorithm 1 of Kingma & Ba (2015), in plain Python, one parameter at a time."""
    theta, m, v, seen = list(theta), [0.0] * len(theta), [0.0] * len(theta), []
    for t, g in enumerate(grads, start=1):
        for i, g_i in enumerate(g):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g_i
            v[i] = beta_2 * v[i] + (1 - beta_2) * g_i * g_i
            m_hat = m[i] / (1 - beta_1**t)  # bias-corrected moments
            v_hat = v[i] / (1 - beta_2**t)
            theta[i] -= alpha * m_hat / (math.sqrt(v_hat) + epsilon)
        seen.append(list(theta))
    return seen


def test_adam_is_kingma_and_ba_with_bias_correction():
    # epsilon = 0: the code folds both corrections into the step size (the paper's
    # "efficient" form, which scales epsilon by sqrt(1 - beta_2^t)); without epsilon
    # the two forms are the same numbers.
    got = steps(Adam, learning_rate_init=0.1, epsilon=0.0)
    # Step 1: m_hat = g and v_hat = g^2, so each parameter moves by 0.1 against the sign
    # of its gradient; without bias correction it would move by 0.1 * 0.1 / 0.001^0.5.
    np.testing.assert_allclose(got[0], [0.9, -1.9], rtol=1e-14)
    np.testing.assert_allclose(got, kingma_ba(THETA_0, GRADS, epsilon=0.0), rtol=1e-14)
    with_epsilon = steps(Adam, learning_rate_init=0.1)  # the default 1e-8: nearly the same
    np.testing.assert_allclose(with_epsilon, kingma_ba(THETA_0, GRADS), rtol=1e-6)


def test_invscaling_and_adaptive_learning_rates_by_hand():
    opt = SGD(np, np.zeros(2), learning_rate_init=0.2, schedule="invscaling", power_t=0.5)
    opt.iteration_ends(99)  # after 99 cases: 0.2 / (99 + 1)^0.5
    assert opt.learning_rate == pytest.approx(0.02, rel=1e-15)
    opt = SGD(np, np.zeros(2), learning_rate_init=0.2, schedule="adaptive")
    assert [opt.trigger_stopping() for _ in range(2)] == [False, False]
    assert opt.learning_rate == pytest.approx(0.2 / 25, rel=1e-15)
    while not opt.trigger_stopping():
        pass
    assert opt.learning_rate <= 1e-6 < opt.learning_rate * 5


SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam", learning_rate_init=0.05),
    "invscaling": dict(
        solver="sgd", learning_rate="invscaling", power_t=0.5, learning_rate_init=0.5
    ),
    # tol=10 and n_iter_no_change=1: the rate is cut by 5 after every other epoch
    "adaptive": dict(solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=1),
    "lbfgs": dict(solver="lbfgs"),
}


def starting_weights(K):
    """[(W_1, b_1), (W_2, b_2)] of a 4-5-K network, drawn once for both libraries."""
    rng = np.random.default_rng(1)
    weights = [(rng.normal(size=(4, 5)) / 2, rng.normal(size=5) / 10)]
    return weights + [(rng.normal(size=(5, K)) / 2, rng.normal(size=K) / 10)]


def trained_from(Estimator, weights, X, y, epochs, **kw):
    """``Estimator`` fitted once (for its internals), then given ``weights`` and refitted
    for ``epochs`` with warm_start: a fresh optimiser starting from exactly those weights."""
    est = Estimator(warm_start=True, max_iter=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        est.coefs_ = [W.copy() for W, _ in weights]
        est.intercepts_ = [b.copy() for _, b in weights]
        est.set_params(max_iter=epochs).fit(X, y)
    return est


def assert_same_weights(ours, theirs):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["classifier", "regressor", "poisson"])
def test_training_follows_scikit_learn_step_by_step_from_the_same_weights(solver, task):
    """Six epochs of minibatches of 16 out of 50 cases (the last batch short), weight
    decay on, no shuffling: the weights equal scikit-learn's to float64 rounding. Poisson:
    two outputs of counts, exp output and half the Poisson deviance summed over them."""
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", batch_size=16, shuffle=False)
    if task == "classifier":
        X, y = make_classification(
            n_samples=50,
            n_features=4,
            n_classes=3,
            n_informative=3,
            n_redundant=0,
            random_state=0,
        )
        K, Ours, Theirs = 3, gpubp.MLPClassifier, sknn.MLPClassifier
    elif task == "regressor":
        X, y = make_regression(n_samples=50, n_features=4, random_state=0)
        y /= y.std()  # one output: see the next test for several
        K, Ours, Theirs = 1, gpubp.MLPRegressor, sknn.MLPRegressor
    else:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(50, 4))
        y = rng.poisson(np.exp(X[:, :2] / 2)).astype(float)
        K, Ours, Theirs = 2, gpubp.MLPRegressor, sknn.MLPRegressor
        kw["loss"] = "poisson"
    weights = starting_weights(K)
    kw = {**kw, "alpha": 0.01, "learning_rate_init": 0.1, "random_state": 0, **SOLVERS[solver]}
    if task == "poisson":  # exp(T) grows fast: smaller steps
        kw["learning_rate_init"] = 0.05 if solver in ("adam", "invscaling") else 0.01
    ours = trained_from(Ours, weights, X, y, 6, dtype="float64", **kw)
    theirs = trained_from(Theirs, weights, X, y, 6, **kw)
    assert ours.n_iter_ == theirs.n_iter_
    assert_same_weights(ours, theirs)
    if solver != "lbfgs":
        assert ours._optimizer.learning_rate == pytest.approx(
            theirs._optimizer.learning_rate_init
            if solver == "adam"
            else theirs._optimizer.learning_rate,
            rel=1e-12,
        )
    if solver in ("invscaling", "adaptive"):
        assert ours._optimizer.learning_rate < 0.1  # the schedule did act
    moved = [np.abs(W - W0).max() for (W0, _), W in zip(weights, ours.coefs_)]
    assert min(moved) > 1e-3  # training did move every layer


def test_a_multi_output_regressor_steps_along_the_gradient_of_its_loss():
    """scikit-learn's regressor reports half the squared error averaged over cases *and*
    its K outputs, but steps along K times that loss's gradient in the data term (its
    issue 8349); gpubp steps along the gradient of the loss it reports. So gpubp with
    learning rate K gamma and weight decay alpha / K retraces scikit-learn's steps."""
    X, y = make_regression(n_samples=50, n_features=4, n_targets=2, random_state=0)
    y /= y.std()
    weights = starting_weights(2)
    kw = dict(hidden_layer_sizes=(5,), batch_size=16, shuffle=False, solver="sgd", momentum=0.0)
    ours = trained_from(
        gpubp.MLPRegressor,
        weights,
        X,
        y,
        4,
        dtype="float64",
        learning_rate_init=0.2,
        alpha=0.005,
        **kw,
    )
    theirs = trained_from(
        sknn.MLPRegressor, weights, X, y, 4, learning_rate_init=0.1, alpha=0.01, **kw
    )
    assert_same_weights(ours, theirs)


@pytest.mark.parametrize("shape", [(23,), (3, 23), (6, 3)], ids=["one", "long-rows", "short-rows"])
def test_blocks_cover_every_element_once_with_its_network_rate(shape):
    rate = np.arange(1.0, shape[0] + 1).reshape(-1, 1) if len(shape) == 2 else 0.5
    seen = np.zeros(shape)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gpubp.optim, "BLOCK", 5)
        for index, part in gpubp.optim.blocks(shape, rate):
            seen[index] += 1
            rows = np.arange(shape[0]).reshape(-1, 1)[index[0]] if len(shape) == 2 else None
            np.testing.assert_array_equal(part, rate if rows is None else rows + 1.0)
    np.testing.assert_array_equal(seen, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda th, lr: SGD(np, th, lr, momentum=0.0),
        lambda th, lr: SGD(np, th, lr, momentum=0.9, nesterov=False),
        lambda th, lr: SGD(np, th, lr, momentum=0.9, nesterov=True),
        lambda th, lr: Adam(np, th, lr),
    ],
    ids=["sgd", "momentum", "nesterov", "adam"],
)
@pytest.mark.parametrize("shape", [(23,), (3, 23), (6, 3)], ids=["one", "long-rows", "short-rows"])
def test_an_update_in_pieces_is_the_update_in_one_piece(make, shape):
    """The reference formulas run in cache-sized pieces; pieces of 5 elements give the
    same numbers as one piece, per-network rates and skipped networks included, and
    writing theta by a copy (small theta) gives the bits of writing it in place."""
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((3, *shape))
    rate = np.linspace(0.01, 0.1, shape[0]) if len(shape) == 2 else 0.05
    active = np.arange(shape[0]) % 3 != 1 if len(shape) == 2 else None
    got = {}
    for block, small in [(5, 0), (10**9, 0), (5, 10**12), (10**9, 10**12)]:
        theta = np.linspace(-1.0, 1.0, np.prod(shape)).reshape(shape)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(gpubp.optim, "BLOCK", block)
            mp.setattr(gpubp.optim, "SMALL", small)
            opt = make(theta, rate)
            for g in grads:
                opt.step(theta, g.copy(), active)
        got[block, small] = theta
    first = got[5, 0]
    assert not np.array_equal(first, np.linspace(-1.0, 1.0, np.prod(shape)).reshape(shape))
    for other in got.values():
        np.testing.assert_array_equal(first, other)
