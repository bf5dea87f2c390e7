"""Checkpoints: what one at every epoch's end costs, and writing and reading a large one.

1. Configuration (b), 784-512-512-10 relu in batches of 128, on ``--rows`` random rows
   (default 60,000) with Adam: fits of ``--epochs`` epochs without checkpoints and
   with one at the end of every epoch (``checkpoint_every=1``), alternating, ``--rounds``
   each after a round that warms up; the ratio of the medians of the seconds per epoch,
   and (b)'s checkpoint write timed alone against the epoch.
2. Configurations (b) and (d), 4096-4096-4096-10 (33.6 million weights) with Adam's two moments:
   a checkpoint written (temporary file, fsync, rename, fsync of the folder) and read
   back (every array's SHA-256 checked), ``--rounds`` times; medians (min-max).

python -m benchmarks.checkpoints [--rows N] [--epochs E] [--rounds R] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np

from .configs import CONFIGS, N_ROWS, make_data


def epoch_costs(rows: int, epochs: int, rounds: int, folder: str) -> dict:
    import gpubp

    config = CONFIGS["b"]
    X, y = make_data(rows, config.layer_sizes[0])
    seconds = {"none": [], "every epoch": []}
    for r in range(-1, rounds):  # round -1 warms up, and is not kept
        for kind in seconds:
            where = os.path.join(folder, f"b-{r}")
            kw = dict(checkpoint=where, checkpoint_every=1) if kind != "none" else {}
            model = gpubp.MLPClassifier(
                config.hidden,
                batch_size=config.batch_size,
                max_iter=epochs,
                random_state=0,
                backend="numpy",
                tol=0.0,
                **kw,
            )
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)
            if r >= 0:
                seconds[kind].append((time.perf_counter() - start) / epochs)
            shutil.rmtree(where, ignore_errors=True)
    return seconds


def write_and_read(name: str, rounds: int, folder: str) -> dict:
    """Seconds to write and to read configuration ``name``'s checkpoint with Adam."""
    import gpubp
    from gpubp.checkpoint import Run
    from gpubp.checkpoint_files import Folder

    config = CONFIGS[name]
    X, _ = make_data(64, config.layer_sizes[0])
    y = np.arange(64) % config.layer_sizes[-1]  # every class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gpubp.MLPClassifier(config.hidden, max_iter=1, random_state=0, backend="numpy")
        model.fit(X, y)
    where = os.path.join(folder, name)
    run = Run(where, 1, {"benchmark": name})
    net = model.get_network()
    rng = np.random.default_rng(0)
    run.bind(net, model._optimizer, model._history, rng, rng.bit_generator.state, None)
    times = {"write": [], "read": []}
    for _ in range(rounds):
        start = time.perf_counter()
        run.epoch_ended(1)
        times["write"].append(time.perf_counter() - start)
        start = time.perf_counter()
        Folder(where, writer=False).latest()
        times["read"].append(time.perf_counter() - start)
    size = os.path.getsize(Folder(where, writer=False).files()[0])
    shutil.rmtree(where, ignore_errors=True)
    return {"times": times, "bytes": size, "weights": int(net.theta.size)}


def spread(values) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=N_ROWS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args(argv)
    folder = args.dir or tempfile.mkdtemp(prefix="gpubp-checkpoints-")
    threads = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")}
    print(f"folder {folder}; {threads}")
    costs = epoch_costs(args.rows, args.epochs, args.rounds, folder)
    none, every = (statistics.median(costs[k]) for k in ("none", "every epoch"))
    print(
        f"\n(b), {args.rows} rows, Adam, {args.epochs} epochs a fit, {args.rounds} rounds; "
        "seconds per epoch, median (min-max)\n"
    )
    print("| checkpoints | s / epoch |\n|---|---|")
    for kind, values in costs.items():
        print(f"| {kind} | {spread(values)} |")
    print(f"\nevery epoch / none: {every / none:.4f} ({100 * (every / none - 1):+.2f}%)")
    b = write_and_read("b", args.rounds, folder)
    write = statistics.median(b["times"]["write"])
    print(
        f"(b)'s checkpoint ({b['bytes'] / 1e6:.1f} MB) written in {spread(b['times']['write'])} s: "
        f"{100 * write / none:.2f}% of an epoch without checkpoints"
    )
    d = write_and_read("d", args.rounds, folder)
    print(
        f"\n(d), {d['weights']:,} weights with Adam's m and v: a {d['bytes'] / 1e6:.1f} MB "
        f"checkpoint, {args.rounds} rounds; seconds, median (min-max)\n"
    )
    print("| write (fsync'd) | read (SHA-256 checked) |\n|---|---|")
    print(f"| {spread(d['times']['write'])} | {spread(d['times']['read'])} |")
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
