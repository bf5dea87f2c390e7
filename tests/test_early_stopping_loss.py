"""early_stopping_metric="loss": early stopping on the held-out loss (scikit-learn's issue
24411), for one network, a stack of starts, and a checkpointed run resumed."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

import gpubp

KW = dict(
    hidden_layer_sizes=(16,),
    early_stopping=True,
    n_iter_no_change=3,
    tol=0.0,
    max_iter=60,
    learning_rate_init=0.05,
    random_state=0,
    dtype="float64",
)


@pytest.fixture(scope="module")
def noisy():
    return make_classification(300, n_features=10, flip_y=0.3, random_state=0)


def fit(X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpubp.MLPClassifier(**{**KW, **kw}).fit(X, y)


def test_it_stops_n_iter_no_change_epochs_after_the_lowest_held_out_loss(noisy):
    X, y = noisy
    by_loss = fit(X, y, early_stopping_metric="loss")
    curve = by_loss.validation_loss_curve_
    assert len(curve) == by_loss.n_iter_ == len(by_loss.validation_scores_)
    assert by_loss.n_iter_ == int(np.argmin(curve)) + 1 + KW["n_iter_no_change"] + 1
    assert by_loss.stop_reason_ == "no_improvement"
    by_score = fit(X, y)  # the default: scikit-learn's rule on the score
    scores = by_score.validation_scores_
    last_best = len(scores) - int(np.argmax(scores[::-1]))  # tol=0: a tie is no worse
    assert by_score.n_iter_ == last_best + KW["n_iter_no_change"] + 1
    assert by_score.n_iter_ != by_loss.n_iter_  # on this data the two rules disagree


def test_the_weights_kept_are_those_of_the_lowest_held_out_loss(noisy):
    X, y = noisy
    by_loss = fit(X, y, early_stopping_metric="loss")
    best = int(np.argmin(by_loss.validation_loss_curve_)) + 1
    # the same split and steps, stopped at that epoch
    at_best = fit(X, y, early_stopping_metric="loss", max_iter=best)
    for a, b in zip(by_loss.coefs_, at_best.coefs_):
        np.testing.assert_array_equal(a, b)


def test_a_stack_keeps_each_starts_lowest_loss_and_chooses_by_it(noisy):
    X, y = noisy
    stack = fit(X, y, early_stopping_metric="loss", n_init=3)
    r, curve = stack.best_init_, stack.validation_loss_curve_
    best = int(np.argmin(curve)) + 1
    assert stack.n_iter_ == best + KW["n_iter_no_change"] + 1
    # each start steps alone: stopped at that epoch, start r has the weights kept
    every = fit(X, y, early_stopping_metric="loss", n_init=3, ensemble="average", max_iter=best)
    for a, b in zip(stack.coefs_, every.coefs_):
        np.testing.assert_array_equal(a, b[r])


def test_a_checkpointed_run_resumes_to_the_same_weights(noisy, tmp_path):
    X, y = noisy
    whole = fit(X, y, early_stopping_metric="loss")
    fit(X, y, early_stopping_metric="loss", max_iter=4, checkpoint=tmp_path)
    resumed = fit(X, y, early_stopping_metric="loss", checkpoint=tmp_path)
    assert resumed.n_iter_ == whole.n_iter_
    for a, b in zip(resumed.coefs_, whole.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(gpubp.CheckpointError, match="early_stopping_metric"):
        fit(X, y, checkpoint=tmp_path)  # a run of the other rule is another run
