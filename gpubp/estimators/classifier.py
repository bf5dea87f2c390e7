"""MLPClassifier: scikit-learn's classifier, trained by gpubp on NumPy or CuPy."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target

from ..backend import to_numpy
from ..functions import log_softmax, softplus
from ..memory import device_memory_advice
from .base import BaseMLP, host_arrays
from .docstrings import CLASSIFIER_ATTRIBUTES, documented
from .starts import log_average
from .targets import Labels


@documented(CLASSIFIER_ATTRIBUTES)
class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier, trained on a GPU (CuPy) or the CPU (NumPy).

    Softmax + cross-entropy for several classes, sigmoid + binary cross-entropy for two
    classes and for multi-label targets. The parameters and fitted attributes are
    scikit-learn's ``MLPClassifier``'s, with its defaults, plus those that choose the
    device, the dtype, random starts, penalties, streaming and checkpoints.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "class_weight": [None, dict, list, StrOptions({"balanced"})],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend="auto",
        dtype="float32",
        distributed=None,
        n_init=1,
        ensemble="best",
        matmul_precision="float32",
        streaming="auto",
        checkpoint=None,
        checkpoint_every="auto",
        penalty="l2",
        w0=1.0,
        init="glorot",
        early_stopping_metric="score",
        class_weight=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            backend=backend,
            dtype=dtype,
            distributed=distributed,
            n_init=n_init,
            ensemble=ensemble,
            matmul_precision=matmul_precision,
            streaming=streaming,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            penalty=penalty,
            w0=w0,
            init=init,
            early_stopping_metric=early_stopping_metric,
        )
        self.class_weight = class_weight

    def _targets(self, incremental):
        keep = hasattr(self, "classes_") and (self.warm_start or incremental)
        binarizer = self.__dict__.get("_label_binarizer")
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, which sees one "
                "batch of y at a time: pass compute_class_weight('balanced', classes=classes, "
                "y=y) of enough of y as a dict"
            )
        return Labels(
            self.dtype,
            binarizer,
            keep=keep,
            warm_start=self.warm_start,
            who=type(self).__name__,
            class_weight=self.class_weight,
        )

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
        """One epoch over (X, y), from the weights the last call left.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs; memmaps, HDF5, zarr and Dask arrays are read a chunk at a time. On the
            GPU, CuPy arrays and other DLPack producers are taken without a copy.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels (a 0/1 matrix for multi-label).
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights; None weighs every case 1.
        classes : array-like, default=None
            Every class label; required on the first call.

        Returns
        -------
        self
            The estimator, trained one epoch more.
        """
        y = to_numpy(y)
        classes = None if classes is None else to_numpy(classes)
        if _check_partial_fit_first_call(self, classes):
            self._validate_params()
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        with device_memory_advice(self.batch_size):
            return self._fit(X, y, sample_weight, incremental=True)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy, as scikit-learn's.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The true labels; a device array is taken to the host.
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights.

        Returns
        -------
        float
            The (weighted) fraction of cases predicted right.
        """
        return super().score(X, *host_arrays(y, sample_weight))

    def predict(self, X) -> np.ndarray:
        """Class labels of X.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted labels (a 0/1 matrix for multi-label).
        """
        return self._labels(self._forward(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            The probabilities; with ``ensemble='average'`` or ``'bagging'`` those of the
            starts averaged.
        """
        F = self._forward(X)
        if self.n_outputs_ == 1:
            F = F.ravel()
            return np.vstack([1 - F, F]).T
        return F

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of ``predict_proba``, computed from T so that it stays finite.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
            The log-probabilities (for an ensemble, the log of the averaged probabilities).
        """

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
