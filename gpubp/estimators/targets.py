"""What the targets y are: class labels or real numbers.

Each estimator hands the layers below it one targets object; they encode y with it,
and score outputs F against y with it, and never call back into the estimator.

- ``Labels`` (``MLPClassifier``): a ``LabelBinarizer`` turns labels into 0/1 columns
  (one-hot for several classes: softmax and cross-entropy; one column for two
  classes and one per label for multi-label targets: sigmoid and binary
  cross-entropy); the score is accuracy.
- ``Reals`` (``MLPRegressor``): y as (N, K) columns; identity output and half
  squared error, scaled by 1 / (2K) as scikit-learn's, or (``loss="poisson"``) exp
  output and half the Poisson deviance, summed over the K outputs as scikit-learn's;
  the score is R^2.

``class_weight`` (a classifier's) becomes case weights (``class_case_weights``) that
multiply sample_weight, as scikit-learn's estimators define them.

Scores come from sums over the cases (``score_sums``) that add up over the pieces of
a streamed set and over the ranks of a data-parallel fit (``score_from_sums``).
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import column_or_1d

from ..inputs.checks import in_dtype


def as_column(y):
    """A (N, 1) y as (N,), with scikit-learn's DataConversionWarning."""
    if y.ndim == 2 and y.shape[1] == 1:
        return column_or_1d(y, warn=True)
    return y


def class_case_weights(class_weight, classes, y, sample_weight=None, comm=None) -> np.ndarray:
    """Each case's class weight (float64), as scikit-learn defines them: for one label per
    case ``compute_class_weight`` as its linear models use it ("balanced" from the
    sample-weighted class counts, summed over the ranks of ``comm``); for multi-label
    indicator rows ``compute_sample_weight`` as its trees use it (a dict per column, or
    "balanced" per column, the columns' weights multiplied)."""
    y = np.asarray(y)
    if y.ndim == 2:  # multi-label
        if class_weight != "balanced" or comm is None:
            return compute_sample_weight(class_weight, y)
        weights = np.ones(len(y))
        for column in y.T:
            counts = comm.sum(np.bincount(column.astype(np.intp), minlength=2)[:2])
            present = counts > 0
            per_value = counts.sum() / (present.sum() * np.where(present, counts, 1))
            weights *= per_value[column.astype(np.intp)]
        return weights
    index = np.searchsorted(classes, y)
    if class_weight != "balanced" or comm is None:
        return compute_class_weight(
            class_weight, classes=classes, y=y, sample_weight=sample_weight
        )[index]
    counts = np.bincount(index, weights=sample_weight, minlength=len(classes))
    counts = comm.sum(counts)
    if not counts.all():
        raise ValueError("classes should have valid labels that are in y")
    return (counts.sum() / (len(classes) * counts))[index]


class Labels:
    """Class labels through a LabelBinarizer. ``binarizer``: the one of an earlier fit
    (kept with ``keep``, as warm_start and partial_fit keep it, and then an earlier fit's
    encoding of the same y holds); a new one is fitted on the first labels encoded
    otherwise. ``class_weight``: scikit-learn's, applied by ``weigh``."""

    classifier = True

    def __init__(
        self,
        dtype,
        binarizer=None,
        keep=False,
        warm_start=False,
        who="MLPClassifier",
        class_weight=None,
    ):
        self.dtype, self.binarizer, self.who = dtype, binarizer, who
        self.keep, self.warm_start = keep and binarizer is not None, warm_start
        self.class_weight = class_weight

    def weigh(self, y, sample_weight, comm=None):
        """sample_weight (None: 1 each) times the class weights of the labels y, in dtype;
        sample_weight itself without ``class_weight``."""
        if self.class_weight is None:
            return sample_weight
        base = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        weights = class_case_weights(self.class_weight, self.classes, y, base, comm)
        return (weights if base is None else base * weights).astype(self.dtype)

    @property
    def classes(self):
        return self.binarizer.classes_

    def encode(self, y, incremental: bool, labels=None):
        """(y, (N, K) training targets in dtype); ``labels``, when given, are every rank's
        classes (what a new binarizer is fitted on)."""
        y = as_column(y)
        if not self.keep:
            self.binarizer = LabelBinarizer().fit(y if labels is None else labels)
            self.keep = True
            if len(self.classes) < 2:
                only = self.classes[0]
                raise ValueError(
                    f"{self.who} needs samples of at least 2 classes in y; got only one "
                    f"class: {(only.item() if isinstance(only, np.generic) else only)!r}."
                )
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes}. 'y' has {classes}."
                )
        return y, self.binarizer.transform(y).astype(self.dtype)

    def output(self) -> str:
        return "softmax" if self.binarizer.y_type_ == "multiclass" else "sigmoid"

    def loss_factor(self, K: int) -> float:
        return 1.0

    def labels(self, F):
        """The labels of outputs F."""
        if F.shape[-1] == 1:
            F = F.ravel()
        return self.binarizer.inverse_transform(F)

    def score_sums(self, F, y, sample_weight) -> np.ndarray:
        correct = np.asarray(self.labels(F) == y)
        if correct.ndim == 2:  # multi-label: a case counts when every label is right
            correct = correct.all(axis=1)
        w = np.ones(len(correct)) if sample_weight is None else sample_weight
        return np.array([np.sum(w * correct), np.sum(w)])

    def score_from_sums(self, sums) -> float:
        """Accuracy, as accuracy_score gives it."""
        return sums[0] / sums[1]


class Reals:
    """Real targets, one column per output; counts or rates (y >= 0) for the Poisson loss."""

    classifier = False
    keep = True  # an earlier fit's encoding of the same y holds
    class_weight = None

    def __init__(self, dtype, loss="squared_error"):
        self.dtype, self.loss = dtype, loss

    def encode(self, y, incremental: bool = False, labels=None):
        y = as_column(y)
        Y = in_dtype(y.reshape(len(y), -1), self.dtype, "y")
        if self.loss == "poisson" and (Y < 0).any():
            raise ValueError(
                f"loss='poisson' needs y >= 0 (counts or rates); y has {int((Y < 0).sum())} "
                f"negative values, the lowest {Y.min():g}"
            )
        return y, Y

    def weigh(self, y, sample_weight, comm=None):
        return sample_weight

    def output(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def loss_factor(self, K: int) -> float:
        """scikit-learn's squared error is the mean of half squared errors over the K
        outputs; its half Poisson deviance is their sum."""
        return 1.0 if self.loss == "poisson" else 1.0 / (2 * K)

    def score_sums(self, F, y, sample_weight) -> np.ndarray:
        Y = np.asarray(y, dtype=np.float64).reshape(np.shape(F))
        w = (np.ones(len(F)) if sample_weight is None else sample_weight)[:, None]
        return np.concatenate(
            [[w.sum()], (w * Y).sum(0), (w * Y * Y).sum(0), (w * (Y - F) ** 2).sum(0)]
        )

    def score_from_sums(self, sums) -> float:
        """R^2 averaged over the outputs, as r2_score gives it (1 or 0 for a constant y)."""
        K = (len(sums) - 1) // 3
        S, sy, syy, res = sums[0], sums[1 : 1 + K], sums[1 + K : 1 + 2 * K], sums[1 + 2 * K :]
        total = np.maximum(syy - sy * sy / S, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(total > 0, 1 - res / total, np.where(res == 0, 1.0, 0.0))
        return float(np.mean(r2))
