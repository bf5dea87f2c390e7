"""Where an estimator's weights are: on its network, or on the host (``_weights``) before
one is built (after ``gpubp.load`` sets ``coefs_``, after unpickling); and pickling, which
keeps NumPy copies only, so that a model trained on a GPU unpickles where there is no CuPy.
"""

from __future__ import annotations

import copy

import numpy as np

from ..backend import to_numpy
from ..checkpoint import ON_DEVICE
from ..optim import moved
from .plan import ADDED_LATER


class HeldWeights:
    """``BaseMLP``'s weights and pickling (a mixin)."""

    # -- the weights -------------------------------------------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """[W_1, ..., W_{L+1}] as NumPy arrays, read from the network when asked for (one
        copy to the host); assigning a list sets the network's weights."""
        return [W for W, _ in self._host_weights()]

    @coefs_.setter
    def coefs_(self, value):
        self._set_host_weights(coefs=value)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """[b_1, ..., b_{L+1}] as NumPy arrays; see ``coefs_``."""
        return [b for _, b in self._host_weights()]

    @intercepts_.setter
    def intercepts_(self, value):
        self._set_host_weights(intercepts=value)

    def _has_weights(self) -> bool:
        return self.__dict__.get("_net") is not None or "_weights" in self.__dict__

    def _host_weights(self):
        net = self.__dict__.get("_net")
        if net is not None:
            return net.get_weights()
        weights = self.__dict__.get("_weights")
        if weights is None or None in weights:
            raise AttributeError(f"this {type(self).__name__} has no weights yet: call fit")
        return list(zip(*weights))

    def _set_host_weights(self, coefs=None, intercepts=None):
        """Weights from the host, for the network if there is one, else kept until one is
        built (``load`` sets coefs_ and then intercepts_)."""
        net = self.__dict__.get("_net")
        if net is None:
            W, b = self.__dict__.get("_weights") or (None, None)
        else:
            W, b = zip(*net.get_weights())
        W = W if coefs is None else list(coefs)
        b = b if intercepts is None else list(intercepts)
        if net is None:
            self._weights = (W, b)
        else:
            net.set_weights(list(zip(W, b)))

    # -- pickling ----------------------------------------------------------------------

    def __copy__(self):
        """A shallow copy sharing the network, optimiser and record (no host copies, as a
        pickle's state would make): scikit-learn's callbacks copy the estimator each epoch."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        return twin

    def __setstate__(self, state):
        """A pickle written before a parameter was added gets its default."""
        super().__setstate__(state)
        for name in self._get_param_names():
            if name in ADDED_LATER:
                self.__dict__.setdefault(name, ADDED_LATER[name])

    def __getstate__(self):
        """NumPy only: a model trained on a GPU unpickles where there is no CuPy.

        A copy: pickling leaves the estimator, its network and its optimiser as they were.
        """
        state = dict(super().__getstate__())
        if self._has_weights():
            weights = self._host_weights()
            state["_weights"] = ([W for W, _ in weights], [b for _, b in weights])
        state.pop("_net", None)
        state.pop("_checked_input", None)
        state.pop("_last_targets", None)
        if "_optimizer" in state:
            state["_optimizer"] = moved(state["_optimizer"], to_numpy)
        history = state.get("_history")
        on_device = [k for k in ON_DEVICE if getattr(history, k, None) is not None]
        if on_device:  # the best weights, and a stack's kept ones: host copies
            history = state["_history"] = copy.copy(history)
            for key in on_device:
                setattr(history, key, to_numpy(getattr(history, key)))
        return state
