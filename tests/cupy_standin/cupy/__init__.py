"""A strict CuPy stand-in on NumPy, for gpubp's tests (never installed as ``cupy``).

Where no CuPy is installed (or with ``pytest --cupy-standin``), tests/conftest.py puts
this folder first on ``sys.path``, and the tests that run on the ``cupy`` backend run
gpubp's CuPy path on it, without a GPU. It imitates what matters for plumbing, as CuPy 14 behaves:

- ``ndarray`` refuses implicit conversion to NumPy (``__array__`` raises
  CuPy's TypeError), refuses ``numpy.ndarray`` operands in arithmetic, in its
  functions and as the value of ``a[...] = ...``, and returns 0-d arrays, not
  scalars, from reductions and element access;
- ``ElementwiseKernel`` and ``RawModule`` follow CuPy's Python-level rules (the
  type ``T`` comes from array arguments only and a mismatch raises; scalars are
  cast to ``T``; outputs may alias inputs; raw kernels check each argument
  against the C signature) and run gpubp's kernels through the reference
  formulas (``_gpubp.py``);
- it counts device-to-host reads, host-to-device copies, waits, kernel
  lookups and launches (``counting()``);
- a copy put on a stream of its own runs only when something waits for it (an event
  after it, or a synchronisation), reading its host buffer then: a chunk read before
  its copy's event is waited for, or a pinned buffer refilled too soon, shows;
- a stream capture records operations (arrays by reference, scalars by value) and
  leaves device memory as it was; a graph's launch runs the record again.

It cannot show CUDA arithmetic, speed, concurrency, or the order of the compute
stream's own work (it runs at once): only a real GPU does.
"""

from __future__ import annotations

import functools
import numbers
import sys
import warnings

import numpy as _np

from . import _state
from ._state import COUNTS, counting

__version__ = "14.2.0+standin"
__standin__ = True

_DLPACK_CPU, _DLPACK_CUDA = 1, 2
_SYNCING = {"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress"}
_SEQUENCES = {"concatenate", "stack", "hstack", "vstack", "column_stack", "dstack"}


def _refuse_host(x):
    raise TypeError(f"Unsupported type {type(x)}")


def _unwrap(x):
    """The NumPy array behind a stand-in array; host arrays are refused as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        _refuse_host(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


SMALL = 2**16  # no card is imitated this small: an array of this size fits, unasked


def _check_alloc(nbytes: int) -> None:
    limit = _state.LIMIT[0]
    if (nbytes > SMALL and nbytes > _state.total_memory()) or (
        limit and _state.LIVE[0] + nbytes > limit
    ):
        from .cuda.memory import OutOfMemoryError

        raise OutOfMemoryError(nbytes, _state.LIVE[0], limit)


def _wrap(a):
    """A stand-in array around a NumPy result: scalars become 0-d arrays."""
    if isinstance(a, _np.ndarray):
        if a.flags.owndata:
            _check_alloc(a.nbytes)
            _state.allocated(a, a.nbytes)
        out = ndarray.__new__(ndarray)
        out._a = a
        return out
    if isinstance(a, _np.generic):
        return _wrap(_np.asarray(a))
    if isinstance(a, tuple):
        return tuple(_wrap(v) for v in a)
    if isinstance(a, list):
        return [_wrap(v) for v in a]
    return a


def _launch():
    """One launch on the current stream: after the stream's deferred copies, in order."""
    COUNTS.launches += 1
    cuda.run_current()


class _MemoryPointer:
    def __init__(self, a):
        self.ptr = a.ctypes.data
        self.device_id = _state.CURRENT_DEVICE[0]


class ndarray:
    """A device array: NumPy underneath, CuPy's rules on top."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in allocates its own memory")
        dtype = _np.dtype(dtype)
        _check_alloc(int(_np.prod(shape, dtype=object)) * dtype.itemsize)
        self._a = _np.empty(shape, dtype=dtype, order=order)
        _state.allocated(self._a, self._a.nbytes)

    # -- attributes --------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    data = property(lambda self: _MemoryPointer(self._a))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))

    @property
    def device(self):
        from .cuda import Device

        return Device(_state.CURRENT_DEVICE[0])

    # -- the transfers -----------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        _state.d2h()
        host = _np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None):
        if not isinstance(arr, _np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if not self.flags.c_contiguous:
            raise ValueError("set: the device array must be contiguous")
        _state.h2d(arr.nbytes)
        from .cuda import get_current_stream

        target = self._a
        stream = get_current_stream() if stream is None else stream

        def copy():  # reads ``arr`` when it runs: a host buffer refilled before is seen so
            target[...] = arr

        stream.enqueue(copy)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        if self.size == 0:
            warnings.warn(
                "The truth value of an empty array is ambiguous.", DeprecationWarning, stacklevel=2
            )
            return False
        if self.size == 1:
            return bool(self.get())
        raise ValueError(
            "The truth value of an array with more than one element is ambiguous. "
            "Use a.any() or a.all()"
        )

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __reduce__(self):
        return array, (self.get(),)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return (_DLPACK_CUDA, _state.CURRENT_DEVICE[0])

    # -- container ---------------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    @_state.operation
    def __getitem__(self, key):
        key = _index(key)
        _launch()
        result = self._a[key]
        if isinstance(result, _np.generic):  # CuPy gives a 0-d view, not a scalar
            result = self._a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        return _wrap(result)

    @_state.operation
    def __setitem__(self, key, value):
        key = _index(key)
        if isinstance(value, _np.ndarray) and value.shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        if not isinstance(value, (ndarray, _np.ndarray, _np.generic, numbers.Number)):
            raise TypeError(f"Unsupported type {type(value)}")
        _launch()
        self._a[key] = _unwrap(value)

    # -- methods -----------------------------------------------------------------------
    @_state.operation
    def copy(self, order="C"):
        _launch()
        return _wrap(self._a.copy(order=order))

    @_state.operation
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and self.dtype == _np.dtype(dtype):
            return self
        _launch()
        return _wrap(self._a.astype(dtype, order=order))

    def view(self, dtype=None):
        return _wrap(self._a.view() if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        return _wrap(self._a.reshape(*shape, order=order))

    def ravel(self, order="C"):
        return _wrap(self._a.ravel(order=order))

    def flatten(self, order="C"):
        return self.ravel(order).copy()

    def transpose(self, *axes):
        return _wrap(self._a.transpose(*axes))

    def squeeze(self, axis=None):
        return _wrap(self._a.squeeze(axis))

    @_state.operation
    def fill(self, value):
        if isinstance(value, _np.ndarray) and value.shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        _launch()
        self._a.fill(_unwrap(value))

    def __getattr__(self, name):  # reductions and the like: sum, max, mean, all, argmax, ...
        if name.startswith("_") or name not in _METHODS:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        function = globals()[name] if name in globals() else _numpy_function(name)
        return functools.partial(function, self)

    @_state.operation
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs + tuple(kwargs.get("out", ())):
            if isinstance(x, _np.ndarray):
                _refuse_host(x)
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) for o in kwargs["out"])
        _launch()
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        ours = globals().get(func.__name__) or _numpy_function(func.__name__)
        if ours is None:
            return NotImplemented
        return ours(*args, **kwargs)


_METHODS = {
    "sum", "prod", "max", "min", "mean", "var", "std", "all", "any", "argmax", "argmin",
    "dot", "clip", "cumsum", "nonzero", "round", "conj", "take", "repeat", "swapaxes",
}  # fmt: skip


def _index(key):
    """A key for NumPy: stand-in arrays unwrapped; host index arrays go to the device
    (a copy, as CuPy makes); a boolean mask costs a read to size the result."""
    keys = key if isinstance(key, tuple) else (key,)
    out = []
    for k in keys:
        if isinstance(k, ndarray):
            if k.dtype == bool:
                _state.d2h()
            k = k._a
        elif isinstance(k, (_np.ndarray, list)):
            k = _np.asarray(k)
            _state.h2d(k.nbytes)
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _binary(op):
    def forward(self, other):
        if isinstance(other, _np.ndarray):
            _refuse_host(other)
        if not isinstance(other, (ndarray, numbers.Number, _np.generic)):
            return NotImplemented
        _launch()
        return _wrap(op(self._a, _unwrap(other)))

    def reflected(self, other):
        if isinstance(other, _np.ndarray):
            _refuse_host(other)
        if not isinstance(other, (numbers.Number, _np.generic)):
            return NotImplemented
        _launch()
        return _wrap(op(other, self._a))

    def inplace(self, other):
        if isinstance(other, _np.ndarray):
            _refuse_host(other)
        if not isinstance(other, (ndarray, numbers.Number, _np.generic)):
            return NotImplemented
        _launch()
        op(self._a, _unwrap(other), out=self._a)
        return self

    return tuple(map(_state.operation, (forward, reflected, inplace)))


for _name, _op in {
    "add": _np.add,
    "sub": _np.subtract,
    "mul": _np.multiply,
    "truediv": _np.true_divide,
    "floordiv": _np.floor_divide,
    "mod": _np.remainder,
    "pow": _np.power,
    "matmul": _np.matmul,
    "and": _np.bitwise_and,
    "or": _np.bitwise_or,
    "xor": _np.bitwise_xor,
}.items():
    _f, _r, _i = _binary(_op)
    setattr(ndarray, f"__{_name}__", _f)
    setattr(ndarray, f"__r{_name}__", _r)
    setattr(ndarray, f"__i{_name}__", _i)

for _name, _op in {
    "lt": _np.less,
    "le": _np.less_equal,
    "gt": _np.greater,
    "ge": _np.greater_equal,
    "eq": _np.equal,
    "ne": _np.not_equal,
}.items():
    setattr(ndarray, f"__{_name}__", _binary(_op)[0])

for _name, _op in {"neg": _np.negative, "pos": _np.positive, "abs": _np.abs}.items():
    setattr(
        ndarray,
        f"__{_name}__",
        _state.operation(lambda self, _op=_op: (_launch(), _wrap(_op(self._a)))[1]),
    )
ndarray.__invert__ = _state.operation(lambda self: (_launch(), _wrap(_np.invert(self._a)))[1])


# -- functions ---------------------------------------------------------------------------


@functools.cache
def _numpy_function(name):
    """NumPy's function ``name`` on stand-in arrays, or None if NumPy has none."""
    function = getattr(_np, name, None)
    if not callable(function) or isinstance(function, type):
        return None

    @_state.operation
    @functools.wraps(function)
    def run(*args, **kwargs):
        if name not in _SEQUENCES:
            for a in args:
                if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
                    raise TypeError(f"Unsupported type {type(a)}")
        args, kwargs = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
        if name in _SYNCING or (name == "where" and len(args) == 1):
            _state.d2h()  # CuPy reads the result's size back before allocating it
        _launch()
        return _wrap(function(*args, **kwargs))

    return run


def __getattr__(name):
    value = getattr(_np, name, None)
    if value is None or name.startswith("_") or name in {"random", "linalg", "fft", "testing"}:
        raise AttributeError(f"the CuPy stand-in has no {name!r}")
    if isinstance(value, type) or not callable(value):  # dtypes, constants
        return value
    return _numpy_function(name)


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A device array: no copy for one already there, a host-to-device copy otherwise."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    if hasattr(a, "__dlpack_device__") and not isinstance(a, (_np.ndarray, _np.generic)):
        a = from_dlpack(a)
        return a if dtype is None else a.astype(dtype, copy=False)
    host = _np.array(a, dtype=dtype, order=order or "K", copy=True)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    _state.h2d(host.nbytes)
    return _wrap(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        out = obj.astype(dtype or obj.dtype, copy=copy)
    else:
        out = asarray(obj, dtype)
    return out if out.ndim >= ndmin else _wrap(_np.array(out._a, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return _np.asarray(a, order=order)


@_state.operation
def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    if a.flags.c_contiguous and (dtype is None or a.dtype == _np.dtype(dtype)):
        return a
    _launch()
    return _wrap(_np.ascontiguousarray(a._a, dtype=dtype))


def from_dlpack(x, *, device=None, copy=None):
    if isinstance(x, ndarray):
        return x
    kind, _ = x.__dlpack_device__()
    if kind != _DLPACK_CUDA:
        raise BufferError("the CuPy stand-in takes DLPack tensors on a CUDA device only")
    return _wrap(_np.from_dlpack(x))


def _creation(name):
    function = getattr(_np, name)

    @_state.operation
    @functools.wraps(function)
    def make(shape, dtype=float, *args, **kwargs):
        dtype = _np.dtype(dtype)
        _check_alloc(int(_np.prod(shape, dtype=object)) * dtype.itemsize)
        _launch()
        return _wrap(function(shape, dtype, *args, **kwargs))

    return make


empty, zeros, ones = (_creation(n) for n in ("empty", "zeros", "ones"))


@_state.operation
def full(shape, fill_value, dtype=None, order="C"):
    if isinstance(fill_value, _np.ndarray):
        _refuse_host(fill_value)
    dtype = _np.result_type(fill_value) if dtype is None else _np.dtype(dtype)
    out = empty(shape, dtype)
    out.fill(_unwrap(fill_value))
    return out


@_state.operation
def matmul(a, b, out=None, **kwargs):
    if isinstance(a, ndarray) and isinstance(b, ndarray) and a.ndim == b.ndim == 2:
        itemsize = _np.result_type(a.dtype, b.dtype).itemsize
        _check_alloc(a.shape[0] * b.shape[1] * itemsize)  # before NumPy allocates it
    return _numpy_function("matmul")(a, b, out=out, **kwargs)


def get_default_memory_pool():
    from .cuda.memory import MemoryPool

    return MemoryPool.DEFAULT


def get_default_pinned_memory_pool():
    from .cuda.memory import MemoryPool

    return MemoryPool.PINNED


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


from . import cuda, random, testing  # noqa: E402
from ._kernel import ElementwiseKernel, RawKernel, RawModule  # noqa: E402

__all__ = [
    "COUNTS",
    "ElementwiseKernel",
    "RawKernel",
    "RawModule",
    "counting",
    "cuda",
    "ndarray",
    "random",
    "testing",
]
