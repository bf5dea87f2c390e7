"""Run under ``mpiexec -n R`` by tests/test_distributed.py: train on this rank's shard.

python tests/mpi_train.py SCENARIO OUTDIR
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from mpi4py import MPI

import gpubp
from gpubp.distributed import DistributedError, shard

warnings.simplefilter("ignore")
scenario, out = sys.argv[1], Path(sys.argv[2])
rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
rng = np.random.default_rng(0)
X = rng.normal(size=(103, 5))
y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
COMMON = dict(
    hidden_layer_sizes=(7,),
    batch_size=10,
    max_iter=3,
    random_state=0,
    dtype="float64",
    alpha=1e-3,
    tol=0.0,
    n_iter_no_change=100,
    distributed="mpi",
)
try:
    if scenario == "equal":
        part = shard(len(X), rank, size)
        for name, kw in [
            ("sgd", dict(solver="sgd", momentum=0.9, nesterovs_momentum=True)),
            ("adam", dict(solver="adam", learning_rate_init=0.01)),
        ]:
            clf = gpubp.MLPClassifier(**COMMON, **kw).fit(X[part], y[part])
            reg = gpubp.MLPRegressor(**COMMON, **kw).fit(X[part], X[part, 0] * 2.0)
            np.savez(
                out / f"{name}-rank{rank}.npz",
                *clf.coefs_,
                *clf.intercepts_,
                reg_W=reg.coefs_[0],
                loss=np.array(clf.loss_curve_),
                classes=clf.classes_,
            )
    elif scenario == "early":
        part = shard(len(X), rank, size)
        clf = gpubp.MLPClassifier(
            **{
                **COMMON,
                "max_iter": 200,
                "early_stopping": True,
                "n_iter_no_change": 3,
                "tol": 1e-4,
            }
        ).fit(X[part], y[part])
        np.savez(
            out / f"early-rank{rank}.npz",
            n_iter=clf.n_iter_,
            scores=np.array(clf.validation_scores_),
        )
    elif scenario == "empty":
        part = shard(1, rank, size)  # one row for two ranks: rank 0 holds none
        gpubp.MLPClassifier(**COMMON).fit(X[part], y[part])
    elif scenario == "features":
        part = shard(len(X), rank, size)
        Xr = X[part] if rank == 0 else np.c_[X[part], X[part, :1]]
        gpubp.MLPClassifier(**COMMON).fit(Xr, y[part])
    print(f"rank {rank}: done", flush=True)
except DistributedError as exc:
    print(f"rank {rank}: DistributedError: {exc}", flush=True)
    sys.exit(3)
