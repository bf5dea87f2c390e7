"""``ElementwiseKernel``, ``RawModule`` and ``RawKernel`` with CuPy's Python-level rules.

The CUDA source is not compiled: each kernel runs the reference formula that
``_gpubp.py`` registers under the kernel's name. What is checked is what CuPy
checks before a launch: argument count and kinds, the type placeholders (taken
from array arguments only; a mismatch raises), output shapes, and for raw
kernels every argument against the C signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import _state
from ._state import COUNTS

_C_TYPES = {
    "float": "float32",
    "double": "float64",
    "int": "int32",
    "unsigned int": "uint32",
    "long long": "int64",
    "size_t": "uint64",
    "bool": "bool",
}

_NAMED_TYPES = {"bool", "float16", "float32", "float64", "complex64", "complex128"} | {
    f"{u}int{n}" for u in ("", "u") for n in (8, 16, 32, 64)
}


@dataclass(frozen=True)
class Param:
    ctype: str
    name: str
    raw: bool
    dtype: np.dtype | None  # None for a type placeholder such as T


def _params(text: str) -> tuple[Param, ...]:
    params = []
    for part in text.split(","):
        tokens = part.split()
        if not tokens:
            continue
        raw = tokens[0] == "raw"
        *kind, name = tokens[1:] if raw else tokens
        ctype = " ".join(kind)
        ctype = _C_TYPES.get(ctype, ctype)
        dtype = np.dtype(ctype) if ctype in _NAMED_TYPES else None  # else a placeholder
        params.append(Param(ctype, name, raw, dtype))
    return tuple(params)


def _reference(table: str, name: str):
    from . import _gpubp

    try:
        return getattr(_gpubp, table)[name]
    except KeyError:
        raise NotImplementedError(
            f"the CuPy stand-in has no reference formula for kernel {name!r}: add one to "
            "tests/cupy_standin/cupy/_gpubp.py"
        ) from None


class ElementwiseKernel:
    def __init__(
        self,
        in_params,
        out_params,
        operation,
        name="kernel",
        reduce_dims=True,
        preamble="",
        no_return=False,
        return_tuple=False,
        **kwargs,
    ):
        self.in_params, self.out_params = _params(in_params), _params(out_params)
        self.operation, self.name = operation, name
        self.no_return, self.return_tuple = no_return, return_tuple
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout

    @_state.operation
    def __call__(self, *args, size=None, block_size=128, stream=None):
        from . import _launch, _wrap, ndarray

        if len(args) not in (self.nin, self.nargs):
            raise TypeError(
                f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} "
                f"or {self.nargs} (with outputs), but given {len(args)}."
            )
        for a in args:
            if not isinstance(a, (ndarray, int, float, bool, complex, np.generic)):
                raise TypeError(f"Unsupported type {type(a)}")
        ins, outs = args[: self.nin], args[self.nin :]
        if any(not isinstance(o, ndarray) for o in outs):
            raise TypeError("Output arguments must be cupy.ndarray")
        types: dict[str, np.dtype] = {}
        for p, a in list(zip(self.out_params, outs)) + list(zip(self.in_params, ins)):
            if not isinstance(a, ndarray):
                continue  # scalars take their type from the arrays
            want = p.dtype if p.dtype is not None else types.setdefault(p.ctype, a.dtype)
            if a.dtype != want:
                raise TypeError(f"Type is mismatched. {p.name} {a.dtype.type} {want.type}")
        try:
            resolved = [types[p.ctype] if p.dtype is None else p.dtype for p in self.in_params]
            out_types = [types[p.ctype] if p.dtype is None else p.dtype for p in self.out_params]
        except KeyError as exc:
            raise TypeError(f"{self.name}: cannot determine type {exc} from the arrays") from None
        shapes = [
            a.shape
            for p, a in zip(self.in_params + self.out_params, args)
            if isinstance(a, ndarray) and not p.raw
        ]
        shape = np.broadcast_shapes(*shapes) if shapes else (size,)
        for p, o in zip(self.out_params, outs):
            if not p.raw and o.shape != shape:
                raise ValueError(f"Out shape is mismatched: {o.shape} for {shape}")
        values = {
            p.name: (a._a if isinstance(a, ndarray) else t.type(a))
            for p, a, t in zip(self.in_params, ins, resolved)
        }
        _launch()
        results = _reference("ELEMENTWISE", self.name)(**values)  # inputs read before writes
        if not outs:
            outs = tuple(_wrap(np.empty(shape, t)) for t in out_types)
        for p, o in zip(self.out_params, outs):
            o._a[...] = np.broadcast_to(results[p.name], shape).astype(o.dtype, copy=False)
        if self.no_return:
            return None
        return outs[0] if self.nout == 1 and not self.return_tuple else tuple(outs)

    def __repr__(self):
        return f"<ElementwiseKernel {self.name} (CuPy stand-in)>"


class RawKernel:
    """One ``__global__`` function of a CUDA source, called as ``k(grid, block, args)``."""

    def __init__(self, code, name, options=(), **kwargs):
        match = re.search(rf"__global__\s+void\s+{re.escape(name)}\s*\(([^)]*)\)", code)
        if match is None:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        self.name = name
        self.params, self.names = [], []
        for part in match.group(1).split(","):
            written = "*" in part and "const " not in part  # an output array
            part = part.replace("const ", "").strip()
            pointer = "*" in part
            ctype = part.split("*")[0].strip() if pointer else part.rsplit(None, 1)[0]
            self.params.append((np.dtype(_C_TYPES[ctype]), pointer))
            self.names.append((part.replace("*", " ").split()[-1], written))
        self._run = None  # the formula it runs, found at the first launch

    @_state.operation
    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, **kwargs):
        from . import _launch, ndarray

        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        values = []
        for k, (a, (dtype, pointer)) in enumerate(zip(args, self.params)):
            if isinstance(a, np.ndarray) and a.size != 1:
                raise TypeError(
                    f"You are trying to pass a numpy.ndarray of shape {a.shape} as a kernel "
                    "parameter. Only numpy.ndarrays of size one can be passed by value."
                )
            if pointer:
                if not isinstance(a, ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
                    raise TypeError(
                        f"{self.name}: argument {k} must be a C-contiguous {dtype} device array"
                    )
                values.append(a._a)
            else:
                if not isinstance(a, np.generic) or a.dtype != dtype:
                    raise TypeError(
                        f"{self.name}: argument {k} is a {dtype} by value; pass numpy.{dtype}"
                        f"(...), not {type(a).__name__} (CuPy would pass it as another type)"
                    )
                values.append(a)
        _launch()
        threads = int(np.prod(grid)) * int(np.prod(block))
        if self._run is None:
            from . import _gpubp

            self._run = _gpubp.vectorized(self.name, self.names) or _reference("RAW", self.name)
        self._run(threads, *values)


class RawModule:
    def __init__(self, code=None, *, path=None, options=(), name_expressions=None, **kwargs):
        if code is None:
            raise NotImplementedError("the CuPy stand-in takes source code, not a path")
        self.code = code

    def get_function(self, name):
        COUNTS.get_function += 1
        return RawKernel(self.code, name)
