"""Bad input: the right exception, with the offending position in the message."""

import re
from pathlib import Path

import numpy as np
import pytest

import fastcov
from fastcov import _interleave

FUNCTIONS = [
    lambda mu, **kw: fastcov.coverage(mu, **kw),
    lambda mu, **kw: fastcov.entropy(mu, **kw),
    lambda mu, **kw: fastcov.state_weights(mu, **kw),
    lambda mu, **kw: fastcov.grad(mu, **kw),
    lambda mu, **kw: fastcov.value_and_grad(mu, **kw),
    lambda mu, **kw: fastcov.policy_gradient(mu, np.ones((mu.shape[0], mu[0].size, 2)), **kw),
]
IDS = ["coverage", "entropy", "state_weights", "grad", "value_and_grad", "policy_gradient"]


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize(
    "bad", [np.nan, np.inf, -np.inf, -0.25, -5e-324, 1.0000000000000002, 7.0, 1e308]
)
def test_out_of_range_names_the_first_bad_position(backend, function, bad):
    mu = np.full((4, 3, 5), 0.5)
    mu[2, 1, 3] = bad
    mu[3, 0, 0] = bad  # a later one (in C order) must not be the one reported
    with pytest.raises(ValueError) as info:
        function(mu, backend=backend)
    message = str(info.value)
    assert "mu[2, 1, 3]" in message and "agent 2" in message and "state (1, 3)" in message
    assert repr(float(bad)) in message


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_a_flat_state_space_names_its_state_by_index(backend, function):
    mu = np.full((3, 7), 0.5)
    mu[1, 4] = np.nan
    with pytest.raises(ValueError, match=re.escape("mu[1, 4] = nan") + r".*\(agent 1, state 4\)"):
        function(mu, backend=backend)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_ends_of_the_range_are_accepted(backend, function, dtype):
    # The CPU check is x (1 - x) >= 0: exact at both ends, the smallest subnormal included.
    edges = [-0.0, 0.0, 5e-324, 0.5, 1 - 2.0**-53, 1.0]
    mu = np.array(edges, dtype)[:, None] * np.ones((1, 9), dtype)
    function(mu, backend=backend)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("n_agents", [8, 13])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bad_value_in_a_later_agent_group_and_block(function, n_agents, dtype):
    # The CPU kernels take agents 8 at a time and states in blocks of at most 4096: the
    # check must see the last agent of a partial second group in a later block.
    mu = np.full((n_agents, 10_000), 0.25, dtype)
    mu[n_agents - 1, 9_001] = -1.0
    with pytest.raises(ValueError, match=re.escape(f"mu[{n_agents - 1}, 9001]")):
        function(mu, backend="cpu")
    function(mu, backend="cpu", check=False)  # skipped check: no exception


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bad_jacobian_names_its_position(backend, bad):
    dmu = np.ones((2, 6, 3))
    dmu[1, 4, 2] = bad
    with pytest.raises(ValueError, match=re.escape("dmu[1, 4, 2]")):
        fastcov.policy_gradient(np.full((2, 6), 0.5), dmu, backend=backend)
    result = fastcov.policy_gradient(np.full((2, 6), 0.5), dmu, backend=backend, check=False)
    assert not np.isfinite(result[1, 2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n_params", [1, 3, _interleave.MAX_PARAMETERS + 1])
@pytest.mark.parametrize("state", [4, 2_053, 4_099])  # in the first step, a later one, after
def test_bad_jacobian_inside_and_after_the_cpu_steps(bad, n_params, state):
    # The CPU contracts up to _interleave.MAX_PARAMETERS parameters in SIMD steps of 8
    # states, where it looks for the bad entry only if a sum is not finite; more, along
    # the parameters.
    mu = np.full((2, 4_100), 0.5)
    dmu = np.ones((2, 4_100, n_params))
    dmu[1, state, n_params - 1] = bad
    with pytest.raises(ValueError, match=re.escape(f"dmu[1, {state}, {n_params - 1}]")):
        fastcov.policy_gradient(mu, dmu, backend="cpu")
    result = fastcov.policy_gradient(mu, dmu, backend="cpu", check=False)
    assert not np.isfinite(result[1, -1])


@pytest.mark.parametrize(
    "mu",
    [
        np.array([[0.5 + 0j]]),
        np.array([[0.5]], dtype=object),
        np.array([["0.5"]]),
        np.array([[b"x"]]),
        np.array([["2020-01-01"]], dtype="datetime64[D]"),
    ],
    ids=["complex", "object", "str", "bytes", "datetime"],
)
def test_non_real_input_is_a_type_error(backend, mu):
    with pytest.raises(TypeError, match="real numbers"):
        fastcov.grad(mu, backend=backend)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_masked_mu_is_a_type_error(backend, function):
    # np.asarray would drop the mask and count the masked values as data.
    mu = np.ma.array(np.full((2, 3), 0.5), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match=r"mu is a masked array.*mu\.filled"):
        function(mu, backend=backend)


def test_masked_jacobian_is_a_type_error(backend):
    dmu = np.ma.array(np.ones((2, 3, 1)), mask=False)
    with pytest.raises(TypeError, match="dmu is a masked array"):
        fastcov.policy_gradient(np.full((2, 3), 0.5), dmu, backend=backend)


def test_scalar_mu_is_rejected(backend):
    with pytest.raises(ValueError, match="agents first"):
        fastcov.entropy(np.float64(0.5), backend=backend)


@pytest.mark.parametrize(
    "out, message",
    [
        (np.empty((3, 4)), "shape"),
        (np.empty((2, 3, 4), np.float32), "dtype"),
        (np.empty((2, 3, 4), np.int64), "dtype"),
    ],
)
def test_wrong_out_is_rejected(backend, out, message):
    with pytest.raises(ValueError, match=message):
        fastcov.grad(np.full((2, 3, 4), 0.5), out=out, backend=backend)


def test_out_must_be_writeable_ndarray(backend):
    out = np.empty((3,))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastcov.coverage(np.full((2, 3), 0.5), out=out, backend=backend)
    with pytest.raises(TypeError, match="NumPy array"):
        fastcov.coverage(np.full((2, 3), 0.5), out=[0.0, 0.0, 0.0], backend=backend)


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 6, 3), (2, 6), (2, 2, 3, 3)])
def test_wrong_jacobian_shape(backend, shape):
    with pytest.raises(ValueError, match=re.escape("(N, S, P) = (2, 6, P)")):
        fastcov.policy_gradient(np.full((2, 2, 3), 0.5), np.ones(shape), backend=backend)


@pytest.mark.parametrize(
    "eps, error",
    [
        (-1e-9, ValueError),
        (1.5, ValueError),
        (np.nan, ValueError),
        ("1e-9", TypeError),
        (True, TypeError),
        (np.True_, TypeError),
        (np.array(True), TypeError),
        (np.array([1e-9]), TypeError),
        (np.array(1e-9 + 0j), TypeError),
        (np.array(2.0), ValueError),
    ],
)
def test_bad_eps(backend, eps, error):
    with pytest.raises(error, match="eps"):
        fastcov.grad(np.full((2, 3), 0.5), eps, backend=backend)


@pytest.mark.parametrize("eps", [np.float32(0.25), np.array(0.25), np.array(0.25, np.float32)])
def test_eps_as_a_numpy_number(backend, eps):
    mu = np.array([[0.0, 0.1], [0.0, 0.2]])
    expected = fastcov.grad(mu, 0.25, backend=backend)
    np.testing.assert_array_equal(fastcov.grad(mu, eps, backend=backend), expected)


@pytest.mark.parametrize("check", ["no", 1, None, np.array([True])])
@pytest.mark.parametrize("function", ["coverage", "entropy", "state_weights", "grad"])
def test_check_must_be_a_bool(backend, function, check):
    with pytest.raises(TypeError, match="check must be True or False"):
        getattr(fastcov, function)(np.full((2, 3), 0.5), backend=backend, check=check)
    with pytest.raises(TypeError, match="check must be True or False"):
        fastcov.policy_gradient(np.full((2, 3), 0.5), np.ones((2, 3, 1)), check=check)


def test_numpy_bools_are_bools(backend):
    mu = np.array([[0.5, 2.0]])
    with np.errstate(invalid="ignore"):  # the reference's log1p(-2) warns
        fastcov.entropy(mu, backend=backend, check=np.False_)  # unchecked: no error
    with pytest.raises(ValueError, match="agent 0, state 1"):
        fastcov.entropy(mu, backend=backend, check=np.True_)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastcov.entropy(np.full((2, 3), 0.5), backend="gpu")


@pytest.mark.parametrize("backend", ["auto", "cpu", "numpy"])
def test_a_stream_is_for_the_cuda_backend_only(backend):
    # NumPy input: "auto" is the CPU, where a stream would be silently meaningless.
    with pytest.raises(ValueError, match=f"CUDA backend only, not backend='{backend}'"):
        fastcov.grad(np.full((2, 3), 0.5), backend=backend, stream=0)


@pytest.mark.skipif("cuda" in fastcov.available_backends(), reason="the CUDA backend can run here")
def test_cuda_backend_explains_itself():
    with pytest.raises(RuntimeError, match="CUDA backend"):
        fastcov.entropy(np.full((2, 3), 0.5), backend="cuda")


def test_the_cuda_install_hint_follows_the_extras_python_bound():
    from fastcov import cuda

    for python in ((3, 10), (3, 14, 2, "final", 0)):
        assert "pip install 'fastcov[cuda]'" in cuda.install_hint(python)
    hint = cuda.install_hint((3, 15, 0, "final", 0))
    assert "on Python 3.14 and earlier only" in hint and "Python 3.15" in hint
    assert "pip install" not in hint  # the extra would install nothing there
    # pyproject.toml's cuda extra stops where the hint says it does.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not run from a checkout")
    with pyproject.open("rb") as file:
        extra = tomllib.load(file)["project"]["optional-dependencies"]["cuda"]
    assert extra and all(line.endswith("; python_version < '3.15'") for line in extra)
