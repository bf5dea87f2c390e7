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
