"""Random starts (ESL 11.5.6): choosing the best of them, or averaging them.

The estimators train their ``n_init`` starts as one stack (``gpubp.train_stack``);
these helpers turn the stack's record into what the estimator publishes.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DivergenceError
from ..train import History
from ..train_stack import StackHistory


def choose_start(history: StackHistory) -> int:
    """The start with the lowest validation loss (at the weights kept) if there was
    early stopping, else the lowest final training loss; diverged starts never win."""
    if history.best_validation_loss is not None:
        criterion = history.best_validation_loss.copy()
    else:
        criterion = history.final_losses
    criterion = np.where(history.diverged | ~np.isfinite(criterion), np.inf, criterion)
    if not np.isfinite(criterion).any():
        raise DivergenceError(
            "every random start diverged (its training loss became infinite or NaN, or grew "
            "far past its value at the starting weights: gpubp.divergence); try a smaller "
            "learning_rate_init"
        )
    return int(np.argmin(criterion))


def history_of(history: StackHistory, r: int) -> History:
    """Start r's record as a network trained alone would have it."""
    curve = list(history.loss_curves[r])
    one = History(
        n_iter=int(history.n_iter[r]),
        t=history.t,
        loss=curve[-1] if curve else None,
        loss_curve=curve,
        best_loss=float(history.best_loss[r]),
        stop_reason=history.stop_reasons[r],
    )
    if history.validation_scores is not None:
        one.best_loss = None
        one.validation_scores = list(history.validation_scores[r])
        one.validation_loss_curve = list(history.validation_loss_curves[r])
        one.best_validation_score = float(history.best_validation_score[r])
        one.best_validation_loss = float(history.best_validation_loss[r])
    return one


def ensemble_history(history: StackHistory) -> History:
    """An ensemble's record: per epoch the mean over its starts (a start that stopped
    earlier counts with its last value), n_iter the longest run."""
    n = max(1, *(len(c) for c in history.loss_curves))

    def mean_curve(curves):
        padded = [list(c) + [c[-1]] * (n - len(c)) for c in curves if c]
        return [float(v) for v in np.mean(padded, axis=0)] if padded else []

    curve = mean_curve(history.loss_curves)
    one = History(
        n_iter=int(history.n_iter.max()),
        t=history.t,
        loss=curve[-1] if curve else None,
        loss_curve=curve,
        best_loss=float(np.min(history.best_loss)) if len(curve) else math.inf,
        stop_reason=", ".join(sorted(set(history.stop_reasons))),
    )
    if history.validation_scores is not None:
        one.best_loss = None
        one.validation_scores = mean_curve(history.validation_scores)
        one.validation_loss_curve = mean_curve(history.validation_loss_curves)
        one.best_validation_score = float(np.mean(history.best_validation_score))
    return one


def average_outputs(xp, F):
    """The mean of a stack's outputs over its networks (F itself for one network)."""
    return F if F.ndim == 2 else xp.mean(F, axis=0)


def log_average(xp, L):
    """log of the mean over networks of exp(L), computed without overflow."""
    if L.ndim == 2:
        return L
    top = xp.max(L, axis=0)
    return top + xp.log(xp.mean(xp.exp(L - top), axis=0))
