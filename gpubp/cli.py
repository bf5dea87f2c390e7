"""The ``gpubp`` command: ``train``, ``predict``, ``export`` and ``info``.

A thin face over the estimators and save/load. Errors are one line on stderr
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import io
import itertools
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import __version__
from .backend import BACKENDS
from .checkpoint import cadence
from .config import show_config
from .distributed import DistributedError
from .errors import (
    PREEMPTED,
    BackendError,
    CheckpointError,
    DivergenceError,
    InputError,
    ModelFileError,
    Preempted,
)
from .estimators import ACTIVATIONS, STOCHASTIC_SOLVERS, MLPClassifier, MLPRegressor
from .file_formats import container, write_atomically
from .inputs.sources import SelectedRows
from .network import DTYPES, INITS, PENALTIES, count_parameters
from .persist import describe, load, load_with_description, save
from .tables import column, numbers, read_csv, read_in_chunks, some, table_chunks, target

DATASETS = ("digits", "diabetes", "mnist1d")
MODEL = "model.safetensors"
PARTIAL_MODEL = "model.interrupted.safetensors"  # an interrupted run's model: never over MODEL
LOSS_CURVE = "loss_curve.png"


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
        CheckpointError,
    ) as exc:
        if isinstance(exc, BrokenPipeError):
            return _reader_left()
        print(f"gpubp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Preempted as exc:
        print(f"gpubp {args.command}: {exc}; no model written", file=sys.stderr)
        return PREEMPTED
    except KeyboardInterrupt:
        saved = "; no model written" if args.command == "train" else ""
        print(f"gpubp {args.command}: interrupted{saved}", file=sys.stderr)
        return 130


def _reader_left() -> int:
    """The reader of our output went away (``| head``): stop quietly, as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail
    return 141


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
        help=f"{', '.join(DATASETS)}, or a CSV file with a header, a Parquet file or a .npy "
        "file (read a chunk at a time, as is a CSV file over 256 MiB; default digits)",
    )
    train.add_argument("--target", help="the CSV column to predict (required for a CSV)")
    train.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="for a CSV: auto treats text, or integers with at most 20 values, as classes",
    )
    _csv_options(train)
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
    train.add_argument(
        "--alpha", type=float, default=1e-4, help="the penalty's weight (default 0.0001)"
    )
    train.add_argument(
        "--penalty",
        choices=PENALTIES,
        default="l2",
        help="l2 (weight decay, the default) or weight_elimination (ESL 11.5.2)",
    )
    train.add_argument(
        "--w0", type=_positive_float, default=1.0, help="weight elimination's scale (default 1)"
    )
    train.add_argument(
        "--init",
        choices=INITS,
        default="glorot",
        help="starting weights: glorot (scikit-learn's, the default) or esl (uniform +-0.7)",
    )
    train.add_argument(
        "--tol", type=float, default=1e-4, help="the improvement that counts (default 0.0001)"
    )
    train.add_argument(
        "--n-iter-no-change",
        type=_positive_int,
        default=10,
        help="stop after this many epochs without improvement (default 10)",
    )
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--seed", type=int, default=0, help="random_state and split seed")
    train.add_argument(
        "--out",
        default=".",
        help=f"folder for {MODEL} and {LOSS_CURVE}; an interrupted run writes {PARTIAL_MODEL}",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="write checkpoints to DIR and, run again, go on from the newest one there (bit "
        f"for bit); SIGTERM or SIGUSR1 writes one and exits with status {PREEMPTED}",
    )
    train.add_argument(
        "--checkpoint-every",
        type=_every,
        default="auto",
        help="N epochs, or seconds such as 30s (at the next step); default auto: at the end "
        "of an epoch, at most once a minute",
    )
    train.add_argument(
        "--distributed",
        choices=("mpi", "nccl", "auto"),
        help="data-parallel over the ranks of mpiexec -n R (rank 0 reports)",
    )
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help="predict the rows of a CSV file")
    predict.add_argument("model", help="a model file written by gpubp train or gpubp.save")
    predict.add_argument(
        "csv",
        help="a CSV file with a header and one row per case, a Parquet file or a .npy file "
        "(read and predicted a chunk at a time, as is a CSV file over 256 MiB)",
    )
    predict.add_argument(
        "--target",
        help="a column of the CSV to leave out (the training target is left out by itself)",
    )
    _csv_options(predict)
    predict.add_argument("--proba", action="store_true", help="class probabilities")
    predict.add_argument("--backend", choices=BACKENDS, default="auto")
    predict.add_argument("--out", help="write the predictions here instead of stdout")
    predict.set_defaults(run=_predict)

    export = commands.add_parser(
        "export",
        help="write a model as ONNX, for ONNX Runtime (needs gpubp[onnx])",
        description="Convert a classifier or regressor to an ONNX graph through skl2onnx: "
        "input X (N, features) in the model's dtype; outputs label and probabilities, or "
        "variable (N, K) for a regressor.",
    )
    export.add_argument("model", help="a model file written by gpubp train or gpubp.save")
    export.add_argument("onnx", help="the ONNX file to write, e.g. model.onnx")
    export.add_argument(
        "--zipmap",
        action="store_true",
        help="probabilities as a list of {class: probability} maps (skl2onnx's default)",
    )
    export.set_defaults(run=_export)

    info = commands.add_parser(
        "info",
        help="describe a model file, or (without one) versions, backend, GPU and BLAS",
    )
    info.add_argument("model", nargs="?", help="a model file written by gpubp train or gpubp.save")
    info.set_defaults(run=_info)
    return parser


def _csv_options(command) -> None:
    command.add_argument(
        "--sep", help="the CSV's separator (default: read from its header: , ; tab or |)"
    )
    command.add_argument(
        "--encoding", default="utf-8", help="the CSV's text encoding (default utf-8)"
    )


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


def _every(text):
    try:
        cadence(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("checkpoint_every=", "")) from None
    return text


def _batch_size(text):
    return "auto" if text == "auto" else _positive_int(text)


# -- train -------------------------------------------------------------------------------


def _train(args) -> int:
    _output_folder(args.out)
    with contextlib.ExitStack() as cleanup:
        return _train_with(args, cleanup)


def _train_with(args, cleanup) -> int:
    from sklearn.preprocessing import StandardScaler

    X, y, classify, name, test, features = _dataset(args, cleanup)
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
    start = time.perf_counter()
    with warnings.catch_warnings():  # both are reported below, in the command's words
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", message="training interrupted by the user")
        model.fit(_standardized(X, scaler), y if classify else (y - y_mean) / y_scale)
    seconds = time.perf_counter() - start
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
        "backend": model.backend_,
        "ranks": ranks,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpubp": __version__,
    }
    save(model, model_path, record=record)
    unit = "iterations" if args.solver == "lbfgs" else "epochs"
    print(f"data      : {name}, {n_train} training and {len(X_test)} test cases")
    print(f"backend   : {model.backend_}")
    print(f"time      : {seconds:.2f} s for {model.n_iter_} {unit}")
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
    return {
        "max_iter": f"--epochs {args.epochs} reached before converging (raise --epochs)",
        "no_improvement": f"the training loss improved by less than --tol {model.tol} for "
        f"--n-iter-no-change {model.n_iter_no_change} epochs",
        "interrupted": "interrupted (Ctrl-C)",
        "converged": "lbfgs converged",
        "not_converged": f"lbfgs did not converge in {args.epochs} iterations (raise --epochs)",
    }.get(reason, reason)


def _split(X, y, classify, seed):
    """(X_train, X_test, y_train, y_test): a stratified 75/25 split; rows of a table read
    in chunks are split by index (each part a SelectedRows of the file, in file order)."""
    from sklearn.model_selection import train_test_split

    if not isinstance(X, SelectedRows):
        return train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y if classify else None
        )
    train, test = train_test_split(
        np.arange(len(X)), test_size=0.25, random_state=seed, stratify=y if classify else None
    )
    train, test = np.sort(train), np.sort(test)
    return X.subset(train), X.subset(test), y[train], y[test]


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
    from .backend import get_backend
    from .distributed import communicator, shard

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


def _dataset(args, cleanup):
    """(X, y, is_classification, name, (X_test, y_test) or None, feature names or None).

    A file read in chunks gives X as a SelectedRows of a float64 copy of its features
    in a temporary folder in --out (removed by ``cleanup``)."""
    if args.data in DATASETS and args.target:
        raise CommandError(
            f"--target is for a CSV file; the {args.data} data set has its own target"
        )
    if args.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X, y, True, "digits", None, None
    if args.data == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return X, y, False, "diabetes", None, None
    if args.data == "mnist1d":
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as exc:
            raise CommandError("the mnist1d data set needs `pip install mnist1d`") from exc
        data = make_dataset(get_dataset_args())
        test = (data["x_test"], data["y_test"])
        return data["x"], data["y"], True, "mnist1d", test, None
    if not os.path.exists(args.data):
        raise CommandError(
            f"--data {args.data!r} is neither one of {', '.join(DATASETS)} nor an existing file"
        )
    if read_in_chunks(args.data):
        return _chunked_dataset(args, cleanup)
    table = read_csv(args.data, args.sep, args.encoding)
    if not args.target:
        raise CommandError(
            f"--target is required for a CSV file; its columns are {some(table.columns, 10)}"
        )
    y, classify = target(column(table, args.target, args.data), args.task, args.data)
    features = [c for c in table.columns if c != args.target]
    X = numbers(table[features], args.data)
    return X, y, classify, os.path.basename(args.data), None, features


def _chunked_dataset(args, cleanup):
    """``_dataset`` for a file read a chunk at a time: one pass writes its features to a
    float64 file in a temporary folder in --out and keeps the target column (the
    classes and the scaling are then found from those, with the CSV rules)."""
    import pandas as pd

    chunks = table_chunks(args.data, args.sep, args.encoding)
    first = next(chunks)
    if not args.target:
        raise CommandError(
            f"--target is required for a data file; its columns are {some(first.columns, 10)}"
        )
    column(first, args.target, args.data)
    features = [c for c in first.columns if c != args.target]
    folder = tempfile.mkdtemp(prefix=".gpubp-data-", dir=args.out)
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "features.f64")
    targets, n = [], 0
    with open(path, "wb") as f:
        for table in itertools.chain([first], chunks):
            if list(table.columns) != list(first.columns):
                raise CommandError(f"{args.data}: the columns change at row {table.index[0]}")
            f.write(numbers(table[features], args.data).tobytes())
            targets.append(table[args.target])
            n += len(table)
    y, classify = target(pd.concat(targets), args.task, args.data)
    shape = (n, len(features))
    if n * len(features):
        X = np.memmap(path, dtype=np.float64, mode="r", shape=shape)
    else:  # no features: a file of no bytes cannot be mapped
        X = np.empty(shape)
    return SelectedRows(X, np.arange(n)), y, classify, os.path.basename(args.data), None, features


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
    if args.out:
        for other, what in ((args.model, "the model"), (args.csv, "the CSV")):
            if os.path.exists(other) and os.path.realpath(args.out) == os.path.realpath(other):
                raise CommandError(f"--out {args.out} is {what} being read; give another file")
    model, description = load_with_description(args.model, backend=args.backend)
    if not hasattr(model, "n_features_in_"):
        raise CommandError(f"{args.model} holds a bare network; predict needs an estimator")
    if args.proba and not isinstance(model, MLPClassifier):
        raise CommandError("--proba needs a classifier")
    trained_on = (description["record"] or {}).get("target")
    if read_in_chunks(args.csv):
        tables = table_chunks(args.csv, args.sep, args.encoding)
    else:
        tables = iter([read_csv(args.csv, args.sep, args.encoding)])
    first = next(tables)
    if args.target:
        column(first, args.target, args.csv)

    def values(table, note):
        X = _features(model, table, {args.target, trained_on}, args, note)
        if args.proba:
            return model.predict_proba(X)
        return np.asarray(model.predict(X)).reshape(len(X), -1)

    head = values(first, True)
    if args.proba:
        columns = [f"p_{c}" for c in model.classes_]
    elif head.shape[1] == 1:
        columns = ["prediction"]
    else:
        columns = [f"prediction_{k}" for k in range(head.shape[1])]

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(head.tolist())
        for table in tables:
            writer.writerows(values(table, False).tolist())

    def write_bytes(f):
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        write(text)
        text.flush()
        text.detach()

    if args.out:
        write_atomically(args.out, write_bytes)
    else:
        write(sys.stdout)
        sys.stdout.flush()
    return 0


def _features(model, table, leave_out, args, note=True):
    """The model's input columns of the CSV: by name when the model knows its features'
    names (reordered; columns it does not know are left out with a note, when ``note``),
    else by position after leaving out ``--target``."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        keep = [c for c in table.columns if c not in leave_out]
        if len(keep) != model.n_features_in_:
            raise CommandError(
                f"the model takes {model.n_features_in_} features, {args.csv} has {len(keep)} "
                "columns" + ("" if args.target else "; name a column to leave out with --target")
            )
        return numbers(table[keep], args.csv)
    import pandas as pd

    names = [str(c) for c in names]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise CommandError(
            f"{args.csv} lacks {len(missing)} of the model's {len(names)} columns: "
            f"{some(missing, 10)}"
        )
    unknown = [c for c in table.columns if c not in names and c not in leave_out]
    if unknown and note:
        print(
            f"gpubp predict: note: leaving out columns the model was not trained on: "
            f"{some(unknown, 10)}",
            file=sys.stderr,
        )
    return pd.DataFrame(numbers(table[names], args.csv), columns=names)


# -- export ----------------------------------------------------------------------------


def _export(args) -> int:
    try:
        from .onnx_export import export_onnx
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


# -- info --------------------------------------------------------------------------------


def _info(args) -> int:
    if args.model is None:
        show_config()
        return 0
    info = describe(args.model)
    net = info["network"]
    sizes = net["layer_sizes"]
    print(f"model     : {args.model}")
    print(f"format    : {info['format']} version {info['version']} ({container(args.model)})")
    print(f"kind      : {info['kind']}")
    print(
        f"layers    : {' -> '.join(map(str, sizes))} ({net['activation']} hidden units, "
        f"{net['output']} output, {net['loss']} loss), {net['dtype']}, "
        f"{count_parameters(sizes):,} parameters"
    )
    if info["classes"] is not None:
        print(f"classes   : {some(info['classes'], 10)} ({len(info['classes'])})")
    if info["feature_names"] is not None:
        print(f"features  : {some(info['feature_names'], 10)} ({len(info['feature_names'])})")
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


if __name__ == "__main__":
    sys.exit(main())
