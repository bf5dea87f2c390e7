"""One epoch of minibatch steps, resident or streamed, one rank or several.

``run_epoch`` takes the steps of one pass over the data (on CuPy the full
minibatches as CUDA graph launches where ``gpubp.graphs`` can capture the step);
``any_epoch`` is it, or with several ranks ``gpubp.train_distributed``'s. An
``Epoch`` is one of the loop's (``gpubp.train.run_epochs``): its order drawn from
the generator, and its steps paused for the checkpoints that a run asks for; a
``Position`` is where a checkpoint finds it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import graphs
from .inputs.data import BufferedOrder, Data
from .objective import EpochSums, Objective
from .train_distributed import run_epoch_distributed


def run_epoch(
    net,
    optimizer,
    data: Data,
    objective: Objective,
    batch_size: int,
    order=None,
    stop=None,
    sums: EpochSums | None = None,
):
    """One pass over the data in minibatches: the summed batch losses (device) and the
    number of steps taken, fewer than the batches when ``stop["now"]`` was set.

    ``sums`` (updated in place) carries the steps already taken: the pass goes on from
    the next one. Streamed data comes a chunk at a time (a whole number of minibatches
    each, in the epoch's order); the steps and the running loss go on across the
    chunks as over resident data, so both take the same steps."""
    run = _Pass(net, optimizer, objective, batch_size, stop, sums)
    if not data.streamed:
        if isinstance(order, BufferedOrder):
            order = order.materialize()
        run.over(data, data.source_rows(order), run.sums.rows)
        return run.result()
    chunks = data.chunks(net.backend, order, batch_size, skip=run.sums.rows)
    with contextlib.closing(chunks):
        for chunk in chunks:
            run.over(chunk, None, 0)
            if stop is not None and stop["now"]:
                break
    return run.result()


class _Pass:
    """The minibatch steps of one epoch, over one or more pieces of the data."""

    def __init__(self, net, optimizer, objective: Objective, batch_size: int, stop, sums=None):
        self.net, self.optimizer, self.objective = net, optimizer, objective
        self.batch_size, self.stop = batch_size, stop
        self.sums = EpochSums() if sums is None else sums
        self.entry = self.sums.rows
        self.grad = net.backend.xp.empty_like(net.theta)
        self.out = net.views(self.grad)

    def over(self, data: Data, order, first: int) -> None:
        """The steps over ``data`` (resident) in ``order`` (rows of data.X; None: in turn),
        from its row ``first`` (a multiple of the batch size)."""
        net, optimizer, batch_size, stop = self.net, self.optimizer, self.batch_size, self.stop
        grad, out, sums = self.grad, self.out, self.sums
        graphed = graphs.for_epoch(net, optimizer, data, self.objective, batch_size)
        if graphed is not None and first < graphed.n_steps * batch_size:
            # the full minibatches, one CUDA graph launch each
            sums.total, steps = graphed.run(
                optimizer, data.Y, order, stop, sums.total, first // batch_size
            )
            sums.steps += steps
            sums.rows += steps * batch_size
            sums.graph_cases += steps * batch_size
            first += steps * batch_size
            order_dev = graphed.order  # the graph's device copy of the order
        elif order is not None:
            order_dev = net.backend.to_device(order)
        for start in range(first, data.n, batch_size):
            # a quit at once; a checkpoint once this pass has moved on, so it always does
            if stop is not None and stop["now"] and (stop["quit"] or sums.rows > self.entry):
                break
            end = min(start + batch_size, data.n)
            if order is None:
                idx = rows = slice(start, end)
            else:
                rows, idx = order[start:end], order_dev[start:end]
            batch = data.subset(net.backend, idx, rows)
            S = batch.weight_sum()
            active = None
            if np.ndim(S):  # a stack's networks, each with its own weight sum
                active = S > 0
                S = np.where(active, S, 1.0)
            sums.rows += end - start
            if not np.any(active if active is not None else S > 0):
                continue  # every case of this batch has weight 0: nothing to learn from
            scale, decay = self.objective.constants(S)
            trace = net.backprop_unchecked(
                batch.X, batch.Y, scale, decay, batch.w, out, penalty=False
            )
            optimizer.step(net.theta, grad, active)
            sums.total = sums.total + trace.loss * (end - start)
            sums.penalty_weight = sums.penalty_weight + decay * (end - start) * (
                1 if active is None else active
            )
            sums.steps += 1

    def result(self):
        """(summed losses with the weight-decay term, steps taken)."""
        net, sums = self.net, self.sums
        total, weight = sums.total, sums.penalty_weight
        if sums.graph_cases:
            weight = self.objective.constants(float(self.batch_size))[1] * sums.graph_cases + weight
        if np.any(weight):
            total = total + net.per_network(weight, 0) * net.J()
        return total, sums.steps


def any_epoch(
    net, optimizer, data: Data, objective: Objective, batch_size, order, stop, comm, sums=None
):
    """``run_epoch``, or with a communicator ``run_epoch_distributed`` (where every rank
    stops at the same step): (total, steps)."""
    if comm is None:
        return run_epoch(net, optimizer, data, objective, batch_size, order, stop, sums)
    return run_epoch_distributed(
        net, optimizer, data, objective, batch_size, order, comm, stop, sums
    )


@dataclass
class Position:
    """Where a run is inside an epoch: the generator's state before the epoch drew its
    order, the sums of the steps taken, and the weights the epoch started from."""

    epoch_rng: dict
    sums: EpochSums
    start_theta: Any


class Epoch:
    """An epoch of the loop: its order, and its steps with the pauses that a run's
    checkpoints ask for (``stop["save"]``); on a quit, a checkpoint of where it stopped.
    A resumed run's first epoch starts from the run's ``position``."""

    def __init__(self, net, data: Data, rng, shuffle, batch_size: int, run=None):
        position = None if run is None else run.take_position()
        if position is not None:
            rng.bit_generator.state = position.epoch_rng
        self.rng_state = None if run is None else rng.bit_generator.state  # for a checkpoint
        self.order = data.epoch_order(rng, shuffle, batch_size)
        if position is None:
            self.sums, self.start_theta = EpochSums(), net.theta.copy()
        else:
            self.sums, self.start_theta = position.sums, position.start_theta
        self.net, self.data, self.batch_size, self.checkpoints = net, data, batch_size, run

    def position(self) -> Position:
        return Position(self.rng_state, self.sums, self.start_theta)

    def take_steps(self, optimizer, objective: Objective, stop, comm):
        """``any_epoch`` from where the epoch is: (total, steps). ``quit`` says why it
        stopped early ("interrupted", "preempted"; "" if it did not): with several ranks,
        what they agreed on, so that all of them stop at the same step."""
        net, data, sums = self.net, self.data, self.sums
        while True:
            total, steps = any_epoch(
                net, optimizer, data, objective, self.batch_size, self.order, stop, comm, sums
            )
            if comm is None:
                save, self.quit = stop["save"], stop["quit"]
            else:
                save, self.quit = stop.pop("agreed", (False, ""))
            if not save or self.quit or sums.rows >= data.n_global:
                break  # (a checkpoint asked for at the epoch's end waits a step)
            self.checkpoints.pause(self.position())  # and go on
        if self.quit and self.checkpoints is not None:
            self.checkpoints.pause(self.position())
        return total, steps
