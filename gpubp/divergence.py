"""When minibatch training has diverged: the rule, and the loss it compares with.

An epoch has diverged when its training loss (``loss_curve_``'s value for it) is not
finite; or is more than GROWTH times the loss at the starting weights; or, once the
loss has fallen, is back above the starting loss and more than GROWTH times the lowest
epoch loss so far (all that was learned lost). That starting
loss is measured once, before a fit's first step (a warm start or ``partial_fit`` keeps
the first fit's), on up to RUNS runs of RUN_ROWS consecutive cases, evenly spaced
through the training set (a few reads of data streamed from disk), with the penalty
term an epoch's loss has; it reads no random numbers, so a fit that
does not diverge takes the steps it took before. A blow-up often happens inside the
first epoch (its mean loss already thousands of times the start), which is why the
starting weights, not the first epoch, are the reference. A network of a stack is
judged alone, and stopped alone.
"""

from __future__ import annotations

import math

import numpy as np

GROWTH = 10.0
RUNS, RUN_ROWS = 16, 64  # the cases the starting loss is measured on: up to 1024


def diverged(loss, start, lowest):
    """Whether ``loss`` (a number, or one per network) has diverged, given ``start`` (the
    loss at the starting weights; None or NaN: unknown, then only a non-finite loss
    counts) and ``lowest`` (the lowest epoch loss before it; inf: none yet)."""
    if isinstance(loss, float):  # one network, once an epoch: no arrays
        if start is None or not math.isfinite(loss):
            return not math.isfinite(loss)
        return loss > GROWTH * start or (loss > start and loss > GROWTH * lowest)
    loss = np.asarray(loss, dtype=np.float64)
    if start is None:
        return ~np.isfinite(loss)
    start = np.asarray(start, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lost = (loss > start) & (loss > GROWTH * np.asarray(lowest, dtype=np.float64))
        return ~np.isfinite(loss) | (loss > GROWTH * start) | lost


def words(loss, epoch: int, start, lowest, learning_rate_init) -> str:
    """Why epoch ``epoch`` counts as diverged, and what to try."""
    if not np.isfinite(loss):
        what = f"became {loss} in epoch {epoch}"
    elif loss > GROWTH * start:
        what = (
            f"grew to {loss:.6g} in epoch {epoch}, more than {GROWTH:g} times the "
            f"{start:.6g} it was at the starting weights"
        )
    else:
        what = (
            f"grew to {loss:.6g} in epoch {epoch}, back above the {start:.6g} it was at the "
            f"starting weights and more than {GROWTH:g} times its lowest, {lowest:.6g}"
        )
    return (
        f"training diverged: the training loss {what}; the weights from before that "
        f"epoch are kept. Try a smaller learning_rate_init (it was {learning_rate_init})."
    )


def starting_loss(net, data, objective, batch_size: int, comm=None):
    """The loss at the network's weights on ``sample`` cases of ``data`` (with
    several ranks, of every rank's): a float, or one per network of a stack (NaN where
    the cases sampled weigh nothing)."""
    backend = net.backend
    xp = backend.xp
    R = net.n_networks or 1
    total, S = None, np.zeros(R)
    for positions in sample(data.n):  # a run at a time: a minibatch's memory, not more
        rows = data.source_rows(positions)
        part = data.subset(backend, backend.to_device(rows), rows)
        _, T = net.propagate(part.X)
        _, R_i, _ = net.evaluate(T, part.Y)
        weighted = xp.sum(R_i if part.w is None else R_i * part.w, axis=-1)
        total = weighted if total is None else total + weighted
        S = S + np.ravel(part.weight_sum())
    parts = [] if total is None else [total]
    if np.any(objective.alpha):
        parts.append(net.J())
    read = [np.ravel(a) for a in _read_together(backend, parts)]  # one read from the device
    sums = np.concatenate([read[0] if total is not None else np.zeros(R), S])
    if comm is not None:
        sums = np.asarray(comm.sum(sums))
    loss_sum, S = sums[:R], sums[R:]
    penalty = read[-1] if np.any(objective.alpha) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = objective.loss_factor * loss_sum / S
        loss = loss + np.asarray(objective.alpha) / (2.0 * max(1, batch_size)) * penalty
    loss = np.where(S > 0, loss, np.nan)
    return loss if net.n_networks is not None else float(loss[0])


def sample(n: int) -> list[np.ndarray]:
    """The positions, run by run, of the cases of n that the starting loss is measured on."""
    if n <= RUNS * RUN_ROWS:
        return [np.arange(start, min(start + RUN_ROWS, n)) for start in range(0, n, RUN_ROWS)]
    starts = np.linspace(0, n - RUN_ROWS, RUNS).astype(np.int64)
    return [np.arange(start, start + RUN_ROWS) for start in starts]


def _read_together(backend, arrays) -> list[np.ndarray]:
    """Device arrays on the host, through one read."""
    if not arrays:
        return []
    xp = backend.xp
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    host = backend.to_host(xp.concatenate(flat)).astype(np.float64)
    sizes = np.cumsum([int(a.shape[0]) for a in flat])[:-1]
    return np.split(host, sizes)
