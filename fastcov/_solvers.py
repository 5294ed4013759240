"""The robots' chains solved: stationary distributions and adjoints, by the graph's
elimination plan or its multifrontal LU.

With A = (I - P) without vertex 0 (:mod:`fastcov._patterns`), a robot's stationary
measure solves A^T x = P(0, .) and its adjoint A h = g - (mu . g) 1 (see
:mod:`fastcov.patrol`). On a graph with a plan, :func:`planned_step` takes a whole gradient
step of the team in one compiled call, LANES robots side by side; the other planned
functions are its parts, for the rarer paths. On other graphs the frontal functions factor
and solve one robot at a time. Both take the pivots from A's row sums, without
cancellation. :func:`grounds_losing_digits` says where vertex 0 was a poor ground for an
adjoint (:mod:`fastcov._grounds` then finds it again from others).
"""

import numpy as np

from . import _elimination, _lanes, _multifrontal, _patterns, _policy, cpu
from ._jit import inline_jit, jit

__all__ = [
    "FAINTEST_GROUND",
    "LOGITS_NOT_FINITE",
    "REGROUND",
    "centred",
    "from_first",
    "frontal_adjoint",
    "frontal_factor",
    "frontal_measure",
    "grounds_losing_digits",
    "magnitudes",
    "normalise",
    "planned_adjoint",
    "planned_adjoints",
    "planned_measures",
    "planned_mu",
    "planned_stationary",
    "planned_step",
]


#: The statuses of :func:`planned_step` other than -1 (done) and a robot's index.
LOGITS_NOT_FINITE = -2
REGROUND = -3


#: The least share of vertex 0 with which mu is taken from the solve grounded there: the
#: measure x = mu / mu(0) and its sum 1 / mu(0) then stay below 2^1000. For a robot that
#: visits vertex 0 less, x or its sum overflowed (mu came out all zeros or NaN, and on
#: MUSEUM a trained robot's mu(0) reached 1e-298 by its tenth Adam step of size 10): it is
#: solved again, grounded at its busiest vertex (:func:`_grounds.grounded_elsewhere`).
FAINTEST_GROUND = 2.0**-1000


@jit
def planned_step(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, logits, floor, scale,
    eps, group, block,
):  # fmt: skip
    """(J's block partials, status, dJ/dtheta, mu, P) for the plan of arrays ``order`` ..
    ``targets``, where status is -1, or REGROUND where some robots need dJ/dtheta again
    with another ground (:func:`_ground_loses_digits`; their rows of dJ/dtheta are NaN),
    or the first robot that visits vertex 0 too rarely for its mu (:func:`_planned_chains`;
    then nothing past mu is computed), or LOGITS_NOT_FINITE (then nothing is). The steps:
    softmax (floored with ``scale`` = 1 - d(s) floor when ``floor``), the plan's
    factorisation and mu, fastcov's gradient sweep on this thread (the same blocks, so the
    same g, as :func:`fastcov.value_and_grad`), the adjoint and the chain rule.

    LANES robots at a time stay in lanes from the softmax to the chain rule: their
    logits, probabilities, mu and h are transposed into lanes once and their results out
    once (MUSEUM, 8 robots: a call of this function from Python 21.0 -> 15.6 us).
    """
    n_robots, n_edges = logits.shape
    n = indptr.size - 1
    grad, mu, probabilities = np.empty_like(logits), np.empty((n_robots, n)), np.empty_like(logits)
    partials = np.zeros(0)
    if not _policy.all_finite(logits):
        return partials, LOGITS_NOT_FINITE, grad, mu, probabilities
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    softmax, values, mu_lanes, robot = _planned_chains(
        plan, slots, kept_edges, indptr, indices, logits, floor, scale, mu, probabilities
    )
    if robot >= 0:
        return partials, robot, grad, mu, probabilities
    # mu is finite and in [0, 1] (normalise clips round-off): no value is out of range.
    g = np.empty_like(mu)
    partials, _ = cpu.gradient_on_this_thread(mu, eps, g, group, block)
    h = _lanes.empty((n,))
    gradient = _lanes.empty((n_edges,))
    regrounded, status = np.empty(_lanes.LANES, dtype=np.bool_), -1
    for c, first in enumerate(range(0, n_robots, _lanes.LANES)):
        planned_adjoint(plan, values[c], g[first:], mu[first:], h)
        _policy.chain_rule_lanes(indptr, indices, range(n), softmax[c], mu_lanes[c], h, gradient)
        _policy.out_of_lanes(gradient, n_edges, first, 0, grad)
        count = min(_lanes.LANES, n_robots - first)
        _ground_loses_digits(mu_lanes[c], h, gradient, n_edges, count, regrounded)
        for m in range(count):
            if regrounded[m]:
                grad[first + m] = np.nan
                status = REGROUND
    if floor:
        grad *= scale  # dP/dsoftmax
    return partials, status, grad, mu, probabilities


@jit
def planned_mu(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, logits, floor, scale,
    mu, probabilities,
):  # fmt: skip
    """:func:`_planned_chains` for finite ``logits`` and the plan of arrays ``order`` ..
    ``targets``: its status alone.
    """
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    return _planned_chains(
        plan, slots, kept_edges, indptr, indices, logits, floor, scale, mu, probabilities
    )[3]


@jit
def planned_stationary(plan, slots, kept_edges, indptr, indices, probabilities, values, mu):
    """Factor the A_i of LANES robots by the plan into ``values`` (n_slots, LANES), a robot
    a lane, and set their stationary distributions ``mu`` (n + 1, LANES).

    ``probabilities`` (n_edges, LANES) holds the robots' edge probabilities in lanes
    (spare lanes a copy of a real robot's). A_i is an M-matrix whose row sums are known
    exactly, so the factorisation is the cancellation-free one (see
    :func:`_elimination.factor`), and so is the solve for mu (its right-hand side is
    >= 0): mu keeps full relative accuracy in every entry, even where the logits make
    some moves 1e-30 likely, as long as vertex 0's share is at least FAINTEST_GROUND
    (:func:`_grounds.grounded_elsewhere`).
    """
    x = _lanes.empty((plan.ptr.size - 1,))
    _planned_measure(plan, slots, kept_edges, indptr, indices, probabilities, values, x)
    normalise(x, mu)


@jit
def planned_measures(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, probabilities, x
):  # fmt: skip
    """Set x (N, n - 1) to the stationary measures of the robots of edge ``probabilities``
    (N, n_edges) with vertex 0's share 1, vertex 0 left out, by the plan of arrays
    ``order`` .. ``targets`` (:func:`_planned_measure`).
    """
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    moves = _lanes.empty((probabilities.shape[1],))
    values = _lanes.empty((plan.ptr.size - 1 + 2 * plan.neighbours.size,))
    measure = _lanes.empty((x.shape[1],))
    for first in range(0, x.shape[0], _lanes.LANES):
        _policy.into_lanes(probabilities, first, 0, probabilities.shape[1], moves)
        _planned_measure(plan, slots, kept_edges, indptr, indices, moves, values, measure)
        _policy.out_of_lanes(measure, x.shape[1], first, 0, x)


@jit
def planned_adjoint(plan, values, g, mu, h):
    """Set the adjoint h (n + 1, LANES), h[0] = 0, of up to LANES robots (rows of ``g``
    and ``mu``; spare lanes 0) from their lanes of the plan's factors.
    """
    x = _lanes.full((h.shape[0] - 1,), 0.0)
    centred(g[: _lanes.LANES], mu[: _lanes.LANES], x)
    _elimination.solve(plan, values, x, False)
    h[0] = 0.0
    for v in range(x.shape[0]):
        _lanes.copy(h, v + 1, x, v)


@jit
def planned_adjoints(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, probabilities, mu,
    g, h, bound,
):  # fmt: skip
    """Set ``h`` and ``bound`` (rows of robots, column 0 zero): the adjoints grounded at
    vertex 0 of the robots of edge ``probabilities``, stationary distributions ``mu`` and
    g = dJ/dmu (rows), by the plan of arrays ``order`` .. ``targets``, and the solutions
    of the same systems for |g| + |mu . g| (:func:`_grounds.grounded_adjoint`).
    """
    n = indptr.size - 1
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    moves = _lanes.empty((probabilities.shape[1],))
    values = _lanes.empty((plan.ptr.size - 1 + 2 * plan.neighbours.size,))
    adjoint, x = _lanes.empty((n,)), _lanes.empty((n - 1,))
    for first in range(0, mu.shape[0], _lanes.LANES):
        last = min(first + _lanes.LANES, mu.shape[0])
        _policy.into_lanes(probabilities, first, 0, probabilities.shape[1], moves)
        _planned_factor(plan, slots, kept_edges, indptr, indices, moves, values)
        planned_adjoint(plan, values, g[first:last], mu[first:last], adjoint)
        _policy.out_of_lanes(adjoint, n, first, 0, h)
        x[:] = 0.0
        magnitudes(g[first:last], mu[first:last], x)
        _elimination.solve(plan, values, x, False)
        _policy.out_of_lanes(x, n - 1, first, 1, bound)
        bound[first:last, 0] = 0.0


def frontal_measure(graph, probabilities, factors):
    """:func:`_grounds._measure` by the multifrontal LU, its factors written into ``factors``."""
    pattern = _patterns.pattern(graph)
    frontal_factor(graph, probabilities, factors)
    x = np.empty((pattern.n, 1))
    from_first(graph.indptr, graph.indices, probabilities[:, np.newaxis], x)
    _multifrontal.solve(pattern.analysis, factors, x[:, 0], True)
    return x


def frontal_factor(graph, probabilities, factors):
    """Factor the A of one robot's edge ``probabilities`` by the graph's multifrontal LU
    into ``factors``, with the pivots from A's row sums.
    """
    pattern = _patterns.pattern(graph)
    values = np.concatenate([-probabilities[pattern.kept_edges], np.ones(pattern.n)])
    # A's row sums are the probabilities of moving to vertex 0: exact, with no 1 - sum.
    to_first = np.zeros(pattern.n)
    to_first[pattern.first_edges[0]] = probabilities[pattern.first_edges[1]]
    with _multifrontal.one_blas_thread():
        _multifrontal.factor(pattern.analysis, values, to_first, factors)


def frontal_adjoint(pattern, factors, right_side, g, mu, out):
    """Set out (n,) to (0, the solution of A x = b) by one robot's multifrontal
    ``factors``, for b = ``right_side(g, mu)`` (:func:`centred` or :func:`magnitudes`;
    ``g`` and ``mu`` that robot's rows, shape (1, n)), as :func:`planned_adjoint` does.
    """
    x = np.empty((pattern.n, 1))
    right_side(g, mu, x)
    _multifrontal.solve(pattern.analysis, factors, x[:, 0], False)
    out[0], out[1:] = 0.0, x[:, 0]


@jit
def grounds_losing_digits(mu, h, grad):
    """:func:`_ground_loses_digits` for rows of robots (mu, h (N, n), grad (N, n_edges)):
    a flag a robot.
    """
    n_robots, n = mu.shape
    flags = np.zeros(n_robots, dtype=np.bool_)
    mu_lanes, h_lanes = _lanes.empty((n,)), _lanes.empty((n,))
    gradient = _lanes.empty((grad.shape[1],))
    for first in range(0, n_robots, _lanes.LANES):
        _policy.into_lanes(mu, first, 0, n, mu_lanes)
        _policy.into_lanes(h, first, 0, n, h_lanes)
        _policy.into_lanes(grad, first, 0, grad.shape[1], gradient)
        count = min(_lanes.LANES, n_robots - first)
        _ground_loses_digits(mu_lanes, h_lanes, gradient, grad.shape[1], count, flags[first:])
    return flags


# The steps both solvers share, on arrays with a column per robot (``probabilities``,
# ``x``, ``mu``: the plan's lanes, where columns past the last robot are spare; the
# multifrontal LU's one robot is one column).
@inline_jit
def from_first(indptr, indices, probabilities, x):
    """Set x = P(0, .) without vertex 0 (a row per vertex, a column per robot; 0 where
    vertex 0 has no edge): the right-hand side of A^T x = P(0, .). ``probabilities`` has
    a row per edge.
    """
    x[:] = 0.0
    for e in range(indptr[0], indptr[1]):
        if indices[e] > 0:
            for robot in range(x.shape[1]):
                x[indices[e] - 1, robot] = probabilities[e, robot]


@inline_jit
def centred(g, mu, x):
    """x[:, robot] = g - (mu . g) 1 without vertex 0: the Poisson equation's right side
    (``g`` and ``mu`` a row per robot).
    """
    for robot in range(g.shape[0]):
        mean = _mean(g, mu, robot)
        for v in range(x.shape[0]):
            x[v, robot] = g[robot, v + 1] - mean


@inline_jit
def magnitudes(g, mu, x):
    """x[:, robot] = |g| + |mu . g| without vertex 0: a bound on the Poisson equation's
    right side and on its rounding (``g`` and ``mu`` a row per robot).
    """
    for robot in range(g.shape[0]):
        mean = _mean(g, mu, robot)
        for v in range(x.shape[0]):
            x[v, robot] = abs(g[robot, v + 1]) + abs(mean)


@inline_jit
def normalise(x, mu):
    """mu[:, robot] = (1, x[:, robot]) / its sum, clipped to [0, 1] against round-off:
    with x_0 = 1 the solution of A^T x = P(0, .) is the chain's stationary measure. The
    loops over robots are innermost, so that on the plan's lanes they are SIMD operations
    (each robot's sum still adds its vertices in order).
    """
    total = np.ones(x.shape[1])
    for v in range(x.shape[0]):
        for robot in range(x.shape[1]):
            total[robot] += x[v, robot]
    for robot in range(x.shape[1]):
        mu[0, robot] = min(1.0 / total[robot], 1.0)
    for v in range(x.shape[0]):
        for robot in range(x.shape[1]):
            mu[v + 1, robot] = min(max(x[v, robot] / total[robot], 0.0), 1.0)


_EPSILON = np.finfo(np.float64).eps


#: The error of dJ/dtheta (relative to its largest entry) an adjoint grounded at vertex 0
#: may have; a robot whose estimate exceeds it has its gradient found again from other
#: grounds (:func:`_ground_loses_digits`, :func:`_grounds.best_grounded_gradient`).
_GROUND_ERROR = 1e-8


#: Rows over which :func:`_ground_loses_digits` keeps each maximum (an int64, not an
#: int, so that :func:`_lanes.full` is not compiled again for a literal 4).
_CHAINS = np.int64(4)


@inline_jit
def _ground_loses_digits(mu, h, gradient, n_edges, count, out):
    """Set out[m], m < count: whether robot m's adjoint ``h``, grounded at vertex 0, left
    its ``gradient`` (dJ/dtheta) less accurate than _GROUND_ERROR, or not finite (``mu``,
    ``h`` and ``gradient`` in lanes, a robot a lane).

    h's entries grow like the time it takes to reach the ground, and dJ/dtheta takes
    differences of them, scaled by mu: its error is about eps max_s mu(s) |h(s)|. On
    MUSEUM with logits of spread 2 to 8 (48 robots, errors against a 300-digit solve
    from 7.5e-15 to 2 of the largest entry) that estimate was within 1/15 to 9 times the
    error. That holds where vertex 0 is the busiest vertex as well: a part of the map
    that the robot rarely leaves is as far from it (on MUSEUM with logits of spread 16 to
    48, robots with vertex 0 busiest had estimates of 1e-3 to 65 and errors of 3e-4 to
    4e21 of the largest entry).
    """
    # Each maximum is kept in _CHAINS rows taken in turn: a row's next maximum waits for
    # its last (through memory), and with one row that wait was most of the time (1.3 us
    # of a MUSEUM step of 8 robots).
    terms, entries = _lanes.full((_CHAINS,), 0.0), _lanes.full((_CHAINS,), 0.0)
    for v in range(mu.shape[0]):
        _lanes.largest_magnitude_of_product(terms, v % _CHAINS, mu, v, h, v)
    for e in range(n_edges):
        _lanes.largest_magnitude(entries, e % _CHAINS, gradient, e)
    for k in range(1, _CHAINS):
        _lanes.largest_magnitude(terms, 0, terms, k)  # keeping a NaN
        _lanes.largest_magnitude(entries, 0, entries, k)
    for m in range(count):
        # The maxima keep a NaN: a gradient that is not finite is solved again too.
        out[m] = not (np.isfinite(terms[0, m]) and np.isfinite(entries[0, m])) or (
            _EPSILON * terms[0, m] > _GROUND_ERROR * entries[0, m]
        )


@inline_jit
def _planned_chains(
    plan, slots, kept_edges, indptr, indices, logits, floor, scale, mu, probabilities
):
    """Set each robot's edge probabilities (the softmax of its finite ``logits``, floored
    with ``scale`` = 1 - d(s) floor when ``floor``) and stationary distribution, rows of
    ``probabilities`` and ``mu``; return (the softmax, the plan's factors and mu, each in
    lanes with an axis of LANES robots in front, status), status -1 or the first robot
    whose share of vertex 0 is below FAINTEST_GROUND (or not a number): its mu, from a
    measure that overflowed, may be no distribution at all (:func:`_grounds.grounded_elsewhere`).
    """
    n_robots, n_edges = logits.shape
    n = indptr.size - 1
    chunks = range(0, n_robots, _lanes.LANES)
    softmax = _lanes.empty((len(chunks), n_edges))
    moves = _lanes.empty((len(chunks), n_edges)) if floor else softmax
    values = _lanes.empty((len(chunks), plan.ptr.size - 1 + 2 * plan.neighbours.size))
    mu_lanes = _lanes.empty((len(chunks), n))
    for c, first in enumerate(chunks):
        _policy.into_lanes(logits, first, 0, n_edges, softmax[c])
        _policy.softmax_lanes(indptr, range(n), softmax[c])
        if floor:
            _policy.floored(softmax[c], scale, floor, moves[c])
        _policy.out_of_lanes(moves[c], n_edges, first, 0, probabilities)
        planned_stationary(
            plan, slots, kept_edges, indptr, indices, moves[c], values[c], mu_lanes[c]
        )
        _policy.out_of_lanes(mu_lanes[c], n, first, 0, mu)
    for robot in range(n_robots):
        # Also where x, and so its sum, is not finite (1 / inf = 0, 1 / nan = nan).
        if not mu[robot, 0] >= FAINTEST_GROUND:
            return softmax, values, mu_lanes, robot
    return softmax, values, mu_lanes, -1


@inline_jit
def _planned_measure(plan, slots, kept_edges, indptr, indices, probabilities, values, x):
    """:func:`planned_stationary` up to its last step: the factors, and in ``x`` (n,
    LANES) the stationary measure with vertex 0's share 1, vertex 0 left out.
    """
    _planned_factor(plan, slots, kept_edges, indptr, indices, probabilities, values)
    from_first(indptr, indices, probabilities, x)
    _elimination.solve(plan, values, x, True)


@inline_jit
def _planned_factor(plan, slots, kept_edges, indptr, indices, probabilities, values):
    """Assemble the A_i of LANES robots (edge ``probabilities`` in lanes) into ``values``
    and factor them by the plan, with the pivots from A's row sums.
    """
    n = plan.ptr.size - 1
    values[:] = 0.0
    one = _lanes.full(_lanes.ONE_ROW, 1.0)
    for k in range(kept_edges.size, slots.size):  # the diagonal
        _lanes.copy(values, slots[k], one, 0)
    for k in range(kept_edges.size):
        _lanes.subtract(values, slots[k], probabilities, kept_edges[k])
    # A's row sums are the probabilities of moving to vertex 0: exact, with no 1 - sum.
    to_first = _lanes.full((n,), 0.0)
    for s in range(1, indptr.size - 1):
        for e in range(indptr[s], indptr[s + 1]):
            if indices[e] == 0:
                _lanes.copy(to_first, s - 1, probabilities, e)
    _elimination.factor(plan, values, to_first)


@inline_jit
def _mean(g, mu, robot):
    """The mean of g under mu (mu . g) of row ``robot``, its vertices in order."""
    mean = 0.0
    for v in range(g.shape[1]):
        mean += mu[robot, v] * g[robot, v]
    return mean
