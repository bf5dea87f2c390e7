"""An elementwise CUDA kernel as CuPy's ``ElementwiseKernel`` writes it, run as a raw
kernel that loads and stores 16 bytes at a time wherever that applies (``Vectorized``;
``Elementwise`` falls back on the ElementwiseKernel elsewhere). ``gpubp.kernels``
defines gpubp's kernels with it.
"""

from __future__ import annotations

import cupy as cp
import numpy as np

_C_TYPES = {"uint32": "unsigned int", "int64": "long long"}
_SCALAR_TYPES = {"unsigned int": np.uint32, "long long": np.int64}  # by C type
_PACK = r"""
template <typename T> struct __align__(16) Pack { T v[16 / sizeof(T)]; };
"""
VECTORIZED = []  # every Elementwise, for the tests (their C on the host, each path on a GPU)


class Vectorized:
    """An ElementwiseKernel's (inputs, outputs, operation) as a raw kernel that loads and
    stores 16 bytes at a time (4 floats or 2 doubles) per array, as PyTorch's elementwise
    kernels do: CuPy's one element per thread reached 0.4-0.65 of a copy's memory speed on
    (d)'s arrays on an H200, these 0.9-1.0. The same C expression runs on each element;
    compiled apart, it may fuse a multiply and an add otherwise than the ElementwiseKernel
    does, so the two agree to rounding, not always bit for bit (the Nesterov step). The
    n mod 4 (or 2) elements left over take a thread each.

    ``values``: the T inputs passed as numbers (by value), not arrays. Called with every
    argument, outputs included; returns None where it does not apply (an array that is not
    C-contiguous, not 16-byte aligned or of another shape, a dtype other than float32 or
    float64, no elements, a device array given for a value), and the caller falls back on
    the ElementwiseKernel."""

    THREADS, MAX_BLOCKS = 256, 4096

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, values=()):
        self.name = name
        self.params = []  # (kind, C type, name, is output); kind: array, raw or value
        for text, is_out in ((in_params, False), (out_params, True)):
            for part in text.split(","):
                *kind, type_, pname = part.split()
                raw = kind == ["raw"]
                ctype = "T" if type_ == "T" else _C_TYPES[type_]
                if raw:
                    how = "raw"
                elif type_ == "T" and pname not in values:
                    how = "array"
                else:
                    how = "value"
                self.params.append((how, ctype, pname, is_out))
        self.source = self._source(operation)
        self.module = cp.RawModule(code=_PACK + self.source)
        self._kernels = {}

    def _declared(self, T: str, op: bool) -> str:
        """The parameter list of the per-element function (``op``) or of the kernel."""
        out = []
        for how, ctype, name, is_out in self.params:
            if how == "array" and op:
                out.append(f"{T}& {name}" if is_out else f"const {T} {name}")
            elif how == "array":
                out.append(f"{'' if is_out else 'const '}{T}* _{name}")
            elif how == "raw":
                out.append(f"const {T if ctype == 'T' else ctype}* {name}")
            else:
                out.append(f"{T if ctype == 'T' else ctype} {name}")
        return ", ".join(out)

    def _source(self, operation: str) -> str:
        name, arrays = self.name, [p for p in self.params if p[0] == "array"]
        loads = " ".join(
            f"Pack<T> {n}_p;" if is_out else f"const Pack<T> {n}_p = ((const Pack<T>*)_{n})[pack];"
            for _, _, n, is_out in arrays
        )
        stores = " ".join(f"((Pack<T>*)_{n})[pack] = {n}_p;" for _, _, n, o in arrays if o)
        by_pack = ", ".join(f"{p[2]}_p.v[l]" if p[0] == "array" else p[2] for p in self.params)
        by_index = ", ".join(f"_{p[2]}[i]" if p[0] == "array" else p[2] for p in self.params)
        run_args = ", ".join(("_" if p[0] == "array" else "") + p[2] for p in self.params)
        wrappers = "".join(
            f'extern "C" __global__ void {name}_vec_{c}({self._declared(c, False)}, '
            f"long long n) {{\n    {name}_run<{c}>({run_args}, n);\n}}\n"
            for c in ("float", "double")
        )
        return f"""
template <typename T>
__device__ __forceinline__ void {name}_op(long long i, {self._declared("T", True)}) {{
    {operation};
}}
template <typename T>
__device__ void {name}_run({self._declared("T", False)}, long long n) {{
    const int W = 16 / sizeof(T);
    const long long n_packs = n / W, stride = (long long)gridDim.x * blockDim.x;
    const long long thread = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (long long pack = thread; pack < n_packs; pack += stride) {{
        {loads}
#pragma unroll
        for (int l = 0; l < W; ++l) {name}_op<T>(pack * W + l, {by_pack});
        {stores}
    }}
    if (thread < n - n_packs * W) {{
        const long long i = n_packs * W + thread;
        {name}_op<T>(i, {by_index});
    }}
}}
{wrappers}"""

    def __call__(self, *args):
        if len(args) != len(self.params):
            return None
        arrays = [a for (how, *_), a in zip(self.params, args) if how == "array"]
        first = arrays[0]
        if not isinstance(first, cp.ndarray) or first.dtype.name not in ("float32", "float64"):
            return None
        for a in arrays:
            if not (
                isinstance(a, cp.ndarray)
                and a.dtype == first.dtype
                and a.shape == first.shape
                and a.flags.c_contiguous
                and a.data.ptr % 16 == 0
            ):
                return None
        n = first.size
        if n == 0:
            return None
        converted = []
        for (how, ctype, _, _), a in zip(self.params, args):
            scalar = first.dtype.type if ctype == "T" else _SCALAR_TYPES.get(ctype)
            if how == "value":
                if isinstance(a, cp.ndarray):
                    return None
                a = scalar(a)
            elif how == "raw" and not (
                isinstance(a, cp.ndarray) and a.flags.c_contiguous and a.dtype == scalar
            ):
                return None
            converted.append(a)
        ctype = c_type(first.dtype)
        if ctype not in self._kernels:
            self._kernels[ctype] = self.module.get_function(f"{self.name}_vec_{ctype}")
        packs = n // (16 // first.itemsize)
        blocks = min(self.MAX_BLOCKS, max(1, -(-packs // self.THREADS)))
        self._kernels[ctype]((blocks,), (self.THREADS,), (*converted, cp.int64(n)))
        outs = [a for (_, _, _, is_out), a in zip(self.params, args) if is_out]
        return outs[0] if len(outs) == 1 else tuple(outs)


def vectorized_source() -> str:
    """The CUDA C of every ``Vectorized`` kernel, as one translation unit (for the tests)."""
    return _PACK + "".join(e.vector.source for e in VECTORIZED)


class Elementwise:
    """An ElementwiseKernel that runs as its ``Vectorized`` twin wherever that applies."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, values=()):
        self.kernel = cp.ElementwiseKernel(in_params, out_params, operation, name)
        self.vector = Vectorized(in_params, out_params, operation, name, values)
        VECTORIZED.append(self)

    def __call__(self, *args):
        result = self.vector(*args)
        return self.kernel(*args) if result is None else result


def c_type(dtype) -> str:
    return {"float32": "float", "float64": "double"}[dtype.name]
