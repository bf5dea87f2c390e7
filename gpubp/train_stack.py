"""Epochs of a stack of networks (``MLP(n_networks=R)``), each with its own stopping rule.

All R networks take their minibatch steps together (``gpubp.epoch.run_epoch``)
and each keeps its own record: loss curve, validation scores, no-improvement
count. A network stops as it would alone: its weights at that epoch are kept
(the stack goes on computing it until every network has stopped, and its row
is put back at the end), so each network ends where it would have ended if
trained by itself with the same seed, weight decay, learning rate and case
weights. A network whose loss stops being finite is stopped with the weights of
its last finite epoch, and marked diverged (so is one whose loss grows past
``gpubp.divergence``'s bound); the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .divergence import diverged
from .errors import warn_at_caller
from .train import STOP_REASONS, Data, Objective, run_epochs


@dataclass
class StackHistory:
    """Each network's record, one entry (or list) per network."""

    n_networks: int
    t: int = 0
    loss_curves: list = field(default_factory=list)
    n_iter: np.ndarray = None
    best_loss: np.ndarray = None
    no_improvement_count: np.ndarray = None
    running: np.ndarray = None
    stop_reasons: list = field(default_factory=list)
    validation_scores: list | None = None
    validation_loss_curves: list | None = None
    best_validation_score: np.ndarray | None = None
    best_validation_loss: np.ndarray | None = None
    best_theta: object = None
    epoch: int = 0  # epochs run by this fit
    kept: object = None  # the weights of the networks that stopped, put back at the end
    start_loss: object = None  # each network's at its starting weights (gpubp.divergence)

    def __post_init__(self):
        R = self.n_networks
        self.loss_curves = self.loss_curves or [[] for _ in range(R)]
        self.n_iter = np.zeros(R, dtype=np.int64)
        self.best_loss = np.full(R, math.inf)
        self.no_improvement_count = np.zeros(R, dtype=np.int64)
        self.running = np.ones(R, dtype=bool)
        self.stop_reasons = self.stop_reasons or [""] * R

    def with_validation(self) -> StackHistory:
        """Start recording validation scores (early stopping)."""
        R = self.n_networks
        self.validation_scores = [[] for _ in range(R)]
        self.validation_loss_curves = [[] for _ in range(R)]
        self.best_validation_score = np.full(R, -math.inf)
        self.best_validation_loss = np.full(R, math.inf)
        return self

    @property
    def final_losses(self) -> np.ndarray:
        """Each network's last training loss (inf if it has none)."""
        return np.array([c[-1] if c else math.inf for c in self.loss_curves])

    @property
    def diverged(self) -> np.ndarray:
        return np.array([reason == "diverged" for reason in self.stop_reasons])


class _Stack:
    """A stack's part in ``gpubp.train.run_epochs``: each network's record and rules."""

    def __init__(self, net, history: StackHistory, tol, n_iter_no_change, validate, stop_on):
        self.net, self.history, self.tol = net, history, tol
        self.n_iter_no_change, self.validate, self.stop_on = n_iter_no_change, validate, stop_on
        self.unit = f"epochs of {net.n_networks} networks"

    def begin(self, resumed: bool) -> None:
        history = self.history
        if not resumed:
            history.running[:] = True
            history.epoch = 0
            history.kept = self.net.theta.copy()
        self.lowest = np.array([min(curve, default=math.inf) for curve in history.loss_curves])

    @property
    def epochs(self) -> int:
        return self.history.epoch

    def going(self) -> bool:
        return bool(self.history.running.any())

    def losses(self, total, n: int) -> np.ndarray:
        return self.net.backend.to_host(total).astype(np.float64) / n

    def quit_words(self, reason: str, steps: int) -> str:
        return (
            f"training {STOP_REASONS[reason].split(' (')[0]}; each network keeps the "
            "weights of its last completed step"
        )

    def epoch_ended(self, losses, epoch, optimizer, n, progress) -> None:
        net, history = self.net, self.history
        history.epoch += 1
        _record(
            net,
            history,
            losses,
            n,
            self.tol,
            self.validate,
            history.kept,
            epoch.start_theta,
            self.lowest,
            self.stop_on,
        )
        optimizer.iteration_ends(history.t)
        tired = history.running & (history.no_improvement_count > self.n_iter_no_change)
        if tired.any():
            stops = optimizer.trigger_stopping(tired)
            history.no_improvement_count[tired & ~stops] = 0
            _stop(net, history, stops, "no_improvement", history.kept)
        if progress is not None:
            progress.set_postfix({"running": int(history.running.sum())}, refresh=False)
            progress.update(1)


def fit_stack(
    net,
    optimizer,
    data: Data,
    objective: Objective,
    history: StackHistory,
    *,
    batch_size: int,
    max_iter: int,
    shuffle,
    rng: np.random.Generator,
    tol: float,
    n_iter_no_change: int,
    validate: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    stop_on: str = "score",
    incremental: bool = False,
    verbose: bool = False,
    comm=None,
    run=None,
    tasks=None,
) -> None:
    """Up to ``max_iter`` epochs (``gpubp.train.run_epochs``); scikit-learn's stopping
    rules, network by network.

    ``validate`` returns each network's validation score and loss; with it each
    network ends with the weights of its best validation score (``stop_on="loss"``: its
    lowest validation loss). With ``comm``
    (``gpubp.distributed``) the epochs are data-parallel over the ranks' rows. ``run``
    (``gpubp.checkpoint.Run``) writes checkpoints as in ``gpubp.train.fit_stochastic``.
    """
    R, backend = net.n_networks, net.backend
    reason = run_epochs(
        _Stack(net, history, tol, n_iter_no_change, validate, stop_on),
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
    quit = reason if reason in ("interrupted", "preempted") else ""
    still = history.running.copy()
    for r in np.flatnonzero(still):
        history.stop_reasons[r] = reason
    done = ~still
    if done.any():
        rows = backend.to_device(np.flatnonzero(done))
        net.theta[rows] = history.kept[rows]
    if reason == "max_iter":
        warn_at_caller(
            f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached and the "
            f"optimization hasn't converged yet ({int(still.sum())} of {R} networks).",
            ConvergenceWarning,
        )
    if validate is not None and history.best_theta is not None and not quit:
        best = history.best_validation_loss if stop_on == "loss" else history.best_validation_score
        improved = np.isfinite(best)
        rows = backend.to_device(np.flatnonzero(improved))
        net.theta[rows] = history.best_theta[rows]


def _stop(net, history, which, reason, kept) -> None:
    """Stop the networks ``which`` (a mask) at their current weights."""
    which = which & history.running
    if not which.any():
        return
    rows = net.backend.to_device(np.flatnonzero(which))
    kept[rows] = net.theta[rows]
    history.running &= ~which
    for r in np.flatnonzero(which):
        history.stop_reasons[r] = reason


def _record(
    net, history, losses, n, tol, validate, kept, start_theta, lowest, stop_on="score"
) -> None:
    """One epoch of each running network: its loss, validation score and counters;
    ``lowest``, each network's lowest epoch loss, updated in place."""
    bad = history.running & diverged(losses, history.start_loss, lowest)
    if bad.any():  # back to the weights before this epoch, then stop
        rows = net.backend.to_device(np.flatnonzero(bad))
        net.theta[rows] = start_theta[rows]
        _stop(net, history, bad, "diverged", kept)
    running = history.running
    history.t += n
    history.n_iter[running] += 1
    for r in np.flatnonzero(running):
        history.loss_curves[r].append(float(losses[r]))
        lowest[r] = min(lowest[r], float(losses[r]))
    if validate is None:
        worse = losses > history.best_loss - tol
        history.best_loss = np.where(
            running, np.minimum(history.best_loss, losses), history.best_loss
        )
    else:
        scores, val_losses = validate()
        for r in np.flatnonzero(running):
            history.validation_scores[r].append(float(scores[r]))
            history.validation_loss_curves[r].append(float(val_losses[r]))
        if stop_on == "loss":  # lower is better
            worse = val_losses > history.best_validation_loss - tol
            better = running & (val_losses < history.best_validation_loss)
        else:
            worse = scores < history.best_validation_score + tol
            better = running & (scores > history.best_validation_score)
        if better.any():
            if history.best_theta is None:
                history.best_theta = net.theta.copy()
            rows = net.backend.to_device(np.flatnonzero(better))
            history.best_theta[rows] = net.theta[rows]
            history.best_validation_score[better] = scores[better]
            history.best_validation_loss[better] = val_losses[better]
    history.no_improvement_count = np.where(
        running, np.where(worse, history.no_improvement_count + 1, 0), history.no_improvement_count
    )
