"""The estimators' parameters, described once in numpydoc's form.

``documented(attributes)`` is a class decorator: it appends to the class docstring a
Parameters section in the order of the class's ``__init__``, each entry's default read
from the signature, and the Attributes given. The documentation site's numpydoc check
(``docs/conf.py``) fails when a parameter has no entry here.
"""

from __future__ import annotations

import inspect
import textwrap

# name: (type, description). The default is appended from the signature.
PARAMETERS = {
    "loss": (
        "{'squared_error', 'poisson'}",
        "The loss, scikit-learn's: half the mean squared error (identity output), or half "
        "the Poisson deviance with an exp output (the log link) for counts and rates; "
        "'poisson' refuses y < 0, where scikit-learn's takes it silently.",
    ),
    "hidden_layer_sizes": (
        "array-like of int",
        "The number of hidden units of each hidden layer, M_1, ..., M_L; ``()`` for none "
        "(softmax or linear regression).",
    ),
    "activation": (
        "{'relu', 'logistic', 'tanh', 'identity'}",
        "The hidden units' function sigma ('sigmoid' is another name for 'logistic').",
    ),
    "alphas": ("array-like of float", "The weight decays to try, one stack of networks each."),
    "learning_rate_inits": (
        "array-like of float or None",
        "The learning rates to try beside the decays; None tries ``learning_rate_init`` only.",
    ),
    "cv": (
        "int or cross-validation splitter",
        "The folds: a number (stratified for a classifier) or a scikit-learn splitter.",
    ),
    "scoring": (
        "str, callable or None",
        "What a fold is scored by, as in ``GridSearchCV``; None is the estimator's ``score``.",
    ),
    "refit": (
        "bool",
        "Fit the best setting on all the data afterwards (``best_estimator_``), which "
        "``predict`` then uses.",
    ),
    "solver": (
        "{'adam', 'sgd', 'lbfgs', 'gd'}",
        "'adam' and 'sgd' (momentum, Nesterov) take minibatch steps; 'lbfgs' is SciPy's "
        "L-BFGS-B over all the weights; 'gd' is the textbook's full-batch gradient descent "
        "(ESL 11.13), one step per epoch. The CV estimators take stochastic solvers only.",
    ),
    "alpha": (
        "float",
        "The strength of the penalty: ``alpha / (2 N)`` times the sum of the squared weights "
        "(biases not penalised). The textbook's weight decay lambda is ``alpha / 2`` for a "
        "classifier and for ``loss='poisson'``, and ``K * alpha`` for a squared-error "
        "regressor with K outputs.",
    ),
    "batch_size": ("int or 'auto'", "Cases per minibatch; 'auto' is ``min(200, N)``."),
    "learning_rate": (
        "{'constant', 'invscaling', 'adaptive'}",
        "The schedule for 'sgd': constant, ``learning_rate_init / (t + 1)**power_t`` (t the "
        "cases seen), or divided by 5 when training stops improving.",
    ),
    "learning_rate_init": ("float", "The step size gamma (of the mean loss)."),
    "power_t": ("float", "The exponent of the 'invscaling' schedule."),
    "max_iter": ("int", "The most epochs (lbfgs: iterations)."),
    "shuffle": (
        "bool or {'full', 'buffered'}",
        "Shuffle the cases every epoch. True is 'full' (a permutation of every row) where rows "
        "are cheap to reach in any order, and 'buffered' (blocks in a random order, the rows "
        "of a buffer of them shuffled together) for data read in chunks; False takes them in "
        "turn.",
    ),
    "random_state": (
        "int, numpy.random.Generator or None",
        "Seeds the starting weights, the shuffles and the validation split, all drawn on the "
        "host, so the CPU and the GPU start alike.",
    ),
    "tol": (
        "float",
        "Training stops when the loss (or the validation score) has not improved by ``tol`` "
        "for ``n_iter_no_change`` epochs.",
    ),
    "verbose": (
        "bool or int",
        "True shows a progress bar and why training stopped; 2 also prints scikit-learn's "
        "``Iteration N, loss = X`` lines.",
    ),
    "warm_start": ("bool", "Go on from the fitted weights (and optimiser state) at the next fit."),
    "momentum": ("float", "The momentum of 'sgd', from 0 to 1."),
    "nesterovs_momentum": ("bool", "Nesterov's form of the momentum for 'sgd'."),
    "early_stopping": (
        "bool",
        "Hold out ``validation_fraction`` of the cases, stop when their score stops improving "
        "and keep the best epoch's weights.",
    ),
    "validation_fraction": ("float", "The fraction held out by ``early_stopping``."),
    "beta_1": ("float", "Adam's decay of the first moment."),
    "beta_2": ("float", "Adam's decay of the second moment."),
    "epsilon": ("float", "Adam's guard against division by zero."),
    "n_iter_no_change": ("int", "The epochs without improvement by ``tol`` before stopping."),
    "max_fun": ("int", "The most loss evaluations of 'lbfgs'."),
    "backend": (
        "{'auto', 'numpy', 'cupy'}",
        "Where the network trains: 'auto' takes the GPU (CuPy) when CuPy imports and a device "
        "answers, NumPy otherwise; see ``gpubp.get_backend``.",
    ),
    "dtype": ("{'float32', 'float64'}", "The floating-point type of weights and arithmetic."),
    "distributed": (
        "{'mpi', 'nccl', 'auto'} or None",
        "Data-parallel training over the ranks of an MPI job: each rank passes its rows (or "
        "all of them) and every rank ends with the same weights. 'auto' uses MPI when more "
        "than one rank runs.",
    ),
    "n_init": (
        "int",
        "Random starts (ESL 11.5.6), trained together as one stack of networks.",
    ),
    "ensemble": (
        "{'best', 'average', 'bagging'}",
        "With ``n_init > 1``: keep the start with the lowest training (or validation) loss, "
        "average all their predictions, or average networks each trained on a bootstrap "
        "sample of the cases (out-of-bag predictions and score then fitted).",
    ),
    "matmul_precision": (
        "{'float32', 'tf32'}",
        "'tf32' lets an NVIDIA GPU's tensor cores round float32 operands of the matrix "
        "products to TF32: several times faster for large layers, about 1e-2 relative "
        "gradient error. NumPy ignores it.",
    ),
    "streaming": (
        "bool or 'auto'",
        "Read X a chunk at a time instead of all at once. 'auto' streams X that lies outside "
        "memory (memmaps, HDF5, zarr, Dask) on the CPU, and on a GPU host X larger than half "
        "the device memory free.",
    ),
    "checkpoint": (
        "str, os.PathLike or None",
        "A folder for checkpoints of a stochastic fit; the same fit run again goes on from "
        "the newest one there, bit for bit.",
    ),
    "checkpoint_every": (
        "'auto', int or str",
        "When to write checkpoints: 'auto' (after the first epoch, then about once a "
        "minute), every N epochs, or a time such as '30s'.",
    ),
    "penalty": (
        "{'l2', 'weight_elimination'}",
        "What ``alpha`` multiplies: the sum of squared weights, or weight elimination "
        "(ESL 11.5.2), the sum of ``u / (1 + u)`` with ``u = (W / w0)**2``.",
    ),
    "w0": ("float", "The scale of weight elimination between small and large weights."),
    "init": (
        "{'glorot', 'esl'}",
        "The starting weights: scikit-learn's Glorot-uniform draw, or the textbook's uniform "
        "on [-0.7, 0.7] (ESL 11.5.1, for standardised inputs).",
    ),
    "early_stopping_metric": (
        "{'score', 'loss'}",
        "What ``early_stopping`` watches on the held-out cases: their score (accuracy or "
        "R^2, scikit-learn's rule) or their loss (lower is better; scikit-learn's issue "
        "24411). Either way ``validation_scores_`` and ``validation_loss_curve_`` are "
        "recorded and the weights of the best epoch by that measure are kept.",
    ),
    "class_weight": (
        "dict, list of dict, 'balanced' or None",
        "Weights of the classes, multiplied into ``sample_weight``: ``{label: weight}``, "
        "'balanced' (``n_samples / (n_classes * np.bincount(y))``, from the weighted counts), "
        "as scikit-learn's linear models define them; for multi-label y a dict per label "
        "(``[{0: 1, 1: 5}, ...]``) or 'balanced' per label, as its trees do. The CV estimator "
        "computes them on each fold's training cases; ``partial_fit`` takes no 'balanced'.",
    ),
}


def parameters_section(cls) -> str:
    """A numpydoc Parameters section for ``cls.__init__``, from ``PARAMETERS``."""
    lines = ["Parameters", "----------"]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name not in PARAMETERS:  # the docs build names what is missing
            continue
        kind, text = PARAMETERS[name]
        lines.append(f"{name} : {kind}, default={parameter.default!r}")
        lines.append(textwrap.fill(text, 88, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def documented(attributes: str):
    """Append the Parameters section, then ``attributes`` (numpydoc text), to the class
    docstring."""

    def decorate(cls):
        parts = [inspect.cleandoc(cls.__doc__), parameters_section(cls)]
        if attributes:
            parts.append("Attributes\n----------\n" + inspect.cleandoc(attributes))
        cls.__doc__ = "\n\n".join(parts) + "\n"
        return cls

    return decorate


_FITTED = """
coefs_ : list of numpy.ndarray
    The weight matrices W_1, ..., W_{L+1}, each (fan_in, fan_out); with
    ``ensemble='average'`` or ``'bagging'`` a leading axis of ``n_init``.
intercepts_ : list of numpy.ndarray
    The biases b_1, ..., b_{L+1}.
loss_ : float
    The training loss of the last epoch.
loss_curve_ : list of float
    The training loss of every epoch.
best_loss_ : float or None
    The lowest training loss (None with early stopping).
validation_scores_ : list of float or None
    The held-out score of every epoch, with ``early_stopping``.
validation_loss_curve_ : list of float or None
    The held-out loss of every epoch, with ``early_stopping``.
best_validation_score_ : float or None
    The best held-out score, with ``early_stopping``.
n_iter_ : int
    Epochs (or lbfgs iterations) run.
t_ : int
    Cases seen in training.
n_features_in_ : int
    The number of features.
n_layers_ : int
    Layers, input and output included.
n_outputs_ : int
    The number of outputs K.
out_activation_ : str
    The output function g.
backend_ : str
    Where the network trained: 'numpy' or 'cupy'.
stop_reason_ : str
    Why training stopped: 'max_iter', 'no_improvement', 'interrupted', 'partial_fit',
    and for lbfgs 'converged' or 'not_converged'.
init_losses_ : numpy.ndarray
    With ``n_init > 1``: each start's final training loss.
best_init_ : int
    With ``ensemble='best'``: the start kept.
"""

CLASSIFIER_ATTRIBUTES = (
    """
classes_ : numpy.ndarray
    The class labels, in the order of ``predict_proba``'s columns.
"""
    + _FITTED
    + """
oob_score_ : float
    With ``ensemble='bagging'``: the accuracy of the out-of-bag predictions.
oob_decision_function_ : numpy.ndarray
    With ``ensemble='bagging'``: each case's out-of-bag probabilities (NaN where every
    network drew it).
"""
)

REGRESSOR_ATTRIBUTES = (
    _FITTED
    + """
oob_score_ : float
    With ``ensemble='bagging'``: the R^2 of the out-of-bag predictions.
oob_prediction_ : numpy.ndarray
    With ``ensemble='bagging'``: each case's out-of-bag prediction (NaN where every
    network drew it).
"""
)

CV_ATTRIBUTES = """
alpha_ : float
    The weight decay chosen.
learning_rate_init_ : float
    The learning rate chosen.
best_score_ : float
    The chosen setting's mean score over the folds.
best_index_ : int
    Its row of ``cv_results_``.
best_params_ : dict
    The chosen ``alpha`` and ``learning_rate_init``.
cv_results_ : dict of numpy.ndarray
    Every setting's scores, with ``GridSearchCV``'s keys.
best_estimator_ : MLPClassifier or MLPRegressor
    With ``refit``: the plain estimator refitted on all the data, which this one predicts
    with and ``gpubp.save`` writes.
"""
