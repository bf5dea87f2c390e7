"""A training plan: the estimator's parameters resolved once, and the one training run
of a fit over its prepared set (``gpubp.inputs.prepare``).

``Plan.run`` decides, in this order, what trains and how:

- the random generator (one seed shared by every rank) and the checkpoint run
  (``gpubp.checkpoint``: opened once, put back, ended once), which may rewind the
  generator to where the checkpointed run started;
- a new network (or stack of ``n_init`` starts) drawn from it, or the previous one
  (warm_start, partial_fit);
- one network by minibatches (``gpubp.train.fit_stochastic``), a stack of starts
  or a bag of them (``gpubp.train_stack.fit_stack``), or L-BFGS, with early
  stopping's held-out cases split off first (``holdout``) and bagging's bootstrap
  samples drawn after;
- what the run leaves: an ``Outcome`` that the estimator publishes, filled as the run
  goes, so that a run stopped by an error still leaves its network and record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np

from ..backend import get_backend
from ..checkpoint import identity, open_run, training
from ..distributed import communicator
from ..errors import InputError, warn_at_caller
from ..inputs.data import SHUFFLES
from ..lbfgs import fit_lbfgs
from ..memory import check_fits
from ..network import MLP
from ..optim import SGD, Adam, moved
from ..train import History, Objective, fit_stochastic
from ..train_stack import StackHistory, fit_stack
from .bagging import OUT_OF_BAG, bagged, bootstrap_counts, one_network, score_out_of_bag
from .callbacks import NO_TASKS
from .holdout import split_validation
from .predicting import chunk_rows
from .starts import choose_start, history_of

# scikit-learn's activation names, and the textbook's "sigmoid" for "logistic".
ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
OUT_ACTIVATIONS = {
    "identity": "identity",
    "softmax": "softmax",
    "sigmoid": "logistic",
    "exp": "exp",
}
STOCHASTIC_SOLVERS = ("sgd", "adam", "gd")
# The estimators' parameters added since checkpoints, pickles and model files were first
# written, with their defaults: left out of a checkpoint's identity at those defaults, so
# that a checkpoint written before them resumes (and an older pickle gets them: weights.py).
ADDED_LATER = {"early_stopping_metric": "score", "class_weight": None}


@dataclass
class Outcome:
    """What a run leaves for the estimator to publish: the network, its optimiser and
    record, fitted attributes by their names, and the attributes it leaves unset."""

    net: Any = None
    optimizer: Any = None
    history: Any = None
    attributes: dict = field(default_factory=dict)
    unset: tuple = ()
    recorded: bool = True  # the record is the loop's (not L-BFGS's)


@dataclass
class Previous:
    """What an earlier fit left, for warm_start and partial_fit."""

    net: Any
    optimizer: Any = None
    history: Any = None
    bootstrap_seed: int | None = None


def hidden_sizes(sizes) -> list[int]:
    sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
    if not all(isinstance(n, Integral) and n > 0 for n in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes}.")
    return [int(n) for n in sizes]


def generator(random_state) -> np.random.Generator:
    """A numpy Generator from what scikit-learn accepts as random_state."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def shared_seed(comm, random_state):
    """One seed for every rank, so all draw the same weights and permutations."""
    if isinstance(random_state, (int, np.integer)):
        return random_state
    seed = int(generator(random_state).integers(2**63 - 1)) if comm.rank == 0 else None
    return comm.bcast(seed)


class Plan:
    """The parameters of ``estimator`` (its ``get_params()``), as attributes of the same
    names, and what follows from them."""

    def __init__(self, estimator):
        self.kind = type(estimator).__name__
        self.params = estimator.get_params()
        vars(self).update(self.params)
        self.hidden = hidden_sizes(self.hidden_layer_sizes)
        self.tasks = NO_TASKS  # scikit-learn's callbacks' tasks (``callbacks.fit_tasks``)

    # -- settings ------------------------------------------------------------------------

    def place(self, previous: Previous | None):
        """(backend, communicator) of the fit, also kept as ``device`` and ``comm``: a new
        fit's backend, or the previous network's."""
        backend = get_backend(self.backend) if previous is None else previous.net.backend
        comm = communicator(self.distributed, backend.name)
        if comm is not None:
            self.refuse_lbfgs("distributed training")
        self.device, self.comm = backend, comm
        return backend, comm

    def refuse_lbfgs(self, what: str) -> None:
        """``what`` takes minibatch steps: an InputError for L-BFGS."""
        if self.solver == "lbfgs":
            raise InputError(f"{what} needs a stochastic solver ('sgd', 'adam' or 'gd'), not lbfgs")

    def stacked(self, previous: Previous | None) -> bool:
        """Whether the fit trains a stack of networks (a bag of one too)."""
        if previous is not None:
            return previous.net.n_networks is not None
        return self.n_init > 1 or self.ensemble == "bagging"

    def minibatch(self, n: int, warn: bool = True) -> int:
        """The minibatch size for n training cases."""
        if self.solver == "gd":
            return n
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n and warn:
            warn_at_caller(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
            )
        return int(np.clip(self.batch_size, 1, n))

    def shuffle_mode(self, data):
        """False, "full" or "buffered": ``shuffle=True`` is a full permutation where the
        rows are cheap to reach in any order (memory, page cache, device) and buffered
        (CorgiPile: chunks in a new order, rows shuffled within a few) where X is read
        in chunks (HDF5, zarr, Dask, ...)."""
        if not self.shuffle:
            return False
        if self.shuffle in SHUFFLES:
            return self.shuffle
        return "buffered" if data.streamed and not data.X.random_access else "full"

    def stopping_rule(self, data) -> dict:
        """The epochs and stopping parameters of the stochastic loops (one net or a stack)."""
        return dict(
            max_iter=self.max_iter,
            shuffle=self.shuffle_mode(data),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            stop_on=self.early_stopping_metric,
        )

    def network(self, sizes, output, backend, seed, n_networks=None) -> MLP:
        return MLP(
            sizes,
            ACTIVATIONS[self.activation],
            output,
            dtype=self.dtype,
            backend=backend,
            seed=seed,
            n_networks=n_networks,
            matmul_precision=self.matmul_precision,
            penalty=self.penalty,
            w0=self.w0,
            init=self.init,
        )

    def optimizer(self, net, learning_rate_init=None):
        """The solver's optimiser for net; ``learning_rate_init`` (one per network of a
        stack) overrides the parameter."""
        xp, fused = net.backend.xp, net.backend.fused
        if learning_rate_init is None:
            learning_rate_init = self.learning_rate_init
        if self.solver == "adam":
            rates = (learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
            return Adam(xp, net.theta, *rates, fused=fused)
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

    def _optimizer_for(self, net, previous, incremental):
        """A new optimiser for net, or for a partial_fit the last one, its state moved to
        net's backend and dtype (either may have changed since)."""
        if not incremental or previous is None or previous.optimizer is None:
            return self.optimizer(net)
        dtype = getattr(net.backend.xp, self.dtype)
        return moved(
            previous.optimizer, lambda a: net.backend.to_device(a, dtype=dtype), net.backend.fused
        )

    def random_generator(self) -> np.random.Generator:
        """The fit's generator, from ``random_state``; with several ranks one seed for all."""
        comm = self.comm
        return generator(
            self.random_state if comm is None else shared_seed(comm, self.random_state)
        )

    def train(self, loop, net, optimizer, data, objective, history, rng, run, **more):
        """``loop`` (``fit_stochastic`` or ``fit_stack``) with these parameters, inside the
        checkpoint run ``run``; progress shown by rank 0 only."""
        comm = self.comm
        loop(
            net,
            optimizer,
            data,
            objective,
            history,
            batch_size=self.minibatch(data.n_global),
            rng=rng,
            **self.stopping_rule(data),
            verbose=self.verbose if comm is None or comm.rank == 0 else 0,
            comm=comm,
            run=run,
            tasks=self.tasks,
            **more,
        )

    # -- the run -------------------------------------------------------------------------

    def checkpoints(self, data, backend, comm, n_outputs, classes, more, folder=None):
        """The ``gpubp.checkpoint.Run`` of this fit in ``folder`` (``checkpoint``), or None."""
        folder = self.checkpoint if folder is None else folder
        if folder is None:
            return None
        self.refuse_lbfgs("checkpoint")
        params = {k: v for k, v in self.params.items() if (k, v) not in ADDED_LATER.items()}
        who = identity(self.kind, params, data, backend, comm, n_outputs, classes, more)
        return open_run(folder, self.checkpoint_every, who, comm)

    def run(self, prepared, previous, outcome: Outcome, incremental: bool) -> None:
        """Train on ``prepared`` (from ``previous`` for a warm or partial fit) where ``place``
        put the fit, filling ``outcome`` as the run goes."""
        data, K, targets = prepared.data, prepared.n_outputs, prepared.targets
        backend, comm = self.device, self.comm
        first = previous is None
        rng = self.random_generator()
        if self.checkpoint is not None and incremental:
            raise InputError(
                "checkpoint works with fit, not partial_fit: save the model between calls "
                "with gpubp.save"
            )
        classes = getattr(targets, "classes", None)
        run = self.checkpoints(data, backend, comm, K, classes, {"new weights": first})
        if run is not None and run.start_rng() is not None:
            rng.bit_generator.state = run.start_rng()  # the same weights and split as then
        start_rng = rng.bit_generator.state
        if first:
            if self.n_init > 1 and incremental and self.ensemble == "best":
                raise InputError(
                    "partial_fit cannot choose the best of n_init starts after one epoch: use "
                    "fit, or ensemble='average'"
                )
            previous = self._new(data, K, targets, rng, backend, outcome)
        outcome.net = net = previous.net
        outcome.history = previous.history
        if self.ensemble != "bagging":
            outcome.unset = OUT_OF_BAG
            seed = None
        elif first or previous.bootstrap_seed is None:
            seed = int(rng.integers(2**63))  # a warm refit keeps the samples
            outcome.attributes["bootstrap_seed_"] = seed
        else:
            seed = previous.bootstrap_seed
        net.set_penalty(self.penalty, self.w0)  # set_params may change J between warm fits
        outcome.attributes["backend_"] = net.backend.name
        objective = Objective(targets.loss_factor(K), float(self.alpha))
        self.incremental, self.rng = incremental, rng  # what the run's parts share
        self.start_rng, self.checkpoint_run = start_rng, run
        if net.n_networks is not None:  # n_init random starts as one stack
            self._starts(prepared, previous, objective, seed, outcome)
        elif self.solver == "lbfgs":
            n_iter, loss, reason = self._lbfgs(net, data, objective)
            outcome.attributes.update(n_iter_=n_iter, loss_=loss, stop_reason_=reason)
            outcome.recorded = False
        else:
            self._one(prepared, previous, objective, outcome)

    def _new(self, data, K, targets, rng, backend, outcome) -> Previous:
        """A new network (a stack for n_init starts or bagging), drawn from ``rng`` once
        ``gpubp.memory`` has found room for it."""
        stack = self.n_init if self.stacked(None) else None
        output = targets.output()
        sizes = [data.n_features, *self.hidden, K]
        n = data.n_global
        batch = n if self.solver == "lbfgs" else self.minibatch(n, warn=False)  # L-BFGS: all
        early = self.early_stopping and self.solver != "lbfgs"
        who = f"{self.kind}(hidden_layer_sizes={tuple(self.hidden)})"
        check_fits(who, sizes, stack, self.dtype, self.solver, batch, early, backend)
        net = self.network(sizes, output, backend, rng, stack)
        history = History() if stack is None else StackHistory(stack)
        if self.solver in STOCHASTIC_SOLVERS and self.early_stopping:
            if stack is None:
                history.best_loss = None
                history.validation_scores = []
                history.validation_loss_curve = []
                history.best_validation_score = -np.inf
                history.best_validation_loss = np.inf
            else:
                history.with_validation()
        outcome.attributes.update(
            n_outputs_=K,
            n_layers_=len(self.hidden) + 2,
            out_activation_=OUT_ACTIVATIONS[output],
            t_=0,
            n_iter_=0,
        )
        return Previous(net, None, history)

    def _lbfgs(self, net, data, objective):
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

    def _held_out(self, net, prepared, data, objective):
        """(training set, validate): early stopping's split, or (data, None)."""
        if not self.early_stopping or self.solver == "lbfgs":
            return data, None
        if self.incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        return split_validation(
            net,
            data,
            prepared.y,
            prepared.n_outputs,
            prepared.targets,
            objective,
            self.rng,
            self.comm,
            self.validation_fraction,
            self.minibatch(data.n_global),
        )

    def _training(self, net, optimizer, history):
        """``gpubp.checkpoint.training`` around this run's loop."""
        to_device = net.backend.to_device
        return training(
            self.checkpoint_run, net, optimizer, history, self.rng, self.start_rng, to_device
        )

    def _one(self, prepared, previous, objective, outcome):
        """One network by minibatches."""
        net, history, incremental = previous.net, previous.history, self.incremental
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        outcome.optimizer = optimizer = self._optimizer_for(net, previous, incremental)
        data, validate = self._held_out(net, prepared, prepared.data, objective)
        with self._training(net, optimizer, history) as done:
            if not done:
                more = dict(validate=validate, incremental=incremental)
                run, rng = self.checkpoint_run, self.rng
                self.train(
                    fit_stochastic, net, optimizer, data, objective, history, rng, run, **more
                )

    def _starts(self, prepared, previous, objective, seed, outcome):
        """n_init random starts as one stack; the best start kept, or all of them (with
        ``ensemble="bagging"`` each on a bootstrap sample, drawn from ``seed``)."""
        net, history = previous.net, previous.history
        if not isinstance(history, StackHistory):  # a loaded ensemble: fresh counters
            history = StackHistory(net.n_networks)
            if self.early_stopping:
                history.with_validation()
        outcome.history = history
        whole = prepared.data
        data, validate = self._held_out(net, prepared, whole, objective)
        counts = None
        if self.ensemble == "bagging":  # drawn after the split: its rows stay out of the bags
            drawn = np.random.default_rng(seed)
            counts = bootstrap_counts(data.n_global, net.n_networks, drawn, data.offset, data.n)
            data = bagged(data, counts, net.backend, np.dtype(self.dtype))
        if self.solver == "lbfgs":  # one after another: L-BFGS's line search is per network
            for r in range(net.n_networks):
                alone = net.network(r)
                own = data if counts is None else one_network(data, r, net.backend)
                n_iter, loss, reason = self._lbfgs(alone, own, objective)
                net.theta[r] = alone.theta
                history.n_iter[r], history.loss_curves[r] = n_iter, [loss]
                history.stop_reasons[r] = reason
        else:
            outcome.optimizer = self._optimizer_for(net, previous, self.incremental)
        with self._training(net, outcome.optimizer, history) as done:
            if not done and self.solver != "lbfgs":
                more = dict(validate=validate, incremental=self.incremental)
                optimizer, rng, run = outcome.optimizer, self.rng, self.checkpoint_run
                self.train(fit_stack, net, optimizer, data, objective, history, rng, run, **more)
            outcome.attributes["init_losses_"] = history.final_losses
            if counts is not None:
                batch, chunk = self.minibatch(whole.n_global), chunk_rows(net, self.dtype)
                outcome.attributes.update(
                    score_out_of_bag(
                        net,
                        whole,
                        data,
                        counts,
                        prepared.y,
                        prepared.targets,
                        self.comm,
                        batch,
                        chunk,
                    )
                )
            if self.ensemble == "best":
                r = choose_start(history)
                outcome.attributes["best_init_"] = r
                outcome.net = net.network(r)
                if self.solver != "lbfgs":
                    outcome.optimizer = outcome.optimizer.network(r)
                outcome.history = history_of(history, r)
