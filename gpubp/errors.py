"""The package's own exception types, and its warnings' address."""

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class BackendError(RuntimeError):
    """A backend was asked for explicitly and cannot work here."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss; the last finite weights are kept."""


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupted, or of another format or version."""


class InputError(ValueError, TypeError):
    """Bad input data or arguments; the message names the argument.

    Both a ValueError and a TypeError, so either ``except`` clause catches it.
    """


class DeviceMemoryError(MemoryError):
    """The GPU ran out of memory; the message says what to try."""


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside gpubp: the user's line."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
