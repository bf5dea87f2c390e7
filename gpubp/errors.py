"""The package's own exception types."""


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
