"""The configurations timed by the suite (issue 4), and their data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_ROWS, N_FEATURES, N_CLASSES = 60_000, 784, 10
LEARNING_RATE = 0.1


@dataclass(frozen=True)
class Config:
    name: str
    layer_sizes: tuple[int, ...]
    activation: str  # the textbook's names: sigmoid, relu
    batch_size: int
    gpu_only: bool = False

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.layer_sizes[1:-1]

    def describe(self) -> str:
        return f"{'-'.join(map(str, self.layer_sizes))} {self.activation}, batch {self.batch_size}"


CONFIGS = {
    "a": Config("a", (784, 128, 10), "sigmoid", 128),
    "b": Config("b", (784, 512, 512, 10), "relu", 128),
    "c32": Config("c32", (784, 512, 512, 10), "relu", 32),
    "c1024": Config("c1024", (784, 512, 512, 10), "relu", 1024),
    "d": Config("d", (4096, 4096, 4096, 10), "relu", 4096, gpu_only=True),
}


def make_data(n_rows: int, n_features: int, seed: int = 0):
    """Standard-normal float32 inputs and 10 random classes (never all zeros)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, n_rows)
    return X, y


def gemm_shapes(config: Config, batch: int):
    """(M, K, N, how) of every GEMM in one step: three per layer, two for the first.

    how is "fwd" (Z W), "dW" (Z^T Delta) or "back" (Delta W^T).
    """
    shapes = []
    for l, (m, n) in enumerate(zip(config.layer_sizes[:-1], config.layer_sizes[1:])):
        shapes.append((batch, m, n, "fwd"))
        shapes.append((m, batch, n, "dW"))
        if l > 0:
            shapes.append((batch, n, m, "back"))
    return shapes


def step_flops(config: Config, batch: int) -> int:
    return sum(2 * M * K * N for M, K, N, _ in gemm_shapes(config, batch))
