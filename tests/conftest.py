import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from gpubp.backend import probe_cupy
from gpubp.functions import VALID_OUTPUTS

STANDIN = Path(__file__).resolve().parent / "cupy_standin"

# Every (output, loss) pairing the network accepts.
PAIRS = [(out, loss) for loss, outs in VALID_OUTPUTS.items() for out in outs]


def pytest_addoption(parser):
    parser.addoption(
        "--cupy-standin",
        action="store_true",
        help="run the suite on gpubp's CuPy path, with tests/cupy_standin as cupy "
        "(GPUBP_BACKEND=cupy; child processes inherit both)",
    )


def pytest_configure(config):
    if not config.getoption("--cupy-standin"):
        return
    if "cupy" in sys.modules:
        raise pytest.UsageError("--cupy-standin: a real cupy was imported before the tests")
    sys.path.insert(0, str(STANDIN))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(STANDIN), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    os.environ["GPUBP_BACKEND"] = "cupy"
    import cupy

    assert getattr(cupy, "__standin__", False), cupy.__file__


def standin_installed() -> bool:
    """Whether ``cupy`` is the stand-in (``--cupy-standin``)."""
    return getattr(sys.modules.get("cupy"), "__standin__", False)


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests, with the reason, where CuPy has no device; `cuda` tests also
    on the stand-in, which checks plumbing, not CUDA arithmetic."""
    backend, why = probe_cupy()
    skips = {}
    if backend is None:
        skips["gpu"] = skips["cuda"] = pytest.mark.skip(reason=f"needs CuPy and a device: {why}")
    elif standin_installed():
        skips["cuda"] = pytest.mark.skip(reason="needs a real CUDA device, not the CuPy stand-in")
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
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


def load_without_cupy(blob: bytes):
    """Unpickle ``blob``, failing if it names anything from CuPy."""

    class NoCuPy(pickle.Unpickler):
        def find_class(self, module, name):
            assert not module.startswith(("cupy", "cupyx", "cupy_backends")), module
            return super().find_class(module, name)

    return NoCuPy(io.BytesIO(blob)).load()


class DLPackProducer:
    """Any DLPack producer wrapping ``array`` (what a PyTorch or JAX tensor offers);
    ``device``, a (type, id) pair, overrides the device it reports (2 is CUDA)."""

    def __init__(self, array, device=None):
        self.array, self.device = array, device

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.device or self.array.__dlpack_device__()


@pytest.fixture
def fake_cublas(monkeypatch):
    """On the CuPy stand-in: gpubp's direct cuBLAS calls go to ``fake_cublas``'s NumPy
    GEMMs (the library object, whose ``calls`` record them), so ``gpubp.cublas`` and
    what calls it run on the CPU."""
    if not standin_installed():
        pytest.skip("the fake cuBLAS reads host memory: the CuPy stand-in only")
    import cupy
    from fake_cublas import FakeCublasLibrary

    from gpubp import cublas, kernels

    library = FakeCublasLibrary()
    monkeypatch.setitem(
        kernels._DIRECT, cupy.cuda.Device().id, (cublas.Cublas(library, "fake"), "")
    )
    return library
