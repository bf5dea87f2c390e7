"""A 2-2-1 network worked by hand in the textbook's symbols (ESL 11.4).

One case x = (1, 2), target y = 1; sigmoid hidden units, identity output,
squared error, R = sum_i R_i (reduction="sum").

Hidden layer (alpha_m = column m of W_1, alpha_0m = b_1[m]):
    alpha_1 = (0.5, -0.25), alpha_01 = 0     -> alpha_1^T x = 0.5 - 0.5 = 0
    alpha_2 = (1, -0.5),    alpha_02 = ln 3  -> 1 - 1 + ln 3 = ln 3
    Z_1 = sigma(0) = 1/2,  Z_2 = sigma(ln 3) = 1 / (1 + 1/3) = 3/4
Output (beta = W_2[:, 0], beta_0 = b_2[0]):
    beta = (2, -4), beta_0 = 1
    T = 1 + 2 * 1/2 - 4 * 3/4 = -1,   f = g(T) = T = -1
    R = (y - f)^2 = (1 - (-1))^2 = 4
Output error:
    delta = -2 (y - f) g'(T) = -2 * 2 * 1 = -4
    dR/dbeta = delta * Z = (-2, -3),   dR/dbeta_0 = delta = -4
Back-propagated errors, s_m = sigma'(alpha_m^T x) beta_m delta with
sigma' = Z (1 - Z):
    s_1 = (1/2)(1/2) * 2 * (-4)   = -2
    s_2 = (3/4)(1/4) * (-4) * (-4) = 3
    dR/dalpha_m = s_m x:  dR/dalpha_1 = (-2, -4),  dR/dalpha_2 = (3, 6)
    dR/dalpha_0 = s = (-2, 3)
"""

import numpy as np
import pytest

import gpubp

pytestmark = pytest.mark.backends("numba", "reference")


@pytest.fixture
def net():
    net = gpubp.MLP([2, 2, 1], "sigmoid", "identity", dtype="float64", backend="numpy")
    W_1 = [[0.5, 1.0], [-0.25, -0.5]]  # column m is alpha_m
    b_1 = [0.0, np.log(3.0)]
    W_2 = [[2.0], [-4.0]]  # beta
    b_2 = [1.0]
    net.set_weights([(W_1, b_1), (W_2, b_2)])
    return net


def test_every_quantity_matches_the_hand_computation(net):
    bp = net.backprop([[1.0, 2.0]], [[1.0]], reduction="sum")
    np.testing.assert_allclose(bp.Z[1], [[0.5, 0.75]], rtol=1e-15)
    np.testing.assert_allclose(bp.T, [[-1.0]], rtol=1e-15)
    np.testing.assert_allclose(bp.F, [[-1.0]], rtol=1e-15)
    assert float(bp.loss) == pytest.approx(4.0, rel=1e-15)
    np.testing.assert_allclose(bp.delta, [[-4.0]], rtol=1e-15)
    np.testing.assert_allclose(bp.s[0], [[-2.0, 3.0]], rtol=1e-15)
    (dW_1, db_1), (dW_2, db_2) = bp.gradients
    np.testing.assert_allclose(dW_1, [[-2.0, 3.0], [-4.0, 6.0]], rtol=1e-15)
    np.testing.assert_allclose(db_1, [-2.0, 3.0], rtol=1e-15)
    np.testing.assert_allclose(dW_2, [[-2.0], [-3.0]], rtol=1e-15)
    np.testing.assert_allclose(db_2, [-4.0], rtol=1e-15)


def test_mean_over_two_copies_of_the_case_is_the_same(net):
    loss, grads = net.loss_and_gradients([[1.0, 2.0]] * 2, [[1.0]] * 2, reduction="mean")
    assert float(loss) == pytest.approx(4.0)
    np.testing.assert_allclose(grads[0][0], [[-2.0, 3.0], [-4.0, 6.0]])
