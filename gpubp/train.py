"""The training loop: a network, an optimiser and data already on the device.

The objective on a batch whose case weights sum to S is scikit-learn's

    loss_factor / S * sum_i w_i R_i  +  alpha / (2 S) * J

(loss_factor = 1 for the log losses, 1 / (2K) for squared error, which makes
it the mean of half squared errors; J is ``MLP.J``: sum_l ||W_l||^2 for weight
decay, or weight elimination's). The loss of an epoch is summed on the
device and read once per epoch; nothing inside a minibatch step waits for the
device. The weight-decay term of an epoch's loss is computed once, at the
weights the epoch ends with (its gradient is in every step).

``run_epoch`` also runs a stack of networks (``MLP(n_networks=R)``): alpha may
be one value per network, the case weights one row per network, and each network
divides by its own weight sum; a network whose cases in a batch all weigh 0
skips that step, as it would alone. ``gpubp.train_stack`` drives the epochs.
On CuPy, the full minibatches of an epoch run as CUDA graph launches where
``gpubp.graphs`` can capture the step (same kernels, same order, same numbers).
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
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from . import graphs
from .errors import DivergenceError, warn_at_caller
from .inputs.data import BufferedOrder, Data
from .progress import progress as progress_bar


@dataclass
class Objective:
    """loss_factor and alpha of the objective above."""

    loss_factor: float = 1.0
    alpha: float = 0.0

    def constants(self, S: float) -> tuple[float, float]:
        """(scale, decay) for ``MLP.backprop_unchecked`` on a batch of weight sum S."""
        return self.loss_factor / S, self.alpha / (2.0 * S)


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
    no_improvement_count: int = 0
    best_theta: Any = None
    stop_reason: str = ""  # one of STOP_REASONS, set when a fit or partial_fit ends


STOP_REASONS = {
    "no_improvement": "the {what} did not improve by tol={tol} for {n} consecutive epochs",
    "max_iter": "max_iter={max_iter} reached without converging",
    "interrupted": "interrupted by the user (Ctrl-C)",
    "preempted": "preempted (SIGTERM or SIGUSR1)",
    "partial_fit": "partial_fit runs one epoch",
    "converged": "lbfgs converged: {message}",
    "not_converged": "lbfgs stopped without converging: {message}",
}


def _say_why_stopped(reason, count, unit, **words) -> None:
    """Print on stderr why training stopped after ``count`` epochs or iterations."""
    text = STOP_REASONS[reason].format(**words)
    print(f"training stopped after {count} {unit}: {text}", file=sys.stderr)


@dataclass
class EpochSums:
    """How far an epoch has gone: the rows of its order passed (batches whose cases all
    weigh 0 included), the steps taken and what they summed. A paused or resumed epoch
    goes on from here, and ends with the sums it would have had."""

    rows: int = 0
    steps: int = 0
    total: Any = 0  # the summed batch losses (a device scalar once a step is taken)
    penalty_weight: Any = 0.0
    graph_cases: int = 0  # cases of the steps run as CUDA graph launches


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
    incremental: bool = False,
    verbose: int = 0,
    comm=None,
    run=None,
) -> None:
    """Epochs of minibatch steps with scikit-learn's stopping rules.

    ``shuffle``: False (the cases in turn), True or "full" (a permutation each epoch)
    or "buffered" (``gpubp.inputs.data.BufferedOrder``). ``verbose``: a progress bar
    (``gpubp.progress``); 2 or more (not True), also scikit-learn's lines on stdout.

    Stops when the training loss (or, with ``validate``, the validation score)
    has not improved by ``tol`` for ``n_iter_no_change`` epochs, after the
    optimiser's own schedule declines to go on. With ``validate`` the best
    weights are restored at the end. A non-finite loss raises DivergenceError
    with the weights of the last finite epoch in place.

    ``run`` (``gpubp.checkpoint.Run``) writes checkpoints: at epoch ends when due, when
    its timer asks (after the step in progress), and when training is interrupted or
    preempted (SIGTERM, SIGUSR1); a resumed run goes on from its ``position``.
    """
    if run is None or run.saved is None:
        history.n_iter = 0
    progress = None
    if verbose and not incremental:
        progress = progress_bar(max_iter, "epochs", "epoch", history.n_iter)
    lines = verbose >= 2 and not isinstance(verbose, bool)  # scikit-learn's own lines too
    reason = "max_iter"
    try:
        with interrupt_after_the_step(preemptible=run is not None) as stop:
            if run is not None:
                run.watch(stop)
            while history.n_iter < max_iter:
                epoch = Epoch(net, data, rng, shuffle, batch_size, run)
                # A diverging epoch is reported below, once, as DivergenceError.
                with np.errstate(over="ignore", invalid="ignore"):
                    total, steps = epoch.take_steps(optimizer, objective, stop, comm)
                    loss = float(total) / data.n_global
                start_theta = epoch.start_theta
                if epoch.quit:
                    reason = epoch.quit
                    warn_at_caller(
                        f"training {STOP_REASONS[reason].split(' (')[0]} after {history.n_iter} "
                        f"complete epochs and {steps} steps of the next; the weights are those "
                        "of the last completed step"
                    )
                    break
                if not math.isfinite(loss):
                    net.theta[...] = start_theta
                    raise DivergenceError(
                        f"the training loss became {loss} in epoch {history.n_iter + 1}; the "
                        "weights from before that epoch are kept. Try a smaller "
                        f"learning_rate_init (it was {optimizer.learning_rate_init})."
                    )
                _record_epoch(net, history, loss, data.n_global, tol, validate, progress, lines)
                optimizer.iteration_ends(history.t)
                if history.no_improvement_count > n_iter_no_change:
                    if optimizer.trigger_stopping():
                        reason = "no_improvement"
                        break
                    history.no_improvement_count = 0
                if incremental:
                    reason = "partial_fit"
                    break
                if run is not None:
                    run.epoch_ended(history.n_iter)
    finally:
        if progress is not None:
            progress.close()
    history.stop_reason = reason
    if verbose and not incremental:
        _say_why_stopped(
            reason,
            history.n_iter,
            "epochs",
            what="training loss" if validate is None else "validation score",
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


def _record_epoch(net, history, loss, n, tol, validate, progress, lines=False) -> None:
    history.n_iter += 1
    history.t += n
    history.loss = loss
    history.loss_curve.append(loss)
    _update_no_improvement(net, history, tol, validate)
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


def _update_no_improvement(net, history: History, tol: float, validate) -> None:
    """scikit-learn's rule: count epochs that did not improve by tol."""
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
    if score < history.best_validation_score + tol:
        history.no_improvement_count += 1
    else:
        history.no_improvement_count = 0
    if score > history.best_validation_score:
        history.best_validation_score = score
        history.best_theta = net.theta.copy()


def fit_lbfgs(
    net, data: Data, objective: Objective, *, max_iter, max_fun, tol, verbose=False
) -> tuple:
    """SciPy's L-BFGS-B over theta; theta and its gradient cross to the host once a call.

    Ctrl-C stops after the current iteration, as in ``fit_stochastic``. Returns
    (iterations, final loss, one of STOP_REASONS).
    """
    backend = net.backend
    scale, decay = objective.constants(data.weight_sum())
    grad = net.backend.xp.empty_like(net.theta)
    out = net.views(grad)

    def loss_and_gradient(x):
        net.theta[...] = backend.to_device(x.astype(net.dtype))
        trace = net.backprop_unchecked(data.X, data.Y, scale, decay, data.w, out)
        return float(trace.loss), backend.to_host(grad).astype(np.float64)

    progress = progress_bar(max_iter, "lbfgs", "iter") if verbose else None
    x0 = backend.to_host(net.theta).astype(np.float64)
    try:
        with interrupt_after_the_step() as stop:

            def callback(intermediate_result):
                if progress is not None:
                    progress.set_postfix({"loss": f"{intermediate_result.fun:.5g}"}, refresh=False)
                    progress.update(1)
                if stop["now"]:
                    raise StopIteration

            result = scipy.optimize.minimize(
                loss_and_gradient,
                x0,
                method="L-BFGS-B",
                jac=True,
                callback=callback,
                options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
            )
    finally:
        if progress is not None:
            progress.close()
    net.theta[...] = backend.to_device(result.x.astype(net.dtype))
    n_iter = min(int(result.nit), max_iter)
    if stop["now"]:
        reason = "interrupted"
        warn_at_caller(
            f"training interrupted by the user after {n_iter} lbfgs iterations; the "
            "weights are those of the last iteration"
        )
    elif result.status != 0:
        reason = "not_converged"
        warn_at_caller(
            f"lbfgs failed to converge after {result.nit} iterations: {result.message}. "
            "Increase max_iter or scale the data.",
            ConvergenceWarning,
        )
    else:
        reason = "converged"
    if verbose:
        _say_why_stopped(reason, n_iter, "iterations", message=result.message)
    return n_iter, float(result.fun), reason
