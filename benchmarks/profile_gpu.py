"""Where a GPU training step's time goes: GEMMs, other kernels, and the GPU idle.

    python -m benchmarks.profile_gpu [--configs a,b] [--steps 100] [--out DIR]

For gpubp (CuPy) and PyTorch eager, each configuration's SGD steps run under
PyTorch's profiler, which records every CUDA kernel of the process (CuPy's and
cuBLAS's too). Per step: wall time, kernels launched, seconds in GEMM kernels,
in the other kernels, and the GPU idle (wall minus the union of the kernels'
intervals): the time the host took to issue work. Writes profile-gpu.json and
profile-gpu.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

GEMM = re.compile(r"gemm|gemv|xmma|cutlass|cublas", re.IGNORECASE)


def busy_seconds(intervals) -> float:
    """Length of the union of (start, end) intervals, in their unit."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def summarise(kernels, wall: float, steps: int) -> dict:
    """``kernels``: (name, start_us, end_us) of every kernel the steps launched."""
    gemm = sum(e - s for n, s, e in kernels if GEMM.search(n))
    other = sum(e - s for n, s, e in kernels if not GEMM.search(n))
    busy = busy_seconds([(s, e) for _, s, e in kernels]) / 1e6
    return {
        "wall_ms": 1e3 * wall / steps,
        "kernels": len(kernels) / steps,
        "gemm_ms": gemm / 1e3 / steps,
        "other_ms": other / 1e3 / steps,
        "gpu_idle_ms": 1e3 * max(wall - busy, 0.0) / steps,
    }


def profile(contender, steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    contender.epoch()  # warm: kernels compiled, memory pooled
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        contender.epoch()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernels = [
        (e.name, e.time_range.start, e.time_range.end)
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA and not e.name.startswith("Mem")
    ]
    result = summarise(kernels, wall, steps)
    names = {}
    for n, s, e in kernels:
        names[n] = names.get(n, 0.0) + (e - s) / 1e3 / steps
    result["top_kernels_ms"] = dict(sorted(names.items(), key=lambda kv: -kv[1])[:8])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_gpu")
    parser.add_argument("--configs", default="a,b,c32,c1024,d")
    parser.add_argument("--steps", type=int, default=100, help="at most 60,000 rows' worth")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)

    from .configs import CONFIGS, make_data
    from .contenders import gpu_contender

    results = {}
    for name in args.configs.split(","):
        config = CONFIGS[name]
        steps = max(1, min(args.steps, 60_000 // config.batch_size))
        X, y = make_data(config.batch_size * steps, config.layer_sizes[0])
        results[name] = {}
        for key in ("gpubp", "torch"):
            c = gpu_contender(key)
            try:
                c.prepare(config, X, y)
                results[name][c.name] = profile(c, steps)
            except Exception as exc:  # noqa: BLE001 - report and go on to the next
                print(f"({name}) {c.name}: profile failed: {type(exc).__name__}: {exc}")
            del c
    lines = [
        "| config | contender | wall ms/step | kernels/step | GEMM ms | other kernels ms "
        "| GPU idle ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, per in results.items():
        for who, r in per.items():
            lines.append(
                f"| ({name}) {CONFIGS[name].describe()} | {who} | {r['wall_ms']:.3f} | "
                f"{r['kernels']:.1f} | {r['gemm_ms']:.3f} | {r['other_ms']:.3f} | "
                f"{r['gpu_idle_ms']:.3f} |"
            )
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "profile-gpu.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "profile-gpu.md"), "w") as f:
        f.write(text)
    print(text)
    for name, per in results.items():
        for who, r in per.items():
            print(f"({name}) {who}: top kernels (ms/step): {r['top_kernels_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
