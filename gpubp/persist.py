"""``save`` and ``load``: one .npz file, weights as arrays plus a JSON description.

The file holds ``W_1, b_1, ..., W_L, b_L`` (NumPy arrays in the model's dtype),
for classifiers ``classes`` (and ``feature_names`` where the model has them),
and ``__gpubp__``: a JSON text with the format, its version, the kind of model,
the architecture, the estimator's parameters and fitted attributes, and the
name, shape and dtype of every array. It is read with ``allow_pickle=False``,
so loading a file never runs code from it, and every array is checked against
the description before anything is built. An optional ``record`` (how the model
was trained: data, target, score, ...) is kept in the description for
``describe`` and ``gpubp info``.
"""

from __future__ import annotations

import json
import os
import secrets

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from .errors import BackendError, InputError, ModelFileError
from .estimators import BaseMLP, MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from .network import MLP, count_parameters
from .train import History

FORMAT = "gpubp-model"
VERSION = 1
META = "__gpubp__"
KINDS = {"MLP": MLP, "MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
FITTED = (
    "n_features_in_",
    "n_outputs_",
    "n_layers_",
    "out_activation_",
    "backend_",
    "n_iter_",
    "t_",
    "loss_",
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
    "validation_loss_curve_",
    "stop_reason_",
)
MAX_PARAMETERS = 2**34  # a description asking for more is not a model we wrote
MAX_MEMBER_BYTES = 8 * MAX_PARAMETERS


ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive


def save(model, path, *, record: dict | None = None) -> None:
    """Write an ``MLP``, ``MLPClassifier`` or ``MLPRegressor`` to ``path`` (.npz).

    The file is written beside ``path`` under a temporary name and renamed, so
    an interrupted save never leaves half a model where a good one was; its
    permissions follow the umask. ``record``, a JSON-able dict, describes how the
    model was trained.
    """
    if isinstance(model, (MLPClassifierCV, MLPRegressorCV)):
        if not hasattr(model, "best_estimator_"):
            raise InputError(
                f"this {type(model).__name__} has no best_estimator_: fit it with refit=True"
            )
        model = model.best_estimator_  # what it predicts with
    kind = type(model).__name__
    if kind not in KINDS or not isinstance(model, KINDS[kind]):
        raise InputError(f"save() takes an MLP, MLPClassifier or MLPRegressor, not {kind}")
    if isinstance(model, MLP):
        net, meta = model, {}
    else:
        if not hasattr(model, "coefs_"):
            raise InputError(f"this {kind} is not fitted yet; call fit before save")
        net = model.get_network()
        meta = {"params": _json_params(model), "fitted": _fitted(model)}
    arrays = {}
    for l, (W, b) in enumerate(net.get_weights(), start=1):
        arrays[f"W_{l}"], arrays[f"b_{l}"] = W, b
    if isinstance(model, MLPClassifier):
        arrays["classes"] = _plain(model.classes_, "classes_")
        meta["label_type"] = model._label_binarizer.y_type_
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names"] = _plain(model.feature_names_in_, "feature_names_in_")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "network": {
            "layer_sizes": list(net.layer_sizes),
            "activation": net.activation,
            "output": net.output,
            "loss": net.loss,
            "weight_decay": np.asarray(net.weight_decay).tolist(),
            "dtype": net.dtype.name,
            "n_networks": net.n_networks,
        },
        **meta,
        **({} if record is None else {"record": _json_record(record)}),
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()},
    }
    arrays[META] = np.array(json.dumps(meta))
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, write) -> None:
    """Call ``write(f)`` on a new binary file beside ``path`` and rename it onto ``path``
    when complete: an error or interruption leaves what was at ``path`` as it was.
    Permissions follow the umask; errors name ``path``, never the temporary file."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def load(path, backend="auto"):
    """Read a model written by ``save``; it runs on ``backend`` ("auto", "numpy", "cupy").

    Raises ModelFileError for a file that is missing, truncated, corrupted, not a
    gpubp model, or written by an unknown version of the format.
    """
    return load_with_description(path, backend)[0]


def load_with_description(path, backend="auto") -> tuple:
    """``(load(path, backend), describe(path))`` from one read of the file."""
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
    None). The file is checked as ``load`` checks it."""
    return _summary(*_read_file(path))


def _summary(meta, arrays) -> dict:
    info = {k: meta.get(k) for k in ("format", "version", "kind", "network", "params", "fitted")}
    info["record"] = meta.get("record")
    for name in ("classes", "feature_names"):
        info[name] = arrays[name].tolist() if name in arrays else None
    return info


def _read_file(path):
    """The checked description and arrays of a model file."""
    try:
        with open(path, "rb") as f:
            if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                raise ModelFileError(f"{path}: not a gpubp model file (not an .npz archive)")
            f.seek(0)
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile) or META not in npz.files:
                raise ModelFileError(f"{path}: not a gpubp model file (no {META} entry)")
            with npz:
                meta = _description(_read(npz, META, path), path)
                return meta, _arrays(npz, meta, path)
    except ModelFileError:
        raise
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: a folder, not a model file") from exc
    except PermissionError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    except Exception as exc:  # zipfile, zlib, struct, numpy: a damaged file fails many ways
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


def _json_params(model) -> dict:
    params = model.get_params()
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None  # a generator object: only fit would use it
    params["hidden_layer_sizes"] = model._hidden_sizes()
    return params


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


def _description(entry, path) -> dict:
    if entry.dtype.kind != "U" or entry.shape != ():
        raise ModelFileError(f"{path}: the {META} entry is not a JSON text")
    try:
        meta = json.loads(str(entry))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the model description is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a gpubp model file")
    version = meta.get("version")
    if version != VERSION:
        raise ModelFileError(
            f"{path}: written in format version {version!r}; this gpubp reads version "
            f"{VERSION}. Load it with the gpubp that wrote it."
        )
    if meta.get("kind") not in KINDS:
        raise ModelFileError(f"{path}: unknown kind of model {meta.get('kind')!r}")
    net = meta.get("network")
    sizes = net.get("layer_sizes") if isinstance(net, dict) else None
    if not (
        isinstance(sizes, list)
        and len(sizes) >= 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)
        and count_parameters(sizes) <= MAX_PARAMETERS
    ):
        raise ModelFileError(f"{path}: invalid layer_sizes {sizes!r}")
    if not isinstance(meta.get("record", {}), dict):
        raise ModelFileError(f"{path}: its training record is not a JSON object")
    return meta


def _read(npz, name, path):
    """One array of the archive, its .npy header checked against the member's size first,
    so a header that claims more data than the file holds allocates nothing."""
    info = npz.zip.getinfo(f"{name}.npy")
    with npz.zip.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            raise ModelFileError(f"{path}: {name} has an unknown .npy version {version}")
        shape, _, dtype = read_header(f)
        size = f.tell() + dtype.itemsize * int(np.prod(shape, dtype=object))
    if dtype.hasobject or size != info.file_size or info.file_size > MAX_MEMBER_BYTES:
        raise ModelFileError(
            f"{path}: {name} declares shape {shape} of {dtype}, which does not match its "
            f"{info.file_size} bytes"
        )
    return npz[name]


def _arrays(npz, meta, path) -> dict:
    """Every array the description lists, checked for name, shape and dtype."""
    net = meta["network"]
    sizes, dtype = net["layer_sizes"], np.dtype(net.get("dtype", "float32")).str
    R = net.get("n_networks")
    if R is not None and (not isinstance(R, int) or isinstance(R, bool) or R < 1):
        raise ModelFileError(f"{path}: invalid n_networks {R!r}")
    lead = [] if R is None else [R]
    expected = {}
    for l, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        expected[f"W_{l}"], expected[f"b_{l}"] = ([*lead, m, n], dtype), ([*lead, n], dtype)
    declared = meta.get("arrays")
    if not isinstance(declared, dict):
        raise ModelFileError(f"{path}: the description lists no arrays")
    names = set(npz.files) - {META}
    if names != set(declared):
        raise ModelFileError(
            f"{path}: the file holds arrays {sorted(names)}, its description lists "
            f"{sorted(declared)}"
        )
    missing = set(expected) - names
    if missing:
        raise ModelFileError(f"{path}: weights {sorted(missing)} are missing")
    arrays = {}
    for name in sorted(names):
        want = declared[name]
        if name in expected and [want.get("shape"), want.get("dtype")] != list(expected[name]):
            raise ModelFileError(
                f"{path}: {name} is described as {want}, the architecture needs "
                f"shape {expected[name][0]} and dtype {expected[name][1]}"
            )
        a = _read(npz, name, path)
        if list(a.shape) != want.get("shape") or a.dtype.str != want.get("dtype"):
            raise ModelFileError(
                f"{path}: {name} has shape {list(a.shape)} and dtype {a.dtype.str}, the "
                f"description says {want}"
            )
        if name in expected and not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: {name} holds NaN or infinite values")
        arrays[name] = a
    return arrays


def _build(meta, arrays, backend):
    net = meta["network"]
    sizes = net["layer_sizes"]
    weights = [(arrays[f"W_{l}"], arrays[f"b_{l}"]) for l in range(1, len(sizes))]
    if meta["kind"] == "MLP":
        model = MLP(
            sizes,
            net["activation"],
            net["output"],
            net["loss"],
            net["weight_decay"],
            net["dtype"],
            backend=backend,
            n_networks=net.get("n_networks"),
        )
        model.set_weights(weights)
        return model
    model: BaseMLP = KINDS[meta["kind"]](**{**meta["params"], "backend": backend})
    model._validate_params()
    fitted = _check_fitted(meta, arrays)
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


FITTED_TYPES = {
    "n_features_in_": int,
    "n_outputs_": int,
    "n_layers_": int,
    "out_activation_": str,
    "backend_": str,
    "n_iter_": int,
    "t_": int,
    "loss_": (float, int),
    "loss_curve_": list,
    "best_loss_": (float, int, type(None)),
    "validation_scores_": (list, type(None)),
    "best_validation_score_": (float, int, type(None)),
    "validation_loss_curve_": (list, type(None)),
    "no_improvement_count": int,
    "stop_reason_": str,
}
OUT_ACTIVATION = {"identity": "identity", "softmax": "softmax", "logistic": "sigmoid"}


def _check_fitted(meta, arrays) -> dict:
    """The fitted attributes, checked for type and against the architecture."""
    fitted, net, params = dict(meta["fitted"]), meta["network"], meta["params"]
    sizes = net["layer_sizes"]
    for key, value in fitted.items():
        kinds = FITTED_TYPES.get(key)
        if kinds is None or not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"fitted attribute {key}={value!r} is not of the right kind")
        if isinstance(value, list) and not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"fitted attribute {key} must be a list of numbers")
    expected = {"n_features_in_": sizes[0], "n_outputs_": sizes[-1], "n_layers_": len(sizes)}
    for key, value in expected.items():
        if fitted.get(key) != value:
            raise ValueError(f"{key}={fitted.get(key)!r} does not match layer_sizes {sizes}")
    if OUT_ACTIVATION.get(fitted.get("out_activation_")) != net["output"]:
        raise ValueError(f"out_activation_ does not match the output {net['output']!r}")
    if list(params.get("hidden_layer_sizes", [])) != sizes[1:-1]:
        raise ValueError("hidden_layer_sizes does not match layer_sizes")
    if meta["kind"] == "MLPClassifier":
        n_classes, label_type = len(arrays.get("classes", ())), meta.get("label_type")
        K = sizes[-1]
        consistent = {
            "binary": n_classes == 2 and K == 1 and net["output"] == "sigmoid",
            "multiclass": n_classes == K > 2 and net["output"] == "softmax",
            "multilabel-indicator": n_classes == K and net["output"] == "sigmoid",
        }
        if not consistent.get(label_type, False):
            raise ValueError(f"{n_classes} classes of type {label_type!r} do not fit {K} outputs")
    return fitted


def _number(value):
    return None if value is None else float(value)
