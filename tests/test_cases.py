"""Hand-worked cases, shapes, dtypes, empty inputs and ``out=``."""

import math

import numpy as np
import pytest

import fastcov


def test_single_agent_hand_worked(backend):
    # One agent: mu(s) = mu_1(s), J(s) = -p log p, g = -(log p + 1), c = (log p + 1)(1 - p).
    p = np.array([[0.5, 0.25, 1.0, 0.0]])
    J, g = fastcov.value_and_grad(p, backend=backend)
    assert J == pytest.approx(0.5 * math.log(2) + 0.25 * math.log(4), rel=1e-15)
    np.testing.assert_allclose(g[0, :3], [math.log(2) - 1, math.log(4) - 1, -1.0], rtol=1e-15)
    assert g[0, 3] == math.inf
    c = fastcov.state_weights(p, backend=backend)
    np.testing.assert_allclose(c[:3], [(1 - math.log(2)) * 0.5, (1 - math.log(4)) * 0.75, 0.0])
    assert c[3] == -math.inf


def test_two_agents_hand_worked(backend):
    # mu = 1 - 0.5 * 0.75 = 0.625; g_1 = -(log 0.625 + 1) * 0.75, g_2 = -(log 0.625 + 1) * 0.5.
    mu = np.array([[0.5], [0.25]])
    weight = math.log(0.625) + 1
    J, g = fastcov.value_and_grad(mu, backend=backend)
    assert J == pytest.approx(-0.625 * math.log(0.625), rel=1e-15)
    np.testing.assert_allclose(g[:, 0], [-weight * 0.75, -weight * 0.5], rtol=1e-15)
    # The kernels' recurrence m <- m + mu_i q is exact here; the reference's
    # -expm1(sum log1p(-mu_i)) is within an ulp (0.625 - 1 ulp with NumPy 1.24).
    exact = 0.625 if backend != "numpy" else pytest.approx(0.625, rel=1e-15)
    assert fastcov.coverage(mu, backend=backend)[0] == exact


def test_agent_at_one_leave_one_out_is_exact(backend):
    # mu_2(s) = 1: g_2 = -(0 + 1) * (1 - 0.3)(1 - 0.6) exactly, every other g_j = 0.
    mu = np.array([[0.3], [1.0], [0.6]])
    g = fastcov.grad(mu, backend=backend)
    assert g[1, 0] == -(0.7 * 0.4)
    assert g[0, 0] == 0.0 and g[2, 0] == 0.0
    assert fastcov.state_weights(mu, backend=backend)[0] == 0.0
    assert fastcov.entropy(mu, backend=backend) == 0.0


def test_two_agents_at_one_zero_every_gradient(backend):
    mu = np.array([[1.0, 0.2], [1.0, 0.1], [0.5, 0.3]])
    g = fastcov.grad(mu, backend=backend)
    np.testing.assert_array_equal(g[:, 0], [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(g))


def test_uncovered_state_with_and_without_eps(backend):
    mu = np.zeros((3, 2))
    mu[:, 1] = 0.1
    g = fastcov.grad(mu, backend=backend)
    assert np.all(g[:, 0] == math.inf)
    assert fastcov.state_weights(mu, backend=backend)[0] == -math.inf
    eps = 1e-8
    g_eps = fastcov.grad(mu, eps, backend=backend)
    np.testing.assert_array_equal(g_eps[:, 0], -(math.log(eps) + 1.0))
    # eps leaves J and the covered state alone
    assert (
        fastcov.entropy(mu, backend=backend) == fastcov.value_and_grad(mu, eps, backend=backend)[0]
    )
    np.testing.assert_array_equal(g_eps[:, 1], g[:, 1])


def test_no_agents_means_nothing_covered(backend):
    mu = np.zeros((0, 3, 2))
    np.testing.assert_array_equal(fastcov.coverage(mu, backend=backend), np.zeros((3, 2)))
    assert fastcov.entropy(mu, backend=backend) == 0.0
    assert fastcov.grad(mu, backend=backend).shape == (0, 3, 2)
    assert np.all(fastcov.state_weights(mu, backend=backend) == -math.inf)
    assert fastcov.policy_gradient(mu, np.zeros((0, 6, 2)), backend=backend).shape == (0, 2)


def test_no_states(backend):
    mu = np.zeros((4, 0))
    assert fastcov.entropy(mu, backend=backend) == 0.0
    J, g = fastcov.value_and_grad(mu, backend=backend)
    assert J == 0.0 and g.shape == (4, 0)
    assert fastcov.coverage(mu, backend=backend).shape == (0,)
    np.testing.assert_array_equal(
        fastcov.policy_gradient(mu, np.zeros((4, 0, 3)), backend=backend), np.zeros((4, 3))
    )


def test_grid_shapes_are_kept(backend):
    rng = np.random.default_rng(0)
    mu = rng.random((3, 8, 5, 2))
    flat = mu.reshape(3, -1)
    assert fastcov.coverage(mu, backend=backend).shape == (8, 5, 2)
    np.testing.assert_array_equal(
        fastcov.grad(mu, backend=backend), fastcov.grad(flat, backend=backend).reshape(mu.shape)
    )
    # one state per agent: state_shape is ()
    assert fastcov.coverage(np.array([0.5, 0.5]), backend=backend).shape == ()
    assert fastcov.coverage(np.array([0.5, 0.5]), backend=backend) == 0.75


@pytest.mark.parametrize(
    "dtype, result",
    [
        (np.float64, np.float64),
        (np.float32, np.float32),
        (np.float16, np.float64),
        (np.int64, np.float64),
        (np.uint8, np.float64),
        (np.bool_, np.float64),
        (np.longdouble, np.float64),
        (np.dtype(">f4"), np.float32),  # big-endian: converted to native, same precision
        (np.dtype(">f8"), np.float64),
    ],
)
def test_dtypes(backend, dtype, result):
    mu = np.array([[0, 1, 0], [1, 0, 0]], dtype=dtype)
    g = fastcov.grad(mu, 1e-3, backend=backend)
    assert g.dtype == result
    assert fastcov.coverage(mu, backend=backend).dtype == result
    np.testing.assert_array_equal(fastcov.coverage(mu, backend=backend), [1, 1, 0])


def test_non_contiguous_input(backend):
    rng = np.random.default_rng(1)
    base = rng.random((6, 40, 30))
    views = [base[::2, ::3, 1::2], base.transpose(0, 2, 1), np.asfortranarray(base)]
    for view in views:
        expected = fastcov.grad(np.ascontiguousarray(view), backend=backend)
        np.testing.assert_array_equal(fastcov.grad(view, backend=backend), expected)
        assert fastcov.entropy(view, backend=backend) == fastcov.entropy(
            np.ascontiguousarray(view), backend=backend
        )


def test_read_only_input_is_read_in_place(backend):
    # np.asarray of a JAX array, np.load(..., mmap_mode="r") and np.frombuffer are
    # read-only. The CPU kernels read such input as they are, without compiling again for
    # its type (a second set of kernels, once per machine).
    from fastcov import cpu

    rng = np.random.default_rng(6)
    # On the CPU three blocks, so three chunks: in parallel. (The CUDA simulator is slow.)
    n_states = 5000 if backend == "cpu" else 64
    mu = rng.random((8, n_states))
    dmu = rng.standard_normal((8, n_states, 2))
    J, g = fastcov.value_and_grad(mu, backend=backend)
    pg = fastcov.policy_gradient(mu, dmu, backend=backend)
    kernels = [cpu._sweep_kernel, cpu._policy_gradient_kernel]
    compiled = [len(kernel.signatures) for kernel in kernels]
    frozen_mu = np.frombuffer(mu.tobytes()).reshape(mu.shape)
    frozen_dmu = dmu.copy()
    frozen_dmu.flags.writeable = False
    assert not frozen_mu.flags.writeable
    frozen_J, frozen_g = fastcov.value_and_grad(frozen_mu, backend=backend)
    assert frozen_J == J
    np.testing.assert_array_equal(frozen_g, g)
    frozen_pg = fastcov.policy_gradient(frozen_mu, frozen_dmu, backend=backend)
    np.testing.assert_array_equal(frozen_pg, pg)
    np.testing.assert_array_equal(frozen_mu, mu)
    assert [len(kernel.signatures) for kernel in kernels] == compiled


def test_out_is_returned_and_filled(backend, dtype):
    rng = np.random.default_rng(2)
    mu = rng.random((3, 4, 5)).astype(dtype)
    g_out = np.empty((3, 4, 5), dtype)
    J, g = fastcov.value_and_grad(mu, out=g_out, backend=backend)
    assert g is g_out
    np.testing.assert_array_equal(g_out, fastcov.grad(mu, backend=backend))
    for f in (fastcov.coverage, fastcov.state_weights):
        out = np.empty((4, 5), dtype)
        assert f(mu, out=out, backend=backend) is out
        np.testing.assert_array_equal(out, f(mu, backend=backend))
    pg_out = np.empty((3, 2), dtype)
    dmu = rng.random((3, 20, 2)).astype(dtype)
    assert fastcov.policy_gradient(mu, dmu, out=pg_out, backend=backend) is pg_out


def test_out_may_be_non_contiguous_or_alias_the_input(backend):
    rng = np.random.default_rng(4)
    mu = rng.random((3, 10))
    expected = fastcov.grad(mu, backend=backend)
    strided = np.empty((3, 20))[:, ::2]
    np.testing.assert_array_equal(fastcov.grad(mu, out=strided, backend=backend), expected)
    in_place = mu.copy()
    assert fastcov.grad(in_place, out=in_place, backend=backend) is in_place
    np.testing.assert_array_equal(in_place, expected)


def test_check_false_skips_validation(backend):
    mu = np.array([[0.5, 0.2]])
    assert fastcov.entropy(mu, check=False, backend=backend) == fastcov.entropy(mu, backend=backend)
    fastcov.grad(np.array([[np.nan, 0.5]]), check=False, backend=backend)  # no exception
    # Values out of range by a rounding, unchecked, go through the formula on every
    # backend (the state at 1 + 2^-52 adds -0.75 2^-52 to J), not to a NaN.
    rounded = np.array([[0.5, 1.0 + 2.0**-52], [-1e-300, 0.25]])
    with np.errstate(invalid="ignore"):  # the reference's log1p(-1 - 2^-52)
        value = fastcov.entropy(rounded, check=False, backend=backend)
    assert value == pytest.approx(0.5 * math.log(2.0), rel=1e-15)


def test_negative_zero_is_a_valid_probability(backend):
    mu = np.array([[-0.0, 0.5]])
    assert fastcov.coverage(mu, backend=backend)[1] == 0.5
