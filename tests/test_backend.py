"""Backend resolution, its errors, and the promise that import touches no CUDA."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DLPackProducer

import gpubp
from gpubp import backend as backend_module
from gpubp.backend import BackendError, get_backend, probe_cupy


@pytest.fixture
def without_cupy(monkeypatch):
    """A machine where ``import cupy`` fails, whatever this one has (the probe runs afresh
    here and after the test)."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    probe_cupy.cache_clear()
    yield
    probe_cupy.cache_clear()


def test_auto_falls_back_to_numpy_without_a_gpu(without_cupy, monkeypatch):
    monkeypatch.delenv("GPUBP_BACKEND", raising=False)
    backend = get_backend()
    assert backend.name == "numpy" and backend.xp is np
    assert "falling back to NumPy" in backend_module.auto_reason()


def test_asking_for_cupy_without_a_gpu_says_why_and_how_to_fix(without_cupy):
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    message = str(info.value)
    assert probe_cupy()[1] in message
    assert "backend='numpy'" in message and "cupy-cuda12x" in message


@pytest.mark.parametrize(
    "failure,words",
    [
        ("import", "not installed or does not import"),
        ("count", "CUDA driver or runtime failed"),
        ("none", "no CUDA device"),
        ("alloc", "tiny allocation"),
    ],
)
def test_each_cupy_failure_has_its_own_reason(monkeypatch, failure, words):
    """A fake cupy module fails at each step of the probe in turn."""
    import types

    class CUDARuntimeError(RuntimeError):
        pass

    def count():
        if failure == "count":
            raise CUDARuntimeError("cudaErrorInsufficientDriver: driver too old")
        return 0 if failure == "none" else 1

    def zeros(*args, **kwargs):
        raise CUDARuntimeError("cudaErrorMemoryAllocation: out of memory")

    fake = types.ModuleType("cupy")
    fake.__version__ = "0-fake"
    fake.float32 = np.float32
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    fake.zeros = zeros
    monkeypatch.setitem(sys.modules, "cupy", None if failure == "import" else fake)
    monkeypatch.delenv("GPUBP_BACKEND", raising=False)  # "auto" must mean auto here
    probe_cupy.cache_clear()
    try:
        with pytest.raises(BackendError, match=words):
            get_backend("cupy")
        assert get_backend("auto").name == "numpy"
    finally:
        probe_cupy.cache_clear()


def test_environment_variable_sets_what_auto_means(monkeypatch):
    monkeypatch.setenv("GPUBP_BACKEND", "numpy")
    assert get_backend("auto").name == "numpy"
    assert gpubp.MLP([2, 2]).backend.name == "numpy"
    monkeypatch.setenv("GPUBP_BACKEND", "tpu")
    with pytest.raises(ValueError, match="GPUBP_BACKEND='tpu'"):
        get_backend("auto")
    assert get_backend("numpy").name == "numpy"  # an explicit name ignores it


def test_environment_variable_cupy_without_gpu_raises(without_cupy, monkeypatch):
    monkeypatch.setenv("GPUBP_BACKEND", "cupy")
    with pytest.raises(BackendError):
        gpubp.MLP([2, 2])


def test_unknown_backend_names_are_listed():
    with pytest.raises(ValueError, match="backend='jax' is not one of auto, numpy, cupy"):
        get_backend("jax")
    with pytest.raises(TypeError, match="backend must be"):
        get_backend(3)


def test_import_gpubp_does_not_import_cupy(tmp_path):
    """A stand-in cupy first on the path would be imported if anything touched it."""
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("raise SystemExit('cupy was imported')\n")
    code = (
        "import sys, gpubp; net = gpubp.MLP([2, 2], backend='numpy'); net.forward([[0, 0]]); "
        "assert 'cupy' not in sys.modules; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(tmp_path), "GPUBP_BACKEND": "auto"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import gpubp; gpubp.get_backend('auto')"],
        env={**os.environ, "PYTHONPATH": str(tmp_path), "GPUBP_BACKEND": "auto"},
        capture_output=True,
        text=True,
    )
    assert "cupy was imported" in probe.stderr  # the stand-in does fire when probed


def test_to_numpy_from_numpy_lists_and_dlpack():
    a = np.arange(6.0).reshape(2, 3)
    assert gpubp.to_numpy(a) is a
    np.testing.assert_array_equal(gpubp.to_numpy([[1, 2]]), [[1, 2]])
    np.testing.assert_array_equal(gpubp.to_numpy(DLPackProducer(a)), a)


def test_show_config_names_versions_backend_and_blas(capsys):
    gpubp.show_config()
    out = capsys.readouterr().out
    keys = ("gpubp", "numpy", "numpy BLAS", "cupy", "auto backend", "safetensors", "ONNX export")
    for key in keys:
        assert f"\n{key} " in "\n" + out
    assert np.__version__ in out
    import safetensors

    assert safetensors.__version__ in out.split("\nsafetensors ")[1].splitlines()[0]
    assert get_backend().name in out.split("auto backend")[1]


@pytest.mark.backends
def test_each_backend_of_the_suite_is_what_runs_here_and_in_a_child(gpubp_backend):
    """tests/conftest.py selects a backend as a user would, through GPUBP_BACKEND and
    GPUBP_NUMBA: "auto" resolves to the one the test is named for, in this process and,
    on the CuPy path (the stand-in on the child's path too), in a child process."""
    expected = {
        "numba": ("numpy", "gpubp.cpu_kernels"),
        "reference": ("numpy", None),
        "cupy": ("cupy", "gpubp.kernels"),
    }[gpubp_backend]
    backend = get_backend("auto")
    assert (backend.name, getattr(backend.fused, "__name__", None)) == expected
    if gpubp_backend == "cupy":
        code = "import gpubp; b = gpubp.get_backend(); print(b.name, b.fused.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.split() == list(expected), out.stderr


def test_a_test_not_marked_runs_once_on_the_first_backend(request, gpubp_backend):
    assert gpubp_backend == request.config.gpubp_backends[0]
    assert get_backend("auto").name == ("cupy" if gpubp_backend == "cupy" else "numpy")


def test_a_marked_test_is_collected_once_for_each_backend_of_the_run(request):
    name = "test_each_backend_of_the_suite_is_what_runs_here_and_in_a_child"
    items = [i for i in request.session.items if i.originalname == name]
    ran = [i.callspec.params["gpubp_backend"] for i in items]
    assert sorted(ran) == sorted(request.config.gpubp_backends)


def test_each_xdist_worker_runs_one_blas_thread_unless_told_otherwise(request):
    if not request.config.gpubp_one_thread:
        pytest.skip("not an xdist worker, or the environment names a thread count")
    from threadpoolctl import threadpool_info

    assert {pool["num_threads"] for pool in threadpool_info()} == {1}
    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == "1"
