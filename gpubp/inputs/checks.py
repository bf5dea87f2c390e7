"""The checks every input passes at the estimator boundary, and its conversion to the
training dtype: errors name the argument (X, y, sample_weight) and, for data read
a block at a time, the row."""

from __future__ import annotations

import weakref

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    validate_data,
)

from ..backend import is_sparse, to_numpy
from ..distributed import agree
from ..errors import InputError
from .data import check_finite
from .sources import Rows, as_rows


def named(argument, check, *args, **kwargs):
    """``check(*args, **kwargs)``, its ValueError or TypeError turned into an InputError
    that names the argument."""
    try:
        return check(*args, **kwargs)
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError(f"{argument}: {exc}") from exc


def inputs(est, X, backend, reset, y=None, training=False):
    """X validated and on the backend's device (no copy if it already is); y on the host.

    Returns X, or (X, y) when y is given (training). Bad data raises InputError
    naming X or y. In training, a device array that the previous call checked
    is not checked again (a NaN put there since surfaces as DivergenceError).
    """
    if y is not None:
        y = named(
            "y",
            check_array,
            to_numpy(y),
            ensure_2d=False,
            input_name="y",
            dtype=None if is_classifier(est) else np.float64,
        )
    training = training or y is not None
    X = backend.to_device(validated(est, X, backend, reset, training=training))
    if y is None:
        return X
    named("y", check_consistent_length, X, y)
    return X, y


def validated(est, X, backend, reset, training=False):
    """X checked and in the estimator's dtype: on the host, or on the device if it already
    is there; X that lies outside memory (a memmap, HDF5, zarr, Dask, ...) is read,
    checked and copied to the device a block at a time (``load_rows``)."""
    resident = backend.resident(X)
    source = as_rows(X) if resident is None else None
    if source is not None:
        check_source(est, source, reset)
        return load_rows(source, backend, est.dtype)
    if resident is None:
        X = named(
            "X",
            validate_data,
            est,
            X,
            accept_sparse=("csr", "csc"),
            dtype=(np.float64, np.float32),
            order="C",  # rows gathered from a column-major X are 20x slower to read
            reset=reset,
        )
        return in_dtype(X, est.dtype, "X")
    seen = est.__dict__.get("_checked_input")
    X_cast = resident.astype(getattr(backend.xp, est.dtype), copy=False)
    if reset or not training or seen is None or seen() is not X:
        named("X", check_resident, est, resident, X_cast, backend.xp, reset)
    if training:
        est._checked_input = weakref.ref(X)
    return X_cast


def in_dtype(a, dtype, name):
    """A host array in ``dtype`` (a sparse one in CSR form); values beyond its range are
    an InputError, never inf."""
    with np.errstate(over="ignore"):  # overflow is reported below, as an InputError
        if is_sparse(a):
            a = a.tocsr()
            out = a.astype(dtype, copy=False)
            values, original = out.data, a.data
        else:
            out = values = a.astype(dtype, copy=False)
            original = a
    if out.dtype != a.dtype and not np.isfinite(values).all():  # a itself was finite
        raise InputError(
            f"{name} holds values beyond the range of {dtype} (largest magnitude "
            f"{np.abs(original).max():.3g}); use dtype='float64'"
        )
    return out


def check_shape(est, shape, reset) -> None:
    """What validate_data checks of X's shape: 2-D, rows, and the features seen in fit."""
    if len(shape) != 2:
        raise ValueError(f"Expected a 2-D array for X, got shape {tuple(shape)}.")
    if shape[0] == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    if reset:
        est.n_features_in_ = int(shape[1])
        est.__dict__.pop("feature_names_in_", None)
    elif shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {shape[1]} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )


def check_resident(est, X, X_cast, xp, reset):
    """What validate_data checks, for an array already on the GPU (one read)."""
    check_shape(est, X.shape, reset)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}.")
    if not bool(xp.isfinite(X_cast).all()):
        beyond = (
            ""
            if X_cast.dtype == X.dtype
            else (f", or values beyond the range of {X_cast.dtype} (use dtype='float64')")
        )
        raise ValueError(f"Input X contains NaN or infinity{beyond}.")
    return X


def check_source(est, source: Rows, reset) -> None:
    """What can be checked of X read a block at a time before reading it: its shape and
    dtype (its values are checked block by block, by ``converter``)."""
    named("X", check_shape, est, source.shape, reset)
    if source.dtype.kind not in "biuf":
        raise InputError(f"X: must hold real numbers, got dtype {source.dtype}.")


def converter(dtype, name: str = "X"):
    """``convert(block, rows)``: a block of rows checked finite and cast to ``dtype``."""
    dtype = np.dtype(dtype)

    def convert(block, rows):
        with np.errstate(over="ignore"):  # overflow is reported by check_finite
            out = np.ascontiguousarray(block, dtype=dtype)
        check_finite(out, rows, name, original=None if out.dtype == block.dtype else block)
        return out

    return convert


def load_rows(source: Rows, backend, dtype):
    """The whole of ``source`` on the backend's device in ``dtype``, read, checked and
    copied a block at a time (a memmap already in ``dtype`` is used where it lies on the
    NumPy backend: nothing is copied)."""
    convert = converter(dtype)
    dtype = np.dtype(dtype)
    step = source.block_rows
    if backend.name != "cupy" and source.kind in ("memmap", "array") and source.dtype == dtype:
        for start in range(0, source.n, step):
            rows = slice(start, min(start + step, source.n))
            check_finite(source.read(rows.start, rows.stop), rows)
        return source.array
    out = backend.xp.empty(source.shape, dtype=dtype)
    for start in range(0, source.n, step):
        rows = slice(start, min(start + step, source.n))
        block = convert(source.read(rows.start, rows.stop), rows)
        if backend.name == "cupy":
            out[rows].set(block)
        else:
            out[rows] = block
    return out


def sample_weights(comm, sample_weight, n: int, dtype):
    """sample_weight checked for n cases, as a host array in ``dtype`` (every rank agreeing
    that it is valid); None when not given."""
    if sample_weight is None:
        return None
    return agree(
        comm,
        lambda: named(
            "sample_weight",
            _check_sample_weight,
            to_numpy(sample_weight),
            np.empty((n, 0)),
        ).astype(dtype),
    )
