"""The training loop: a network, an optimiser and data already on the device.

The objective on a batch whose case weights sum to S is scikit-learn's

    loss_factor / S * sum_i w_i R_i  +  alpha / (2 S) * J

(loss_factor = 1 for the log losses, 1 / (2K) for squared error, which makes
it the mean of half squared errors; J is ``MLP.J``: sum_l ||W_l||^2 for weight
decay, or weight elimination's). The loss of an epoch is summed on the
device and read once per epoch; nothing inside a minibatch step waits for the
device. The weight-decay term of an epoch's loss is computed once, at the
weights the epoch ends with (its gradient is in every step).

An epoch's steps are ``gpubp.epoch``'s; ``run_epochs`` is the loop over epochs of one
network (``fit_stochastic``) and of a stack of networks (``gpubp.train_stack``):
alpha may be one value per network, the case weights one row per network, and each
network divides by its own weight sum; a network whose cases in a batch all weigh 0
skips that step, as it would alone. On CuPy, the full minibatches of an epoch run as
CUDA graph launches where ``gpubp.graphs`` can capture the step (same kernels, same
order, same numbers).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .divergence import diverged, starting_loss
from .divergence import words as diverged_words
from .epoch import Epoch
from .errors import DivergenceError, warn_at_caller
from .inputs.data import Data
from .objective import Objective
from .progress import progress as progress_bar


@dataclass
class History:
    """What the loop records, kept across warm starts and partial fits."""

    n_iter: int = 0
    t: int = 0
    loss: float | None = None
    loss_curve: list = field(default_factory=list)
    best_loss: float | None = math.inf
    validation_scores: list | None = None
    validation_loss_curve: list | None = None
    best_validation_score: float | None = None
    best_validation_loss: float | None = None  # at the weights of the best validation epoch
    no_improvement_count: int = 0
    best_theta: Any = None
    stop_reason: str = ""  # one of STOP_REASONS, set when a fit or partial_fit ends
    start_loss: float | None = None  # at the starting weights (``gpubp.divergence``)


STOP_REASONS = {
    "no_improvement": "the {what} did not improve by tol={tol} for {n} consecutive epochs",
    "max_iter": "max_iter={max_iter} reached without converging",
    "interrupted": "interrupted by the user (Ctrl-C)",
    "preempted": "preempted (SIGTERM or SIGUSR1)",
    "callback": "a callback asked to stop (scikit-learn's callbacks)",
    "partial_fit": "partial_fit runs one epoch",
    "converged": "lbfgs converged: {message}",
    "not_converged": "lbfgs stopped without converging: {message}",
}


def say_why_stopped(reason, count, unit, **words) -> None:
    """Print on stderr why training stopped after ``count`` epochs or iterations."""
    text = STOP_REASONS[reason].format(**words)
    print(f"training stopped after {count} {unit}: {text}", file=sys.stderr)


def run_epochs(
    record,
    net,
    optimizer,
    data: Data,
    objective: Objective,
    *,
    batch_size: int,
    max_iter: int,
    shuffle,
    rng: np.random.Generator,
    incremental: bool = False,
    verbose: int = 0,
    comm=None,
    run=None,
    tasks=None,
) -> str:
    """The epoch loop of one network (``fit_stochastic``) and of a stack
    (``gpubp.train_stack.fit_stack``): up to ``max_iter`` epochs while ``record.going()``,
    Ctrl-C and the preempting signals caught between steps, a progress bar, and the
    checkpoints of ``run``. What an epoch's losses mean, when to stop and the words for
    a quit are the ``record``'s. ``tasks`` (``gpubp.estimators.callbacks``) hears each
    epoch begin and end, and may ask to stop. Returns why the loop stopped: "max_iter",
    "partial_fit", "interrupted", "preempted", "callback" or the reason
    ``record.epoch_ended`` gave.
    """
    resumed = run is not None and run.saved is not None
    record.begin(resumed)
    if run is not None and run.finished:  # a finished run: what follows the loop only
        return run.finished
    if record.history.start_loss is None and not resumed:
        record.history.start_loss = starting_loss(net, data, objective, batch_size, comm)
    if run is not None:
        run.announce(record.epochs, max_iter, data.n_global, batch_size)
    progress = None
    if verbose and not incremental:
        progress = progress_bar(max_iter, record.unit, "epoch", record.epochs)
    reason = "max_iter"
    try:
        with interrupt_after_the_step(preemptible=run is not None) as stop:
            if run is not None:
                run.watch(stop)
            while record.epochs < max_iter and record.going():
                if tasks is not None:
                    tasks.epoch_begins(net)
                epoch = Epoch(net, data, rng, shuffle, batch_size, run)
                # A diverging epoch is the record's to report, once.
                with np.errstate(over="ignore", invalid="ignore"):
                    total, steps = epoch.take_steps(optimizer, objective, stop, comm)
                    losses = record.losses(total, data.n_global)
                if epoch.quit:
                    reason = epoch.quit
                    if reason != "preempted":  # Preempted says it, in one line
                        warn_at_caller(record.quit_words(reason, steps))
                    break
                stopped = record.epoch_ended(losses, epoch, optimizer, data.n_global, progress)
                asked = tasks is not None and tasks.epoch_ends(net)
                if stopped or asked:
                    reason = stopped or "callback"
                    break
                if incremental:
                    reason = "partial_fit"
                    break
                if run is not None:
                    run.epoch_ended(record.epochs)
    finally:
        if progress is not None:
            progress.close()
    if run is not None:
        run.end(reason)  # the loop's state, before what follows it changes the weights
    return reason


class _OneNetwork:
    """One network's part in ``run_epochs``: its ``History`` and scikit-learn's rules."""

    unit = "epochs"

    def __init__(self, net, history: History, tol, n_iter_no_change, validate, lines, stop_on):
        self.net, self.history, self.tol = net, history, tol
        self.n_iter_no_change, self.validate, self.lines = n_iter_no_change, validate, lines
        self.stop_on = stop_on

    def begin(self, resumed: bool) -> None:
        if not resumed:
            self.history.n_iter = 0
        self.lowest = min(self.history.loss_curve, default=math.inf)  # divergence's

    @property
    def epochs(self) -> int:
        return self.history.n_iter

    def going(self) -> bool:
        return True

    def losses(self, total, n: int) -> float:
        return float(total) / n

    def quit_words(self, reason: str, steps: int) -> str:
        return (
            f"training {STOP_REASONS[reason].split(' (')[0]} after {self.history.n_iter} "
            f"complete epochs and {steps} steps of the next; the weights are those of the "
            "last completed step"
        )

    def epoch_ended(self, loss, epoch, optimizer, n, progress) -> str | None:
        history = self.history
        lowest = self.lowest
        if diverged(loss, history.start_loss, lowest):
            self.net.theta[...] = epoch.start_theta
            raise DivergenceError(
                diverged_words(
                    loss,
                    history.n_iter + 1,
                    history.start_loss,
                    lowest,
                    optimizer.learning_rate_init,
                )
            )
        _record_epoch(
            self.net, history, loss, n, self.tol, self.validate, progress, self.lines, self.stop_on
        )
        self.lowest = min(lowest, loss)
        optimizer.iteration_ends(history.t)
        if history.no_improvement_count > self.n_iter_no_change:
            if optimizer.trigger_stopping():
                return "no_improvement"
            history.no_improvement_count = 0
        return None


def fit_stochastic(
    net,
    optimizer,
    data: Data,
    objective: Objective,
    history: History,
    *,
    batch_size: int,
    max_iter: int,
    shuffle,
    rng: np.random.Generator,
    tol: float,
    n_iter_no_change: int,
    validate: Callable[[], tuple[float, float]] | None = None,
    stop_on: str = "score",
    incremental: bool = False,
    verbose: int = 0,
    comm=None,
    run=None,
    tasks=None,
) -> None:
    """Epochs of minibatch steps with scikit-learn's stopping rules (``run_epochs``).

    ``shuffle``: False (the cases in turn), True or "full" (a permutation each epoch)
    or "buffered" (``gpubp.inputs.data.BufferedOrder``). ``verbose``: a progress bar
    (``gpubp.progress``); 2 or more (not True), also scikit-learn's lines on stdout.

    Stops when the training loss (or, with ``validate``, the validation score, or with
    ``stop_on="loss"`` the validation loss) has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, after the optimiser's own schedule declines to go on.
    With ``validate`` the best weights are restored at the end. A diverged epoch
    (``gpubp.divergence``: a loss not finite, or grown well past its start) raises
    DivergenceError with the weights from before that epoch in place.

    ``run`` (``gpubp.checkpoint.Run``) writes checkpoints: at epoch ends when due, when
    its timer asks (after the step in progress), and when training is interrupted or
    preempted (SIGTERM, SIGUSR1); a resumed run goes on from its ``position``.
    """
    lines = verbose >= 2 and not isinstance(verbose, bool)  # scikit-learn's own lines too
    record = _OneNetwork(net, history, tol, n_iter_no_change, validate, lines, stop_on)
    reason = run_epochs(
        record,
        net,
        optimizer,
        data,
        objective,
        batch_size=batch_size,
        max_iter=max_iter,
        shuffle=shuffle,
        rng=rng,
        incremental=incremental,
        verbose=verbose,
        comm=comm,
        run=run,
        tasks=tasks,
    )
    history.stop_reason = reason
    if verbose and not incremental:
        say_why_stopped(
            reason,
            history.n_iter,
            "epochs",
            what="training loss" if validate is None else f"validation {stop_on}",
            tol=tol,
            n=n_iter_no_change,
            max_iter=max_iter,
        )
    if reason in ("interrupted", "preempted"):
        return
    if reason == "max_iter":
        warn_at_caller(
            f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached and the "
            "optimization hasn't converged yet.",
            ConvergenceWarning,
        )
    if validate is not None and history.best_theta is not None:
        # after unpickling or a dtype change the best weights are a host or other copy
        net.theta[...] = net.backend.to_device(history.best_theta, dtype=net.theta.dtype)


def _record_epoch(
    net, history, loss, n, tol, validate, progress, lines=False, stop_on="score"
) -> None:
    history.n_iter += 1
    history.t += n
    history.loss = loss
    history.loss_curve.append(loss)
    _update_no_improvement(net, history, tol, validate, stop_on)
    if lines:  # scikit-learn's words, on stdout
        print(f"Iteration {history.n_iter}, loss = {loss:.8f}")
        if validate is not None:
            print(f"Validation score: {history.validation_scores[-1]:f}")
    if progress is not None:
        shown = {"loss": f"{loss:.5g}"}
        if validate is not None:
            shown["val_score"] = f"{history.validation_scores[-1]:.4f}"
        progress.set_postfix(shown, refresh=False)
        progress.update(1)


PREEMPTING = ("SIGTERM", "SIGUSR1")  # the signals a batch scheduler sends before it stops a job


@contextlib.contextmanager
def interrupt_after_the_step(preemptible: bool = False):
    """Ctrl-C sets ``stop["now"]`` and ``stop["quit"] = "interrupted"`` instead of raising,
    so no step is cut in half; with ``preemptible``, SIGTERM and SIGUSR1 set
    ``stop["quit"] = "preempted"``. ``stop["save"]`` asks for a checkpoint and going on.

    A second Ctrl-C raises KeyboardInterrupt at once. Only the main thread can
    catch signals; elsewhere this does nothing.
    """
    stop = {"now": False, "save": False, "quit": ""}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum, frame):
        if stop["quit"] == "interrupted":
            raise KeyboardInterrupt
        stop["quit"] = stop["quit"] or "interrupted"
        stop["now"] = True

    def preempt(signum, frame):
        stop["quit"] = stop["quit"] or "preempted"
        stop["now"] = True

    handlers = {signal.SIGINT: interrupt}
    if preemptible:
        handlers.update({getattr(signal, name): preempt for name in PREEMPTING})
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _update_no_improvement(net, history: History, tol: float, validate, stop_on="score") -> None:
    """scikit-learn's rule: count epochs that did not improve by tol (the validation loss
    with ``stop_on="loss"``, where lower is better)."""
    if validate is None:
        if history.loss_curve[-1] > history.best_loss - tol:
            history.no_improvement_count += 1
        else:
            history.no_improvement_count = 0
        history.best_loss = min(history.best_loss, history.loss_curve[-1])
        return
    score, val_loss = validate()
    history.validation_scores.append(score)
    history.validation_loss_curve.append(val_loss)
    if stop_on == "loss":
        best = math.inf if history.best_validation_loss is None else history.best_validation_loss
        worse, better = val_loss > best - tol, val_loss < best
    else:
        worse = score < history.best_validation_score + tol
        better = score > history.best_validation_score
    history.no_improvement_count = history.no_improvement_count + 1 if worse else 0
    if better:
        history.best_validation_score, history.best_validation_loss = score, val_loss
        history.best_theta = net.theta.copy()
