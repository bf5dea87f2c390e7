"""MLPClassifierCV and MLPRegressorCV: the weight decay (and learning rate) chosen by
cross-validation (ESL 11.5.2), the search in ``gpubp.estimators.cv_search``; here the
estimators with scikit-learn's signatures spelled out."""

from __future__ import annotations

from .classifier import MLPClassifier
from .cv_search import CrossValidated
from .docstrings import CV_ATTRIBUTES, documented
from .regressor import MLPRegressor


@documented(CV_ATTRIBUTES)
class MLPClassifierCV(CrossValidated, MLPClassifier):
    """MLPClassifier with the weight decay ``alpha`` (and optionally the learning rate) chosen
    by cross-validation, in scikit-learn's ``RidgeCV`` convention.

    Every setting x random start x fold trains as one stack of networks; a held-out fold
    is a case weight of 0. With ``penalty="weight_elimination"``, ``alpha`` weighs that
    penalty instead. Stochastic solvers only, and no ``early_stopping`` or
    ``warm_start``.
    """

    _parameter_constraints: dict = {
        **MLPClassifier._parameter_constraints,
        **CrossValidated._cv_constraints,
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alphas=(1e-4, 1e-3, 1e-2, 1e-1),
        learning_rate_inits=None,
        cv=5,
        scoring=None,
        refit=True,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=0.0001,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-08,
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
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
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
            class_weight=class_weight,
        )
        self.alphas = alphas
        self.learning_rate_inits = learning_rate_inits
        self.cv = cv
        self.scoring = scoring
        self.refit = refit


@documented(CV_ATTRIBUTES)
class MLPRegressorCV(CrossValidated, MLPRegressor):
    """MLPRegressor with the weight decay ``alpha`` (and optionally the learning rate) chosen
    by cross-validation, in scikit-learn's ``RidgeCV`` convention.

    Every setting x random start x fold trains as one stack of networks; a held-out fold
    is a case weight of 0. With ``penalty="weight_elimination"``, ``alpha`` weighs that
    penalty instead. Stochastic solvers only, and no ``early_stopping`` or
    ``warm_start``.
    """

    _parameter_constraints: dict = {
        **MLPRegressor._parameter_constraints,
        **CrossValidated._cv_constraints,
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alphas=(1e-4, 1e-3, 1e-2, 1e-1),
        learning_rate_inits=None,
        cv=5,
        scoring=None,
        refit=True,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=0.0001,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-08,
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
            loss=loss,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
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
        self.alphas = alphas
        self.learning_rate_inits = learning_rate_inits
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
