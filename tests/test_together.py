"""Features together: resident or streamed in several chunks, each shuffle, checkpoints
that pause an epoch, one network, a stack of starts or a bag, against the uninterrupted
resident fit bit for bit; early stops of a streamed fit that leave a run that resumes;
and every path that works a chunk at a time, with several chunks and a short last one.

Small data, few epochs: 530 rows in minibatches of 20 (the last one short), chunks of
three minibatches, two epochs. Every test checks what its fits leave behind
(``leaves_nothing_behind``).
"""

import faulthandler
import functools
import os
import signal
import time

import numpy as np
import pytest

import gpubp
from gpubp import checkpoint
from gpubp.backend import to_numpy
from gpubp.estimators import cv_search, predicting
from gpubp.estimators.plan import Plan
from gpubp.inputs import data as inputs_data
from gpubp.inputs import sources
from gpubp.optim import SGD, Adam

pytestmark = [
    pytest.mark.backends("numba", "cupy"),
    pytest.mark.usefixtures("leaves_nothing_behind"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:training (interrupted|preempted)"),
]

N, P, BATCH, EPOCHS = 530, 6, 20, 2
STEPS = EPOCHS * -(-N // BATCH)  # 54 steps of one network


@pytest.fixture(autouse=True)
def bounded():
    """A test that hangs (a fit that never returns from an early stop) fails after 60 s
    (SIGALRM raises in the main thread, even in a join); one stuck where no signal reaches
    Python ends its process after 120 s, with every thread's traceback."""

    def ran_too_long(signum, frame):
        raise TimeoutError("the test ran past 60 s: a fit that does not return")

    previous = signal.signal(signal.SIGALRM, ran_too_long)
    signal.alarm(60)
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of three minibatches and buffered shuffling's blocks of one."""
    monkeypatch.setattr(inputs_data, "CHUNK_BYTES", 3 * BATCH * (P + 4) * 8)
    monkeypatch.setattr(inputs_data, "BLOCK_BYTES", BATCH * (P + 4) * 4)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 3 * BATCH * (P + 4) * 8)


@functools.cache
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, P))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y


def on_disk(tmp_path):
    X, _ = problem()
    np.save(tmp_path / "X.npy", X)
    return np.load(tmp_path / "X.npy", mmap_mode="r")


MODELS = {
    "one": dict(),
    "starts": dict(n_init=2, ensemble="average"),
    "bagging": dict(n_init=2, ensemble="bagging"),
}
SHUFFLES = {"full": "full", "buffered": "buffered", "off": False}


def estimator(model, shuffle, **kw):
    params = dict(
        hidden_layer_sizes=(5,),
        batch_size=BATCH,
        max_iter=EPOCHS,
        random_state=0,
        tol=0.0,
        shuffle=SHUFFLES[shuffle],
    )
    return gpubp.MLPClassifier(**(params | MODELS[model] | kw))


def outcome(est) -> dict:
    """What a fit gives: every weight, the loss curve, the steps, the out-of-bag outputs."""
    out = {
        "theta": to_numpy(est.get_network().theta).copy(),
        "loss_curve": list(est.loss_curve_),
        "n_iter": est.n_iter_,
    }
    if hasattr(est, "oob_decision_function_"):
        out["oob"] = (est.oob_score_, est.oob_decision_function_.copy())
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(a["theta"], b["theta"])
    assert a["loss_curve"] == b["loss_curve"]
    assert np.array_equal(a["n_iter"], b["n_iter"])
    if "oob" in a:
        assert a["oob"][0] == b["oob"][0]
        np.testing.assert_array_equal(a["oob"][1], b["oob"][1])


@functools.cache
def uninterrupted(backend, model, shuffle) -> dict:
    """The resident fit without checkpoints (``backend`` keys the cache only)."""
    X, y = problem()
    return outcome(estimator(model, shuffle, streaming=False).fit(X, y))


class Steps:
    """Counts the optimiser steps of this process (a stack's networks step as one);
    ``at(k, act)`` calls ``act()`` after step k (1 is the first), and each of ``hooks``
    is called with the count after every step."""

    def __init__(self, monkeypatch):
        self.count, self.actions, self.hooks = 0, {}, []
        for kind in (SGD, Adam):
            for name in ("step", "apply"):  # a step, or a graphed step's update
                monkeypatch.setattr(kind, name, self._counted(getattr(kind, name)))

    def _counted(self, original):
        def counted(optimizer, *args, **kwargs):
            result = original(optimizer, *args, **kwargs)
            self.count += 1
            for hook in self.hooks:
                hook(self.count)
            act = self.actions.pop(self.count, None)
            if act is not None:
                self.last = args  # (theta, ...): for the action only, not kept after
                try:
                    act()
                finally:
                    self.last = None
            return result

        return counted

    def at(self, k, act):
        self.actions[k] = act

    def poison(self, k):
        """After step k, the weights it updated are NaN."""
        self.at(k, lambda: self.last[0].__setitem__(Ellipsis, float("nan")))


class Timers:
    """Checkpoints' alarms that ring after the optimiser steps in ``fire`` (None: after
    every step), not after seconds; ``pauses`` counts the checkpoints written inside
    an epoch."""

    def __init__(self, monkeypatch, steps: Steps, fire=None):
        self.alarms, self.pauses = [], 0
        timers = self

        class Alarm:  # gpubp.checkpoint.Alarm's interface: rings once until reset
            def __init__(self, seconds, stop):
                self.stop, self.armed = stop, True
                timers.alarms.append(self)

            def reset(self):
                self.armed = True

            def close(self):
                timers.alarms.remove(self)

        def due(count):
            if fire is None or count in fire:
                for alarm in self.alarms:
                    if alarm.armed:
                        alarm.armed = False
                        alarm.stop["save"] = alarm.stop["now"] = True

        pause = checkpoint.Run.pause

        def counted_pause(run, position):
            self.pauses += 1
            return pause(run, position)

        monkeypatch.setattr(checkpoint, "Alarm", Alarm)
        monkeypatch.setattr(checkpoint.Run, "pause", counted_pause)
        steps.hooks.append(due)


def _raise():
    raise RuntimeError("a step failed")


CHECKPOINTS = {
    "none": None,
    "every-step": None,  # a timer that fires at every step
    "mid-epoch": {35},  # once: epoch 2, step 8, inside its third chunk
    "resumed": {35},  # the same, then an error in step 41: the run again goes on from 35
}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("shuffle", list(SHUFFLES))
@pytest.mark.parametrize("checkpoints", list(CHECKPOINTS))
@pytest.mark.parametrize("streamed", [False, True], ids=["resident", "streamed"])
def test_features_together_give_the_uninterrupted_resident_fit(
    tmp_path, monkeypatch, gpubp_backend, streamed, checkpoints, shuffle, model
):
    X, y = problem()
    expected = uninterrupted(gpubp_backend, model, shuffle)  # before the steps are counted
    steps = Steps(monkeypatch)
    kw = dict(streaming=streamed)
    timers = None
    if checkpoints != "none":
        timers = Timers(monkeypatch, steps, CHECKPOINTS[checkpoints])
        kw.update(checkpoint=str(tmp_path / "run"), checkpoint_every="1s")
    source = on_disk(tmp_path) if streamed else X
    if checkpoints == "resumed":
        steps.at(41, _raise)
        with pytest.raises(RuntimeError, match="a step failed"):
            estimator(model, shuffle, **kw).fit(source, y)
        assert steps.count == 41
        steps.count = 0
    est = estimator(model, shuffle, **kw).fit(source, y)
    assert_same(outcome(est), expected)
    if checkpoints == "every-step":  # a pause after each step but where an epoch ended
        assert timers.pauses >= steps.count - EPOCHS * (1 + (model != "one")) - 1
    elif checkpoints == "mid-epoch":
        assert timers.pauses == 1
    elif checkpoints == "resumed":
        assert steps.count == STEPS - 35


def _interrupt(signum):
    return lambda: os.kill(os.getpid(), signum)


STOPS = {  # what stops it, what the fit says, and whether it raises
    "sigint": (_interrupt(signal.SIGINT), "interrupted", None),
    "sigterm": (_interrupt(signal.SIGTERM), None, gpubp.errors.Preempted),
    "error": (_raise, None, RuntimeError),
}


@pytest.mark.parametrize("model", ["one", "starts"])
@pytest.mark.parametrize("stop", list(STOPS))
def test_a_streamed_fit_stopped_early_returns_at_once_and_resumes(
    tmp_path, monkeypatch, gpubp_backend, stop, model
):
    """Stopped inside step 35 (epoch 2, inside a chunk) after a timed checkpoint at step
    20: it returns within seconds, its checkpoint holds where it stopped (an error: the
    checkpoint before), and the run again takes the remaining steps to the uninterrupted
    weights."""
    X, y = problem()
    expected = uninterrupted(gpubp_backend, model, "buffered")
    steps = Steps(monkeypatch)
    Timers(monkeypatch, steps, fire={20})
    act, reason, raises = STOPS[stop]
    steps.at(35, act)
    folder = str(tmp_path / "run")
    est = estimator(model, "buffered", streaming=True, checkpoint=folder, checkpoint_every="1s")
    started = time.monotonic()
    if raises is not None:
        with pytest.raises(raises):
            est.fit(on_disk(tmp_path), y)
    else:
        assert est.fit(on_disk(tmp_path), y).stop_reason_ == reason
    assert time.monotonic() - started < 10
    taken = steps.count
    steps.count = 0
    again = estimator(model, "buffered", streaming=True, checkpoint=folder).fit(
        on_disk(tmp_path), y
    )
    assert_same(outcome(again), expected)
    kept = 20 if raises is RuntimeError else 35  # an error's step is not saved: the timed one is
    assert taken == 35 and steps.count == STEPS - kept


def test_a_streamed_run_that_diverged_goes_on_from_its_last_good_checkpoint(
    tmp_path, monkeypatch, gpubp_backend
):
    """Weights made NaN in step 35 (epoch 2): DivergenceError, with the weights of epoch 1
    in place and the run not marked finished; the run again goes on from epoch 1's
    checkpoint to the uninterrupted weights. (A stack's network that diverges stops
    alone, with the reason "diverged": `tests/test_stack.py`.)"""
    model = "one"
    X, y = problem()
    expected = uninterrupted(gpubp_backend, model, "buffered")
    first_epoch = outcome(estimator(model, "buffered", streaming=False, max_iter=1).fit(X, y))
    steps = Steps(monkeypatch)
    steps.poison(35)
    folder = str(tmp_path / "run")
    est = estimator(model, "buffered", streaming=True, checkpoint=folder, checkpoint_every=1)
    with pytest.raises(gpubp.errors.DivergenceError, match="epoch 2"):
        est.fit(on_disk(tmp_path), y)
    np.testing.assert_array_equal(to_numpy(est.get_network().theta), first_epoch["theta"])
    steps.count = 0
    again = estimator(model, "buffered", streaming=True, checkpoint=folder).fit(
        on_disk(tmp_path), y
    )
    assert_same(outcome(again), expected)
    assert steps.count == STEPS // EPOCHS


# -- every path that works a chunk at a time -------------------------------------------------


def test_prediction_in_several_chunks_is_prediction_in_one(tmp_path, monkeypatch):
    X, y = problem()
    est = estimator("starts", "full").fit(X, y)
    whole = est.predict_proba(X)
    rows = predicting.chunk_rows(est.get_network(), est.dtype)
    bytes_ = predicting.PREDICT_CHUNK_BYTES * 60 // rows
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", bytes_)
    rows = predicting.chunk_rows(est.get_network(), est.dtype)
    assert 1 < N / rows < N // 50  # several, the last short
    assert N % rows
    for source in (X, on_disk(tmp_path)):
        np.testing.assert_allclose(est.predict_proba(source), whole, rtol=1e-6, atol=1e-7)


def test_the_out_of_bag_pass_in_several_chunks_is_the_pass_in_one(tmp_path, monkeypatch):
    X, y = problem()
    resident = estimator("bagging", "full", streaming=False).fit(X, y)
    rows = predicting.chunk_rows(resident.get_network(), resident.dtype)
    bytes_ = predicting.PREDICT_CHUNK_BYTES * 170 // rows
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", bytes_)
    streamed = estimator("bagging", "full", streaming=True).fit(on_disk(tmp_path), y)
    np.testing.assert_array_equal(
        to_numpy(streamed.get_network().theta), to_numpy(resident.get_network().theta)
    )
    seen = ~np.isnan(resident.oob_decision_function_).any(axis=1)
    assert seen.sum() > N // 2
    np.testing.assert_allclose(
        streamed.oob_decision_function_, resident.oob_decision_function_, rtol=1e-6, atol=1e-7
    )
    assert abs(streamed.oob_score_ - resident.oob_score_) < 1e-9


def test_out_of_bag_outputs_sit_on_their_rows_with_early_stopping(tmp_path):
    """The held-out rows are in no bag (NaN); every other row's output is its own: the mean
    of the networks it is out of bag for, from their outputs computed here."""
    X, y = problem()
    est = estimator("bagging", "full", early_stopping=True, validation_fraction=0.2).fit(X, y)
    F = est.oob_decision_function_
    held = np.isnan(F).all(axis=1)  # held out, or in both bags
    net = est.get_network()
    _, T = net.propagate(net.backend.to_device(X.astype(np.float32)))
    outputs = to_numpy(net.g(T))  # (R, N, K)
    rows = np.flatnonzero(~held & ~np.isnan(F).any(axis=1))
    assert len(rows) > N // 4
    # a row's output is one of: network 0's, network 1's, or their mean
    own = np.stack([outputs[0], outputs[1], outputs.mean(axis=0)])[:, rows]
    close = np.isclose(own, F[rows][None], rtol=1e-5, atol=1e-6).all(axis=2)
    assert close.any(axis=0).all()


def test_cross_validation_in_several_stacks_is_one_stack(monkeypatch):
    X, y = problem()
    params = dict(
        hidden_layer_sizes=(5,),
        alphas=[1e-4, 1e-1],
        learning_rate_inits=[1e-3, 1e-2],
        cv=3,
        max_iter=EPOCHS,
        batch_size=BATCH,
        random_state=0,
        tol=0.0,
        refit=False,
    )
    one = gpubp.MLPClassifierCV(**params).fit(X[:-7], y[:-7])
    assert len(one._chunks(Plan(one), list(range(12)), [P, 5, 3], N - 7)) == 1
    monkeypatch.setattr(cv_search, "STACK_BYTES", 1)  # a network a stack
    assert len(one._chunks(Plan(one), list(range(12)), [P, 5, 3], N - 7)) == 12
    several = gpubp.MLPClassifierCV(**params).fit(X[:-7], y[:-7])
    for key, value in one.cv_results_.items():
        if "time" not in key:
            np.testing.assert_array_equal(several.cv_results_[key], value, err_msg=key)
    assert (several.alpha_, several.learning_rate_init_) == (one.alpha_, one.learning_rate_init_)
