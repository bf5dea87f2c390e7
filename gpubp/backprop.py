"""The record of one forward and backward pass, every quantity by the textbook's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Backprop:
    """One forward and backward pass at (X, Y), every quantity by the textbook's name.

    With reduction="mean", delta and s carry the factor 1/N.

    Parameters
    ----------
    Z : list of arrays
        The hidden outputs ``[X, Z_1, ..., Z_L]`` (Z_0 is X).
    T : array
        The output pre-activations.
    F : array
        The outputs f = g(T).
    delta : array
        The output errors, dR/dT.
    s : list of arrays
        The back-propagated errors ``[s_1, ..., s_L]`` of the hidden layers.
    loss : array
        The loss, 0-d (or (R,) for a stack).
    gradients : list of (dW_l, db_l)
        The gradient of every layer's weights and biases.
    """

    Z: list
    T: Any
    F: Any
    delta: Any
    s: list
    loss: Any
    gradients: list
