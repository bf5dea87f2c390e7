"""Epoch time of gpubp against PyTorch (eager and compiled) and scikit-learn.

    python -m benchmarks.epoch [--device cpu|gpu] [--quick] [--out DIR] ...

For each configuration: one epoch of minibatch SGD (no momentum, lr 0.1,
shuffled) on standard-normal float32 inputs with 10 random classes, every
contender in the same process, interleaved (A B C A B C ...) after a warm-up
epoch; medians, min and max, ratios to PyTorch eager and to the GEMM floor, and
the peak memory of each fit (CPU: resident growth, in a process of its own; GPU:
peak bytes in use, allocated rather than held by the allocator, during the data's
move to the device and the first epoch). On the GPU the contenders are gpubp
(with CUDA graphs, and without them: before and after), gpubp with TF32 products
for (d), PyTorch eager and torch.compile in modes "default" and "reduce-overhead". Writes a
JSON file and a Markdown table to --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

from .contenders import add_before_argument
from .measure import cpu_model


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .threads import set_thread_env

    set_thread_env(args.threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        return _run(args)


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.epoch", description=__doc__.split("\n")[0]
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument(
        "--quick",
        action="store_true",
        help="15,000 rows, 5 epochs, no torch.compile, a short scaling sweep",
    )
    p.add_argument("--configs", help="comma-separated names (default: all for the device)")
    p.add_argument("--rows", type=int, help="training cases (default 60,000)")
    p.add_argument("--epochs", type=int, default=5, help="measured epochs (default 5)")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads (default 2)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    add_before_argument(p)  # on the GPU
    p.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling sweep")
    p.add_argument("--out", default="benchmarks/results", help="folder for JSON, Markdown, PNG")
    return p


def _run(args) -> int:
    from .configs import CONFIGS, make_data
    from .contenders import Unavailable, cpu_contender, gpu_contender
    from .measure import gemm_floor, interleaved, summary

    gpu = args.device == "gpu"
    rows = args.rows or (15_000 if args.quick else 60_000)
    names = (
        args.configs.split(",")
        if args.configs
        else [n for n, c in CONFIGS.items() if gpu or not c.gpu_only]
    )
    env = environment(args, gpu)
    print_environment(env)
    os.makedirs(args.out, exist_ok=True)
    tag = f"{args.device}{'-quick' if args.quick else ''}"
    results = {"environment": env, "rows": rows, "configs": {}}

    xp, sync = _array_module(gpu)
    for name in names:
        config = CONFIGS[name]
        if config.gpu_only and not gpu:
            print(f"\n({name}) is a GPU configuration: skipped on the CPU")
            continue
        X, y = make_data(rows, config.layer_sizes[0])
        keys = ["gpubp", "torch"]
        if gpu:  # the levers of issue 17: CUDA graphs off (before), TF32 products
            keys[1:1] = ["gpubp-nograph"] + (["gpubp-tf32"] if config.gpu_only else [])
            keys[1:1] = [f"gpubp@{p}" for p in args.before]
        if not (args.no_compile or args.quick):
            keys += ["torch-compile", "torch-compile-ro"] if gpu else ["torch-compile"]
        if not gpu and not args.no_sklearn:
            keys.append("sklearn")
        make = gpu_contender if gpu else cpu_contender
        ready, skipped, memory = [], {}, {}
        for key in keys:
            c = make(key)
            try:
                if gpu:
                    c.prepare_measured(config, X, y)
                    memory[c.name] = c.peak_bytes
                else:
                    c.prepare(config, X, y)
                    memory[c.name] = _cpu_fit_memory(name, key, rows, args.threads)
                ready.append(c)
            except Unavailable as exc:
                skipped[c.name] = str(exc)
                print(f"  skipped {c.name}: {exc}")
        times = interleaved(ready, args.epochs)
        floor = gemm_floor(config, rows, xp, sync)
        entry = {
            "config": config.describe(),
            "layer_sizes": config.layer_sizes,
            "batch_size": config.batch_size,
            "floor": floor,
            "skipped": skipped,
            "contenders": {
                n: {**summary(t), "peak_memory_bytes": memory[n]} for n, t in times.items()
            },
        }
        _ratios(entry)
        results["configs"][name] = entry
        print_table(name, entry)
    if not args.no_scaling:
        from .scaling import sweep

        results["scaling"] = sweep(args, gpu, os.path.join(args.out, f"scaling-{tag}.png"))
    path = os.path.join(args.out, f"epoch-{tag}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(os.path.join(args.out, f"epoch-{tag}.md"), "w") as f:
        f.write(markdown(results))
    print(f"\nwrote {path} and epoch-{tag}.md")
    return 0


def _cpu_fit_memory(config, key, rows, threads):
    """Peak RSS growth of one fit, from a fresh process (benchmarks.memory)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", config, key, str(rows), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]


def _array_module(gpu):
    if not gpu:
        import numpy

        return numpy, lambda: None
    import cupy

    return cupy, cupy.cuda.Device().synchronize


def _ratios(entry):
    contenders = entry["contenders"]
    eager = next((v["median"] for k, v in contenders.items() if k.startswith("torch eager")), None)
    for v in contenders.values():
        v["vs_torch_eager"] = v["median"] / eager if eager else None
        v["vs_gemm_floor"] = v["median"] / entry["floor"]["seconds"]


def environment(args, gpu) -> dict:
    import numpy
    import sklearn
    from threadpoolctl import threadpool_info

    import gpubp

    env = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "gpubp": gpubp.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "threads": args.threads,
        "blas": [
            f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}), "
            f"{i['num_threads']} threads"
            for i in threadpool_info()
        ],
    }
    try:
        import torch

        env["torch"] = torch.__version__
        torch.set_num_threads(args.threads)
        env["torch threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = "not installed"
    if gpu:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        env["card"] = name.decode() if isinstance(name, bytes) else name
        env["cupy"] = cupy.__version__
        env["cuda runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return env


def print_environment(env):
    for k, v in env.items():
        print(f"{k:>14}: {v}")


def print_table(name, entry):
    floor = entry["floor"]
    print(
        f"\n({name}) {entry['config']}: GEMM floor {floor['seconds']:.3f} s per epoch "
        f"({floor['gflops_per_s']:.0f} GFLOP/s over {floor['gflop']:.1f} GFLOP)"
    )
    print(
        f"  {'contender':<34}{'median s':>10}{'min':>9}{'max':>9}{'/eager':>8}{'/floor':>8}"
        f"{'peak MB':>9}"
    )
    for n, v in entry["contenders"].items():
        eager = f"{v['vs_torch_eager']:.2f}" if v["vs_torch_eager"] else "-"
        print(
            f"  {n:<34}{v['median']:>10.3f}{v['min']:>9.3f}{v['max']:>9.3f}{eager:>8}"
            f"{v['vs_gemm_floor']:>8.2f}{v['peak_memory_bytes'] / 2**20:>9.0f}"
        )
    sys.stdout.flush()


def markdown(results) -> str:
    env = results["environment"]
    lines = [
        f"Measured {env['date']} on {env['machine']}"
        + (f", {env['card']}" if "card" in env else "")
        + ".",
        "",
        f"Versions: gpubp {env['gpubp']}, NumPy {env['numpy']}, scikit-learn "
        f"{env['scikit-learn']}, PyTorch {env['torch']}"
        + (f", CuPy {env['cupy']}" if "cupy" in env else "")
        + f"; Python {env['python']}. Threads: {env['threads']}; BLAS: "
        + "; ".join(env["blas"])
        + ".",
        "",
        f"{results['rows']:,} rows per epoch; seconds per epoch, median of "
        f"{next(iter(next(iter(results['configs'].values()))['contenders'].values()))['n']}"
        " interleaved epochs (min-max); ratios of medians.",
        "",
        "| config | contender | median s | min-max s | / torch eager | / GEMM floor "
        "| peak fit memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["configs"].items():
        for n, v in entry["contenders"].items():
            eager = f"{v['vs_torch_eager']:.2f}x" if v["vs_torch_eager"] else "-"
            lines.append(
                f"| ({name}) {entry['config']} | {n} | {v['median']:.3f} | "
                f"{v['min']:.3f}-{v['max']:.3f} | {eager} | {v['vs_gemm_floor']:.2f}x | "
                f"{v['peak_memory_bytes'] / 2**20:.0f} MB |"
            )
        lines.append(
            f"| ({name}) | GEMM floor | {entry['floor']['seconds']:.3f} | | | 1.00x | "
            f"{entry['floor']['gflops_per_s']:.0f} GFLOP/s |"
        )
        for n, why in entry["skipped"].items():
            lines.append(f"| ({name}) | {n} | skipped: {why} | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
