"""ONNX export through skl2onnx (the optional extra ``gpubp[onnx]``).

gpubp's estimators are registered with skl2onnx under the shape calculators and
converters it has for scikit-learn's MLP, which convert the estimator's
``to_sklearn()`` twin; so ``skl2onnx.to_onnx`` also converts a pipeline that ends in
a gpubp estimator. What skl2onnx's MLP converter gets wrong for scikit-learn's own
MLP is mended here: the predictions of a regressor with K > 1 outputs (it flattens
them to (N*K, 1): sklearn-onnx issue 474), the labels and probabilities of a
multi-label classifier (see ``convert_classifier``), and the exp output of
``loss="poisson"``, which it does not know (an Exp node after its identity output).
"""

from __future__ import annotations

import copy
import os
from types import SimpleNamespace

import numpy as np

from .errors import InputError
from .estimators import MLPClassifier, MLPClassifierCV, MLPRegressor, MLPRegressorCV
from .file_formats import write_atomically

CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "output_class_labels": [False, True],
    "nocl": [True, False],
}
INT32 = np.iinfo(np.int32)


def _skl2onnx():
    try:
        import skl2onnx
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs skl2onnx ({exc}); pip install skl2onnx onnxruntime (the onnx extra)"
        ) from exc
    return skl2onnx


def register() -> None:
    """Register gpubp's four estimators with skl2onnx (again is harmless)."""
    update = _skl2onnx().update_registered_converter
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.multilayer_perceptron import (
        convert_sklearn_mlp_classifier,
        convert_sklearn_mlp_regressor,
    )

    def classifier_shapes(operator):
        calculate_linear_classifier_output_shapes(operator)
        if _multilabel(operator.raw_operator):
            N = operator.inputs[0].get_first_dimension()
            operator.outputs[0].set_type(Int64TensorType([N, len(operator.raw_operator.classes_)]))

    def regressor_shapes(operator):
        calculate_linear_regressor_output_shapes(operator)
        out = operator.outputs[0]
        out.set_type(type(out.type)([out.type.shape[0], operator.raw_operator.n_outputs_]))

    def convert_classifier(scope, operator, container):
        from skl2onnx.common._apply_operation import apply_cast
        from skl2onnx.proto import onnx_proto

        sk = _sklearn(operator.raw_operator)
        if not _multilabel(sk):
            convert_sklearn_mlp_classifier(scope, _AsSklearn(operator, sk), container)
            return
        # skl2onnx writes multi-label labels with ai.onnx.ml's Binarizer, which ONNX Runtime
        # lacks for double, and takes two labels for binary, writing [1 - F, F]: F is the
        # last K columns, and the labels F > 0.5 (as LabelBinarizer thresholds them).
        label, proba = _variable(scope, "binarized"), _variable(scope, "label_probabilities")
        convert_sklearn_mlp_classifier(scope, _AsSklearn(operator, sk, [label, proba]), container)
        F = _drop_producers(container, label.full_name, 2)
        K = len(sk.classes_)
        _last_columns(scope, container, proba.full_name, operator.outputs[1].full_name, K)
        half = scope.get_unique_variable_name("half")
        container.add_initializer(half, _proto_dtype(operator), [], [0.5])
        above = scope.get_unique_variable_name("above_half")
        container.add_node(
            "Greater", [F, half], above, name=scope.get_unique_operator_name("Greater")
        )
        apply_cast(
            scope, above, operator.outputs[0].full_name, container, to=onnx_proto.TensorProto.INT64
        )

    def convert_regressor(scope, operator, container):
        from skl2onnx.common._apply_operation import apply_reshape

        sk = _sklearn(operator.raw_operator)
        log_link = sk.out_activation_ == "exp"
        if log_link:  # skl2onnx's MLP converter has no exp: T from it, then an Exp node
            sk = copy.copy(sk)
            sk.out_activation_ = "identity"
        flat = _variable(scope, "flattened_predictions")
        convert_sklearn_mlp_regressor(scope, _AsSklearn(operator, sk, [flat]), container)
        predictions = flat.full_name
        if log_link:
            predictions = scope.get_unique_variable_name("exp_predictions")
            name = scope.get_unique_operator_name("Exp")
            container.add_node("Exp", [flat.full_name], predictions, name=name)
        apply_reshape(
            scope,
            predictions,
            operator.outputs[0].full_name,
            container,
            desired_shape=(-1, sk.n_outputs_),
        )

    for kind in (MLPClassifier, MLPClassifierCV):
        update(
            kind,
            f"Gpubp{kind.__name__}",
            classifier_shapes,
            convert_classifier,
            options=CLASSIFIER_OPTIONS,
        )
    for kind in (MLPRegressor, MLPRegressorCV):
        update(kind, f"Gpubp{kind.__name__}", regressor_shapes, convert_regressor)


def export_onnx(model, path=None, *, zipmap: bool = False, target_opset=None):
    """An ONNX model (``onnx.ModelProto``) of a fitted gpubp estimator, or of a scikit-learn
    ``Pipeline`` that ends in one; written to ``path`` as well when given.

    The graph takes one input ``X``, (N, n_features) in the model's dtype, and gives
    ``variable``, (N, K) predictions, for a regressor; ``label`` (N,) (for multi-label
    (N, K) 0/1) and ``probabilities`` (N, n_classes) for a classifier; with
    ``zipmap=True``, skl2onnx's ``output_label`` and ``output_probability``, a list of
    {class: probability} maps.

    Parameters
    ----------
    model : MLPClassifier, MLPRegressor, their CV forms, or a Pipeline ending in one
        The fitted model.
    path : str or os.PathLike, default=None
        Where to write the ONNX file too.
    zipmap : bool, default=False
        Probabilities as skl2onnx's list of {class: probability} maps.
    target_opset : int, default=None
        The ONNX opset; None is skl2onnx's choice.

    Returns
    -------
    onnx.ModelProto
        The ONNX graph.
    """
    skl2onnx = _skl2onnx()
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if not isinstance(final, (MLPClassifier, MLPRegressor)):
        raise InputError(
            "export_onnx takes a fitted gpubp MLPClassifier or MLPRegressor (or their CV "
            f"forms), or a Pipeline ending in one; not {type(final).__name__}"
        )
    if not hasattr(model, "n_features_in_"):
        raise InputError(f"this {type(model).__name__} is not fitted yet; call fit first")
    register()
    tensor = DoubleTensorType if np.dtype(final.dtype) == np.float64 else FloatTensorType
    options = {id(final): {"zipmap": zipmap}} if isinstance(final, MLPClassifier) else None
    onx = skl2onnx.convert_sklearn(
        model,
        initial_types=[("X", tensor([None, int(model.n_features_in_)]))],
        options=options,
        target_opset=target_opset,
    )
    if path is not None:
        write_atomically(os.fspath(path), lambda f: f.write(onx.SerializeToString()))
    return onx


def _sklearn(est):
    """scikit-learn's MLP for ``est``, refused where ONNX labels could not match it."""
    sk = est.to_sklearn()
    classes = getattr(sk, "classes_", None)
    if classes is not None and not _multilabel(sk) and classes.dtype.kind in "iuf":
        # skl2onnx writes numeric labels as int32 and returns them as int64.
        exact = np.all(np.mod(classes, 1) == 0) if classes.dtype.kind == "f" else True
        if not exact or classes.min() < INT32.min or classes.max() > INT32.max:
            raise InputError(
                f"ONNX labels are 32-bit integers or text; classes {classes[:5].tolist()} are "
                "not: fit on them as text (y.astype(str)) or as class numbers"
            )
    return sk


def _multilabel(est) -> bool:
    binarizer = getattr(est, "_label_binarizer", None)
    return binarizer is not None and binarizer.y_type_ == "multilabel-indicator"


class _AsSklearn:
    """The operator as skl2onnx's converter for scikit-learn's MLP reads it: the model
    as scikit-learn's, and optionally other outputs."""

    def __init__(self, operator, sk, outputs=None):
        self._operator = operator
        self.raw_operator = sk
        self.outputs = operator.outputs if outputs is None else outputs
        self.output_full_names = [v.full_name for v in self.outputs]

    def __getattr__(self, name):
        return getattr(self._operator, name)


def _proto_dtype(operator):
    """The element type skl2onnx's MLP converters compute in: double for double input."""
    from skl2onnx.common.data_types import guess_proto_type
    from skl2onnx.proto import onnx_proto

    double = guess_proto_type(operator.inputs[0].type) == onnx_proto.TensorProto.DOUBLE
    return onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT


def _drop_producers(container, name, depth):
    """Remove the chain of ``depth`` one-input nodes that ends in ``name``; return the
    name that fed it."""
    for _ in range(depth):
        node = next((n for n in container.nodes if list(n.output) == [name]), None)
        if node is None:
            raise RuntimeError(f"skl2onnx's MLP graph has changed: no node makes {name!r}")
        container.nodes.remove(node)
        name = node.input[0]
    return name


def _variable(scope, name):
    return SimpleNamespace(full_name=scope.get_unique_variable_name(name))


def _last_columns(scope, container, source, target, n):
    """``target = source[:, -n:]``."""
    from skl2onnx.common._apply_operation import apply_slice

    apply_slice(scope, source, target, container, starts=[-n], ends=[2**62], axes=[1])
