"""A network too large for the memory is refused before anything is allocated, in one
error that says the bytes it needs (in the model's dtype), the bytes free and what to
change."""

import numpy as np
import pytest

import gpubp
from gpubp import memory
from gpubp.errors import InsufficientMemoryError

HUGE = (10**6, 10**6)  # 10**12 parameters: more than any machine holds


def data():
    rng = np.random.default_rng(0)
    return rng.random((60, 8)).astype(np.float32), np.arange(60) % 3


def test_the_bytes_a_fit_needs():
    need = memory.fit_bytes([4, 3, 2], None, "float32", "adam", 10, False)
    P = 5 * 3 + 4 * 2
    assert need == {"weights": 5 * P * 4, "activations": 2 * 10 * 9 * 4, "draw": 8 * P}
    stack = memory.fit_bytes([4, 3, 2], 3, "float64", "sgd", 10, True)
    assert stack == {"weights": 6 * 3 * P * 8, "activations": 2 * 10 * 9 * 3 * 8, "draw": 24 * P}


@pytest.mark.parametrize("Estimator", [gpubp.MLPClassifier, gpubp.MLPRegressor])
def test_a_network_larger_than_memory_is_refused_in_words(Estimator):
    X, y = data()
    with pytest.raises(InsufficientMemoryError) as caught:
        Estimator(hidden_layer_sizes=HUGE, backend="numpy").fit(X, y)
    words = str(caught.value)
    assert words.startswith(f"{Estimator.__name__}(hidden_layer_sizes=(1000000, 1000000)) needs")
    assert "TiB of host memory with its weights in float32" in words
    assert "GiB is free" in words or "TiB is free" in words
    assert "Use smaller or fewer hidden layers, a smaller batch_size or solver='sgd'" in words
    assert isinstance(caught.value, MemoryError)


def test_the_need_is_sized_in_the_models_dtype():
    X, y = data()
    said = {}
    for dtype in ("float32", "float64"):
        with pytest.raises(InsufficientMemoryError) as caught:
            gpubp.MLPClassifier(hidden_layer_sizes=HUGE, dtype=dtype, backend="numpy").fit(X, y)
        said[dtype] = str(caught.value)
    assert "need" in said["float32"] and "dtype='float32'" in said["float64"]
    assert "dtype='float32'" not in said["float32"]
    tib = {k: float(v.split("needs about ")[1].split(" TiB")[0]) for k, v in said.items()}
    assert tib["float64"] > 1.3 * tib["float32"]  # weights twice the bytes, the draw the same


def test_the_free_memory_decides_and_unknown_free_memory_refuses_nothing(monkeypatch):
    X, y = data()
    model = gpubp.MLPClassifier(hidden_layer_sizes=(300,), max_iter=1, backend="numpy")
    monkeypatch.setattr(memory, "host_free", lambda: 10_000)
    with pytest.raises(InsufficientMemoryError, match="9.8 KiB is free"):
        model.fit(X, y)
    monkeypatch.setattr(memory, "host_free", lambda: None)
    assert model.fit(X, y).n_iter_ == 1


def test_a_network_larger_than_the_device_pool_is_refused_naming_the_gpu():
    from gpubp.backend import probe_cupy

    if probe_cupy()[0] is None:
        pytest.skip("needs CuPy and a device (or the CuPy stand-in)")
    import cupy

    X, y = data()
    pool = cupy.get_default_memory_pool()
    pool.set_limit(size=pool.used_bytes() + 2**20)
    try:
        with pytest.raises(InsufficientMemoryError) as caught:
            gpubp.MLPClassifier(hidden_layer_sizes=(2000, 2000), backend="cupy").fit(X, y)
    finally:
        pool.set_limit(size=0)
    words = str(caught.value)
    assert "MiB of GPU memory" in words and "or backend='numpy' (the host's memory)" in words
