"""How long the command takes to read a CSV: ``python -m benchmarks.csv_read [ROWS] [COLUMNS]``.

Writes a CSV of normal numbers and a 0/1 target (default 200,000 x 50) to a
temporary folder and reads it as ``gpubp train --data FILE --target t`` does,
in rounds; prints each round and the median.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gpubp.cli.data import dataset


def main(rows: int = 200_000, columns: int = 50, rounds: int = 5) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, columns))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.csv"
        with open(path, "w") as f:
            f.write(",".join([*(f"x{i}" for i in range(columns)), "t"]) + "\n")
            np.savetxt(f, np.c_[X, X[:, 0] > 0], delimiter=",", fmt="%.6g")
        args = argparse.Namespace(
            data=str(path), target="t", task="auto", sep=None, encoding="utf-8", out=folder, drop=()
        )
        times = []
        for r in range(rounds):
            start = time.perf_counter()
            with contextlib.ExitStack() as cleanup:
                dataset(args, cleanup)
            times.append(time.perf_counter() - start)
            print(f"round {r + 1}: {times[-1]:.3f} s")
    print(f"median of {rounds}: {statistics.median(times):.3f} s for {rows} x {columns}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
