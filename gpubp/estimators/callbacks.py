"""scikit-learn's callbacks (``sklearn.callback``, experimental from scikit-learn 1.9) on
gpubp's estimators: ``est.set_callbacks(ProgressBar(), ScoringMonitor(scoring="r2"))``.

A fit (or a partial_fit) is the estimator's root task and each epoch one subtask, so
``ProgressBar`` shows gpubp's epochs, nested under ``GridSearchCV``'s and ``Pipeline``'s
bars, and ``ScoringMonitor`` scores each epoch's ``fitted_estimator``: a copy of the
estimator with that epoch's weights (for a stack of random starts, their average).
A callback's ``on_fit_task_end`` that returns True stops training after that epoch
(``stop_reason_ == "callback"``; with ``checkpoint``, such a run is finished, as one that
early stopping ended). L-BFGS has no epochs: its fit is one task. The CV
estimators' search reports the epochs of each stack of networks (no ``fitted_estimator``:
mid-search there is no one model), then the refit as a propagated subtask.

With scikit-learn before 1.9 there is no ``sklearn.callback``: ``CallbackSupportMixin`` is
then an empty class and ``fit_tasks`` gives ``NO_TASKS``, so nothing changes.
"""

from __future__ import annotations

import contextlib

try:
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # scikit-learn < 1.9

    class CallbackSupportMixin:
        """Nothing to support: scikit-learn has no callbacks before 1.9."""

    with_callbacks = None


class NoTasks:
    """No callbacks to call: every hook does nothing."""

    def epoch_begins(self, net) -> None:
        pass

    def epoch_ends(self, net) -> bool:
        return False

    def end(self) -> None:
        pass

    def propagated(self, sub_estimator):
        return contextlib.nullcontext()


NO_TASKS = NoTasks()


class FitTasks(NoTasks):
    """The callback context of one fit: its root task begun here, an epoch subtask per
    epoch, the root ended by ``end``."""

    def __init__(self, est, X, y, sample_weight, task_name, epochs, fitted_attributes):
        self.est, self.fitted_attributes = est, fitted_attributes
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.seen = dict(X=X, y=y, metadata=metadata)
        self.root = est._init_callback_context(task_name=task_name, max_subtasks=epochs)
        self.root.call_on_fit_task_begin(estimator=est, **self.seen)
        self.epoch = None

    def fitted(self, net):
        """A function giving what makes a copy of the estimator predict with ``net``'s
        weights now (a host copy, taken only when a callback asks for it)."""
        if self.fitted_attributes is None:
            return None

        def reconstruction():
            weights = net.get_weights()
            host = ([W for W, _ in weights], [b for _, b in weights])
            return {**self.fitted_attributes, "_net": None, "_weights": host}

        return reconstruction

    def epoch_begins(self, net) -> None:
        self.epoch = self.root.subcontext(task_name="epoch")
        self.epoch.call_on_fit_task_begin(
            estimator=self.est, **self.seen, reconstruction_attributes=self.fitted(net)
        )

    def epoch_ends(self, net) -> bool:
        """Whether a callback asks training to stop."""
        epoch, self.epoch = self.epoch, None
        return bool(
            epoch.call_on_fit_task_end(
                estimator=self.est, **self.seen, reconstruction_attributes=self.fitted(net)
            )
        )

    def end(self) -> None:
        if self.epoch is not None:  # an epoch cut short (Ctrl-C, preemption) ends too
            self.epoch.call_on_fit_task_end(estimator=self.est)
            self.epoch = None
        self.root.call_on_fit_task_end(
            estimator=self.est, **self.seen, reconstruction_attributes={}
        )

    @contextlib.contextmanager
    def propagated(self, sub_estimator):
        """A subtask in which ``sub_estimator``'s fit runs with this fit's propagated
        callbacks (the CV estimators' refit)."""
        sub = self.root.subcontext(task_name="refit")
        with sub.propagate_callback_context(sub_estimator):
            sub.call_on_fit_task_begin(estimator=self.est, **self.seen)
            yield
            sub.call_on_fit_task_end(estimator=self.est, **self.seen)


def fit_tasks(est, X, y, sample_weight, task_name, epochs, fitted_attributes):
    """``FitTasks`` of this fit where scikit-learn has callbacks, else ``NO_TASKS``.
    ``epochs``: the most epoch subtasks (0: none); ``fitted_attributes``: what a copy of
    the estimator needs besides weights to predict, or None for no ``fitted_estimator``."""
    if with_callbacks is None:
        return NO_TASKS
    return FitTasks(est, X, y, sample_weight, task_name, epochs, fitted_attributes)


def managed(method):
    """``sklearn.callback.with_callbacks`` where it exists: the callbacks' teardown after
    ``method``, however it ends."""
    return method if with_callbacks is None else with_callbacks(method)
