"""The patrol gradient against reverse-mode autodiff through a dense solve, the way
EM-Patroller's own code differentiates (PyTorch through the dense n x n system). Each
framework's test is skipped when it is not installed."""

import numpy as np
import pytest

from fastcov import graph, patrol


def _case():
    g = graph.load("house")
    theta = np.random.default_rng(11).standard_normal((3, g.n_edges))
    return g, theta, patrol.value_and_grad(g, theta)


def _dense_objective(xp, g, theta, softmax, solve):
    """J(theta) with dense arrays of the framework ``xp``: P by a masked softmax per row,
    mu^T (I - P + 1 1^T) = 1^T by a dense solve, then the coverage entropy."""
    n = g.n_vertices
    mask = np.full((n, n), -np.inf)
    mask[g.sources, g.indices] = 0.0
    rows, columns = np.array(g.sources), np.array(g.indices)  # torch warns on read-only arrays
    absent = xp.ones(n, dtype=theta.dtype)
    for i in range(theta.shape[0]):
        logits = xp.asarray(mask, dtype=theta.dtype)
        logits = _scatter(xp, logits, rows, columns, theta[i])
        transition = softmax(logits)
        system = xp.eye(n, dtype=theta.dtype) - transition + xp.ones((n, n), dtype=theta.dtype)
        mu = solve(system.T, xp.ones(n, dtype=theta.dtype))
        absent = absent * (1.0 - mu)
    team = 1.0 - absent
    return -(team * xp.log(team)).sum()


def _scatter(xp, array, rows, columns, values):
    if hasattr(array, "at"):  # JAX: functional update
        return array.at[rows, columns].set(values)
    array = array.clone()
    array[rows, columns] = values
    return array


def test_gradient_matches_jax_autodiff():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    g, theta, state = _case()
    # The flag, set and restored: JAX 0.4, which pyproject allows, has no jax.enable_x64().
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        objective = lambda at: _dense_objective(  # noqa: E731
            jnp, g, at, lambda x: jax.nn.softmax(x, axis=1), jnp.linalg.solve
        )
        value, grad = jax.value_and_grad(objective)(jnp.asarray(theta, dtype=jnp.float64))
    finally:
        jax.config.update("jax_enable_x64", x64)
    assert float(value) == pytest.approx(state.value, rel=1e-12)
    np.testing.assert_allclose(np.asarray(grad), state.grad, rtol=1e-9, atol=1e-12)


def test_gradient_matches_torch_autodiff():
    torch = pytest.importorskip("torch")
    g, theta, state = _case()
    at = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    value = _dense_objective(torch, g, at, lambda x: torch.softmax(x, dim=1), torch.linalg.solve)
    value.backward()
    assert value.item() == pytest.approx(state.value, rel=1e-12)
    np.testing.assert_allclose(at.grad.numpy(), state.grad, rtol=1e-9, atol=1e-12)
