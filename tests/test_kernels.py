"""The fused CUDA kernels: their source compiles (nvcc, no GPU needed), and on a
GPU each gives what the reference formulas give."""

import functools
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
from gpubp.penalties import weight_elimination_slope

KERNEL_MODULES = ("gpubp.kernels", "gpubp.vectorized", "gpubp.gemm")


def kernel_sources():
    """Import gpubp.kernels (and the modules it imports) against a stand-in cupy that
    records each kernel's definition; the real modules, if any, are put back after."""
    recorded = []

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name, **kwargs):
            recorded.append((in_params, out_params, operation, name))

    class RawModule:
        def __init__(self, code):
            self.code = code

    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel, fake.RawModule = ElementwiseKernel, RawModule
    saved_cupy = sys.modules.get("cupy")
    saved = {name: sys.modules.pop(name) for name in KERNEL_MODULES if name in sys.modules}
    attributes = {n: getattr(gpubp, n.split(".")[1], None) for n in KERNEL_MODULES}
    sys.modules["cupy"] = fake
    try:
        module = importlib.import_module("gpubp.kernels")
    finally:
        for name in KERNEL_MODULES:
            sys.modules.pop(name, None)
            value = attributes[name]
            if value is None:
                vars(gpubp).pop(name.split(".")[1], None)
            else:
                setattr(gpubp, name.split(".")[1], value)
        sys.modules.update(saved)
        if saved_cupy is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved_cupy
    return module, recorded


C_TYPES = {"T": "T", "int64": "long long", "uint32": "unsigned int"}


def params_of(text):
    """(raw, C type, name) of each parameter of an ElementwiseKernel."""
    out = []
    for p in text.split(","):
        tokens = p.split()
        out.append((tokens[0] == "raw", C_TYPES[tokens[-2]], tokens[-1]))
    return out


def elementwise_only(recorded):
    """The kernels whose every parameter is a T element (not the step bookkeeping's
    index kernels, with raw arrays and integers, which the graph tests check)."""
    return [
        r
        for r in recorded
        if all(not raw and c == "T" for raw, c, _ in params_of(r[0]) + params_of(r[1]))
    ]


def as_cuda(recorded, raw_code) -> str:
    """Each elementwise body inside a kernel shaped as CuPy generates it, float and double."""
    parts = [raw_code]
    for ctype in ("float", "double"):
        for j, (in_params, out_params, operation, name) in enumerate(recorded):
            params, body = [], []
            for raw, c, n in params_of(in_params):
                params.append(f"const {c}* {'' if raw else '_'}{n}")
                if not raw:
                    body.append(f"const {c} {n} = _{n}[i];")
            for raw, c, n in params_of(out_params):
                params.append(f"{c}* {'' if raw else '_'}{n}")
                if not raw:
                    body.append(f"{c}& {n} = _{n}[i];")
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
    source.write_text(as_cuda(recorded, module._SOFTMAX_CE + module.vectorized_source()))
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
    cp.testing.assert_allclose(
        kernels.WEIGHT_ELIMINATION(W, 0.3, 4.0, G, G.copy()),
        G + 0.3 * weight_elimination_slope(W, 4.0),
        rtol=rtol,
        atol=rtol,
    )
    A3 = cp.asarray(rng.normal(scale=3, size=(3, 64, 33)).astype(dtype))
    b3 = cp.asarray(rng.normal(size=(3, 1, 33)).astype(dtype))
    for name, sigma in functions.ACTIVATIONS.items():
        Z = kernels.BIAS_ACTIVATION[name](A, b)
        cp.testing.assert_allclose(Z, sigma(cp, A + b), rtol=rtol, atol=rtol)
        for a, bias in ((A3, b3), (A3, b), (A.T, b[:1]), (A[:, ::2], b[:17])):  # the others
            got = kernels.BIAS_ACTIVATION[name](a, bias, cp.empty(a.shape, dtype))
            cp.testing.assert_allclose(got, sigma(cp, a + bias), rtol=rtol, atol=rtol)
        if name in kernels.DERIVATIVE:
            got = kernels.DERIVATIVE[name](Z, G, G.copy())
            want = functions.DERIVATIVES[name](cp, Z, G.copy())
            cp.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    T = cp.asarray(rng.normal(scale=5, size=(70, 7)).astype(dtype))
    T[0, 0] = 1000
    T[1, 1] = -1000
    T[3, -1] = 200  # the largest logit in the last column
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


STANDIN_FORMULAS = Path(__file__).with_name("cupy_standin") / "cupy" / "_gpubp.py"


def standin_formulas():
    """The formulas the CuPy stand-in runs for each kernel name (its ``_gpubp`` module)."""
    spec = importlib.util.spec_from_file_location("standin_formulas", STANDIN_FORMULAS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST_PREAMBLE = """#include <cmath>
using namespace std;
struct Dim { int x; };
static Dim blockIdx, blockDim, threadIdx, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n) alignas(n)"""  # CUDA C as host C++: the grid's indices are set by loops


def as_host_cpp(recorded, raw_code) -> str:
    """Each kernel as a host function over double arrays: the elementwise bodies in a loop,
    the raw kernels called once per (block, thread), so the CUDA C runs on the CPU."""
    parts = [HOST_PREAMBLE, raw_code]
    for in_params, out_params, operation, name in elementwise_only(recorded):
        ins = [p.split()[1] for p in in_params.split(",")]
        outs = [p.split()[1] for p in out_params.split(",")]
        body = [f"T {n} = in[{k}][i];" for k, n in enumerate(ins)]
        body += [f"T {n};" for n in outs]
        body.append(f"{operation};")
        body += [f"out[{k}][i] = {n};" for k, n in enumerate(outs)]
        parts.append(
            f'extern "C" void {name}(long n, double** in, double** out) {{\n'
            f"typedef double T;\nfor (long i = 0; i < n; ++i) {{ {' '.join(body)} }}\n}}"
        )
    parts.append(
        'extern "C" void softmax_ce_host(double* t, const double* b, long long b_stride,'
        " int has_b, const double* y, long long y_rows, const double* scales,"
        " long long n_scales, double scale, double* f, double* r, double* d, long long N,"
        " long long n_cases, int K, int blocks, int threads) {\n"
        "blockDim.x = threads;\n"
        "for (blockIdx.x = 0; blockIdx.x < blocks; ++blockIdx.x)\n"
        "  for (threadIdx.x = 0; threadIdx.x < threads; ++threadIdx.x)\n"
        "    softmax_ce_double(t, b, b_stride, has_b, y, y_rows, scales, n_scales, scale, f, r,"
        " d, N, n_cases, K);\n}"
    )
    return "\n".join(parts)


def as_host_cpp_indexed(recorded) -> str:
    """The kernels with raw or integer parameters (bias by column, the row gather, the
    step's bookkeeping) as host loops over i: ``NAME(n, args)``, args[j] pointing at
    parameter j's array (raw or elementwise) or value (an integer parameter)."""
    parts = []
    for in_params, out_params, operation, name in recorded:
        params = params_of(in_params) + params_of(out_params)
        if all(not raw and c == "T" for raw, c, _ in params):
            continue
        lines = []
        for j, (raw, c, n) in enumerate(params):
            is_out = j >= len(params_of(in_params))
            if raw:
                lines.append(f"{c}* {n} = ({c}*)args[{j}];")
            elif c == "T":
                lines.append(f"T& {n} = ((T*)args[{j}])[i];" if is_out else
                             f"const T {n} = ((T*)args[{j}])[i];")  # fmt: skip
            elif is_out:
                lines.append(f"{c}& {n} = (({c}*)args[{j}])[i];")
            else:
                lines.append(f"const {c} {n} = *({c}*)args[{j}];")
        parts.append(
            f'extern "C" void host_{name}(long n, void** args) {{\n'
            "typedef double T;\n"
            f"for (ptrdiff_t i = 0; i < n; ++i) {{ {' '.join(lines)}\n{operation};\n}}\n}}"
        )
    return "\n#include <cstddef>\n" + "\n".join(parts)


def compiled_on_host(tmp_path_factory, name: str, code: str):
    """``code`` (C++) built as a shared library with the host's compiler, loaded by ctypes;
    the test skips where there is no compiler."""
    import ctypes

    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to run the kernels' CUDA C on the host")
    folder = tmp_path_factory.mktemp(name)
    source, library = folder / f"{name}.cpp", folder / f"{name}.so"
    source.write_text(code)
    out = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return ctypes.CDLL(str(library))


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    module, recorded = kernel_sources()
    code = as_host_cpp(recorded, module._SOFTMAX_CE) + as_host_cpp_indexed(recorded)
    return compiled_on_host(tmp_path_factory, "kernels", code), recorded


def test_every_elementwise_kernel_computes_its_formula_when_its_c_runs_on_the_host(host_kernels):
    """The stand-in runs each kernel's formula instead of its CUDA C; here the C itself runs
    (on the CPU, in double) and must give that formula: a C slip such as a lost pair of
    parentheses fails here without a GPU."""
    import ctypes

    library, recorded = host_kernels
    formulas = standin_formulas().ELEMENTWISE
    rng = np.random.default_rng(0)
    n = 257
    pointers = ctypes.POINTER(ctypes.c_double) * 8
    for in_params, out_params, _, name in elementwise_only(recorded):
        ins = [p.split()[1] for p in in_params.split(",")]
        outs = [p.split()[1] for p in out_params.split(",")]
        args = {k: rng.normal(scale=3, size=n) for k in ins}
        for positive in {"v_in", "eps", "lr", "lr_t", "b1", "b2", "mu", "a", "q"} & set(ins):
            args[positive] = rng.uniform(0.01, 0.99, size=n)
        if name.startswith("gpubp_d"):  # a derivative, written from the activation's output z
            args["z"] = functions.ACTIVATIONS[name.removeprefix("gpubp_d")](np, args["z"])
        results = [np.full(n, np.nan) for _ in outs]
        as_c = [a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in args.values()]
        out_c = [a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in results]
        getattr(library, name)(ctypes.c_long(n), pointers(*as_c), pointers(*out_c))
        want = formulas[name](**{k: v.copy() for k, v in args.items()})
        for out_name, got in zip(outs, results):
            np.testing.assert_allclose(got, want[out_name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", ["one network", "stack, bias and scales", "stack, own targets"])
def test_the_softmax_cross_entropy_kernel_computes_its_formula_on_the_host(host_kernels, case):
    """T = A + b (each network's own b, in place), F, R_i and scale * delta, with Y shared
    by a stack's networks or one per network."""
    import ctypes

    library, _ = host_kernels
    rng = np.random.default_rng(1)
    R, n, K, P, threads = (1, 70, 7, 20, 32) if case == "one network" else (3, 23, 7, 20, 32)
    A = rng.normal(scale=5, size=(R, n, K))
    A[0, 0, 0], A[0, 1, 1], A[-1, 3, -1] = 1000.0, -1000.0, 200.0
    theta = rng.normal(size=(R, P))
    b = theta[:, P - K :]
    own = case == "stack, own targets"
    Y = rng.dirichlet(np.ones(K), size=(R, n) if own else (n,))
    scales = rng.uniform(0.1, 2.0, size=R)
    has_b = case != "one network"
    N = R * n
    T = A.copy()
    F, D = np.full((R, n, K), np.nan), np.full((R, n, K), np.nan)
    Ri = np.full((R, n), np.nan)
    blocks = (N + threads - 1) // threads
    flat = np.ascontiguousarray(theta).reshape(-1)[P - K :]
    per_network = case == "stack, bias and scales"
    library.softmax_ce_host(
        *(a.ctypes.data_as(ctypes.c_void_p) for a in (T, flat)),
        ctypes.c_longlong(P), ctypes.c_int(has_b), Y.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_longlong(Y.size // K), scales.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_longlong(R if per_network else 0), ctypes.c_double(0.25),
        *(a.ctypes.data_as(ctypes.c_void_p) for a in (F, Ri, D)),
        ctypes.c_longlong(N), ctypes.c_longlong(n), ctypes.c_int(K),
        ctypes.c_int(blocks), ctypes.c_int(threads),
    )  # fmt: skip
    want_T = A + b[:, None, :] if has_b else A
    np.testing.assert_array_equal(T, want_T)
    F0, R0, D0 = functions.LOSSES["cross_entropy"](np, "softmax", want_T, Y)
    c = scales[:, None, None] if per_network else 0.25
    for got, want in zip((F, Ri, D), (F0, R0, c * D0)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _run_host(library, name, n, *args):
    """Call host_NAME over n elements; args are arrays (pointers) or ctypes integers."""
    import ctypes

    keep = [a if isinstance(a, np.ndarray) else ctypes.pointer(a) for a in args]
    pointers = (ctypes.c_void_p * len(args))(
        *(a.ctypes.data if isinstance(a, np.ndarray) else ctypes.addressof(a.contents)
          for a in keep)
    )  # fmt: skip
    getattr(library, f"host_{name}")(ctypes.c_long(n), pointers)


def test_the_bias_by_column_and_row_gather_kernels_compute_their_formulas_on_the_host(
    host_kernels,
):
    """The kernels whose CUDA C does its own index arithmetic (32-bit): a column or row
    slip fails here, without a GPU."""
    import ctypes

    library, _ = host_kernels
    formulas = standin_formulas().ELEMENTWISE
    rng = np.random.default_rng(2)
    A, b = rng.normal(scale=3, size=(13, 7)), rng.normal(size=7)
    for name in functions.ACTIVATIONS:
        Z = np.full_like(A, np.nan)
        _run_host(library, f"gpubp_bias_rows_{name}", A.size, A, b, ctypes.c_uint(7), Z)
        want = formulas[f"gpubp_bias_rows_{name}"](A, b, np.uint32(7))["z"]
        np.testing.assert_allclose(Z, want, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(
            Z, functions.ACTIVATIONS[name](np, A + b), rtol=1e-12, atol=1e-12, err_msg=name
        )
    src = rng.normal(size=(50, 9))
    order = rng.permutation(50).astype(np.int64)
    k, batch = np.array([2], dtype=np.int64), 8
    dst = np.full((batch, 9), np.nan)
    _run_host(library, "gpubp_gather_rows", dst.size, src, order, k, ctypes.c_uint(9),
              ctypes.c_longlong(batch), dst)  # fmt: skip
    np.testing.assert_array_equal(dst, src[order[16:24]])
    want = formulas["gpubp_gather_rows"](src, order, k, np.uint32(9), np.int64(batch))["dst"]
    np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize(
    "name,rate",
    [("gpubp_sgd", "lr"), ("gpubp_sgd_momentum", "lr"), ("gpubp_sgd_nesterov", "lr"),
     ("gpubp_adam", "lr_t")],
)  # fmt: skip
def test_optimiser_steps_with_a_rate_per_network_read_it_by_row_on_the_host(
    host_kernels, name, rate
):
    """A stack's (R, P) update with network r's rate at rate[r]: element i takes row i / P."""
    import ctypes

    library, recorded = host_kernels
    inputs, outputs = next((i, o) for i, o, _, n in recorded if n == f"{name}_rows")
    formulas = standin_formulas().ELEMENTWISE
    rng = np.random.default_rng(3)
    R, P = 3, 5
    rates = np.array([0.1, 0.02, 0.5])
    values, args = {}, []
    for _, _, n in params_of(inputs):
        if n == f"{rate}_rows":
            args.append(rates)
        elif n == "P":
            args.append(ctypes.c_uint(P))
        else:
            values[n] = rng.uniform(0.01, 0.99, size=(R, P))
            args.append(values[n])
    outs = {n: np.full((R, P), np.nan) for _, _, n in params_of(outputs)}
    _run_host(library, f"{name}_rows", R * P, *args, *outs.values())
    per_element = np.repeat(rates, P).reshape(R, P)
    want = formulas[name](**values, **{rate: per_element})
    for n, got in outs.items():
        np.testing.assert_allclose(got, want[n], rtol=1e-12, atol=1e-12, err_msg=n)
    stand_in = formulas[f"{name}_rows"](**values, **{f"{rate}_rows": rates, "P": np.uint32(P)})
    for n in outs:
        np.testing.assert_allclose(stand_in[n], want[n], rtol=1e-12, err_msg=n)


# -- the vectorized kernels: 16 bytes a load, the leftover elements a thread each --

POSITIVE = {"v_in", "eps", "lr", "lr_t", "b1", "b2", "mu", "a", "q"}


def vector_arguments(elementwise, dtype, xp, rng, rows=5, width=7, by_row=True):
    """Arguments (outputs included) for an Elementwise over (rows, width) arrays, and the
    formula's inputs: a bias per column, a rate per row (or one, P = 0), a gather from a
    larger table; numbers by value."""
    name = elementwise.vector.name
    args, inputs = [], {}
    for how, _, pname, is_out in elementwise.vector.params:
        if how == "array":
            value = (
                rng.uniform(0.01, 0.99, (rows, width))
                if pname in POSITIVE
                else rng.normal(scale=3, size=(rows, width))
            )
            if name.startswith("gpubp_d") and pname == "z":
                value = functions.ACTIVATIONS[name.removeprefix("gpubp_d")](np, value)
            value = value.astype(dtype)
        elif pname == "b":
            value = rng.normal(size=width).astype(dtype)
        elif pname.endswith("_rows"):
            value = rng.uniform(0.01, 0.5, rows if by_row else 1).astype(dtype)
        elif pname == "src":
            value = rng.normal(size=(4 * rows, width)).astype(dtype)
        elif pname == "order":
            value = rng.permutation(4 * rows).astype(np.int64)
        elif pname == "k":
            value = np.array([2], dtype=np.int64)
        elif pname in ("K", "width"):
            value = np.uint32(width)
        elif pname == "P":
            value = np.uint32(width if by_row else 0)
        elif pname == "batch":
            value = np.int64(rows)
        else:
            value = np.dtype(dtype).type(rng.uniform(0.01, 0.99))
        if not is_out:
            inputs[pname] = value
        args.append(xp.asarray(value) if isinstance(value, np.ndarray) else value)
    return args, inputs


def vector_launchers(module) -> str:
    """The vectorized kernels' C for the host, with host_NAME(n, blocks, threads, args)
    running every (block, thread) of NAME, args[j] pointing at parameter j."""
    parts = [HOST_PREAMBLE, module.vectorized_source()]
    for elementwise in module.VECTORIZED:
        for ctype in ("float", "double"):
            unpacked = []
            for j, (how, c, _, _) in enumerate(elementwise.vector.params):
                c = ctype if c == "T" else c
                unpacked.append(f"*({c}*)args[{j}]" if how == "value" else f"({c}*)args[{j}]")
            name = f"{elementwise.vector.name}_vec_{ctype}"
            parts.append(
                f'extern "C" void host_{name}(long long n, int blocks, int threads, void** args)'
                " {\ngridDim.x = blocks; blockDim.x = threads;\n"
                "for (blockIdx.x = 0; blockIdx.x < blocks; ++blockIdx.x)\n"
                "  for (threadIdx.x = 0; threadIdx.x < threads; ++threadIdx.x)\n"
                f"    {name}({', '.join(unpacked)}, n);\n}}"
            )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def host_vector_kernels(tmp_path_factory):
    module, _ = kernel_sources()
    return compiled_on_host(tmp_path_factory, "vector", vector_launchers(module)), module


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("by_row", [True, False], ids=["rate per row", "one rate"])
def test_every_vectorized_kernel_computes_its_formula_when_its_c_runs_on_the_host(
    host_vector_kernels, dtype, by_row
):
    """Each kernel's C on the CPU over 5 x 7 elements (8 packs of 4 floats and 3 left over,
    or 17 packs of 2 doubles and 1), on a grid of 2 blocks of 3 threads, so that threads
    loop over packs: every element must be its ElementwiseKernel's formula, none skipped,
    none written twice into the wrong place. In place, as gpubp calls them (theta over
    theta_in, z over a_in), so that an element updated twice is wrong too."""
    import ctypes

    library, module = host_vector_kernels
    formulas = standin_formulas().ELEMENTWISE
    rng = np.random.default_rng(4)
    ctype = "float" if dtype == "float32" else "double"
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for elementwise in module.VECTORIZED:
        name = elementwise.vector.name
        args, inputs = vector_arguments(elementwise, dtype, np, rng, by_row=by_row)
        want = formulas[name](**{k: v.copy() if isinstance(v, np.ndarray) else v
                                 for k, v in inputs.items()})  # fmt: skip
        names = [pname for _, _, pname, _ in elementwise.vector.params]
        outs = {}
        for j, (_, _, pname, is_out) in enumerate(elementwise.vector.params):
            over = {"z": "a_in"}.get(pname, f"{pname}_in")  # z = sigma(a_in + b) over a_in
            if is_out and over in names:
                args[j] = args[names.index(over)]  # in place
            elif is_out:
                args[j][...] = np.nan
            if is_out:
                outs[pname] = args[j]
        keep = [a if isinstance(a, np.ndarray) else np.array([a]) for a in args]
        pointers = (ctypes.c_void_p * len(keep))(*(a.ctypes.data for a in keep))
        getattr(library, f"host_{name}_vec_{ctype}")(
            ctypes.c_longlong(35), ctypes.c_int(2), ctypes.c_int(3), pointers
        )
        for pname, got in outs.items():
            np.testing.assert_allclose(
                got, np.asarray(want[pname]).reshape(got.shape), rtol=rtol, atol=rtol,
                err_msg=f"{name} {pname}",
            )  # fmt: skip


@pytest.mark.gpu
def test_the_vectorized_kernels_apply_to_aligned_contiguous_arrays_and_fall_back_elsewhere():
    """A view 4 bytes off 16, a strided view, a row broadcast, a device array for a number,
    float16: the ElementwiseKernel runs instead (same results either way)."""
    import cupy as cp

    from gpubp import kernels

    rng = np.random.default_rng(5)
    Z, G = (cp.asarray(rng.normal(size=(6, 8)).astype(np.float32)) for _ in range(2))
    Z = cp.maximum(Z, 0)  # a ReLU's output
    relu = kernels.DERIVATIVE["relu"]
    want = G * (Z > 0)
    assert relu.vector(Z, G, G.copy()) is not None
    cp.testing.assert_array_equal(relu.vector(Z, G, G.copy()), want)
    flat_Z, flat_G = Z.reshape(-1), G.reshape(-1)
    off = (flat_Z[1:], flat_G[1:], flat_G[1:].copy())
    for args in [off, (Z[:, ::2], G[:, ::2], G[:, ::2].copy()), (Z[:1], G, G.copy()),
                 (Z.astype(np.float16), G.astype(np.float16), G.astype(np.float16))]:  # fmt: skip
        assert relu.vector(*args) is None
        got = relu(*args)
        cp.testing.assert_array_equal(got, args[1] * (args[0] > 0))
    theta, g = cp.asarray(rng.normal(size=10).astype(np.float32)), cp.ones(10, np.float32)
    assert kernels.AXPY.vector(g, cp.asarray(np.float32(2)), theta, theta.copy()) is None
    assert kernels.AXPY.vector(g, 2.0, theta, theta.copy()) is not None
    rate = cp.asarray(np.array([0.5], dtype=np.float64))  # a float64 rate: not read as float
    assert kernels.SGD.rows.vector(g, rate, cp.uint32(0), theta, theta.copy()) is None


@pytest.mark.gpu
def test_a_step_reads_one_device_rate_or_one_per_network():
    """The rows kernel with P = 0 reads the one rate; with P, network r's rate for row r."""
    import cupy as cp

    from gpubp import kernels

    rng = np.random.default_rng(6)
    theta = cp.asarray(rng.normal(size=(3, 5)).astype(np.float32))
    g = cp.asarray(rng.normal(size=(3, 5)).astype(np.float32))
    one = cp.asarray(np.array([0.25], dtype=np.float32))
    check = functools.partial(cp.testing.assert_allclose, rtol=1e-6)  # a GPU's fma rounds once
    check(kernels.SGD(g, one, theta, theta.copy()), theta - 0.25 * g)
    rates = cp.asarray(np.array([[0.1], [0.2], [0.3]], dtype=np.float32))
    check(kernels.SGD(g, rates, theta, theta.copy()), theta - rates * g)
    check(kernels.SGD(g, np.float32(0.5), theta, theta.copy()), theta - 0.5 * g)


@pytest.mark.gpu
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_vectorized_kernel_agrees_with_its_elementwise_kernel(dtype):
    """On the GPU, each Vectorized kernel against the ElementwiseKernel it replaces, over
    1001 x 7 elements (packs and leftovers), rates per row and one: the same numbers to a
    few roundings of the largest value. Not bit for bit: the two compilations of the same C
    may fuse a multiply and an add differently (on an H200 the Nesterov step differed
    where theta_in + mu v - lr g cancels, 1e-6 absolute, up to 191 float32 ulps)."""
    import cupy as cp

    from gpubp import kernels

    rng = np.random.default_rng(7)
    eps = np.finfo(dtype).eps
    for by_row in (True, False):
        for elementwise in kernels.VECTORIZED:
            args, _ = vector_arguments(elementwise, dtype, cp, rng, 1001, 7, by_row)
            twin = [a.copy() if isinstance(a, cp.ndarray) else a for a in args]
            scale = max(float(cp.abs(a).max()) for a in args if isinstance(a, cp.ndarray)
                        and a.dtype == dtype)  # fmt: skip
            got = elementwise.vector(*args)
            assert got is not None, elementwise.vector.name
            want = elementwise.kernel(*twin)
            got, want = (x if isinstance(x, tuple) else (x,) for x in (got, want))
            for a, b in zip(got, want):
                try:
                    cp.testing.assert_allclose(a, b, rtol=4 * eps, atol=8 * eps * scale)
                except AssertionError as error:
                    raise AssertionError(f"{elementwise.vector.name}: {error}") from None
