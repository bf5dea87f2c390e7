"""MLPClassifier: scikit-learn's classifier, trained by gpubp on NumPy or CuPy."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target

from ..backend import to_numpy
from ..functions import log_softmax, softplus
from .base import BaseMLP, host_arrays
from .starts import log_average
from .targets import Labels


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: softmax + cross-entropy for several
    classes, sigmoid + binary cross-entropy for two classes and for multi-label
    targets. Parameters and attributes are scikit-learn's, plus ``backend``
    ("auto", "numpy", "cupy"), ``dtype`` ("float32", "float64") and, fitted,
    ``backend_`` and ``validation_loss_curve_``; ``solver="gd"`` is full-batch
    gradient descent without momentum (the textbook's).

    ``penalty`` is what ``alpha`` multiplies: "l2" (weight decay, scikit-learn's) or
    "weight_elimination" (ESL 11.5.2: sum u / (1 + u), u = (W / w0)^2, which shrinks
    small weights harder; ``w0``, default 1, is the scale between small and large).
    ``init`` draws the starting weights: "glorot" (scikit-learn's) or "esl" (uniform
    on [-0.7, 0.7], ESL 11.5.1, meant for standardised inputs).

    ``n_init`` random starts (ESL 11.5.6) train together as one stack of
    networks; ``ensemble="best"`` keeps the start with the lowest training loss
    (validation loss with early stopping), ``"average"`` keeps them all and
    averages their predicted probabilities (``coefs_`` then carry a leading axis
    of n_init). ``"bagging"`` averages them too, each trained on a bootstrap sample
    of the training cases (``gpubp.estimators.bagging``; not with partial_fit). Fitted
    with n_init > 1: ``init_losses_`` (each start's final training loss), for "best"
    ``best_init_``, and for "bagging" ``oob_score_`` (the score of the out-of-bag
    predictions, unweighted, as scikit-learn's ``BaggingClassifier`` gives it) and
    ``oob_decision_function_`` (each case's out-of-bag probabilities; NaN where no
    network left it out, or where early stopping held it out).
    """

    def _targets(self, incremental):
        keep = hasattr(self, "classes_") and (self.warm_start or incremental)
        binarizer = self.__dict__.get("_label_binarizer")
        who = type(self).__name__
        return Labels(self.dtype, binarizer, keep=keep, warm_start=self.warm_start, who=who)

    def _adopt_targets(self, targets):
        if targets.binarizer is not self.__dict__.get("_label_binarizer"):  # a new one
            self._label_binarizer = targets.binarizer
            self.classes_ = targets.classes

    def _labels(self, F):
        if self.n_outputs_ == 1:
            F = F.ravel()
        return self._label_binarizer.inverse_transform(F)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` is required on the first call."""
        y = to_numpy(y)
        classes = None if classes is None else to_numpy(classes)
        if _check_partial_fit_first_call(self, classes):
            self._validate_params()
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        with self._gpu_memory_advice():
            return self._fit(X, y, sample_weight, incremental=True)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy, as scikit-learn's; y and sample_weight may be device arrays."""
        return super().score(X, *host_arrays(y, sample_weight))

    def predict(self, X) -> np.ndarray:
        """Class labels of X."""
        return self._labels(self._forward(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``."""
        F = self._forward(X)
        if self.n_outputs_ == 1:
            F = F.ravel()
            return np.vstack([1 - F, F]).T
        return F

    def predict_log_proba(self, X) -> np.ndarray:
        """log of predict_proba, computed from T so it stays finite (for an ensemble of
        starts, the log of their averaged probabilities)."""

        def log_proba(net, T):
            xp = net.backend.xp
            if self.out_activation_ == "softmax":
                return log_softmax(xp, T)
            if self.n_outputs_ == 1:
                return xp.concatenate([-softplus(xp, T), -softplus(xp, -T)], axis=-1)
            return -softplus(xp, -T)

        return self._predicted(X, lambda net, T: log_average(net.backend.xp, log_proba(net, T)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
