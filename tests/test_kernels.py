"""The fused CUDA kernels: their source compiles (nvcc, no GPU needed), and on a
GPU each gives what the reference formulas give."""

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import gpubp
from gpubp import functions

KERNELS = Path(gpubp.__file__).with_name("kernels.py")


def kernel_sources():
    """Load kernels.py against a stand-in cupy that records each kernel's definition."""
    recorded = []

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name, **kwargs):
            recorded.append((in_params, out_params, operation, name))

    class RawModule:
        def __init__(self, code):
            self.code = code

    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel, fake.RawModule = ElementwiseKernel, RawModule
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake
    try:
        spec = importlib.util.spec_from_file_location("gpubp_kernels_source", KERNELS)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module, recorded


def as_cuda(recorded, raw_code) -> str:
    """Each elementwise body inside a kernel shaped as CuPy generates it, float and double."""
    parts = [raw_code]
    for ctype in ("float", "double"):
        for j, (in_params, out_params, operation, name) in enumerate(recorded):
            params, body = [], []
            for p in in_params.split(","):
                _, n = p.split()
                params.append(f"const T* _{n}")
                body.append(f"const T {n} = _{n}[i];")
            for p in out_params.split(","):
                _, n = p.split()
                params.append(f"T* _{n}")
                body.append(f"T& {n} = _{n}[i];")
            parts.append(
                f"namespace k{j}_{ctype} {{ typedef {ctype} T;\n"
                f"__global__ void {name}({', '.join(params)}, int n) {{\n"
                f"int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return;\n"
                f"{' '.join(body)}\n{operation};\n}} }}"
            )
    return "\n".join(parts)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_the_fused_kernels_compile_without_warnings(tmp_path):
    module, recorded = kernel_sources()
    assert len(recorded) >= 10
    source = tmp_path / "kernels.cu"
    source.write_text(as_cuda(recorded, module._SOFTMAX_CE))
    out = subprocess.run(
        ["nvcc", "-c", str(source), "-o", str(tmp_path / "k.o"), "-Werror", "all-warnings"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr


def test_every_activation_and_canonical_pair_has_a_fused_kernel():
    module, _ = kernel_sources()
    assert set(module.BIAS_ACTIVATION) == set(functions.ACTIVATIONS)
    assert set(module.DERIVATIVE) == set(functions.ACTIVATIONS) - {"identity"}
    assert set(module.LOSSES) == {("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")}


@pytest.mark.gpu
@pytest.mark.cuda  # on the stand-in the kernels are the reference formulas
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_kernels_match_the_reference_formulas(dtype):
    import cupy as cp

    from gpubp import kernels

    rtol = 1e-5 if dtype == "float32" else 1e-12
    rng = np.random.default_rng(0)
    A = cp.asarray(rng.normal(scale=3, size=(64, 33)).astype(dtype))
    b = cp.asarray(rng.normal(size=33).astype(dtype))
    G = cp.asarray(rng.normal(size=(64, 33)).astype(dtype))
    W = cp.asarray(rng.normal(size=(64, 33)).astype(dtype))
    cp.testing.assert_allclose(  # atol: where G cancels 0.3 W, one rounding is the whole sum
        kernels.AXPY(W, 0.3, G, G.copy()), G + 0.3 * W, rtol=rtol, atol=rtol
    )
    for name, sigma in functions.ACTIVATIONS.items():
        Z = kernels.BIAS_ACTIVATION[name](A, b)
        cp.testing.assert_allclose(Z, sigma(cp, A + b), rtol=rtol, atol=rtol)
        if name in kernels.DERIVATIVE:
            got = kernels.DERIVATIVE[name](Z, G, G.copy())
            want = functions.DERIVATIVES[name](cp, Z, G.copy())
            cp.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    T = cp.asarray(rng.normal(scale=5, size=(70, 7)).astype(dtype))
    T[0, 0] = 1000
    T[1, 1] = -1000
    Y = cp.asarray(rng.dirichlet(np.ones(7), size=70).astype(dtype))
    for (output, loss), kernel in kernels.LOSSES.items():
        for got, want in zip(kernel(T, Y), functions.LOSSES[loss](cp, output, T, Y)):
            assert got.dtype == want.dtype == np.dtype(dtype)
            cp.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.gpu
@pytest.mark.cuda
@pytest.mark.parametrize("solver", ["sgd", "nesterov", "plain", "adam"])
def test_fused_optimiser_steps_match_the_reference(solver):
    import cupy as cp

    from gpubp import kernels
    from gpubp.optim import SGD, Adam

    rng = np.random.default_rng(1)
    theta0 = rng.normal(size=1000).astype(np.float32)
    grads = [rng.normal(size=1000).astype(np.float32) for _ in range(3)]

    def make(fused):
        theta = cp.asarray(theta0)
        if solver == "adam":
            return theta, Adam(cp, theta, 0.01, fused=fused)
        momentum = 0.0 if solver == "plain" else 0.9
        return theta, SGD(
            cp, theta, 0.1, momentum=momentum, nesterov=solver == "nesterov", fused=fused
        )

    (t1, o1), (t2, o2) = make(kernels), make(None)
    for g in grads:
        o1.step(t1, cp.asarray(g))
        o2.step(t2, cp.asarray(g))
    cp.testing.assert_allclose(t1, t2, rtol=1e-5, atol=1e-6)
