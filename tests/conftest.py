import numpy as np
import pytest

BACKENDS = ["cpu", "numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


def hard_inputs(n_agents, n_states, seed, dtype=np.float64):
    """Uniform, tiny (1e-300...1e-9), near-one and near-1/e values with exact 0 and 1 entries."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 6, size=n_states)
    mu = rng.random((n_agents, n_states))
    tiny_low = -300 if dtype == np.float64 else -37
    tiny = 10.0 ** rng.uniform(tiny_low, -9, size=(n_agents, n_states))
    near_one = 1.0 - 10.0 ** rng.uniform(-15 if dtype == np.float64 else -7, -1, size=(n_agents, n_states))
    mu = np.where(kinds == 1, tiny, mu)
    mu = np.where(kinds == 2, near_one, mu)
    # near mu(s) = 1/e: every agent at 1 - e^{-1/N}, jittered
    if n_agents:
        near_e = 1.0 - np.exp(-1.0 / n_agents) * (1 + 1e-4 * rng.standard_normal((n_agents, n_states)))
        mu = np.where(kinds == 3, np.clip(near_e, 0, 1), mu)
    mu = np.where(kinds == 4, rng.choice([0.0, 1.0, 0.5], size=(n_agents, n_states), p=[0.6, 0.1, 0.3]), mu)
    mu[:, kinds == 5] = 0.0  # uncovered states: mu(s) = 0
    return mu.astype(dtype)
