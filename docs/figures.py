"""The performance page's figures, drawn at build time from the tables in docs/data.

    python docs/figures.py     # writes docs/_static/generated/*.png (conf.py runs it)

Each figure plots the seconds of one table, so a page's table and its figure cannot
disagree; the PNGs are build outputs, not committed.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = HERE / "_static" / "generated"

FIGURES = {
    "gpu-h200-2026-12-04": (
        ["gpubp (CuPy; CUDA graphs)", "gpubp, no graphs", "PyTorch eager"],
        "seconds per epoch, 60,000 rows (log scale)",
        "NVIDIA H200, 2026-12-04: seconds per epoch (lower is faster)",
    ),
    "cpu-2vcpu-2026-12-01": (
        ["gpubp fit", "gpubp, GPUBP_NUMBA=0", "PyTorch eager", "scikit-learn fit"],
        "seconds for one epoch of 60,000 rows",
        "2-vCPU VM (AMD EPYC), 2026-12-01: seconds (lower is faster)",
    ),
}


def read(name: str) -> list[dict]:
    with open(DATA / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def draw(name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns, ylabel, title = FIGURES[name]
    rows = read(name)
    labels = [row["configuration"].split(" ")[0] for row in rows]
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.8 / len(columns)
    for i, column in enumerate(columns):
        values = [float(row[column]) for row in rows]
        ax.bar(np.arange(len(rows)) + (i - (len(columns) - 1) / 2) * width, values, width,
               label=column)
    ax.set_xticks(np.arange(len(rows)), labels)
    ax.set(ylabel=ylabel, title=title)
    if name.startswith("gpu"):
        ax.set_yscale("log")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_all() -> list[Path]:
    return [draw(name) for name in FIGURES]


if __name__ == "__main__":
    for path in draw_all():
        print(path)
