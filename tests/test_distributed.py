"""Data-parallel training over MPI: the ranks' result is the single process's result."""

import functools
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import standin_installed
from mpi_train import COMMON, SOLVERS, STACKS, problem
from test_cli import gpubp_cmd

import gpubp
from gpubp import distributed
from gpubp.distributed import DistributedError, communicator, shard

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("leaves_nothing_behind")]

HERE = Path(__file__).resolve().parent
# The environment before any test initialised MPI in this process: a singleton MPI_Init
# (Open MPI's) adds variables that make a child mpiexec fail, exit 1 and no message.
ENV = dict(os.environ)


def rank_environ(**extra) -> dict:
    return {**ENV, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **extra}


@functools.cache
def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), or on the PATH, if it runs
    (probed once: a skip is not cached, and probes again)."""
    pytest.importorskip("mpi4py")
    exe = Path(sys.executable).with_name("mpiexec")
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec: pip install mpich (or an MPI runtime)")
    probe = subprocess.run(
        [
            exe,
            "-n",
            "2",
            sys.executable,
            "-c",
            "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    if probe.returncode != 0:
        said = (probe.stderr + probe.stdout).strip()[-300:]  # Open MPI reports on stdout
        pytest.skip(f"mpiexec cannot start 2 ranks here (exit {probe.returncode}): {said}")
    return exe


def launch(scenario, out, ranks=2, timeout=180, **env):
    return subprocess.run(
        [
            mpiexec(),
            "-n",
            str(ranks),
            sys.executable,
            str(HERE / "mpi_train.py"),
            scenario,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=rank_environ(**env),
    )


def single_process(Estimator, target, **kw):
    X, y = problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Estimator(**COMMON, **kw).fit(X, y if target == "y" else X[:, 0] * 2.0)


def ranks_trained_as(one, folder, prefix, ranks=2):
    """Each rank's saved weights (``{prefix}-rank{r}.npz``), checked to be the same on every
    rank and those of ``one``, a single process, to float64 rounding."""
    saved = [np.load(folder / f"{prefix}-rank{r}.npz") for r in range(ranks)]
    for k, want in enumerate(one.coefs_ + one.intercepts_):
        for other in saved[1:]:
            np.testing.assert_array_equal(saved[0][f"arr_{k}"], other[f"arr_{k}"])
        np.testing.assert_allclose(saved[0][f"arr_{k}"], want, rtol=1e-10, atol=1e-12)
    return saved


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The folder of one job of two ranks that ran the scenarios the tests read."""
    folder = tmp_path_factory.mktemp("ranks")
    out = launch("equal,replicated,streamed,stacks,early", folder, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return folder


def test_two_ranks_train_the_weights_of_one_process(job):
    for name, kw in SOLVERS.items():
        one = single_process(gpubp.MLPClassifier, "y", **kw)
        ranks = ranks_trained_as(one, job, name)
        np.testing.assert_allclose(ranks[0]["loss"], one.loss_curve_, rtol=1e-10)
        assert list(ranks[1]["classes"]) == [0, 1, 2]
        reg = single_process(gpubp.MLPRegressor, "x", **kw)
        np.testing.assert_allclose(ranks[1]["reg_W"], reg.coefs_[0], rtol=1e-10, atol=1e-12)


def test_ranks_that_lack_a_class_encode_the_classes_of_every_rank(job):
    X, y = problem()
    order = np.argsort(y, kind="stable")
    for rank in range(2):
        assert len(set(y[order][shard(len(y), rank, 2)])) < 3  # a class is missing here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = gpubp.MLPClassifier(**COMMON, **SOLVERS["sgd"]).fit(X[order], y[order])
    for saved in ranks_trained_as(one, job, "lacking"):
        assert list(saved["classes"]) == [0, 1, 2]


def test_every_rank_passing_all_the_data_trains_once_on_it_not_on_copies(job):
    one = single_process(gpubp.MLPClassifier, "y", **SOLVERS["sgd"])
    for rank in range(2):
        got = np.load(job / f"replicated-rank{rank}.npz")
        for k, want in enumerate(one.coefs_ + one.intercepts_):
            np.testing.assert_allclose(got[f"arr_{k}"], want, rtol=1e-10, atol=1e-12)


def test_streamed_shards_train_the_weights_of_one_process(job):
    """Each rank's X memory-mapped and read a chunk at a time: the weights of one process,
    also when every rank maps all the rows, and early stopping's scores are those of the
    ranks' resident data."""
    one = single_process(gpubp.MLPClassifier, "y", **SOLVERS["sgd"])
    ranks = ranks_trained_as(one, job, "streamed")
    for saved in ranks:
        np.testing.assert_allclose(saved["replicated"], one.coefs_[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(saved["scores"], saved["resident_scores"])
        assert 1 < len(saved["scores"]) < 200


def test_the_command_trains_data_parallel_on_all_the_data(tmp_path):
    args = ["train", "--data", "diabetes", "--hidden", "8", "--epochs", "4", "--quiet"]
    args += ["--dtype", "float64", "--batch-size", "50", "--seed", "3"]
    command = [sys.executable, "-m", "gpubp.cli", *args]
    out = subprocess.run(
        [mpiexec(), "-n", "2", *command, "--distributed", "mpi", "--out", "ranks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=rank_environ(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("test R^2") == 1  # rank 0 reports
    one = gpubp_cmd(*args, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    ranks, single = (gpubp.load(tmp_path / d / "model.safetensors") for d in ("ranks", "one"))
    assert gpubp.persist.describe(tmp_path / "ranks" / "model.safetensors")["record"]["ranks"] == 2
    for got, want in zip(ranks.coefs_ + ranks.intercepts_, single.coefs_ + single.intercepts_):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_stacks_of_starts_and_folds_over_two_ranks_train_as_one_process(job):
    ens = single_process(gpubp.MLPClassifier, "y", **STACKS["starts"])
    ranks = ranks_trained_as(ens, job, "stacks")
    np.testing.assert_allclose(ranks[0]["loss"], ens.loss_curve_, rtol=1e-10)
    clf = single_process(gpubp.MLPClassifierCV, "y", **STACKS["cv"])
    reg = single_process(gpubp.MLPRegressorCV, "x", **STACKS["cv"])
    for saved in ranks:  # every rank scored every network on all its held-out rows
        np.testing.assert_array_equal(saved["clf_scores"], clf.cv_results_["split0_test_score"])
        np.testing.assert_allclose(saved["clf_mean"], clf.cv_results_["mean_test_score"])
        np.testing.assert_allclose(saved["reg_mean"], reg.cv_results_["mean_test_score"], 1e-10)
        np.testing.assert_allclose(saved["clf_W"], clf.best_estimator_.coefs_[0], 1e-10, 1e-12)
        np.testing.assert_allclose(saved["reg_W"], reg.best_estimator_.coefs_[0], 1e-10, 1e-12)
    assert len(set(reg.cv_results_["mean_test_score"])) == 4  # the settings do differ
    np.testing.assert_array_equal(ranks[0]["early"], ranks[1]["early"])
    np.testing.assert_array_equal(ranks[0]["early_scores"], ranks[1]["early_scores"])
    assert ranks[0]["early"][0] < 50  # stopped early, on both ranks at once
    bag = single_process(gpubp.MLPRegressor, "x", **STACKS["bagging"])
    for saved in ranks:  # the same bootstrap samples, each rank its own columns of them
        np.testing.assert_allclose(saved["bag_W"], bag.coefs_[0], rtol=1e-10, atol=1e-12)
        assert float(saved["bag_oob"]) == pytest.approx(bag.oob_score_, rel=1e-10)


def test_early_stopping_stops_every_rank_at_the_same_epoch(job):
    a, b = (np.load(job / f"early-rank{r}.npz") for r in range(2))
    assert int(a["n_iter"]) == int(b["n_iter"]) < 200
    np.testing.assert_array_equal(a["scores"], b["scores"])


@pytest.mark.parametrize(
    "scenario,words",
    [
        ("empty", "rank 0: InputError: y: Found array with 0 sample"),
        ("features", "different numbers of features"),
    ],
)
def test_bad_shards_fail_on_every_rank_instead_of_hanging(tmp_path, scenario, words):
    out = launch(scenario, tmp_path, timeout=120)
    assert out.returncode != 0
    for rank in range(2):
        assert f"rank {rank}: DistributedError" in out.stdout, out.stdout + out.stderr
    assert words in out.stdout


def test_without_mpi4py_asking_for_mpi_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(DistributedError, match="pip install mpi4py mpich"):
        communicator("mpi", "numpy")
    assert communicator("auto", "numpy") is None and communicator(None, "numpy") is None
    with pytest.raises(gpubp.InputError, match="distributed='ring'"):
        communicator("ring", "numpy")


def test_one_process_with_auto_trains_as_before():
    pytest.importorskip("mpi4py")
    plain = single_process(gpubp.MLPClassifier, "y", solver="sgd")
    auto = single_process(gpubp.MLPClassifier, "y", solver="sgd", distributed="auto")
    for a, b in zip(plain.coefs_, auto.coefs_):
        np.testing.assert_array_equal(a, b)


def test_shards_cover_the_rows_once():
    for n, size in [(103, 2), (7, 3), (1, 2), (10, 10)]:
        rows = np.concatenate([np.arange(n)[shard(n, r, size)] for r in range(size)])
        np.testing.assert_array_equal(rows, np.arange(n))


def test_the_command_trains_data_parallel_and_rank_0_reports(tmp_path):
    out = subprocess.run(
        [
            mpiexec(),
            "-n",
            "2",
            sys.executable,
            "-m",
            "gpubp.cli",
            "train",
            "--distributed",
            "mpi",
            "--epochs",
            "30",
            "--quiet",
            "--hidden",
            "32",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=rank_environ(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("test accuracy") == 1  # one report, from rank 0
    assert "1347 training" in out.stdout and (tmp_path / "gpubp-run" / "model.safetensors").exists()
    assert (
        gpubp.load(tmp_path / "gpubp-run" / "model.safetensors").n_features_in_ == 64
    )  # a normal model file


# -- NCCL (on the CuPy stand-in: an all-reduce over MPI behind device pointers) ------------


@pytest.fixture
def fresh_communicators(monkeypatch):
    pytest.importorskip("mpi4py")
    monkeypatch.setattr(distributed, "_COMMUNICATORS", {})


@pytest.mark.gpu
def test_nccl_missing_says_why_and_what_to_install(fresh_communicators, monkeypatch):
    from cupy.cuda import nccl

    monkeypatch.setattr(nccl, "available", False)
    with pytest.raises(DistributedError, match="nvidia-nccl-cu12.*distributed='mpi'"):
        communicator("nccl", "cupy")


@pytest.mark.gpu
def test_the_nccl_communicator_is_built_once_and_timed_without_waiting(fresh_communicators):
    import cupy

    comm = communicator("nccl", "cupy")
    assert communicator("nccl", "cupy") is comm  # not once per fit
    buf = cupy.ones(100, dtype=cupy.float32)
    comm.reset_timer()
    counting = getattr(cupy, "counting", None)
    if counting is None:  # a real GPU: the sum and the time are what can be checked
        comm.allreduce(buf)
        assert comm.seconds > 0 and float(buf[0]) == comm.size
        return
    with counting() as seen:
        comm.allreduce(buf)
        comm.allreduce(buf)
    assert seen.syncs == 0 and seen.d2h == 0  # the step never waits for the timer
    with counting() as seen:
        assert comm.seconds >= 0
    assert seen.syncs == 1  # reading the time waits for the last all-reduce, once


@pytest.mark.gpu
def test_two_ranks_on_two_gpus_train_the_weights_of_one_process(tmp_path):
    if not standin_installed():
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 2:
            pytest.skip("needs two GPUs")
    out = launch("nccl", tmp_path, GPUBP_STANDIN_DEVICES="2")
    assert out.returncode == 0, out.stdout + out.stderr
    ranks_trained_as(single_process(gpubp.MLPClassifier, "y", **SOLVERS["sgd"]), tmp_path, "nccl")


@pytest.mark.gpu
def test_two_ranks_on_one_gpu_are_refused_with_nccl(tmp_path):
    if not standin_installed():
        import cupy

        if cupy.cuda.runtime.getDeviceCount() != 1:
            pytest.skip("needs a machine with one GPU")
    out = launch("nccl", tmp_path, GPUBP_STANDIN_DEVICES="1")
    assert out.returncode != 0
    assert out.stdout.count("share the GPU") == 2, out.stdout + out.stderr  # on every rank


@pytest.mark.gpu
def test_one_rank_with_nccl_trains_the_weights_of_one_process(tmp_path):
    out = launch("nccl", tmp_path, ranks=1, GPUBP_STANDIN_DEVICES="1")
    assert out.returncode == 0, out.stdout + out.stderr
    one = single_process(gpubp.MLPClassifier, "y", **SOLVERS["sgd"])
    ranks_trained_as(one, tmp_path, "nccl", ranks=1)


@pytest.mark.gpu
def test_two_ranks_sharing_the_gpu_train_over_mpi_as_one_process_on_the_cpu(tmp_path):
    """Host all-reduce of device gradients: both ranks on the one GPU."""
    out = launch("equal", tmp_path, GPUBP_BACKEND="cupy", GPUBP_STANDIN_DEVICES="1")
    assert out.returncode == 0, out.stdout + out.stderr
    for name, kw in SOLVERS.items():
        one = single_process(gpubp.MLPClassifier, "y", backend="numpy", **kw)
        ranks = ranks_trained_as(one, tmp_path, name)
        np.testing.assert_allclose(ranks[0]["loss"], one.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize(
    "scenario, said, timeout",
    [
        ("raises", "RuntimeError: rank 1 failed", "600"),  # the exception aborts the job
        ("killed", "signal 9", "600"),  # the launcher sees it
        ("vanishes", "rank 0 waited more than 2 s for the other ranks", "2"),  # the watchdog
    ],
)
def test_a_rank_that_fails_ends_every_rank_within_30_s(tmp_path, scenario, said, timeout):
    """Rank 1 raises, is killed (SIGKILL) or is stopped (SIGSTOP: it neither dies nor
    answers) at its 20th step: the job ends, non-zero, instead of waiting for ever."""
    import time

    start = time.monotonic()
    out = launch(scenario, tmp_path, timeout=60, GPUBP_COLLECTIVE_TIMEOUT=timeout)
    assert out.returncode != 0
    assert time.monotonic() - start < 30
    assert said in out.stdout + out.stderr


def test_two_ranks_preempted_resume_bit_for_bit(tmp_path):
    """Rank 1 alone gets SIGUSR1: both stop after the same step, rank 0 writes the
    checkpoint, both exit 75; run again, the job ends with the uninterrupted job's bits."""
    from gpubp.errors import PREEMPTED

    plain = launch("checkpoint-none", tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    preempted = launch("checkpoint-preempted", tmp_path)
    assert preempted.returncode == PREEMPTED, preempted.stdout + preempted.stderr
    assert not list(tmp_path.glob("checkpoint-preempted-rank*.npz"))
    again = launch("checkpoint", tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    for rank in range(2):
        want = np.load(tmp_path / f"checkpoint-none-rank{rank}.npz")
        got = np.load(tmp_path / f"checkpoint-rank{rank}.npz")
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key])
    one = launch("checkpoint", tmp_path, ranks=1)  # the same job on one rank: refused
    said = one.stdout + one.stderr
    assert one.returncode != 0 and "ranks was 2 and is now 1" in said, said
