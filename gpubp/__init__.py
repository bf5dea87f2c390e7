"""gpubp: backpropagation as ESL 11.4 writes it, on NumPy or CuPy."""

from . import errors
from .backend import Backend, get_backend, to_numpy
from .backprop import Backprop
from .config import show_config
from .errors import (
    BackendError,
    CheckpointError,
    DeviceMemoryError,
    DivergenceError,
    InputError,
    InsufficientMemoryError,
    ModelFileError,
    Preempted,
)
from .estimators import MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from .gradcheck import GradcheckResult, gradcheck
from .network import MLP
from .onnx_export import export_onnx
from .persist import load, save

__version__ = "0.1.0"

#: The exit status of a preempted run, 75 (EX_TEMPFAIL: try again later). A job script that
#: sees it requeues the job, and the same command goes on from its checkpoint.
PREEMPTED = errors.PREEMPTED

_LAZY_SUBMODULES = ("plotting", "cli")  # imported on first use: matplotlib is slow to import


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MLP",
    "Backprop",
    "Backend",
    "BackendError",
    "CheckpointError",
    "DeviceMemoryError",
    "DivergenceError",
    "InputError",
    "InsufficientMemoryError",
    "MLPClassifier",
    "MLPClassifierCV",
    "MLPRegressor",
    "MLPRegressorCV",
    "ModelFileError",
    "PREEMPTED",
    "Preempted",
    "GradcheckResult",
    "get_backend",
    "export_onnx",
    "gradcheck",
    "load",
    "save",
    "show_config",
    "to_numpy",
]
