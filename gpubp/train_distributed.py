"""A data-parallel epoch: every rank takes the same optimiser steps over its own rows.

``gpubp.epoch.any_epoch`` runs it when a fit has a communicator
(``gpubp.distributed``); the loop around it is ``gpubp.train``'s.
"""

from __future__ import annotations

import numpy as np

from .inputs.data import BufferedOrder, Data
from .objective import EpochSums, Objective


def run_epoch_distributed(
    net,
    optimizer,
    data: Data,
    objective: Objective,
    batch_size: int,
    order,
    comm,
    stop=None,
    sums: EpochSums | None = None,
):
    """One pass over the global minibatches, this rank computing its cases of each.

    Every rank draws the same permutation of all n_global cases; for each global
    batch it sums the loss and gradient over the cases it holds, and one
    all-reduce over [gradient, loss, weight sum] gives every rank the batch's
    totals, so every rank takes the same optimiser step. A stack all-reduces
    one gradient, loss and weight sum per network; a network whose cases in the
    batch all weigh 0 skips the step, as in ``run_epoch``.

    The same all-reduce carries each rank's stop requests (``stop["save"]``,
    ``stop["quit"]``): when any rank has one, every rank stops after the same step
    (read on the host every step for NumPy buffers; on the device every STOP_EVERY
    steps and at the epoch's last), with what they agreed on in ``stop["agreed"]``:
    (save, quit).
    """
    xp, to_device = net.backend.xp, net.backend.to_device
    sums = EpochSums() if sums is None else sums
    R = net.n_networks or 1
    P = net.theta.shape[-1]
    buf = xp.empty(R * (P + 2) + 3, dtype=net.theta.dtype)
    grad = xp.reshape(buf[: R * P], net.theta.shape)
    losses, sums_w = buf[R * P : R * (P + 1)], buf[R * (P + 1) : R * (P + 2)]
    votes = buf[R * (P + 2) :]
    on_host = isinstance(buf, np.ndarray)
    out = net.views(grad)
    lo, hi = data.offset, data.offset + data.n
    stack = net.n_networks is not None
    decaying = bool(np.any(objective.alpha))
    if isinstance(order, BufferedOrder):
        order = order.materialize()
    for start in range(sums.rows, data.n_global, batch_size):
        end = min(start + batch_size, data.n_global)
        cases = np.arange(start, end) if order is None else order[start:end]
        rows = data.source_rows(cases[(cases >= lo) & (cases < hi)] - lo)
        batch = data.subset(net.backend, to_device(rows), rows)
        trace = net.backprop_unchecked(batch.X, batch.Y, objective.loss_factor, 0.0, batch.w, out)
        losses[...] = xp.reshape(trace.loss, (R,))
        sums_w[...] = to_device(np.broadcast_to(batch.weight_sum(), (R,)), dtype=buf.dtype)
        votes[0], votes[1], votes[2] = _requests(stop)  # on the device: fills, no copy
        comm.allreduce(buf)
        sums.rows = end
        active = None
        if stack:  # the weight sums on the host: which networks step
            S = net.backend.to_host(sums_w).astype(np.float64)
            active = S > 0
            S = np.where(active, S, 1.0)
        if active is None or active.any():
            if stack:
                grad /= net.per_network(S, 1)
                loss = losses / net.per_network(S, 0)
            else:
                S = sums_w[0]  # on the device: the global weight sum
                grad /= S
                loss = losses[0] / S
            if decaying:
                _, decay = objective.constants(S)
                net.add_penalty_gradient(out, 2 * decay)
                sums.penalty_weight = sums.penalty_weight + decay * (end - start) * (
                    1 if active is None else active
                )
            optimizer.step(net.theta, grad, active)
            sums.total = sums.total + loss * (end - start)
            sums.steps += 1
        if stop is not None and (on_host or sums.steps % STOP_EVERY == 0 or end == data.n_global):
            agreed = votes if on_host else net.backend.to_host(votes)
            if agreed.any():
                quit = "preempted" if agreed[1] else "interrupted" if agreed[2] else ""
                stop["agreed"] = (bool(agreed[0]), quit)
                break
    total = sums.total
    if decaying:
        total = total + net.per_network(sums.penalty_weight, 0) * net.J()
    return total, sums.steps


STOP_EVERY = 32  # steps between the device reads of the ranks' stop requests (CuPy)


def _requests(stop) -> tuple[float, float, float]:
    """This rank's requests (save, preempted, interrupted) as numbers to sum over the ranks."""
    if stop is None or not stop["now"]:
        return (0.0, 0.0, 0.0)
    quit = stop["quit"]
    return (float(bool(stop["save"])), float(quit == "preempted"), float(quit == "interrupted"))
