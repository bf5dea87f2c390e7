"""Makes the references that tests/test_reference.py holds today's code to.

    python tests/reference/make_reference.py [FOLDER]

Run with the code whose results are the reference: it was run with commit ba310e1, from
before the estimator's input path and training plan were rewritten, as

    git worktree add /tmp/before ba310e1
    cd /tmp && PYTHONPATH=/tmp/before python ~-/tests/reference/make_reference.py ~-/tests/reference

It writes, on the NumPy backend with its reference formulas (``GPUBP_NUMBA=0``):

- ``fits.npz``: what each scenario's fit ends with (weights, curves, scores), for the
  scenarios of tests/checkpoint_run.py and a few more (L-BFGS, full-batch descent,
  weight elimination, multi-label targets, partial_fit, warm_start, both CV estimators);
- ``estimators.pkl`` and ``models/NAME.safetensors``: fitted estimators pickled and saved
  (``gpubp.save``), whose predictions, and whose next ``partial_fit`` epoch after
  unpickling, ``fits.npz`` holds under ``pickled/NAME``;
- ``checkpoints/NAME/``: the checkpoint folder of a fit stopped part way (Ctrl-C inside
  an epoch for one network and an ``n_init`` stack; a crash after a checkpoint for a
  CV estimator), which a fit with the same settings resumes to the weights in
  ``fits.npz``.

Into FOLDER instead of tests/reference: fits made by other code, to compare bit for bit
with these on the machine that made them.
"""

import os
import shutil
import signal
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.update(GPUBP_BACKEND="numpy", GPUBP_NUMBA="0")

import numpy as np  # noqa: E402
from checkpoint_run import COMMON, SCENARIOS  # noqa: E402
from checkpoint_run import problem as scenario_problem  # noqa: E402
from mpi_train import at_step  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402

import gpubp  # noqa: E402

SMALL = dict(hidden_layer_sizes=(6,))  # the references stay small (a few KB a fit)
MORE = {
    "gd_full_batch": dict(solver="gd", learning_rate_init=0.5),
    "lbfgs": dict(solver="lbfgs", max_iter=15),
    "lbfgs_stack": dict(solver="lbfgs", max_iter=10, n_init=2, ensemble="average"),
    "elimination_esl_regressor": dict(
        solver="sgd",
        learning_rate_init=0.01,
        penalty="weight_elimination",
        w0=0.5,
        alpha=0.01,
        init="esl",
        regressor=True,
    ),
    "bagging_regressor_early": dict(
        solver="adam", n_init=2, ensemble="bagging", early_stopping=True, regressor=True
    ),
    "buffered_streamed_early": dict(
        solver="adam",
        learning_rate_init=0.01,
        shuffle="buffered",
        streamed=True,
        early_stopping=True,
    ),
    "multilabel": dict(solver="adam", learning_rate_init=0.01, multilabel=True),
    "binary_early": dict(  # two classes, one output: early stopping's split is stratified
        solver="adam", learning_rate_init=0.01, early_stopping=True, binary=True
    ),
    "partial_fit": dict(solver="sgd", learning_rate_init=0.05, partial=3),
    "warm_start": dict(solver="adam", learning_rate_init=0.01, warm=True),
    "classifier_cv_rates": dict(
        solver="adam",
        cv=2,
        alphas=[1e-3, 1.0],
        learning_rate_inits=[0.01, 0.03],
        n_init=2,
        ensemble="average",
        max_iter=5,
        cross_validated=True,
    ),
    "regressor_cv": dict(
        solver="sgd",
        cv=3,
        alphas=[1e-4, 0.1],
        max_iter=6,
        cross_validated=True,
        regressor=True,
        learning_rate_init=0.01,
    ),
}
# the fits stopped part way: (scenario, settings, how it stops, at which optimiser step)
STOPPED = {
    "one": ("adam_weighted", dict(checkpoint_every=1), "ctrl-c", 25),
    "stack": ("sgd_stack_early", dict(checkpoint_every=1), "ctrl-c", 40),
    "cv": ("sgd_cv", dict(checkpoint_every=1), "crash", 30),
}


class Crash(Exception):
    pass


def problem(name, folder):
    """(estimator, X, y, sample_weight, how to fit) of a scenario, small."""
    settings = dict(SCENARIOS.get(name) or MORE[name])
    if name in SCENARIOS:
        model, X, y, w = scenario_problem(name, folder)
        return model.set_params(**SMALL), X, y, w, {}
    extra = {
        k: settings.pop(k) for k in ("multilabel", "binary", "partial", "warm") if k in settings
    }
    regressor = settings.pop("regressor", False)
    cross_validated = settings.pop("cross_validated", False)
    streamed = settings.pop("streamed", False)
    kind = {
        (False, False): gpubp.MLPClassifier,
        (False, True): gpubp.MLPClassifierCV,
        (True, False): gpubp.MLPRegressor,
        (True, True): gpubp.MLPRegressorCV,
    }[regressor, cross_validated]
    if regressor:
        X, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
    else:
        X, y = load_digits(return_X_y=True)
        X, y = X[:600] / 16, y[:600]
        if extra.get("multilabel"):
            y = np.column_stack([y % 2, y > 4, y == 0]).astype(int)
        if extra.get("binary"):
            y = (y > 6).astype(int)
    X = X.astype(np.float32)
    if streamed:
        path = Path(folder) / f"{name}.X.npy"
        np.save(path, X)
        X = np.load(path, mmap_mode="r")
        settings["streaming"] = True
    return kind(**dict(COMMON, **settings, **SMALL)), X, y, None, extra


def fit(model, X, y, w, extra):
    if extra.get("partial"):
        classes = np.unique(y)
        for _ in range(extra["partial"]):
            model.partial_fit(X, y, sample_weight=w, classes=classes)
        return model
    model.fit(X, y, sample_weight=w)
    if extra.get("warm"):
        model.set_params(warm_start=True, max_iter=4).fit(X, y, sample_weight=w)
    return model


def outcome(model) -> dict:
    """What a fit ends with, as today's code ends it."""
    out = {
        "coefs": np.concatenate([W.ravel() for W in model.coefs_]),
        "intercepts": np.concatenate([b.ravel() for b in model.intercepts_]),
        "n_iter": np.array(model.n_iter_),
        "stop_reason": np.array(model.stop_reason_),
    }
    for key in ("loss_curve_", "validation_scores_", "validation_loss_curve_", "init_losses_"):
        if getattr(model, key, None) is not None:
            out[key.rstrip("_")] = np.array(getattr(model, key), dtype=np.float64)
    for key in ("loss_", "best_loss_", "best_validation_score_", "t_", "best_init_", "alpha_"):
        if getattr(model, key, None) is not None:
            out[key.rstrip("_")] = np.array(getattr(model, key))
    if hasattr(model, "cv_results_"):
        out["cv_scores"] = np.array(model.cv_results_["mean_test_score"])
    if hasattr(model, "oob_score_"):
        out["oob"] = np.array([model.oob_score_, model.bootstrap_seed_])
        oob = getattr(model, "oob_decision_function_", None)
        if oob is None:
            oob = model.oob_prediction_
        out["oob_outputs"] = np.nan_to_num(np.asarray(oob, dtype=np.float32), nan=-1.0)
    return out


def stop_part_way(name, folder):
    """The checkpoint folder of scenario STOPPED[name], stopped part way."""
    scenario, settings, how, at = STOPPED[name]
    model, X, y, w, extra = problem(scenario, folder)
    target = folder / "checkpoints" / name
    shutil.rmtree(target, ignore_errors=True)
    model.set_params(checkpoint=str(target), **settings)

    def act():
        if how == "crash":
            raise Crash
        signal.raise_signal(signal.SIGINT)

    undo = []
    at_step(
        at,
        act,
        lambda kind, attr, value: (
            undo.append((kind, attr, getattr(kind, attr))) or setattr(kind, attr, value)
        ),
    )
    try:
        fit(model, X, y, w, extra)
    except Crash:
        pass
    finally:
        for kind, attr, value in reversed(undo):
            setattr(kind, attr, value)
    for run in {p.parent for p in target.rglob("checkpoint-*.npz")}:
        for older in sorted(run.glob("checkpoint-*.npz"))[:-1]:
            older.unlink()  # the newest is the one a fit resumes from


KEPT = {  # fitted estimators kept as pickles and model files: scenario, partial_fit goes on
    "classifier": ("adam_weighted", True),
    "stack": ("sgd_stack_stops", True),
    "regressor_cv": ("regressor_cv", False),
}


def keep_fitted(folder, results) -> None:
    """Pickle and save the KEPT estimators; their predictions (and the weights after one
    more partial_fit epoch of the unpickled estimator) into ``results``."""
    import pickle

    kept = {}
    (folder / "models").mkdir(exist_ok=True)
    for name, (scenario, goes_on) in KEPT.items():
        model, X, y, w, extra = problem(scenario, folder)
        fit(model, X, y, w, extra)
        kept[name] = model
        gpubp.save(model, folder / "models" / f"{name}.safetensors")
        results[f"pickled/{name}/predict"] = np.asarray(model.predict(X[:50]))
        if goes_on:
            again = pickle.loads(pickle.dumps(model))
            again.partial_fit(X, y)
            results[f"pickled/{name}/partial_fit"] = np.concatenate(
                [W.ravel() for W in again.coefs_]
            )
    (folder / "estimators.pkl").write_bytes(pickle.dumps(kept))


def main():
    warnings.simplefilter("ignore")
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in [*SCENARIOS, *MORE]:
        model, X, y, w, extra = problem(name, folder)
        for key, value in outcome(fit(model, X, y, w, extra)).items():
            results[f"{name}/{key}"] = value
    keep_fitted(folder, results)
    for stale in folder.glob("*.X.npy"):
        stale.unlink()
    np.savez_compressed(folder / "fits.npz", **results)
    for name in STOPPED:
        stop_part_way(name, folder)
    for stale in folder.glob("*.X.npy"):
        stale.unlink()


if __name__ == "__main__":
    main()
