"""CPU against GPU: the same network, seed and data on NumPy and on CuPy.

    python -m benchmarks.agreement [--out DIR] [--epochs 20]

For every activation x (output, loss) pair, depths 1-3, float32 and float64:
the largest relative difference over the forward outputs F, the loss and every
gradient, each quantity's difference taken as max|gpu - cpu| / max|cpu|. Then
digits trained for --epochs epochs on both backends (same seed, same shuffles):
loss curves, final weights and test accuracy side by side. Needs CuPy and a
device; writes agreement.json and agreement.md to --out.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from .measure import write_results

GOALS = {"float32": 1e-4, "float64": 1e-10}
DEPTHS = (1, 2, 3)


def relative_difference(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want), initial=0.0)) or 1.0
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def quantities(net, X, Y) -> dict:
    """F, the loss and every gradient of ``net`` on (X, Y), as host arrays."""
    from gpubp import to_numpy

    bp = net.backprop(X, Y)
    named = {"F": bp.F, "loss": bp.loss}
    for l, (dW, db) in enumerate(bp.gradients, start=1):
        named |= {f"dW_{l}": dW, f"db_{l}": db}
    return {k: to_numpy(v) for k, v in named.items()}


def equations(N=256, p=20, hidden=32, K=5) -> list[dict]:
    import gpubp
    from gpubp.functions import ACTIVATIONS, VALID_OUTPUTS

    rng = np.random.default_rng(0)
    rows = []
    for activation in ACTIVATIONS:
        for loss, outputs in VALID_OUTPUTS.items():
            for output in outputs:
                for depth in DEPTHS:
                    sizes = [p, *[hidden] * depth, K]
                    X = rng.standard_normal((N, p))
                    Y = (
                        rng.dirichlet(np.ones(K), size=N)
                        if output == "softmax"
                        else rng.uniform(size=(N, K))
                    )
                    for dtype in GOALS:
                        kw = dict(weight_decay=0.01, dtype=dtype, seed=int(rng.integers(1 << 30)))
                        nets = [
                            gpubp.MLP(sizes, activation, output, loss, backend=b, **kw)
                            for b in ("cupy", "numpy")
                        ]
                        gpu, cpu = (quantities(n, X, Y) for n in nets)
                        diffs = {k: relative_difference(gpu[k], cpu[k]) for k in cpu}
                        worst = max(diffs, key=diffs.get)
                        rows.append(
                            dict(
                                activation=activation,
                                output=output,
                                loss=loss,
                                depth=depth,
                                dtype=dtype,
                                max_rel=diffs[worst],
                                worst=worst,
                                goal=GOALS[dtype],
                            )
                        )
    return rows


def digits_training(epochs: int) -> dict:
    """Digits, standardised, 75/25 split: one MLPClassifier per backend, float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    import gpubp

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    params = dict(
        hidden_layer_sizes=(64,),
        solver="sgd",
        momentum=0.9,
        learning_rate_init=0.05,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )
    fitted = {}
    for backend in ("numpy", "cupy"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted[backend] = gpubp.MLPClassifier(backend=backend, **params).fit(X_train, y_train)
    cpu, gpu = fitted["numpy"], fitted["cupy"]
    weights = cpu.coefs_ + cpu.intercepts_
    return {
        "params": {k: v for k, v in params.items() if k != "n_iter_no_change"},
        "loss_numpy": [float(v) for v in cpu.loss_curve_],
        "loss_cupy": [float(v) for v in gpu.loss_curve_],
        "weights_max_rel": max(
            relative_difference(g, c) for g, c in zip(gpu.coefs_ + gpu.intercepts_, weights)
        ),
        "accuracy_numpy": float(cpu.score(X_test, y_test)),
        "accuracy_cupy": float(gpu.score(X_test, y_test)),
        "predictions_differ": int(np.sum(cpu.predict(X_test) != gpu.predict(X_test))),
        "test_rows": len(y_test),
    }


def markdown(rows: list[dict], training: dict) -> str:
    lines = [
        "| activation | output, loss | "
        + " | ".join(f"{d} {k}" for d in ("float32", "float64") for k in ("depth 1-3", "worst"))
        + " |",
        "|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["activation"], r["output"], r["loss"]) for r in rows)
    for activation, output, loss in keys:
        cells = []
        for dtype in GOALS:
            mine = [
                r
                for r in rows
                if (r["activation"], r["output"], r["loss"], r["dtype"])
                == (activation, output, loss, dtype)
            ]
            worst = max(mine, key=lambda r: r["max_rel"])
            cells += [
                " / ".join(f"{r['max_rel']:.1e}" for r in mine),
                f"{worst['worst']} (depth {worst['depth']})",
            ]
        lines.append(f"| {activation} | {output}, {loss} | " + " | ".join(cells) + " |")
    for dtype, goal in GOALS.items():
        mine = [r for r in rows if r["dtype"] == dtype]
        worst = max(mine, key=lambda r: r["max_rel"])
        met = sum(r["max_rel"] <= goal for r in mine)
        lines.append(
            f"\n{dtype}: largest {worst['max_rel']:.2e} ({worst['activation']}, {worst['output']},"
            f" {worst['loss']}, depth {worst['depth']}, {worst['worst']}); goal <= {goal:g}: "
            f"{met} of {len(mine)} met."
        )
    t = training
    lines += [
        "",
        f"Digits, {len(t['loss_numpy'])} epochs, float32, {t['params']}:",
        "",
        "| epoch | loss (numpy) | loss (cupy) |",
        "|---|---|---|",
    ]
    for e, (a, b) in enumerate(zip(t["loss_numpy"], t["loss_cupy"]), start=1):
        lines.append(f"| {e} | {a:.6f} | {b:.6f} |")
    lines += [
        "",
        f"Final weights: largest relative difference {t['weights_max_rel']:.2e}. Test accuracy: "
        f"{t['accuracy_numpy']:.4f} (numpy), {t['accuracy_cupy']:.4f} (cupy); "
        f"{t['predictions_differ']} of {t['test_rows']} test predictions differ.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agreement")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    import gpubp

    try:
        gpubp.get_backend("cupy")
    except gpubp.BackendError as exc:
        print(f"benchmarks.agreement needs CuPy and a device: {exc}")
        return 2
    rows = equations()
    training = digits_training(args.epochs)
    write_results(
        args.out, "agreement", {"equations": rows, "training": training}, markdown(rows, training)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
