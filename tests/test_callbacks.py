"""scikit-learn's callbacks (sklearn.callback, scikit-learn >= 1.9): an epoch is a fit task,
nested under Pipeline's and GridSearchCV's tasks; ScoringMonitor scores each epoch's
weights; a callback may stop training; without sklearn.callback nothing changes."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gpubp

callback = pytest.importorskip("sklearn.callback")

KW = dict(hidden_layer_sizes=(6,), max_iter=4, random_state=0, dtype="float64")


@pytest.fixture(scope="module")
def data():
    return make_classification(120, n_features=5, random_state=0)


class Recorder:
    """Each task's estimator, name and depth as it ends, and each epoch's weights; stops
    the fit after ``stop_after`` epochs when given. Propagated to sub-estimators."""

    max_propagation_depth = None

    def __init__(self, stop_after=None):
        self.ended, self.weights, self.stop_after = [], [], stop_after

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        depth, parent = 0, context.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        self.ended.append((context.estimator_name, context.task_name, depth))
        if context.task_name == "epoch" and fitted_estimator is not None:
            self.weights.append([W.copy() for W in fitted_estimator.coefs_])
            return self.stop_after is not None and len(self.weights) >= self.stop_after
        return False


def quiet(fit, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(*args, **kwargs)


def test_each_epoch_is_a_task_whose_fitted_estimator_has_that_epochs_weights(data):
    X, y = data
    recorder = Recorder()
    est = gpubp.MLPClassifier(**KW).set_callbacks(recorder)
    quiet(est.fit, X, y)
    quiet(est.fit, X, y)  # a second fit: its epochs are its own, not the first fit's end
    recorder.ended, recorder.weights = recorder.ended[-5:], recorder.weights[-4:]
    epochs = [e for e in recorder.ended if e[1] == "epoch"]
    assert epochs == [("MLPClassifier", "epoch", 1)] * 4
    assert recorder.ended[-1] == ("MLPClassifier", "fit", 0)
    for k, weights in enumerate(recorder.weights, start=1):
        at_k = quiet(gpubp.MLPClassifier(**{**KW, "max_iter": k}).fit, X, y)
        for a, b in zip(weights, at_k.coefs_):
            np.testing.assert_array_equal(a, b)
    assert not hasattr(est, "_callback_fit_ctx")  # torn down


def test_a_callback_stops_training_after_the_epoch_it_asks(data):
    X, y = data
    est = gpubp.MLPClassifier(**{**KW, "max_iter": 20}).set_callbacks(Recorder(stop_after=3))
    quiet(est.fit, X, y)
    assert est.n_iter_ == 3 and est.stop_reason_ == "callback"
    stack = gpubp.MLPClassifier(**{**KW, "max_iter": 20, "n_init": 2})
    quiet(stack.set_callbacks(Recorder(stop_after=2)).fit, X, y)
    assert stack.n_iter_ == 2 and stack.stop_reason_ == "callback"


def test_scoring_monitor_logs_a_score_per_epoch(data):
    X, y = data
    monitor = callback.ScoringMonitor(scoring="accuracy")
    est = gpubp.MLPClassifier(**KW).set_callbacks(monitor)
    quiet(est.fit, X, y)
    rows = [r for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    assert len(rows) == 4
    at_2 = quiet(gpubp.MLPClassifier(**{**KW, "max_iter": 2}).fit, X, y)
    assert rows[1]["accuracy"] == at_2.score(X, y)
    reg = gpubp.MLPRegressor(**KW).set_callbacks(callback.ScoringMonitor(scoring="r2"))
    quiet(reg.partial_fit, X, y.astype(float))  # a partial_fit is one epoch
    assert [r["task_name"] for r in reg._skl_callbacks[0].get_logs().data] == [
        "partial_fit",
        "epoch",
    ]


def test_epochs_nest_under_gridsearchcv_and_pipeline_and_the_cv_estimators_refit(data):
    X, y = data
    recorder = Recorder()
    pipe = make_pipeline(StandardScaler(), gpubp.MLPClassifier(**{**KW, "max_iter": 2}))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2)
    quiet(search.set_callbacks(recorder).fit, X, y)
    epochs = [e for e in recorder.ended if e[1] == "epoch"]
    # search > candidate > pipeline's final step (merged with the fit) > epoch; refit > ...
    assert epochs.count(("MLPClassifier", "epoch", 4)) == 2 * 2 * 2  # 2 folds x 2 alphas
    assert epochs.count(("MLPClassifier", "epoch", 3)) == 2  # the refit
    assert len(epochs) == 10
    recorder = Recorder()
    cv = gpubp.MLPClassifierCV(alphas=[1e-3, 1.0], cv=2, **{**KW, "max_iter": 3})
    quiet(cv.set_callbacks(recorder).fit, X, y)
    names = [e[:2] for e in recorder.ended]
    assert names.count(("MLPClassifierCV", "epoch")) == 3  # the search's stack
    assert names.count(("MLPClassifier", "epoch")) == 3  # the refit's epochs
    assert names[-1] == ("MLPClassifierCV", "fit")


def test_a_progress_bar_draws_the_epochs_nested_in_a_search_and_a_pipeline(data, capsys):
    pytest.importorskip("rich")
    X, y = data
    est = gpubp.MLPClassifier(**KW).set_callbacks(callback.ProgressBar())
    quiet(est.fit, X, y)
    assert "MLPClassifier - fit" in capsys.readouterr().out
    pipe = make_pipeline(StandardScaler(), gpubp.MLPClassifier(**KW))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2)
    search.set_callbacks(callback.ProgressBar(max_propagation_depth=None))
    quiet(search.fit, X, y)
    bars = capsys.readouterr().out
    assert bars.count("Pipeline - fit-final-estimator | MLPClassifier - fit") == 2 * 2 + 1


@pytest.mark.slow
def test_without_sklearn_callback_nothing_changes():
    """scikit-learn < 1.9 has no sklearn.callback: gpubp imports, fits, and has no
    set_callbacks (checked in a process where that module cannot be imported)."""
    code = """
import warnings; warnings.simplefilter("ignore")
import sklearn.preprocessing, sklearn.pipeline, sklearn.model_selection, sklearn.linear_model
import sys; sys.modules["sklearn.callback"] = None  # what an older scikit-learn lacks
import numpy as np, gpubp
X = np.random.default_rng(0).normal(size=(60, 3)); y = np.arange(60) % 2
est = gpubp.MLPClassifier(max_iter=3, random_state=0).fit(X, y)
cv = gpubp.MLPClassifierCV(max_iter=2, alphas=[1e-3], cv=2).fit(X, y)
print(hasattr(est, "set_callbacks"), est.n_iter_, cv.alpha_)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "3", "0.001"]
