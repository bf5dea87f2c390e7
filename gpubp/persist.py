"""``save`` and ``load``: a model file holds the weights and a JSON description.

The description (what ``describe`` returns) gives the format and its version, the
kind of model, the architecture, the estimator's parameters and fitted attributes,
the classes and feature names, the name, shape and dtype of every array (and from
version 2 its SHA-256), and an optional training ``record`` (data, target, score,
...). ``save`` writes format version 2, a safetensors file that PyTorch, JAX, Rust
or plain NumPy read with the safetensors library, or version 1, an .npz archive,
where the name ends in .npz (``gpubp.file_formats`` has both containers); a fitted
scikit-learn Pipeline goes to a skops file (``gpubp.pipeline_files``). ``load``
reads them all: in a model file every array is checked against the description
before anything is built; a skops file builds only types skops or gpubp trusts.
Reading a file never runs code from it.
"""

from __future__ import annotations

import json
import os

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer

from .errors import BackendError, InputError, ModelFileError
from .estimators import BaseMLP, MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from .estimators.plan import hidden_sizes
from .estimators.sklearn_mlp import SHARED_FITTED
from .file_formats import READERS, container, sha256, write_npz, write_safetensors
from .model_checks import (
    FORMAT,
    LISTED,
    LISTED_KINDS,
    VERSIONS,
    checked_arrays,
    checked_description,
    checked_fitted,
    network_description,
)
from .network import MLP
from .pipeline_files import describe_pipeline, is_pipeline_file, load_pipeline, save_pipeline
from .train import History

KINDS = {"MLP": MLP, "MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
FITTED = (
    *SHARED_FITTED,
    "backend_",
    "validation_loss_curve_",
    "stop_reason_",
    "oob_score_",
    "bootstrap_seed_",
)


def save(model, path, *, record: dict | None = None) -> None:
    """Write an ``MLP``, ``MLPClassifier`` or ``MLPRegressor`` to ``path``: a safetensors
    file (format version 2), or an .npz archive (version 1) where ``path`` ends in .npz.

    The file is written beside ``path`` under a temporary name and renamed, so
    an interrupted save never leaves half a model where a good one was; its
    permissions follow the umask.

    Parameters
    ----------
    model : MLP, MLPClassifier, MLPRegressor, MLPClassifierCV, MLPRegressorCV or Pipeline
        The network or fitted estimator (a CV estimator writes its ``best_estimator_``); a
        fitted scikit-learn ``Pipeline`` is written in skops's format
        (``gpubp.pipeline_files``), to a path ending in .skops.
    path : str or os.PathLike
        The file to write.
    record : dict, default=None
        JSON-able: how the model was trained (the command stores one).
    """
    if isinstance(model, Pipeline):
        if record is not None:
            raise InputError("a Pipeline's file holds no training record; save it without one")
        save_pipeline(model, path)
        return
    if isinstance(model, (MLPClassifierCV, MLPRegressorCV)):
        model = model.refitted()  # what it predicts with
    kind = type(model).__name__
    if kind not in KINDS or not isinstance(model, KINDS[kind]):
        raise InputError(
            f"save() takes an MLP, MLPClassifier or MLPRegressor (or their CV forms), or a "
            f"Pipeline, not {kind}"
        )
    if isinstance(model, MLP):
        net, meta = model, {}
    else:
        if not hasattr(model, "coefs_"):
            raise InputError(f"this {kind} is not fitted yet; call fit before save")
        net = model.get_network()
        meta = {"params": _json_params(model), "fitted": _fitted(model)}
    weights, listed = {}, {}
    for l, (W, b) in enumerate(net.get_weights(), start=1):
        weights[f"W_{l}"], weights[f"b_{l}"] = np.ascontiguousarray(W), np.ascontiguousarray(b)
    if isinstance(model, MLPClassifier):
        listed["classes"] = _plain(model.classes_, "classes_")
        meta["label_type"] = model._label_binarizer.y_type_
    if hasattr(model, "feature_names_in_"):
        listed["feature_names"] = _plain(model.feature_names_in_, "feature_names_in_")
    npz = os.fspath(path).lower().endswith(".npz")
    meta = {
        "format": FORMAT,
        "version": VERSIONS["npz" if npz else "safetensors"],
        "kind": kind,
        "network": network_description(net),
        **meta,
        **({} if record is None else {"record": _json_record(record)}),
    }
    if npz:
        arrays = {**weights, **listed}
        meta["arrays"] = {k: _entry(a) for k, a in arrays.items()}
        write_npz(path, json.dumps(meta), arrays)
        return
    for name, values in listed.items():
        meta[name] = _listing(values, name)
    digests = sha256(weights)
    meta["arrays"] = {k: {**_entry(a), "sha256": digests[k]} for k, a in weights.items()}
    write_safetensors(path, json.dumps(meta), weights)


def load(path, backend="auto"):
    """Read a model written by ``save`` (either format, or a Pipeline's skops file); it
    runs on ``backend`` ("auto", "numpy", "cupy").

    Raises ModelFileError for a file that is missing, truncated, corrupted, not a
    gpubp model, or written by an unknown version of the format. A file never runs code.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``save``.
    backend : {'auto', 'numpy', 'cupy'}, default='auto'
        Where the loaded model runs.

    Returns
    -------
    MLP, MLPClassifier, MLPRegressor or Pipeline
        The model, predicting exactly as the one saved on the same backend.
    """
    return load_with_description(path, backend)[0]


def load_with_description(path, backend="auto") -> tuple:
    """``(load(path, backend), describe(path))`` from one read of the file."""
    if is_pipeline_file(path):
        pipeline = load_pipeline(path, backend)
        return pipeline, describe_pipeline(pipeline)
    meta, arrays = _read_file(path)
    try:
        model = _build(meta, arrays, backend)
    except (ModelFileError, BackendError):
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: the model description is inconsistent ({exc})") from exc
    return model, _summary(meta, arrays)


def describe(path) -> dict:
    """What a model file holds, without building the model: its ``format``,
    ``version``, ``kind``, ``network`` (layer sizes, activation, output, loss,
    dtype), ``params`` and ``fitted`` attributes of an estimator, ``record`` (how it
    was trained, if saved with one), ``classes`` and ``feature_names`` (lists or
    None); for a Pipeline's skops file also its ``steps``. The file is checked as
    ``load`` checks it."""
    if is_pipeline_file(path):
        return describe_pipeline(load_pipeline(path, "numpy"))
    return _summary(*_read_file(path))


def _summary(meta, arrays) -> dict:
    info = {k: meta.get(k) for k in ("format", "version", "kind", "network", "params", "fitted")}
    info["record"] = meta.get("record")
    for name in LISTED:
        info[name] = arrays[name].tolist() if name in arrays else None
    return info


def _read_file(path):
    """The checked description and arrays of a model file."""
    try:
        kind = container(path)
        with READERS[kind](path) as stored:
            meta = checked_description(stored.description(), path, kind)
            return meta, checked_arrays(stored, meta, path)
    except ModelFileError:
        raise
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: a folder, not a model file") from exc
    except PermissionError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    except Exception as exc:  # zipfile, zlib, struct, safetensors, numpy: damage fails many ways
        raise ModelFileError(f"{path}: not a readable gpubp model file ({exc})") from exc


# -- writing -----------------------------------------------------------------------------


def _plain(values, name) -> np.ndarray:
    """An array that loads without pickle: numbers, booleans or strings."""
    values = np.asarray(values)
    if values.dtype.kind == "O":
        if not all(isinstance(v, str) for v in values):
            raise InputError(f"cannot save {name} of mixed object types; use str or numbers")
        values = values.astype(str)
    return values


def _entry(a) -> dict:
    return {"shape": list(a.shape), "dtype": a.dtype.str}


def _listing(values, name) -> dict:
    """Classes or feature names as a version 2 description lists them: their dtype and
    values (JSON numbers round-trip exactly)."""
    if values.dtype.kind not in LISTED_KINDS:
        raise InputError(
            f"cannot save {name} of dtype {values.dtype} in a safetensors model file; use "
            "str or numbers (or save to .npz)"
        )
    return {"dtype": values.dtype.str, "values": values.tolist()}


def _json_params(model) -> dict:
    params = model.get_params()
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None  # a generator object: only fit would use it
    params["hidden_layer_sizes"] = hidden_sizes(model.hidden_layer_sizes)
    if isinstance(params.get("class_weight"), (dict, list)):  # JSON keys are text only
        params["class_weight"] = _class_weight_pairs(params["class_weight"])
    return params


def _class_weight_pairs(class_weight):
    """A class_weight dict (or list of dicts) as [label, weight] pairs, the labels kept as
    the numbers or text they are."""
    if isinstance(class_weight, list):
        return {"per_label": [_class_weight_pairs(d)["pairs"] for d in class_weight]}
    return {
        "pairs": [
            [_plain([k], "class_weight")[0].item(), float(v)] for k, v in class_weight.items()
        ]
    }


def _class_weight(stored):
    """The class_weight that ``_class_weight_pairs`` wrote."""
    if not isinstance(stored, dict):
        return stored
    if "per_label" in stored:
        return [dict(map(tuple, pairs)) for pairs in stored["per_label"]]
    return dict(map(tuple, stored["pairs"]))


def _json_record(record) -> dict:
    if not isinstance(record, dict):
        raise InputError(f"record must be a dict, not {type(record).__name__}")
    try:
        return json.loads(json.dumps(record))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"record must hold JSON values (str, numbers, lists, dicts): {exc}"
        ) from None


def _fitted(model) -> dict:
    fitted = {k: getattr(model, k) for k in FITTED if hasattr(model, k)}
    history = getattr(model, "_history", None)
    if history is not None:
        fitted["no_improvement_count"] = int(np.max(history.no_improvement_count))
    return json.loads(json.dumps(fitted, default=float))


# -- reading -----------------------------------------------------------------------------


def _build(meta, arrays, backend):
    net = meta["network"]
    sizes = net["layer_sizes"]
    weights = [(arrays[f"W_{l}"], arrays[f"b_{l}"]) for l in range(1, len(sizes))]
    if meta["kind"] == "MLP":
        return MLP(
            sizes,
            net["activation"],
            net["output"],
            net["loss"],
            net["weight_decay"],
            net["dtype"],
            backend=backend,
            n_networks=net.get("n_networks"),
            weights=weights,
            penalty=net.get("penalty", "l2"),  # files from before weight elimination
            w0=net.get("w0", 1.0),
        )
    params = {**meta["params"], "backend": backend}
    if "class_weight" in params:
        params["class_weight"] = _class_weight(params["class_weight"])
    model: BaseMLP = KINDS[meta["kind"]](**params)
    model._validate_params()
    fitted = checked_fitted(meta, arrays)
    no_improvement = fitted.pop("no_improvement_count", 0)
    for key, value in fitted.items():
        setattr(model, key, value)
    model.coefs_ = [W for W, _ in weights]
    model.intercepts_ = [b for _, b in weights]
    if "feature_names" in arrays:
        model.feature_names_in_ = arrays["feature_names"].astype(object)
    if isinstance(model, MLPClassifier):
        lb = LabelBinarizer()
        lb.classes_, lb.y_type_, lb.sparse_input_ = arrays["classes"], meta["label_type"], False
        model._label_binarizer, model.classes_ = lb, arrays["classes"]
    if model.solver != "lbfgs":
        model._history = History(
            n_iter=model.n_iter_,
            t=model.t_,
            loss=model.loss_,
            loss_curve=list(model.loss_curve_),
            best_loss=_number(model.best_loss_),
            validation_scores=model.validation_scores_,
            validation_loss_curve=model.validation_loss_curve_,
            best_validation_score=_number(model.best_validation_score_),
            no_improvement_count=no_improvement,
            stop_reason=getattr(model, "stop_reason_", ""),
        )
    if model.get_network().layer_sizes != tuple(sizes):  # built now: a bad backend fails here
        raise ValueError("the weights do not match hidden_layer_sizes")
    return model


def _number(value):
    return None if value is None else float(value)
