"""Plots for notebooks and reports: loss curves and decision boundaries.

Needs matplotlib. Nothing inside gpubp's core imports this module.
"""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_loss_curves(model, ax=None, title=None, log=True):
    """Training loss per epoch (and validation loss, when recorded) of a fitted estimator."""
    ax = _axes(ax)
    curve = getattr(model, "loss_curve_", None)
    if not curve:
        raise ValueError("the model has no loss_curve_ (fit it with a stochastic solver)")
    epochs = np.arange(1, len(curve) + 1)
    ax.plot(epochs, curve, label="training loss")
    validation = getattr(model, "validation_loss_curve_", None)
    if validation:
        ax.plot(epochs, validation, label="validation loss")
    ax.set(xlabel="epoch", ylabel="loss", title=title or f"loss curves ({model.backend_})")
    if log:
        ax.set_yscale("log")
    ax.legend()
    return ax


def plot_decision_boundary(model, X, y, ax=None, title=None, resolution=200, margin=0.5):
    """Class regions of a fitted 2-D classifier, with the cases (X, y) on top."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have two columns to draw a boundary, got shape {X.shape}")
    ax = _axes(ax)
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    u, v = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[u.ravel(), v.ravel()]
    P = model.predict_proba(grid)[:, -1].reshape(u.shape)
    ax.contourf(u, v, P, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(u, v, P, levels=[0.5], colors="k", linewidths=1.5)
    classes = np.unique(y)
    for c, marker in zip(classes, "os^v<>"):
        ax.scatter(
            *X[y == c].T, s=12, marker=marker, edgecolor="k", linewidth=0.3, label=f"class {c}"
        )
    ax.set(
        xlim=(lo[0], hi[0]),
        ylim=(lo[1], hi[1]),
        xlabel="x1",
        ylabel="x2",
        title=title or "decision boundary (P = 0.5)",
    )
    return ax
