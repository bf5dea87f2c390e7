"""What MLPClassifier and MLPRegressor share: parameters, fitting, weights.

The same parameters, defaults and fitted attributes as scikit-learn, plus ``backend``,
``dtype``, ``distributed``, ``n_init``, ``ensemble``, ``penalty``, ``w0``, ``init``,
``matmul_precision`` (``"tf32"``: the GPU's faster TF32 matrix products, see ``MLP``)
and ``streaming`` ("auto", True, False: X read from where it lies a chunk at a time,
see ``gpubp.inputs.residency``), ``checkpoint`` (a folder: ``fit`` writes checkpoints
there and, run again, goes on from the newest bit for bit; see ``gpubp.checkpoint``)
and ``checkpoint_every`` ("auto": an epoch's end, at most once a minute; N epochs;
"30s"); ``shuffle`` also takes "full" and "buffered".

A fit goes down once and comes back once (docs/architecture.md):

    fit(X, y, sample_weight)
      -> Plan(self)              the parameters resolved once        estimators/plan.py
      -> inputs.prepare(...)     the training set, once              inputs/prepare.py
      -> plan.run(...)           the one training run: checkpoints,  estimators/plan.py
                                 network or stack, split, loop
      -> self._publish(outcome)  the fitted attributes               here

=================  ==========================================================
who                owns
=================  ==========================================================
this module        parameters, fit/partial_fit/predict, fitted attributes
weights            the weights (network or host) and pickling
targets            how y is encoded and scored (a subclass's ``_targets``)
inputs.prepare     X, y and sample_weight made the training set
plan               settings, the run, its checkpoints, and the ``Outcome``
train, train_stack the epoch loop: one network, a stack
=================  ==========================================================
"""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..backend import get_backend, to_numpy
from ..distributed import MODES
from ..errors import renamed
from ..inputs.data import SHUFFLES
from ..inputs.prepare import prepare
from ..memory import device_memory_advice
from ..network import DTYPES, INITS, MATMUL_PRECISIONS, MLP, PENALTIES
from ..train_stack import StackHistory
from .callbacks import CallbackSupportMixin, fit_tasks, managed
from .plan import ACTIVATIONS, OUT_ACTIVATIONS, STOCHASTIC_SOLVERS, Outcome, Plan, Previous
from .predicting import predicted
from .sklearn_mlp import to_sklearn
from .starts import average_outputs, ensemble_history
from .weights import HeldWeights


def host_arrays(y, sample_weight):
    """y and sample_weight as NumPy arrays: scikit-learn's metrics take nothing else."""
    return to_numpy(y), None if sample_weight is None else to_numpy(sample_weight)


class BaseMLP(CallbackSupportMixin, HeldWeights, BaseEstimator):
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
        "early_stopping_metric": [StrOptions({"score", "loss"})],
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
        early_stopping_metric="score",
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
        self.early_stopping_metric = early_stopping_metric

    def __init_subclass__(cls, **kwargs):
        """A subclass without an ``__init__`` of its own gets this one under its own name,
        so that a misspelled parameter's error names the class the user called."""
        super().__init_subclass__(**kwargs)
        if "__init__" not in vars(cls):
            cls.__init__ = renamed(BaseMLP.__init__, f"{cls.__name__}.__init__")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy.sparse CSR or CSC X
        return tags

    # -- what the subclasses say ---------------------------------------------------

    def _targets(self, incremental: bool):
        """The targets object (``gpubp.estimators.targets``) that encodes this fit's y."""
        raise NotImplementedError

    def _adopt_targets(self, targets) -> None:
        """Publish what encoding y fitted (a classifier's classes)."""

    # -- fitting -----------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y (class labels or real targets).

        Ctrl-C stops training after the current step, with a warning saying how
        many epochs finished; the estimator keeps the weights of that step.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs; memmaps, HDF5, zarr and Dask arrays are read a chunk at a time. On the
            GPU, CuPy arrays and other DLPack producers are taken without a copy.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (a 0/1 matrix for multi-label) or real targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights; None weighs every case 1.

        Returns
        -------
        self
            The fitted estimator.
        """
        self._validate_params()
        with device_memory_advice(self.batch_size):
            return self._fit(X, y, sample_weight, incremental=False)

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

    @managed
    def _fit(self, X, y, sample_weight, incremental):
        """Prepare the inputs, run the plan, publish its outcome (also when it stops with
        an error: the network and record so far); scikit-learn's callbacks see the fit as
        a task and each epoch as a subtask (``gpubp.estimators.callbacks``)."""
        plan = Plan(self)
        previous = self._previous(incremental)
        plan.place(previous)
        prepared = self._prepare(plan, X, y, sample_weight, previous, incremental)
        outcome = Outcome()
        epochs = 0 if self.solver == "lbfgs" else 1 if incremental else self.max_iter
        task = "partial_fit" if incremental else "fit"
        plan.tasks = fit_tasks(self, X, y, sample_weight, task, epochs, outcome.attributes)
        try:
            plan.run(prepared, previous, outcome, incremental)
        finally:
            self._publish(outcome)
        plan.tasks.end()
        return self

    def _prepare(self, plan, X, y, sample_weight, previous, incremental, **options):
        """``gpubp.inputs.prepare`` with this estimator's targets; the classes, outputs and
        encoded targets it found published."""
        targets = self._targets(incremental)
        last = self.__dict__.get("_last_targets") if incremental and targets.keep else None
        options.setdefault("stack", plan.stacked(previous))  # a stack takes a dense X
        prepared = prepare(
            self,
            X,
            y,
            sample_weight,
            targets=targets,
            backend=plan.device,
            comm=plan.comm,
            reset=previous is None,
            incremental=incremental,
            last=last,
            **options,
        )
        self._adopt_targets(prepared.targets)
        self.n_outputs_ = prepared.n_outputs
        if prepared.last is not None:
            self._last_targets = prepared.last
        return prepared

    def _previous(self, incremental) -> Previous | None:
        """What the last fit left, when this one goes on from it (warm_start, partial_fit)."""
        if not self._has_weights() or (not self.warm_start and not incremental):
            return None
        state = self.__dict__
        return Previous(
            self.get_network(),
            state.get("_optimizer"),
            state.get("_history"),
            state.get("bootstrap_seed_"),
        )

    def _publish(self, outcome: Outcome) -> None:
        """The run's outcome as fitted attributes."""
        if outcome.net is None:
            return
        self._net = outcome.net
        self.__dict__.pop("_weights", None)
        if outcome.optimizer is None:
            self.__dict__.pop("_optimizer", None)
        else:
            self._optimizer = outcome.optimizer
        if outcome.history is not None:
            self._history = outcome.history
        for name in outcome.unset:
            self.__dict__.pop(name, None)
        for name, value in outcome.attributes.items():
            setattr(self, name, value)
        if outcome.recorded:
            self._publish_history()

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
        """``output(net, T)`` for the rows of X as one NumPy array, a chunk of rows at a
        time (``gpubp.estimators.predicting``)."""
        check_is_fitted(self)
        net = self.get_network()
        with device_memory_advice(self.batch_size):
            return predicted(self, net, X, output)

    def _forward(self, X) -> np.ndarray:
        """f(X); for an ensemble of starts, the average of their outputs (ESL 11.5.6)."""
        return self._predicted(X, lambda net, T: average_outputs(net.backend.xp, net.g(T)))
