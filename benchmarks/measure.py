"""Timing, memory and the GEMM floor, all in this process."""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time

from .configs import Config, gemm_shapes

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    """Resident memory of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def rss_anon() -> int:
    """Anonymous resident memory of this process in bytes (Linux /proc; 0 elsewhere): what
    RSS counts less the file-backed pages, such as a memmap's page cache."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_model() -> str:
    """The CPU's model name (Linux /proc), else what ``platform`` says."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class PeakRSS:
    """Peak resident memory (``read``: ``rss`` or ``rss_anon``) above the level at entry,
    sampled every millisecond; ``peak`` is the level itself."""

    def __init__(self, read=rss):
        self.read = read

    def __enter__(self):
        gc.collect()
        self.base = self.peak = self.read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
        self.bytes = self.peak - self.base


def summary(times: list[float]) -> dict:
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "n": len(times),
        "times": times,
    }


def interleaved(contenders: list, rounds: int) -> dict[str, list[float]]:
    """Time ``epoch()`` of each contender, A B C A B C ..., ``rounds`` times."""
    times = {c.name: [] for c in contenders}
    for _ in range(rounds):
        for c in contenders:
            start = time.perf_counter()
            c.epoch()
            times[c.name].append(time.perf_counter() - start)
    return times


def gemm_floor(config: Config, n_rows: int, xp, sync=lambda: None, repeats: int = 20) -> dict:
    """Seconds per epoch if the step did nothing but its GEMMs, at the measured rates.

    Each GEMM is timed in the layout the network uses: Z W, Z^T Delta, Delta W^T.
    """
    import numpy as np

    rng = np.random.default_rng(0)

    def rand(*shape):
        return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

    full, last = divmod(n_rows, config.batch_size)
    batches = [(config.batch_size, full)] + ([(last, 1)] if last else [])
    total, flops = 0.0, 0
    for batch, count in batches:
        for M, K, N, how in gemm_shapes(config, batch):
            if how == "fwd":
                a, b = rand(M, K), rand(K, N)

                def run(a=a, b=b):  # noqa: E306
                    return a @ b
            elif how == "dW":  # a is Z (batch x fan_in)
                a, b = rand(K, M), rand(K, N)

                def run(a=a, b=b):  # noqa: E306
                    return a.T @ b
            else:  # b is W (fan_in x fan_out)
                a, b = rand(M, K), rand(N, K)

                def run(a=a, b=b):  # noqa: E306
                    return a @ b.T

            run()
            sync()
            samples = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(repeats):
                    run()
                sync()
                samples.append((time.perf_counter() - start) / repeats)
            total += min(samples) * count
            flops += 2 * M * K * N * count
    return {"seconds": total, "gflop": flops / 1e9, "gflops_per_s": flops / total / 1e9}


def write_results(folder: str, stem: str, data, text: str) -> None:
    """``stem``.json (``data``) and ``stem``.md (``text``) in ``folder``, and ``text`` printed."""
    import json

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{stem}.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(folder, f"{stem}.md"), "w") as f:
        f.write(text)
    print(text)
