"""What a cross-validation search reports: each setting's score on each held-out fold,
from its random starts combined as ``ensemble`` says, and ``cv_results_`` and the best
setting in ``GridSearchCV``'s form."""

from __future__ import annotations

import numpy as np
from sklearn.base import is_classifier
from sklearn.metrics import check_scoring


def fold_scores(est, settings, folds, F, losses, y_host, targets) -> np.ndarray:
    """(settings, folds) scores of the outputs F of every network (network k = ((setting
    * folds) + fold) * n_init + start) on its held-out fold: the estimator's own score
    (``targets``), or ``est.scoring``'s."""
    S, n_folds, I = len(settings), len(folds), est.n_init
    scores = np.empty((S, n_folds))
    scorer = None if est.scoring is None else check_scoring(est, est.scoring)
    for s in range(S):
        for f, (_, test) in enumerate(folds):
            first = (s * n_folds + f) * I
            starts = np.arange(first, first + I)
            if est.ensemble == "average":
                F_sf = F[starts].mean(axis=0)
            else:
                F_sf = F[
                    starts[np.argmin(np.where(np.isfinite(losses[starts]), losses[starts], np.inf))]
                ]
            if not np.isfinite(F_sf[test]).all():
                scores[s, f] = -np.inf
            elif scorer is None:
                scores[s, f] = targets.score_from_sums(
                    targets.score_sums(F_sf[test], y_host[test], None)
                )
            else:
                scores[s, f] = scorer(FixedOutputs(est, F_sf, targets), test, y_host[test])
    return scores


def cv_results(settings, scores, fit_time) -> dict:
    """The fitted attributes of a search: ``cv_results_`` (ranks as GridSearchCV's, ties
    sharing the better one), ``best_index_``, ``alpha_``, ``learning_rate_init_``,
    ``best_params_``, ``best_score_`` and ``n_splits_``."""
    S, n_folds = scores.shape
    mean = scores.mean(axis=1)
    order = np.argsort(-mean, kind="stable")
    rank = np.empty(S, dtype=np.int32)
    rank[order] = np.arange(1, S + 1)
    for s in range(S - 1):  # ties share the better rank, as GridSearchCV's
        a, b = order[s], order[s + 1]
        if mean[b] == mean[a]:
            rank[b] = rank[a]
    results = {
        "params": [{"alpha": a, "learning_rate_init": r} for a, r in settings],
        "param_alpha": np.array([a for a, _ in settings]),
        "param_learning_rate_init": np.array([r for _, r in settings]),
    }
    for f in range(n_folds):
        results[f"split{f}_test_score"] = scores[:, f]
    results.update(
        mean_test_score=mean,
        std_test_score=scores.std(axis=1),
        rank_test_score=rank,
        mean_fit_time=np.full(S, fit_time / S),
    )
    best = int(order[0])
    alpha, rate = settings[best]
    return {
        "cv_results_": results,
        "best_index_": best,
        "alpha_": alpha,
        "learning_rate_init_": rate,
        "best_params_": dict(results["params"][best]),
        "best_score_": float(mean[best]),
        "n_splits_": n_folds,
    }


class FixedOutputs:
    """A stand-in estimator for ``scoring``: its predictions are rows of fixed outputs F,
    and the X it is given are row numbers."""

    def __init__(self, owner, F, targets):
        self.owner, self.F, self.targets = owner, F, targets
        self._estimator_type = "classifier" if is_classifier(owner) else "regressor"
        if hasattr(owner, "classes_"):
            self.classes_ = owner.classes_

    def __sklearn_tags__(self):
        return self.owner.__sklearn_tags__()

    def _rows(self, rows):
        return self.F[np.asarray(rows)]

    def predict(self, rows):
        F = self._rows(rows)
        if self.targets.classifier:
            return self.targets.labels(F)
        return F.ravel() if F.shape[1] == 1 else F

    def predict_proba(self, rows):
        F = self._rows(rows)
        if F.shape[1] == 1:
            return np.column_stack([1 - F[:, 0], F[:, 0]])
        return F / F.sum(axis=1, keepdims=True)  # float32 outputs sum to 1 within rounding

    def decision_function(self, rows):
        return self.predict_proba(rows)[:, 1] if self.F.shape[1] == 1 else self._rows(rows)
