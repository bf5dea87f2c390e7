"""Model files: save and load time and file size of a large model, per file format.

A classifier of configuration (d), 4096-4096-4096-10 (33.6 million weights, 134 MB
in float32), fitted for one epoch on a few random rows, is saved and loaded in
each format, the formats alternating round by round; medians (min-max) of the
rounds. "load" is ``gpubp.load`` up to a network that predicts (its weights in
place), from a file just written (so from the page cache); "predict" is one row
predicted after it. The folder is ``--dir`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

FORMATS = {"npz": ".npz", "safetensors": ".safetensors"}


def model(layer_sizes):
    import numpy as np

    import gpubp

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, layer_sizes[0]), dtype=np.float32)
    y = np.arange(64) % layer_sizes[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge
        return gpubp.MLPClassifier(
            layer_sizes[1:-1], max_iter=1, random_state=0, backend="numpy"
        ).fit(X, y), X[:1]


def measure(formats, rounds: int, folder: str, layer_sizes) -> dict:
    import gpubp

    est, row = model(layer_sizes)
    times = {f: {"save": [], "load": [], "predict": []} for f in formats}
    sizes = {}
    for _ in range(rounds):
        for name in formats:
            path = os.path.join(folder, "model" + FORMATS[name])
            start = time.perf_counter()
            gpubp.save(est, path)
            times[name]["save"].append(time.perf_counter() - start)
            sizes[name] = os.path.getsize(path)
            start = time.perf_counter()
            back = gpubp.load(path, backend="numpy")
            times[name]["load"].append(time.perf_counter() - start)
            start = time.perf_counter()
            back.predict(row)
            times[name]["predict"].append(time.perf_counter() - start)
            del back
            os.unlink(path)
    weights = sum(W.nbytes + b.nbytes for W, b in zip(est.coefs_, est.intercepts_))
    return {
        "layer_sizes": list(layer_sizes),
        "weight_bytes": weights,
        "rounds": rounds,
        "times": times,
        "sizes": sizes,
    }


def markdown(results: dict) -> str:
    mb = 1e6
    lines = [
        f"Classifier {'-'.join(map(str, results['layer_sizes']))}, "
        f"{results['weight_bytes'] / mb:.1f} MB of float32 weights; seconds, median (min-max) "
        f"of {results['rounds']} rounds, the formats alternating.",
        "",
        "| format | file size (MB) | save (s) | load (s) | first predict (s) |",
        "|---|---|---|---|---|",
    ]
    for name, t in results["times"].items():
        cells = [
            f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
            for v in (t["save"], t["load"], t["predict"])
        ]
        lines.append(f"| {name} | {results['sizes'][name] / mb:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.model_files", description=__doc__)
    p.add_argument("--formats", default=",".join(FORMATS), help="npz, safetensors")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="4096,4096,4096,10", help="layer sizes")
    p.add_argument("--dir", help="folder the files are written to (default: a temporary one)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        p.error(f"unknown formats {sorted(unknown)}; choose from {sorted(FORMATS)}")
    from .threads import set_thread_env

    set_thread_env(args.threads)
    from .measure import write_results

    sizes = tuple(int(n) for n in args.sizes.split(","))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        results = measure(formats, args.rounds, folder, sizes)
    write_results(args.out, "model-files", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
