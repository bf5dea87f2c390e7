"""Optimisers over one flat parameter vector theta and its gradient.

They know parameters and gradients, nothing of networks: ``step(theta, grad)``
updates theta in place, so views of it (a network's W_l and b_l) see the
change, and may overwrite grad (the loop recomputes it every step). Their own
state (velocity, moments) has theta's shape and dtype. Hyper-parameters are
Python floats, so float32 state stays float32.

For a stack of R networks theta is (R, P) and ``learning_rate_init`` may be one
rate per network (a vector of R numbers): the rates are kept on the host and
sent to the device as an (R, 1) column when they change, and every formula
broadcasts them over the rows. ``step(theta, grad, active)`` leaves the
networks whose ``active`` entry is False exactly as they were (weights and
state), as if they had skipped the step.

A CUDA graph of a training step (``gpubp.graphs``) cannot read Python floats
that change from step to step, so the fused optimisers also offer the step in
three parts: ``rates(n)``, the rate each of the next n steps uses (host,
(n,) or (n, R)); ``apply(theta, grad, rate)``, the update with that rate as a
device array; and ``advance(n)``, which counts n steps as taken.
"""

from __future__ import annotations

import math
import sys

import numpy as np

SCHEDULES = ("constant", "invscaling", "adaptive")
BLOCK = 1 << 16  # elements per piece of the reference update (its arrays stay in the CPU cache)


def _rate(value):
    """A learning rate as a Python float, or a float64 vector of one per network."""
    if np.ndim(value) == 0:
        return float(value)
    return np.array(value, dtype=np.float64)


def _on_device_like(theta, host, dtype=None):
    """A host vector as an array of theta's array module, in theta's dtype unless given."""
    module = sys.modules[type(theta).__module__.partition(".")[0]]
    return module.asarray(host, dtype=theta.dtype if dtype is None else dtype)


SMALL = 1 << 20  # bytes: a theta up to this size is written by a copy (see ``descend``)


def small(theta) -> bool:
    """Whether the reference update writes theta by a copy: NumPy's theta of at most SMALL
    bytes (an array without ``nbytes``, of the array API, is updated in place)."""
    return getattr(theta, "nbytes", SMALL + 1) <= SMALL


def descend(theta, step, by_copy: bool = False) -> None:
    """theta -= step for the reference (NumPy) update; step may be overwritten.

    With ``by_copy``, theta is written by a plain copy of theta - step instead of in
    place. After a multithreaded BLAS product has read a small theta on every core, an
    in-place update upgrades each shared cache line one at a time: for 784-128-10 on a
    2-core VM, 150 us a step against 60 us (benchmarks/RESULTS.md, "Levers"). A theta
    larger than a core's cache streams from memory, where the copy's extra pass costs
    more than it saves (10% slower for 784-512-512-10), so the optimisers copy only
    when ``small(theta)``. Both give the same bits.
    """
    if not by_copy:
        theta -= step
        return
    if isinstance(theta, np.ndarray):
        np.subtract(theta, step, out=step)
    else:
        step[...] = theta - step
    theta[...] = step


def blocks(shape, rate):
    """Index tuples covering an array of ``shape``, (P,) or (R, P), in pieces of about
    BLOCK elements, each with its part of ``rate`` (a number, or an (R, 1) column).

    The reference formulas run piece by piece, so that the several passes of an update
    read theta, grad and the state from the cache rather than from memory (for a stack
    of 16 networks of 100,000 weights, Adam's step takes 1.4x less time).
    """
    column = np.ndim(rate) != 0
    if len(shape) == 1:
        for c in range(0, shape[0], BLOCK):
            yield (slice(c, c + BLOCK),), rate
        return
    R, P = shape
    if P >= BLOCK:
        for r in range(R):
            for c in range(0, P, BLOCK):
                yield (slice(r, r + 1), slice(c, c + BLOCK)), rate[r : r + 1] if column else rate
        return
    rows = BLOCK // P
    for r in range(0, R, rows):
        yield (slice(r, r + rows),), rate[r : r + rows] if column else rate


class _Optimizer:
    """What SGD and Adam share: per-network rates and the masked step."""

    _state: tuple[str, ...] = ()

    def _set_learning_rate(self, value) -> None:
        self.learning_rate = _rate(value)
        self._rate_column = None  # the device copy, made again when next needed

    def _column(self, theta, host=None):
        """The learning rate (or ``host``) as a Python float, or as an (R, 1) device column."""
        host = self.learning_rate if host is None else host
        if np.ndim(host) == 0:
            return float(host)
        if host is not self.learning_rate:
            return _on_device_like(theta, np.reshape(host, (-1, 1)))
        if self.__dict__.get("_rate_column") is None:
            self._rate_column = _on_device_like(theta, np.reshape(host, (-1, 1)))
        return self._rate_column

    def step(self, theta, grad, active=None) -> None:
        """One update of theta from grad; networks of a stack with ``active`` False skip it."""
        if active is None or np.all(active):
            self._step(theta, grad, None)
            return
        idle = _on_device_like(theta, np.flatnonzero(~np.asarray(active)), np.int64)
        arrays = [theta, *(getattr(self, k) for k in self._state if getattr(self, k) is not None)]
        kept = [a[idle] for a in arrays]
        self._step(theta, grad, np.asarray(active))
        for a, saved in zip(arrays, kept):
            a[idle] = saved

    def rates(self, n: int) -> np.ndarray:
        """The rate each of the next n steps would use: (n,) or (n, R) float64 (the
        learning rate itself, which changes only between epochs)."""
        shape = np.shape(self.learning_rate)
        return np.array(np.broadcast_to(self.learning_rate, (n, *shape)), dtype=np.float64)

    def advance(self, n: int) -> None:
        """Count n steps taken through ``apply``."""

    def network(self, r: int):
        """Network r's optimiser, alone: its rows of the state, its rate and step count."""
        state = dict(self.__dict__, _rate_column=None)
        for key in self._state:
            if state.get(key) is not None:
                state[key] = state[key][r].copy()
        for key in ("learning_rate", "learning_rate_init"):
            if np.ndim(state.get(key, 0)):
                state[key] = float(state[key][r])
        if np.ndim(state.get("t", 0)):
            state["t"] = int(state["t"][r])
        copy = object.__new__(type(self))
        copy.__dict__.update(state)
        return copy

    def state(self) -> dict:
        """Everything the optimiser keeps between steps, for a checkpoint: its state
        arrays (theta's array module), rates, step counts and settings."""
        return {k: v for k, v in self.__dict__.items() if k not in ("fused", "_rate_column")}

    def load_state(self, state: dict, to_device) -> None:
        """Take back what ``state`` gave (its arrays through ``to_device``, into the
        arrays this optimiser has), so that the next step is the one that would have come."""
        for key, value in state.items():
            if key in self._state and getattr(self, key) is not None:
                getattr(self, key)[...] = to_device(value)
            elif key == "learning_rate":
                self._set_learning_rate(value)
            else:
                setattr(self, key, value)

    def iteration_ends(self, t: int) -> None:
        """Called after each epoch with t, the number of cases seen so far."""

    def trigger_stopping(self, networks=None):
        """Training stopped improving: True to stop. For a stack, ``networks`` (a boolean
        mask) says which stopped improving; the answer is a mask of those that stop."""
        return True if networks is None else np.asarray(networks, dtype=bool)


class SGD(_Optimizer):
    """Gradient descent with a learning-rate schedule and (Nesterov) momentum.

    theta <- theta + v, v <- momentum v - gamma_r grad; with Nesterov's
    momentum theta <- theta + momentum v - gamma_r grad. With momentum 0 this is
    the textbook's theta <- theta - gamma_r grad.

    Schedules: "constant"; "invscaling", gamma_r = gamma_0 / (t + 1)^power_t
    with t the number of cases seen; "adaptive", gamma_r / 5 whenever training
    stops improving, until gamma_r <= 1e-6.
    """

    _state = ("velocity",)

    def __init__(
        self,
        xp,
        theta,
        learning_rate_init=0.1,
        schedule="constant",
        momentum=0.9,
        nesterov=True,
        power_t=0.5,
        fused=None,
    ):
        self.fused = fused
        self.learning_rate_init = _rate(learning_rate_init)
        self._set_learning_rate(learning_rate_init)
        self.schedule = schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = xp.zeros_like(theta) if momentum else None

    def _step(self, theta, grad, active) -> None:
        lr = self._column(theta)
        if self.fused is not None:
            self._fused_step(theta, grad, lr)
            return
        by_copy = small(theta)
        for i, lr_i in blocks(theta.shape, lr):
            v = None if self.velocity is None else self.velocity[i]
            self._update(theta[i], grad[i], v, lr_i, by_copy)

    def _update(self, theta, grad, v, lr, by_copy=False) -> None:
        grad *= lr  # now gamma_r grad
        if v is None:
            descend(theta, grad, by_copy)
            return
        v *= self.momentum
        v -= grad
        if self.nesterov:  # theta + momentum v - gamma_r grad
            grad -= self.momentum * v
        else:
            grad[...] = -v
        descend(theta, grad, by_copy)

    def apply(self, theta, grad, rate) -> None:
        """theta's update with learning rate ``rate`` (a device array; fused kernels only)."""
        self._fused_step(theta, grad, rate)

    def _fused_step(self, theta, grad, lr) -> None:
        c, k = theta.dtype.type, self.fused
        lr = c(lr) if isinstance(lr, float) else lr
        if self.velocity is None:
            k.SGD(grad, lr, theta, theta)
            return
        kernel = k.SGD_NESTEROV if self.nesterov else k.SGD_MOMENTUM
        kernel(grad, lr, c(self.momentum), self.velocity, theta, self.velocity, theta)

    def iteration_ends(self, t: int) -> None:
        if self.schedule == "invscaling":
            self._set_learning_rate(self.learning_rate_init / (t + 1) ** self.power_t)

    def trigger_stopping(self, networks=None):
        if networks is None:
            if self.schedule != "adaptive" or self.learning_rate <= 1e-6:
                return True
            self._set_learning_rate(self.learning_rate / 5.0)
            return False
        networks = np.asarray(networks, dtype=bool)
        rates = np.broadcast_to(self.learning_rate, networks.shape)
        stop = networks & ((self.schedule != "adaptive") | (rates <= 1e-6))
        cut = networks & ~stop
        if cut.any():
            self._set_learning_rate(np.where(cut, rates / 5.0, rates))
        return stop


class Adam(_Optimizer):
    """Adam (Kingma & Ba): moment estimates m, v with bias correction.

    ``t`` counts the steps taken, one count per network once networks of a stack
    have skipped different steps.
    """

    _state = ("m", "v")

    def __init__(
        self,
        xp,
        theta,
        learning_rate_init=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        fused=None,
    ):
        self.fused = fused
        self.learning_rate_init = _rate(learning_rate_init)
        self._set_learning_rate(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.m = xp.zeros_like(theta)
        self.v = xp.zeros_like(theta)

    def _gamma(self, t):
        """The step size of step t: the rate with Adam's bias corrections (host)."""
        b1, b2 = self.beta_1, self.beta_2
        if np.ndim(self.learning_rate) == 0:
            return self.learning_rate * math.sqrt(1 - b2**t) / (1 - b1**t)
        return self.learning_rate * (math.sqrt(1 - b2**t) / (1 - b1**t))

    def rates(self, n: int) -> np.ndarray:
        """Adam's step sizes for the next n steps: the rate with the bias corrections of
        steps t + 1 .. t + n, computed as ``step`` computes each."""
        shape = np.shape(self.learning_rate)
        rows = [np.broadcast_to(self._rate_at(j), shape) for j in range(1, n + 1)]
        return np.array(rows, dtype=np.float64).reshape(n, *shape)

    def _rate_at(self, j: int):
        t = np.ravel(self.t)
        if np.all(t == t[0]):
            return self._gamma(int(t[0]) + j)
        return (
            self.learning_rate * np.sqrt(1 - self.beta_2 ** (t + j)) / (1 - self.beta_1 ** (t + j))
        )

    def advance(self, n: int) -> None:
        self.t = self.t + n

    def apply(self, theta, grad, rate) -> None:
        """theta's update with step size ``rate`` (a device array; fused kernels only)."""
        self._fused_adam(theta, grad, rate)

    def _fused_adam(self, theta, grad, gamma) -> None:
        c = theta.dtype.type
        self.fused.ADAM(
            grad,
            c(gamma) if isinstance(gamma, float) else gamma,
            c(self.beta_1),
            c(self.beta_2),
            c(self.epsilon),
            self.m,
            self.v,
            theta,
            self.m,
            self.v,
            theta,
        )

    def _step(self, theta, grad, active) -> None:
        if active is None:
            self.t = self.t + 1
        else:  # from now on one count per network
            self.t = np.broadcast_to(self.t, active.shape) + active
        b1, b2 = self.beta_1, self.beta_2
        t = np.ravel(self.t)
        if np.all(t == t[0]) and np.ndim(self.learning_rate) == 0:
            gamma = self._gamma(int(t[0]))
        elif np.all(t == t[0]):  # one step count for all: the rates stay where they are
            t0 = int(t[0])
            gamma = self._column(theta) * (math.sqrt(1 - b2**t0) / (1 - b1**t0))
        else:  # a network yet to take its first step (t = 0) skips this one: any finite rate
            t = np.maximum(t, 1)
            gamma = self._column(theta, self.learning_rate * np.sqrt(1 - b2**t) / (1 - b1**t))
        if self.fused is not None:
            self._fused_adam(theta, grad, gamma)
            return
        by_copy = small(theta)
        for i, gamma_i in blocks(theta.shape, gamma):
            m, v = self.m[i], self.v[i]
            m *= b1
            m += (1 - b1) * grad[i]
            v *= b2
            v += (1 - b2) * (grad[i] * grad[i])
            denominator = v**0.5
            denominator += self.epsilon
            step = gamma_i * m
            step /= denominator
            descend(theta[i], step, by_copy)


def moved(optimizer, to_device, fused=None):
    """A copy of ``optimizer`` whose state went through ``to_device``, using ``fused``."""
    state = dict(optimizer.__dict__, fused=fused, _rate_column=None)
    for key in ("velocity", "m", "v"):
        if state.get(key) is not None:
            state[key] = to_device(state[key])
    copy = object.__new__(type(optimizer))
    copy.__dict__.update(state)
    return copy
