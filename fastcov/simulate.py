"""Monte-Carlo patrols: robots walking their Markov chains, step by step.

Each robot starts at a vertex and, at every step, takes an out-edge of its current vertex
with its policy's probability (:func:`fastcov.patrol.transition_probabilities`). The robots
move independently. Over T steps the share of steps robot i spends at s tends to its
stationary distribution mu_i(s) (ergodic theorem; the graph must be strongly connected), and
the share of steps at which some robot is at s tends to the team coverage
mu(s) = 1 - prod_i (1 - mu_i(s)) when the chains are also aperiodic. On a periodic graph
(a bipartite one such as a grid without ``stay``) robots that start in step keep in step,
and the time average of the coverage need not reach mu(s): two robots that leave the same
vertex together on a directed cycle are always together.
"""

import dataclasses

import numpy as np

from . import _checks, patrol
from ._jit import jit

__all__ = ["simulate", "Simulation"]

#: Steps per chunk of random numbers: bounds the memory of a long walk (8 N MiB).
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` observed.

    Attributes
    ----------
    visits : ndarray of float64, shape (N, n)
        visits[i, s]: the share of the T recorded steps at which robot i was at s.
    coverage : ndarray of float64, shape (n,)
        The share of the T recorded steps at which at least one robot was at s.
    start : ndarray of int64, shape (N,)
        Where the robots started.
    positions : ndarray of int64, shape (N,)
        Where the robots are after the last step.
    steps : int
        T.
    """

    visits: np.ndarray
    coverage: np.ndarray
    start: np.ndarray
    positions: np.ndarray
    steps: int


def simulate(graph, logits, steps, *, start=None, seed=0, floor=0.0):
    """Walk N robots for ``steps`` steps and record where they were.

    Step t (t = 0 .. T - 1) records every robot's vertex and then moves each robot along
    one out-edge drawn from its policy; the start is recorded, the position after the
    last move is returned but not recorded.

    Parameters
    ----------
    graph : fastcov.graph.Graph
        Every vertex needs an out-edge (strong connectivity is needed for the shares to
        converge to the stationary distributions, but is not required to walk).
    logits : array_like, shape (n_edges,) or (N, n_edges)
        The robots' policies (one robot for a 1-D array).
    steps : int
        T >= 0 (T = 0 records nothing and returns zero shares).
    start : int or array_like of int, shape (N,), optional
        Start vertex, for all robots or per robot. Default: ``graph.start``, or vertex 0
        when the graph has none.
    seed : int or numpy.random.Generator
        The random draws; the same seed gives the same walk on every machine.
    floor : float
        As for :func:`fastcov.patrol.transition_probabilities`.

    Returns
    -------
    Simulation

    Raises
    ------
    ValueError
        A vertex without out-edges, logits of the wrong shape or not finite, a floor
        outside its range, a negative step count, a start vertex outside the graph, a
        start of the wrong length or a seed NumPy refuses (a negative integer).
    TypeError
        ``graph`` not a :class:`fastcov.graph.Graph`, a step count that is not an integer,
        or a seed of a type NumPy refuses.
    """
    probabilities = np.atleast_2d(patrol.transition_probabilities(graph, logits, floor=floor))
    n_robots, n_vertices = probabilities.shape[0], graph.n_vertices
    steps = _checks.integer(steps, "steps", minimum=0)
    start = _start_positions(graph, start, n_robots)
    positions = start.copy()
    visits = np.zeros((n_robots, n_vertices), dtype=np.int64)
    covered = np.zeros(n_vertices, dtype=np.int64)
    last_covered = np.full(n_vertices, -1, dtype=np.int64)
    rng = _checks.random_generator(seed)
    for first in range(0, steps, _CHUNK):
        uniforms = rng.random((min(_CHUNK, steps - first), n_robots))
        _walk(
            graph.indptr,
            graph.indices,
            probabilities,
            uniforms,
            first,
            positions,
            visits,
            covered,
            last_covered,
        )
    count = max(steps, 1)  # T = 0: the zero counts stay zero shares
    return Simulation(visits / count, covered / count, start, positions, steps)


def _start_positions(graph, start, n_robots):
    if start is None:
        start = 0 if graph.start is None else graph.start
    positions = np.array(np.broadcast_to(start, n_robots) if np.ndim(start) == 0 else start)
    if positions.shape != (n_robots,) or not np.issubdtype(positions.dtype, np.integer):
        raise ValueError(
            f"start must be one vertex index or {n_robots} of them (one per robot), got {start!r}"
        )
    outside = np.flatnonzero((positions < 0) | (positions >= graph.n_vertices))
    if outside.size:
        robot = outside[0]
        raise ValueError(
            f"start of robot {robot} is vertex {positions[robot]}, outside "
            f"0 .. {graph.n_vertices - 1}"
        )
    return positions.astype(np.int64)


@jit
def _walk(
    indptr, indices, probabilities, uniforms, first, positions, visits, covered, last_covered
):
    for t in range(uniforms.shape[0]):
        step = first + t
        for robot in range(positions.shape[0]):
            vertex = positions[robot]
            visits[robot, vertex] += 1
            if last_covered[vertex] != step:  # another robot may be here already
                last_covered[vertex] = step
                covered[vertex] += 1
            # The first out-edge at which the running sum of probabilities passes the
            # draw. Should round-off leave the sum just below a draw near 1, the last
            # edge of positive probability is taken: never one of probability 0.
            draw = uniforms[t, robot]
            running = 0.0
            chosen = indptr[vertex]
            for edge in range(indptr[vertex], indptr[vertex + 1]):
                if probabilities[robot, edge] > 0.0:
                    chosen = edge
                    running += probabilities[robot, edge]
                    if running > draw:
                        break
            positions[robot] = indices[chosen]
