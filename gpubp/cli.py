"""The ``gpubp`` command: ``train``, ``predict`` and ``info``.

A thin face over the estimators and save/load. Errors are one line on stderr
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .backend import BACKENDS
from .config import show_config
from .distributed import DistributedError
from .errors import BackendError, DivergenceError, ModelFileError
from .estimators import ACTIVATIONS, STOCHASTIC_SOLVERS, MLPClassifier, MLPRegressor
from .network import DTYPES
from .persist import load, save

DATASETS = ("digits", "diabetes", "mnist1d")


class CommandError(Exception):
    """A problem to report in one line."""


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (
        CommandError,
        ValueError,
        TypeError,
        OSError,
        BackendError,
        DivergenceError,
        ModelFileError,
        DistributedError,
    ) as exc:
        print(f"gpubp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gpubp {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpubp", description="Backpropagation (ESL 11.4) on the GPU or the CPU."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a network and save it",
        description="Train on a bundled data set (standardised, a stratified 75/25 split) "
        "or a CSV file; print the backend, the time and the test score; write the model "
        "and a loss-curve PNG.",
    )
    train.add_argument(
        "--data",
        default="digits",
        help=f"{', '.join(DATASETS)}, or a CSV file with a header (default digits)",
    )
    train.add_argument("--target", help="the CSV column to predict (required for a CSV)")
    train.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="for a CSV: auto treats text or a few integer values as classes",
    )
    train.add_argument(
        "--hidden",
        type=_sizes,
        default=(100,),
        help="hidden layer sizes, comma-separated (default 100)",
    )
    train.add_argument("--activation", choices=tuple(ACTIVATIONS), default="relu")
    train.add_argument("--solver", choices=("lbfgs", *STOCHASTIC_SOLVERS), default="adam")
    train.add_argument("--epochs", type=_positive_int, default=200, help="max_iter (default 200)")
    train.add_argument("--batch-size", type=_batch_size, default="auto")
    train.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="learning_rate_init (default 0.001)"
    )
    train.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty (default 0.0001)")
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--seed", type=int, default=0, help="random_state and split seed")
    train.add_argument("--out", default=".", help="folder for model.npz and loss_curve.png")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--distributed",
        choices=("mpi", "nccl", "auto"),
        help="data-parallel over the ranks of mpiexec -n R (rank 0 reports)",
    )
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help="predict the rows of a CSV file")
    predict.add_argument("model", help="a model file written by gpubp train or gpubp.save")
    predict.add_argument("csv", help="a CSV file with a header and one row per case")
    predict.add_argument("--target", help="a column of the CSV to leave out")
    predict.add_argument("--proba", action="store_true", help="class probabilities")
    predict.add_argument("--backend", choices=BACKENDS, default="auto")
    predict.add_argument("--out", help="write the predictions here instead of stdout")
    predict.set_defaults(run=_predict)

    info = commands.add_parser("info", help="versions, backend, GPU and BLAS (show_config)")
    info.set_defaults(run=lambda args: show_config() or 0)
    return parser


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 100 or 64,32: {text!r}")
    return sizes


def _positive(kind, words):
    """An argparse type: ``kind(text)`` if it is a finite number > 0."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {words}: {text!r}")
        return value

    return parse


_positive_int = _positive(int, "a positive integer")
_positive_float = _positive(float, "a positive number")


def _batch_size(text):
    return "auto" if text == "auto" else _positive_int(text)


# -- train -------------------------------------------------------------------------------


def _train(args) -> int:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y, classify, name, test = _dataset(args)
    if test is None:
        X, X_test, y, y_test = train_test_split(
            X, y, test_size=0.25, random_state=args.seed, stratify=y if classify else None
        )
    else:
        X_test, y_test = test
    scaler = StandardScaler().fit(X)
    n_train = len(X)
    rank, X, y = _my_shard(args, X, y)
    Estimator = MLPClassifier if classify else MLPRegressor
    model = Estimator(
        hidden_layer_sizes=args.hidden,
        activation=args.activation,
        solver=args.solver,
        alpha=args.alpha,
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        random_state=args.seed,
        verbose=not args.quiet,
        backend=args.backend,
        dtype=args.dtype,
    )
    y_mean, y_scale = (None, None) if classify else (y.mean(axis=0), y.std(axis=0) or 1.0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(X), y if classify else (y - y_mean) / y_scale)
    seconds = time.perf_counter() - start
    fold_standardization(model, scaler.mean_, scaler.scale_, y_mean, y_scale)
    if rank != 0:
        return 0  # rank 0 reports and writes the files
    score = model.score(X_test, y_test)
    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.npz")
    save(model, model_path)
    print(f"data      : {name}, {n_train} training and {len(X_test)} test cases")
    print(f"backend   : {model.backend_}")
    print(f"time      : {seconds:.2f} s for {model.n_iter_} iterations")
    print(f"test {'accuracy' if classify else 'R^2'} : {score:.4f}")
    print(f"model     : {model_path}")
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(f"note      : not converged after {args.epochs} epochs (--epochs raises the limit)")
    if getattr(model, "loss_curve_", None):
        curve = os.path.join(args.out, "loss_curve.png")
        _plot_loss_curve(model, name, curve)
        print(f"loss curve: {curve}")
    return 0


def _my_shard(args, X, y):
    """(rank, rows of X and y this rank trains on): all of them without --distributed."""
    if not args.distributed:
        return 0, X, y
    from .backend import get_backend
    from .distributed import communicator, shard

    comm = communicator(args.distributed, get_backend(args.backend).name)
    if comm is None:
        return 0, X, y
    part = shard(len(X), comm.rank, comm.size)
    return comm.rank, X[part], y[part]


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


def _dataset(args):
    """(X, y, is_classification, name, (X_test, y_test) or None)."""
    if args.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X, y, True, "digits", None
    if args.data == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return X, y, False, "diabetes", None
    if args.data == "mnist1d":
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as exc:
            raise CommandError("the mnist1d data set needs `pip install mnist1d`") from exc
        data = make_dataset(get_dataset_args())
        test = (data["x_test"], data["y_test"])
        return data["x"], data["y"], True, "mnist1d", test
    if not os.path.exists(args.data):
        raise CommandError(
            f"--data {args.data!r} is neither one of {', '.join(DATASETS)} nor an existing file"
        )
    header, rows = _read_csv(args.data)
    if not args.target:
        raise CommandError(f"--target is required for a CSV file; its columns are {header}")
    if args.target not in header:
        raise CommandError(f"{args.data} has no column {args.target!r}; its columns are {header}")
    t = header.index(args.target)
    features = [c for i, c in enumerate(header) if i != t]
    X = _numbers([[v for i, v in enumerate(r) if i != t] for r in rows], features, args.data)
    labels = [r[t] for r in rows]
    classify = args.task == "classification" or (args.task == "auto" and _looks_categorical(labels))
    y = (
        np.array(labels)
        if classify
        else _numbers([[v] for v in labels], [args.target], args.data)[:, 0]
    )
    if classify and all(_is_int(v) for v in labels):
        y = y.astype(np.int64)
    return X, y, classify, os.path.basename(args.data), None


def _read_csv(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise CommandError(f"{path}: expected a header line and at least one row")
    header, rows = [c.strip() for c in rows[0]], rows[1:]
    for n, r in enumerate(rows, start=2):
        if len(r) != len(header):
            raise CommandError(f"{path}, line {n}: {len(r)} fields, the header has {len(header)}")
    return header, rows


def _numbers(rows, columns, path) -> np.ndarray:
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        for n, r in enumerate(rows, start=2):
            for c, v in zip(columns, r):
                try:
                    float(v)
                except ValueError:
                    raise CommandError(
                        f"{path}, line {n}: column {c!r} holds {v!r}, not a number"
                    ) from None
        raise


def _is_int(text) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def _looks_categorical(labels) -> bool:
    """Text, or integers with at most 20 distinct values."""
    if not all(_is_int(v) for v in labels):
        try:
            [float(v) for v in labels]
        except ValueError:
            return True
        return False
    return len(set(labels)) <= 20


def _plot_loss_curve(model, name, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_loss_curves

    fig, ax = plt.subplots(figsize=(6, 4))
    plot_loss_curves(model, ax, title=f"gpubp on {name} ({model.backend_})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- predict -----------------------------------------------------------------------------


def _predict(args) -> int:
    model = load(args.model, backend=args.backend)
    if not hasattr(model, "n_features_in_"):
        raise CommandError(f"{args.model} holds a bare network; predict needs an estimator")
    header, rows = _read_csv(args.csv)
    keep = list(range(len(header)))
    if args.target:
        if args.target not in header:
            raise CommandError(
                f"{args.csv} has no column {args.target!r}; its columns are {header}"
            )
        keep.remove(header.index(args.target))
    if len(keep) != model.n_features_in_:
        raise CommandError(
            f"the model takes {model.n_features_in_} features, {args.csv} has {len(keep)} "
            "columns" + ("" if args.target else "; name a column to leave out with --target")
        )
    X = _numbers([[r[i] for i in keep] for r in rows], [header[i] for i in keep], args.csv)
    if args.proba:
        if not isinstance(model, MLPClassifier):
            raise CommandError("--proba needs a classifier")
        P = model.predict_proba(X)
        columns, values = [f"p_{c}" for c in model.classes_], P
    else:
        values = np.asarray(model.predict(X))
        values = values.reshape(len(X), -1)
        columns = (
            ["prediction"]
            if values.shape[1] == 1
            else [f"prediction_{k}" for k in range(values.shape[1])]
        )
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(values.tolist())
    finally:
        if args.out:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
