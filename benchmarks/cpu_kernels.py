"""Each fused CPU kernel (numba) against the reference NumPy calls it replaces.

    python -m benchmarks.cpu_kernels [--threads 2] [--repeats 2000] [--configs a,b,c32]
                                     [--rows 20000] [--rounds 9] [--out DIR]

At the sizes of the CPU configurations' steps: bias + activation and sigma' on a
minibatch's hidden layer, the bias sums, and one optimiser update of all of theta.
The two contenders alternate call by call on the same arrays (so a slow spell of a
shared machine hits both); microseconds, medians. Then the training loop itself with
each, epoch by epoch in turn. Writes cpu-kernels.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _layer(np, functions, kernels, N, M, rng):
    """The hidden layer's kernels on an N x M minibatch."""
    size = f"{N} x {M}"
    A = rng.standard_normal((N, M)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    G = rng.standard_normal((N, M)).astype(np.float32)
    a, g, db = A.copy(), G.copy(), np.empty(M, np.float32)
    Z = {"relu": np.maximum(A, 0), "sigmoid": functions.sigmoid(np, A)}

    def reset():
        a[...], g[...] = A, G

    out = []
    for name in ("sigmoid", "relu"):
        sigma, prime = functions.ACTIVATIONS[name], functions.DERIVATIVES[name]
        fused_sigma, fused_prime = kernels.BIAS_ACTIVATION[name], kernels.DERIVATIVE[name]
        out += [
            (
                f"bias + {name}",
                size,
                lambda f=fused_sigma: f(a, b, a),
                lambda s=sigma: s(np, np.add(a, b, out=a)),
                reset,
            ),
            (
                f"{name}'",
                size,
                lambda f=fused_prime, z=Z[name]: f(z, g, g),
                lambda p=prime, z=Z[name]: p(np, z, g),
                reset,
            ),
        ]
    out.append(
        (
            "bias sums",
            size,
            lambda: kernels.column_sums(G, out=db),
            lambda: np.sum(G, axis=-2, out=db),
            reset,
        )
    )
    return out


def _updates(np, optim, kernels, label, P, rng):
    """One update of P weights by each solver."""
    theta = rng.standard_normal(P).astype(np.float32)
    grad = (rng.standard_normal(P) * 1e-3).astype(np.float32)
    g1, g2 = grad.copy(), grad.copy()  # the reference update may overwrite its grad

    def reset():
        g1[...], g2[...] = grad, grad

    solvers = {
        "SGD": lambda f: optim.SGD(np, theta, 0.1, momentum=0.0, fused=f),
        "Nesterov": lambda f: optim.SGD(np, theta, 0.1, fused=f),
        "Adam": lambda f: optim.Adam(np, theta, 1e-3, fused=f),
    }
    out = []
    for name, make in solvers.items():
        fused, reference = make(kernels), make(None)
        out.append(
            (
                f"{name} update",
                f"{label} {P:,} weights",
                lambda o=fused: o.step(theta, g1),
                lambda o=reference: o.step(theta, g2),
                reset,
            )
        )
    return out


def pairs(np, functions, kernels, optim):
    """(name, size, fused call, reference call, reset) for every kernel timed; reset runs
    before each call, untimed, so that every call sees the same numbers."""
    rng = np.random.default_rng(0)
    out = []
    for N, M in ((128, 128), (128, 512), (32, 512)):
        out += _layer(np, functions, kernels, N, M, rng)
    for label, P in (("(a)", 101_770), ("(b), (c32)", 669_706)):
        out += _updates(np, optim, kernels, label, P, rng)
    return out


def measure(repeats: int) -> list[dict]:
    import numpy as np

    from gpubp import functions, optim
    from gpubp.backend import probe_numba

    backend, why = probe_numba()
    if backend is None:
        raise SystemExit(f"numba's kernels do not run here: {why}")
    rows = []
    for name, size, fused, reference, reset in pairs(np, functions, backend.fused, optim):
        fused(), reference()  # compiled, warm
        times = {"fused": [], "reference": []}
        for _ in range(repeats):
            for key, call in (("fused", fused), ("reference", reference)):
                reset()
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
        f, r = (statistics.median(times[k]) * 1e6 for k in ("fused", "reference"))
        rows.append({"kernel": name, "size": size, "fused_us": f, "reference_us": r})
    return rows


def loops(configs, rows: int, rounds: int) -> list[dict]:
    """Epochs of ``run_epoch`` with the fused kernels and with the reference formulas,
    alternating epoch by epoch in this process (same data, same weights), for SGD
    without momentum (the benchmarks' solver) and Adam (the estimators' default)."""
    import numpy as np

    from gpubp import MLP, optim
    from gpubp.backend import NUMPY, probe_numba
    from gpubp.epoch import run_epoch
    from gpubp.train import Data, Objective

    from .configs import CONFIGS, LEARNING_RATE, N_CLASSES, make_data

    backends = {"fused": probe_numba()[0], "reference": NUMPY}
    out = []
    for name in configs:
        config = CONFIGS[name]
        X, y = make_data(rows, config.layer_sizes[0])
        Y = np.eye(N_CLASSES, dtype=np.float32)[y]
        for solver in ("sgd", "adam"):
            runs = {}
            for key, backend in backends.items():
                net = MLP(config.layer_sizes, config.activation, backend=backend, seed=0)
                if solver == "sgd":
                    opt = optim.SGD(np, net.theta, LEARNING_RATE, momentum=0.0, fused=backend.fused)
                else:
                    opt = optim.Adam(np, net.theta, 1e-3, fused=backend.fused)
                runs[key] = (net, opt, Data(X, Y), np.random.default_rng(0))
            times = {key: [] for key in runs}
            for r in range(rounds + 1):  # the first round warms up
                for key, (net, opt, data, rng) in runs.items():
                    order = rng.permutation(rows)
                    start = time.perf_counter()
                    total, _ = run_epoch(net, opt, data, Objective(), config.batch_size, order)
                    float(total)
                    if r:
                        times[key].append(time.perf_counter() - start)
            ratios = [a / b for a, b in zip(times["reference"], times["fused"])]
            out.append(
                {
                    "config": name,
                    "solver": solver,
                    "fused_s": statistics.median(times["fused"]),
                    "reference_s": statistics.median(times["reference"]),
                    "ratio": statistics.median(ratios),
                    "ratio_range": [min(ratios), max(ratios)],
                }
            )
    return out


def markdown(results: dict) -> str:
    lines = [
        f"{results['kernels']}; {results['threads']} threads; microseconds per call, medians "
        f"of {results['repeats']} calls, the two alternating.",
        "",
        "| kernel | size | fused (numba) | reference (NumPy) | reference / fused |",
        "|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['kernel']} | {r['size']} | {r['fused_us']:.1f} | {r['reference_us']:.1f} | "
            f"{r['reference_us'] / r['fused_us']:.1f}x |"
        )
    if results.get("loops"):
        lines += [
            "",
            f"The training loop (`run_epoch`, {results['rows_per_epoch']:,} rows), fused and "
            f"reference epochs alternating in one process, {results['rounds']} of each; "
            "seconds per epoch, medians, and the median (min-max) of each pair's ratio.",
            "",
            "| config | solver | fused (numba) | reference (NumPy) | reference / fused |",
            "|---|---|---|---|---|",
        ]
        for r in results["loops"]:
            low, high = r["ratio_range"]
            lines.append(
                f"| ({r['config']}) | {r['solver']} | {r['fused_s']:.3f} | "
                f"{r['reference_s']:.3f} | {r['ratio']:.2f}x ({low:.2f}-{high:.2f}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_kernels", description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2000)
    p.add_argument("--configs", default="a,b,c32", help="loops timed; '' for none")
    p.add_argument("--rows", type=int, default=20_000, help="rows per epoch of the loops")
    p.add_argument("--rounds", type=int, default=9, help="epochs of each loop")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    from .threads import set_thread_env

    set_thread_env(args.threads)
    from gpubp.backend import cpu_kernels_reason

    from .measure import write_results

    results = {
        "threads": args.threads,
        "repeats": args.repeats,
        "kernels": cpu_kernels_reason(),
        "rows": measure(args.repeats),
        "rows_per_epoch": args.rows,
        "rounds": args.rounds,
        "loops": loops([c for c in args.configs.split(",") if c], args.rows, args.rounds),
    }
    text = markdown(results)
    print(text)
    write_results(args.out, "cpu-kernels", results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
