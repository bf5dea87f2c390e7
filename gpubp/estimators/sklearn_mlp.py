"""A fitted gpubp estimator as scikit-learn's own MLP (``est.to_sklearn()``).

gpubp's networks are scikit-learn's: the same layers, activations, output
functions and attribute names, so the weights carry over as they are and
``sklearn.neural_network.MLPClassifier``/``MLPRegressor`` predicts with them,
anywhere scikit-learn runs.
"""

from __future__ import annotations

import copy

import numpy as np
import sklearn
from sklearn import neural_network
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError

# scikit-learn has no full-batch solver; 'sgd' without momentum takes the same steps
# on minibatches (only a refit would notice).
SOLVERS = {"sgd": "sgd", "adam": "adam", "lbfgs": "lbfgs", "gd": "sgd"}
# The fitted attributes scikit-learn's MLP and gpubp's share (gpubp.persist saves them).
SHARED_FITTED = (
    "n_features_in_",
    "n_outputs_",
    "n_layers_",
    "out_activation_",
    "n_iter_",
    "t_",
    "loss_",
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
)


def to_sklearn(est):
    """A fitted ``sklearn.neural_network.MLPClassifier`` or ``MLPRegressor`` holding a copy
    of ``est``'s weights (in its dtype), classes and fitted attributes.

    Raises InputError for what scikit-learn's MLP cannot hold: an ensemble of
    ``n_init`` starts averaged (``ensemble="average"`` or ``"bagging"``) is several
    networks.
    """
    check_is_fitted(est)
    name = type(est).__name__
    W = [np.array(W, copy=True) for W in est.coefs_]
    if W[0].ndim == 3:
        raise InputError(
            f"this {name} averages {W[0].shape[0]} networks (n_init={est.n_init}, "
            f"ensemble={est.ensemble!r}); scikit-learn's MLP holds one. Refit with "
            "ensemble='best' to keep the best start."
        )
    kind = neural_network.MLPClassifier if is_classifier(est) else neural_network.MLPRegressor
    if getattr(est, "loss", None) == "poisson" and "loss" not in kind().get_params():
        raise InputError(
            f"scikit-learn's MLPRegressor has loss='poisson' from version 1.7; this is "
            f"{sklearn.__version__}"
        )
    sk = kind(**_params(est, kind))
    sk.coefs_ = W
    sk.intercepts_ = [np.array(b, copy=True) for b in est.intercepts_]
    for key in (*SHARED_FITTED, "feature_names_in_"):
        if hasattr(est, key):
            setattr(sk, key, copy.deepcopy(getattr(est, key)))
    if is_classifier(est):
        sk.classes_ = est.classes_.copy()
        sk._label_binarizer = copy.deepcopy(est._label_binarizer)  # predict reads it
    if est.solver != "lbfgs":  # what its fit would continue from with warm_start=True
        sk._no_improvement_count = 0
        sk._best_coefs = [a.copy() for a in sk.coefs_]
        sk._best_intercepts = [a.copy() for a in sk.intercepts_]
    return sk


def _params(est, kind) -> dict:
    """``est``'s parameters in scikit-learn's terms (those scikit-learn's MLP has)."""
    ours = est.get_params()
    params = {k: ours[k] for k in kind().get_params() if k in ours}
    if ours["activation"] == "sigmoid":
        params["activation"] = "logistic"  # the textbook's name for it
    params["solver"] = SOLVERS[ours["solver"]]
    params["shuffle"] = bool(ours["shuffle"])  # "full" and "buffered" shuffle too
    if ours["solver"] == "gd":
        params["momentum"] = 0.0
    if isinstance(ours["random_state"], np.random.Generator):
        params["random_state"] = None  # scikit-learn takes an int or a RandomState
    return params
