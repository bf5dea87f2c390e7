"""How closely the deployed forms of a model predict as gpubp does: scikit-learn's MLP
(``to_sklearn``) and ONNX Runtime (``export_onnx``), for every activation and output.

Classifiers on digits (pixels / 16), regressors on diabetes; 30 epochs of Adam (lbfgs
for the regressors), float32 and float64. For classifiers the largest difference of
``predict_proba`` and the share of equal labels; for regressors the largest difference
of ``predict`` over the largest prediction. Needs ``gpubp[onnx]``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
TASKS = ("multiclass", "binary", "multilabel", "regression")


def _data(task):
    import numpy as np
    from sklearn.datasets import load_diabetes, load_digits

    if task == "regression":
        X, y = load_diabetes(return_X_y=True)
        return X.astype(np.float32), np.c_[y, y / 2 - 50]
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    Y = {
        "multiclass": np.array([f"class {k}" for k in range(10)])[y],
        "binary": y > 4,
        "multilabel": np.c_[y > 4, y % 2, y % 3 == 0],
    }[task]
    return X, Y


def measure(dtypes) -> list[dict]:
    import numpy as np
    import onnxruntime as ort

    import gpubp

    rows = []
    for dtype in dtypes:
        for task in TASKS:
            X, Y = _data(task)
            for activation in ACTIVATIONS:
                params = dict(activation=activation, random_state=0, dtype=dtype)
                if task == "regression":
                    est = gpubp.MLPRegressor(
                        hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200, **params
                    )
                else:
                    est = gpubp.MLPClassifier((32,), max_iter=30, **params)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X, Y)
                sk = est.to_sklearn()
                session = ort.InferenceSession(
                    gpubp.export_onnx(est).SerializeToString(),
                    providers=["CPUExecutionProvider"],
                )
                out = session.run(None, {"X": X.astype(dtype)})
                row = {"dtype": dtype, "task": task, "activation": activation}
                if task == "regression":
                    ours = est.predict(X)
                    scale = np.abs(ours).max()
                    row["sklearn"] = float(np.abs(sk.predict(X) - ours).max() / scale)
                    row["onnx"] = float(np.abs(out[0] - ours).max() / scale)
                else:
                    P, labels = est.predict_proba(X), np.asarray(est.predict(X))
                    row["sklearn"] = float(np.abs(sk.predict_proba(X) - P).max())
                    row["onnx"] = float(np.abs(out[1] - P).max())
                    same = np.asarray(sk.predict(X)) == labels, out[0] == labels
                    row["sklearn_labels"], row["onnx_labels"] = (
                        float(np.mean(s if s.ndim == 1 else s.all(axis=1))) for s in same
                    )
                rows.append(row)
    return rows


def markdown(rows) -> str:
    lines = [
        "Largest difference from gpubp's own predictions (probabilities; regression: over "
        "the largest prediction), and the share of equal labels.",
        "",
        "| dtype | task | activation | scikit-learn | labels | ONNX Runtime | labels |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        labels = [f"{r[k]:.4f}" if k in r else "-" for k in ("sklearn_labels", "onnx_labels")]
        lines.append(
            f"| {r['dtype']} | {r['task']} | {r['activation']} | {r['sklearn']:.1e} | "
            f"{labels[0]} | {r['onnx']:.1e} | {labels[1]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.deploy_agreement", description=__doc__)
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    from .measure import write_results

    rows = measure([d for d in args.dtypes.split(",") if d])
    write_results(args.out, "deploy-agreement", rows, markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
