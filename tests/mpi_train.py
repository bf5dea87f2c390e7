"""Run under ``mpiexec -n R`` by tests/test_distributed.py: train on this rank's shard.

python tests/mpi_train.py SCENARIO[,SCENARIO...] OUTDIR

Several scenarios run one after the other in the same ranks (each rank pays its imports
once).
"""

import os
import signal
import sys
import warnings
from pathlib import Path

import numpy as np

import gpubp
from gpubp.distributed import DistributedError, shard

# 103 cases in batches of 10: the last batch, of 3, does not split evenly over 2 ranks.
COMMON = dict(
    hidden_layer_sizes=(7,),
    batch_size=10,
    max_iter=3,
    random_state=0,
    dtype="float64",
    alpha=1e-3,
    tol=0.0,
    n_iter_no_change=100,
)
SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}


STACKS = {
    "starts": dict(SOLVERS["adam"], n_init=3, ensemble="average"),
    "cv": dict(SOLVERS["sgd"], alphas=[1e-3, 1.0], learning_rate_inits=[0.01, 0.1], cv=3),
    "early": dict(
        SOLVERS["adam"], n_init=2, early_stopping=True, max_iter=50, n_iter_no_change=3, tol=1e-4
    ),
    "bagging": dict(SOLVERS["adam"], n_init=3, ensemble="bagging"),
}


def fail():
    raise RuntimeError("rank 1 failed")


FAULTS = {
    "raises": fail,
    "killed": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "vanishes": lambda: os.kill(os.getpid(), signal.SIGSTOP),  # stopped, not dead
}


def at_step(n, act, patch=setattr):
    """Call ``act()`` before this process's optimisers take their n-th step (their ``step``
    replaced through ``patch``, e.g. a test's ``monkeypatch.setattr``)."""
    steps = [0]
    for kind in (gpubp.optim.SGD, gpubp.optim.Adam):
        original = kind.step

        def step(self, *args, original=original):
            steps[0] += 1
            if steps[0] == n:
                act()
            return original(self, *args)

        patch(kind, "step", step)


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(103, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def run(scenario, out, rank, size):
    X, y = problem()
    common = {**COMMON, "distributed": "mpi"}
    part = shard(len(X), rank, size)
    if scenario == "equal":
        for name, kw in SOLVERS.items():
            clf = gpubp.MLPClassifier(**common, **kw).fit(X[part], y[part])
            reg = gpubp.MLPRegressor(**common, **kw).fit(X[part], X[part, 0] * 2.0)
            np.savez(
                out / f"{name}-rank{rank}.npz",
                *clf.coefs_,
                *clf.intercepts_,
                reg_W=reg.coefs_[0],
                loss=np.array(clf.loss_curve_),
                classes=clf.classes_,
            )
        # sorted by class, rank 0's rows hold no case of class 2 and rank 1's none of 0
        order = np.argsort(y, kind="stable")
        mine = order[part]
        lacking = gpubp.MLPClassifier(**common, **SOLVERS["sgd"]).fit(X[mine], y[mine])
        np.savez(
            out / f"lacking-rank{rank}.npz",
            *lacking.coefs_,
            *lacking.intercepts_,
            classes=lacking.classes_,
        )
    elif scenario == "stacks":  # random starts and cross-validation as stacks, over the ranks
        ens = gpubp.MLPClassifier(**common, **STACKS["starts"]).fit(X[part], y[part])
        clf = gpubp.MLPClassifierCV(**common, **STACKS["cv"]).fit(X[part], y[part])
        reg = gpubp.MLPRegressorCV(**common, **STACKS["cv"]).fit(X[part], X[part, 0] * 2.0)
        early = gpubp.MLPClassifier(**{**common, **STACKS["early"]}).fit(X[part], y[part])
        bag = gpubp.MLPRegressor(**common, **STACKS["bagging"]).fit(X[part], X[part, 0] * 2.0)
        np.savez(
            out / f"stacks-rank{rank}.npz",
            *ens.coefs_,
            *ens.intercepts_,
            loss=np.array(ens.loss_curve_),
            clf_scores=clf.cv_results_["split0_test_score"],
            clf_mean=clf.cv_results_["mean_test_score"],
            clf_W=clf.best_estimator_.coefs_[0],
            reg_mean=reg.cv_results_["mean_test_score"],
            reg_W=reg.best_estimator_.coefs_[0],
            early=np.array([early.n_iter_, early.best_init_]),
            early_scores=np.array(early.validation_scores_),
            bag_W=bag.coefs_[0],
            bag_oob=bag.oob_score_,
        )
    elif scenario == "early":
        params = {
            **common,
            "max_iter": 200,
            "early_stopping": True,
            "n_iter_no_change": 3,
            "tol": 1e-4,
        }
        clf = gpubp.MLPClassifier(**params).fit(X[part], y[part])
        np.savez(
            out / f"early-rank{rank}.npz",
            n_iter=clf.n_iter_,
            scores=np.array(clf.validation_scores_),
        )
    elif scenario == "nccl":  # the device all-reduce, one GPU per rank
        kw = {**common, **SOLVERS["sgd"], "distributed": "nccl", "backend": "cupy"}
        clf = gpubp.MLPClassifier(**kw).fit(X[part], y[part])
        np.savez(out / f"nccl-rank{rank}.npz", *clf.coefs_, *clf.intercepts_)
    elif scenario == "replicated":  # every rank passes all the rows: each takes its shard
        clf = gpubp.MLPClassifier(**common, **SOLVERS["sgd"]).fit(X, y)
        np.savez(out / f"replicated-rank{rank}.npz", *clf.coefs_, *clf.intercepts_)
    elif scenario == "streamed":  # X memory-mapped, read a chunk at a time on each rank
        np.save(out / f"X-rank{rank}.npy", X[part])
        np.save(out / f"X-all-rank{rank}.npy", X)
        mine = np.load(out / f"X-rank{rank}.npy", mmap_mode="r")
        everything = np.load(out / f"X-all-rank{rank}.npy", mmap_mode="r")
        kw = {**common, **SOLVERS["sgd"], "streaming": True}
        clf = gpubp.MLPClassifier(**kw).fit(mine, y[part])
        replicated = gpubp.MLPClassifier(**kw).fit(everything, y)  # each takes its shard
        params = {**common, "max_iter": 200, "early_stopping": True, "n_iter_no_change": 3}
        early = gpubp.MLPClassifier(**params, streaming=True).fit(mine, y[part])
        resident = gpubp.MLPClassifier(**params, streaming=False).fit(X[part], y[part])
        np.savez(
            out / f"streamed-rank{rank}.npz",
            *clf.coefs_,
            *clf.intercepts_,
            replicated=replicated.coefs_[0],
            scores=np.array(early.validation_scores_),
            resident_scores=np.array(resident.validation_scores_),
        )
    elif scenario in FAULTS:  # rank 1 fails at its 20th step
        if rank == 1:
            at_step(20, FAULTS[scenario])
        gpubp.MLPClassifier(**{**common, **SOLVERS["sgd"], "max_iter": 500}).fit(X[part], y[part])
    elif scenario.startswith("checkpoint"):  # rank 1 is preempted (SIGUSR1) at its 17th step
        kw = {**common, **SOLVERS["adam"]}
        if scenario != "checkpoint-none":
            kw.update(checkpoint=str(out / "checkpoints"), checkpoint_every="0s")
        if scenario == "checkpoint-preempted" and rank == 1:
            at_step(17, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        clf = gpubp.MLPClassifier(**kw).fit(X[part], y[part])
        np.savez(
            out / f"{scenario}-rank{rank}.npz",
            *clf.coefs_,
            *clf.intercepts_,
            loss=np.array(clf.loss_curve_),
            t=clf.t_,
            m=gpubp.to_numpy(clf._optimizer.state()["m"]),
        )
    elif scenario == "empty":
        part = shard(1, rank, size)  # one row for two ranks: rank 0 holds none
        gpubp.MLPClassifier(**common).fit(X[part], y[part])
    elif scenario == "features":
        Xr = X[part] if rank == 0 else np.c_[X[part], X[part, :1]]
        gpubp.MLPClassifier(**common).fit(Xr, y[part])


def left_behind() -> None:
    """Ends this rank if a scenario's fits left something running (conftest's
    ``still_running``: a thread of gpubp's, an armed watchdog)."""
    from conftest import still_running

    left = still_running()
    if left:
        print(f"rank {MPI.COMM_WORLD.Get_rank()}: left running: {left}", flush=True)
        sys.exit(4)


if __name__ == "__main__":
    from mpi4py import MPI

    warnings.simplefilter("ignore")
    rank = MPI.COMM_WORLD.Get_rank()
    try:
        for scenario in sys.argv[1].split(","):
            run(scenario, Path(sys.argv[2]), rank, MPI.COMM_WORLD.Get_size())
            left_behind()
    except DistributedError as exc:
        print(f"rank {rank}: DistributedError: {exc}", flush=True)
        sys.exit(3)
    print(f"rank {rank}: done", flush=True)
