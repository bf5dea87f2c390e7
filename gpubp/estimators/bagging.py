"""Bagging (ESL 8.7, named in 11.5.6 beside averaging the random starts).

Network r of the stack trains on a bootstrap sample of the training cases: n cases
drawn with replacement, as scikit-learn's ``BaggingClassifier`` draws them. A case
drawn c times weighs c (times its sample weight), so the sample is a row of case
weights and the R networks still train as one stack over the same X. A case that
network r never drew is out of bag for it: the average of those networks' outputs
predicts it, and the score of those predictions is ``oob_score_``. The samples come
from their own generator, seeded once per model (``bootstrap_seed_``), so a warm refit
trains each network on the sample it started on.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import warn_at_caller
from ..inputs.data import Data, held_out_pieces

# what a bagged fit sets: the samples' seed, the score and the out-of-bag outputs
OUT_OF_BAG = ("bootstrap_seed_", "oob_score_", "oob_decision_function_", "oob_prediction_")


def bootstrap_counts(n_global: int, R: int, rng: np.random.Generator, offset: int, n: int):
    """(R, n) int64: how often each network drew cases offset .. offset + n of the n_global
    cases (each network draws n_global with replacement, rows of the whole set, so every
    rank of a data-parallel fit draws the same samples and keeps its own columns)."""
    counts = np.empty((R, n), dtype=np.int64)
    for r in range(R):
        drawn = np.bincount(rng.integers(0, n_global, n_global), minlength=n_global)
        counts[r] = drawn[offset : offset + n]
    return counts


def bagged(data: Data, counts, backend, dtype) -> Data:
    """``data`` with case weights (R, rows of X): each network's counts times the case's
    own weight at this set's rows, 0 elsewhere (the held-out part of an early stop)."""
    rows = data.source_rows(np.arange(data.n))
    own = np.ones(data.n) if data.w_host is None else data.w_host[rows]
    w_host = np.zeros((counts.shape[0], int(data.X.shape[0])), dtype=dtype)
    w_host[:, rows] = counts * own
    return _weighted(data, w_host, backend)


def out_of_bag_outputs(net, whole: Data, rows, counts, y_host, batch_size: int, chunk: int):
    """(F, y) for the ``rows`` of ``whole``: F the mean output of the networks for which
    the row is out of bag (counts 0), NaN where there is none; one device pass over the
    rows, ``chunk`` rows at a time."""
    backend, xp = net.backend, net.backend.xp
    K = net.layer_sizes[-1]
    F = np.full((len(rows), K), np.nan)
    labels = []
    done = 0
    for start in range(0, len(rows), chunk):
        pieces = held_out_pieces(whole, rows[start : start + chunk], y_host, backend, batch_size)
        for piece, y_piece in pieces():
            n = int(piece.X.shape[0])
            left_out = (counts[:, done : done + n] == 0)[..., None]
            out = backend.to_device(left_out, dtype=piece.X.dtype)
            _, T = net.propagate(piece.X)
            sums = backend.to_host(xp.sum(net.g(T) * out, axis=0))
            voters = backend.to_host(xp.sum(out, axis=0))[:, 0]
            seen = voters > 0
            F[done : done + n][seen] = sums[seen] / voters[seen, None]
            labels.append(np.asarray(y_piece))
            done += n
    return F, np.concatenate(labels)


def score_out_of_bag(net, whole, bagged_set, counts, y_host, targets, comm, batch, chunk) -> dict:
    """``oob_score_`` (unweighted, as scikit-learn's bagging scores) and the out-of-bag
    outputs of this rank's rows, NaN for a row no network left out (or held out for
    early stopping): ``oob_decision_function_`` or ``oob_prediction_``."""
    rows = bagged_set.source_rows(np.arange(bagged_set.n))
    F_rows, y = out_of_bag_outputs(net, whole, rows, counts, y_host, batch, chunk)
    seen = ~np.isnan(F_rows).any(axis=1)
    sums = targets.score_sums(F_rows[seen], y[seen], None)
    if comm is not None:
        sums = comm.sum(np.asarray(sums, dtype=np.float64))
        n_seen = int(comm.sum([int(seen.sum())])[0])
    else:
        n_seen = int(seen.sum())
    if n_seen == 0:
        warn_at_caller(
            "no case was out of bag for any network, so oob_score_ is NaN: use more "
            "cases or a larger n_init",
            UserWarning,
        )
    F = np.full((whole.n, F_rows.shape[1]), np.nan)
    F[rows] = F_rows
    score = targets.score_from_sums(sums) if n_seen else float("nan")
    if targets.classifier:
        outputs = np.column_stack([1 - F, F]) if F.shape[1] == 1 else F
        return {"oob_score_": score, "oob_decision_function_": outputs}
    return {"oob_score_": score, "oob_prediction_": F.ravel() if F.shape[1] == 1 else F}


def one_network(data: Data, r: int, backend) -> Data:
    """``bagged`` data as network r alone trains on it: its row of the case weights."""
    return _weighted(data, np.ascontiguousarray(data.w_host[r]), backend)


def _weighted(data: Data, w_host, backend) -> Data:
    """A shallow copy of ``data`` with these case weights (on the device unless streamed,
    where each chunk takes its own from ``w_host``)."""
    part = copy.copy(data)
    part.w_host = w_host
    part.w = None if data.streamed else backend.to_device(w_host)
    return part
