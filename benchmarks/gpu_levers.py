"""Issue 17's levers on a GPU that the epoch table does not show.

    python -m benchmarks.gpu_levers [--rounds 3] [--out DIR]

1. Many networks for the price of one: a stack of R networks of configuration (a)
   (784-128-10 sigmoid, batch 128, SGD lr 0.1, 60,000 rows) against one network,
   epoch time (median of interleaved rounds) and peak GPU memory in use, with the
   one network also timed without CUDA graphs.
2. What TF32 products cost: the relative error of every gradient (float32 and
   TF32 against float64, same weights and data) for (b) and (d) shapes.

Writes gpu-levers.json and gpu-levers.md to --out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from .measure import write_results


def stack_rows(rounds: int, Rs=(1, 4, 16, 64)) -> list[dict]:
    import cupy
    import numpy as np

    from gpubp import MLP, graphs
    from gpubp.optim import SGD
    from gpubp.train import Data, Objective, run_epoch

    from .configs import make_data
    from .contenders import PeakInUse

    X, y = make_data(60_000, 784)
    data = Data(cupy.asarray(X), cupy.asarray(np.eye(10, dtype=np.float32)[y]))
    rng = np.random.default_rng(0)
    cases = [(R, True) for R in Rs] + [(1, False)]
    nets, opts, peaks = {}, {}, {}
    for R, on in cases:
        os.environ[graphs.ENV_VAR] = "1" if on else "0"
        net = MLP(
            [784, 128, 10], "sigmoid", seed=0, backend="cupy", n_networks=None if R == 1 else R
        )
        opt = SGD(cupy, net.theta, 0.1, momentum=0.0, fused=net.backend.fused)
        with PeakInUse() as peak:
            run_epoch(net, opt, data, Objective(), 128, rng.permutation(60_000))  # warm-up
            cupy.cuda.Device().synchronize()
        nets[R, on], opts[R, on], peaks[R, on] = net, opt, peak.bytes
    times = {case: [] for case in cases}
    for _ in range(rounds):
        for R, on in cases:
            os.environ[graphs.ENV_VAR] = "1" if on else "0"
            order = rng.permutation(60_000)
            cupy.cuda.Device().synchronize()
            start = time.perf_counter()
            total, _ = run_epoch(nets[R, on], opts[R, on], data, Objective(), 128, order)
            float(cupy.sum(total))
            times[R, on].append(time.perf_counter() - start)
    os.environ[graphs.ENV_VAR] = "1"
    one = statistics.median(times[1, True])
    return [
        {
            "R": R,
            "graphs": on,
            "epoch_s": statistics.median(times[R, on]),
            "vs_one_network": statistics.median(times[R, on]) / one,
            "peak_MB": peaks[R, on] / 1e6,
        }
        for R, on in cases
    ]


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
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    stack = stack_rows(args.rounds)
    errors = tf32_errors()
    lines = [
        "| (a) 784-128-10 sigmoid, batch 128, 60,000 rows | epoch s | / one network | "
        "peak MB in use |",
        "|---|---|---|---|",
    ]
    for r in stack:
        label = f"stack of R = {r['R']}" if r["R"] > 1 else "one network"
        label += "" if r["graphs"] else ", no CUDA graphs"
        lines.append(
            f"| {label} | {r['epoch_s']:.4f} | {r['vs_one_network']:.2f}x | {r['peak_MB']:.0f} |"
        )
    lines += [
        "",
        "| gradients at 1,024 rows | float32 vs float64 | TF32 vs float64 |",
        "|---|---|---|",
    ]
    for e in errors:
        lines.append(f"| ({e['config']}) | {e['float32']:.1e} | {e['tf32']:.1e} |")
    write_results(args.out, "gpu-levers", {"stack": stack, "tf32": errors}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
