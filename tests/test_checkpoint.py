"""Checkpoints: runs killed (SIGKILL, SIGTERM) in processes of their own and resumed end
bit for bit where the uninterrupted run ends; writes killed at random points leave a
checkpoint that loads; another run's checkpoint is refused."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoint_run import SCENARIOS, outcome, problem

import gpubp
from gpubp.checkpoint import Folder, Run, cadence, pack, read, unpack
from gpubp.errors import PREEMPTED, CheckpointError, InputError

HERE = Path(__file__).resolve().parent
RUN = HERE / "checkpoint_run.py"
ALL = list(SCENARIOS)


def start(out, every, names):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
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
def uninterrupted(tmp_path_factory):
    """Every scenario trained without a checkpoint, in a process of its own."""
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
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        elif process.returncode == 0:  # the signal came after the last fit
            return landed
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


def test_runs_killed_at_random_steps_end_bit_for_bit_as_uninterrupted(tmp_path, uninterrupted):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    landed = kill_chain(tmp_path, "0s", ALL, rng, kills=4, window=5.0)
    assert landed >= 1
    assert_same(results(tmp_path, ALL), uninterrupted)


def test_runs_killed_at_epoch_ends_and_preempted_resume_bit_for_bit(tmp_path, uninterrupted):
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    names = ["adaptive_early", "adam_stack", "adam_streamed"]
    kill_chain(tmp_path / "k", "1", names, rng, kills=2, window=2.0)
    kill_chain(tmp_path / "t", "auto", names, rng, kills=2, window=2.0, sig=signal.SIGTERM)
    for folder in ("k", "t"):
        assert_same(results(tmp_path / folder, names), {n: uninterrupted[n] for n in names})
