"""Bad input gets a clear error naming the argument; training failures lose nothing."""

import os
import signal
import warnings

import numpy as np
import pytest
from conftest import standin_installed
from sklearn.datasets import make_classification

import gpubp
from gpubp import InputError, MLPClassifier, MLPRegressor
from gpubp.backend import out_of_memory

pytestmark = [pytest.mark.backends, pytest.mark.usefixtures("leaves_nothing_behind")]

X, y = make_classification(
    n_samples=30, n_features=3, n_informative=2, n_redundant=0, random_state=0
)
BAD_X = {
    "1-D": (np.arange(3.0), "Expected 2D"),
    "empty": (np.zeros((0, 3)), "0 sample"),
    "ragged": ([[1.0, 2.0], [3.0]], "inhomogeneous"),
    "complex": (X + 1j, "Complex"),
    "strings": (np.full((30, 3), "a"), "string"),
    "objects": (np.full((30, 3), object()), "object"),
    "NaN": (np.where(X > 1, np.nan, X), "NaN"),
    "infinity": (np.where(X > 1, np.inf, X), "infinity"),
}


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("case", list(BAD_X))
def test_estimators_name_x_and_say_what_is_wrong(Estimator, case):
    bad, words = BAD_X[case]
    with pytest.raises(InputError, match=f"^X: .*{words}"):
        Estimator(max_iter=2).fit(bad, y)


@pytest.mark.parametrize(
    "target,words",
    [
        (y[:10], "y: Found input variables with inconsistent"),
        (np.zeros(30), "y: .*2 classes"),
        (np.where(y > 0, np.nan, 0), "y: Input y contains NaN"),
        (np.zeros((30, 2, 2)), "y: .*dim 3"),
    ],
)
def test_classifier_names_y(target, words):
    with pytest.raises(InputError, match=words):
        MLPClassifier(max_iter=2).fit(X, target)


def test_predict_time_problems_are_named():
    clf = MLPClassifier((4,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with pytest.raises(InputError, match="X: X has 4 features, but MLPClassifier is expecting 3"):
        clf.predict(np.zeros((2, 4)))
    with pytest.raises(InputError, match="X: .*NaN"):
        clf.predict_proba(np.full((2, 3), np.nan))
    with pytest.raises(InputError, match="sample_weight"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=np.ones(5))


@pytest.mark.parametrize(
    "params,words",
    [
        ({"solver": "newton"}, "'solver' parameter .* must be a str among"),
        ({"activation": "softsign"}, "'activation' parameter"),
        ({"backend": "tpu"}, "'backend' parameter"),
        ({"dtype": "float16"}, "'dtype' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"learning_rate_init": -1.0}, "'learning_rate_init'"),
        ({"momentum": 1.5}, "'momentum'"),
        ({"validation_fraction": 1.0}, "'validation_fraction'"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
    ],
)
def test_bad_parameters_list_what_is_allowed(params, words):
    with pytest.raises((ValueError, TypeError), match=words):
        MLPClassifier(**params).fit(X, y)


def test_string_and_arbitrary_integer_labels_work():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for labels in (np.array(["no", "yes"])[y], np.array([-7, 1000])[y]):
            clf = MLPClassifier((4,), max_iter=20, random_state=0).fit(X, labels)
            assert set(clf.predict(X)) <= set(labels) and list(clf.classes_) == sorted(set(labels))


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"layer_sizes": [3, -1, 2]}, "layer_sizes"),
        ({"layer_sizes": 3}, "layer_sizes"),
        ({"layer_sizes": [3, 2.5]}, "layer_sizes"),
        ({"weight_decay": "a lot"}, "weight_decay"),
        ({"seed": "lucky"}, "seed"),
        ({"seed": -1}, "seed"),
        ({"backend": "jax"}, "backend"),
        ({"output": "tanh"}, "output='tanh' is not one of: identity, softmax, sigmoid"),
    ],
)
def test_network_arguments(kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        gpubp.MLP(**{"layer_sizes": [3, 4, 2], **kwargs})


def test_network_data_and_weights_are_checked():
    net = gpubp.MLP([3, 4, 2], backend="numpy")
    for bad, words in [
        (np.full((2, 3), np.nan), "X contains NaN"),
        (X + 1j, "X holds complex"),
        ([[1, 2], [3]], "X is not a rectangular"),
        (np.full((2, 3), "a"), "X must hold numbers"),
    ]:
        with pytest.raises(InputError, match=words):
            net.forward(bad)
    with pytest.raises(InputError, match="Y contains NaN"):
        net.loss_and_gradients(X, np.full((30, 2), np.nan))
    good = net.get_weights()
    with pytest.raises(InputError, match="W_1 contains NaN"):
        net.set_weights([(np.full((3, 4), np.nan), good[0][1]), good[1]])
    with pytest.raises(InputError, match=r"weights\[1\] must be a pair"):
        net.set_weights([good[0], good[1][0]])
    with pytest.raises(InputError, match="gpubp.MLP"):
        gpubp.gradcheck("net", X, y)
    with pytest.raises(InputError, match="eps"):
        gpubp.gradcheck(net, X[:, :3], np.zeros((30, 2)), eps=0)


@pytest.mark.parametrize("k", [1, 7, 13])
def test_ctrl_c_after_k_steps_keeps_exactly_the_weights_of_k_steps(k, monkeypatch):
    """SIGINT sent from inside the k-th optimiser step: training finishes that step and
    stops, and its weights are those of a run that took exactly those k steps (one epoch
    over the first k minibatches, no shuffling; k = 13 is the second epoch's first step)."""
    from gpubp import graphs, optim

    # the steps one kernel at a time: a CUDA graph's replays never call SGD.step
    monkeypatch.setenv(graphs.ENV_VAR, "0")
    rows = np.random.default_rng(0).normal(size=(240, 5))
    labels = (rows[:, 0] + rows[:, 1] > 0).astype(int)
    kw = dict(solver="sgd", momentum=0.9, batch_size=20, shuffle=False, random_state=0)
    kw.update(max_iter=100, tol=0.0, n_iter_no_change=100, dtype="float64")
    steps = {"n": 0}
    original = optim.SGD.step

    def step_then_ctrl_c(self, theta, grad, active=None):
        original(self, theta, grad, active)
        steps["n"] += 1
        if steps["n"] == k:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(optim.SGD, "step", step_then_ctrl_c)
    clf = MLPClassifier((8,), **kw)
    before = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN in a background job
    complete = (k - 1) // 12  # 12 steps per epoch
    with pytest.warns(UserWarning, match=f"interrupted by the user after {complete} complete"):
        clf.fit(rows, labels)
    assert steps["n"] == k and clf.stop_reason_ == "interrupted"
    assert clf.n_iter_ == len(clf.loss_curve_) == complete
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.setattr(optim.SGD, "step", original)
    if complete:  # whole epochs, then the first steps of the next
        ref = MLPClassifier((8,), **dict(kw, max_iter=complete, warm_start=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(rows, labels)
        ref_steps = k - 12 * complete
        ref.partial_fit(rows[: 20 * ref_steps], labels[: 20 * ref_steps])
    else:
        ref = MLPClassifier((8,), **dict(kw, max_iter=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(rows[: 20 * k], labels[: 20 * k])
    for a, b in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.set_params(warm_start=True, max_iter=1).fit(rows, labels)  # usable afterwards


def test_a_second_ctrl_c_stops_at_once():
    from gpubp.train import interrupt_after_the_step

    before = signal.getsignal(signal.SIGINT)
    with interrupt_after_the_step() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes
            if stop["now"]:
                break
        assert stop["now"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("cudaErrorMemoryAllocation: out of memory"),
        RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"),
        RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory"),  # the driver's words
        type("OutOfMemoryError", (MemoryError,), {})("Out of memory allocating 1,024 bytes"),
    ],
)
def test_every_way_the_gpu_says_out_of_memory_is_recognised(exc):
    assert out_of_memory(exc)
    assert not out_of_memory(RuntimeError("CUDA_ERROR_LAUNCH_FAILED"))


@pytest.mark.gpu
def test_gpu_out_of_memory_becomes_advice(monkeypatch):
    import cupy

    if standin_installed():  # a card of 64 MiB, predicting 16 MiB at a time: fewer rows
        from gpubp.estimators import predicting

        monkeypatch.setenv("GPUBP_STANDIN_MEMORY", str(2**26))
        monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", 2**24)

    p, width = 10, 100_000  # 4 MB of weights; the hidden layer of N cases takes N * 400 kB
    # the estimate before allocating is tests/test_memory.py's; here the allocation fails
    monkeypatch.setattr(gpubp.estimators.plan, "check_fits", lambda *args: None)
    clf = MLPClassifier((width,), solver="sgd", max_iter=1, backend="cupy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(np.random.default_rng(0).normal(size=(50, p)), np.arange(50) % 2)
    cupy.get_default_memory_pool().free_all_blocks()
    _, total = cupy.cuda.runtime.memGetInfo()
    rows = total // (width * 4) + 1000  # their hidden layer alone is more than the card holds
    X_gpu = cupy.zeros((rows, p), dtype=cupy.float32)
    assert clf.predict(X_gpu).shape == (rows,)  # predict goes a chunk of rows at a time
    clf.set_params(batch_size=rows)  # one step over all of them does not fit
    with pytest.raises(gpubp.DeviceMemoryError, match="batch_size.*backend='numpy'"):
        clf.partial_fit(X_gpu, cupy.arange(rows) % 2)
