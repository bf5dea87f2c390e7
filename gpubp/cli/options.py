"""The command line of ``gpubp``: its commands, their options and the checks of their
values (argparse types), and the names of the files ``train`` writes."""

from __future__ import annotations

import argparse
import importlib

from ..backend import BACKENDS
from ..checkpoint import cadence
from ..errors import PREEMPTED, InputError
from ..estimators import ACTIVATIONS, STOCHASTIC_SOLVERS
from ..network import DTYPES, INITS, PENALTIES

DATASETS = ("digits", "diabetes", "mnist1d")
MODEL = "model.safetensors"
PARTIAL_MODEL = "model.interrupted.safetensors"  # an interrupted run's model: never over MODEL
LOSS_CURVE = "loss_curve.png"
OUT = "gpubp-run"  # train's folder unless --out names one


class CommandError(Exception):
    """A problem to report in one line."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line on stderr (status 2), as the command's are."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(name):
    """The module of command ``name`` (imported when it runs: ``gpubp info`` needs no
    plotting or data readers)."""
    return importlib.import_module(f"{__package__}.{name}")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="gpubp", description="Backpropagation (ESL 11.4) on the GPU or the CPU.")
    commands = top.add_subparsers(dest="command", required=True)

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
        "file (read whole when its numbers take at most a quarter of the memory free, else "
        "a chunk at a time; default digits)",
    )
    train.add_argument("--target", help="the column to predict (required for a data file)")
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
        "--early-stopping",
        action="store_true",
        help="hold out --validation-fraction of the training cases and stop when their score "
        "stops improving (the weights of the best epoch are kept)",
    )
    train.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.1,
        help="the share held out by --early-stopping (default 0.1)",
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
        default=OUT,
        help=f"folder for {MODEL} and {LOSS_CURVE} (default {OUT}); an interrupted run "
        f"writes {PARTIAL_MODEL}",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help=f"replace a {MODEL} in --out that this run (its --checkpoint) did not write",
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
    train.set_defaults(run=lambda args: _command("train").run(args))

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
    predict.set_defaults(run=lambda args: _command("predict").run(args))

    export = commands.add_parser(
        "export",
        help="write a model as ONNX, for ONNX Runtime (needs the onnx extra)",
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
    export.set_defaults(run=lambda args: _command("export").run(args))

    info = commands.add_parser(
        "info",
        help="describe a model file, or (without one) versions, backend, GPU and BLAS",
    )
    info.add_argument("model", nargs="?", help="a model file written by gpubp train or gpubp.save")
    info.set_defaults(run=lambda args: _command("info").run(args))
    return top


def _csv_options(command) -> None:
    command.add_argument(
        "--drop",
        type=_names,
        default=(),
        metavar="COLUMNS",
        help="columns to leave out, comma-separated (IDs, text, anything not to learn from)",
    )
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


def _names(text):
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names like id or id,name: {text!r}")
    return names


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1: {text!r}")
    return value


def _batch_size(text):
    return "auto" if text == "auto" else _positive_int(text)
