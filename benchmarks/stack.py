"""Many networks at once: cross-validation as one stack, and a stack's epoch against R fits.

    python -m benchmarks.stack [--rounds 3] [--threads 2] [--out DIR]

Part 1 (digits, hidden (100,), 4 alphas x 5 folds, adam, 50 epochs): MLPClassifierCV
against GridSearchCV over gpubp's MLPClassifier and over scikit-learn's (n_jobs=1),
each contender in a process of its own, rounds interleaved, medians.
Part 2 (784-128-10, batch 128, 3,000 random float32 rows, SGD and Adam): one epoch
of a stack of R = 1, 4, 16, 64 networks against R epochs of one network (rounds
interleaved, at least 5, medians), and the peak memory of the stack's epoch
(tracemalloc). Writes stack-cpu.md and stack-cpu.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1]
CONTENDERS = ("gpubp MLPClassifierCV", "GridSearchCV(gpubp)", "GridSearchCV(scikit-learn)")


def one_cv_run(name: str) -> dict:
    """Fit one contender; its time, chosen alpha and best mean CV score."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype("float32")
    kw = dict(hidden_layer_sizes=(100,), max_iter=50, n_iter_no_change=50, random_state=0)
    cv = StratifiedKFold(5)
    start = time.perf_counter()
    if name == CONTENDERS[0]:
        from gpubp import MLPClassifierCV

        model = MLPClassifierCV(alphas=ALPHAS, cv=cv, backend="numpy", **kw).fit(X, y)
        alpha, score, means = model.alpha_, model.best_score_, model.cv_results_["mean_test_score"]
    else:
        if name == CONTENDERS[1]:
            from gpubp import MLPClassifier

            estimator = MLPClassifier(backend="numpy", **kw)
        else:
            from sklearn.neural_network import MLPClassifier

            estimator = MLPClassifier(**kw)
        grid = GridSearchCV(estimator, {"alpha": ALPHAS}, cv=cv, n_jobs=1, refit=True).fit(X, y)
        alpha, score = grid.best_params_["alpha"], grid.best_score_
        means = grid.cv_results_["mean_test_score"]
    return {
        "seconds": time.perf_counter() - start,
        "alpha": alpha,
        "score": float(score),
        "means": [float(m) for m in means],
    }


def stack_epochs(Rs=(1, 4, 16, 64), rounds=5, solvers=("sgd", "adam")) -> list[dict]:
    """Epoch time of a stack of R against R epochs of one network (rounds interleaved: one
    network, then each stack, per round; medians), and the stack's peak memory."""
    import tracemalloc

    import numpy as np

    from gpubp import MLP
    from gpubp.epoch import run_epoch
    from gpubp.optim import SGD, Adam
    from gpubp.train import Data, Objective

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 784), dtype=np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 3000)]
    order = rng.permutation(3000)
    data = Data(X, Y)

    def trainer(R, solver):
        net = MLP([784, 128, 10], "relu", seed=0, n_networks=None if R == 1 else R)
        opt = SGD(np, net.theta, 0.01, momentum=0.0) if solver == "sgd" else Adam(np, net.theta)
        run_epoch(net, opt, data, Objective(), 128, order)  # warm-up
        return net, opt

    def seconds(net, opt):
        start = time.perf_counter()
        run_epoch(net, opt, data, Objective(), 128, order)
        return time.perf_counter() - start

    rows = []
    for solver in solvers:
        one = trainer(1, solver)
        stacks = {R: trainer(R, solver) for R in Rs}
        single, stacked = [], {R: [] for R in Rs}
        for _ in range(rounds):
            single.append(seconds(*one))
            for R in Rs:
                stacked[R].append(seconds(*stacks[R]))
        del stacks
        for R in Rs:
            tracemalloc.start()
            seconds(*trainer(R, solver))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            t_one, t_stack = statistics.median(single), statistics.median(stacked[R])
            rows.append(
                {
                    "solver": solver,
                    "R": R,
                    "stack_s": t_stack,
                    "sequential_s": R * t_one,
                    "speedup": R * t_one / t_stack,
                    "peak_MiB": peak / 2**20,
                }
            )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stack")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one_cv_run(args.one)))
        return 0
    env = dict(
        os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    )
    runs = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):  # interleaved: A B C A B C ...
        for name in CONTENDERS:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.stack", "--one", name],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    lines = [
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
        f"{args.threads} threads, {args.rounds} rounds, medians",
        "",
        "| digits, 4 alphas x 5 folds, adam, 50 epochs | seconds | vs scikit-learn | alpha_ | "
        "best mean CV score | mean CV score at alpha = "
        + " / ".join(f"{a:g}" for a in ALPHAS)
        + " |",
        "|---|---|---|---|---|---|",
    ]
    base = statistics.median(r["seconds"] for r in runs[CONTENDERS[2]])
    for name in CONTENDERS:
        t = statistics.median(r["seconds"] for r in runs[name])
        last = runs[name][-1]
        lines.append(
            f"| {name} | {t:.2f} | {base / t:.2f}x faster | {last['alpha']:g} | "
            f"{last['score']:.4f} | " + " / ".join(f"{m:.4f}" for m in last["means"]) + " |"
        )
    rows = stack_epochs(rounds=max(5, args.rounds))
    lines += [
        "",
        "| 784-128-10, batch 128, 3,000 rows | solver | stack epoch (s) | R epochs of one (s) | "
        "speed-up | peak memory of the stack's epoch (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| R = {r['R']} | {r['solver']} | {r['stack_s']:.3f} | {r['sequential_s']:.3f} | "
            f"{r['speedup']:.2f}x | {r['peak_MiB']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "stack-cpu.md"), "w") as f:
        f.write(table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for solver, color in zip(("sgd", "adam"), ("C0", "C1")):
        mine = [r for r in rows if r["solver"] == solver]
        Rs = [r["R"] for r in mine]
        ax.loglog(Rs, [r["stack_s"] for r in mine], "o-", color=color, label=f"{solver}: one stack")
        ax.loglog(
            Rs, [r["sequential_s"] for r in mine], "s--", color=color, label=f"{solver}: R loops"
        )
    ax.set_xlabel("R (networks)")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("784-128-10, batch 128, CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "stack-cpu.png"), dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
