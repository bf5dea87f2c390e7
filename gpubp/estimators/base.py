"""What MLPClassifier and MLPRegressor share: parameters, fitting, weights.

A thin face over the network (``gpubp.network``), the loop (``gpubp.train``) and
the input side (``gpubp.inputs``): the same parameters, defaults and fitted
attributes as scikit-learn, plus ``backend``, ``dtype``, ``distributed``,
``n_init``, ``ensemble``, ``penalty``, ``w0``, ``init``, ``matmul_precision``
(``"tf32"``: the GPU's faster TF32 matrix products, see ``MLP``) and ``streaming``
("auto", True, False: X read from where it lies a chunk at a time, see
``gpubp.inputs.residency``), ``checkpoint`` (a folder: ``fit`` writes checkpoints
there and, run again, goes on from the newest bit for bit; see ``gpubp.checkpoint``)
and ``checkpoint_every`` ("auto": an epoch's end, at most once a minute; N epochs;
"30s"); ``shuffle`` also takes "full" and "buffered".
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted

from ..backend import get_backend, is_sparse, out_of_memory, to_numpy
from ..checkpoint import Run, fingerprint
from ..distributed import MODES, agree, communicator, shard
from ..errors import DeviceMemoryError, InputError, Preempted, warn_at_caller
from ..inputs.checks import (
    check_source,
    converter,
    inputs,
    named,
    sample_weights,
    validated,
)
from ..inputs.data import SHUFFLES, Data, Streamed, held_out_pieces
from ..inputs.residency import streamed_source
from ..inputs.shards import own_rows_if_replicated, replicated, shards
from ..inputs.sources import Rows, as_rows, distinct_values, target_rows
from ..network import DTYPES, INITS, MATMUL_PRECISIONS, MLP, PENALTIES
from ..optim import SGD, Adam, moved
from ..train import History, Objective, fit_lbfgs, fit_stochastic
from ..train_stack import StackHistory, fit_stack
from .bagging import OUT_OF_BAG, bagged, bootstrap_counts, one_network, out_of_bag_outputs
from .sklearn_mlp import to_sklearn
from .starts import average_outputs, choose_start, ensemble_history, history_of

# scikit-learn's activation names, and the textbook's "sigmoid" for "logistic".
ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
OUT_ACTIVATIONS = {"identity": "identity", "softmax": "softmax", "sigmoid": "logistic"}
STOCHASTIC_SOLVERS = ("sgd", "adam", "gd")
PREDICT_CHUNK_BYTES = 2**28  # predict's activations per chunk of rows, at most


NOT_IDENTITY = ("verbose", "backend", "checkpoint", "checkpoint_every")  # may change on resume


def _plain(value):
    """A parameter's value as JSON (tuples as lists; a generator by its kind)."""
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return type(value).__name__
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def finish_run(run, reasons) -> None:
    """After the loop of ``run`` (a ``gpubp.checkpoint.Run``) stopped for ``reasons`` (one,
    or a stack's list): the last checkpoint of a run that is over; a preempted run (its
    checkpoint written) raises Preempted, which leaves the process with status 75."""
    reasons = {reasons} if isinstance(reasons, str) else set(reasons)
    if "preempted" in reasons:
        raise Preempted(
            f"training preempted; its checkpoint is in {run.folder.path}: run the same fit "
            "again to go on"
        )
    if "interrupted" not in reasons:
        run.finish()


def shared_seed(comm, random_state):
    """One seed for every rank, so all draw the same weights and permutations."""
    if isinstance(random_state, (int, np.integer)):
        return random_state
    seed = int(generator(random_state).integers(2**63 - 1)) if comm.rank == 0 else None
    return comm.bcast(seed)


def host_arrays(y, sample_weight):
    """y and sample_weight as NumPy arrays: scikit-learn's metrics take nothing else."""
    return to_numpy(y), None if sample_weight is None else to_numpy(sample_weight)


def generator(random_state) -> np.random.Generator:
    """A numpy Generator from what scikit-learn accepts as random_state."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


class BaseMLP(BaseEstimator):
    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", *STOCHASTIC_SOLVERS})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean", StrOptions(set(SHUFFLES))],
        "random_state": ["random_state", np.random.Generator],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions({"auto", "numpy", "cupy"})],
        "dtype": [StrOptions(set(DTYPES))],
        "distributed": [None, StrOptions(set(MODES))],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "ensemble": [StrOptions({"best", "average", "bagging"})],
        "matmul_precision": [StrOptions(set(MATMUL_PRECISIONS))],
        "streaming": ["boolean", StrOptions({"auto"})],
        "checkpoint": [None, str, os.PathLike],
        "checkpoint_every": [str, Interval(Integral, 1, None, closed="left")],
        "penalty": [StrOptions(set(PENALTIES))],
        "w0": [Interval(Real, 0, None, closed="neither")],
        "init": [StrOptions(set(INITS))],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend="auto",
        dtype="float32",
        distributed=None,
        n_init=1,
        ensemble="best",
        matmul_precision="float32",
        streaming="auto",
        checkpoint=None,
        checkpoint_every="auto",
        penalty="l2",
        w0=1.0,
        init="glorot",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.distributed = distributed
        self.n_init = n_init
        self.ensemble = ensemble
        self.matmul_precision = matmul_precision
        self.streaming = streaming
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.penalty = penalty
        self.w0 = w0
        self.init = init

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse CSR or CSC X
        return tags

    # -- what the subclasses say ---------------------------------------------------

    def _encode_targets(self, y, incremental, labels=None):
        """(validated host targets y, (N, K) training targets in self.dtype); ``labels``,
        when given, are every rank's classes."""
        raise NotImplementedError

    def _score_sums(self, F, y, sample_weight) -> np.ndarray:
        """Sums over the cases from which the validation score follows (they add up
        over ranks)."""
        raise NotImplementedError

    def _score_from_sums(self, sums) -> float:
        raise NotImplementedError

    # -- fitting -----------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y (class labels or real targets).

        Ctrl-C stops training after the current step, with a warning saying how
        many epochs finished; the estimator keeps the weights of that step.
        """
        self._validate_params()
        with self._gpu_memory_advice():
            return self._fit(X, y, sample_weight, incremental=False)

    @contextlib.contextmanager
    def _gpu_memory_advice(self):
        """The GPU running out of memory becomes a DeviceMemoryError that says what to try."""
        try:
            yield
        except Exception as exc:
            if not out_of_memory(exc):
                raise
            raise DeviceMemoryError(
                f"the GPU ran out of memory ({type(exc).__name__}: {exc}). Try a smaller "
                f"batch_size (now {self.batch_size!r}), smaller hidden layers, predicting in "
                "smaller chunks, or backend='numpy'."
            ) from exc

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic."
            )
        if self.ensemble == "bagging":
            raise AttributeError(
                "partial_fit is not available with ensemble='bagging': bootstrap samples are "
                "drawn from all the cases that fit sees"
            )
        return True

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(n, Integral) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes}.")
        return [int(n) for n in sizes]

    def _fit(self, X, y, sample_weight, incremental):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        hidden = self._hidden_sizes()
        first_pass = not self._has_weights() or (not self.warm_start and not incremental)
        backend = get_backend(self.backend) if first_pass else self.get_network().backend
        comm = communicator(self.distributed, backend.name)
        if comm is not None and self.solver == "lbfgs":
            raise InputError("distributed training needs solver 'sgd', 'adam' or 'gd', not lbfgs")
        source = self._streamed_source(X, backend)
        if source is None:
            data, y_host = self._resident(
                X, y, sample_weight, backend, comm, first_pass, incremental
            )
        else:
            data, y_host = self._streamed(source, y, sample_weight, comm, first_pass, incremental)
        rng = generator(self.random_state if comm is None else shared_seed(comm, self.random_state))
        run = self._checkpoints(data, backend, comm, incremental, first_pass)
        if run is not None and run.start_rng() is not None:
            rng.bit_generator.state = run.start_rng()  # the same weights and split as then
        start_rng = rng.bit_generator.state
        if first_pass:
            if self.n_init > 1 and incremental and self.ensemble == "best":
                raise InputError(
                    "partial_fit cannot choose the best of n_init starts after one epoch: use "
                    "fit, or ensemble='average'"
                )
            bagged_stack = self.n_init > 1 or self.ensemble == "bagging"  # a bag of one too
            starts = self.n_init if bagged_stack else None
            self._initialize(data.n_features, hidden, self.n_outputs_, rng, backend, starts)
        if self.ensemble != "bagging":
            for stale in OUT_OF_BAG:
                self.__dict__.pop(stale, None)
        elif first_pass or not hasattr(self, "bootstrap_seed_"):
            self.bootstrap_seed_ = int(rng.integers(2**63))  # a warm refit keeps the samples
        net = self.get_network()
        net.set_penalty(self.penalty, self.w0)  # set_params may change J between warm fits
        self.backend_ = net.backend.name
        objective = Objective(self._loss_factor(self.n_outputs_), float(self.alpha))
        if net.n_networks is not None:  # n_init random starts as one stack
            if is_sparse(data.X):
                data.X = data.X.toarray()
            self._fit_starts(net, data, y_host, objective, rng, incremental, comm, run, start_rng)
        elif self.solver == "lbfgs":
            self.n_iter_, self.loss_, self.stop_reason_ = self._fit_lbfgs(net, data, objective)
        else:  # publishes its own results, also when training stops with an error
            self._fit_stochastic(
                net, data, y_host, objective, rng, incremental, comm, run, start_rng
            )
        return self

    def _checkpoints(self, data, backend, comm, incremental, first_pass):
        """The fit's ``gpubp.checkpoint.Run`` (None without ``checkpoint``): the newest
        checkpoint in the folder read, and refused if another run wrote it."""
        if self.checkpoint is None:
            return None
        if incremental:
            raise InputError(
                "checkpoint works with fit, not partial_fit: save the model between calls "
                "with gpubp.save"
            )
        if self.solver == "lbfgs":
            raise InputError("checkpoint needs solver 'sgd', 'adam' or 'gd', not lbfgs")
        identity = self._identity(data, backend, comm, {"new weights": bool(first_pass)})
        return self._run(self.checkpoint, identity, comm)

    def _identity(self, data, backend, comm, more: dict) -> dict:
        """What a checkpoint of this fit must have been written for: the estimator, its
        parameters (but NOT_IDENTITY), the shapes, classes, ranks and data, and ``more``."""
        return {
            "estimator": type(self).__name__,
            **{k: _plain(v) for k, v in self.get_params().items() if k not in NOT_IDENTITY},
            "n_features": data.n_features,
            "n_outputs": self.n_outputs_,
            "classes": _plain(getattr(self, "classes_", None)),
            "ranks": 1 if comm is None else comm.size,
            **more,
            "data": fingerprint(data, backend, comm),
        }

    def _run(self, folder, identity, comm):
        """The ``gpubp.checkpoint.Run`` in ``folder`` (rank 0 writes, every rank reads)."""
        writer = comm is None or comm.rank == 0
        return agree(comm, lambda: Run(folder, self.checkpoint_every, identity, writer))

    def _streamed_source(self, X, backend) -> Rows | None:
        """X as Rows when this fit streams it, else None (``gpubp.inputs.residency``)."""
        return streamed_source(X, backend, self.streaming, self.solver, self.dtype)

    def _resident(self, X, y, sample_weight, backend, comm, first_pass, incremental):
        """(Data on the device, host targets) from X and y checked whole."""
        y = to_numpy(y)
        reused = self._same_targets(y) if incremental and comm is None else None
        if reused is not None:  # partial_fit on the targets of the last call: encoded already
            X = inputs(self, X, backend, reset=first_pass, training=True)
            y_host, Y, y_raw = reused
            named("y", check_consistent_length, X, y_host)
        else:
            y_raw = np.array(y, copy=True)  # the caller may change y in place later
            X, y = agree(comm, lambda: inputs(self, X, backend, reset=first_pass, y=y))
            labels = self._all_labels(comm, y) if first_pass or not incremental else None
            y_host, Y = agree(
                comm, lambda: named("y", self._encode_targets, y, incremental, labels)
            )
        self.n_outputs_ = Y.shape[1]
        w_host = sample_weights(comm, sample_weight, X.shape[0], self.dtype)
        X, y_host, Y, w_host = own_rows_if_replicated(comm, backend, X, y_host, Y, w_host)
        offset, n_total = shards(comm, X.shape[0], X.shape[1], Y.shape[1])
        Y = backend.to_device(Y, dtype=np.dtype(self.dtype))
        if comm is None:
            self._last_targets = (y_raw, y_host, Y)
        w = None if w_host is None else backend.to_device(w_host)
        return Data(X, Y, w, w_host, offset, n_total), y_host

    def _streamed(self, source, y, sample_weight, comm, first_pass, incremental):
        """(Streamed data, y as Rows): X and y stay where they lie; y's classes are found
        by a pass over y, and each chunk's targets are encoded as it is read."""
        agree(comm, lambda: check_source(self, source, reset=first_pass))
        ys = target_rows(y, source.n)
        flat = ys.ndim == 2 and ys.shape[1] == 1  # a column: one target, as (n,)
        first = ys.read(0, 1)
        if flat:
            named("y", self._encode_targets, first, True)  # scikit-learn's column warning
            first = first[:, 0]
        if is_classifier(self) and first.ndim == 1:
            values = named("y", distinct_values, ys)
            labels = values if comm is None else unique_labels(*comm.allgather(values))
            named("y", self._encode_targets, labels, incremental, labels)
        elif first_pass or not incremental:
            named("y", self._encode_targets, first, incremental)

        def encode(block):
            if not len(block):  # a data-parallel batch may hold none of this rank's rows
                return np.empty((0, self.n_outputs_), dtype=self.dtype)
            block = named(
                "y",
                check_array,
                block[:, 0] if flat else block,
                ensure_2d=False,
                input_name="y",
                dtype=None if is_classifier(self) else np.float64,
            )
            return named("y", self._encode_targets, block, True)[1]

        self.n_outputs_ = encode(ys.read(0, 1)).shape[1]
        w_host = sample_weights(comm, sample_weight, source.n, self.dtype)
        data = Streamed(
            source, ys, encode, converter(self.dtype), self.n_outputs_, self.dtype, w_host=w_host
        )
        if comm is not None and replicated(
            comm, source.take, source.n, source.shape, ys.take, w_host
        ):
            data = data.with_rows(np.arange(source.n)[shard(source.n, comm.rank, comm.size)])
        data.offset, data.n_total = shards(comm, data.n, data.n_features, self.n_outputs_)
        return data, ys

    def _same_targets(self, y):
        """(y_host, Y, y) of the last fit or partial_fit where ``y`` equals its y, else
        None: a partial_fit loop over the same targets encodes them (and moves them to the
        device) once."""
        last = self.__dict__.get("_last_targets")
        if last is None or not hasattr(self, "classes_") and is_classifier(self):
            return None
        raw, y_host, Y = last
        if raw.shape != y.shape or raw.dtype != y.dtype or not np.array_equal(raw, y):
            return None
        return y_host, Y, raw

    def _all_labels(self, comm, y):
        """Every rank's class labels (data-parallel classifiers only), else None."""
        if comm is None or not is_classifier(self) or type_of_target(y).startswith("multilabel"):
            return None
        return unique_labels(*comm.allgather(unique_labels(y)))

    def _loss_factor(self, K: int) -> float:
        """scikit-learn's regression loss is the mean of half squared errors over K outputs."""
        return 1.0 if is_classifier(self) else 1.0 / (2 * K)

    def _initialize(self, p, hidden, K, rng, backend, n_networks=None):
        output = self._output(K)
        self.n_outputs_ = K
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = OUT_ACTIVATIONS[output]
        self._net = MLP(
            [p, *hidden, K],
            ACTIVATIONS[self.activation],
            output,
            dtype=self.dtype,
            backend=backend,
            seed=rng,
            n_networks=n_networks,
            matmul_precision=self.matmul_precision,
            penalty=self.penalty,
            w0=self.w0,
            init=self.init,
        )
        self.__dict__.pop("_weights", None)
        self._history = History() if n_networks is None else StackHistory(n_networks)
        self.t_ = 0
        self.n_iter_ = 0
        if self.solver in STOCHASTIC_SOLVERS and n_networks is not None:
            if self.early_stopping:
                self._history.with_validation()
        elif self.solver in STOCHASTIC_SOLVERS:
            if self.early_stopping:
                self._history.best_loss = None
                self._history.validation_scores = []
                self._history.validation_loss_curve = []
                self._history.best_validation_score = -np.inf
        if hasattr(self, "_optimizer"):
            del self._optimizer

    def _fit_stochastic(
        self, net, data, y_host, objective, rng, incremental, comm, run=None, start_rng=None
    ):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._ready_optimizer(net, incremental)
        history = self._history
        validate = None
        if self.early_stopping:
            data, validate = self._split_validation(net, data, y_host, objective, rng, comm)
        batch_size = self._batch_size(data.n_global)
        if run is not None:
            run.bind(net, self._optimizer, history, rng, start_rng, net.backend.to_device)
            if run.finished:  # this run is over: nothing to train
                self._publish_history()
                return
        try:
            fit_stochastic(
                net,
                self._optimizer,
                data,
                objective,
                history,
                batch_size=batch_size,
                rng=rng,
                **self._stopping_rule(data),
                validate=validate,
                incremental=incremental,
                verbose=self.verbose if comm is None or comm.rank == 0 else 0,
                comm=comm,
                run=run,
            )
        finally:
            self._publish_history()
            if run is not None:
                run.close()
        if run is not None:
            finish_run(run, history.stop_reason)

    def _fit_starts(
        self, net, data, y_host, objective, rng, incremental, comm=None, run=None, start_rng=None
    ):
        """Train n_init random starts as one stack; keep the best start, or all of them
        (with ``ensemble="bagging"`` each on a bootstrap sample of the training cases)."""
        history = self._history
        if not isinstance(history, StackHistory):  # a loaded ensemble: fresh counters
            history = self._history = StackHistory(net.n_networks)
            if self.early_stopping:
                history.with_validation()
        whole, validate = data, None
        if self.early_stopping and self.solver != "lbfgs":
            if incremental:
                raise ValueError("partial_fit does not support early_stopping=True")
            data, validate = self._split_validation(net, data, y_host, objective, rng, comm)
        counts = None
        if self.ensemble == "bagging":  # drawn after the split: its rows stay out of the bags
            drawn = np.random.default_rng(self.bootstrap_seed_)
            counts = bootstrap_counts(data.n_global, net.n_networks, drawn, data.offset, data.n)
            data = bagged(data, counts, net.backend, np.dtype(self.dtype))
        if self.solver == "lbfgs":  # one after another: L-BFGS's line search is per network
            for r in range(net.n_networks):
                alone = net.network(r)
                own = data if counts is None else one_network(data, r, net.backend)
                n_iter, loss, reason = self._fit_lbfgs(alone, own, objective)
                net.theta[r] = alone.theta
                history.n_iter[r], history.loss_curves[r] = n_iter, [loss]
                history.stop_reasons[r] = reason
        else:
            self._ready_optimizer(net, incremental)
            if run is not None:
                run.bind(net, self._optimizer, history, rng, start_rng, net.backend.to_device)
            if run is None or not run.finished:
                self._fit_stack(
                    net, data, objective, history, rng, validate, comm, run, incremental
                )
        self.init_losses_ = history.final_losses
        if counts is not None:
            self._score_out_of_bag(net, whole, data, counts, y_host, comm)
        if self.ensemble == "best":
            r = choose_start(history)
            self.best_init_ = r
            self._net = net.network(r)
            if self.solver != "lbfgs":
                self._optimizer = self._optimizer.network(r)
            self._history = history_of(history, r)
        self._publish_history()
        if run is not None and not run.finished:
            finish_run(run, history.stop_reasons)

    def _fit_stack(self, net, data, objective, history, rng, validate, comm, run, incremental):
        """``fit_stack`` with these parameters; the checkpoints' timer stopped after."""
        try:
            fit_stack(
                net,
                self._optimizer,
                data,
                objective,
                history,
                batch_size=self._batch_size(data.n_global),
                rng=rng,
                **self._stopping_rule(data),
                validate=validate,
                incremental=incremental,
                verbose=self.verbose if comm is None or comm.rank == 0 else 0,
                comm=comm,
                run=run,
            )
        finally:
            if run is not None:
                run.close()

    def _ready_optimizer(self, net, incremental) -> None:
        """A new optimiser for net, or for a partial_fit the last one, its state moved to
        net's backend and dtype (either may have changed since)."""
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer(net)
            return
        dtype = getattr(net.backend.xp, self.dtype)
        self._optimizer = moved(
            self._optimizer, lambda a: net.backend.to_device(a, dtype=dtype), net.backend.fused
        )

    def _fit_lbfgs(self, net, data, objective):
        """(iterations, final loss, stop reason) of L-BFGS on net with these parameters."""
        return fit_lbfgs(
            net,
            data,
            objective,
            max_iter=self.max_iter,
            max_fun=self.max_fun,
            tol=self.tol,
            verbose=bool(self.verbose),
        )

    def _stopping_rule(self, data) -> dict:
        """The epochs and stopping parameters of the stochastic loops (one net or a stack)."""
        return dict(
            max_iter=self.max_iter,
            shuffle=self._shuffle_mode(data),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
        )

    def _shuffle_mode(self, data):
        """False, "full" or "buffered": ``shuffle=True`` is a full permutation where the
        rows are cheap to reach in any order (memory, page cache, device) and buffered
        (CorgiPile: chunks in a new order, rows shuffled within a few) where X is read
        in chunks (HDF5, zarr, Dask, ...)."""
        if not self.shuffle:
            return False
        if self.shuffle in SHUFFLES:
            return self.shuffle
        return "buffered" if data.streamed and not data.X.random_access else "full"

    def _batch_size(self, n: int) -> int:
        """The minibatch size for n training cases."""
        if self.solver == "gd":
            return n
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warn_at_caller(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
            )
        return int(np.clip(self.batch_size, 1, n))

    def _new_optimizer(self, net, learning_rate_init=None):
        """The solver's optimiser for net; ``learning_rate_init`` (one per network of a
        stack) overrides the parameter."""
        xp, fused = net.backend.xp, net.backend.fused
        if learning_rate_init is None:
            learning_rate_init = self.learning_rate_init
        if self.solver == "adam":
            return Adam(
                xp,
                net.theta,
                learning_rate_init,
                self.beta_1,
                self.beta_2,
                self.epsilon,
                fused=fused,
            )
        momentum = self.momentum if self.solver == "sgd" else 0.0
        return SGD(
            xp,
            net.theta,
            learning_rate_init,
            self.learning_rate,
            momentum,
            self.nesterovs_momentum,
            self.power_t,
            fused=fused,
        )

    def _split_validation(self, net, data, y_host, objective, rng, comm):
        """Hold out validation_fraction of the cases (stratified for single-output classifiers),
        by index: the training part is ``data.with_rows``, nothing is copied.

        Data-parallel, each rank holds out part of its own rows, and the score and
        loss come from sums over all ranks, so every rank stops at the same epoch.
        Streamed data is scored a chunk at a time (one read from the device each).
        """
        streamed = isinstance(y_host, Rows)
        stratify = None
        if is_classifier(self) and self.n_outputs_ == 1:
            stratify = y_host if not streamed else y_host.take(data.source_rows(np.arange(data.n)))
        seed = int(rng.integers(2**31 - 1))
        train, val = agree(
            comm,
            lambda: train_test_split(
                np.arange(data.n),
                test_size=self.validation_fraction,
                stratify=stratify,
                random_state=seed,
            ),
        )
        n_val = len(val) if comm is None else int(comm.sum([len(val)])[0])
        if n_val < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        backend = net.backend
        xp = backend.xp
        training = data.with_rows(train)
        training.offset, training.n_total = shards(
            comm, training.n, data.n_features, self.n_outputs_
        )
        pieces = held_out_pieces(data, val, y_host, backend, self._batch_size(data.n_global))

        def validate():
            """The validation score and loss (one each per network of a stack): one read
            from the device per piece of the held-out cases."""
            R = net.n_networks or 1
            J = net.J() if objective.alpha else None
            sums = None
            for piece, y_piece in pieces():
                _, T = net.propagate(piece.X)
                F, R_i, _ = net.evaluate(T, piece.Y)
                loss_sum = xp.sum(R_i if piece.w is None else R_i * piece.w, axis=-1)
                if J is None:
                    J = xp.zeros(loss_sum.shape, dtype=F.dtype)
                packed = backend.to_host(
                    xp.concatenate([xp.reshape(a, (-1,)) for a in (F, loss_sum, J)])
                )
                F_host = packed[: -2 * R].reshape((R, *F.shape[-2:]))
                part = np.stack(
                    [
                        np.concatenate(
                            [
                                self._score_sums(F_host[r], y_piece, piece.w_host),
                                [objective.loss_factor * packed[-2 * R + r], piece.weight_sum()],
                            ]
                        )
                        for r in range(R)
                    ]
                )
                sums = part if sums is None else sums + part
            penalties = packed[-R:]
            results = []
            for r in range(R):
                network_sums = sums[r] if comm is None else comm.sum(sums[r])
                loss_sum, S = network_sums[-2], network_sums[-1]
                loss = loss_sum / S + objective.alpha / (2 * S) * float(penalties[r])
                results.append((self._score_from_sums(network_sums[:-2]), float(loss)))
            if net.n_networks is None:
                return results[0]
            return tuple(np.array(column) for column in zip(*results))

        return training, validate

    def _score_out_of_bag(self, net, whole, bagged_set, counts, y_host, comm):
        """``oob_score_`` (unweighted, as scikit-learn's bagging scores) and the out-of-bag
        outputs of this rank's rows, NaN for a row no network left out (or held out for
        early stopping): ``oob_decision_function_`` or ``oob_prediction_``."""
        rows = bagged_set.source_rows(np.arange(bagged_set.n))
        batch_size = self._batch_size(whole.n_global)
        chunk = self._chunk_rows(net)
        F_rows, y = out_of_bag_outputs(net, whole, rows, counts, y_host, batch_size, chunk)
        seen = ~np.isnan(F_rows).any(axis=1)
        sums = self._score_sums(F_rows[seen], y[seen], None)
        if comm is not None:
            sums = comm.sum(np.asarray(sums, dtype=np.float64))
            n_seen = int(comm.sum([int(seen.sum())])[0])
        else:
            n_seen = int(seen.sum())
        if n_seen == 0:
            warn_at_caller(
                "no case was out of bag for any network, so oob_score_ is NaN: use more "
                "cases or a larger n_init",
                UserWarning,
            )
        self.oob_score_ = self._score_from_sums(sums) if n_seen else float("nan")
        F = np.full((whole.n, F_rows.shape[1]), np.nan)
        F[rows] = F_rows
        if is_classifier(self):
            self.oob_decision_function_ = np.column_stack([1 - F, F]) if F.shape[1] == 1 else F
        else:
            self.oob_prediction_ = F.ravel() if F.shape[1] == 1 else F

    def _publish_history(self):
        """Copy the loop's record into scikit-learn's attribute names (host numbers only)."""
        h = self._history
        if isinstance(h, StackHistory):
            h = ensemble_history(h)
        self.n_iter_, self.t_, self.loss_ = h.n_iter, h.t, h.loss
        self.loss_curve_ = list(h.loss_curve)
        self.best_loss_ = h.best_loss
        self.validation_scores_ = None if h.validation_scores is None else list(h.validation_scores)
        self.validation_loss_curve_ = (
            None if h.validation_loss_curve is None else list(h.validation_loss_curve)
        )
        self.best_validation_score_ = h.best_validation_score
        self.stop_reason_ = h.stop_reason

    # -- the weights -------------------------------------------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """[W_1, ..., W_{L+1}] as NumPy arrays, read from the network when asked for (one
        copy to the host); assigning a list sets the network's weights."""
        return [W for W, _ in self._host_weights()]

    @coefs_.setter
    def coefs_(self, value):
        self._set_host_weights(coefs=value)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """[b_1, ..., b_{L+1}] as NumPy arrays; see ``coefs_``."""
        return [b for _, b in self._host_weights()]

    @intercepts_.setter
    def intercepts_(self, value):
        self._set_host_weights(intercepts=value)

    def _has_weights(self) -> bool:
        return self.__dict__.get("_net") is not None or "_weights" in self.__dict__

    def _host_weights(self):
        net = self.__dict__.get("_net")
        if net is not None:
            return net.get_weights()
        weights = self.__dict__.get("_weights")
        if weights is None or None in weights:
            raise AttributeError(f"this {type(self).__name__} has no weights yet: call fit")
        return list(zip(*weights))

    def _set_host_weights(self, coefs=None, intercepts=None):
        """Weights from the host, for the network if there is one, else kept until one is
        built (``load`` sets coefs_ and then intercepts_)."""
        net = self.__dict__.get("_net")
        if net is None:
            W, b = self.__dict__.get("_weights") or (None, None)
        else:
            W, b = zip(*net.get_weights())
        W = W if coefs is None else list(coefs)
        b = b if intercepts is None else list(intercepts)
        if net is None:
            self._weights = (W, b)
        else:
            net.set_weights(list(zip(W, b)))

    # -- inputs ------------------------------------------------------------------------

    # -- predicting --------------------------------------------------------------------

    def to_sklearn(self):
        """This fitted estimator as scikit-learn's own ``MLPClassifier``/``MLPRegressor``
        (a copy of the weights, classes and fitted attributes), which predicts as it
        does wherever scikit-learn runs; see ``gpubp.estimators.sklearn_mlp``."""
        return to_sklearn(self)

    def get_network(self) -> MLP:
        """The fitted ``gpubp.MLP`` behind the estimator, on its ``backend`` and ``dtype``.

        Built from the stored weights after unpickling or loading; moved (weights
        kept) when ``backend`` or ``dtype`` was changed with ``set_params`` since.
        """
        backend, dtype = get_backend(self.backend), np.dtype(self.dtype)
        net = self.__dict__.get("_net")
        if (
            net is not None
            and net.backend is backend
            and net.dtype == dtype
            and net.matmul_precision == self.matmul_precision
        ):
            return net
        weights = self._host_weights()
        sizes = [weights[0][0].shape[-2], *(W.shape[-1] for W, _ in weights)]
        stacked = weights[0][0].ndim == 3
        rebuilt = MLP(
            sizes,
            ACTIVATIONS[self.activation],
            {v: k for k, v in OUT_ACTIVATIONS.items()}[self.out_activation_],
            dtype=self.dtype,
            backend=backend,
            n_networks=weights[0][0].shape[0] if stacked else None,
            matmul_precision=self.matmul_precision,
            weights=weights,
            penalty=self.penalty,
            w0=self.w0,
            init=self.init,
        )
        self._net = rebuilt
        self.__dict__.pop("_weights", None)
        return rebuilt

    def _predicted(self, X, output):
        """``output(net, T)`` for the rows of X as one NumPy array, computed a chunk of
        rows at a time so that the activations of a chunk take at most
        PREDICT_CHUNK_BYTES of device memory (X read from where it lies a chunk at a
        time, when it is a memmap, HDF5, zarr, Dask or other row source)."""
        check_is_fitted(self)
        net = self.get_network()
        backend = net.backend
        with self._gpu_memory_advice():
            source = as_rows(X)  # None for device arrays too
            if source is None:
                X = validated(self, X, backend, reset=False)
            else:
                check_source(self, source, reset=False)
                convert = converter(self.dtype)
            rows = self._chunk_rows(net)
            parts = []
            for start in range(0, X.shape[0], rows):
                if source is None:
                    part = X[start : start + rows]
                else:
                    part = slice(start, min(start + rows, source.n))
                    part = convert(source.read(part.start, part.stop), part)
                if net.n_networks is not None and is_sparse(part):
                    part = part.toarray()  # a stack takes dense X
                _, T = net.propagate(backend.to_device(part))
                parts.append(backend.to_host(output(net, T)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _chunk_rows(self, net) -> int:
        """Rows whose activations and outputs take at most PREDICT_CHUNK_BYTES."""
        per_row = np.dtype(self.dtype).itemsize * (sum(net.layer_sizes) + net.layer_sizes[-1])
        return max(1, PREDICT_CHUNK_BYTES // (per_row * (net.n_networks or 1)))

    def _forward(self, X) -> np.ndarray:
        """f(X); for an ensemble of starts, the average of their outputs (ESL 11.5.6)."""
        return self._predicted(X, lambda net, T: average_outputs(net.backend.xp, net.g(T)))

    # -- pickling ----------------------------------------------------------------------

    def __getstate__(self):
        """NumPy only: a model trained on a GPU unpickles where there is no CuPy.

        A copy: pickling leaves the estimator, its network and its optimiser as they were.
        """
        state = dict(super().__getstate__())
        if self._has_weights():
            weights = self._host_weights()
            state["_weights"] = ([W for W, _ in weights], [b for _, b in weights])
        state.pop("_net", None)
        state.pop("_checked_input", None)
        state.pop("_last_targets", None)
        if "_optimizer" in state:
            state["_optimizer"] = moved(state["_optimizer"], to_numpy)
        if "_history" in state and state["_history"].best_theta is not None:
            history = copy.copy(state["_history"])
            history.best_theta = to_numpy(history.best_theta)
            state["_history"] = history
        return state
