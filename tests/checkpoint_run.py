"""Run by tests/test_checkpoint.py in processes of their own, which it kills.

python tests/checkpoint_run.py OUTDIR EVERY SCENARIO [SCENARIO ...]

Fits each scenario with ``checkpoint=OUTDIR/SCENARIO`` (EVERY "none": no checkpoint)
and writes what the fit ended with to OUTDIR/SCENARIO.npz. Prints "ready" once the
imports are done, and the scenario's name before each fit.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes, load_digits

import gpubp

COMMON = dict(hidden_layer_sizes=(12,), random_state=0, batch_size=40, max_iter=12, tol=0.0)
SCENARIOS = {
    "sgd_nesterov": dict(solver="sgd", momentum=0.9, learning_rate_init=0.05),
    "momentum_invscaling": dict(
        solver="sgd", nesterovs_momentum=False, learning_rate="invscaling", learning_rate_init=0.3
    ),
    "plain_sgd_unshuffled": dict(solver="sgd", momentum=0.0, shuffle=False, learning_rate_init=0.1),
    "adam_weighted": dict(solver="adam", learning_rate_init=0.01, weighted=True),
    "adaptive_early": dict(
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.2,
        early_stopping=True,
        n_iter_no_change=2,
        tol=1e-3,
        max_iter=20,
    ),
    "adam_early_regressor": dict(
        solver="adam", learning_rate_init=0.02, early_stopping=True, regressor=True
    ),
    "adam_streamed": dict(solver="adam", learning_rate_init=0.01, streamed=True),
    "adam_stack": dict(solver="adam", learning_rate_init=0.01, n_init=3),
    "sgd_cv": dict(solver="sgd", cv=3, alphas=[1e-4, 0.1], max_iter=8, cross_validated=True),
    "sgd_stack_stops": dict(  # networks 1 and 2 stop after epoch 4, network 0 after 9
        solver="sgd", n_init=3, tol=0.03, n_iter_no_change=2, max_iter=20, ensemble="average"
    ),
    "adam_bagging_streamed": dict(  # bootstrap counts times sample weights, X read in chunks
        solver="adam",
        learning_rate_init=0.01,
        n_init=3,
        ensemble="bagging",
        weighted=True,
        streamed=True,
    ),
    "sgd_stack_early": dict(
        solver="sgd", n_init=2, early_stopping=True, n_iter_no_change=2, tol=1e-3, max_iter=15
    ),
}


def problem(name, folder: Path):
    """(estimator, X, y, sample_weight) of a scenario; X as a memmap when streamed."""
    settings = dict(COMMON, **SCENARIOS[name])
    regressor = settings.pop("regressor", False)
    weighted = settings.pop("weighted", False)
    streamed = settings.pop("streamed", False)
    cross_validated = settings.pop("cross_validated", False)
    if regressor:
        X, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
        Estimator = gpubp.MLPRegressor
    else:
        X, y = load_digits(return_X_y=True)
        X, y = X[:600] / 16, y[:600]
        Estimator = gpubp.MLPClassifierCV if cross_validated else gpubp.MLPClassifier
    X = X.astype(np.float32)
    if streamed:
        path = folder / f"{name}.X.npy"
        if not path.exists():
            np.save(path, X)
        X = np.load(path, mmap_mode="r")
        settings["streaming"] = True
    w = np.random.default_rng(1).uniform(0, 2, len(y)) if weighted else None
    return Estimator(**settings), X, y, w


def outcome(model) -> dict:
    """Everything a resumed fit must end with as the uninterrupted one does."""
    history = model._history
    out = {
        "coefs": np.concatenate([W.ravel() for W in model.coefs_]),
        "intercepts": np.concatenate([b.ravel() for b in model.intercepts_]),
        "loss_curve": np.array(model.loss_curve_),
        "n_iter": np.array(model.n_iter_),
        "t": np.array(model.t_),
        "stop_reason": np.array(model.stop_reason_),
        "no_improvement": np.array(history.no_improvement_count),
    }
    if getattr(model, "validation_scores_", None) is not None:
        out["validation_scores"] = np.array(model.validation_scores_)
        out["best_validation_score"] = np.array(model.best_validation_score_)
    if getattr(model, "best_loss_", None) is not None:
        out["best_loss"] = np.array(model.best_loss_)
    if hasattr(model, "cv_results_"):
        out["cv_scores"] = np.array(model.cv_results_["mean_test_score"])
    if hasattr(model, "init_losses_"):
        out["init_losses"] = np.array(model.init_losses_)
    if hasattr(model, "oob_score_"):
        out["oob"] = np.array([model.oob_score_, model.bootstrap_seed_])
        out["oob_outputs"] = np.nan_to_num(model.oob_decision_function_, nan=-1.0)  # comparable
    for key, value in model._optimizer.state().items():
        if key in ("velocity", "m", "v", "learning_rate", "t") and value is not None:
            out[f"optimizer_{key}"] = (
                gpubp.backend.to_numpy(value) if hasattr(value, "shape") else np.array(value)
            )
    return out


def main(out: Path, every: str, names) -> None:
    warnings.simplefilter("ignore")
    print("ready", flush=True)
    for name in names:
        print(name, flush=True)
        model, X, y, w = problem(name, out)
        if every != "none":
            model.set_params(checkpoint=str(out / name), checkpoint_every=every)
        model.fit(X, y, sample_weight=w)
        np.savez(out / f"{name}.npz", **outcome(model))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
