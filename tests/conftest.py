import numpy as np
import pytest

from gpubp.backend import probe_cupy


def pytest_collection_modifyitems(config, items):
    """Skip `gpu`-marked tests, with the reason, where CuPy has no device."""
    if not any("gpu" in item.keywords for item in items):
        return
    backend, why = probe_cupy()
    if backend is not None:
        return
    skip = pytest.mark.skip(reason=f"needs CuPy and a CUDA device: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def problem(sizes, output, seed=0, N=6):
    """Random inputs and targets for a network: probability rows for a softmax output."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, sizes[0]))
    K = sizes[-1]
    Y = rng.dirichlet(np.ones(K), size=N) if output == "softmax" else rng.uniform(size=(N, K))
    return X, Y


def named_quantities(bp, want) -> dict:
    """Every named quantity of two Backprop results, paired by name (Z_l, T, F, delta, s_l,
    the loss and every gradient)."""
    named = {
        "T": (bp.T, want.T),
        "F": (bp.F, want.F),
        "delta": (bp.delta, want.delta),
        "loss": (bp.loss, want.loss),
    }
    named |= {f"Z_{l}": pair for l, pair in enumerate(zip(bp.Z, want.Z))}
    named |= {f"s_{l + 1}": pair for l, pair in enumerate(zip(bp.s, want.s))}
    for l, ((dW, db), (dW0, db0)) in enumerate(zip(bp.gradients, want.gradients), start=1):
        named |= {f"dW_{l}": (dW, dW0), f"db_{l}": (db, db0)}
    return named
