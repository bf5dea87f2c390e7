"""Divergence seen: an epoch whose training loss is not finite, or has grown far past its
value at the starting weights, stops the fit with DivergenceError (a network of a stack
alone); fits that converge are not touched (tests/test_reference.py holds them)."""

import math

import numpy as np
import pytest
from test_checkpoint import Crash, crash_after_epoch, small

import gpubp
from gpubp import divergence
from gpubp.errors import DivergenceError


@pytest.mark.parametrize(
    "loss, start, lowest, expected",
    [
        (float("nan"), None, math.inf, True),  # not finite: always
        (float("inf"), 0.7, 0.5, True),
        (1e9, None, math.inf, False),  # no starting loss known: only non-finite counts
        (7.1, 0.7, math.inf, True),  # more than 10 times the start
        (6.9, 0.7, 0.7, False),
        (0.8, 0.7, 0.07, True),  # back above the start, more than 10 times the lowest
        (0.6, 0.7, 0.05, False),  # tenfold the lowest, but below the start
        (0.8, 0.7, 0.09, False),
    ],
)
def test_the_rule(loss, start, lowest, expected):
    """For one network (floats) and for a stack (one value per network)."""
    assert divergence.diverged(loss, start, lowest) is expected
    each = None if start is None else np.array([start])
    assert divergence.diverged(np.array([loss]), each, np.array([lowest])).tolist() == [expected]


def test_the_rule_judges_each_network_of_a_stack_alone():
    got = divergence.diverged([7.1, 0.8, 0.8, np.nan], [0.7, 0.7, np.nan, 0.7], [1, 0.07, 0.07, 1])
    assert got.tolist() == [True, True, False, True]


def starting_weights(X, y):
    """The weights a fit of ``small`` starts from: one epoch that moves nothing."""
    return [W.copy() for W in small(max_iter=1, learning_rate_init=1e-300)[0].fit(X, y).coefs_]


@pytest.mark.backends
def test_a_blow_up_inside_the_first_epoch_is_stopped_at_the_starting_weights():
    model, X, y = small(learning_rate_init=10.0)
    with pytest.raises(DivergenceError) as caught:
        model.fit(X, y)
    words = str(caught.value)
    assert "in epoch 1, more than 10 times the" in words and "at the starting weights" in words
    assert "smaller learning_rate_init (it was 10.0)" in words
    assert model.n_iter_ == 0 and model.loss_curve_ == []
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, starting_weights(X, y)))


def test_the_starting_loss_is_the_loss_at_the_starting_weights():
    """With case weights, as one batch's loss is: a step of nothing on all 300 cases."""
    w = np.random.default_rng(0).uniform(0.1, 3.0, 300)
    model, X, y = small(max_iter=1, batch_size=300)
    model.fit(X, y, sample_weight=w)
    still = small(max_iter=1, batch_size=300, learning_rate_init=1e-300)[0]
    still.fit(X, y, sample_weight=w)
    assert model._history.start_loss == pytest.approx(still.loss_curve_[0], rel=1e-5)


def test_a_loss_that_loses_all_it_learned_is_stopped(monkeypatch):
    """After the loss has fallen, an epoch back above the start and tenfold the lowest."""
    model, X, y = small(max_iter=8)
    curve = iter([0.5, 0.1, 0.02, 0.05, 3.0])
    original = gpubp.train._OneNetwork.losses
    monkeypatch.setattr(
        gpubp.train._OneNetwork,
        "losses",
        lambda self, total, n: next(curve, original(self, total, n)),
    )
    with pytest.raises(
        DivergenceError,
        match="grew to 3 in epoch 5, back above the .* and more than 10 times its lowest, 0.02",
    ):
        model.fit(X, y)
    assert model.loss_curve_ == [0.5, 0.1, 0.02, 0.05] and model.n_iter_ == 4


def test_a_network_of_a_stack_that_grows_far_past_its_start_stops_alone(monkeypatch):
    original = gpubp.train_stack._Stack.losses

    def second_blows_up(self, total, n):
        losses = original(self, total, n)
        if self.history.epoch == 1:  # the second epoch
            losses[1] = 11 * self.history.start_loss[1]
        return losses

    monkeypatch.setattr(gpubp.train_stack._Stack, "losses", second_blows_up)
    model, X, y = small(n_init=3, ensemble="average", max_iter=4)
    model.fit(X, y)
    history = model._history
    assert history.stop_reasons == ["max_iter", "diverged", "max_iter"]
    assert history.n_iter.tolist() == [4, 1, 4]


def test_a_resumed_run_judges_against_the_starting_loss_it_saved(tmp_path, monkeypatch):
    model, X, y = small(checkpoint=tmp_path, checkpoint_every=1)
    crash_after_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        model.fit(X, y)
    monkeypatch.undo()
    expected = small()[0].fit(X, y)._history.start_loss

    def measured_again(*args, **kwargs):
        raise AssertionError("the starting loss was measured again at the resumed weights")

    monkeypatch.setattr(gpubp.train, "starting_loss", measured_again)
    resumed = small(checkpoint=tmp_path)[0].fit(X, y)
    assert resumed._history.start_loss == expected
