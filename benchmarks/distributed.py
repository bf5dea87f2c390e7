"""Epoch time of configuration (b) with data-parallel ranks, and the all-reduce's share.

    mpiexec -n R python -m benchmarks.distributed [--rows 60000] [--epochs 3]

Each rank holds 1/R of the rows, uses one BLAS thread, and runs gpubp's
data-parallel epoch (one all-reduce of the flat gradient per global minibatch
of 128); rank 0 prints the median epoch time and the seconds spent in
all-reduce. With R = 1 it also times the ordinary single-process epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main(argv=None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", help="append the result as a JSON line to this file")
    args = parser.parse_args(argv)
    import numpy as np
    from mpi4py import MPI
    from threadpoolctl import threadpool_limits

    from gpubp import MLP
    from gpubp.distributed import MPIComm, shard
    from gpubp.epoch import run_epoch
    from gpubp.optim import SGD
    from gpubp.train import Data, Objective
    from gpubp.train_distributed import run_epoch_distributed

    from .configs import CONFIGS, make_data

    threadpool_limits(1)
    comm = MPIComm(MPI.COMM_WORLD)
    config = CONFIGS["b"]
    X, y = make_data(args.rows, 784)
    part = shard(args.rows, comm.rank, comm.size)
    Y = np.eye(10, dtype=np.float32)[y]
    net = MLP(config.layer_sizes, "relu", dtype="float32", backend="numpy", seed=0)
    data = Data(X[part], Y[part], offset=part.start, n_total=args.rows)
    optimizer = SGD(np, net.theta, 0.1, momentum=0.0)
    objective = Objective()
    rng = np.random.default_rng(0)

    def epoch(distributed):
        order = rng.permutation(args.rows)
        comm.comm.Barrier()
        start = time.perf_counter()
        if distributed:
            total, _ = run_epoch_distributed(net, optimizer, data, objective, 128, order, comm)
        else:
            total, _ = run_epoch(net, optimizer, data, objective, 128, order)
        float(total)
        comm.comm.Barrier()
        return time.perf_counter() - start

    epoch(True)  # warm-up
    comm.reset_timer()
    times = [epoch(True) for _ in range(args.epochs)]
    share = comm.seconds / sum(times)
    result = {
        "ranks": comm.size,
        "rows": args.rows,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "allreduce_share": share,
        "params": net.n_parameters,
    }
    if comm.size == 1:
        result["single_process_s"] = statistics.median(epoch(False) for _ in range(args.epochs))
    if comm.rank == 0:
        print(json.dumps(result))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
