"""Thread counts for the libraries timed, set before any of them is imported."""

from __future__ import annotations

import os


def set_thread_env(threads: int) -> None:
    """OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS, which the libraries read
    when they load: call before importing NumPy or torch (this module imports neither)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
