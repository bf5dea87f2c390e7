"""Where a network keeps its weights: one flat vector theta (W_1, b_1, W_2, b_2, ...,
one row per network for a stack), of which ``W[l]`` and ``b[l]`` are views, so that an
optimiser updates all of them at once and a checkpoint or a collective moves one
array. ``gpubp.network.MLP`` is a ``Parameters``.
"""

from __future__ import annotations

import numpy as np

from .backend import NUMPY
from .errors import InputError
from .validation import real_array


def count_parameters(layer_sizes) -> int:
    """Weights and biases of a network ``[p, M_1, ..., M_L, K]``: sum of (fan_in + 1) fan_out."""
    return sum((m + 1) * n for m, n in zip(layer_sizes[:-1], layer_sizes[1:]))


class Parameters:
    """theta, its views, and the weights in and out as NumPy arrays (needs ``layer_sizes``,
    ``n_networks``, ``dtype`` and ``backend``)."""

    @property
    def n_layers(self) -> int:
        """Number of weight layers, L + 1."""
        return len(self.layer_sizes) - 1

    @property
    def _xp_dtype(self):
        return getattr(self.backend.xp, self.dtype.name)

    @property
    def _lead(self) -> tuple[int, ...]:
        """The leading network axis of every weight array: () or (R,)."""
        return () if self.n_networks is None else (self.n_networks,)

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]`` as NumPy arrays: one copy of theta to
        the host, of which they are views (with the network axis first for a stack)."""
        theta = self.backend.to_host(self.theta)
        if theta is self.theta:
            theta = theta.copy()
        return self.views(theta, np)

    def set_weights(self, weights) -> None:
        """Set every (W_l, b_l) from arrays of any backend; shapes are checked.

        The weights live in one flat vector ``theta`` (W_1, b_1, W_2, b_2, ...)
        and ``W[l]``, ``b[l]`` are views of it, so an optimiser can update all
        of them at once.

        Parameters
        ----------
        weights : sequence of (W_l, b_l)
            ``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]``, W_l of shape (fan_in, fan_out),
            with the network axis first for a stack.
        """
        weights = list(weights)
        if len(weights) != self.n_layers:
            raise InputError(f"weights has {len(weights)} layers, the network {self.n_layers}")
        flat = []
        for l, (pair, fan_in, fan_out) in enumerate(
            zip(weights, self.layer_sizes[:-1], self.layer_sizes[1:]), start=1
        ):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(f"weights[{l - 1}] must be a pair (W_{l}, b_{l})")
            Wl = real_array(f"W_{l}", self.backend.to_host(pair[0]), NUMPY, self.dtype)
            bl = real_array(f"b_{l}", self.backend.to_host(pair[1]), NUMPY, self.dtype)
            shape_W, shape_b = (*self._lead, fan_in, fan_out), (*self._lead, fan_out)
            if Wl.shape != shape_W or bl.shape != shape_b:
                raise InputError(
                    f"layer {l}: W has shape {Wl.shape} and b {bl.shape}, "
                    f"expected {shape_W} and {shape_b}"
                )
            flat += [a.astype(self.dtype, copy=False).reshape(*self._lead, -1) for a in (Wl, bl)]
        self.set_theta(np.concatenate(flat, axis=-1))

    def set_theta(self, theta) -> None:
        """Adopt ``theta`` (any backend) as the flat parameter vector, (R, P) for a stack."""
        self.theta = self.backend.to_device(theta, dtype=self._xp_dtype)
        expected = (*self._lead, self.n_parameters)
        if tuple(self.theta.shape) != expected:
            raise InputError(f"theta has shape {tuple(self.theta.shape)}, expected {expected}")
        views = self.views(self.theta)
        self.W, self.b = [W for W, _ in views], [b for _, b in views]
        # the biases as they broadcast against A_l: (R, 1, fan_out) for a stack
        xp = self.backend.xp
        self._bias = (
            self.b if not self._lead else [xp.reshape(b, (b.shape[0], 1, -1)) for b in self.b]
        )

    def views(self, flat, xp=None):
        """``[(W_1, b_1), ...]`` as views of a flat vector laid out like ``theta`` (an
        array of ``xp``, the backend's array module unless given; one row per network
        for a stack)."""
        xp, views, start = xp or self.backend.xp, [], 0
        lead = self._lead
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            stop = start + fan_in * fan_out
            views.append(
                (
                    xp.reshape(flat[..., start:stop], (*lead, fan_in, fan_out)),
                    flat[..., stop : stop + fan_out],
                )
            )
            start = stop + fan_out
        return views

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases."""
        return count_parameters(self.layer_sizes)
