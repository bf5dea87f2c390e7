"""Training on data that does not fit: memory, epoch time and shuffling (issue 32).

    python -m benchmarks.streaming memory [--rows N] [--folder DIR]
    python -m benchmarks.streaming epoch [--rounds R] [--rows N]
    python -m benchmarks.streaming files [--rows N]
    python -m benchmarks.streaming shuffle [--rows N] [--epochs E]

``memory``: peak anonymous memory (RssAnon, sampled every 2 ms; page-cache pages of
a memmap are file-backed and not counted) of one epoch of ``MLPClassifier((64,))``
on N, 2N and 4N rows of 256 float32 features, each fit in a fresh process: X read
whole into memory (resident) against X memory-mapped (streamed, with the full
permutation and with the buffered shuffle).
``epoch``: configurations (a) and (b) on 60,000 rows, one ``partial_fit`` epoch from
memory against one from a page-cached memmap, alternating, medians and the median of
each round's ratio (the shared VM runs in slow spells that move a whole round).
``files``: what ``gpubp train`` spends on a Parquet and on a CSV file per GiB, both
read in chunks: the pass that copies the features out, and one epoch from the copy.
``shuffle``: label-sorted rows, the validation loss after each epoch with the full
permutation, the buffered shuffle and no shuffle.
Results go to benchmarks/results/streaming-*.{json,md} (``--out`` another folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .threads import set_thread_env  # imports no NumPy: thread counts are set before it loads

RESULTS = os.path.join(os.path.dirname(__file__), "results")
THREADS = 2


def _environment() -> dict:
    import numpy as np
    import threadpoolctl

    import gpubp
    from gpubp.backend import cpu_kernels_reason

    from .measure import cpu_model

    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for info in threadpoolctl.threadpool_info()
    ]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "gpubp": gpubp.__version__,
        "numpy": np.__version__,
        "cpu": cpu_model(),
        "threads": THREADS,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "blas": blas,
        "cpu_kernels": cpu_kernels_reason(),
    }


def _write(args, stem: str, data, lines: list[str]) -> None:
    from .measure import write_results

    write_results(args.out, stem, data, "\n".join(lines) + "\n")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right."""
    rule = "|---|" + "---:|" * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]


def _make_files(folder: str, n: int, p: int = 256, classes: int = 10) -> tuple[str, str]:
    """X.npy (float32, n x p) and y.npy (int64), written a block at a time."""
    import numpy as np

    X_path, y_path = os.path.join(folder, f"X{n}.npy"), os.path.join(folder, f"y{n}.npy")
    if os.path.exists(X_path) and os.path.exists(y_path):
        return X_path, y_path
    X = np.lib.format.open_memmap(X_path, mode="w+", dtype=np.float32, shape=(n, p))
    y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.int64, shape=(n,))
    rng = np.random.default_rng(0)
    w = rng.normal(size=(p, classes)).astype(np.float32)
    for start in range(0, n, 100_000):
        block = rng.normal(size=(min(100_000, n - start), p)).astype(np.float32)
        X[start : start + len(block)] = block
        y[start : start + len(block)] = np.argmax(block @ w, axis=1)
    X.flush()
    y.flush()
    del X, y
    return X_path, y_path


def memory_worker(X_path: str, y_path: str, mode: str) -> dict:
    """One epoch's peak RssAnon for ``mode``: resident, streamed, buffered."""
    import warnings

    import numpy as np

    from gpubp import MLPClassifier

    from .measure import PeakRSS, rss_anon

    baseline = rss_anon()
    with PeakRSS(read=rss_anon) as peak:
        if mode == "resident":
            X, y = np.load(X_path), np.load(y_path)
        else:
            X, y = np.load(X_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
        est = MLPClassifier(
            (64,),
            max_iter=1,
            random_state=0,
            backend="numpy",
            shuffle="buffered" if mode == "buffered" else True,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        seconds = time.perf_counter() - start
    return {"baseline": baseline, "peak": peak.peak, "seconds": seconds}


def memory(args) -> None:
    folder = args.folder or tempfile.mkdtemp(prefix="gpubp-streaming-")
    os.makedirs(folder, exist_ok=True)
    sizes = [args.rows, 2 * args.rows, 4 * args.rows]
    rows = []
    for n in sizes:
        X_path, y_path = _make_files(folder, n)
        gib = os.path.getsize(X_path) / 2**30
        for mode in ("resident", "streamed", "buffered"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.streaming", "memory-worker",
                 X_path, y_path, mode],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"rows": n, "file_gib": gib, "mode": mode, **result})
            print(rows[-1], flush=True)
    by = {(r["rows"], r["mode"]): r for r in rows}
    lines = _table(
        ["rows", "X file (GiB)", "mode", "peak RssAnon (GiB)", "epoch with set-up (s)"],
        [
            [f"{r['rows']:,}", f"{r['file_gib']:.2f}", r["mode"], f"{r['peak'] / 2**30:.3f}",
             f"{r['seconds']:.1f}"]
            for r in rows
        ],
    )  # fmt: skip
    growth = {
        mode: by[(sizes[2], mode)]["peak"] / by[(sizes[0], mode)]["peak"] - 1
        for mode in ("resident", "streamed", "buffered")
    }
    lines.append("")
    lines.append(
        "Growth of the peak from N to 4N rows: "
        + ", ".join(f"{m} {100 * g:+.1f}%" for m, g in growth.items())
    )
    _write(args, "streaming-memory", {"env": _environment(), "rows": rows, "growth": growth}, lines)


def _partial_fit_epochs(X, y, config, rounds: int) -> list[float]:
    """Seconds of ``rounds`` partial_fit epochs on X (after one to warm up)."""
    from gpubp import MLPClassifier

    est = MLPClassifier(
        config.hidden,
        activation="logistic" if config.activation == "sigmoid" else config.activation,
        solver="sgd",
        learning_rate_init=0.1,
        batch_size=config.batch_size,
        random_state=0,
        backend="numpy",
    )
    est.partial_fit(X, y, classes=list(range(10)))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        est.partial_fit(X, y)
        times.append(time.perf_counter() - start)
    return times


def epoch(args) -> None:
    import numpy as np

    from .configs import CONFIGS, make_data

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for key in ("a", "b"):
            config = CONFIGS[key]
            X, y = make_data(args.rows, config.layer_sizes[0])
            X = np.ascontiguousarray(X, dtype=np.float32)
            np.save(os.path.join(folder, "X.npy"), X)
            X_file = np.load(os.path.join(folder, "X.npy"), mmap_mode="r")
            _ = np.asarray(X_file).sum()  # into the page cache
            times = {"memory": [], "memmap": []}
            for _ in range(args.rounds):  # alternating, one epoch each
                times["memory"] += _partial_fit_epochs(X, y, config, 1)
                times["memmap"] += _partial_fit_epochs(X_file, y, config, 1)
            med = {k: statistics.median(v) for k, v in times.items()}
            per_round = [a / b for a, b in zip(times["memory"], times["memmap"])]
            rows.append(
                {
                    "config": key,
                    "describe": config.describe(),
                    "times": times,
                    "median": med,
                    "memory_over_memmap": med["memory"] / med["memmap"],
                    "per_round": statistics.median(per_round),
                }
            )
            print(rows[-1], flush=True)
    lines = _table(
        ["config", "epoch from memory (s)", "epoch from a page-cached memmap (s)",
         "speed of the memmap epoch (ratio of medians)", "(median of the rounds' ratios)"],
        [
            [f"({r['config']}) {r['describe']}", f"{r['median']['memory']:.3f}",
             f"{r['median']['memmap']:.3f}", f"{r['memory_over_memmap']:.2f}x",
             f"{r['per_round']:.2f}x"]
            for r in rows
        ],
    )  # fmt: skip
    _write(args, "streaming-epoch", {"env": _environment(), "rows": rows}, lines)


def files(args) -> None:
    import contextlib
    import warnings

    import numpy as np
    import pandas as pd

    from gpubp import MLPClassifier, tables
    from gpubp.cli import data as cli_data

    tables.WHOLE_BYTES = 0  # both files read in chunks, as files larger than memory are
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        n, p = args.rows, 50
        X = rng.normal(size=(n, p))
        df = pd.DataFrame(X, columns=[f"x{i}" for i in range(p)])
        df["t"] = (X[:, 0] + X[:, 1] > 0).astype(int)
        paths = {"parquet": os.path.join(folder, "d.parquet"), "csv": os.path.join(folder, "d.csv")}
        df.to_parquet(paths["parquet"], row_group_size=65536)
        df.to_csv(paths["csv"], index=False, float_format="%.7g")
        del df
        for kind, path in paths.items():
            argv = argparse.Namespace(
                data=path, target="t", task="auto", sep=None, encoding="utf-8", out=folder, drop=()
            )
            with contextlib.ExitStack() as cleanup:
                start = time.perf_counter()
                X_rows, y, _, _, _, _ = cli_data.dataset(argv, cleanup)
                copy_s = time.perf_counter() - start
                est = MLPClassifier((64,), max_iter=1, random_state=0, backend="numpy")
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X_rows, y)
                epoch_s = time.perf_counter() - start
            gib = os.path.getsize(path) / 2**30
            features_gib = n * p * 8 / 2**30
            rows.append(
                {
                    "kind": kind,
                    "rows": n,
                    "file_gib": gib,
                    "features_gib": features_gib,
                    "copy_s": copy_s,
                    "epoch_s": epoch_s,
                }
            )
            print(rows[-1], flush=True)
    lines = _table(
        ["file", "rows x 50", "file (GiB)", "copy pass (s per GiB of file)",
         "one epoch from the copy (s per GiB of features)"],
        [
            [r["kind"], f"{r['rows']:,}", f"{r['file_gib']:.3f}",
             f"{r['copy_s'] / r['file_gib']:.1f}", f"{r['epoch_s'] / r['features_gib']:.1f}"]
            for r in rows
        ],
    )  # fmt: skip
    _write(args, "streaming-files", {"env": _environment(), "rows": rows}, lines)


def shuffle(args) -> None:
    import warnings

    import numpy as np
    from sklearn.datasets import make_classification

    from gpubp import MLPClassifier
    from gpubp.inputs import data as inputs_data

    if args.block_bytes:
        inputs_data.BLOCK_BYTES = args.block_bytes
    X, y = make_classification(
        n_samples=args.rows + 20_000, n_features=40, n_informative=20, n_classes=10,
        n_clusters_per_class=1, random_state=0,
    )  # fmt: skip
    X = X.astype(np.float32)
    X_val, y_val, X, y = X[:20_000], y[:20_000], X[20_000:], y[20_000:]
    order = np.argsort(y, kind="stable")  # label-sorted: the worst case for reading in order
    X, y = X[order], y[order]
    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        np.save(os.path.join(folder, "X.npy"), X)
        X_file = np.load(os.path.join(folder, "X.npy"), mmap_mode="r")
        for mode in ("full", "buffered", False):
            est = MLPClassifier(
                (64,), random_state=0, backend="numpy", shuffle=mode, batch_size=200
            )
            losses = []
            for _ in range(args.epochs):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.partial_fit(X_file, y, classes=list(range(10)))
                p = np.clip(est.predict_proba(X_val), 1e-12, 1)
                losses.append(float(-np.mean(np.log(p[np.arange(len(y_val)), y_val]))))
            curves[str(mode)] = losses
            print(mode, losses, flush=True)
    full, buffered, none = curves["full"][-1], curves["buffered"][-1], curves["False"][-1]
    lines = [
        f"Label-sorted rows ({args.rows:,} x 40, 10 classes, MLPClassifier((64,)), adam, "
        f"batch 200), validation log-loss on 20,000 held-out rows after each epoch; "
        f"buffered: blocks of {inputs_data.BLOCK_BYTES:,} bytes, buffers of "
        f"{inputs_data.CHUNK_BYTES:,}:",
        "",
        *_table(
            ["shuffle", *(f"epoch {e + 1}" for e in range(args.epochs))],
            [[mode, *(f"{v:.4f}" for v in losses)] for mode, losses in curves.items()],
        ),
        "",
        f"Buffered over full after {args.epochs} epochs: {buffered / full:.4f}; "
        f"no shuffle over full: {none / full:.4f}.",
    ]
    data = {
        "env": _environment(),
        "curves": curves,
        "rows": args.rows,
        "block_bytes": inputs_data.BLOCK_BYTES,
        "chunk_bytes": inputs_data.CHUNK_BYTES,
    }
    _write(args, "streaming-shuffle", data, lines)


def main(argv=None) -> int:
    set_thread_env(THREADS)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming")
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--rows", type=int, default=1_050_000)
    m.add_argument("--folder")
    w = sub.add_parser("memory-worker")
    w.add_argument("X")
    w.add_argument("y")
    w.add_argument("mode", choices=("resident", "streamed", "buffered"))
    e = sub.add_parser("epoch")
    e.add_argument("--rounds", type=int, default=11)
    e.add_argument("--rows", type=int, default=60_000)
    f = sub.add_parser("files")
    f.add_argument("--rows", type=int, default=500_000)
    s = sub.add_parser("shuffle")
    s.add_argument("--rows", type=int, default=2_000_000)
    s.add_argument("--epochs", type=int, default=4)
    s.add_argument("--block-bytes", type=int, help="buffered shuffling's block size")
    for command in (m, e, f, s):
        command.add_argument("--out", default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    if args.what == "memory-worker":
        print(json.dumps(memory_worker(args.X, args.y, args.mode)))
        return 0
    {"memory": memory, "epoch": epoch, "files": files, "shuffle": shuffle}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
