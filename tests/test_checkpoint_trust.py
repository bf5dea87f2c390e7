"""Checkpoints a user can trust: "auto" writes at the first epoch's end, a run that reads a
checkpoint says so, a finished run trains nothing, and a run that reached max_iter goes
on to a larger one, ending bit for bit where the longer run ends."""

import json
import threading
import time

import numpy as np
import pytest
from test_checkpoint import Crash, coefs, crash_after_epoch, crash_at_step, small

from gpubp import checkpoint
from gpubp.checkpoint import Alarm
from gpubp.checkpoint_files import Folder, read
from gpubp.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("leaves_nothing_behind")

LONGER = {
    "one network": dict(solver="adam"),
    "early stopping": dict(
        solver="sgd", learning_rate="adaptive", early_stopping=True, n_iter_no_change=50
    ),
    "a stack": dict(solver="sgd", n_init=3, learning_rate_init=0.3),
}


def newest(folder) -> dict:
    """The newest checkpoint's state (its JSON description's)."""
    return read(Folder(folder, writer=False).files()[0])[0]["state"]


def same(a, b) -> None:
    assert all(np.array_equal(x, y) for x, y in zip(coefs(a), coefs(b)))
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_


def test_auto_writes_at_the_first_epochs_end_then_at_most_once_a_minute(tmp_path, monkeypatch):
    model, X, y = small(checkpoint=tmp_path)
    crash_after_epoch(monkeypatch, 3)
    with pytest.raises(Crash):
        model.fit(X, y)
    state = newest(tmp_path)
    assert state["epochs"] == 1 and state["position"] is None and not state["finished"]
    assert len(Folder(tmp_path).files()) == 1  # epochs 2 and 3 ended within the minute
    monkeypatch.undo()
    resumed = small(checkpoint=tmp_path)[0].fit(X, y)
    same(resumed, small()[0].fit(X, y))
    assert newest(tmp_path)["finished"] == "max_iter"  # and always one at the end


def test_the_alarm_asks_for_a_checkpoint_once_its_seconds_pass_since_the_last_reset():
    stop = {"now": False, "save": False, "quit": ""}
    alarm = Alarm(0.3, stop)
    try:
        for _ in range(4):  # reset in time: it never rings
            time.sleep(0.1)
            alarm.reset()
        assert not stop["save"]
        deadline = time.monotonic() + 10
        while not stop["save"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert stop["now"]
    finally:
        alarm.close()
    assert "gpubp-checkpoint-timer" not in {t.name for t in threading.enumerate()}


def test_auto_writes_inside_an_epoch_longer_than_its_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "AUTO_SECONDS", 0.0)  # every epoch is "longer"
    model, X, y = small(checkpoint=tmp_path)
    crash_at_step(monkeypatch, 6)  # the last step of the first epoch
    with pytest.raises(Crash):
        model.fit(X, y)
    state = newest(tmp_path)
    assert state["epochs"] == 0 and 0 < state["position"]["sums"]["rows"] < 300


def test_a_resumed_fit_says_where_it_goes_on_from(tmp_path, monkeypatch, capsys):
    model, X, y = small(checkpoint=tmp_path, checkpoint_every=1)
    crash_after_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        model.fit(X, y)
    monkeypatch.undo()
    capsys.readouterr()
    small(checkpoint=tmp_path)[0].fit(X, y)
    err = capsys.readouterr().err
    assert "gpubp: going on from the checkpoint" in err and "after epoch 2 of 5" in err
    assert str(tmp_path) in err


def test_a_fit_resumed_inside_an_epoch_names_the_step(tmp_path, monkeypatch, capsys):
    model, X, y = small(checkpoint=tmp_path, checkpoint_every="0s")
    crash_at_step(monkeypatch, 9)  # the third step of epoch 2
    with pytest.raises(Crash):
        model.fit(X, y)
    monkeypatch.undo()
    state = newest(tmp_path)  # where the alarm (its own thread) last paused the fit
    rows = state["position"]["sums"]["rows"]
    assert 0 < rows < 300 and rows % 50 == 0
    capsys.readouterr()
    small(checkpoint=tmp_path)[0].fit(X, y)
    said = f"in epoch {state['epochs'] + 1} of 5, after step {rows // 50} of 6"
    assert said in capsys.readouterr().err


def test_a_finished_run_says_so_and_keeps_its_training_time(tmp_path, capsys):
    model, X, y = small(checkpoint=tmp_path)
    model.fit(X, y)
    seconds = newest(tmp_path)["seconds"]
    assert seconds > 0
    capsys.readouterr()
    again = small(checkpoint=tmp_path)[0].fit(X, y)
    err = capsys.readouterr().err
    assert "is finished (stopped: max_iter, after 5 epochs): nothing to train" in err
    same(again, model)
    assert newest(tmp_path)["seconds"] == seconds  # nothing written


@pytest.mark.parametrize("name", list(LONGER))
def test_raising_max_iter_goes_on_to_the_longer_runs_end_bit_for_bit(tmp_path, name, capsys):
    kw = LONGER[name]
    model, X, y = small(checkpoint=tmp_path, max_iter=3, **kw)
    model.fit(X, y)
    assert newest(tmp_path)["finished"] == "max_iter"
    capsys.readouterr()
    longer = small(checkpoint=tmp_path, max_iter=7, **kw)[0].fit(X, y)
    assert "after epoch 3 of 7 (it had reached max_iter=3)" in capsys.readouterr().err
    same(longer, small(max_iter=7, **kw)[0].fit(X, y))
    if name == "early stopping":
        assert longer.validation_scores_ == small(max_iter=7, **kw)[0].fit(X, y).validation_scores_


def test_max_iter_below_the_epochs_run_is_refused_by_name(tmp_path):
    model, X, y = small(checkpoint=tmp_path, max_iter=3)
    model.fit(X, y)
    with pytest.raises(CheckpointError, match="has run 3 epochs: max_iter was 3 and is now 2"):
        small(checkpoint=tmp_path, max_iter=2)[0].fit(X, y)


def test_a_run_that_stopped_improving_stays_finished_with_a_larger_max_iter(tmp_path, capsys):
    kw = dict(tol=10.0, n_iter_no_change=1, checkpoint=tmp_path)
    model, X, y = small(**kw)
    model.fit(X, y)
    assert model.stop_reason_ == "no_improvement" and model.n_iter_ < 5
    capsys.readouterr()
    again = small(**dict(kw, max_iter=50))[0].fit(X, y)
    assert "stopped: no_improvement" in capsys.readouterr().err
    same(again, model)


def test_a_finished_checkpoint_of_the_earlier_format_still_trains_nothing(tmp_path):
    """Before, the last checkpoint held the fit's end, ``finished`` True, no epoch count."""
    model, X, y = small(checkpoint=tmp_path)
    model.fit(X, y)
    path = Folder(tmp_path).files()[0]
    description, arrays = read(path)
    state = description["state"]
    state["finished"] = True
    del state["epochs"], state["seconds"]
    del description["arrays"]
    Folder(tmp_path).write(description, arrays)
    again = small(checkpoint=tmp_path)[0].fit(X, y)
    same(again, model)
    with pytest.raises(CheckpointError, match="max_iter was 5 and is now 9"):
        small(checkpoint=tmp_path, max_iter=9)[0].fit(X, y)


def test_the_checkpoint_says_why_the_loop_stopped_and_its_epochs(tmp_path):
    model, X, y = small(checkpoint=tmp_path, n_init=2, solver="sgd")
    model.fit(X, y)
    state = newest(tmp_path)
    assert state["finished"] == "max_iter" and state["epochs"] == 5
    assert json.loads(json.dumps(state["history"]["stop_reasons"])) == ["", ""]
