"""Memory speed of the GPU step's elementwise kernels, against a plain copy.

    python -m benchmarks.gpu_kernels [--out DIR]

Configuration (d)'s arrays (4096 x 4096 float32, and its 33.6 million parameters for
the optimiser): each kernel's bytes read and written over its median time (CUDA
events around 10 launches queued back to back, so that the host's time to launch hides
behind the GPU's work; 20 runs after a warm-up), as GB/s and as a fraction of what a
device-to-device copy of the same array reaches. Where ``gpubp_before`` is importable,
its kernels are timed beside today's, and a float4 SGD step written for this benchmark
shows what vector loads give. Writes gpu-kernels.json and gpu-kernels.md to --out.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys

from .contenders import PACKAGE_BEFORE, package_label
from .measure import write_results

_SGD4 = r"""
extern "C" __global__ void sgd4(const float4* g, const float* lr, float4* theta, long long n4) {
    float r = lr[0];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (long long)gridDim.x * blockDim.x) {
        float4 a = g[i], t = theta[i];
        t.x -= r * a.x; t.y -= r * a.y; t.z -= r * a.z; t.w -= r * a.w;
        theta[i] = t;
    }
}
"""


def median_seconds(run, repeats: int = 20, inner: int = 10) -> float:
    """Median seconds of one ``run`` on the device, by CUDA events around ``inner`` runs,
    after one warm-up run."""
    import cupy

    run()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            run()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3 / inner)
    return statistics.median(times)


def cases(rows: int = 4096, width: int = 4096, vector: bool = True):
    """(name, bytes moved, run) for each kernel timed (``vector``: the float4 SGD too)."""
    import cupy
    import numpy as np

    rng = np.random.default_rng(0)

    def rand(*shape):
        return cupy.asarray(rng.standard_normal(shape, dtype=np.float32))

    A, Z, G, b = rand(rows, width), rand(rows, width), rand(rows, width), rand(width)
    src, order = rand(4 * rows, width), cupy.asarray(rng.permutation(4 * rows))
    k = cupy.zeros(1, dtype=cupy.int64)
    P = 2 * width * width + 3 * width  # (d)'s parameters, about
    theta, grad, lr = rand(P), rand(P), cupy.full(1, 1e-9, dtype=cupy.float32)
    item, n = 4, rows * width
    out = []
    packages = ["gpubp"]
    try:
        importlib.import_module(PACKAGE_BEFORE)
        packages.append(PACKAGE_BEFORE)
    except ImportError:
        pass
    for package in packages:
        kernels = importlib.import_module(f"{package}.kernels")
        tag = "" if package == "gpubp" else f" ({package_label(package)})"
        relu = kernels.BIAS_ACTIVATION["relu"]
        out += [
            (f"bias + ReLU{tag}", 2 * n * item, lambda r=relu: r(A, b, Z)),
            (
                f"row gather{tag}",
                2 * n * item,
                lambda g=kernels.GATHER_ROWS: g(src, order, k, width, rows, Z),
            ),
            (
                f"ReLU derivative{tag}",
                3 * n * item,
                lambda d=kernels.DERIVATIVE["relu"]: d(A, G, G),
            ),
            (f"SGD step{tag}", 3 * P * item, lambda s=kernels.SGD: s(grad, lr, theta, theta)),
        ]
    out.append(("copy (cupy)", 2 * n * item, lambda: cupy.copyto(Z, A)))
    if vector:
        sgd4 = cupy.RawKernel(_SGD4, "sgd4")
        blocks = min((P // 4 + 255) // 256, 132 * 16)
        run = lambda: sgd4((blocks,), (256,), (grad, lr, theta, cupy.int64(P // 4)))  # noqa: E731
        out.append(("SGD step, float4 (this benchmark's)", 3 * P * item, run))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_kernels")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    rows = []
    for name, nbytes, run in cases():
        seconds = median_seconds(run)
        rows.append({"kernel": name, "us": seconds * 1e6, "GB_per_s": nbytes / seconds / 1e9})
    copy = next(r["GB_per_s"] for r in rows if r["kernel"].startswith("copy"))
    lines = [
        "| kernel, (d)'s arrays | us | GB/s | / copy |",
        "|---|---|---|---|",
    ]
    for r in rows:
        r["vs_copy"] = r["GB_per_s"] / copy
        lines.append(
            f"| {r['kernel']} | {r['us']:.1f} | {r['GB_per_s']:.0f} | {r['vs_copy']:.2f} |"
        )
    write_results(args.out, "gpu-kernels", rows, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
