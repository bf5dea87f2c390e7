"""The input side: from what the user hands ``fit``, ``predict`` or ``score`` to the
cases the training loop reads.

- ``sources``: X and y that stay where they lie (memmaps, HDF5, zarr, Dask, any
  row-sliceable array), read a block of rows at a time;
- ``checks``: validation and the conversion to the training dtype, with errors that
  name the argument (and, block by block, the row);
- ``data``: ``Data`` (resident cases, subsets by index) and ``Streamed`` (a chunk at a
  time, in the epoch's order: a permutation, or CorgiPile's buffered shuffle);
- ``device``: chunks to the CuPy device through pinned buffers on a second stream;
- ``shards``: data-parallel rows and the replicated-data check;
- ``prepare``: all of the above for a fit, in one call.

An estimator calls ``prepare`` once per fit (and ``checks`` to predict); the package
knows nothing of estimators beyond the attributes scikit-learn's ``validate_data``
sets on them and the targets object that encodes y.
"""

from .data import BLOCK_BYTES, CHUNK_BYTES, BufferedOrder, Data, Streamed
from .sources import Rows, as_rows

__all__ = ["BLOCK_BYTES", "CHUNK_BYTES", "BufferedOrder", "Data", "Rows", "Streamed", "as_rows"]
