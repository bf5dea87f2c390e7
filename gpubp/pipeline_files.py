"""Whole scikit-learn pipelines in one file without pickle, through ``skops.io``.

A fitted ``Pipeline`` (scalers, encoders, column transformers, then a gpubp estimator)
is written in skops's format: a zip of a JSON schema and NumPy arrays, which skops loads
by building only the types it is told to trust. skops trusts scikit-learn's own types and
NumPy's; ``TRUSTED`` adds gpubp's estimators and the records they hold (their optimiser
and training history, plain attributes and arrays). Loading refuses a file that holds
any other type skops does not trust: ``get_untrusted_types`` lists them in the error,
and whoever trusts them can load the file with ``skops.io.load(path, trusted=[...])``.

``gpubp.save`` and ``gpubp.load`` route here for a Pipeline and a skops file.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
from sklearn.pipeline import Pipeline

from .errors import InputError, ModelFileError
from .estimators import BaseMLP, MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from .file_formats import write_atomically
from .model_checks import network_description
from .optim import SGD, Adam
from .train import History
from .train_stack import StackHistory

SUFFIX = ".skops"
FITTED = ("n_iter_", "backend_", "loss_", "stop_reason_")  # what ``gpubp info`` shows
TRUSTED = sorted(
    f"{kind.__module__}.{kind.__qualname__}"
    for kind in (
        MLPClassifier,
        MLPRegressor,
        MLPClassifierCV,
        MLPRegressorCV,
        Adam,
        SGD,
        History,
        StackHistory,
    )
)


def _skops():
    import skops.io

    return skops.io


def is_pipeline_file(path) -> bool:
    """Whether ``path`` is a skops file (a zip archive with skops's ``schema.json``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except Exception:  # not a zip, or a damaged one: the model file readers say which
        return False


def save_pipeline(pipeline, path) -> None:
    """Write a fitted ``Pipeline`` to ``path`` (ending in .skops), atomically; the
    callbacks set on its gpubp steps (``set_callbacks``) are not written."""
    if not isinstance(pipeline, Pipeline):
        raise InputError(f"save_pipeline takes a scikit-learn Pipeline, not {type(pipeline)}")
    if not os.fspath(path).lower().endswith(SUFFIX):
        raise InputError(
            f"a Pipeline is saved in skops's format: give a path ending in {SUFFIX}, not {path}"
        )
    held = {}
    for _, step in pipeline.steps:
        if isinstance(step, BaseMLP) and "_skl_callbacks" in vars(step):
            held[id(step)] = (step, vars(step).pop("_skl_callbacks"))
    try:
        data = _skops().dumps(pipeline)
    finally:
        for step, callbacks in held.values():
            step._skl_callbacks = callbacks
    write_atomically(os.fspath(path), lambda f: f.write(data))


def load_pipeline(path, backend="auto"):
    """The Pipeline of a skops file, its gpubp steps on ``backend``; ModelFileError for a
    file that is not one, or that holds types neither skops nor gpubp trusts."""
    sio = _skops()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable skops file ({exc})") from exc
    unknown = [t for t in untrusted if t not in TRUSTED]
    if unknown:
        raise ModelFileError(
            f"{path}: holds types that neither skops nor gpubp trusts: {unknown}. Load it only "
            "if you trust where it came from: skops.io.load(path, trusted=[...those types])"
        )
    try:
        pipeline = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable skops file ({exc})") from exc
    if not isinstance(pipeline, Pipeline):
        raise ModelFileError(f"{path}: holds a {type(pipeline).__name__}, not a Pipeline")
    for _, step in pipeline.steps:
        if isinstance(step, BaseMLP):
            step.set_params(backend=backend)
    return pipeline


def describe_pipeline(pipeline) -> dict:
    """What ``gpubp.persist.describe`` says of a pipeline: its steps, and the final gpubp
    estimator's network."""
    final = pipeline.steps[-1][1]
    trained = isinstance(final, BaseMLP) and hasattr(final, "coefs_")
    return {
        "format": "skops",
        "version": None,
        "kind": "Pipeline",
        "steps": [[name, type(step).__name__] for name, step in pipeline.steps],
        "network": network_description(final.get_network()) if trained else None,
        "params": None,
        "fitted": {k: getattr(final, k) for k in FITTED if hasattr(final, k)} or None,
        "record": None,
        "classes": _as_list(getattr(final, "classes_", None)),
        "feature_names": _as_list(getattr(pipeline, "feature_names_in_", None)),
    }


def _as_list(values):
    """Classes or feature names as plain JSON values, as ``describe`` gives them."""
    return None if values is None else np.asarray(values).tolist()
