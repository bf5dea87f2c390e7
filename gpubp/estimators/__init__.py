"""scikit-learn's MLPClassifier and MLPRegressor, and their cross-validated forms,
trained by gpubp on NumPy or CuPy.

``base`` holds what the two share, ``classifier`` and ``regressor`` what differs
(``targets``: how y is encoded and scored), ``plan`` the training run of a fit (with
``holdout``, ``bagging`` and ``starts``), ``predicting`` outputs for many rows, ``cv``
and ``cv_results`` the estimators that choose the weight decay by cross-validation.
"""

from .base import ACTIVATIONS, STOCHASTIC_SOLVERS, BaseMLP
from .classifier import MLPClassifier
from .cv import MLPClassifierCV, MLPRegressorCV
from .regressor import MLPRegressor

__all__ = [
    "ACTIVATIONS",
    "STOCHASTIC_SOLVERS",
    "BaseMLP",
    "MLPClassifier",
    "MLPClassifierCV",
    "MLPRegressor",
    "MLPRegressorCV",
]
