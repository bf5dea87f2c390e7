"""The checks a model file passes before anything is built from it (``gpubp.persist``):
its JSON description, every array against it (name, shape, dtype, SHA-256, finite), and
the fitted attributes (their kinds, and their agreement with the architecture).
"""

from __future__ import annotations

import json

import numpy as np

from .errors import ModelFileError
from .file_formats import sha256
from .network import count_parameters

FORMAT = "gpubp-model"
VERSIONS = {"npz": 1, "safetensors": 2}  # the format version each container holds
KIND_NAMES = ("MLP", "MLPClassifier", "MLPRegressor")  # gpubp.persist.KINDS by name
MAX_PARAMETERS = 2**34  # a description asking for more is not a model we wrote
LISTED = ("classes", "feature_names")  # arrays of an .npz, lists in a version 2 description
LISTED_KINDS = "biufU"  # booleans, integers, floats, text


def network_description(net) -> dict:
    """What a description says of a network: its architecture, penalty and dtype (JSON)."""
    return {
        "layer_sizes": list(net.layer_sizes),
        "activation": net.activation,
        "output": net.output,
        "loss": net.loss,
        "weight_decay": np.asarray(net.weight_decay).tolist(),
        "penalty": net.penalty,
        "w0": net.w0,
        "dtype": net.dtype.name,
        "n_networks": net.n_networks,
    }


def checked_description(text, path, kind) -> dict:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the model description is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a gpubp model file")
    version = meta.get("version")
    if version != VERSIONS[kind]:
        raise ModelFileError(
            f"{path}: {'an .npz' if kind == 'npz' else 'a safetensors'} model file of format "
            f"version {version!r}; this gpubp reads version {VERSIONS[kind]} from such files. "
            "Load it with the gpubp that wrote it."
        )
    if meta.get("kind") not in KIND_NAMES:
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


def checked_arrays(stored, meta, path) -> dict:
    """Every array the description lists, checked for name, shape, dtype and (version 2)
    SHA-256; for version 2, the classes and feature names its description lists."""
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
    if not isinstance(declared, dict) or not all(isinstance(v, dict) for v in declared.values()):
        raise ModelFileError(f"{path}: the description lists no arrays")
    names = stored.names()
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
        a = stored.read(name)
        if list(a.shape) != want.get("shape") or a.dtype.str != want.get("dtype"):
            raise ModelFileError(
                f"{path}: {name} has shape {list(a.shape)} and dtype {a.dtype.str}, the "
                f"description says {want}"
            )
        arrays[name] = a
    if stored.version >= 2:
        for name, digest in sha256(arrays).items():
            if digest != declared[name].get("sha256"):
                raise ModelFileError(
                    f"{path}: {name} is damaged (its SHA-256 is not the one saved)"
                )
        for name in LISTED:
            if name in meta:
                arrays[name] = listed_values(meta[name], name, path)
    for name in expected:
        if not np.all(np.isfinite(arrays[name])):
            raise ModelFileError(f"{path}: {name} holds NaN or infinite values")
    return arrays


def listed_values(entry, name, path) -> np.ndarray:
    """The classes or feature names of a version 2 description, as the array saved."""
    values = entry.get("values") if isinstance(entry, dict) else None
    kind = entry.get("dtype") if isinstance(entry, dict) else None
    if not (
        isinstance(values, list)
        and all(isinstance(v, (str, int, float)) for v in values)
        and isinstance(kind, str)
        and kind[1:2] in tuple(LISTED_KINDS)
    ):
        raise ModelFileError(f"{path}: its {name} are not a list of numbers or text")
    return np.array(values, dtype=kind)


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
    "oob_score_": (float, int),
    "bootstrap_seed_": int,
}
OUT_ACTIVATION = {"identity": "identity", "softmax": "softmax", "logistic": "sigmoid", "exp": "exp"}


def checked_fitted(meta, arrays) -> dict:
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
