"""Where an epoch of gpubp's training loop goes on the CPU, phase by phase, against the GEMM floor.

    python -m benchmarks.cpu_profile [--configs a,b] [--rows 60000] [--threads 2] [--out DIR]

Times ``gpubp.epoch.run_epoch`` (plain SGD, as ``benchmarks.own_process``'s loop) with
a timer around each of the network's and optimiser's methods; each phase is the
time inside its method less the time of the methods it calls (so the matrix
products are one phase wherever they are called). The timers add about a
microsecond a call, so the total runs a little slower than the loop alone. The
GEMM floor is the step's products alone, timed as ``benchmarks.measure.gemm_floor``
times them. Writes profile-cpu.json and .md to --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

PHASES = {  # (owner, method): what it does beyond the methods it calls
    ("Data", "subset"): "gather the minibatch's rows",
    ("MLP", "matmul"): "matrix products (GEMMs)",
    ("MLP", "propagate"): "forward: bias and sigma",
    ("MLP", "evaluate"): "output: g, loss, delta",
    ("MLP", "_backward"): "backward: bias sums, sigma'",
    ("MLP", "backprop_unchecked"): "delta's scale, the loss's sum",
    ("SGD", "step"): "update theta",
}


def profile(config_name: str, rows: int, epochs: int = 2) -> dict:
    import numpy as np

    from gpubp import network, optim, train

    from .configs import CONFIGS, make_data
    from .contenders import Gpubp
    from .measure import gemm_floor

    owners = {"Data": train.Data, "MLP": network.MLP, "SGD": optim.SGD}
    config = CONFIGS[config_name]
    X, y = make_data(rows, config.layer_sizes[0])
    contender = Gpubp("numpy")
    contender.prepare_loop(config, X, y)
    exclusive, stack, saved = dict.fromkeys(PHASES.values(), 0.0), [], []
    calls = dict.fromkeys(PHASES.values(), 0)

    def timed(f, label):
        def wrapper(*args, **kwargs):
            stack.append(0.0)
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                inclusive = time.perf_counter() - start
                exclusive[label] += inclusive - stack.pop()
                calls[label] += 1
                if stack:
                    stack[-1] += inclusive

        return wrapper

    for (owner, method), label in PHASES.items():
        f = getattr(owners[owner], method)
        saved.append((owners[owner], method, f))
        setattr(owners[owner], method, timed(f, label))
    try:
        for _ in range(epochs):  # the last epoch is kept
            exclusive.update(dict.fromkeys(exclusive, 0.0))
            calls.update(dict.fromkeys(calls, 0))
            start = time.perf_counter()
            contender.loop()
            total = time.perf_counter() - start
    finally:
        for owner, method, f in saved:
            setattr(owner, method, f)
    steps = -(-rows // config.batch_size)
    floor = gemm_floor(config, rows, np)["seconds"]
    phases = {**exclusive, "the loop, Python, the rest": total - sum(exclusive.values())}
    return {
        "config": config.describe(),
        "steps": steps,
        "total": total,
        "floor": floor,
        "phases_us_per_step": {k: v / steps * 1e6 for k, v in phases.items()},
        "calls_per_step": {k: v / steps for k, v in calls.items()},
    }


def markdown(results: dict) -> str:
    names = list(results["configs"])
    lines = [
        f"{results['rows']:,} rows, {results['threads']} threads, "
        f"{results.get('kernels', 'the reference NumPy formulas')}; microseconds per step "
        "(share of the epoch)",
        "",
        "| phase | " + " | ".join(f"({n}) {results['configs'][n]['config']}" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for phase in next(iter(results["configs"].values()))["phases_us_per_step"]:
        cells = []
        for n in names:
            e = results["configs"][n]
            us = e["phases_us_per_step"][phase]
            cells.append(f"{us:.0f} ({us * e['steps'] / 1e6 / e['total']:.0%})")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    for label, key in (("epoch, profiled", "total"), ("GEMM floor", "floor")):
        cells = [
            f"{results['configs'][n][key] / results['configs'][n]['steps'] * 1e6:.0f} "
            f"({results['configs'][n][key]:.3f} s)"
            for n in names
        ]
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_profile", description=__doc__)
    p.add_argument("--configs", default="a,b")
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    from .threads import set_thread_env

    set_thread_env(args.threads)
    from threadpoolctl import threadpool_limits

    from gpubp.backend import cpu_kernels_reason

    from .measure import write_results

    with threadpool_limits(args.threads):
        configs = {n: profile(n, args.rows) for n in args.configs.split(",")}
    results = {
        "rows": args.rows,
        "threads": args.threads,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "kernels": cpu_kernels_reason(),
        "configs": configs,
    }
    write_results(args.out, "profile-cpu", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
