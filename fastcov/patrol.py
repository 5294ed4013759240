"""Multi-robot patrolling on a graph: stationary distributions and their exact gradient.

Robot i follows a Markov chain on the vertices of a :class:`fastcov.graph.Graph`: from
vertex s it takes out-edge e with the softmax probability

    P_i(e) = exp(theta_i[e]) / sum_{e' out of s} exp(theta_i[e']),

one logit per directed edge, optionally with a floor f: P_i(e) = f + (1 - d(s) f) softmax
(d(s) the out-degree of s; off by default), so that no move becomes less likely than f,
however far training drives the logits. Its stationary distribution mu_i (mu_i^T P_i = mu_i^T,
sum_s mu_i(s) = 1: the long-run share of time robot i spends at s) is unique when the graph
is strongly connected, and is what the coverage entropy J of :mod:`fastcov` scores.

Solving. Let A = (I - P) without the row and column of one vertex r (r = 0). For an
irreducible P, A is a non-singular M-matrix, sparse with the graph's pattern: one sparse
LU of A per robot (fill-reducing order on A + A^T, diagonal pivots, which an M-matrix
keeps positive) gives mu from A^T x = P(r, .) without r, x_r = 1, mu = x / sum(x), never a
dense inverse. Graphs up to about 20,000 vertices (grids; more for sparser maps) are
factored by an elimination plan made once per graph (:mod:`fastcov._elimination`:
compiled, 8 robots a pass side by side in SIMD lanes, no per-call overhead); larger
ones by a multifrontal LU with a nested-dissection order, also analysed once per graph
(:mod:`fastcov._multifrontal`: dense fronts, BLAS), whose factor arrays stay with the
graph for its next step (0.8 GB a robot on a 10^6-vertex grid).

Gradient (the adjoint of the stationary distribution). With g_i = dJ/dmu_i from
:func:`fastcov.value_and_grad`, differentiating mu^T (I - P) = 0 gives dJ = mu^T dP h for
any h with (I - P) h = g_i - (mu^T g_i) 1 (the Poisson equation); h is defined up to a
constant, which dP 1 = 0 ignores, so h_r = 0 and A h = that right-hand side without r
(the same LU, the other side). Then dJ/dP(s, s') = mu(s) h(s'), and the softmax chain
rule gives, for edge e out of s with G_e = mu(s) h(target of e),

    dJ/dtheta_i[e] = P_i(e) (G_e - sum_{e' out of s} P_i(e') G_e').

All robots' g come from one fastcov kernel pass (Theorem 1: each needs only its own mu_i
and the shared terms).

Grounding at vertex 0 fails a robot that rarely visits it, in three ways, each handled:

- mu out of range: the measure x = mu / mu(0) overflows where mu(0) is below about
  1e-308 (mu came out all zeros, J as if the robot were not there). A robot that visits
  vertex 0 less than 2^-1000 of the time has its mu solved again, grounded at its busiest
  vertex (the graph with the two vertices swapped, with a plan or analysis of its own,
  kept for the next steps). Where the measure grounded at vertex 0 cannot say which
  vertex that is (with mu(0) hundreds of orders of magnitude below the largest share,
  its factors under- and overflow), the ground is the root of the chain's heaviest
  spanning tree, read off its probabilities (:mod:`fastcov._trees`). Moves whose
  probability underflowed to 0 are impossible there: a chain left with two closed
  classes has no unique stationary distribution in float64, and raises
  FloatingPointError.
- h's digits: h's entries grow like the time it takes to reach the ground (or, where
  vertex 0 is busy, like the time to leave a part of the map the robot rarely leaves),
  and the gradient needs their differences, scaled by mu. The step estimates each
  robot's error as eps max_s mu(s) |h(s)|; where that exceeds 1e-8 of the gradient's
  largest entry (or the gradient is not finite), the robot's gradient is found again
  from grounds at one vertex after another: the entries of the edges out of s are
  accurate from a ground near s (grounded at s, to about eps max |dJ/dmu|), and a
  second solve, for |g| + |mu . g|, bounds each entry's error
  (:func:`_best_grounded_gradient`).
- dJ/dmu = +inf at a vertex no robot's share reaches in float64 (fastcov's value at
  mu(s) = 0; the true shares are positive): the step takes that share as the least
  float64, for a finite derivative and a gradient without NaN.
"""

import dataclasses
import math
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import _checks, _elimination, _lanes, _multifrontal, _trees, _vmath, api, cpu
from ._jit import inline_jit, jit
from .graph import BUNDLED, Graph

__all__ = [
    "transition_probabilities",
    "stationary",
    "value_and_grad",
    "train",
    "upper_bound",
    "PatrolState",
    "TrainResult",
]

SCHEDULES = ("simultaneous", "one-at-a-time")
OPTIMIZERS = ("adam", "plain")


@dataclasses.dataclass(frozen=True)
class PatrolState:
    """What :func:`value_and_grad` computed for a team.

    Attributes
    ----------
    value : float
        J, the coverage entropy of the team's stationary distributions.
    grad : ndarray of float64, shape (N, n_edges)
        dJ/dtheta.
    mu : ndarray of float64, shape (N, n)
        Each robot's stationary distribution.
    probabilities : ndarray of float64, shape (N, n_edges)
        Each robot's edge probabilities P_i(e).
    """

    value: float
    grad: np.ndarray
    mu: np.ndarray
    probabilities: np.ndarray


def transition_probabilities(graph, logits, *, floor=0.0):
    """Softmax over each vertex's out-edges, with an optional floor.

    Parameters
    ----------
    graph : fastcov.graph.Graph
    logits : array_like, shape (n_edges,) or (N, n_edges)
        Real, finite.
    floor : float
        f in [0, 1 / (largest out-degree)): P(e) = f + (1 - d(s) f) softmax(e) for edge e
        out of a vertex s of out-degree d(s). 0 (the default) is the plain softmax.

    Returns
    -------
    ndarray of float64, the shape of ``logits``
        Edge probabilities, each >= floor; those of one vertex's out-edges sum to 1.

    Raises
    ------
    ValueError
        A vertex without out-edges; logits of the wrong shape or not finite; a floor
        outside its range.
    TypeError
        ``graph`` not a :class:`fastcov.graph.Graph` (a map's name, say); logits that are
        not real numbers (complex ones included: they are not cast), or a masked array
        (its mask would be lost).
    """
    _require_graph(graph).require_out_edges()
    logits = _check_logits(graph, logits)
    return _with_floor(graph, _softmax_of(graph, logits), _check_floor(graph, floor))


def stationary(graph, logits, *, floor=0.0):
    """Stationary distribution of each robot's chain.

    Parameters
    ----------
    graph : fastcov.graph.Graph
        Strongly connected.
    logits : array_like, shape (n_edges,) or (N, n_edges)
    floor : float
        As for :func:`transition_probabilities`.

    Returns
    -------
    ndarray of float64, shape (n,) or (N, n)
        mu_i(s) >= 0 with sum_s mu_i(s) = 1 (round-off below 0 is set to 0).

    Raises
    ------
    ValueError
        The graph is not strongly connected (the message names a component), or the
        logits have the wrong shape or are not finite.
    TypeError
        As :func:`transition_probabilities`.
    FloatingPointError
        A robot's transition probabilities span too many orders of magnitude for float64
        (the message names the robot): moves that underflow to 0 leave its chain, in
        float64, with several closed classes (the message names a vertex of two), or
        its elimination underflows. A chain left with one closed class gets the
        stationary distribution of its float64 probabilities. Every share keeps full
        relative accuracy, however small (both solvers eliminate without cancellation,
        and a robot that visits vertex 0 less than 2^-1000 of the time is solved
        grounded at its busiest vertex). A ``floor`` keeps every probability away from
        underflow.
    """
    _require_graph(graph).require_strongly_connected()
    logits = _check_logits(graph, logits)
    floor = _check_floor(graph, floor)
    rows = _rows(logits)
    pattern = _pattern(graph) if graph.n_vertices > 1 else None
    if pattern is not None and pattern.plan is not None:
        # One compiled call, the gradient step's first half (MUSEUM, 8 robots: 45-69 us
        # as separate calls, most of it Python, more than the whole step's 30).
        mu, probabilities = np.empty((len(rows), graph.n_vertices)), np.empty_like(rows)
        scale = _planned_scale(graph, floor)
        if _planned_mu(*pattern.planned_arrays, rows, floor, scale, mu, probabilities) >= 0:
            _ground_faint_robots(graph, probabilities, mu)
    else:
        mu = _Team(graph, _with_floor(graph, _softmax_of(graph, rows), floor)).mu
    return mu.reshape(logits.shape[:-1] + (graph.n_vertices,))


def value_and_grad(graph, logits, *, eps=0.0, floor=0.0):
    """J of a team of N robots and its gradient with respect to every edge logit.

    Parameters
    ----------
    graph : fastcov.graph.Graph
        Strongly connected.
    logits : array_like, shape (N, n_edges)
        Robot i's logits theta_i: real and finite, of any real dtype (the step computes
        in float64, float32 logits included).
    eps : float
        Passed to :func:`fastcov.value_and_grad` (clamps mu(s) inside the log of the
        weights; 0 keeps the exact gradient). A vertex whose share underflowed to 0 for
        every robot counts as having the least float64 share there (its true share is
        positive, and its derivative finite, where fastcov's is +inf at 0).
    floor : float
        As for :func:`transition_probabilities`; the gradient is that of J through the
        floored probabilities.

    Returns
    -------
    PatrolState
        J, dJ/dtheta (N, n_edges), the stationary distributions and edge probabilities.
        Each entry of a robot's dJ/dtheta has an error of about 1e-8 of the row's
        largest entry at most (estimated), or one bounded by 1e-4 of it, or by 512 eps
        max |dJ/dmu_i| where that is more, against the exact gradient of the float64
        probabilities, unless a RuntimeWarning says otherwise (the bound is loose: see
        the module docstring on grounds).

    Raises
    ------
    ValueError, TypeError, FloatingPointError
        As :func:`stationary`.

    Warns
    -----
    RuntimeWarning
        Where the error bound of a robot's gradient stays above 1e-4 of its largest
        entry after 16 grounds (its probabilities span hundreds of orders of
        magnitude; a floor keeps them closer).

    Notes
    -----
    On a graph too large for an elimination plan (grids from about 20,000 vertices), the LU
    factors of every robot stay allocated with the graph after the call, for the next
    step to reuse: about 0.8 GB a robot on a 10^6-vertex grid (a fresh array costs more
    to touch than the factorisation that fills it). They are freed with the graph. A
    robot that rarely visits vertex 0 (see the module docstring) is factored again,
    grounded elsewhere; the graph keeps the analyses of the last 8 grounds so used.
    """
    _require_graph(graph).require_strongly_connected()
    return _team_state(graph, logits, eps, _check_floor(graph, floor))


def _team_state(graph, logits, eps, floor):
    """:func:`value_and_grad` on a graph already known to be strongly connected, with a
    floor already checked.
    """
    logits = _logits_array(graph, logits, ndims=(2,))
    eps = max(api._check_eps(eps), _LEAST_SHARE)
    pattern = _pattern(graph) if graph.n_vertices > 1 else None
    if pattern is not None and pattern.plan is not None:
        return _planned_state(graph, pattern, logits, eps, floor)
    _require_finite(logits)
    softmax = _softmax_of(graph, logits)
    probabilities = _with_floor(graph, softmax.copy() if floor else softmax, floor)
    team = _Team(graph, probabilities)
    value, g = api.value_and_grad(team.mu, eps, backend="cpu")
    grad = team.logit_gradient(g, softmax)
    flags = _grounds_losing_digits(team.mu, team.h, grad)
    flags[list(team.faint)] = True  # their factors were never used
    regrounded = np.flatnonzero(flags)
    if regrounded.size:
        _reground(graph, regrounded, team.mu, g, probabilities, softmax, grad)
    if floor:
        grad *= _floor_scale(graph, floor)  # dP/dsoftmax
    return PatrolState(value, grad, team.mu, probabilities)


def _planned_state(graph, pattern, logits, eps, floor):
    """:func:`_team_state` on a graph with an elimination plan (its ``pattern``), for
    logits not yet known to be finite: the whole step in one compiled call (on MUSEUM the
    separate calls' overhead was most of the step).
    """
    group, block, _ = cpu.partition(len(logits))
    partials, robot, grad, mu, probabilities = _planned_step(
        *pattern.planned_arrays, logits, floor, _planned_scale(graph, floor), eps, group, block
    )
    if robot == _LOGITS_NOT_FINITE:
        _require_finite(logits)
    if robot >= 0:
        return _faint_ground_state(graph, logits, mu, probabilities, eps, floor)
    if robot == _REGROUND:
        # Rare enough to take the separate calls: the same g as the step's (its blocks).
        _, g = api.value_and_grad(mu, eps, backend="cpu")
        softmax = _softmax_of(graph, logits) if floor else probabilities
        robots = np.flatnonzero(np.isnan(grad[:, 0]))
        unscaled = np.empty_like(grad)
        _reground(graph, robots, mu, g, probabilities, softmax, unscaled)
        grad[robots] = unscaled[robots] * (_floor_scale(graph, floor) if floor else 1.0)
    return PatrolState(math.fsum(partials.tolist()), grad, mu, probabilities)


def _faint_ground_state(graph, logits, mu, probabilities, eps, floor):
    """:func:`_planned_state` where some robot visits vertex 0 too rarely for its mu
    (``mu`` and ``probabilities`` are the step's, the rows of those robots not usable):
    their mu grounded elsewhere, then every robot's dJ/dtheta from other grounds than
    vertex 0 (:func:`_reground`; rare enough to take the separate calls).
    """
    _ground_faint_robots(graph, probabilities, mu)
    value, g = api.value_and_grad(mu, eps, backend="cpu")
    softmax = _softmax_of(graph, logits) if floor else probabilities
    grad = np.empty_like(probabilities)
    _reground(graph, np.arange(len(mu)), mu, g, probabilities, softmax, grad)
    if floor:
        grad *= _floor_scale(graph, floor)
    return PatrolState(value, grad, mu, probabilities)


def _ground_faint_robots(graph, probabilities, mu):
    """Set the rows of ``mu`` whose share of vertex 0 is below _FAINTEST_GROUND (or not a
    number) by :func:`_grounded_elsewhere`.
    """
    for robot in np.flatnonzero(~(mu[:, 0] >= _FAINTEST_GROUND)):
        mu[robot] = _grounded_elsewhere(graph, probabilities, robot)


def _grounded_elsewhere(graph, probabilities, robot, x=None):
    """The stationary distribution (n,) of robot ``robot`` (edge ``probabilities``, a row
    per robot) that visits vertex 0 less than _FAINTEST_GROUND of the time: solved with
    the busiest vertex of its measure ``x`` (:func:`_measure`, grounded at vertex 0;
    computed if not given) as the ground, then, if that vertex is visited too rarely
    still, with the busiest vertex of the new measure, _GROUNDS_TRIED grounds in all.
    Where a measure is not finite (its factors under- or overflowed, or moves underflowed
    to 0 and the chain cannot reach the ground in float64), the ground is the root of the
    chain's heaviest spanning tree instead (:func:`_heaviest_tree_root`).

    Raises FloatingPointError when no ground will do: the chain has several closed
    classes in float64, or the elimination underflowed.
    """
    row = probabilities[robot]
    x = _measure(graph, row) if x is None else x
    vertices = np.arange(graph.n_vertices)
    mu = np.empty((graph.n_vertices, 1))
    tree_root = None
    for _ in range(_GROUNDS_TRIED):
        if np.isfinite(x).all() and x.max(initial=0.0) > 1.0:
            root = int(vertices[np.argmax(x[:, 0]) + 1])
        elif tree_root is None:
            root = tree_root = _heaviest_tree_root(graph, robot, probabilities)
        else:
            break
        swapped, vertices, edges = _pattern(graph).swapped(root)
        x = _measure(swapped, row[edges])
        _normalise(x, mu)
        if mu[0, 0] >= _FAINTEST_GROUND:
            shares = np.empty(graph.n_vertices)
            shares[vertices] = mu[:, 0]
            return shares
    raise _too_extreme(robot, probabilities, "cannot be computed in float64")


def _heaviest_tree_root(graph, robot, probabilities):
    """The root of robot ``robot``'s chain's heaviest spanning tree, a vertex it visits
    often (:mod:`fastcov._trees`; O(E log E), on grids of random logits 0.013 s at 10^4
    vertices, 0.7 s at 1.6 10^5, 7 s at 10^6), read off its edge ``probabilities`` (a row
    per robot), where no measure can say where the robot is.

    Raises FloatingPointError where the chain has several closed classes in float64 (the
    moves that underflowed to 0 impossible): then it has no unique stationary
    distribution. The message names a vertex of two of them.
    """
    row = probabilities[robot]
    roots = _trees.heaviest_tree_roots(graph.sources, graph.indices, row, graph.n_vertices)
    if roots.size > 1:
        first, second = (graph.label(v) for v in roots[:2])
        raise FloatingPointError(
            f"robot {robot}'s chain has {roots.size} closed classes in float64, where "
            f"moves less likely than 4.9e-324 round to 0 (its smallest probability is "
            f"{row.min():.3g}): from vertex {first!r} it cannot reach vertex {second!r}, "
            f"nor back, so it has no unique stationary distribution (a floor keeps every "
            f"move possible)"
        )
    return int(roots[0])


def _measure(graph, probabilities):
    """The stationary measure x (n - 1, 1) of one robot's chain (edge ``probabilities``)
    with vertex 0's share 1, vertex 0 left out, by the graph's plan or multifrontal LU.
    """
    pattern = _pattern(graph)
    if pattern.plan is not None:
        x = np.empty((1, pattern.n))
        _planned_measures(*pattern.planned_arrays, probabilities[np.newaxis], x)
        return x.T
    factors = pattern.borrow()
    try:
        return _frontal_measure(graph, probabilities, factors)
    finally:
        pattern.give_back([factors])


def _reground(graph, regrounded, mu, g, probabilities, softmax, grad):
    """Set the rows ``regrounded`` of ``grad`` (dJ/dtheta before a floor's scale) again,
    from adjoints grounded elsewhere than vertex 0, robot by robot
    (:func:`_best_grounded_gradient`). ``g`` is dJ/dmu; the other arrays are as
    :class:`PatrolState`'s.
    """
    for robot in regrounded:
        grad[robot] = _best_grounded_gradient(graph, robot, mu, g, probabilities, softmax)


def _best_grounded_gradient(graph, robot, mu, g, probabilities, softmax):
    """Robot ``robot``'s dJ/dtheta (n_edges,), before a floor's scale, from adjoints
    grounded at one vertex after another.

    Every ground gives the same dJ/dtheta in exact arithmetic, but not the same error. The
    entry of an edge out of s takes differences of h at s's neighbours, and h grows like
    the time it takes to reach the ground: grounded at s itself, the entry's error is
    at most about eps max |g|, since the robot spends at most all of its time on
    excursions from s. :func:`_ground_errors` bounds each entry's error. The first ground
    is the busiest vertex; while some entry's bound exceeds the tolerance (_GROUNDS_ERROR
    of the largest entry, or _ROUNDING_ERRORS eps max |g| where that is more), the source
    of the worst such entry becomes the next ground, and each entry keeps the value with
    the smallest bound, up to _GRADIENT_GROUNDS grounds. Where a bound still exceeds
    _WARNED_ERROR of the largest entry (and the rounding), a RuntimeWarning says so. (On
    MUSEUM with logits of spread 16 to 64, 30 robots: where one ground had left errors
    of up to 1e39 of the largest entry, the errors were at most 4.2e-7 of it, and at most
    1.1e-16 absolute where every entry was below 1e-6, against mpmath solves of 300 to
    700 digits: ``python tests/grounds_table.py``.)
    """
    sources = graph.sources
    rounding = _ROUNDING_ERRORS * _EPSILON * np.abs(g[robot]).max(initial=0.0)
    tried, tolerance = [int(np.argmax(mu[robot]))], rounding
    while True:
        h, bound = _grounded_adjoint(graph, tried[-1], robot, mu, g, probabilities)
        candidate = _softmax_chain_rule(graph, softmax[robot], mu[robot] / _BOUND_SCALE, h)
        errors = _ground_errors(graph, softmax[robot], mu[robot], bound)
        errors[~np.isfinite(candidate)] = np.inf  # where h overflowed
        if len(tried) == 1:
            best, best_errors = candidate, errors
        else:
            better = errors < best_errors
            best[better], best_errors[better] = candidate[better], errors[better]
        with np.errstate(invalid="ignore"):  # inf - inf where h overflowed
            reliable = np.abs(best) - best_errors  # NaN where either is
        largest = reliable.max(where=reliable > 0, initial=0.0)
        tolerance = max(_GROUNDS_ERROR * largest, rounding)
        unresolved = ~(best_errors <= tolerance) & ~np.isin(sources, tried)
        if not unresolved.any() or len(tried) == _GRADIENT_GROUNDS:
            break
        worst = np.where(unresolved, np.nan_to_num(best_errors, nan=np.inf), -1.0)
        tried.append(int(sources[np.argmax(worst)]))
    if not np.isfinite(best).all():
        raise _too_extreme(robot, probabilities, "has a gradient that is not finite")
    largest_bound = np.nan_to_num(best_errors, nan=np.inf).max()
    if not largest_bound <= max(_WARNED_ERROR * largest, rounding):
        warnings.warn(
            f"the gradient of robot {robot} may have lost digits: the error bound of an "
            f"entry is {largest_bound:.3g}, and its largest entry "
            f"{np.abs(best).max():.3g}, after {len(tried)} grounds; its transition "
            f"probabilities span many orders of magnitude (the smallest is "
            f"{probabilities[robot].min():.3g}), which a floor limits",
            RuntimeWarning,
            stacklevel=1,  # once a session, not once a training step
        )
    return best


#: Grounds :func:`_best_grounded_gradient` tries for one robot, at most.
_GRADIENT_GROUNDS = 16

#: It tries another while an entry's error bound exceeds this fraction of the largest
#: entry. The bound is loose (on random trees of 150 vertices the error was 1/2,000 to
#: 1/16,000 of it), and each new ground costs an analysis of its graph (0.3 s on a tree
#: of 34,768 vertices, where one ground's bound was 2.9e-5 of the largest entry).
_GROUNDS_ERROR = 1e-4

#: ... and warns where one still exceeds this fraction.
_WARNED_ERROR = 1e-2

#: The bound leaves out the rounding of the solve itself, which grows with the elimination:
#: on MUSEUM with logits of spread 16 to 48, grounded at vertex 0, errors reached 25 to 45
#: times it on a few edges. It is taken this many times over.
_BOUND_GROWTH = 64

#: Its tolerance is at least this many times eps max |g|: about the least error bound a
#: ground can give (the rounding of g - mu . g alone moves an entry by eps max |g|, and
#: the bound is taken _BOUND_GROWTH times over).
_ROUNDING_ERRORS = 8 * _BOUND_GROWTH


def _grounded_adjoint(graph, root, robot, mu, g, probabilities):
    """(h, bound), each (n,) and each times _BOUND_SCALE, of robot ``robot``: its adjoint
    grounded at ``root`` (h[root] = 0), solved on the graph with ``root`` and vertex 0
    swapped, by that graph's plan or multifrontal LU, and the solution of the same system
    for |g| + |mu . g| (which is >= 0, so the solve has no cancellation), which bounds how
    far rounding moves h (:func:`_ground_errors`).
    """
    swapped, vertices, edges = _pattern(graph).swapped(root)
    pattern = _pattern(swapped)
    moves = probabilities[robot, edges][np.newaxis]
    mu_row = mu[robot, vertices][np.newaxis]
    g_row = g[robot, vertices][np.newaxis] * _BOUND_SCALE  # h and the bound are linear in g
    h, bound = np.empty((2, 1, graph.n_vertices))
    if pattern.plan is not None:
        _planned_adjoints(*pattern.planned_arrays, moves, mu_row, g_row, h, bound)
    else:
        factors = pattern.borrow()
        try:
            _frontal_factor(swapped, moves[0], factors)
            for out, right_side in ((h, _centred), (bound, _magnitudes)):
                _frontal_adjoint(pattern, factors, right_side, g_row, mu_row, out[0])
        finally:
            pattern.give_back([factors])
    # The swap is its own inverse: vertex v of the swapped graph is vertices[v].
    return h[0, vertices], bound[0, vertices]


def _ground_errors(graph, probabilities, mu, bound):
    """A bound on the error of each entry of one robot's dJ/dtheta (n_edges,) that
    :func:`_softmax_chain_rule` takes from an adjoint h whose rounding moved h by at most
    eps ``bound`` / _BOUND_SCALE: for edge e out of s, eps P(e) mu(s) (bound(target of
    e) + sum over s's out-edges e' of P(e') bound(target of e')) / _BOUND_SCALE, taken
    _BOUND_GROWTH times over (NaN where ``bound`` is not finite).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        at_targets = probabilities * bound[graph.indices]
        means = np.add.reduceat(at_targets, graph.indptr[:-1])
        spread = bound[graph.indices] + means[graph.sources]
        scale = _BOUND_GROWTH * _EPSILON / _BOUND_SCALE
        return probabilities * mu[graph.sources] * spread * scale


#: The grounded adjoints and their bounds are solved for g times this, so that they do
#: not overflow: h grows like the time it takes to reach the ground (on a ring whose two
#: busiest vertices are left with probability 4.5e-309, the bound overflowed unscaled;
#: on MUSEUM after Adam steps of 20, h overflowed at a ground the robot reaches in
#: 1e305 steps, where the gradient's entries are at most |g|). A power of 2, so that the
#: chain rule, from mu / _BOUND_SCALE, gives the unscaled result's bits.
_BOUND_SCALE = 2.0**-600


def _planned_scale(graph, floor):
    """The planned compiled calls' ``scale``: :func:`_floor_scale`, or no entries where
    there is no floor (the plain softmax, which they then leave unscaled).
    """
    return _floor_scale(graph, floor) if floor else _NO_SCALE


_NO_SCALE = np.ones(0)
_LOGITS_NOT_FINITE = -2
_REGROUND = -3

#: The error of dJ/dtheta (relative to its largest entry) an adjoint grounded at vertex 0
#: may have; a robot whose estimate exceeds it has its gradient found again from other
#: grounds (:func:`_ground_loses_digits`, :func:`_best_grounded_gradient`).
_GROUND_ERROR = 1e-8


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


@jit
def _grounds_losing_digits(mu, h, grad):
    """:func:`_ground_loses_digits` for rows of robots (mu, h (N, n), grad (N, n_edges)):
    a flag a robot.
    """
    n_robots, n = mu.shape
    flags = np.zeros(n_robots, dtype=np.bool_)
    mu_lanes, h_lanes = _lanes.empty((n,)), _lanes.empty((n,))
    gradient = _lanes.empty((grad.shape[1],))
    for first in range(0, n_robots, _lanes.LANES):
        _into_lanes(mu, first, 0, n, mu_lanes)
        _into_lanes(h, first, 0, n, h_lanes)
        _into_lanes(grad, first, 0, grad.shape[1], gradient)
        count = min(_lanes.LANES, n_robots - first)
        _ground_loses_digits(mu_lanes, h_lanes, gradient, grad.shape[1], count, flags[first:])
    return flags


_EPSILON = np.finfo(np.float64).eps
_CHAINS = 4

#: The least share of vertex 0 with which mu is taken from the solve grounded there: the
#: measure x = mu / mu(0) and its sum 1 / mu(0) then stay below 2^1000. For a robot that
#: visits vertex 0 less, x or its sum overflowed (mu came out all zeros or NaN, and on
#: MUSEUM a trained robot's mu(0) reached 1e-298 by its tenth Adam step of size 10): it is
#: solved again, grounded at its busiest vertex (:func:`_grounded_elsewhere`).
_FAINTEST_GROUND = 2.0**-1000

#: Grounds tried in turn for such a robot: each at least 2^1000 / n times busier than
#: the last, and no share of a float64 is 2^-1075 or less.
_GROUNDS_TRIED = 3

#: mu(s) = 0 comes about here only by underflow (every robot's chain is irreducible, so
#: every share is positive). The step's dJ/dmu takes it as the least float64 (eps's
#: clamp: no other share changes), so that a vertex no robot's share reaches has a
#: finite derivative rather than fastcov's +inf (and dJ/dtheta no NaN from 0 * inf).
#: That vertex moves dJ/dtheta by no more than its share: the chain rule weighs every
#: move into s by mu(s') P(s', s) <= mu(s).
_LEAST_SHARE = float(np.nextafter(0.0, 1.0))


@jit
def _planned_step(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, logits, floor, scale,
    eps, group, block,
):  # fmt: skip
    """(J's block partials, status, dJ/dtheta, mu, P) for the plan of arrays ``order`` ..
    ``targets``, where status is -1, or _REGROUND where some robots need dJ/dtheta again
    with another ground (:func:`_ground_loses_digits`; their rows of dJ/dtheta are NaN),
    or the first robot that visits vertex 0 too rarely for its mu (:func:`_planned_chains`;
    then nothing past mu is computed), or _LOGITS_NOT_FINITE (then nothing is). The steps:
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
    if not _all_finite(logits):
        return partials, _LOGITS_NOT_FINITE, grad, mu, probabilities
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    softmax, values, mu_lanes, robot = _planned_chains(
        plan, slots, kept_edges, indptr, indices, logits, floor, scale, mu, probabilities
    )
    if robot >= 0:
        return partials, robot, grad, mu, probabilities
    # mu is finite and in [0, 1] (_normalise clips round-off): no value is out of range.
    g = np.empty_like(mu)
    partials, _ = cpu.gradient_on_this_thread(mu, eps, g, group, block)
    h = _lanes.empty((n,))
    gradient = _lanes.empty((n_edges,))
    regrounded, status = np.empty(_lanes.LANES, dtype=np.bool_), -1
    for c, first in enumerate(range(0, n_robots, _lanes.LANES)):
        _planned_adjoint(plan, values[c], g[first:], mu[first:], h)
        _chain_rule_lanes(indptr, indices, 0, n, softmax[c], mu_lanes[c], h, gradient)
        _out_of_lanes(gradient, n_edges, first, 0, grad)
        count = min(_lanes.LANES, n_robots - first)
        _ground_loses_digits(mu_lanes[c], h, gradient, n_edges, count, regrounded)
        for m in range(count):
            if regrounded[m]:
                grad[first + m] = np.nan
                status = _REGROUND
    if floor:
        grad *= scale  # dP/dsoftmax
    return partials, status, grad, mu, probabilities


@jit
def _planned_adjoints(
    order, ptr, neighbours, targets, slots, kept_edges, indptr, indices, probabilities, mu,
    g, h, bound,
):  # fmt: skip
    """Set ``h`` and ``bound`` (rows of robots, column 0 zero): the adjoints grounded at
    vertex 0 of the robots of edge ``probabilities``, stationary distributions ``mu`` and
    g = dJ/dmu (rows), by the plan of arrays ``order`` .. ``targets``, and the solutions
    of the same systems for |g| + |mu . g| (:func:`_grounded_adjoint`).
    """
    n = indptr.size - 1
    plan = _elimination.Plan(order, ptr, neighbours, targets)
    moves = _lanes.empty((probabilities.shape[1],))
    values = _lanes.empty((plan.ptr.size - 1 + 2 * plan.neighbours.size,))
    adjoint, x = _lanes.empty((n,)), _lanes.empty((n - 1,))
    for first in range(0, mu.shape[0], _lanes.LANES):
        last = min(first + _lanes.LANES, mu.shape[0])
        _into_lanes(probabilities, first, 0, probabilities.shape[1], moves)
        _planned_factor(plan, slots, kept_edges, indptr, indices, moves, values)
        _planned_adjoint(plan, values, g[first:last], mu[first:last], adjoint)
        _out_of_lanes(adjoint, n, first, 0, h)
        x[:] = 0.0
        _magnitudes(g[first:last], mu[first:last], x)
        _elimination.solve(plan, values, x, False)
        _out_of_lanes(x, n - 1, first, 1, bound)
        bound[first:last, 0] = 0.0


@jit
def _planned_mu(
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


@inline_jit
def _planned_chains(
    plan, slots, kept_edges, indptr, indices, logits, floor, scale, mu, probabilities
):
    """Set each robot's edge probabilities (the softmax of its finite ``logits``, floored
    with ``scale`` = 1 - d(s) floor when ``floor``) and stationary distribution, rows of
    ``probabilities`` and ``mu``; return (the softmax, the plan's factors and mu, each in
    lanes with an axis of LANES robots in front, status), status -1 or the first robot
    whose share of vertex 0 is below _FAINTEST_GROUND (or not a number): its mu, from a
    measure that overflowed, may be no distribution at all (:func:`_grounded_elsewhere`).
    """
    n_robots, n_edges = logits.shape
    n = indptr.size - 1
    chunks = range(0, n_robots, _lanes.LANES)
    softmax = _lanes.empty((len(chunks), n_edges))
    moves = _lanes.empty((len(chunks), n_edges)) if floor else softmax
    values = _lanes.empty((len(chunks), plan.ptr.size - 1 + 2 * plan.neighbours.size))
    mu_lanes = _lanes.empty((len(chunks), n))
    for c, first in enumerate(chunks):
        _into_lanes(logits, first, 0, n_edges, softmax[c])
        _softmax_lanes(indptr, 0, n, softmax[c])
        if floor:
            _floored(softmax[c], scale, floor, moves[c])
        _out_of_lanes(moves[c], n_edges, first, 0, probabilities)
        _planned_stationary(
            plan, slots, kept_edges, indptr, indices, moves[c], values[c], mu_lanes[c]
        )
        _out_of_lanes(mu_lanes[c], n, first, 0, mu)
    for robot in range(n_robots):
        # Also where x, and so its sum, is not finite (1 / inf = 0, 1 / nan = nan).
        if not mu[robot, 0] >= _FAINTEST_GROUND:
            return softmax, values, mu_lanes, robot
    return softmax, values, mu_lanes, -1


@jit
def _planned_measures(
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
        _into_lanes(probabilities, first, 0, probabilities.shape[1], moves)
        _planned_measure(plan, slots, kept_edges, indptr, indices, moves, values, measure)
        _out_of_lanes(measure, x.shape[1], first, 0, x)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    logits : ndarray, shape (N, n_edges)
        The trained policies.
    history : ndarray, shape (steps + 1,)
        J before every step and after the last one.
    state : PatrolState
        J, gradient and stationary distributions at the trained logits.
    """

    logits: np.ndarray
    history: np.ndarray
    state: PatrolState


def train(
    graph,
    n_robots,
    *,
    iterations=200,
    learning_rate=0.1,
    schedule="simultaneous",
    optimizer="adam",
    floor=0.0,
    logits=None,
    seed=0,
    tol=None,
    callback=None,
):
    """Gradient ascent on J: Adam or plain steps.

    Parameters
    ----------
    graph : fastcov.graph.Graph
        Strongly connected.
    n_robots : int
        N >= 1.
    iterations : int
        Most steps to take.
    learning_rate : float
        The step size: Adam's, or the factor of the gradient in a plain step.
    schedule : {"simultaneous", "one-at-a-time"}
        Update every robot each step, or, as EM-Patroller does, one robot per step in
        turn (robot t mod N at step t) while the others keep their policies.
    optimizer : {"adam", "plain"}
        Adam (beta = 0.9, 0.999, epsilon = 1e-8; each robot's bias correction counts its
        own updates), or plain gradient ascent theta <- theta + learning_rate dJ/dtheta.
    floor : float
        As for :func:`transition_probabilities`: the robots' chains, J and its gradient
        are those of the floored probabilities.
    logits : array_like, shape (N, n_edges), optional
        Starting policies. Default: standard normal logits drawn with ``seed`` (identical
        robots would get identical gradients and never spread out).
    seed : int or numpy.random.Generator
        Draws the default logits (anything ``numpy.random.default_rng`` takes).
    tol : float, optional
        Stop once a full round (N steps for "one-at-a-time", else one) changed J by less
        than ``tol`` either way (a fall larger than ``tol``, as Adam's early steps may
        take, does not stop it).
    callback : callable, optional
        Called as ``callback(step, state)`` after computing each step's
        :class:`PatrolState`; returning True stops the training.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        ``n_robots`` < 1, ``iterations`` < 0, a ``learning_rate`` that is not positive and
        finite, a negative or NaN ``tol``, an unknown ``schedule`` or ``optimizer``, logits
        of the wrong shape or not finite, a negative ``seed``, and what
        :func:`value_and_grad` raises.
    TypeError
        ``graph`` not a :class:`fastcov.graph.Graph`, ``n_robots`` or ``iterations`` not
        an integer, a ``seed`` NumPy cannot use.

    Notes
    -----
    An exception raised after the first step has been computed (a later step's
    FloatingPointError where training drove the probabilities too far apart, a warning
    turned into an error, the callback's own) keeps the training done so far: its
    ``result`` attribute is the :class:`TrainResult` up to the last step computed (the
    logits of that step, not the failed update's), and on Python 3.11 and later a note
    on the exception says so.
    """
    _require_graph(graph)
    try:
        n_robots = _checks.integer(n_robots, "n_robots", minimum=1)
    except TypeError as error:
        if np.ndim(n_robots) == 2:  # train(graph, logits), a slip the message should name
            raise TypeError(f"{error}; pass starting logits as logits=") from None
        raise
    iterations = _checks.integer(iterations, "iterations", minimum=0)
    if not (_checks.real_number(learning_rate) and 0.0 < learning_rate < math.inf):
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    if tol is not None and not (_checks.real_number(tol) and tol >= 0.0):
        raise ValueError(f"tol must be a number >= 0 or None, got {tol!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    floor = _check_floor(graph, floor)
    if logits is None:
        random = _checks.random_generator(seed)
        logits = random.standard_normal((n_robots, graph.n_edges))
    theta = _check_logits(graph, logits, ndims=(2,))
    if theta.shape != (n_robots, graph.n_edges):
        raise ValueError(
            f"logits must have shape ({n_robots}, {graph.n_edges}) for {n_robots} robots, "
            f"got {theta.shape}"
        )
    theta = theta.copy()
    graph.require_strongly_connected()  # once: the steps change the policy, not the graph
    first_moment, second_moment = np.zeros_like(theta), np.zeros_like(theta)
    updates = np.zeros(n_robots)
    history = []
    round_length = n_robots if schedule == "one-at-a-time" else 1
    last_update = slice(0), theta[:0]  # the rows a step updated, as they were before it
    for step in range(iterations + 1):
        try:
            state = _team_state(graph, theta, 0.0, floor)
        except Exception as error:
            if step:
                logits = theta.copy()  # back to the logits of the last state computed
                logits[last_update[0]] = last_update[1]
                _keep_progress(error, step, TrainResult(logits, np.asarray(history), state))
            raise
        history.append(state.value)
        try:
            stop = callback is not None and callback(step, state)
        except Exception as error:
            _keep_progress(error, step, TrainResult(theta, np.asarray(history), state))
            raise
        if stop:
            break
        converged = (
            tol is not None
            and step >= round_length
            and abs(history[-1] - history[-1 - round_length]) < tol
        )
        if step == iterations or converged:
            break
        robots = slice(None)
        if schedule == "one-at-a-time":
            robots = slice(step % n_robots, step % n_robots + 1)
        last_update = robots, theta[robots].copy()
        if optimizer == "plain":
            theta[robots] += learning_rate * state.grad[robots]
            continue
        _adam(
            theta[robots],
            first_moment[robots],
            second_moment[robots],
            updates[robots],
            state.grad[robots],
            learning_rate,
        )
    return TrainResult(theta, np.asarray(history), state)


def _keep_progress(error, step, result):
    """Give ``error``, raised in :func:`train` at ``step``, the training's ``result`` so far."""
    error.result = result
    if hasattr(error, "add_note"):  # Python 3.11
        error.add_note(
            f"fastcov.patrol.train stopped at step {step}; the exception's .result holds "
            f"the training up to step {len(result.history) - 1}"
        )


@jit
def _adam(theta, first_moment, second_moment, updates, grad, learning_rate):
    """One Adam ascent step, in place, for the robots (rows) given; ``updates`` counts each
    robot's steps (its bias correction). The operations and their order are the
    textbook's, so the result is that of its array expressions bit for bit (each bias
    correction from the scalar power: NumPy's array power may differ in the last bit).
    Compiled: as some twenty small array operations it took about 15 us, as long as the
    gradient step itself on MUSEUM.
    """
    for robot in range(theta.shape[0]):
        updates[robot] += 1.0
        first_correction = 1.0 - 0.9 ** updates[robot]
        second_correction = 1.0 - 0.999 ** updates[robot]
        for e in range(theta.shape[1]):
            first_moment[robot, e] = first_moment[robot, e] * 0.9 + 0.1 * grad[robot, e]
            second_moment[robot, e] = second_moment[robot, e] * 0.999 + 0.001 * grad[robot, e] ** 2
            m_hat = first_moment[robot, e] / first_correction
            v_hat = second_moment[robot, e] / second_correction
            theta[robot, e] += learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)


def upper_bound(n_vertices, n_robots):
    """An upper bound on J for N robots whose stationary distributions live on n vertices.

    mu(s) <= sum_i mu_i(s) gives sum_s mu(s) <= N, and -x log x is concave and increasing
    up to 1/e, so by Jensen J <= n f(min(N / n, 1/e)) with f(x) = -x log x (natural log).

    Parameters
    ----------
    n_vertices, n_robots : int, >= 0
        No vertices or no robots give 0 (nothing is covered).

    Raises
    ------
    TypeError, ValueError
        A count that is not an integer, or is negative.
    """
    n_vertices = _checks.integer(n_vertices, "n_vertices", minimum=0)
    n_robots = _checks.integer(n_robots, "n_robots", minimum=0)
    if n_vertices == 0 or n_robots == 0:
        return 0.0
    share = min(n_robots / n_vertices, np.exp(-1.0))
    return float(-n_vertices * share * np.log(share))


class _Team:
    """Every robot's chain on a graph without an elimination plan (or of one vertex), by
    the multifrontal LU: LUs of A_i = (I - P_i) without vertex 0 and the stationary
    distributions, then the adjoint h (the Poisson equation of the module docstring) and
    dJ/dtheta. The pivots come from A's row sums, as the plan's do.

    The robots are factored and solved on up to ``numba.get_num_threads()`` threads
    (the solver releases the GIL; BLAS runs on one thread in each). The factors go into
    arrays borrowed from the graph's pattern and given back when the team is freed.
    """

    def __init__(self, graph, probabilities):
        self.graph = graph
        self.probabilities = probabilities
        self.mu = np.ones((len(probabilities), graph.n_vertices))
        self.factors = []
        #: The robots that visit vertex 0 too rarely (:func:`_grounded_elsewhere`), and
        #: their measures there. Their mu is solved with another ground; their factors
        #: are None, and their dJ/dtheta is for the caller to find (:func:`_reground`).
        self.faint = {}
        if graph.n_vertices > 1:
            self.borrowed = []
            weakref.finalize(self, _pattern(graph).give_back, self.borrowed)
            self.factors = _in_threads(self._factor, range(len(probabilities)))
        for robot in sorted(self.faint):
            self.mu[robot] = _grounded_elsewhere(graph, probabilities, robot, self.faint[robot])

    def logit_gradient(self, g, softmax):
        """dJ/dtheta, shape (N, n_edges), from g = dJ/dmu, shape (N, n), for P =
        ``softmax`` (N, n_edges) of theta: dJ/dsoftmax when a floor scales it. The
        adjoint stays as ``h`` (N, n). The rows of the robots in ``faint`` are not
        dJ/dtheta (their h is 0).
        """
        self.h = np.zeros_like(self.mu)
        robots = [item for item in enumerate(self.factors) if item[1] is not None]
        _in_threads(lambda item: self._adjoint(*item, g, self.h), robots)
        return _softmax_chain_rule(self.graph, softmax, self.mu, self.h)

    def _factor(self, robot):
        """Factor robot ``robot``'s A into an array borrowed from the pattern and set its
        mu; return the factors, or None for a robot that visits vertex 0 too rarely (then
        its measure goes into ``faint``).
        """
        factors = _pattern(self.graph).borrow()
        self.borrowed.append(factors)
        x = _frontal_measure(self.graph, self.probabilities[robot], factors)
        mu = self.mu[robot : robot + 1].T
        _normalise(x, mu)
        if not mu[0, 0] >= _FAINTEST_GROUND:
            self.faint[robot] = x
            return None
        return factors

    def _adjoint(self, robot, factors, g, h):
        rows = slice(robot, robot + 1)
        _frontal_adjoint(_pattern(self.graph), factors, _centred, g[rows], self.mu[rows], h[robot])


def _frontal_adjoint(pattern, factors, right_side, g, mu, out):
    """Set out (n,) to (0, the solution of A x = b) by one robot's multifrontal
    ``factors``, for b = ``right_side(g, mu)`` (:func:`_centred` or :func:`_magnitudes`;
    ``g`` and ``mu`` that robot's rows, shape (1, n)), as :func:`_planned_adjoint` does.
    """
    x = np.empty((pattern.n, 1))
    right_side(g, mu, x)
    _multifrontal.solve(pattern.analysis, factors, x[:, 0], False)
    out[0], out[1:] = 0.0, x[:, 0]


def _frontal_measure(graph, probabilities, factors):
    """:func:`_measure` by the multifrontal LU, its factors written into ``factors``."""
    pattern = _pattern(graph)
    _frontal_factor(graph, probabilities, factors)
    x = np.empty((pattern.n, 1))
    _from_first(graph.indptr, graph.indices, probabilities[:, np.newaxis], x)
    _multifrontal.solve(pattern.analysis, factors, x[:, 0], True)
    return x


def _frontal_factor(graph, probabilities, factors):
    """Factor the A of one robot's edge ``probabilities`` by the graph's multifrontal LU
    into ``factors``, with the pivots from A's row sums.
    """
    pattern = _pattern(graph)
    values = np.concatenate([-probabilities[pattern.kept_edges], np.ones(pattern.n)])
    # A's row sums are the probabilities of moving to vertex 0: exact, with no 1 - sum.
    to_first = np.zeros(pattern.n)
    to_first[pattern.first_edges[0]] = probabilities[pattern.first_edges[1]]
    with _multifrontal.one_blas_thread():
        _multifrontal.factor(pattern.analysis, values, to_first, factors)


def _in_threads(function, items):
    """[function(item) for item in items], on up to numba.get_num_threads() threads."""
    threads = min(numba.get_num_threads(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


#: Largest graphs (vertices - 1, multiply-adds per robot) factored by an elimination plan;
#: larger ones go to the multifrontal LU. Steps with 8 robots on grids, plan against
#: multifrontal (2 cores): 6,400 vertices (4.8e6 multiply-adds) 13.2 against 28.0 ms;
#: 10,000 (9.5e6) 25.3 against 38.7 ms; 16,900 (2.2e7) 57.6 against 68.7 ms; 22,500
#: (3.8e7) 108.8 against 99.4 ms. The plan keeps a 4-byte slot index an update.
_PLAN_ROWS = 1 << 15
_PLAN_UPDATES = 1 << 25

#: A larger graph whose nested dissection takes more flops per vertex than this also tries
#: a plan (minimum degree), and keeps it where it stays within _PLAN_UPDATES. On a
#: 10^6-vertex grid nested dissection takes 2.8e4 flops per vertex; on a random tree of
#: 5e4 vertices 2.5e6 (6.0 s a robot, against 0.03 s for a minimum-degree LU).
_DISSECTED_FLOPS_PER_VERTEX = 1e5


def _too_extreme(robot, probabilities, what):
    """The error for a robot whose chain float64 cannot resolve."""
    return FloatingPointError(
        f"the stationary distribution of robot {robot} {what}, as its transition "
        f"probabilities span too many orders of magnitude (the smallest is "
        f"{probabilities[robot].min():.3g})"
    )


@jit
def _planned_stationary(plan, slots, kept_edges, indptr, indices, probabilities, values, mu):
    """Factor the A_i of LANES robots by the plan into ``values`` (n_slots, LANES), a robot
    a lane, and set their stationary distributions ``mu`` (n + 1, LANES).

    ``probabilities`` (n_edges, LANES) holds the robots' edge probabilities in lanes
    (spare lanes a copy of a real robot's). A_i is an M-matrix whose row sums are known
    exactly, so the factorisation is the cancellation-free one (see
    :func:`_elimination.factor`), and so is the solve for mu (its right-hand side is
    >= 0): mu keeps full relative accuracy in every entry, even where the logits make
    some moves 1e-30 likely, as long as vertex 0's share is at least _FAINTEST_GROUND
    (:func:`_grounded_elsewhere`).
    """
    x = _lanes.empty((plan.ptr.size - 1,))
    _planned_measure(plan, slots, kept_edges, indptr, indices, probabilities, values, x)
    _normalise(x, mu)


@inline_jit
def _planned_measure(plan, slots, kept_edges, indptr, indices, probabilities, values, x):
    """:func:`_planned_stationary` up to its last step: the factors, and in ``x`` (n,
    LANES) the stationary measure with vertex 0's share 1, vertex 0 left out.
    """
    _planned_factor(plan, slots, kept_edges, indptr, indices, probabilities, values)
    _from_first(indptr, indices, probabilities, x)
    _elimination.solve(plan, values, x, True)


@inline_jit
def _planned_factor(plan, slots, kept_edges, indptr, indices, probabilities, values):
    """Assemble the A_i of LANES robots (edge ``probabilities`` in lanes) into ``values``
    and factor them by the plan, with the pivots from A's row sums.
    """
    n = plan.ptr.size - 1
    values[:] = 0.0
    one = _lanes.full((1,), 1.0)
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


@jit
def _planned_adjoint(plan, values, g, mu, h):
    """Set the adjoint h (n + 1, LANES), h[0] = 0, of up to LANES robots (rows of ``g``
    and ``mu``; spare lanes 0) from their lanes of the plan's factors.
    """
    x = _lanes.full((h.shape[0] - 1,), 0.0)
    _centred(g[: _lanes.LANES], mu[: _lanes.LANES], x)
    _elimination.solve(plan, values, x, False)
    h[0] = 0.0
    for v in range(x.shape[0]):
        _lanes.copy(h, v + 1, x, v)


# The steps both solvers share, on arrays with a column per robot (``probabilities``,
# ``x``, ``mu``: the plan's lanes, where columns past the last robot are spare; the
# multifrontal LU's one robot is one column).


@inline_jit
def _from_first(indptr, indices, probabilities, x):
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
def _centred(g, mu, x):
    """x[:, robot] = g - (mu . g) 1 without vertex 0: the Poisson equation's right side
    (``g`` and ``mu`` a row per robot).
    """
    for robot in range(g.shape[0]):
        mean = _mean(g, mu, robot)
        for v in range(x.shape[0]):
            x[v, robot] = g[robot, v + 1] - mean


@inline_jit
def _magnitudes(g, mu, x):
    """x[:, robot] = |g| + |mu . g| without vertex 0: a bound on the Poisson equation's
    right side and on its rounding (``g`` and ``mu`` a row per robot).
    """
    for robot in range(g.shape[0]):
        mean = _mean(g, mu, robot)
        for v in range(x.shape[0]):
            x[v, robot] = abs(g[robot, v + 1]) + abs(mean)


@inline_jit
def _mean(g, mu, robot):
    """The mean of g under mu (mu . g) of row ``robot``, its vertices in order."""
    mean = 0.0
    for v in range(g.shape[1]):
        mean += mu[robot, v] * g[robot, v]
    return mean


@inline_jit
def _normalise(x, mu):
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


def _pattern(graph):
    """The graph's :class:`_Pattern`, made on first use (graphs are immutable)."""
    pattern = _PATTERNS.get(graph)
    if pattern is None:
        pattern = _PATTERNS[graph] = _Pattern(graph)
    return pattern


_PATTERNS = weakref.WeakKeyDictionary()


class _Pattern:
    """The entries of A = (I - P) without vertex 0, the same for every policy on a graph:
    -P(e) for each edge e = kept_edges[k] between vertices other than 0, at (rows[k],
    columns[k]) (vertex v at row and column v - 1), then the diagonal (a self-loop shares
    its place). A graph small enough gets an elimination plan (``plan``, and where the
    entries go in its values, ``planned_slots``; the arrays the compiled planned calls
    take first, ``planned_arrays``), and so does a larger one whose nested
    dissection is poor while a minimum-degree elimination is cheap (a tree-like map);
    any other a multifrontal analysis
    (``analysis``) and the edges into vertex 0 (``first_edges``: A's rows, the edges),
    whose probabilities are A's row sums, and keeps the factor arrays of past steps for
    the next ones (:meth:`borrow`).
    """

    def __init__(self, graph):
        self.graph = graph
        self.n = n = graph.n_vertices - 1
        sources, targets = graph.sources - 1, graph.indices - 1
        self.kept_edges = np.flatnonzero((sources >= 0) & (targets >= 0))
        rows = np.concatenate([sources[self.kept_edges], np.arange(n)])
        columns = np.concatenate([targets[self.kept_edges], np.arange(n)])
        self.plan = self.analysis = None
        if 0 < n <= _PLAN_ROWS:
            self.plan = _elimination.Plan.from_pattern(rows, columns, n, _PLAN_UPDATES)
        if self.plan is None and n > 0:
            analysis = _multifrontal.Analysis.from_pattern(rows, columns, n)
            if n > _PLAN_ROWS and analysis.flops() > _DISSECTED_FLOPS_PER_VERTEX * n:
                # Nested dissection found no small separators (a tree-like map, say),
                # where a minimum-degree order may need next to no fill.
                self.plan = _elimination.Plan.from_pattern(rows, columns, n, _PLAN_UPDATES)
            if self.plan is None:
                self.analysis = analysis
                into_first = np.flatnonzero((sources >= 0) & (targets == -1))
                self.first_edges = (sources[into_first], into_first)
        if self.plan is not None:
            self.planned_slots = self.plan.slots(rows, columns)
            # The plan goes as its arrays: a named tuple argument took Numba 0.9 us to type.
            self.planned_arrays = (
                *self.plan,
                self.planned_slots,
                self.kept_edges,
                graph.indptr,
                graph.indices,
            )
        self._spare_factors = []
        self._lock = threading.Lock()
        self._swapped = {}

    def swapped(self, root):
        """The graph with vertices 0 and ``root`` swapped, the graph's indices of its
        vertices and of its edges: (graph, vertices (n,), edges (n_edges,)). The last
        _SWAPPED_GRAPHS made are kept, with their own patterns.
        """
        if root == 0:
            return self.graph, np.arange(self.n + 1), np.arange(self.graph.n_edges)
        with self._lock:
            made = self._swapped.get(root)
        if made is None:
            made = _swapped(self.graph, root)
            with self._lock:
                self._swapped[root] = made
                while len(self._swapped) > _SWAPPED_GRAPHS:
                    del self._swapped[next(iter(self._swapped))]
        return made

    def borrow(self):
        """An array for one robot's multifrontal factors: one given back by an earlier
        step, or a new one. New arrays this large cost more than the factorisation
        itself: their first touch (page faults, and the kernel's compaction for huge
        pages) took 1.9 s for one robot's 0.8 GB on a 10^6-vertex grid, which it factors
        in 1.3 s.
        """
        with self._lock:
            if self._spare_factors:
                return self._spare_factors.pop()
        return np.empty(self.analysis.n_factors)

    def give_back(self, arrays):
        """Keep ``arrays`` for the next step's :meth:`borrow` (they live with the graph)."""
        with self._lock:
            self._spare_factors.extend(arrays)


#: Swapped graphs (:meth:`_Pattern.swapped`) kept per graph: each with its plan or
#: analysis, and on large graphs the factor arrays of its last step.
_SWAPPED_GRAPHS = 8


def _swapped(graph, root):
    """:meth:`_Pattern.swapped`, made anew."""
    vertices = np.arange(graph.n_vertices)
    vertices[[0, root]] = root, 0  # its own inverse: also each vertex's new index
    sources, targets = vertices[graph.sources], vertices[graph.indices]
    edges = np.lexsort((targets, sources))
    indptr = np.zeros(graph.n_vertices + 1, dtype=np.int64)
    np.cumsum(np.bincount(sources, minlength=graph.n_vertices), out=indptr[1:])
    start = None if graph.start is None else int(vertices[graph.start])
    swapped = type(graph)(
        indptr, targets[edges], graph.labels[vertices], start=start, name=graph.name
    )
    return swapped, vertices, edges


def _softmax_chain_rule(graph, probabilities, mu, h):
    """dJ/dtheta from dJ/dP(s, s') = mu(s) h(s'): the softmax chain rule (one robot's
    arrays, or every robot's stacked along a first axis).

    Shared with the dense baseline of ``bench/patrol.py``, which finds h another way.
    """
    grad = np.empty_like(probabilities)
    _chain_rule(graph.indptr, graph.indices, _rows(probabilities), _rows(mu), _rows(h), _rows(grad))
    return grad


def _rows(array):
    """A 1-D or 2-D array as a 2-D view (one row per robot)."""
    return array.reshape(-1, array.shape[-1])


@jit
def _softmax(indptr, logits, out):
    """out[i, e] = exp(logits[i, e]) / sum of exp(logits[i, e']) over the edges e' out of
    e's source, for rows of robots: LANES robots at a time, in blocks of whole vertices'
    edges (:func:`_softmax_lanes`).
    """
    work = _lanes.empty((_block_edges(indptr, logits.shape[1]),))
    for first in range(0, logits.shape[0], _lanes.LANES):
        start = 0
        while start < indptr.size - 1:
            stop = _block_stop(indptr, start, work.shape[0])
            edges = range(indptr[start], indptr[stop])
            _into_lanes(logits, first, edges.start, len(edges), work)
            _softmax_lanes(indptr, start, stop, work)
            _out_of_lanes(work, len(edges), first, edges.start, out)
            start = stop


@jit
def _softmax_lanes(indptr, start, stop, work):
    """The softmax of the logits of vertices start .. stop - 1 in ``work``, in place: a row
    per edge from vertex ``start``'s first, a robot a lane, so that each step over a
    vertex's edges is one SIMD operation (MUSEUM, 8 robots: 5.9 us as loops over each
    robot's edges, 4.0 us in lanes). Its loops are 512 bits wide where the processor
    allows (``_vmath.prefer_wide_vectors``).
    """
    _vmath.prefer_wide_vectors()
    vertex = _lanes.empty((1,))  # a vertex's largest logit, or its sum
    # Less each vertex's largest logit: exp never overflows.
    _each_vertex(indptr, start, stop, work, vertex, True)
    # One loop over all edges, apart from the per-vertex ones: it vectorises.
    exponents = work.reshape(-1)
    for k in range((indptr[stop] - indptr[start]) * _lanes.LANES):
        exponents[k] = _vmath.exp(exponents[k])
    _each_vertex(indptr, start, stop, work, vertex, False)


#: Edges a block of :func:`_softmax` holds (more where one vertex has more): 256 KiB.
_SOFTMAX_BLOCK_EDGES = 1 << 12


@inline_jit
def _block_edges(indptr, n_edges):
    """Rows of lanes for a block of whole vertices' edges: _SOFTMAX_BLOCK_EDGES, or the
    largest out-degree where it is more, or all edges where they are fewer.
    """
    largest_degree = 0
    for s in range(indptr.size - 1):
        largest_degree = max(largest_degree, indptr[s + 1] - indptr[s])
    return min(n_edges, max(_SOFTMAX_BLOCK_EDGES, largest_degree))


@inline_jit
def _block_stop(indptr, start, capacity):
    """The end of the block of vertices from ``start`` whose edges fit ``capacity`` rows
    (at least one vertex).
    """
    stop = start + 1
    while stop < indptr.size - 1 and indptr[stop + 1] - indptr[start] <= capacity:
        stop += 1
    return stop


@inline_jit
def _into_lanes(rows, first, start, count, lanes):
    """lanes[k, m] = rows[first + m, start + k] for k < count; lanes past the last row
    repeat it (so that every lane holds a real robot's numbers).
    """
    last = rows.shape[0] - 1
    for k in range(count):
        for m in range(_lanes.LANES):
            lanes[k, m] = rows[min(first + m, last), start + k]


@inline_jit
def _out_of_lanes(lanes, count, first, start, rows):
    """rows[first + m, start + k] = lanes[k, m] for k < count, for the rows there are."""
    for m in range(min(_lanes.LANES, rows.shape[0] - first)):
        for k in range(count):
            rows[first + m, start + k] = lanes[k, m]


@inline_jit
def _floored(softmax, scale, floor, out):
    """Set out = softmax (1 - d(s) floor) + floor, edge by edge (``scale``: one an edge)."""
    for e in range(softmax.shape[0]):
        for m in range(_lanes.LANES):
            out[e, m] = softmax[e, m] * scale[e] + floor


@jit
def _each_vertex(indptr, start, stop, work, vertex, largest):
    """For each vertex s in [start, stop), whose edges' rows of ``work`` begin at row 0
    with vertex ``start``'s: those rows less their largest (``largest``), or over their sum
    (times its reciprocal: one division a vertex, not one an edge, and within an ulp).
    """
    for s in range(start, stop):
        edges = range(indptr[s] - indptr[start], indptr[s + 1] - indptr[start])
        if len(edges) == 0:
            continue
        _lanes.copy(vertex, 0, work, edges.start)
        for e in range(edges.start + 1, edges.stop):
            if largest:
                _lanes.maximum(vertex, 0, work, e)
            else:
                _lanes.add(vertex, 0, work, e)
        if not largest:
            _lanes.reciprocal(vertex, 0, vertex, 0)
        for e in edges:
            if largest:
                _lanes.subtract(work, e, vertex, 0)
            else:
                _lanes.multiply(work, e, vertex, 0)


@jit
def _chain_rule(indptr, indices, probabilities, mu, h, out):
    """:func:`_chain_rule_lanes` for rows of robots: LANES robots at a time, in blocks of
    whole vertices' edges.
    """
    n = indptr.size - 1
    work = _lanes.empty((_block_edges(indptr, probabilities.shape[1]),))
    gradient = _lanes.empty(work.shape[:1])
    mu_lanes, h_lanes = _lanes.empty((n,)), _lanes.empty((n,))
    for first in range(0, probabilities.shape[0], _lanes.LANES):
        _into_lanes(mu, first, 0, n, mu_lanes)
        _into_lanes(h, first, 0, n, h_lanes)
        start = 0
        while start < n:
            stop = _block_stop(indptr, start, work.shape[0])
            edges = range(indptr[start], indptr[stop])
            _into_lanes(probabilities, first, edges.start, len(edges), work)
            _chain_rule_lanes(indptr, indices, start, stop, work, mu_lanes, h_lanes, gradient)
            _out_of_lanes(gradient, len(edges), first, edges.start, out)
            start = stop


@jit
def _chain_rule_lanes(indptr, indices, start, stop, probabilities, mu, h, out):
    """For edge e out of s, with G_e = mu(s) h(target of e):
    dJ/dtheta[e] = P(e) (G_e - sum_{e' out of s} P(e') G_e'),
    for the vertices start .. stop - 1, a robot a lane: ``probabilities`` and ``out`` a
    row per edge from vertex ``start``'s first, ``mu`` and ``h`` a row per vertex.
    """
    mean, zero = _lanes.empty((1,)), _lanes.full((1,), 0.0)
    for s in range(start, stop):
        edges = range(indptr[s] - indptr[start], indptr[s + 1] - indptr[start])
        _lanes.copy(mean, 0, zero, 0)
        for e in edges:
            _lanes.copy(out, e, mu, s)
            _lanes.multiply(out, e, h, indices[indptr[start] + e])
            _lanes.add_product(mean, 0, probabilities, e, out, e)
        for e in edges:
            _lanes.subtract(out, e, mean, 0)
            _lanes.multiply(out, e, probabilities, e)


def _require_graph(graph):
    """``graph``, or TypeError where it is not a :class:`fastcov.graph.Graph`."""
    if isinstance(graph, Graph):
        return graph
    kind = type(graph)
    hint = "fastcov.graph.load, grid and Graph.from_edges, from_adjacency, from_networkx build one"
    if isinstance(graph, str):
        hint = f"fastcov.graph.load(name) loads the bundled maps {', '.join(BUNDLED)}"
    raise TypeError(
        f"graph must be a fastcov.graph.Graph, got {kind.__module__}.{kind.__qualname__} ({hint})"
    )


def _check_floor(graph, floor):
    degree = max(graph.largest_out_degree, 1)
    # A float is checked first: the ABC's isinstance takes longer than the rest.
    real = type(floor) is float or _checks.real_number(floor)
    if not real or not 0.0 <= floor < 1.0 / degree:
        raise ValueError(
            f"floor must be a number in [0, 1/{degree}) for {graph.name}, whose busiest "
            f"vertex has {degree} out-edges; got {floor!r}"
        )
    return float(floor)


def _softmax_of(graph, logits):
    """The softmax of checked ``logits``, shape (n_edges,) or (N, n_edges)."""
    probabilities = np.empty_like(logits)
    _softmax(graph.indptr, _rows(logits), _rows(probabilities))
    return probabilities


def _with_floor(graph, probabilities, floor):
    """The softmax ``probabilities`` made floor + (1 - d(s) floor) softmax, in place."""
    if floor:
        probabilities *= _floor_scale(graph, floor)
        probabilities += floor
    return probabilities


def _floor_scale(graph, floor):
    """1 - d(s) floor for each edge, s its source."""
    return 1.0 - floor * graph.out_degrees[graph.sources]


def _check_logits(graph, logits, ndims=(1, 2)):
    """``logits`` as a float64 array of shape (n_edges,) or (N, n_edges), all finite."""
    logits = _logits_array(graph, logits, ndims)
    _require_finite(logits)
    return logits


def _logits_array(graph, logits, ndims=(1, 2)):
    """``logits`` as a float64 array of shape (n_edges,) or (N, n_edges), of as many
    dimensions as ``ndims`` allows.
    """
    logits = np.asarray(api._unmasked(logits, "logits"))
    # A copy where read-only as well: the compiled steps take writeable arrays, and a
    # read-only one would compile them again for its type (MUSEUM: 12 s).
    copy = not logits.flags.writeable
    logits = api._require_real(logits, "logits").astype(np.float64, copy=copy)
    if logits.ndim not in ndims or logits.shape[-1] != graph.n_edges:
        shapes = " or ".join(("(n_edges,)", "(N, n_edges)")[ndim - 1] for ndim in ndims)
        raise ValueError(
            f"logits must have shape {shapes} with n_edges = {graph.n_edges}, got {logits.shape}"
        )
    return logits


def _require_finite(logits):
    """Raise ValueError naming the first logit that is not finite, if one is."""
    if not _all_finite(_rows(logits)):
        bad = tuple(np.argwhere(~np.isfinite(logits))[0])
        position = ", ".join(str(int(k)) for k in bad)
        raise ValueError(f"logits[{position}] = {logits[bad]} is not finite")


@inline_jit
def _all_finite(rows):
    """Whether every entry of the 2-D ``rows`` is finite (compiled: NumPy's isfinite and
    all took 1 µs of a 30 µs step on MUSEUM).
    """
    for i in range(rows.shape[0]):
        # A count, not an early exit: this loop vectorises.
        finite = 0
        for j in range(rows.shape[1]):
            finite += abs(rows[i, j]) <= _LARGEST_FLOAT
        if finite != rows.shape[1]:
            return False
    return True


_LARGEST_FLOAT = np.finfo(np.float64).max
