"""The objective a minibatch step descends, and the sums an epoch keeps of its steps.

On a batch whose case weights sum to S the objective is scikit-learn's

    loss_factor / S * sum_i w_i R_i  +  alpha / (2 S) * J

(``gpubp.train`` says more); alpha may be one value per network of a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Objective:
    """loss_factor and alpha of the objective above."""

    loss_factor: float = 1.0
    alpha: float = 0.0

    def constants(self, S: float) -> tuple[float, float]:
        """(scale, decay) for ``MLP.backprop_unchecked`` on a batch of weight sum S."""
        return self.loss_factor / S, self.alpha / (2.0 * S)


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
