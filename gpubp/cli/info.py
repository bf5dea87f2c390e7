"""``gpubp info``: what a model file holds, or (without one) this installation."""

from __future__ import annotations

from ..config import show_config
from ..file_formats import container
from ..network import count_parameters
from ..persist import describe
from ..tables import some


def run(args) -> int:
    if args.model is None:
        show_config()
        return 0
    info = describe(args.model)
    net = info["network"]
    print(f"model     : {args.model}")
    if info["format"] == "skops":
        print("format    : skops (a scikit-learn Pipeline, loaded without pickle)")
        steps = ", ".join(f"{name} ({kind})" for name, kind in info["steps"])
        print(f"steps     : {steps}")
    else:
        print(f"format    : {info['format']} version {info['version']} ({container(args.model)})")
        print(f"kind      : {info['kind']}")
    if net is None:
        print("layers    : none (the pipeline does not end in a fitted gpubp estimator)")
        return 0
    sizes = net["layer_sizes"]
    print(
        f"layers    : {' -> '.join(map(str, sizes))} ({net['activation']} hidden units, "
        f"{net['output']} output, {net['loss']} loss), {net['dtype']}, "
        f"{count_parameters(sizes):,} parameters"
    )
    if info["classes"] is not None:
        print(f"classes   : {some(info['classes'], 10)} ({len(info['classes'])})")
    if info["feature_names"] is not None:
        print(f"features  : {some(info['feature_names'], 10)} ({len(info['feature_names'])})")
    elif info["format"] == "skops":
        print("features  : unnamed (columns are taken in order)")
    else:
        print(f"features  : {sizes[0]}, unnamed (columns are taken in order)")
    fitted = info.get("fitted") or {}
    if fitted:
        print(
            f"fitted    : {fitted.get('n_iter_')} iterations on {fitted.get('backend_')}, "
            f"final loss {fitted.get('loss_'):.6g}"
            + (f", stopped: {fitted['stop_reason_']}" if fitted.get("stop_reason_") else "")
        )
    record = info.get("record")
    if record:
        print("training record:")
        for key, value in record.items():
            print(f"  {key:<11} : {f'{value:.4g}' if isinstance(value, float) else value}")
    return 0
