"""What crosses between host and device while training on the CuPy path, counted by the
CuPy stand-in: nothing waits for the device inside a minibatch step.

A read from the device (``.get()``, ``float()``, ``bool()``, ...) stalls the host until
the GPU has finished everything queued, so a read per step makes a GPU wait on Python
every step. Training reads once per epoch (the epoch's loss), twice with early stopping
(and the validation score), once before the first step (the loss at the starting weights,
that divergence is judged against), and never inside a step; the host-to-device copies are the
data once and each epoch's shuffled order.
"""

import warnings

import numpy as np
import pytest
from conftest import standin_installed
from sklearn.exceptions import ConvergenceWarning

from gpubp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.skipif(
    not standin_installed(), reason="counts device traffic on the CuPy stand-in"
)

READS_PER_EPOCH = 1  # the epoch's loss
READS_AT_START = 1  # a fit's loss at the starting weights (gpubp.divergence), once
READS_PER_EPOCH_EARLY_STOPPING = 2  # and the validation score and loss, read together
N = 120
SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam"),
}


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y, rng.uniform(0.5, 2.0, size=N)


def fit(Estimator=MLPClassifier, batch_size=10, epochs=3, weighted=False, target=None, **kw):
    """(counts, estimator) of one fit on host data, on the CuPy path."""
    import cupy

    X, y, w = data()
    est = Estimator(
        hidden_layer_sizes=(7, 5),
        batch_size=batch_size,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=1000,
        random_state=0,
        backend="cupy",
        **kw,
    )
    with cupy.counting(trace=True) as seen, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y if target is None else target(X), sample_weight=w if weighted else None)
    return seen, est


@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_no_device_reads_inside_a_minibatch_step(solver, weighted, alpha):
    kw = dict(weighted=weighted, alpha=alpha, **SOLVERS[solver])
    many, est = fit(batch_size=10, **kw)  # 12 steps an epoch
    few, _ = fit(batch_size=60, **kw)  # 2 steps an epoch
    assert est.n_iter_ == 3
    assert many.d2h == few.d2h == READS_AT_START + 3 * READS_PER_EPOCH, "".join(many.where)
    assert many.h2d == few.h2d  # the copies to the device do not grow with the steps
    longer, _ = fit(batch_size=10, epochs=5, **kw)
    assert longer.d2h == READS_AT_START + 5 * READS_PER_EPOCH
    # one shuffled order per epoch; with CUDA graphs (no case weights) also Adam's step
    # sizes for the epoch's steps, which change every epoch (SGD's constant rate does not)
    per_epoch = 1 + (solver == "adam" and not weighted)
    assert longer.h2d - many.h2d == 2 * per_epoch


def test_early_stopping_adds_one_read_per_epoch():
    kw = dict(early_stopping=True, validation_fraction=0.2, alpha=1e-3)
    many, est = fit(batch_size=10, **kw)
    few, _ = fit(batch_size=48, **kw)
    assert est.n_iter_ == 3
    assert many.d2h == few.d2h == READS_AT_START + 3 * READS_PER_EPOCH_EARLY_STOPPING, (
        "".join(many.where)
    )


def test_the_regressor_and_full_batch_descent_read_once_per_epoch():
    seen, _ = fit(MLPRegressor, target=lambda X: X[:, :2], **SOLVERS["adam"])
    assert seen.d2h == READS_AT_START + 3 * READS_PER_EPOCH, "".join(seen.where)
    seen, _ = fit(solver="gd", learning_rate_init=0.1)
    assert seen.d2h == READS_AT_START + 3 * READS_PER_EPOCH, "".join(seen.where)


def test_weight_decay_costs_one_kernel_per_layer_per_step():
    """dW += 2 lambda W fused (no temporary), the penalty's value once per epoch."""
    launches = {}
    for batch_size in (10, 60):
        plain, _ = fit(batch_size=batch_size, alpha=0.0, **SOLVERS["sgd"])
        decayed, est = fit(batch_size=batch_size, alpha=1e-3, **SOLVERS["sgd"])
        launches[batch_size] = decayed.launches - plain.launches
    steps = 3 * (N // 10 - N // 60)
    assert launches[10] - launches[60] == steps * (est.n_layers_ - 1)


def test_the_softmax_kernel_is_looked_up_once_not_every_step():
    fit(epochs=1)
    seen, _ = fit()
    assert seen.get_function == 0


def test_weights_cross_to_the_host_once_and_only_when_asked_for():
    import cupy

    _, est = fit()
    with cupy.counting() as seen:
        coefs = est.coefs_
    assert seen.d2h == 1 and len(coefs) == est.n_layers_ - 1
    assert all(isinstance(W, np.ndarray) for W in coefs + est.intercepts_)
    with cupy.counting() as seen:
        est.predict_proba(data()[0])
    assert seen.d2h == 1


def test_partial_fit_checks_a_device_array_once():
    import cupy

    X, y, _ = data()
    X_dev = cupy.asarray(X, dtype=cupy.float32)
    est = MLPClassifier(hidden_layer_sizes=(7,), random_state=0, backend="cupy")
    est.partial_fit(X_dev, y, classes=[0, 1, 2])
    with cupy.counting(trace=True) as seen:
        est.partial_fit(X_dev, y)
    # the order; Y stays on the device from the last call, its y being the same
    assert (seen.d2h, seen.h2d) == (READS_PER_EPOCH, 1), "".join(seen.where)
    with cupy.counting() as seen:
        est.partial_fit(X_dev.copy(), y)  # another array: checked for NaN again
    assert seen.d2h == READS_PER_EPOCH + 1
