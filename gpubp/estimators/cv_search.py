"""The CV estimators' search (``gpubp.estimators.cv``): every setting x start x fold
trained as one stack.

Each network of the stack sees all the cases in the same shuffled minibatches;
those of its held-out fold weigh 0, so it learns from its training folds only
and divides by their weight. One forward pass of the stack then scores every
network on its own held-out fold. The setting with the best mean score is
refitted on all the data as an ``MLPClassifier`` / ``MLPRegressor``.
"""

from __future__ import annotations

import hashlib
import os
import time
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import Interval

from ..checkpoint import start_of, training
from ..errors import InputError
from ..inputs.checks import named
from ..inputs.data import Data
from ..memory import device_memory_advice
from ..network import count_parameters
from ..train import Objective
from ..train_stack import StackHistory, fit_stack
from .callbacks import fit_tasks, managed
from .classifier import MLPClassifier
from .cv_results import cv_results, fold_scores
from .plan import Plan
from .regressor import MLPRegressor
from .targets import class_case_weights

CV_PARAMETERS = ("alphas", "learning_rate_inits", "cv", "scoring", "refit")
STACK_BYTES = 2**30  # device memory one stack may take, about; more networks train in chunks


class CrossValidated:
    """The cross-validation both CV estimators run (a mixin before their estimator)."""

    _cv_constraints: dict = {
        "alphas": ["array-like"],
        "learning_rate_inits": [None, "array-like"],
        "cv": [Interval(Integral, 2, None, closed="left"), "cv_object"],
        "scoring": [None, str, callable],
        "refit": ["boolean"],
    }

    def _single(self):
        """The plain estimator with these parameters (less the CV ones)."""
        kind = MLPClassifier if is_classifier(self) else MLPRegressor
        params = {k: v for k, v in self.get_params().items() if k not in CV_PARAMETERS}
        return kind(**params)

    def _targets(self, incremental):
        """The targets without class weights: the search weighs each fold's training cases
        by the class weights of that fold (``_fold_weights``), as a search over folds does."""
        targets = super()._targets(incremental)
        targets.class_weight = None
        return targets

    def _fold_weights(self, folds, y_all, w_all):
        """Each fold's training cases' weights: sample_weight times (``class_weight``) the
        class weights of the classes in that fold's training cases, as a classifier fitted
        on them alone would compute them."""
        class_weight = getattr(self, "class_weight", None)
        if class_weight is None:
            return [w_all[train] for train, _ in folds]
        weights = []
        for train, _ in folds:
            y, w = y_all[train], w_all[train]
            classes = np.unique(y) if y.ndim == 1 else None
            weights.append(w * class_case_weights(class_weight, classes, y, w))
        return weights

    def _settings(self):
        alphas = named("alphas", np.asarray, self.alphas, dtype=np.float64).ravel()
        if self.learning_rate_inits is None:
            rates = np.array([float(self.learning_rate_init)])
        else:
            rates = named("learning_rate_inits", np.asarray, self.learning_rate_inits, dtype=float)
            rates = rates.ravel()
        if not len(alphas) or not np.isfinite(alphas).all() or (alphas < 0).any():
            raise InputError(f"alphas={self.alphas!r} must be one or more finite numbers >= 0")
        if not len(rates) or not np.isfinite(rates).all() or (rates <= 0).any():
            raise InputError(
                f"learning_rate_inits={self.learning_rate_inits!r} must be numbers > 0"
            )
        return [(float(a), float(r)) for a in alphas for r in rates]

    def fit(self, X, y, sample_weight=None):
        """Cross-validate every setting, then (``refit``) fit the best on all of X, y.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The inputs; memmaps, HDF5, zarr and Dask arrays are read a chunk at a time. On the
            GPU, CuPy arrays and other DLPack producers are taken without a copy.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels or real targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Case weights, in training and in the folds' scores.

        Returns
        -------
        self
            The fitted estimator.
        """
        self._validate_params()
        plan = Plan(self)
        plan.refuse_lbfgs("the CV estimators' search")
        if self.early_stopping:
            raise InputError(
                "early_stopping=True is not supported by the CV estimators: the held-out "
                "folds already measure each network"
            )
        if self.warm_start:
            raise InputError("the CV estimators do not warm-start: every fit starts afresh")
        if self.ensemble == "bagging":
            raise InputError(
                "ensemble='bagging' is not supported by the CV estimators: their folds "
                "already hold cases out; use 'best' or 'average'"
            )
        with device_memory_advice(self.batch_size):
            return self._cross_validate(plan, X, y, sample_weight)

    @managed
    def _cross_validate(self, plan, X, y, sample_weight):
        settings = self._settings()
        backend, comm = plan.place(None)
        prepared = self._prepare(
            plan, X, y, sample_weight, None, False, streaming=False, stack=True
        )
        # the search's epochs as tasks of unknown number (no fitted estimator mid-search)
        plan.tasks = fit_tasks(self, X, y, sample_weight, "fit", None, None)
        targets, whole = prepared.targets, prepared.data
        X, y_host, Y_dev, K = whole.X, prepared.y, whole.Y, prepared.n_outputs
        n, offset = X.shape[0], whole.offset
        w_host = np.ones(n) if whole.w_host is None else whole.w_host
        # the folds, and each network's case weights, over the rows of every rank
        y_all, w_all = (
            a if comm is None else np.concatenate(comm.allgather(a)) for a in (y_host, w_host)
        )
        splitter = check_cv(self.cv, y_all, classifier=is_classifier(self))
        folds = list(named("cv", splitter.split, np.zeros((len(y_all), 1)), y_all))
        classes = getattr(targets, "classes", None)
        fold_weights = named("class_weight", self._fold_weights, folds, y_all, w_all)
        rng = plan.random_generator()
        runs = self._checkpoint_runs(plan, rng, folds, comm, K, classes)
        seeds = rng.integers(2**32, size=self.n_init)
        shuffle_seed = rng.integers(2**32)  # every chunk shuffles alike
        # network k = ((setting * folds) + fold) * n_init + start
        grid = [
            (s, f, i)
            for s in range(len(settings))
            for f in range(len(folds))
            for i in range(self.n_init)
        ]
        sizes = [X.shape[1], *plan.hidden, K]
        self.n_outputs_ = K
        F = np.empty((len(grid), len(y_all), K))
        losses = np.empty(len(grid))
        started = time.perf_counter()
        for i, chunk in enumerate(self._chunks(plan, grid, sizes, n)):
            alphas = np.array([settings[grid[k][0]][0] for k in chunk])
            rates = np.array([settings[grid[k][0]][1] for k in chunk])
            w = np.zeros((len(chunk), len(y_all)), dtype=self.dtype)
            for row, k in enumerate(chunk):
                train = folds[grid[k][1]][0]
                w[row, train] = fold_weights[grid[k][1]]
            w = np.ascontiguousarray(w[:, offset : offset + n])  # this rank's rows
            seed = [int(seeds[grid[k][2]]) for k in chunk]
            net = plan.network(sizes, targets.output(), backend, seed, len(chunk))
            history = StackHistory(len(chunk))
            data = Data(X, Y_dev, backend.to_device(w), w, offset, whole.n_total)
            optimizer = plan.optimizer(net, rates)
            chunk_rng = np.random.default_rng(shuffle_seed)
            run = None if runs is None else runs(i, chunk, data, backend)
            start = None if runs is None else runs.start_rng
            objective = Objective(targets.loss_factor(K), alphas)
            state = (net, optimizer, history, chunk_rng, start, backend.to_device)
            with training(run, *state) as done:
                if not done:
                    plan.train(fit_stack, net, optimizer, data, objective, history, chunk_rng, run)
            _, T = net.propagate(X)
            F_here = backend.to_host(net.g(T))
            F[chunk] = F_here if comm is None else np.concatenate(comm.allgather(F_here), axis=1)
            losses[chunk] = history.final_losses
        fit_time = time.perf_counter() - started
        scores = fold_scores(self, settings, folds, F, losses, y_all, targets)
        vars(self).update(cv_results(settings, scores, fit_time))
        self.n_features_in_ = X.shape[1]
        if self.refit:  # on the same rows, data-parallel like the search
            single = self._single().set_params(
                alpha=self.alpha_, learning_rate_init=self.learning_rate_init_
            )
            if self.checkpoint is not None:
                single.set_params(checkpoint=os.path.join(self.checkpoint, "refit"))
            weights = None if sample_weight is None else w_host
            with plan.tasks.propagated(single):
                self.best_estimator_ = single.fit(X, y_host, weights)
            self._adopt(self.best_estimator_)
        plan.tasks.end()
        return self

    def _checkpoint_runs(self, plan, rng, folds, comm, K, classes):
        """None without ``checkpoint``; else a function that gives the ``Run`` of chunk i of
        the networks (in the folder's ``chunk-i``). The generator goes back to where the
        first chunk's run started, so that the seeds drawn are those of that run."""
        if self.checkpoint is None:
            return None
        folds_key = hashlib.blake2b(
            repr([(t.tolist(), v.tolist()) for t, v in folds]).encode(), digest_size=16
        ).hexdigest()

        def runs(i, chunk, data, backend):
            more = {"chunk": i, "networks": list(chunk), "folds": folds_key}
            folder = os.path.join(self.checkpoint, f"chunk-{i}")
            return plan.checkpoints(data, backend, comm, K, classes, more, folder)

        saved = start_of(os.path.join(self.checkpoint, "chunk-0"))
        if saved is not None:
            rng.bit_generator.state = saved
        runs.start_rng = rng.bit_generator.state
        return runs

    def _chunks(self, plan, grid, sizes, n):
        """Lists of network indices, each small enough for STACK_BYTES."""
        itemsize = np.dtype(self.dtype).itemsize
        batch = plan.minibatch(n)
        per_network = itemsize * (6 * count_parameters(sizes) + 3 * batch * sum(sizes) + 2 * n)
        size = max(1, STACK_BYTES // per_network)
        every = list(range(len(grid)))
        return [every[i : i + size] for i in range(0, len(every), size)]

    def refitted(self):
        """``best_estimator_``, the plain estimator this one predicts with (and what
        ``gpubp.save``, ``to_sklearn`` and ``gpubp.export_onnx`` take from it)."""
        if not hasattr(self, "best_estimator_"):
            raise InputError(
                f"this {type(self).__name__} has no best_estimator_: fit it with refit=True"
            )
        return self.best_estimator_

    def to_sklearn(self):
        """``best_estimator_.to_sklearn()``: scikit-learn's MLP with the refitted weights."""
        return self.refitted().to_sklearn()

    def _adopt(self, fitted):
        """Predict with the refitted estimator's network and record."""
        for key, value in vars(fitted).items():
            if key.endswith("_") or key in ("_net", "_history", "_optimizer", "_label_binarizer"):
                setattr(self, key, value)
