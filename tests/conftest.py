"""Shared fixtures. Under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1, its own pytest run in
.ci/run) the backend-parametrised tests run against backend="cuda" with tiny blocks, so
several blocks and the cross-block reductions are exercised; tests that do not take the
``backend`` fixture and are not marked ``cuda`` are deselected there. On a machine with a
real GPU, the plain run adds backend="cuda" (default blocks) to "cpu" and "numpy"."""

import os

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _real_gpu():
    """True where the CUDA backend runs on a real device (not the simulator)."""
    if SIMULATOR:
        return False
    import fastcov

    return "cuda" in fastcov.available_backends()


REAL_GPU = _real_gpu()
BACKENDS = ["cuda"] if SIMULATOR else ["cpu", "numpy", *(["cuda"] if REAL_GPU else [])]


def pytest_collection_modifyitems(config, items):
    if not SIMULATOR:
        return
    keep = [item for item in items if _runs_on_cuda(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def _runs_on_cuda(item):
    return "backend" in getattr(item, "fixturenames", ()) or item.get_closest_marker("cuda")


@pytest.fixture(autouse=True, scope="session")
def _simulator_blocks():
    """Tiny CUDA blocks under the simulator, where every thread is a Python thread."""
    if not SIMULATOR:
        yield
        return
    from fastcov import _config

    saved = {name: getattr(_config, name) for name in dir(_config) if name.startswith("CUDA_")}
    _config.CUDA_THREADS_PER_BLOCK = 16
    _config.CUDA_MAX_BLOCKS = 4
    _config.CUDA_CONTRACT_BLOCKS = 2
    _config.CUDA_POLICY_CHUNK_STATES = 128
    yield
    for name, value in saved.items():
        setattr(_config, name, value)


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
    near_one = 1.0 - 10.0 ** rng.uniform(
        -15 if dtype == np.float64 else -7, -1, size=(n_agents, n_states)
    )
    mu = np.where(kinds == 1, tiny, mu)
    mu = np.where(kinds == 2, near_one, mu)
    # near mu(s) = 1/e: every agent at 1 - e^{-1/N}, jittered
    if n_agents:
        near_e = 1.0 - np.exp(-1.0 / n_agents) * (
            1 + 1e-4 * rng.standard_normal((n_agents, n_states))
        )
        mu = np.where(kinds == 3, np.clip(near_e, 0, 1), mu)
    mu = np.where(
        kinds == 4, rng.choice([0.0, 1.0, 0.5], size=(n_agents, n_states), p=[0.6, 0.1, 0.3]), mu
    )
    mu[:, kinds == 5] = 0.0  # uncovered states: mu(s) = 0
    return mu.astype(dtype)


@pytest.fixture
def patrol_step_failing_at(monkeypatch):
    """``install(call, error)``: make the patrol team step that training takes raise
    ``error`` at its ``call``-th call (from 1): a FloatingPointError, as a step raises
    where training drove the probabilities too far apart, or a KeyboardInterrupt.
    """
    from fastcov import patrol

    def install(call, error):
        step_of, calls = patrol._team_state, []

        def step(*args):
            calls.append(None)
            if len(calls) == call:
                raise error
            return step_of(*args)

        monkeypatch.setattr(patrol, "_team_state", step)

    return install
