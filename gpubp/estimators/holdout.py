"""Early stopping's held-out cases: the split, and the score and loss measured on them.

``validation_fraction`` of the cases is held out (stratified for a classifier with one
output) by index: the training part is ``data.with_rows``, nothing is copied.
Data-parallel, each rank holds out part of its own rows, and the score and loss come
from sums over all ranks, so every rank stops at the same epoch. Streamed data is
scored a chunk at a time (one read from the device each).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ..distributed import agree
from ..inputs.data import held_out_pieces
from ..inputs.shards import shards
from ..inputs.sources import Rows


def split_validation(net, data, y_host, n_outputs, targets, objective, rng, comm, fraction, batch):
    """(the training part of ``data``, ``validate``): ``validate()`` gives the validation
    score and loss (one each per network of a stack) at the network's weights."""
    streamed = isinstance(y_host, Rows)
    stratify = None
    if targets.classifier and n_outputs == 1:
        stratify = y_host if not streamed else y_host.take(data.source_rows(np.arange(data.n)))
    seed = int(rng.integers(2**31 - 1))
    train, val = agree(
        comm,
        lambda: train_test_split(
            np.arange(data.n), test_size=fraction, stratify=stratify, random_state=seed
        ),
    )
    n_val = len(val) if comm is None else int(comm.sum([len(val)])[0])
    if n_val < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size "
            "of your dataset."
        )
    training = data.with_rows(train)
    training.offset, training.n_total = shards(comm, training.n, data.n_features, n_outputs)
    pieces = held_out_pieces(data, val, y_host, net.backend, batch)

    def validate():
        return _scores(net, pieces, targets, objective, comm)

    return training, validate


def _scores(net, pieces, targets, objective, comm):
    """The validation score and loss: one read from the device per piece of the
    held-out cases."""
    backend = net.backend
    xp = backend.xp
    R = net.n_networks or 1
    J = net.J() if objective.alpha else None
    sums = None
    for piece, y_piece in pieces():
        _, T = net.propagate(piece.X)
        F, R_i, _ = net.evaluate(T, piece.Y)
        loss_sum = xp.sum(R_i if piece.w is None else R_i * piece.w, axis=-1)
        if J is None:
            J = xp.zeros(loss_sum.shape, dtype=F.dtype)
        packed = backend.to_host(xp.concatenate([xp.reshape(a, (-1,)) for a in (F, loss_sum, J)]))
        F_host = packed[: -2 * R].reshape((R, *F.shape[-2:]))
        part = np.stack(
            [
                np.concatenate(
                    [
                        targets.score_sums(F_host[r], y_piece, piece.w_host),
                        [objective.loss_factor * packed[-2 * R + r], piece.weight_sum()],
                    ]
                )
                for r in range(R)
            ]
        )
        sums = part if sums is None else sums + part
    penalties = packed[-R:]
    results = []
    for r in range(R):
        network_sums = sums[r] if comm is None else comm.sum(sums[r])
        loss_sum, S = network_sums[-2], network_sums[-1]
        loss = loss_sum / S + objective.alpha / (2 * S) * float(penalties[r])
        results.append((targets.score_from_sums(network_sums[:-2]), float(loss)))
    if net.n_networks is None:
        return results[0]
    return tuple(np.array(column) for column in zip(*results))
