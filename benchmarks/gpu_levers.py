"""Issue 17's levers on a GPU that the epoch table does not show.

    python -m benchmarks.gpu_levers [--rounds 3] [--out DIR]

1. Many networks for the price of one: a stack of R networks of configuration (a)
   (784-128-10 sigmoid, batch 128, SGD lr 0.1, 60,000 rows) against one network,
   epoch time (median of interleaved rounds) and peak GPU memory in use, with the
   one network also timed without CUDA graphs, the stack of 64 with TF32 products,
   and (``--before``) both from a copy of gpubp before a change; then one epoch of
   the one network and of the stack of 64 under PyTorch's profiler, where it is.
2. What TF32 products cost: the relative error of every gradient (float32 and
   TF32 against float64, same weights and data) for (b) and (d) shapes.

Writes gpu-levers.json and gpu-levers.md to --out.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time

from .contenders import add_before_argument, package_label
from .measure import write_results


class StackEpochs:
    """Epochs of ``run_epoch`` over R networks of configuration (a) as one stack (None:
    one network), from ``package`` (gpubp, or a copy of it from before a change)."""

    def __init__(self, data, R, graphs=True, precision="float32", package="gpubp"):
        import cupy
        import numpy as np

        gpubp = importlib.import_module(package)
        self.optim = importlib.import_module(f"{package}.optim")
        self.train = importlib.import_module(f"{package}.train")
        try:  # where the epoch lives (a copy from before gpubp.epoch has it in train)
            self.epoch_module = importlib.import_module(f"{package}.epoch")
        except ImportError:
            self.epoch_module = self.train
        self.graphs = importlib.import_module(f"{package}.graphs")
        self.on, self.rng = graphs, np.random.default_rng(0)
        label = "one network" if R is None else f"stack of R = {R}"
        extra = [] if graphs else ["no CUDA graphs"]
        extra += [] if precision == "float32" else [precision]
        extra += [] if package == "gpubp" else [package_label(package)]
        self.name = ", ".join([label, *extra])
        self.R, self.graphed, self.precision, self.package = R, graphs, precision, package
        self.net = gpubp.MLP(
            [784, 128, 10], "sigmoid", seed=0, backend="cupy", n_networks=R,
            matmul_precision=precision,
        )  # fmt: skip
        fused = self.net.backend.fused
        self.opt = self.optim.SGD(cupy, self.net.theta, 0.1, momentum=0.0, fused=fused)
        self.data = self.train.Data(cupy.asarray(data[0]), cupy.asarray(data[1]))

    def epoch(self):
        import cupy

        os.environ[self.graphs.ENV_VAR] = "1" if self.on else "0"
        order = self.rng.permutation(self.data.n)
        total, _ = self.epoch_module.run_epoch(
            self.net, self.opt, self.data, self.train.Objective(), 128, order
        )
        float(cupy.sum(total))
        os.environ[self.graphs.ENV_VAR] = "1"


def stack_cases(before=(), Rs=(4, 16, 64)) -> list[dict]:
    """(R, graphs, precision, package) of each row of the stack table; ``before``: the
    packages (copies of gpubp from before a change) to time one network and the largest
    stack of too."""
    cases = [dict(R=R) for R in (None, *Rs)]
    for package in before:
        cases += [dict(R=R, package=package) for R in (None, Rs[-1])]
    return cases + [dict(R=Rs[-1], precision="tf32"), dict(R=None, graphs=False)]


def stack_rows(rounds: int, before=(), rows: int = 60_000, Rs=(4, 16, 64)):
    """The stack table's rows, and the runs they timed."""
    import cupy
    import numpy as np

    from .configs import make_data
    from .contenders import PeakInUse

    X, y = make_data(rows, 784)
    data = (X, np.eye(10, dtype=np.float32)[y])
    runs = []
    for case in stack_cases(before, Rs):
        try:
            run = StackEpochs(data, **case)
        except ImportError as exc:
            print(f"skipped {case}: {exc}")
            continue
        with PeakInUse() as peak:
            run.epoch()  # warm-up: kernels compiled, the step captured
            cupy.cuda.Device().synchronize()
        run.peak = peak.bytes
        runs.append(run)
    times = {run.name: [] for run in runs}
    for _ in range(rounds):
        for run in runs:
            cupy.cuda.Device().synchronize()
            start = time.perf_counter()
            run.epoch()
            times[run.name].append(time.perf_counter() - start)
    one = statistics.median(times["one network"])
    rows = []
    for run in runs:
        t = statistics.median(times[run.name])
        rows.append(
            {
                "name": run.name, "R": run.R or 1, "graphs": run.graphed,
                "precision": run.precision, "package": run.package,
                "epoch_s": t, "min_s": min(times[run.name]), "max_s": max(times[run.name]),
                "vs_one_network": t / one, "peak_MB": run.peak / 1e6,
            }
        )  # fmt: skip
    return rows, runs


def stack_profiles(runs) -> dict:
    """Where a step's time goes for one network and the largest stack (gpubp as it is)."""
    from .profile_gpu import profile

    largest = max(run.R or 1 for run in runs)
    out = {}
    for run in runs:
        if run.package == "gpubp" and run.graphed and run.precision == "float32":
            if (run.R or 1) in (1, largest):
                out[run.name] = profile(run, -(-run.data.n // 128))
    return out


def tf32_errors(rows: int = 1024) -> list[dict]:
    import cupy
    import numpy as np

    from gpubp import MLP

    from .configs import CONFIGS, make_data

    out = []
    for name in ("b", "d"):
        sizes = CONFIGS[name].layer_sizes
        X, y = make_data(rows, sizes[0], seed=1)
        ref = MLP(sizes, "relu", dtype="float64", backend="cupy", seed=0)
        _, g64 = ref.loss_and_gradients(X, y)
        entry = {"config": name}
        for precision in ("float32", "tf32"):
            net = MLP(sizes, "relu", backend="cupy", seed=0, matmul_precision=precision)
            _, g = net.loss_and_gradients(X, y)
            worst = 0.0
            for pair, pair64 in zip(g, g64):
                for a, b in zip(pair, pair64):
                    a, b = cupy.asnumpy(a).astype(np.float64), cupy.asnumpy(b)
                    worst = max(worst, float(np.linalg.norm(a - b) / np.linalg.norm(b)))
            entry[precision] = worst
        out.append(entry)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_levers")
    parser.add_argument("--rounds", type=int, default=3)
    add_before_argument(parser)
    parser.add_argument("--no-profile", action="store_true", help="skip the stack's profile")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    stack, runs = stack_rows(args.rounds, args.before, args.rows)
    lines = [
        "| (a) 784-128-10 sigmoid, batch 128, 60,000 rows | epoch s | min-max s | "
        "/ one network | peak MB in use |",
        "|---|---|---|---|---|",
    ]
    for r in stack:
        lines.append(
            f"| {r['name']} | {r['epoch_s']:.4f} | {r['min_s']:.4f}-{r['max_s']:.4f} | "
            f"{r['vs_one_network']:.2f}x | {r['peak_MB']:.0f} |"
        )
    print("\n".join(lines), flush=True)
    profiles = {} if args.no_profile else stack_profiles(runs)
    if profiles:
        lines += [
            "",
            "| profiled epoch | wall ms/step | kernels/step | GEMM ms | other kernels ms "
            "| GPU idle ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in profiles.items():
            lines.append(
                f"| {name} | {r['wall_ms']:.3f} | {r['kernels']:.1f} | {r['gemm_ms']:.3f} | "
                f"{r['other_ms']:.3f} | {r['gpu_idle_ms']:.3f} |"
            )
            print(f"{name}: top kernels (ms/step): {r['top_kernels_ms']}", flush=True)
    errors = tf32_errors()
    lines += [
        "",
        "| gradients at 1,024 rows | float32 vs float64 | TF32 vs float64 |",
        "|---|---|---|",
    ]
    for e in errors:
        lines.append(f"| ({e['config']}) | {e['float32']:.1e} | {e['tf32']:.1e} |")
    results = {"stack": stack, "profiles": profiles, "tf32": errors}
    write_results(args.out, "gpu-levers", results, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
