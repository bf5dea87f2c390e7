"""gpubp.plotting draws what it says, and refuses what it cannot draw."""

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import make_moons

import gpubp
from gpubp.plotting import plot_decision_boundary, plot_loss_curves

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def moons_model():
    X, y = make_moons(100, noise=0.2, random_state=0)
    model = gpubp.MLPClassifier((8,), early_stopping=True, max_iter=30, random_state=0)
    return model.fit(X, y), X, y


def test_loss_curves_have_both_lines_and_labels(moons_model):
    model, _, _ = moons_model
    fig, ax = plt.subplots()
    plot_loss_curves(model, ax)
    assert [line.get_label() for line in ax.get_lines()] == ["training loss", "validation loss"]
    assert len(ax.get_lines()[0].get_ydata()) == model.n_iter_
    assert ax.get_xlabel() == "epoch" and ax.get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="loss_curve_"):
        plot_loss_curves(gpubp.MLPClassifier(solver="lbfgs", max_iter=5).fit(*moons_model[1:]))


def test_decision_boundary_draws_regions_and_points(moons_model):
    model, X, y = moons_model
    fig, ax = plt.subplots()
    plot_decision_boundary(model, X, y, ax, resolution=30)
    assert len(ax.collections) >= 3  # filled regions, the P = 0.5 line, the points
    assert ax.get_xlim()[0] < X[:, 0].min()
    plt.close(fig)
    with pytest.raises(ValueError, match="two columns"):
        plot_decision_boundary(model, np.zeros((3, 3)), np.zeros(3))
