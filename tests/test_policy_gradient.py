"""policy_gradient against finite differences of entropy for a smooth parametric model."""

import numpy as np
import pytest
from derivatives import central_differences

import fastcov

GRID = 24
SIGMA = 3.0
PEAK = 0.9


def _sensors(theta):
    """Gaussian sensors: agent i at position theta[i] = (x, y) on a GRID x GRID map.

    Returns mu (N, GRID, GRID) and the Jacobian dmu (N, GRID*GRID, 2).
    """
    ys, xs = np.mgrid[0:GRID, 0:GRID].astype(np.float64)
    dx = xs[None] - theta[:, 0, None, None]
    dy = ys[None] - theta[:, 1, None, None]
    mu = PEAK * np.exp(-(dx**2 + dy**2) / (2 * SIGMA**2))
    dmu = np.stack([mu * dx / SIGMA**2, mu * dy / SIGMA**2], axis=-1)
    return mu, dmu.reshape(len(theta), GRID * GRID, 2)


@pytest.fixture
def theta():
    return np.array([[5.0, 6.0], [15.5, 8.2], [10.0, 17.0], [6.3, 18.1]])


def _finite_difference(theta):
    return central_differences(
        lambda at: fastcov.entropy(_sensors(at)[0], backend="numpy"), theta, 1e-5
    )


def test_policy_gradient_matches_central_differences(backend, theta):
    mu, dmu = _sensors(theta)
    analytic = fastcov.policy_gradient(mu, dmu, backend=backend)
    np.testing.assert_allclose(analytic, _finite_difference(theta), rtol=1e-6, atol=1e-8)


def test_theorem_1_form_equals_policy_gradient(backend, theta):
    # sum_s c(s) grad log(1 - mu_i(s)) = sum_s c(s) (-dmu_i(s) / (1 - mu_i(s)))
    mu, dmu = _sensors(theta)
    c = fastcov.state_weights(mu, backend=backend).reshape(-1)
    flat = mu.reshape(len(theta), -1)
    theorem = np.einsum("s,isp->ip", c, -dmu / (1 - flat)[..., None])
    np.testing.assert_allclose(
        fastcov.policy_gradient(mu, dmu, backend=backend), theorem, rtol=1e-10
    )


def test_surrogate_with_frozen_weights_has_the_same_gradient(theta):
    # L_i = sum_s c(s) log(1 - mu_i(s)) with c held fixed: its finite-difference gradient in
    # theta_i equals grad_{theta_i} J (the corollary users rely on).
    mu, dmu = _sensors(theta)
    c = fastcov.state_weights(mu)
    h = 1e-6
    for i in range(len(theta)):
        for k in range(2):
            up, down = theta.copy(), theta.copy()
            up[i, k] += h
            down[i, k] -= h
            surrogate = [np.sum(c * np.log1p(-_sensors(t)[0][i])) for t in (up, down)]
            slope = (surrogate[0] - surrogate[1]) / (2 * h)
            assert slope == pytest.approx(
                fastcov.policy_gradient(mu, dmu)[i, k], rel=1e-6, abs=1e-8
            )


def test_policy_gradient_equals_grad_contracted(backend, dtype):
    rng = np.random.default_rng(9)
    mu = rng.random((5, 7, 11)).astype(dtype)
    dmu = rng.standard_normal((5, 77, 4)).astype(dtype)
    g = fastcov.grad(mu, backend=backend).reshape(5, 77).astype(np.float64)
    expected = np.einsum("is,isp->ip", g, dmu.astype(np.float64))
    result = fastcov.policy_gradient(mu, dmu, backend=backend)
    assert result.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize(
    "mu_dtype, dmu_dtype", [(np.float32, np.float64), (np.float64, np.float32)]
)
def test_mixed_precision_inputs_give_float64(backend, mu_dtype, dmu_dtype):
    # float32 only where both inputs are: neither a float64 mu nor a float64 dmu is
    # rounded to float32 (dmu's 1e-9 steps would round away, mu's digits too).
    rng = np.random.default_rng(10)
    mu = rng.random((3, 50)).astype(mu_dtype)
    dmu = (1.0 + 1e-9 * rng.random((3, 50, 2))).astype(dmu_dtype)
    g = fastcov.grad(mu.astype(np.float64), backend="numpy")
    expected = np.einsum("is,isp->ip", g, dmu.astype(np.float64))
    scale = np.einsum("is,isp->ip", np.abs(g), np.abs(dmu.astype(np.float64)))
    result = fastcov.policy_gradient(mu, dmu, backend=backend)
    assert result.dtype == np.float64
    assert np.all(np.abs(result - expected) <= 1e-12 * scale)
