"""A stack of R networks (``MLP(n_networks=R)``) is R networks: each row of every named
quantity, and each network's whole training trajectory, equals that network alone."""

import warnings

import numpy as np
import pytest
from conftest import PAIRS, problem

import gpubp
from gpubp.errors import InputError
from gpubp.functions import ACTIVATIONS
from gpubp.optim import SGD, Adam
from gpubp.train import Data, History, Objective, fit_stochastic
from gpubp.train_stack import StackHistory, fit_stack

pytestmark = pytest.mark.backends

SEEDS = [3, 4, 5, 6]


def numpy_mlp(*args, **kwargs):
    """A network on NumPy: these tests are about the arithmetic of stacks (the estimators'
    tests run stacks on the CuPy stand-in)."""
    return gpubp.MLP(*args, backend="numpy", **kwargs)


@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_row_of_a_stack_is_the_network_alone(activation, output, loss):
    sizes = [3, 5, 4, 3]
    X, Y = problem(sizes, output, N=7)
    decays = [0.0, 0.1, 0.3]
    w = np.random.default_rng(1).uniform(size=(3, 7))
    scale = np.array([0.5, 0.2, 1.0])
    stack = numpy_mlp(
        sizes, activation, output, loss, decays, "float64", seed=SEEDS[:3], n_networks=3
    )
    Xd, Yd, _ = stack.check_inputs(X, Y)
    got = stack.backprop_unchecked(Xd, Yd, scale, np.array(decays), w)
    for r in range(3):
        alone = numpy_mlp(sizes, activation, output, loss, decays[r], "float64", seed=SEEDS[r])
        np.testing.assert_array_equal(alone.theta, stack.theta[r])
        want = alone.backprop_unchecked(Xd, Yd, scale[r], decays[r], w[r])
        np.testing.assert_allclose(got.loss[r], want.loss, rtol=1e-13)
        np.testing.assert_allclose(got.F[r], want.F, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(got.delta[r], want.delta, rtol=1e-12, atol=1e-300)
        for s_got, s_want in zip(got.s, want.s):
            np.testing.assert_allclose(s_got[r], s_want, rtol=1e-12, atol=1e-300)
        for (dW, db), (dW0, db0) in zip(got.gradients, want.gradients):
            np.testing.assert_allclose(dW[r], dW0, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(db[r], db0, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("output,loss", PAIRS)
def test_gradcheck_checks_each_network_of_a_stack(output, loss):
    sizes = [3, 4, 2]
    X, Y = problem(sizes, output)
    stack = numpy_mlp(sizes, "tanh", output, loss, [0.0, 0.2], "float64", seed=[1, 2], n_networks=2)
    result = gpubp.gradcheck(stack, X, Y)
    assert result.network in (0, 1) and result.max_rel_error < 1e-7, str(result)
    broken = numpy_mlp(
        sizes, "tanh", output, loss, [0.0, 0.2], "float64", seed=[1, 2], n_networks=2
    )

    def wrong(X, Y, reduction="mean"):
        loss_, grads = type(broken).loss_and_gradients(broken, X, Y, reduction)
        grads[0][0][1] *= 1.01  # the second network's dW_1 is off by 1%
        return loss_, grads

    broken.loss_and_gradients = wrong
    assert gpubp.gradcheck(broken, X, Y).network == 1


def _optimizer(solver, theta, lr):
    if solver == "adam":
        return Adam(np, theta, lr)
    schedule = "adaptive" if solver == "momentum" else "constant"
    return SGD(np, theta, lr, schedule, 0.0 if solver == "sgd" else 0.9, solver == "nesterov")


@pytest.mark.parametrize(
    "solver,penalty",
    [("sgd", "l2"), ("momentum", "l2"), ("nesterov", "l2"), ("adam", "l2")]
    + [("adam", "weight_elimination")],
)
def test_each_network_of_a_stack_follows_its_trajectory_alone(solver, penalty):
    """Own seed, decay, learning rate and case weights (some batches weigh 0 for some
    networks); the adaptive schedule and the stopping rule act at different epochs."""
    rng = np.random.default_rng(0)
    n = 45
    X = rng.normal(size=(n, 4))
    Y = np.eye(3)[rng.integers(0, 3, n)]
    R = 4
    alphas = np.array([0.0, 1e-3, 1e-2, 1e-1])
    rates = np.array([0.05, 0.1, 0.02, 0.03])
    w = rng.uniform(size=(R, n)) * (rng.uniform(size=(R, n)) > 0.3)
    w[:, :5] = 0
    w[1, 5:20] = 0  # network 1 has nothing in some batches
    kw = dict(batch_size=10, max_iter=40, shuffle=True, tol=0.02, n_iter_no_change=1)
    kw_net = dict(dtype="float64", penalty=penalty, w0=0.5)
    stack = numpy_mlp([4, 6, 3], "tanh", "softmax", seed=SEEDS, n_networks=R, **kw_net)
    history = StackHistory(R)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_stack(
            stack,
            _optimizer(solver, stack.theta, rates),
            Data(X, Y, w, w),
            Objective(1.0, alphas),
            history,
            rng=np.random.default_rng(1),
            **kw,
        )
    lengths = set()
    for r in range(R):
        alone = numpy_mlp([4, 6, 3], "tanh", "softmax", seed=SEEDS[r], **kw_net)
        record = History()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_stochastic(
                alone,
                _optimizer(solver, alone.theta, rates[r]),
                Data(X, Y, w[r], w[r]),
                Objective(1.0, alphas[r]),
                record,
                rng=np.random.default_rng(1),
                **kw,
            )
        np.testing.assert_allclose(stack.theta[r], alone.theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(history.loss_curves[r], record.loss_curve, rtol=1e-12)
        assert history.n_iter[r] == record.n_iter
        assert history.stop_reasons[r] == record.stop_reason
        lengths.add(record.n_iter)
    assert len(lengths) > 1  # the networks did stop at different epochs


def test_a_diverging_network_stops_alone_and_the_others_go_on():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)) * 50, rng.normal(size=(40, 2)) * 50
    stack = numpy_mlp([3, 8, 2], "relu", "identity", dtype="float64", seed=[1, 2], n_networks=2)
    history = StackHistory(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_stack(
            stack,
            SGD(np, stack.theta, np.array([1e-5, 10.0]), momentum=0.0),
            Data(X, Y),
            Objective(),
            history,
            batch_size=10,
            max_iter=5,
            shuffle=False,
            rng=np.random.default_rng(0),
            tol=0.0,
            n_iter_no_change=100,
        )
    assert list(history.diverged) == [False, True]
    assert np.isfinite(stack.theta).all()
    assert history.n_iter[0] == 5


def test_stack_arguments_are_checked():
    with pytest.raises(InputError, match="n_networks"):
        numpy_mlp([2, 3, 2], n_networks=0)
    with pytest.raises(InputError, match="one per network"):
        numpy_mlp([2, 3, 2], weight_decay=[0.1, 0.2], n_networks=3)
    with pytest.raises(InputError, match="seed has 2 entries for 3"):
        numpy_mlp([2, 3, 2], seed=[1, 2], n_networks=3)
    with pytest.raises(InputError, match="weight_decay"):
        numpy_mlp([2, 3, 2], weight_decay=[0.1, 0.2])  # a list needs a stack
    with pytest.raises(InputError, match="dense X"):
        import scipy.sparse as sp

        numpy_mlp([2, 3, 2], n_networks=2).forward(sp.csr_matrix(np.ones((3, 2))))
    with pytest.raises(InputError, match="network"):
        numpy_mlp([2, 3, 2]).network(0)


def test_one_seed_draws_the_networks_in_turn():
    """Network 0 of a stack seeded with s is the network that s gives alone."""
    stack = numpy_mlp([2, 3, 2], seed=7, n_networks=3)
    np.testing.assert_array_equal(stack.theta[0], numpy_mlp([2, 3, 2], seed=7).theta)
    assert not np.array_equal(stack.theta[0], stack.theta[1])
    np.testing.assert_array_equal(stack.network(2).theta, stack.theta[2])
