"""What is timed: one epoch of minibatch SGD (no momentum, lr 0.1, shuffled), four ways.

Each contender is built once per configuration (its fit's set-up is not timed)
and then runs one epoch per ``epoch()`` call, returning when the device is done.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import numpy as np

from .configs import LEARNING_RATE, N_CLASSES, Config

SKLEARN_ACTIVATION = {"sigmoid": "logistic", "relu": "relu"}
PACKAGE_BEFORE = "gpubp_before"  # gpubp as it was before a change, where a copy is on the path


def add_before_argument(parser) -> None:
    """``--before [PACKAGES]``: copies of gpubp from before a change to time beside it, as
    a list of package names (comma-separated; given bare, ``PACKAGE_BEFORE``)."""
    parser.add_argument(
        "--before",
        nargs="?",
        type=lambda text: [p for p in text.split(",") if p],
        const=[PACKAGE_BEFORE],
        default=[],
        metavar="PACKAGES",
        help="also time these copies of gpubp from before a change (comma-separated package "
        f"names on the path; default {PACKAGE_BEFORE})",
    )


def package_label(package: str) -> str:
    """How a table names a copy of gpubp: ``gpubp_before`` is "before"."""
    return package.removeprefix("gpubp_")


class Unavailable(Exception):
    """This contender cannot run here; the message says why."""


def _estimator_params(config: Config) -> dict:
    return dict(
        hidden_layer_sizes=config.hidden,
        activation=SKLEARN_ACTIVATION[config.activation],
        solver="sgd",
        momentum=0.0,
        learning_rate_init=LEARNING_RATE,
        batch_size=config.batch_size,
        alpha=0.0,
        shuffle=True,
        random_state=0,
    )


class Gpubp:
    """gpubp.MLPClassifier(solver="sgd", momentum=0): one partial_fit is one epoch.

    On CuPy, ``graphs=False`` runs each step one kernel at a time (GPUBP_CUDA_GRAPHS=0,
    set around each of its own epochs) and ``precision="tf32"`` the TF32 products."""

    def __init__(
        self, backend: str, graphs: bool = True, precision: str = "float32", package="gpubp"
    ):
        self.backend, self.graphs, self.precision = backend, graphs, precision
        self.package = package
        extra = ([] if graphs else ["no graphs"]) + ([] if precision == "float32" else [precision])
        label = "gpubp" if package == "gpubp" else f"gpubp {package_label(package)}"
        self.name = f"{label} ({', '.join([backend, *extra])})"

    def _gpubp(self):
        """The package timed: gpubp, or an earlier copy of it under another name (for a
        before/after table in one process: ``PACKAGE_BEFORE``)."""
        try:
            return importlib.import_module(self.package)
        except ImportError as exc:
            raise Unavailable(f"{self.package} is not importable: {exc}") from None

    def load(self):
        self._gpubp()  # imported before memory is measured

    def prepare(self, config: Config, X, y):
        gpubp = self._gpubp()
        if self.backend == "cupy":
            import cupy

            X, y = cupy.asarray(X), cupy.asarray(y)  # in device memory already, as torch's
        self.model = gpubp.MLPClassifier(
            backend=self.backend, matmul_precision=self.precision, **_estimator_params(config)
        )
        self.X, self.y = X, y
        with self._graphs():
            self.model.partial_fit(X, y, classes=np.arange(N_CLASSES))

    @contextlib.contextmanager
    def _graphs(self):
        graphs = importlib.import_module(f"{self.package}.graphs")
        before = os.environ.get(graphs.ENV_VAR)
        os.environ[graphs.ENV_VAR] = "1" if self.graphs else "0"
        try:
            yield
        finally:
            if before is None:
                del os.environ[graphs.ENV_VAR]
            else:
                os.environ[graphs.ENV_VAR] = before

    def prepare_measured(self, config: Config, X, y):
        """``prepare`` (the data's move to the device, one epoch), its peak GPU memory kept."""
        with PeakInUse() as peak:
            self.prepare(config, X, y)
        self.peak_bytes = peak.bytes

    def epoch(self):
        with self._graphs():
            self.model.partial_fit(self.X, self.y)

    def prepare_loop(self, config: Config, X, y):
        """The estimator's training loop without the estimator: ``gpubp.epoch.run_epoch``
        over a network, plain SGD and data already on the device (what ``loop`` times)."""
        from gpubp import MLP
        from gpubp.optim import SGD
        from gpubp.train import Data, Objective

        self._batch = config.batch_size
        net = MLP(config.layer_sizes, config.activation, backend=self.backend, seed=0)
        xp, to_device = net.backend.xp, net.backend.to_device
        Y = np.eye(N_CLASSES, dtype=np.float32)[np.asarray(y)]
        optimizer = SGD(xp, net.theta, LEARNING_RATE, momentum=0.0, fused=net.backend.fused)
        self._loop = net, optimizer, Data(to_device(X), to_device(Y)), Objective()
        self._rng = np.random.default_rng(0)
        self.loop()

    def loop(self):
        """One epoch of ``run_epoch`` (shuffled, as the estimator's), read once at the end."""
        try:
            from gpubp.epoch import run_epoch
        except ImportError:  # a --baseline checkout from before gpubp.epoch
            from gpubp.train import run_epoch

        net, optimizer, data, objective = self._loop
        order = self._rng.permutation(data.n)
        total, _ = run_epoch(net, optimizer, data, objective, self._batch, order)
        float(total)

    def fit_once(self, config: Config, X, y):
        """A fresh estimator's ``fit`` of one epoch, as a user calls it (set-up included)."""
        import gpubp

        model = gpubp.MLPClassifier(
            backend=self.backend,
            matmul_precision=self.precision,
            max_iter=1,
            **_estimator_params(config),
        )
        with self._graphs(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)


class PeakInUse:
    """Peak bytes in use from CuPy's pool (not what the pool holds) while in the block,
    above what was in use at its start: a memory hook on this thread's allocations, the
    measure ``torch.cuda.max_memory_allocated`` gives for PyTorch."""

    def __enter__(self):
        import cupy

        class Hook(cupy.cuda.MemoryHook):
            name = "gpubp-benchmark-peak"

            def __init__(hook):
                hook.used = hook.peak = 0

            def malloc_postprocess(hook, **kw):
                hook.used += kw["mem_size"]
                hook.peak = max(hook.peak, hook.used)

            def free_postprocess(hook, **kw):
                hook.used -= kw["mem_size"]

        self._hook = Hook()
        self._hook.__enter__()
        return self

    def __exit__(self, *exc):
        self._hook.__exit__(*exc)
        self.bytes = self._hook.peak


class Sklearn:
    """scikit-learn's MLPClassifier on float32 input, one partial_fit per epoch."""

    name = "scikit-learn"

    def load(self):
        import sklearn.neural_network  # noqa: F401 - imported before memory is measured

    def prepare(self, config: Config, X, y):
        from sklearn.neural_network import MLPClassifier

        self.model = MLPClassifier(**_estimator_params(config))
        self.X, self.y = X, y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X, y, classes=np.arange(N_CLASSES))

    def epoch(self):
        self.model.partial_fit(self.X, self.y)

    def fit_once(self, config: Config, X, y):
        """A fresh estimator's ``fit`` of one epoch (set-up included)."""
        from sklearn.neural_network import MLPClassifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPClassifier(max_iter=1, **_estimator_params(config)).fit(X, y)


class Torch:
    """A plain PyTorch eager loop: nn.Sequential, optim.SGD, tensors already in memory."""

    def __init__(self, device: str, compile_mode: str | None = None):
        self.device = device
        self.compile_mode = compile_mode
        label = "torch eager" if compile_mode is None else f"torch.compile({compile_mode})"
        self.name = f"{label} ({device})"

    def load(self):
        try:
            import torch  # noqa: F401 - imported before memory is measured
        except ImportError as exc:
            raise Unavailable("torch is not installed (pip install torch)") from exc

    def prepare(self, config: Config, X, y):
        self.load()
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch has no CUDA device")
        self.torch = torch
        torch.manual_seed(0)
        layers = []
        sizes = config.layer_sizes
        act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[config.activation]
        for m, n in zip(sizes[:-2], sizes[1:-1]):
            layers += [torch.nn.Linear(m, n), act()]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        self.model = torch.nn.Sequential(*layers).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=0.0)
        self.loss = torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(self.device)
        self.y = torch.from_numpy(y).to(self.device)
        self.batch = config.batch_size
        step = self._step
        if self.compile_mode is not None:
            try:
                step = torch.compile(self._step, mode=self.compile_mode)
                step(self.X[: self.batch], self.y[: self.batch])  # compile now, untimed
            except Exception as exc:  # noqa: BLE001 - any compiler failure means "not here"
                raise Unavailable(f"torch.compile failed: {type(exc).__name__}: {exc}") from exc
        self.step = step
        self.epoch()

    def fit_once(self, config: Config, X, y):
        """Tensors from the arrays, a fresh model and optimiser, and one epoch."""
        self.prepare(config, X, y)

    def _step(self, xb, yb):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self):
        torch = self.torch
        n = self.X.shape[0]
        order = torch.randperm(n, device=self.device)
        total = torch.zeros((), device=self.device)
        for start in range(0, n, self.batch):
            idx = order[start : start + self.batch]
            total += self.step(self.X[idx], self.y[idx]) * len(idx)
        float(total)  # one read per epoch, as gpubp does; it also waits for the device

    def prepare_measured(self, config: Config, X, y):
        """``prepare`` (the data's move to the device, compiling, one epoch), its peak GPU
        memory in use above the level at its start kept."""
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        self.prepare(config, X, y)
        self.peak_bytes = torch.cuda.max_memory_allocated() - start


def cpu_contender(key: str):
    """The CPU contenders by key: gpubp, torch, torch-compile, sklearn."""
    return {
        "gpubp": lambda: Gpubp("numpy"),
        "torch": lambda: Torch("cpu"),
        "torch-compile": lambda: Torch("cpu", "default"),
        "sklearn": Sklearn,
    }[key]()


def gpu_contender(key: str):
    """The GPU contenders by key: gpubp, gpubp-nograph, gpubp-tf32, torch, torch-compile,
    torch-compile-ro; and gpubp@PACKAGE, a copy of gpubp under another name."""
    if key.startswith("gpubp@"):
        return Gpubp("cupy", package=key.removeprefix("gpubp@"))
    return {
        "gpubp": lambda: Gpubp("cupy"),
        "gpubp-nograph": lambda: Gpubp("cupy", graphs=False),
        "gpubp-tf32": lambda: Gpubp("cupy", precision="tf32"),
        "torch": lambda: Torch("cuda"),
        "torch-compile": lambda: Torch("cuda", "default"),
        "torch-compile-ro": lambda: Torch("cuda", "reduce-overhead"),
    }[key]()
