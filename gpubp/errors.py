"""The package's own exception types, and its warnings' address."""

import os
import sys
import types
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


class CheckpointError(RuntimeError):
    """A checkpoint folder cannot be written or read, or holds another run's checkpoint."""


PREEMPTED = 75  # the exit status of a preempted run (EX_TEMPFAIL: try again later)


class Preempted(SystemExit):
    """Training was preempted (SIGTERM or SIGUSR1) and its checkpoint written: exits the
    process with status ``PREEMPTED`` (75) unless caught; a job script tests for it and
    requeues, and the same command goes on from the checkpoint.

    Parameters
    ----------
    message : str
        What was preempted and where its checkpoint is.
    """

    def __init__(self, message: str):
        super().__init__(PREEMPTED)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DeviceMemoryError(MemoryError):
    """The GPU ran out of memory; the message says what to try."""


class InsufficientMemoryError(MemoryError):
    """A fit cannot fit in the host's or the GPU's memory, known before allocating: the
    message says how many bytes it needs, how many are free and what to change."""


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside gpubp (and outside
    scikit-learn's callback wrapper around gpubp's fit): the user's line."""
    frame, level = sys._getframe(1), 2
    while frame is not None and (
        os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE)
        or frame.f_globals.get("__name__", "").startswith("sklearn.callback")
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def renamed(function, qualname: str):
    """A copy of ``function`` under ``qualname``: Python's errors about its arguments
    ("X.__init__() got an unexpected keyword argument") then name X."""
    f = function
    copy = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    copy.__kwdefaults__, copy.__doc__, copy.__qualname__ = f.__kwdefaults__, f.__doc__, qualname
    return copy
