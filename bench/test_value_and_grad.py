"""pytest-benchmark suite: value_and_grad by every implementation, size and dtype.

Disabled by default (``--benchmark-disable`` in pyproject), so CI runs each case once, at
S <= 1e5, as a correctness smoke test; time it with ``python -m pytest bench
--benchmark-enable`` (S up to 1e7). Cases are grouped by (N, S, dtype), with the roofline
("copy", "copy-rows", "scale", "read") in every group. The same implementations drive
``python -m bench``.
"""

import numpy as np
import pytest

import fastcov
from bench import implementations
from fastcov import _config, _stream, cpu


@pytest.mark.parametrize("name", list(implementations.IMPLEMENTATIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("n_agents", [2, 8, 32], ids=lambda n: f"N{n}")
def test_value_and_grad(benchmark, name, n_agents, n_states, dtype):
    reason = implementations.skip_reason(name, n_agents, n_states)
    if reason:
        pytest.skip(reason)
    mu = np.random.default_rng(n_agents).random((n_agents, n_states)).astype(dtype)
    benchmark.group = f"N={n_agents} S={n_states:.0e} {np.dtype(dtype).name}"
    benchmark.extra_info["bytes of mu + g"] = 2 * mu.nbytes
    value, g = benchmark(implementations.build(name, mu))
    if name in implementations.ROOFLINE:
        _check_moved(name, mu, g)
        return
    _check(mu, value, g)


def test_copy_rows_streams_every_state():
    """The "copy-rows" row through its streamed tiles: 8 float64 rows past
    STREAM_STORE_BYTES, each of whole lines (so that they stream), in chunks that start
    and end off a line and off a tile.
    """
    n_states = _config.STREAM_STORE_BYTES // 64 + 1000
    mu = np.random.default_rng(5).random((8, n_states))
    target = np.zeros_like(mu)
    assert cpu._streams(target) and _stream.line_states(target) > 0
    moved = implementations.build("copy-rows", mu)()[1]
    np.testing.assert_array_equal(moved, mu)


def _check_moved(name, mu, moved):
    """The roofline's copies hold mu and "scale" 0.5 mu, exactly ("read" returns none)."""
    if moved is not None:
        expected = 0.5 * mu if name == "scale" else mu
        np.testing.assert_array_equal(implementations.to_host(moved), expected)


def _check(mu, value, g):
    """J against fastcov's CPU backend; g on the first states against the reference.

    The bound on J allows one rounding of the format per state: the naive formula's
    1 - prod loses that much where mu(s) is near 1 (large N), which is its known defect.
    """
    tolerance = 1e-10 if mu.dtype == np.float64 else 1e-4
    expected = fastcov.entropy(mu)
    assert abs(value - expected) <= tolerance * abs(expected) + np.finfo(mu.dtype).eps * mu.shape[1]
    head = implementations.to_host(g)[:, :1000]
    reference = fastcov.grad(mu[:, :1000], backend="numpy")
    np.testing.assert_allclose(head, reference, rtol=tolerance * 10)
