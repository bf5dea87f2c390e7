"""Data-parallel training over MPI: the ranks' result is the single process's result."""

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from mpi_train import COMMON, problem

import gpubp
from gpubp.distributed import DistributedError, communicator, shard

HERE = Path(__file__).resolve().parent


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), or on the PATH, if it runs."""
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
    )
    if probe.returncode != 0:
        pytest.skip(f"mpiexec cannot start 2 ranks here: {probe.stderr.strip()[-300:]}")
    return exe


def launch(scenario, out, ranks=2, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
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
        env=env,
    )


def single_process(Estimator, target, **kw):
    X, y = problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Estimator(**COMMON, **kw).fit(X, y if target == "y" else X[:, 0] * 2.0)


def test_two_ranks_train_the_weights_of_one_process(tmp_path):
    out = launch("equal", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    for name, kw in [
        ("sgd", dict(solver="sgd", momentum=0.9, nesterovs_momentum=True)),
        ("adam", dict(solver="adam", learning_rate_init=0.01)),
    ]:
        ranks = [np.load(tmp_path / f"{name}-rank{r}.npz") for r in range(2)]
        one = single_process(gpubp.MLPClassifier, "y", **kw)
        expected = one.coefs_ + one.intercepts_
        for k, want in enumerate(expected):
            np.testing.assert_array_equal(ranks[0][f"arr_{k}"], ranks[1][f"arr_{k}"])
            np.testing.assert_allclose(ranks[0][f"arr_{k}"], want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ranks[0]["loss"], one.loss_curve_, rtol=1e-10)
        assert list(ranks[1]["classes"]) == [0, 1, 2]
        reg = single_process(gpubp.MLPRegressor, "x", **kw)
        np.testing.assert_allclose(ranks[1]["reg_W"], reg.coefs_[0], rtol=1e-10, atol=1e-12)


def test_early_stopping_stops_every_rank_at_the_same_epoch(tmp_path):
    out = launch("early", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    a, b = (np.load(tmp_path / f"early-rank{r}.npz") for r in range(2))
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
    with pytest.raises(DistributedError, match="pip install 'gpubp\\[mpi\\]'"):
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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
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
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("test accuracy") == 1  # one report, from rank 0
    assert "1347 training" in out.stdout and (tmp_path / "model.npz").exists()
    assert gpubp.load(tmp_path / "model.npz").n_features_in_ == 64  # a normal model file
