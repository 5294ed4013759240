"""Monte-Carlo patrols against the exact stationary distributions and hand-worked walks."""

import numpy as np
import pytest

import fastcov
from fastcov import graph, patrol, simulate


def test_visit_shares_converge_to_the_stationary_distributions():
    # HOUSE is aperiodic, so both the visit shares and the team coverage converge. With
    # T = 2e6 steps the standard error of a share is about 1e-3 at most (mixing in tens
    # of steps); a wrong edge choice would be off by far more than 5e-3.
    g = graph.load("house")
    theta = np.random.default_rng(1).standard_normal((3, g.n_edges))
    mu = patrol.stationary(g, theta)
    result = simulate.simulate(g, theta, 2_000_000, seed=2)
    assert result.steps == 2_000_000
    np.testing.assert_allclose(result.visits.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(result.visits, mu, atol=5e-3)
    np.testing.assert_allclose(result.coverage, fastcov.coverage(mu), atol=5e-3)


def test_a_shorter_walk_is_further_off():
    # The error shrinks with T: a check that the shares are estimates, not copied from mu.
    g = graph.load("museum")
    theta = np.random.default_rng(3).standard_normal((2, g.n_edges))
    mu = patrol.stationary(g, theta)
    short = simulate.simulate(g, theta, 1_000, seed=4)
    long = simulate.simulate(g, theta, 1_000_000, seed=4)
    assert np.abs(long.visits - mu).max() < np.abs(short.visits - mu).max() / 5


def test_directed_cycle_hand_worked():
    # One out-edge per vertex: every walk is deterministic, 0 -> 1 -> 2 -> 0.
    cycle = graph.Graph.from_edges([(0, 1), (1, 2), (2, 0)], directed=True)
    together = simulate.simulate(cycle, np.zeros((2, 3)), 300, start=0)
    np.testing.assert_array_equal(together.visits, np.full((2, 3), 1 / 3))
    # Periodic chains that leave together stay together: coverage 1/3, not mu(s) = 5/9.
    np.testing.assert_array_equal(together.coverage, np.full(3, 1 / 3))
    np.testing.assert_array_equal(together.positions, [0, 0])
    apart = simulate.simulate(cycle, np.zeros((2, 3)), 301, start=[0, 1])
    assert apart.coverage.tolist() == [201 / 301, 201 / 301, 200 / 301]
    np.testing.assert_array_equal(apart.positions, [1, 2])


def test_a_zero_probability_edge_is_never_taken():
    # exp(-800) underflows to exactly 0: the robot must keep to the other edge.
    g = graph.Graph.from_edges([(0, 1), (1, 0), (0, 2), (2, 0)], directed=True)
    theta = np.zeros(g.n_edges)
    theta[1] = -800.0  # edge 0 -> 2 (edges sorted by source, then target)
    assert patrol.transition_probabilities(g, theta)[1] == 0.0
    result = simulate.simulate(g, theta, 10_000, start=0, seed=0)
    assert result.visits[0, 2] == 0.0
    assert result.visits[0, 0] == result.visits[0, 1] == 0.5


def test_a_draw_past_the_rounded_sum_takes_the_last_possible_edge():
    # Vertex 0's moves: the softmax of (1, -1, -800), whose first two sum to 1 - 2^-53
    # in float64 and whose third is 0. The largest draw below 1 passes that sum; the walk
    # must then take the second move, never the impossible third.
    g = graph.Graph.from_edges([(0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (3, 0)], directed=True)
    theta = np.zeros((1, g.n_edges))
    theta[0, :3] = 1.0, -1.0, -800.0
    probabilities = patrol.transition_probabilities(g, theta)
    assert probabilities[0, 0] + probabilities[0, 1] < 1.0 and probabilities[0, 2] == 0.0
    positions, last_draw = np.zeros(1, np.int64), np.array([[np.nextafter(1.0, 0.0)]])
    visits, covered = np.zeros((1, 4), np.int64), np.zeros(4, np.int64)
    last_covered = np.full(4, -1, np.int64)
    simulate._walk(
        g.indptr, g.indices, probabilities, last_draw, 0, positions, visits, covered, last_covered
    )
    assert positions.tolist() == [2]


def test_a_floor_opens_the_zero_probability_edge():
    # The same walk with a floor of 0.1: edge 0 -> 2 now has probability 0.1, so the
    # shares converge to the floored chain's stationary distribution (the 2e5-step
    # standard error is about 2e-3).
    g = graph.Graph.from_edges([(0, 1), (1, 0), (0, 2), (2, 0)], directed=True)
    theta = np.zeros(g.n_edges)
    theta[1] = -800.0
    result = simulate.simulate(g, theta, 200_000, start=0, seed=1, floor=0.1)
    mu = patrol.stationary(g, theta, floor=0.1)
    np.testing.assert_allclose(mu, [0.5, 0.45, 0.05], rtol=1e-14)  # by hand
    np.testing.assert_allclose(result.visits[0], mu, atol=1e-2)


def test_same_seed_same_walk_and_default_start():
    g = graph.load("office")
    theta = np.random.default_rng(5).standard_normal((2, g.n_edges))
    first = simulate.simulate(g, theta, 5_000, seed=7)
    second = simulate.simulate(g, theta, 5_000, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(first.visits, second.visits)
    np.testing.assert_array_equal(first.positions, second.positions)
    at_start = simulate.simulate(g, theta, 1)
    assert at_start.visits[:, g.start].tolist() == [1.0, 1.0]
    assert at_start.start.tolist() == [g.start, g.start]
    one_robot = simulate.simulate(g, theta[0], 10)
    assert one_robot.visits.shape == (1, g.n_vertices)


def test_no_steps_records_nothing():
    g = graph.load("house")
    result = simulate.simulate(g, np.zeros(g.n_edges), 0)
    assert result.steps == 0
    assert not result.visits.any() and not result.coverage.any()
    assert result.positions.tolist() == [g.start]


def test_bad_arguments():
    g = graph.load("house")
    theta = np.zeros((2, g.n_edges))
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        simulate.simulate(g, theta, -1)
    with pytest.raises(TypeError, match="steps must be an integer, got 1000.0"):
        simulate.simulate(g, theta, 1e3)
    with pytest.raises(ValueError, match="start of robot 1 is vertex 9, outside 0 .. 8"):
        simulate.simulate(g, theta, 10, start=[0, 9])
    with pytest.raises(ValueError, match="one vertex index or 2 of them"):
        simulate.simulate(g, theta, 10, start=[0, 1, 2])
    with pytest.raises(ValueError, match="n_edges = 20"):
        simulate.simulate(g, np.zeros(19), 10)
    with pytest.raises(ValueError, match="seed -2 cannot seed a random generator"):
        simulate.simulate(g, theta, 10, seed=-2)
    dead_end = graph.Graph.from_edges([(0, 1)], directed=True)
    with pytest.raises(ValueError, match="vertex 1 has no outgoing edge"):
        simulate.simulate(dead_end, np.zeros(1), 10)
