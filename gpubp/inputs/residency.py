"""Where X lives while it trains: whole on the device (resident), or streamed from where
it lies a chunk at a time (``gpubp.inputs.data.Streamed``)."""

from __future__ import annotations

from ..errors import InputError
from .device import fits_on_device
from .sources import Rows, as_rows

STREAMING_SOLVERS = ("sgd", "adam")  # lbfgs and gd take all of X in every step


def streamed_source(X, backend, streaming, solver: str, dtype) -> Rows | None:
    """X as Rows when a fit streams it, else None (X then goes to the device whole).

    ``streaming=True`` always streams (in-memory arrays too), False never does; "auto"
    streams X that lies outside memory (a memmap, HDF5, zarr, Dask, ...) on the NumPy
    backend, and on CuPy any host X that does not fit on the device
    (``device.fits_on_device``). Device arrays stay where they are.
    """
    if streaming is False or backend.resident(X) is not None:
        return None
    source = as_rows(X, stream_arrays=backend.name == "cupy" or streaming is True)
    if source is None:
        return None
    if solver not in STREAMING_SOLVERS:
        if streaming is True:
            raise InputError(
                f"solver={solver!r} takes the whole of X in every step; streaming needs "
                "solver 'sgd' or 'adam'"
            )
        return None
    if streaming is True:
        return source
    if backend.name == "cupy":
        return None if fits_on_device(backend, source, dtype) else source
    return None if source.kind == "array" else source
