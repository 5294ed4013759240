"""The CPU kernels against the NumPy reference, including hypothesis property tests."""

import importlib
import math
import pathlib
import shutil
import sys

import numpy as np
import pytest
from conftest import hard_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerance import assert_close

import fastcov
from fastcov import _config, _interleave, cpu

probability = st.one_of(
    st.floats(0.0, 1.0, allow_subnormal=True),
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e-300, 0.5, 1.0 - 2**-53]),
)


def _weight_factor(mu, eps=0.0):
    m = fastcov.coverage(mu, backend="numpy").astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.abs(np.log(np.maximum(m, eps)) + 1.0)


def _agree(mu, eps=0.0, dmu=None):
    dtype = mu.dtype.type if mu.dtype == np.float32 else np.float64
    n_agents = mu.shape[0]
    factor = _weight_factor(mu, eps)
    for name, quantity in (("coverage", "coverage"), ("entropy", "entropy")):
        f = getattr(fastcov, name)
        assert_close(f(mu, backend="cpu"), f(mu, backend="numpy"), dtype, quantity)
    assert_close(
        fastcov.state_weights(mu, eps, backend="cpu"),
        fastcov.state_weights(mu, eps, backend="numpy"),
        dtype,
        "weights",
        n_agents,
        factor,
    )
    J_cpu, g_cpu = fastcov.value_and_grad(mu, eps, backend="cpu")
    J_ref, g_ref = fastcov.value_and_grad(mu, eps, backend="numpy")
    assert_close(J_cpu, J_ref, dtype, "entropy")
    assert_close(g_cpu, g_ref, dtype, "grad", n_agents, factor)
    assert g_cpu.dtype == g_ref.dtype == dtype


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 9), st.integers(0, 40)),
        elements=probability,
    ),
    st.sampled_from([0.0, 1e-9]),
)
@settings(deadline=None, max_examples=150)
def test_property_cpu_matches_reference(mu, eps):
    _agree(mu, eps)


@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 30)),
        elements=st.floats(0.0, 1.0, width=32),
    )
)
@settings(deadline=None, max_examples=80)
def test_property_float32(mu):
    _agree(mu)


@pytest.mark.parametrize("n_agents", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 33])
@pytest.mark.parametrize("n_states", [1, 255, 4096, 4097, 70001])
def test_block_edges_and_agent_groups(n_agents, n_states, dtype):
    # One group of each size N = 0..8, several groups of 8
    # with and without a last one of fewer; and the block/chunk boundaries of the kernels.
    # S = 4096: a float64 g of several groups, its rows a multiple of 4 KiB apart, is
    # computed in a block of scratch, not in its own place (cpu._float64_rows).
    _agree(hard_inputs(n_agents, n_states, seed=n_agents * n_states, dtype=dtype), eps=1e-12)


@pytest.mark.parametrize("n_agents", [10, 11, 12, 13, 14])
def test_every_size_of_a_last_group(n_agents, dtype):
    # More than 8 agents end in a group of 1 to 8, each size compiled for its exact count
    # (1, 7 and 8 above): the other sizes, over several blocks and a partial one.
    n_states = 4 * cpu.partition(n_agents)[1] + 1
    _agree(hard_inputs(n_agents, n_states, seed=n_agents, dtype=dtype), eps=1e-12)


def test_many_chunks_policy_gradient_matches_reference():
    rng = np.random.default_rng(3)
    mu = hard_inputs(5, 300_001, seed=3)
    dmu = rng.standard_normal((5, 300_001, 3))
    a = fastcov.policy_gradient(mu, dmu, eps=1e-9, backend="cpu")
    b = fastcov.policy_gradient(mu, dmu, eps=1e-9, backend="numpy")
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-9 * np.abs(b).max())


@pytest.mark.parametrize("n_agents", range(1, cpu._GROUP + 1))
def test_agents_at_zero_change_no_bit(n_agents, dtype):
    # Up to 8 agents, mu(s), c(s) and J are one loop over the states; with 8 more agents
    # at 0 the same states go through groups of 8, which must give the same bits (a factor
    # 1 - 0 = 1, a term 0 q = 0). J compared on one block: more agents make smaller ones.
    mu = hard_inputs(n_agents, 70_001, seed=n_agents, dtype=dtype)
    more = np.concatenate([mu, np.zeros((cpu._GROUP, mu.shape[1]), dtype)])
    for function in (fastcov.coverage, fastcov.state_weights):
        a, b = function(mu, backend="cpu"), function(more, backend="cpu")
        assert a.tobytes() == b.tobytes()
    a, b = mu[:, : _config.MIN_BLOCK_STATES], more[:, : _config.MIN_BLOCK_STATES]
    assert fastcov.entropy(a, backend="cpu") == fastcov.entropy(b, backend="cpu")


_INTERLEAVED = _interleave.MAX_PARAMETERS


@pytest.mark.parametrize("n_params", [*range(1, _INTERLEAVED + 2), _INTERLEAVED + 5])
def test_policy_gradient_matches_exact_sums_for_every_parameter_count(n_params, dtype):
    # Up to _INTERLEAVED parameters, each count has its own SIMD loop (and shuffles of
    # g); more are contracted along the parameters. Each against sums of the reference's
    # g dmu terms taken exactly, over several blocks of states, a last block that is not
    # whole steps of 8 states, and a last agent group of 3.
    rng = np.random.default_rng(n_params)
    n_agents, n_states = 11, 3 * cpu.partition(11)[1] + 13
    mu = hard_inputs(n_agents, n_states, seed=n_params, dtype=dtype)
    dmu = rng.standard_normal((n_agents, n_states, n_params)).astype(dtype)
    result = fastcov.policy_gradient(mu, dmu, eps=1e-9, backend="cpu")
    g = fastcov.grad(mu.astype(np.float64), 1e-9, backend="numpy")
    terms = g[:, :, None] * dmu.astype(np.float64)
    exact = np.array(
        [[math.fsum(terms[i, :, p].tolist()) for p in range(n_params)] for i in range(n_agents)]
    )
    # Summed in float64 in any order, then rounded once to the output's dtype.
    bound = 1e-13 * np.abs(terms).sum(axis=1) + np.finfo(dtype).eps / 2 * np.abs(exact)
    assert result.dtype == dtype
    assert np.all(np.abs(result - exact) <= bound)


@settings(deadline=None, max_examples=80)
@given(
    n_states=st.integers(0, 45),
    n_params=st.integers(1, _INTERLEAVED),
    dtype=st.sampled_from([np.float32, np.float64]),
    n_bad=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_contraction_in_steps_of_any_length(n_states, n_params, dtype, n_bad, seed):
    # Fewer states than a step, whole steps and a tail: each sum added into what acc
    # held, and the bad entries counted exactly (a sum that is not finite makes the
    # steps count theirs; the tail counts its own).
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n_states)
    dmu = rng.standard_normal((n_states, n_params)).astype(dtype)
    bad = rng.choice(dmu.size, min(n_bad, dmu.size), replace=False)
    dmu.reshape(-1)[bad] = rng.choice([np.nan, np.inf, -np.inf], bad.size)
    acc = np.full(n_params, 0.5)
    lanes = np.empty((n_params, _interleave.LANES))
    assert cpu._contract_interleaved(g, dmu, True, lanes, acc) == bad.size
    terms = g[:, np.newaxis] * dmu.astype(np.float64)
    for p in np.flatnonzero(np.isfinite(terms).all(axis=0)):
        exact = math.fsum([0.5, *terms[:, p].tolist()])
        assert abs(acc[p] - exact) <= 1e-14 * (np.abs(terms[:, p]).sum() + 0.5)
    assert not np.isfinite(acc[~np.isfinite(terms).all(axis=0)]).any()


@pytest.mark.parametrize(
    ("n_agents", "n_states"), [(12, 10**5), (9, 4096), (3, 256), (3, 504), (12, 1016)]
)
def test_scratch_rows_are_not_a_multiple_of_4_kib_apart(n_agents, n_states):
    # Blocks have a power-of-two width: unpadded, a scratch row's stores and the next
    # row's loads were 4 KiB apart, which the processor takes for a dependence (4K
    # aliasing; float32 N = 9 and 12 at S = 1e7 ran 1.24-1.31x slower).
    mu = np.zeros((n_agents, n_states))
    block = cpu.partition(n_agents)[1]
    for array in cpu._scratch(mu, block, n_agents):
        assert array.shape[1] >= min(block, n_states)
        if array.shape[0] > 1:
            assert array.strides[0] % cpu._ALIASING_BYTES != 0


def test_a_renamed_copy_of_the_package_runs_its_own_backends(tmp_path, monkeypatch):
    # A vendored or side-by-side copy (as in an A/B timing) must not dispatch into the
    # installed fastcov's kernels: the backends are imported relative to the package.
    source = pathlib.Path(fastcov.__file__).parent
    shutil.copytree(source, tmp_path / "fastcov_copy", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    copy = importlib.import_module("fastcov_copy")
    try:
        mu = np.array([[0.25, 0.5], [0.5, 0.125]])
        np.testing.assert_array_equal(
            copy.grad(mu, backend="numpy"), fastcov.grad(mu, backend="numpy")
        )
        for backend in ("numpy", "cpu"):
            module = copy.api._backend_module(backend)
            assert module.__name__.startswith("fastcov_copy."), module.__name__
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == "fastcov_copy"]:
            del sys.modules[name]
