"""``gpubp train``: standardise, split, fit, report, and write the model and its loss
curve."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .. import __version__
from ..checkpoint import newest
from ..estimators import MLPClassifier, MLPRegressor
from ..inputs.sources import SelectedRows
from ..persist import describe, save
from .data import dataset
from .options import LOSS_CURVE, MODEL, PARTIAL_MODEL, CommandError


def run(args) -> int:
    new = [_new_folder(path) for path in (args.out, args.checkpoint) if path is not None]
    try:
        _output_folder(args.out)
        _may_write_model(args)
        with contextlib.ExitStack() as cleanup:
            return _train_with(args, cleanup)
    except BaseException:  # a run that failed or was refused leaves no new empty folder
        for folder in new:
            _remove_if_empty(folder)
        raise


def _train_with(args, cleanup) -> int:
    from sklearn.preprocessing import StandardScaler

    X, y, classify, name, test, features = dataset(args, cleanup)
    if test is None:
        X, X_test, y, y_test = _split(X, y, classify, args.seed)
    else:
        X_test, y_test = test
    scaler = _scaler(X, StandardScaler())
    y_mean, y_scale = (None, None) if classify else (y.mean(axis=0), y.std(axis=0) or 1.0)
    n_train = len(X)
    rank, ranks, X, y = _my_shard(args, X, y)
    Estimator = MLPClassifier if classify else MLPRegressor
    model = Estimator(
        hidden_layer_sizes=args.hidden,
        activation=args.activation,
        solver=args.solver,
        alpha=args.alpha,
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        tol=args.tol,
        n_iter_no_change=args.n_iter_no_change,
        early_stopping=args.early_stopping,
        validation_fraction=args.validation_fraction,
        random_state=args.seed,
        verbose=not args.quiet and rank == 0,
        backend=args.backend,
        dtype=args.dtype,
        distributed=args.distributed,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        penalty=args.penalty,
        w0=args.w0,
        init=args.init,
    )
    before = args.checkpoint and newest(args.checkpoint)
    start = time.perf_counter()
    with warnings.catch_warnings():  # both are reported below, in the command's words
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", message="training interrupted by the user")
        model.fit(_standardized(X, scaler), y if classify else (y - y_mean) / y_scale)
    seconds, earlier = time.perf_counter() - start, ""
    after = args.checkpoint and newest(args.checkpoint)
    if after:  # the run's time, over every process that trained it
        seconds = after[1]
        if after == before:
            earlier = " (when it trained; it was finished, nothing trained now)"
    fold_standardization(model, scaler.mean_, scaler.scale_, y_mean, y_scale)
    if rank != 0:
        return 0  # rank 0 reports and writes the files
    score = model.score(X_test, y_test)
    if features is not None:
        model.feature_names_in_ = np.asarray(features, dtype=object)
    interrupted = model.stop_reason_ == "interrupted"
    model_path = os.path.join(args.out, PARTIAL_MODEL if interrupted else MODEL)
    record = {
        "data": name,
        "target": args.target,
        "task": "classification" if classify else "regression",
        "n_train": n_train,
        "n_test": len(X_test),
        "score_name": "accuracy" if classify else "R^2",
        "test_score": float(score),
        "iterations": int(model.n_iter_),
        "stop_reason": model.stop_reason_,
        "seconds": round(seconds, 3),
        "checkpoint": None if args.checkpoint is None else os.path.abspath(args.checkpoint),
        "backend": model.backend_,
        "ranks": ranks,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpubp": __version__,
    }
    save(model, model_path, record=record)
    unit = "iterations" if args.solver == "lbfgs" else "epochs"
    print(f"data      : {name}, {n_train} training and {len(X_test)} test cases")
    print(f"backend   : {model.backend_}")
    print(f"time      : {seconds:.2f} s for {model.n_iter_} {unit}{earlier}")
    print(f"test {record['score_name']} : {score:.4f}")
    print(f"model     : {model_path}")
    print(f"stopped   : {_stop_words(model, args)}")
    if interrupted:
        kept = os.path.join(args.out, MODEL)
        left = f"{kept} is left as it was" if os.path.exists(kept) else f"no {kept} was written"
        print(
            f"gpubp train: interrupted after {model.n_iter_} {unit}; the partial model is in "
            f"{model_path}, {left}",
            file=sys.stderr,
        )
        return 130
    curve = os.path.join(args.out, LOSS_CURVE)
    if getattr(model, "loss_curve_", None):
        _plot_loss_curve(model, name, curve)
        print(f"loss curve: {curve}")
    elif os.path.exists(curve):  # from an earlier run: it would describe another model
        os.remove(curve)
        print(f"loss curve: none for lbfgs (removed the earlier {curve})")
    return 0


def _stop_words(model, args) -> str:
    """Why training stopped, in the command's words."""
    reason = model.stop_reason_
    watched = "validation score" if args.early_stopping else "training loss"
    return {
        "max_iter": f"--epochs {args.epochs} reached before converging (raise --epochs"
        + (", with the same --checkpoint to go on from this run)" if args.checkpoint else ")"),
        "no_improvement": f"the {watched} improved by less than --tol {model.tol} for "
        f"--n-iter-no-change {model.n_iter_no_change} epochs",
        "interrupted": "interrupted (Ctrl-C)",
        "converged": "lbfgs converged",
        "not_converged": f"lbfgs did not converge in {args.epochs} iterations (raise --epochs)",
    }.get(reason, reason)


def _split(X, y, classify, seed):
    """(X_train, X_test, y_train, y_test): a stratified 75/25 split by index, each part in
    file order, whether the table was read whole or in chunks (then each part a
    SelectedRows of the file): the same rows train alike."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(X)), test_size=0.25, random_state=seed, stratify=y if classify else None
    )
    train, test = np.sort(train), np.sort(test)
    if isinstance(X, SelectedRows):
        return X.subset(train), X.subset(test), y[train], y[test]
    return X[train], X[test], y[train], y[test]


def _scaler(X, scaler):
    """``scaler`` fitted to X: whole, or a chunk of rows at a time."""
    if not isinstance(X, SelectedRows):
        return scaler.fit(X)
    for start in range(0, len(X), X.block_rows):
        scaler.partial_fit(X[start : start + X.block_rows])
    return scaler


def _standardized(X, scaler):
    """X standardised by ``scaler``: at once, or as each chunk is read."""
    if not isinstance(X, SelectedRows):
        return scaler.transform(X)
    return X.subset(slice(None), lambda block: (block - scaler.mean_) / scaler.scale_)


def _new_folder(path) -> str | None:
    """The outermost folder of ``path`` that does not exist yet (None: it all does)."""
    path, new = os.path.abspath(path), None
    while not os.path.exists(path):
        new, path = path, os.path.dirname(path)
    return new


def _remove_if_empty(folder) -> None:
    """Remove ``folder`` (None: nothing) if no file lies anywhere under it."""
    if folder is None or not os.path.isdir(folder):
        return
    if not any(files for _, _, files in os.walk(folder)):
        shutil.rmtree(folder, ignore_errors=True)


def _may_write_model(args) -> None:
    """CommandError if --out holds a model that this run did not write (the run of its
    --checkpoint, going on or finished), unless --force."""
    path = os.path.join(args.out, MODEL)
    if args.force or not os.path.exists(path):
        return
    try:
        record = describe(path).get("record") or {}
    except Exception:  # noqa: BLE001 - a damaged or foreign file: another run's too
        record = {}
    ours = args.checkpoint is not None and record.get("checkpoint") == os.path.abspath(
        args.checkpoint
    )
    if not ours:
        when = f" (trained {record['date']} on {record.get('data')})" if "date" in record else ""
        raise CommandError(f"{path} exists{when}: give --force to replace it, or another --out")


def _output_folder(path) -> None:
    """Make sure the folder ``--out`` exists and takes files, before any training."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"--out {path} is a file; give a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create the folder --out {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CommandError(f"cannot write in the folder --out {path}: permission denied")


def _my_shard(args, X, y):
    """(rank, number of ranks, rows of X and y this rank trains on): all of them without
    --distributed."""
    if not args.distributed:
        return 0, 1, X, y
    from ..backend import get_backend
    from ..distributed import communicator, shard

    comm = communicator(args.distributed, get_backend(args.backend).name)
    if comm is None:
        return 0, 1, X, y
    part = shard(len(X), comm.rank, comm.size)
    mine = X.subset(part) if isinstance(X, SelectedRows) else X[part]
    return comm.rank, comm.size, mine, y[part]


def fold_standardization(model, mean, scale, y_mean=None, y_scale=None) -> None:
    """Make ``model``, trained on (x - mean) / scale, take raw x (and give raw y).

    The first layer is affine, so A = ((x - mean) / scale) W + b equals
    x (W / scale) + (b - (mean / scale) W); an identity output trained on
    (y - y_mean) / y_scale gives raw y with W y_scale and b y_scale + y_mean.
    The saved model then needs no scaler.
    """
    net = model.get_network()
    weights = [(W.astype(np.float64), b.astype(np.float64)) for W, b in net.get_weights()]
    W, b = weights[0]
    weights[0] = (W / scale[:, None], b - (mean / scale) @ W)
    if y_mean is not None:
        W, b = weights[-1]
        weights[-1] = (W * y_scale, b * y_scale + y_mean)
    net.set_weights(weights)  # rounded to the network's dtype


def _plot_loss_curve(model, name, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import plot_loss_curves

    fig, ax = plt.subplots(figsize=(6, 4))
    plot_loss_curves(model, ax, title=f"gpubp on {name} ({model.backend_})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
