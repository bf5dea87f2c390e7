"""MLPRegressor: scikit-learn's regressor, trained by gpubp on NumPy or CuPy."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

from .base import BaseMLP, host_arrays
from .targets import Reals


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: identity output, squared error (scikit-learn's
    half mean squared error). Parameters and attributes as MLPClassifier; with
    ``ensemble="average"`` the predictions of the n_init starts are averaged; with
    ``"bagging"`` too, each start trained on a bootstrap sample, and ``oob_score_`` (R^2)
    and ``oob_prediction_`` are set as scikit-learn's ``BaggingRegressor`` sets them.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error"})],
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
        )
        self.loss = loss

    def _targets(self, incremental):
        return Reals(self.dtype)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        if not hasattr(self, "coefs_"):
            self._validate_params()
        with self._gpu_memory_advice():
            return self._fit(X, y, sample_weight, incremental=True)

    def score(self, X, y, sample_weight=None) -> float:
        """R^2, as scikit-learn's; y and sample_weight may be device arrays."""
        return super().score(X, *host_arrays(y, sample_weight))

    def predict(self, X) -> np.ndarray:
        """Predicted targets, (N,) for one output."""
        F = self._forward(X)
        return F.ravel() if F.shape[1] == 1 else F
