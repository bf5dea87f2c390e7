"""``cupy.testing``: NumPy's comparisons after an explicit copy to the host."""

from __future__ import annotations

import numpy as np


def _host(a):
    from . import asnumpy

    return asnumpy(a)


def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True):
    np.testing.assert_allclose(_host(actual), _host(desired), rtol, atol, err_msg=err_msg)


def assert_array_equal(x, y, err_msg="", verbose=True, strict=False):
    np.testing.assert_array_equal(_host(x), _host(y), err_msg=err_msg, strict=strict)
