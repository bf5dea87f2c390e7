"""``gpubp export``: a model file as an ONNX graph (``gpubp.onnx_export``)."""

from __future__ import annotations

import os

from ..persist import load
from .options import CommandError


def run(args) -> int:
    try:
        from ..onnx_export import export_onnx
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    if os.path.exists(args.onnx) and os.path.realpath(args.onnx) == os.path.realpath(args.model):
        raise CommandError(f"{args.onnx} is the model being read; give another file")
    model = load(args.model, backend="numpy")
    if not hasattr(model, "n_features_in_"):
        raise CommandError(f"{args.model} holds a bare network; export needs an estimator")
    try:
        onx = export_onnx(model, args.onnx, zipmap=args.zipmap)
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    inputs = ", ".join(f"{v.name} {_shape(v)}" for v in onx.graph.input)
    outputs = ", ".join(f"{v.name} {_shape(v)}" for v in onx.graph.output)
    opset = {o.domain: o.version for o in onx.opset_import}.get("")
    print(f"onnx      : {args.onnx} (ONNX opset {opset})")
    print(f"inputs    : {inputs}")
    print(f"outputs   : {outputs}")
    return 0


def _shape(value) -> str:
    """An ONNX value's element type and shape, e.g. float32 [N, 64]."""
    from onnx import helper

    if not value.type.HasField("tensor_type"):
        return "(a sequence of maps)"
    tensor = value.type.tensor_type
    dims = [str(d.dim_value) if d.HasField("dim_value") else "N" for d in tensor.shape.dim]
    return f"{helper.tensor_dtype_to_np_dtype(tensor.elem_type)} [{', '.join(dims)}]"
