"""Checkpoints: runs killed (SIGKILL, SIGTERM) in processes of their own and resumed end
bit for bit where the uninterrupted run ends; writes killed at random points leave a
checkpoint that loads; another run's checkpoint is refused."""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from checkpoint_run import SCENARIOS, outcome, problem
from mpi_train import at_step
from test_cli import gpubp_cmd

import gpubp
from gpubp.checkpoint import Run, cadence
from gpubp.checkpoint_files import KEPT, Folder, pack, read, unpack
from gpubp.errors import PREEMPTED, CheckpointError, InputError

pytestmark = pytest.mark.usefixtures("leaves_nothing_behind")

HERE = Path(__file__).resolve().parent
RUN = HERE / "checkpoint_run.py"
ALL = list(SCENARIOS)
# What a chain of real kills and the CuPy path's crashes run (every scenario is crashed
# in-process on NumPy): weights, early stopping, streaming, a stack whose networks stop
# apart, a CV estimator, streamed bagging.
KILLED = [
    "adam_weighted",
    "adaptive_early",
    "adam_streamed",
    "sgd_stack_stops",
    "sgd_cv",
    "adam_bagging_streamed",
]


def start(out, every, names):
    paths = [str(HERE), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.Popen(
        [sys.executable, str(RUN), str(out), every, *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def results(folder, names):
    return {name: dict(np.load(folder / f"{name}.npz")) for name in names}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, gpubp_backend):
    """Every scenario trained without a checkpoint, in a process of its own (on the
    backend of the tests that ask for it)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    finish(start(folder, "none", ALL))
    return results(folder, ALL)


def kill_chain(folder, every, names, rng, kills, window, sig=signal.SIGKILL):
    """Start the scenarios, kill the process ``window`` * U(0, 1) s after it is ready,
    again and again (``kills`` times at most), then let it finish: the kills that
    landed before the process finished."""
    folder.mkdir(exist_ok=True)
    landed = 0
    for _ in range(kills):
        process = start(folder, every, names)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(window * rng.uniform())
        if process.poll() is not None:
            finish(process)
            return landed
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
        if process.returncode == 0:  # it finished before the signal came
            return landed
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:  # preempted in a fit, or stopped outside one by the default handler
            assert process.returncode in (PREEMPTED, -signal.SIGTERM), err[-3000:]
        landed += 1
    finish(start(folder, every, names))
    return landed


def assert_same(resumed, uninterrupted):
    for name, expected in uninterrupted.items():
        got = resumed[name]
        assert set(got) == set(expected), name
        for key, value in expected.items():
            assert np.array_equal(got[key], value), f"{name}: {key} differs"


def crash_at_step(monkeypatch, n):
    """Make the n-th optimiser step of this process raise Crash."""

    def crash():
        raise Crash

    at_step(n, crash, monkeypatch.setattr)


@pytest.mark.backends("numba")
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("at", [13, 40, 130])
def test_a_fit_that_crashed_inside_an_epoch_resumes_bit_for_bit(
    tmp_path, monkeypatch, uninterrupted, name, at
):
    """A checkpoint after every step ("0s"), a crash at step 13 (the first epoch of the
    scenarios has 15 steps), 40 or 130 (if the fit gets there): run again, the fit ends as
    the uninterrupted one."""
    crash_and_resume(tmp_path, monkeypatch, uninterrupted, name, at)


@pytest.mark.backends("cupy")
@pytest.mark.parametrize("name", KILLED)
@pytest.mark.parametrize("at", [13, 40, 130])
def test_a_fit_on_the_device_that_crashed_resumes_bit_for_bit(
    tmp_path, monkeypatch, uninterrupted, name, at
):
    """The same on the CuPy path (a checkpoint of device arrays), for the scenarios that
    span what a checkpoint holds: case weights, early stopping, streamed data, a stack
    whose networks stop apart, a CV estimator, bagging."""
    crash_and_resume(tmp_path, monkeypatch, uninterrupted, name, at)


def crash_and_resume(tmp_path, monkeypatch, uninterrupted, name, at):
    model, X, y, w = problem(name, tmp_path)
    model.set_params(checkpoint=str(tmp_path / name), checkpoint_every="0s")
    crash_at_step(monkeypatch, at)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X, y, sample_weight=w)
        except Crash:
            pass
    monkeypatch.undo()
    assert list((tmp_path / name).rglob("checkpoint-*.npz"))  # (the CV's in subfolders)
    again, X, y, w = problem(name, tmp_path)
    again.set_params(checkpoint=str(tmp_path / name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.fit(X, y, sample_weight=w)
    assert_same({name: outcome(again)}, {name: uninterrupted[name]})


@pytest.mark.slow
def test_runs_killed_at_random_steps_end_bit_for_bit_as_uninterrupted(tmp_path, uninterrupted):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    landed = kill_chain(tmp_path, "0s", KILLED, rng, kills=4, window=1.0)
    assert landed >= 3  # a chain of at least three kills (the fits take longer than 3 s)
    assert_same(results(tmp_path, KILLED), {n: uninterrupted[n] for n in KILLED})


@pytest.mark.slow
def test_runs_killed_at_epoch_ends_and_preempted_resume_bit_for_bit(tmp_path, uninterrupted):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    names = ["adaptive_early", "adam_stack", "adam_streamed"]
    kill_chain(tmp_path / "k", "1", names, rng, kills=2, window=2.0)
    kill_chain(tmp_path / "t", "auto", names, rng, kills=2, window=2.0, sig=signal.SIGTERM)
    for folder in ("k", "t"):
        assert_same(results(tmp_path / folder, names), {n: uninterrupted[n] for n in names})


# -- in one process ------------------------------------------------------------------------


def small(**kw):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16).astype(np.float32), y[:300]
    settings = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=50, max_iter=5, tol=0.0)
    return gpubp.MLPClassifier(**dict(settings, **kw)), X, y


def coefs(model):
    return [np.asarray(W) for W in model.coefs_]


class Crash(Exception):
    pass


def crash_after_epoch(monkeypatch, n):
    """Make a fit stop with Crash after the checkpoint at the end of epoch n."""
    original = Run.epoch_ended

    def ended(self, n_iter):
        original(self, n_iter)
        if n_iter == n:
            raise Crash

    monkeypatch.setattr(Run, "epoch_ended", ended)


@pytest.mark.parametrize(
    "every, expected",
    [
        ("auto", dict(seconds=60.0, at_epoch_end=True, epochs=None)),
        (1, dict(epochs=1, seconds=None)),
        ("3", dict(epochs=3, seconds=None)),
        ("30s", dict(seconds=30.0, at_epoch_end=False)),
        ("0.5s", dict(seconds=0.5, at_epoch_end=False)),
    ],
)
def test_checkpoint_every_reads_epochs_and_seconds(every, expected):
    c = cadence(every)
    assert {k: getattr(c, k) for k in expected} == expected


@pytest.mark.parametrize("every", [0, "0", True, "x", "-1s", "1m", 1.5])
def test_a_cadence_that_is_neither_is_refused(every):
    with pytest.raises(InputError, match="checkpoint_every"):
        cadence(every)


def test_the_state_packs_and_unpacks_as_it_was():
    state = {
        "total": np.float32(1.25),
        "sum": np.array(2.5, dtype=np.float32),
        "curve": [0.1, float("inf"), None],
        "rng": np.random.default_rng(3).bit_generator.state,
        "rows": np.arange(4, dtype=np.int32),
        "t": 7,
    }
    arrays = {}
    tree = pack(state, arrays)
    import json

    back = unpack(json.loads(json.dumps(tree)), arrays)
    assert back["total"].dtype == np.float32 and back["total"].shape == () and back["total"] == 1.25
    assert back["sum"].dtype == np.float32 and back["sum"].shape == ()
    assert back["curve"] == [0.1, float("inf"), None] and back["t"] == 7
    assert back["rng"] == state["rng"]
    assert back["rows"].dtype == np.int32 and np.array_equal(back["rows"], np.arange(4))


@pytest.mark.backends
def test_a_crashed_fit_run_again_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    model, X, y = small(solver="sgd", learning_rate="invscaling", learning_rate_init=0.3)
    expected = model.fit(X, y)
    crash_after_epoch(monkeypatch, 2)
    again, _, _ = small(
        solver="sgd", learning_rate="invscaling", learning_rate_init=0.3, checkpoint=tmp_path
    )
    again.set_params(checkpoint_every=1)
    with pytest.raises(Crash):
        again.fit(X, y)
    monkeypatch.undo()
    again.fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(coefs(again), coefs(expected)))
    assert again.loss_curve_ == expected.loss_curve_ and again.n_iter_ == 5


def test_a_checkpoint_written_on_one_backend_resumes_on_the_other(tmp_path, monkeypatch):
    """NumPy to CuPy and back (the CuPy stand-in in CI): the resumed fit agrees with the
    uninterrupted one to float rounding, and runs on the backend it was asked for."""
    from gpubp.backend import probe_cupy

    if probe_cupy()[0] is None:
        pytest.skip("needs CuPy and a device (or the CuPy stand-in)")
    kw = dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.3)
    for first, second in [("numpy", "cupy"), ("cupy", "numpy")]:
        folder = tmp_path / first
        model, X, y = small(**kw, backend=first, checkpoint=folder, checkpoint_every=1)
        expected = small(**kw, backend=first)[0].fit(X, y)
        crash_after_epoch(monkeypatch, 2)
        with pytest.raises(Crash):
            model.fit(X, y)
        monkeypatch.undo()
        resumed = small(**kw, backend=second, checkpoint=folder)[0].fit(X, y)
        assert resumed.backend_ == second and resumed.n_iter_ == 5
        for a, b in zip(coefs(resumed), coefs(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(resumed.loss_curve_, expected.loss_curve_, rtol=1e-5)


@pytest.mark.backends
def test_a_finished_fit_does_not_train_again(tmp_path, monkeypatch):
    model, X, y = small(checkpoint=tmp_path)
    model.fit(X, y)
    weights, curve = coefs(model), list(model.loss_curve_)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(gpubp.epoch.Epoch, "take_steps", no_training)
    fresh, _, _ = small(checkpoint=tmp_path)
    fresh.fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(coefs(fresh), weights))
    assert fresh.loss_curve_ == curve and fresh.n_iter_ == 5 and fresh.stop_reason_ == "max_iter"


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(hidden_layer_sizes=(9,)), "hidden_layer_sizes was \\[8\\] and is now \\[9\\]"),
        (dict(solver="sgd"), "solver was adam and is now sgd"),
        (dict(batch_size=30), "batch_size was 50 and is now 30"),
        (dict(dtype="float64"), "dtype was float32 and is now float64"),
        (dict(data="X"), "the training data"),
        (dict(data="w"), "the training data"),
        (dict(data="y"), "the training data"),
    ],
)
def test_another_runs_checkpoint_is_refused_saying_what_changed(tmp_path, change, words):
    model, X, y = small(checkpoint=tmp_path)
    model.fit(X, y)
    change = dict(change)
    what = change.pop("data", None)
    other, X2, y2 = small(checkpoint=tmp_path, **change)
    w = None
    if what == "X":
        X2 = X2.copy()
        X2[150, 3] += 0.5
    elif what == "y":
        y2 = y2.copy()
        y2[[0, 1]] = y2[[1, 0]]
    elif what == "w":
        w = np.ones(len(y2))
        w[7] = 2.0
    with pytest.raises(CheckpointError, match=words) as caught:
        other.fit(X2, y2, sample_weight=w)
    assert "start afresh" in str(caught.value)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, monkeypatch):
    model, X, y = small(solver="sgd", checkpoint=tmp_path, checkpoint_every=1)
    expected = small(solver="sgd")[0].fit(X, y)
    crash_after_epoch(monkeypatch, 3)
    with pytest.raises(Crash):
        model.fit(X, y)
    monkeypatch.undo()
    newest, before = Folder(tmp_path).files()
    raw = bytearray(Path(newest).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    Path(newest).write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="cannot be read; going on from .*checkpoint-00000002"):
        model.fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(coefs(model), coefs(expected)))
    for path in Folder(tmp_path).files():
        Path(path).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be read"):
        model.fit(X, y)


def test_a_full_disk_says_so_and_leaves_the_last_checkpoint(tmp_path, monkeypatch):
    import errno

    model, X, y = small(solver="sgd", checkpoint=tmp_path, checkpoint_every=1)
    original = Run.epoch_ended
    real_savez = np.savez

    def full(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    def ended(self, n_iter):
        if n_iter == 3:
            monkeypatch.setattr(np, "savez", full)
        original(self, n_iter)

    monkeypatch.setattr(Run, "epoch_ended", ended)
    with pytest.raises(
        CheckpointError, match="No space left on device.*checkpoint-00000002.npz is intact"
    ):
        model.fit(X, y)
    monkeypatch.setattr(np, "savez", real_savez)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-00000001.npz", "checkpoint-00000002.npz"]
    description, _ = read(tmp_path / "checkpoint-00000002.npz")
    assert description["state"]["history"]["n_iter"] == 2


def test_a_folder_that_cannot_be_written_is_refused_at_the_start(tmp_path):
    (tmp_path / "file").write_text("")
    model, X, y = small(checkpoint=tmp_path / "file" / "checkpoints")
    with pytest.raises(CheckpointError, match="cannot write checkpoints to"):
        model.fit(X, y)
    assert not hasattr(model, "coefs_") or model.n_iter_ == 0


@pytest.mark.parametrize("solver", ["lbfgs", "partial_fit"])
def test_checkpoints_need_fit_and_a_stochastic_solver(tmp_path, solver):
    model, X, y = small(checkpoint=tmp_path, solver="lbfgs" if solver == "lbfgs" else "adam")
    with pytest.raises(InputError, match="lbfgs|partial_fit"):
        if solver == "lbfgs":
            model.fit(X, y)
        else:
            model.partial_fit(X, y, classes=np.unique(y))


@pytest.mark.slow
def test_writes_killed_at_random_points_always_leave_a_checkpoint_that_loads(tmp_path):
    """200 writes killed (SIGKILL) at random moments: the newest file that remains reads
    whole and holds the values its description says; the leftovers are cleared."""
    from gpubp.checkpoint_files import FORMAT, VERSION

    def write(folder, k):
        arrays = {"a0": np.full(100_000, k, dtype=np.float64)}
        folder.write({"format": FORMAT, "version": VERSION, "identity": {}, "state": k}, arrays)

    folder = Folder(tmp_path)
    write(folder, 0)
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    mid_write, temporary = 0, set()
    for kill in range(1, 201):
        pid = os.fork()
        if pid == 0:  # the child writes until it is killed
            try:
                for k in range(kill * 10_000, kill * 10_000 + 10_000):
                    write(folder, k)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        left = {name for name in os.listdir(tmp_path) if name.endswith(".tmp")}
        mid_write += bool(left - temporary)  # this kill cut a write short
        temporary = left
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            description, arrays, _ = Folder(tmp_path, writer=False).latest()
        assert np.all(arrays["a0"] == description["state"])
    assert mid_write >= 20  # many kills fell inside a write
    folder = Folder(tmp_path)  # a writer clears what killed writes left
    write(folder, -1)
    assert len(os.listdir(tmp_path)) == KEPT  # no temporary files, no older checkpoints


# -- the command ---------------------------------------------------------------------------


def command(*args, cwd):
    """``gpubp args`` in a process of its own (to send it a signal), as ``gpubp_cmd``
    takes them."""
    return subprocess.Popen(
        [sys.executable, "-m", "gpubp.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_the_command_preempted_by_sigterm_exits_75_and_goes_on_when_run_again(tmp_path):
    args = ["train", "--quiet", "--data", "digits", "--epochs", "25", "--hidden", "16"]
    args += ["--tol", "0"]
    assert gpubp_cmd(*args, "--out", "plain", cwd=tmp_path).returncode == 0
    run = command(
        *args, "--out", "run", "--checkpoint", "ckpt", "--checkpoint-every", "0s", cwd=tmp_path
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "ckpt").glob("checkpoint-*.npz")):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == PREEMPTED, err
    assert err.splitlines() == [  # one line: where the checkpoint is, nothing of Python's
        "gpubp train: training preempted; its checkpoint is in ckpt: run the same command or "
        "fit again to go on; no model written"
    ]
    assert not (tmp_path / "run").exists()  # nothing in it: a run leaves no empty folder
    again = gpubp_cmd(*args, "--out", "run", "--checkpoint", "ckpt", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    plain = gpubp.load(tmp_path / "plain" / "model.safetensors", backend="numpy")
    resumed = gpubp.load(tmp_path / "run" / "model.safetensors", backend="numpy")
    assert all(np.array_equal(a, b) for a, b in zip(plain.coefs_, resumed.coefs_))
    assert plain.loss_curve_ == resumed.loss_curve_


def test_the_command_refuses_a_cadence_it_cannot_read(tmp_path):
    run = gpubp_cmd("train", "--checkpoint", "c", "--checkpoint-every", "soon", cwd=tmp_path)
    assert run.returncode == 2 and "--checkpoint-every" in run.stderr and "30s" in run.stderr


def test_the_command_refuses_a_checkpoint_folder_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    args = ["train", "--epochs", "2", "--checkpoint", "file/ckpt", "--out", "o"]
    run = gpubp_cmd(*args, cwd=tmp_path)
    assert run.returncode == 1 and "cannot write checkpoints to file/ckpt" in run.stderr
    assert not (tmp_path / "o" / "model.safetensors").exists()
