"""Optimisers over one flat parameter vector theta and its gradient.

They know parameters and gradients, nothing of networks: ``step(theta, grad)``
updates theta in place, so views of it (a network's W_l and b_l) see the
change, and may overwrite grad (the loop recomputes it every step). Their own
state (velocity, moments) has theta's shape and dtype. Hyper-parameters are
Python floats, so float32 state stays float32.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "invscaling", "adaptive")


class SGD:
    """Gradient descent with a learning-rate schedule and (Nesterov) momentum.

    theta <- theta + v, v <- momentum v - gamma_r grad; with Nesterov's
    momentum theta <- theta + momentum v - gamma_r grad. With momentum 0 this is
    the textbook's theta <- theta - gamma_r grad.

    Schedules: "constant"; "invscaling", gamma_r = gamma_0 / (t + 1)^power_t
    with t the number of cases seen; "adaptive", gamma_r / 5 whenever training
    stops improving, until gamma_r <= 1e-6.
    """

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
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.schedule = schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = xp.zeros_like(theta) if momentum else None

    def step(self, theta, grad) -> None:
        if self.fused is not None:
            self._fused_step(theta, grad)
            return
        grad *= self.learning_rate  # now gamma_r grad
        if self.velocity is None:
            theta -= grad
            return
        v = self.velocity
        v *= self.momentum
        v -= grad
        if self.nesterov:
            theta += self.momentum * v - grad
        else:
            theta += v

    def _fused_step(self, theta, grad) -> None:
        c = theta.dtype.type
        lr, k = c(self.learning_rate), self.fused
        if self.velocity is None:
            k.SGD(grad, lr, theta, theta)
            return
        kernel = k.SGD_NESTEROV if self.nesterov else k.SGD_MOMENTUM
        kernel(grad, lr, c(self.momentum), self.velocity, theta, self.velocity, theta)

    def iteration_ends(self, t: int) -> None:
        """Called after each epoch with t, the number of cases seen so far."""
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (t + 1) ** self.power_t

    def trigger_stopping(self) -> bool:
        """Training stopped improving: True to stop, False if gamma was cut instead."""
        if self.schedule != "adaptive" or self.learning_rate <= 1e-6:
            return True
        self.learning_rate /= 5.0
        return False


class Adam:
    """Adam (Kingma & Ba): moment estimates m, v with bias correction."""

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
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.m = xp.zeros_like(theta)
        self.v = xp.zeros_like(theta)

    def step(self, theta, grad) -> None:
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        gamma = self.learning_rate * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        if self.fused is not None:
            c = theta.dtype.type
            self.fused.ADAM(
                grad,
                c(gamma),
                c(b1),
                c(b2),
                c(self.epsilon),
                self.m,
                self.v,
                theta,
                self.m,
                self.v,
                theta,
            )
            return
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        self.v += (1 - b2) * (grad * grad)
        theta -= gamma * self.m / (self.v**0.5 + self.epsilon)

    def iteration_ends(self, t: int) -> None:
        pass

    def trigger_stopping(self) -> bool:
        return True


def moved(optimizer, to_device, fused=None):
    """A copy of ``optimizer`` whose state went through ``to_device``, using ``fused``."""
    state = dict(optimizer.__dict__, fused=fused)
    for key in ("velocity", "m", "v"):
        if state.get(key) is not None:
            state[key] = to_device(state[key])
    copy = object.__new__(type(optimizer))
    copy.__dict__.update(state)
    return copy
