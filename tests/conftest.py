import gc
import importlib.util
import io
import os
import pickle
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gpubp.backend import probe_cupy, probe_numba
from gpubp.functions import VALID_OUTPUTS

STANDIN = Path(__file__).resolve().parent / "cupy_standin"

# Every (output, loss) pairing the network accepts.
PAIRS = [(out, loss) for loss, outs in VALID_OUTPUTS.items() for out in outs]

# The backends a test marked ``backends`` runs on, as the environment that selects each
# (None: unset), which the test and its child processes see.
BACKENDS = {
    "numba": {"GPUBP_BACKEND": "numpy", "GPUBP_NUMBA": None},  # NumPy, numba's kernels
    "reference": {"GPUBP_BACKEND": "numpy", "GPUBP_NUMBA": "0"},  # NumPy, the formulas
    "cupy": {"GPUBP_BACKEND": "cupy", "GPUBP_NUMBA": None},  # CuPy, or the stand-in
}
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_addoption(parser):
    parser.addoption(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends for the tests marked `backends` (default "
        f"{','.join(BACKENDS)}; those that cannot run here are left out); the other tests "
        "run on the first",
    )
    parser.addoption(
        "--cupy-standin",
        action="store_true",
        help="the cupy backend is tests/cupy_standin even where a real CuPy is installed "
        "(it is wherever none is)",
    )


def pytest_configure(config):
    names = [n.strip() for n in config.getoption("--backends").split(",") if n.strip()]
    if not names or set(names) - set(BACKENDS):
        raise pytest.UsageError(f"--backends: give some of {', '.join(BACKENDS)}")
    standin = config.getoption("--cupy-standin") or importlib.util.find_spec("cupy") is None
    if "cupy" in names and standin:
        if "cupy" in sys.modules:
            raise pytest.UsageError("--cupy-standin: a real cupy was imported before the tests")
        sys.path.insert(0, str(STANDIN))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(STANDIN), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        import cupy

        assert getattr(cupy, "__standin__", False), cupy.__file__
    why_not = {"numba": probe_numba()[1], "reference": "", "cupy": probe_cupy()[1]}
    config.gpubp_backends = [n for n in names if not why_not[n]]
    config.gpubp_left_out = {n: why_not[n] for n in names if why_not[n]}
    if not config.gpubp_backends:
        raise pytest.UsageError(f"--backends: none can run here: {config.gpubp_left_out}")
    _set_environment(os.environ.__setitem__, os.environ.pop, config.gpubp_backends[0])
    config.gpubp_one_thread = bool(os.environ.get("PYTEST_XDIST_WORKER")) and not any(
        map(os.environ.get, THREADS)
    )
    if config.gpubp_one_thread:
        one_thread_each()


def one_thread_each():
    """One BLAS thread in each xdist worker and its child processes (a worker per core:
    more threads would only wait on each other), unless the environment names a count."""
    from threadpoolctl import threadpool_limits

    os.environ.update(dict.fromkeys(THREADS, "1"))
    threadpool_limits(1)  # the libraries already loaded: set now, not undone


def pytest_report_header(config):
    names = ", ".join(config.gpubp_backends)
    if "cupy" in config.gpubp_backends and standin_installed():
        names += " (the CuPy stand-in)"
    left_out = "".join(f"; {n} left out: {why}" for n, why in config.gpubp_left_out.items())
    return f"gpubp backends: {names}{left_out}"


def _set_environment(set_, unset, name: str) -> None:
    for key, value in BACKENDS[name].items():
        if value is None:
            unset(key, None)
        else:
            set_(key, value)


def pytest_generate_tests(metafunc):
    """A test marked ``backends`` (with names: only those) runs on each backend of
    --backends, its module's tests grouped by backend. A `gpu` test names its backends
    itself and runs once."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or metafunc.definition.get_closest_marker("gpu") is not None:
        return
    wanted = marker.args or tuple(BACKENDS)
    chosen = [n for n in metafunc.config.gpubp_backends if n in wanted]
    params = chosen or [
        pytest.param(wanted[0], marks=pytest.mark.skip(reason=f"runs on {', '.join(wanted)}"))
    ]
    metafunc.parametrize("gpubp_backend", params, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def gpubp_backend(request):
    """The backend this test runs on (its name), set in the environment for the module's
    tests: GPUBP_BACKEND and GPUBP_NUMBA, as a user would set them."""
    name = getattr(request, "param", request.config.gpubp_backends[0])
    patch = pytest.MonkeyPatch()
    _set_environment(patch.setenv, lambda key, _: patch.delenv(key, raising=False), name)
    yield name
    patch.undo()


def standin_installed() -> bool:
    """Whether ``cupy`` is the stand-in (the cupy backend on a machine without CuPy)."""
    return getattr(sys.modules.get("cupy"), "__standin__", False)


def on_standin() -> bool:
    """Whether this test runs gpubp's CuPy path on the stand-in."""
    return standin_installed() and os.environ.get("GPUBP_BACKEND") == "cupy"


def pytest_collection_modifyitems(config, items):
    """The `slow` tests first (under xdist, the longest tests start first and the workers
    end together); skip `gpu` tests, with the reason, where CuPy has no device; `cuda`
    tests also on the stand-in, which checks plumbing, not CUDA arithmetic."""
    items.sort(key=lambda item: "slow" not in item.keywords)
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

    from gpubp import cublas, gemm

    library = FakeCublasLibrary()
    monkeypatch.setitem(gemm.DIRECT, cupy.cuda.Device().id, (cublas.Cublas(library, "fake"), ""))
    return library


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
LEFT_FILES = (".*.tmp", ".gpubp-*")  # the temporary names gpubp writes


def gpubp_threads() -> set:
    """gpubp's live threads (the reader, a checkpoint's timer; not the watchdog, which
    lives as long as its communicator)."""
    return {
        t
        for t in threading.enumerate()
        if t.name.startswith("gpubp-") and t.name != "gpubp-watchdog" and t.is_alive()
    }


def still_running(threads_before=frozenset()) -> list[str]:
    """What fits left running, in words: gpubp's threads started since ``threads_before``
    and the watchdogs still armed (each would end the job once its timeout passed)."""
    from gpubp import distributed

    left = [f"thread {t.name}" for t in gpubp_threads() - set(threads_before)]
    left += [
        f"rank {comm.rank}'s watchdog, armed"
        for comm in distributed.communicators()
        if comm.watchdog is not None and comm.watchdog.since is not None
    ]
    return sorted(left)


def device_bytes(collect: bool) -> int:
    """The stand-in pool's used bytes (after a collection, with ``collect``); 0 off the
    stand-in (a real pool keeps what it caches)."""
    if not on_standin():
        return 0
    if collect:
        gc.collect()
    import cupy

    return cupy.get_default_memory_pool().used_bytes()


@pytest.fixture
def leaves_nothing_behind(request):
    """What a test's fits leave behind when they return, stop early or fail: the signal
    handlers as they were, no thread of gpubp's alive, every communicator's watchdog idle,
    no temporary file in the test's folder, and the stand-in pool's used bytes back where
    they were."""
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    threads = gpubp_threads()
    used = device_bytes(collect=False)  # garbage not yet collected only makes it lenient
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    assert {s: signal.getsignal(s) for s in SIGNALS} == handlers, "a signal handler was left"
    left = still_running(threads)
    assert not left, f"left running: {left}"
    if folder is not None:
        files = sorted({str(f) for pattern in LEFT_FILES for f in folder.rglob(pattern)})
        assert not files, f"temporary files left: {files}"
    if getattr(request.node, "gpubp_call_passed", False):  # a skip or failure keeps its frames
        # a collection (slow: a tenth of a second) only where freeing by count left more
        leaked = device_bytes(collect=False) > used and device_bytes(collect=True) > used
        assert not leaked, "device memory was left in use"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.gpubp_call_passed = report.passed
    return report
