"""Every backend against the 50-digit mpmath oracle, to the tolerances of SPEC section 2."""

import math

import mpmath
import numpy as np
import pytest
from conftest import hard_inputs
from exact import exact, weight_factor
from tolerance import assert_close

import fastcov


def _check_all(mu, backend, eps=0.0):
    dtype = mu.dtype.type
    n_agents = mu.shape[0]
    value, coverage, weights, grads = exact(mu, eps)
    factor = weight_factor(mu, eps)
    assert_close(fastcov.coverage(mu, backend=backend), coverage, dtype, "coverage")
    assert_close(fastcov.entropy(mu, backend=backend), value, dtype, "entropy")
    assert_close(
        fastcov.state_weights(mu, eps, backend=backend), weights, dtype, "weights", n_agents, factor
    )
    J, g = fastcov.value_and_grad(mu, eps, backend=backend)
    assert_close(J, value, dtype, "entropy")
    assert_close(g, np.array(grads).reshape(mu.shape), dtype, "grad", n_agents, factor)


@pytest.mark.parametrize("n_agents", [1, 2, 3, 4, 5, 8, 13, 32])
def test_hard_inputs_match_mpmath(backend, dtype, n_agents):
    mu = hard_inputs(n_agents, 240, seed=n_agents, dtype=dtype)
    _check_all(mu, backend)


@pytest.mark.parametrize("eps", [1e-300, 1e-12, 0.05, 1.0])
def test_eps_clamps_only_the_weights_log(backend, eps):
    mu = hard_inputs(4, 200, seed=7)
    _check_all(mu, backend, eps)


@pytest.mark.parametrize("exponent", [-300, -200, -100, -30, -16, -9])
def test_tiny_coverage_keeps_relative_accuracy(backend, exponent):
    # 1 - prod(1 - mu_j) would cancel to 0 (or to one ulp of 1) here.
    rng = np.random.default_rng(-exponent)
    mu = 10.0 ** (exponent + rng.uniform(-1, 1, size=(32, 50)))
    _, coverage, _, _ = exact(mu)
    assert_close(fastcov.coverage(mu, backend=backend), coverage, np.float64, "coverage")
    assert np.all(fastcov.coverage(mu, backend=backend) > 0)


def test_near_one_coverage_uses_log1p(backend):
    # mu(s) = 1 - 1e-12: log mu(s) ~ -1e-12 must keep its digits, so does -mu log mu.
    mu = np.full((2, 3), 1.0 - np.sqrt(1e-12))
    mu[:, 1] = 1.0 - np.sqrt(1e-300)
    mu[:, 2] = 1.0 - np.sqrt(0.3)
    value, _, weights, _ = exact(mu)
    assert_close(fastcov.entropy(mu, backend=backend), value, np.float64, "entropy")
    assert_close(fastcov.state_weights(mu, backend=backend), weights, np.float64, "weights")


@pytest.mark.parametrize("n_agents", [1, 4, 8])
def test_states_ulps_from_full_coverage_keep_their_entropy(backend, n_agents):
    # mu(s) = 1 - p, p = 2^(-52 N): J(s) = -mu(s) log mu(s) = p - p^2 / 2 - ..., all of it
    # in the digits of the product. The oracle too must take log mu(s)
    # from the product here: a 50-digit log of mu(s) itself gave 0 from N = 4.
    mu = np.full((n_agents, 3), 1.0 - 2.0**-52)
    value, *_ = exact(mu)
    each = mpmath.mpf(2) ** (-52 * n_agents)
    assert abs(value - 3 * each) <= 3 * each**2
    assert_close(fastcov.entropy(mu, backend=backend), value, np.float64, "entropy")


def test_states_of_tiny_coverage_keep_their_entropy_in_the_oracle():
    # The other end: mu(s) = 2^-1000, J(s) = 1000 log(2) 2^-1000 (log1p of minus the
    # product, which is 1 at 50 digits, would give an infinite log).
    value, coverage, weights, _ = exact(np.array([[2.0**-1000]]))
    expected = 1000 * mpmath.log(2) * mpmath.mpf(2) ** -1000
    assert abs(value - expected) <= 1e-45 * expected
    assert abs(weights[0] - (1 - 1000 * mpmath.log(2))) <= 1e-45 * 1000


def test_the_reference_adds_its_terms_exactly():
    # The oracle's J is its per-state terms summed exactly and rounded once: NumPy's
    # pairwise sum was an ulp off here.
    mu = np.random.default_rng(1).random((3, 20_000)) * 0.5
    terms = [fastcov.entropy(mu[:, [s]], backend="numpy") for s in range(mu.shape[1])]
    assert fastcov.entropy(mu, backend="numpy") == math.fsum(terms)
