"""MLPRegressor: scikit-learn's regressor, trained by gpubp on NumPy or CuPy."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

from ..memory import device_memory_advice
from .base import BaseMLP, host_arrays
from .docstrings import REGRESSOR_ATTRIBUTES, documented
from .targets import Reals


@documented(REGRESSOR_ATTRIBUTES)
class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor, trained on a GPU (CuPy) or the CPU (NumPy).

    Identity output and squared error (scikit-learn's half mean squared error), or with
    ``loss="poisson"`` the exp output (log link) and half the Poisson deviance. The
    parameters and fitted attributes are scikit-learn's ``MLPRegressor``'s, with its
    defaults, plus those that choose the device, the dtype, random starts, penalties,
    streaming and checkpoints.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
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
        self.loss = loss

    def _targets(self, incremental):
        return Reals(self.dtype, self.loss)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), from the weights the last call left.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs; memmaps, HDF5, zarr and Dask arrays are read a chunk at a time. On the
            GPU, CuPy arrays and other DLPack producers are taken without a copy.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights; None weighs every case 1.

        Returns
        -------
        self
            The estimator, trained one epoch more.
        """
        if not hasattr(self, "coefs_"):
            self._validate_params()
        with device_memory_advice(self.batch_size):
            return self._fit(X, y, sample_weight, incremental=True)

    def score(self, X, y, sample_weight=None) -> float:
        """R^2, as scikit-learn's (averaged over the outputs).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The true targets; a device array is taken to the host.
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights.

        Returns
        -------
        float
            The coefficient of determination.
        """
        return super().score(X, *host_arrays(y, sample_weight))

    def predict(self, X) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs, predicted a chunk of rows at a time.

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions, (n_samples,) for one output.
        """
        F = self._forward(X)
        return F.ravel() if F.shape[1] == 1 else F
