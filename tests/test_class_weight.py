"""class_weight: scikit-learn's definition (compute_class_weight, compute_sample_weight)
multiplied into sample_weight, in fit, partial_fit, the CV search, model files and a
data-parallel fit's counts."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import recall_score
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

import gpubp
from gpubp.estimators.targets import class_case_weights

KW = dict(hidden_layer_sizes=(6,), max_iter=8, random_state=0, dtype="float64", shuffle=False)


def fitted(X, y, sample_weight=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpubp.MLPClassifier(**{**KW, **kw}).fit(X, y, sample_weight)


def assert_same_steps(a, b):
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


@pytest.fixture
def three_classes():
    X, y = make_classification(
        150, n_features=5, n_informative=3, n_classes=3, weights=[0.6, 0.3, 0.1], random_state=0
    )
    return X, np.array(["ant", "bee", "cat"])[y]


def test_a_class_weight_takes_the_steps_of_the_equivalent_sample_weight(three_classes):
    X, y = three_classes
    sw = np.linspace(0.5, 2.0, len(y))
    weights = {"ant": 1.0, "bee": 2.5, "cat": 7.0}
    per_case = np.array([weights[label] for label in y])
    assert_same_steps(fitted(X, y, class_weight=weights), fitted(X, y, per_case))
    assert_same_steps(fitted(X, y, sw, class_weight=weights), fitted(X, y, sw * per_case))
    balanced = compute_class_weight("balanced", classes=np.unique(y), y=y, sample_weight=sw)
    per_case = balanced[np.searchsorted(np.unique(y), y)]
    assert_same_steps(fitted(X, y, sw, class_weight="balanced"), fitted(X, y, sw * per_case))
    unweighted = fitted(X, y)
    with pytest.raises(AssertionError):  # the weights do change the steps
        assert_same_steps(fitted(X, y, class_weight=weights), unweighted)


def test_multilabel_class_weights_are_those_of_scikit_learns_trees():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = (rng.random((80, 3)) < [0.2, 0.5, 0.8]).astype(int)
    per_label = [{0: 1.0, 1: 4.0}, {0: 2.0, 1: 1.0}, {0: 1.0, 1: 1.0}]
    for class_weight in (per_label, "balanced"):
        want = compute_sample_weight(class_weight, Y)
        assert len(set(want.round(9))) > 2
        assert_same_steps(fitted(X, Y, class_weight=class_weight), fitted(X, Y, want))
    with pytest.raises(ValueError, match="list of dicts"):
        fitted(X, Y, class_weight={0: 1.0, 1: 2.0})


def test_balanced_weights_raise_the_recall_of_a_rare_class():
    X, y = make_classification(
        600, n_features=6, n_informative=2, weights=[0.93], class_sep=0.6, random_state=3
    )
    kw = dict(hidden_layer_sizes=(8,), max_iter=40, random_state=0)
    plain = recall_score(y, fitted(X, y, **kw).predict(X))
    balanced = recall_score(y, fitted(X, y, class_weight="balanced", **kw).predict(X))
    assert balanced > plain + 0.2, (plain, balanced)


def test_partial_fit_takes_a_dict_and_refuses_balanced(three_classes):
    X, y = three_classes
    weights = {"ant": 1.0, "bee": 3.0, "cat": 5.0}
    per_case = np.array([weights[label] for label in y])
    a = gpubp.MLPClassifier(class_weight=weights, **KW)
    b = gpubp.MLPClassifier(**KW)
    for _ in range(2):
        a.partial_fit(X, y, classes=np.unique(y))
        b.partial_fit(X, y, per_case, classes=np.unique(y))
    assert_same_steps(a, b)
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        gpubp.MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.unique(y))


def test_a_class_missing_from_a_dict_or_an_unknown_one_is_refused(three_classes):
    X, y = three_classes
    with pytest.raises(ValueError, match="not in class_weight"):
        fitted(X, y, class_weight={"ant": 1.0, "dog": 2.0})


def test_the_cv_search_weighs_each_fold_by_its_own_balance_and_refits_on_all(three_classes):
    X, y = three_classes
    order = np.argsort(y, kind="stable")  # unshuffled folds of very different balance
    X, y = X[order], y[order]
    from sklearn.model_selection import KFold

    cv = gpubp.MLPClassifierCV(
        class_weight="balanced", alphas=[1e-3], cv=KFold(3), max_iter=3, hidden_layer_sizes=(4,)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv.fit(X, y)
    folds = list(KFold(3).split(X))
    got = cv._fold_weights(folds, y, np.ones(len(y)))
    assert len(np.unique(y[folds[2][0]])) == 2  # a fold's training cases lack a class
    for (train, _), w in zip(folds, got):
        want = compute_class_weight("balanced", classes=np.unique(y[train]), y=y[train])
        np.testing.assert_allclose(w, want[np.searchsorted(np.unique(y[train]), y[train])])
    assert cv.best_estimator_.class_weight == "balanced"


def test_class_weights_survive_a_model_file(tmp_path, three_classes):
    X, y = three_classes
    for class_weight in ({"ant": 2.0, "bee": 1.0, "cat": 0.5}, "balanced"):
        est = fitted(X, y, class_weight=class_weight)
        gpubp.save(est, tmp_path / "m.safetensors")
        assert gpubp.load(tmp_path / "m.safetensors").class_weight == class_weight
    Y = np.eye(3, dtype=int)[np.searchsorted(np.unique(y), y)]
    Y[::4, 0] = 1
    per_label = [{0: 1.0, 1: 2.0}, {0: 1.0, 1: 3.0}, {0: 1.0, 1: 1.0}]
    gpubp.save(fitted(X, Y, class_weight=per_label), tmp_path / "m.npz")
    assert gpubp.load(tmp_path / "m.npz").class_weight == per_label


class TwoRanks:
    """A communicator of two ranks holding the same rows: every sum is twice this one."""

    def sum(self, values):
        return 2 * np.asarray(values, dtype=np.float64)


def test_balanced_weights_from_counts_summed_over_ranks(three_classes):
    _, y = three_classes
    classes, sw = np.unique(y), np.linspace(1.0, 2.0, len(y))
    want = compute_class_weight("balanced", classes=classes, y=y, sample_weight=sw)
    got = class_case_weights("balanced", classes, y, sw, comm=TwoRanks())
    np.testing.assert_allclose(got, want[np.searchsorted(classes, y)], rtol=1e-12)
    Y = (np.random.default_rng(0).random((50, 2)) < [0.2, 0.7]).astype(int)
    got = class_case_weights("balanced", None, Y, comm=TwoRanks())
    np.testing.assert_allclose(got, compute_sample_weight("balanced", Y), rtol=1e-12)


def test_a_streamed_fit_weighs_its_classes_as_a_resident_one(tmp_path, three_classes):
    """X read a chunk at a time from a memmap, y beside it: the class weights come from
    every row's label, read once."""
    X, y = three_classes
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    sw = np.linspace(0.5, 2.0, len(y))  # "balanced" counts the weighted cases
    for class_weight in ({"ant": 1.0, "bee": 3.0, "cat": 9.0}, "balanced"):
        resident = fitted(X, y, sw, class_weight=class_weight, streaming=False)
        for labels in (y, y.reshape(-1, 1)):  # a column of labels is one label per case
            streamed = fitted(mapped, labels, sw, class_weight=class_weight, streaming=True)
            assert_same_steps(streamed, resident)
