"""How an epoch's cost grows with batch size and with width, on each backend."""

from __future__ import annotations

import statistics
import time

from .configs import Config, make_data
from .contenders import Gpubp

BATCHES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (128, 256, 512, 1024, 2048, 4096)


def _epoch_time(backend, config, X, y, epochs):
    model = Gpubp(backend)
    model.prepare(config, X, y)  # the warm-up epoch
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.epoch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sweep(args, gpu: bool, png: str) -> dict:
    """Median epoch times for the batch and width sweeps; plots them to ``png``."""
    rows = 4096 if args.quick else 16384
    epochs = 2 if args.quick else 3
    batches = (32, 256, 4096) if args.quick else BATCHES
    widths = (128, 512, 2048) if args.quick else WIDTHS
    backends = ["numpy", "cupy"] if gpu else ["numpy"]
    X, y = make_data(rows, 784)
    result = {"rows": rows, "epochs": epochs, "batch": {}, "width": {}}
    print(f"\nscaling: {rows} rows, median of {epochs} epochs, gpubp on {', '.join(backends)}")
    for backend in backends:
        result["batch"][backend] = {}
        for b in batches:
            t = _epoch_time(backend, Config("s", (784, 512, 512, 10), "relu", b), X, y, epochs)
            result["batch"][backend][b] = t
            print(f"  {backend:>6} 784-512-512-10 batch {b:>5}: {t:.3f} s")
        result["width"][backend] = {}
        for w in widths:
            t = _epoch_time(backend, Config("s", (784, w, w, 10), "relu", 128), X, y, epochs)
            result["width"][backend][w] = t
            print(f"  {backend:>6} 784-{w}-{w}-10 batch 128: {t:.3f} s")
    plot(result, png)
    return result


def crossover(cpu: dict, gpu: dict):
    """The first x at which the GPU is faster than the CPU, or None."""
    return next((x for x in sorted(cpu) if x in gpu and gpu[x] < cpu[x]), None)


def plot(result, png):
    try:
        import matplotlib
    except ImportError:
        print(f"  matplotlib is not installed: {png} not drawn")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in [
        (axes[0], "batch", "batch size (784-512-512-10 ReLU)"),
        (axes[1], "width", "hidden width W (784-W-W-10 ReLU, batch 128)"),
    ]:
        series = result[key]
        for backend, points in series.items():
            xs = sorted(points)
            ax.plot(
                xs,
                [points[x] for x in xs],
                "o-",
                label="CPU (NumPy)" if backend == "numpy" else "GPU (CuPy)",
            )
        if "cupy" in series:
            x = crossover(series["numpy"], series["cupy"])
            if x is not None:
                ax.axvline(x, color="grey", ls="--")
                ax.annotate(
                    f"GPU faster from {x}", (x, ax.get_ylim()[1]), ha="left", va="top", fontsize=8
                )
        else:
            ax.text(
                0.02,
                0.02,
                "no GPU in this run: crossover not measured",
                transform=ax.transAxes,
                fontsize=8,
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=label,
            ylabel="seconds per epoch",
            title=f"epoch time vs {key} ({result['rows']} rows)",
        )
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
