"""Each loss value against its formula written out here, not through gpubp's functions.

The finite-difference checks differentiate the same loss the gradient comes from, so a
wrong loss definition would pass them all; these tests pin the definition itself.
"""

import math

import numpy as np
import pytest
from conftest import PAIRS, problem

import gpubp

pytestmark = pytest.mark.backends


def outputs_by_hand(weights, X, output):
    """f(x) for a tanh network, the forward pass written out with math, case by case."""
    rows = []
    for x in X:
        z = list(x)
        for l, (W, b) in enumerate(weights):
            t = [b[j] + sum(z[i] * W[i][j] for i in range(len(z))) for j in range(len(b))]
            z = [math.tanh(v) for v in t] if l < len(weights) - 1 else t
        if output == "softmax":
            e = [math.exp(v) for v in z]
            z = [v / sum(e) for v in e]
        elif output == "sigmoid":
            z = [1 / (1 + math.exp(-v)) for v in z]
        elif output == "exp":
            z = [math.exp(v) for v in z]
        rows.append(z)
    return rows


def case_loss(loss, y, f):
    """R_i for one case (ESL 11.9, 11.10, the two-class deviance per output, and half the
    Poisson deviance)."""
    if loss == "squared_error":
        return sum((yk - fk) ** 2 for yk, fk in zip(y, f))
    if loss == "cross_entropy":
        return -sum(yk * math.log(fk) for yk, fk in zip(y, f))
    if loss == "poisson":
        return sum((yk * math.log(yk / fk) if yk else 0.0) - yk + fk for yk, fk in zip(y, f))
    return -sum(yk * math.log(fk) + (1 - yk) * math.log(1 - fk) for yk, fk in zip(y, f))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("output,loss", PAIRS)
def test_loss_value_is_the_textbook_formula(output, loss, weight_decay, reduction):
    sizes = [3, 4, 2, 3]
    net = gpubp.MLP(sizes, "tanh", output, loss, weight_decay, "float64", "numpy", seed=5)
    X, Y = problem(sizes, output, seed=5, N=7)
    weights = [(W.tolist(), b.tolist()) for W, b in net.get_weights()]
    F = outputs_by_hand(weights, X.tolist(), output)
    R = sum(case_loss(loss, y, f) for y, f in zip(Y.tolist(), F))
    if reduction == "mean":
        R /= len(X)
    J = sum(w * w for W, _ in weights for row in W for w in row)  # biases not penalised
    want = R + weight_decay * J
    assert float(net.compute_loss(X, Y, reduction)) == pytest.approx(want, rel=1e-12)
    loss_value, _ = net.loss_and_gradients(X, Y, reduction)
    assert float(loss_value) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(net.forward(X), F, rtol=1e-12)


def test_log_losses_by_hand_for_one_case():
    """One case, numbers worked by hand: T = (2, 0) gives f = (e^2, 1) / (e^2 + 1)."""
    net = gpubp.MLP([1, 2], "identity", "softmax", dtype="float64", backend="numpy")
    net.set_weights([(np.array([[2.0, 0.0]]), np.zeros(2))])
    # -log f_2 = log(e^2 + 1) = 2.126928011...
    assert float(net.compute_loss([[1.0]], [[0.0, 1.0]])) == pytest.approx(2.1269280110429727)
    net = gpubp.MLP([1, 1], "identity", "sigmoid", dtype="float64", backend="numpy")
    net.set_weights([(np.array([[2.0]]), np.zeros(1))])
    # y = 0.25: -(0.25 log f + 0.75 log(1 - f)), f = 1 / (1 + e^-2) = 0.880797...
    want = -(0.25 * math.log(0.8807970779778823) + 0.75 * math.log(0.11920292202211755))
    assert float(net.compute_loss([[1.0]], [[0.25]])) == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("Estimator", ["MLPClassifier", "MLPRegressor"])
def test_estimator_loss_is_scikit_learns_definition_written_out(Estimator):
    """loss_curve_[0] after one full-batch step of a negligible size is the loss at the
    starting weights: mean cross-entropy (classifier), or half the squared error averaged
    over cases and outputs (regressor), plus alpha / (2 N) sum ||W||^2."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    if Estimator == "MLPClassifier":
        y = np.arange(20) % 3
        Y = np.eye(3)[y]
    else:
        Y = y = rng.normal(size=(20, 2))
    est = getattr(gpubp, Estimator)(
        hidden_layer_sizes=(4,),
        activation="tanh",
        solver="gd",
        learning_rate_init=1e-300,
        max_iter=1,
        alpha=0.7,
        dtype="float64",
        random_state=0,
    )
    with pytest.warns(Warning):  # one epoch: not converged
        est.fit(X, y)
    weights = [(W.tolist(), b.tolist()) for W, b in zip(est.coefs_, est.intercepts_)]
    output = "softmax" if Estimator == "MLPClassifier" else "identity"
    F = outputs_by_hand(weights, X.tolist(), output)
    if Estimator == "MLPClassifier":
        data = sum(case_loss("cross_entropy", t, f) for t, f in zip(Y.tolist(), F)) / 20
    else:
        data = sum(case_loss("squared_error", t, f) for t, f in zip(Y.tolist(), F)) / (2 * 20 * 2)
    J = sum(w * w for W, _ in weights for row in W for w in row)
    assert est.loss_curve_[0] == pytest.approx(data + 0.7 / (2 * 20) * J, rel=1e-12)
