"""L-BFGS (SciPy's L-BFGS-B) over all of theta: the full-batch objective of
``gpubp.train`` and its gradient, crossing to the host once a call."""

from __future__ import annotations

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from .errors import warn_at_caller
from .inputs.data import Data
from .progress import progress as progress_bar
from .train import Objective, interrupt_after_the_step, say_why_stopped


def fit_lbfgs(
    net, data: Data, objective: Objective, *, max_iter, max_fun, tol, verbose=False
) -> tuple:
    """SciPy's L-BFGS-B over theta; theta and its gradient cross to the host once a call.

    Ctrl-C stops after the current iteration, as in ``fit_stochastic``. Returns
    (iterations, final loss, one of STOP_REASONS).
    """
    backend = net.backend
    scale, decay = objective.constants(data.weight_sum())
    grad = net.backend.xp.empty_like(net.theta)
    out = net.views(grad)

    def loss_and_gradient(x):
        net.theta[...] = backend.to_device(x.astype(net.dtype))
        trace = net.backprop_unchecked(data.X, data.Y, scale, decay, data.w, out)
        return float(trace.loss), backend.to_host(grad).astype(np.float64)

    progress = progress_bar(max_iter, "lbfgs", "iter") if verbose else None
    x0 = backend.to_host(net.theta).astype(np.float64)
    try:
        with interrupt_after_the_step() as stop:

            def callback(intermediate_result):
                if progress is not None:
                    progress.set_postfix({"loss": f"{intermediate_result.fun:.5g}"}, refresh=False)
                    progress.update(1)
                if stop["now"]:
                    raise StopIteration

            result = scipy.optimize.minimize(
                loss_and_gradient,
                x0,
                method="L-BFGS-B",
                jac=True,
                callback=callback,
                options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
            )
    finally:
        if progress is not None:
            progress.close()
    net.theta[...] = backend.to_device(result.x.astype(net.dtype))
    n_iter = min(int(result.nit), max_iter)
    if stop["now"]:
        reason = "interrupted"
        warn_at_caller(
            f"training interrupted by the user after {n_iter} lbfgs iterations; the "
            "weights are those of the last iteration"
        )
    elif result.status != 0:
        reason = "not_converged"
        warn_at_caller(
            f"lbfgs failed to converge after {result.nit} iterations: {result.message}. "
            "Increase max_iter or scale the data.",
            ConvergenceWarning,
        )
    else:
        reason = "converged"
    if verbose:
        say_why_stopped(reason, n_iter, "iterations", message=result.message)
    return n_iter, float(result.fun), reason
