"""Grounds other than vertex 0, for the robots that rarely visit it.

The solvers ground every robot's chain at vertex 0 (:mod:`fastcov._solvers`). For a robot
that rarely visits it, that loses its mu (the measure overflows) or the digits of its
gradient (the adjoint grows like the time it takes to reach vertex 0): the functions here
solve such a robot again from other grounds, as the docstring of :mod:`fastcov.patrol`
describes.
"""

import warnings

import numpy as np

from . import _patterns, _policy, _solvers, _trees

__all__ = [
    "best_grounded_gradient",
    "ground_faint_robots",
    "grounded_adjoint",
    "grounded_elsewhere",
    "reground",
]


def ground_faint_robots(graph, probabilities, mu):
    """Set the rows of ``mu`` whose share of vertex 0 is below _solvers.FAINTEST_GROUND (or not a
    number) by :func:`grounded_elsewhere`.
    """
    for robot in np.flatnonzero(~(mu[:, 0] >= _solvers.FAINTEST_GROUND)):
        mu[robot] = grounded_elsewhere(graph, probabilities, robot)


def grounded_elsewhere(graph, probabilities, robot, x=None):
    """The stationary distribution (n,) of robot ``robot`` (edge ``probabilities``, a row
    per robot) that visits vertex 0 less than _solvers.FAINTEST_GROUND of the time: solved with
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
        swapped, vertices, edges = _patterns.pattern(graph).swapped(root)
        x = _measure(swapped, row[edges])
        _solvers.normalise(x, mu)
        if mu[0, 0] >= _solvers.FAINTEST_GROUND:
            shares = np.empty(graph.n_vertices)
            shares[vertices] = mu[:, 0]
            return shares
    raise _too_extreme(robot, probabilities, "cannot be computed in float64")


def reground(graph, regrounded, mu, g, probabilities, softmax, grad):
    """Set the rows ``regrounded`` of ``grad`` (dJ/dtheta before a floor's scale) again,
    from adjoints grounded elsewhere than vertex 0, robot by robot
    (:func:`best_grounded_gradient`). ``g`` is dJ/dmu; the other arrays are as
    :class:`fastcov.patrol.PatrolState`'s.
    """
    for robot in regrounded:
        grad[robot] = best_grounded_gradient(graph, robot, mu, g, probabilities, softmax)


def best_grounded_gradient(graph, robot, mu, g, probabilities, softmax):
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
        h, bound = grounded_adjoint(graph, tried[-1], robot, mu, g, probabilities)
        candidate = _policy.softmax_chain_rule(graph, softmax[robot], mu[robot] / _BOUND_SCALE, h)
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


def grounded_adjoint(graph, root, robot, mu, g, probabilities):
    """(h, bound), each (n,) and each times _BOUND_SCALE, of robot ``robot``: its adjoint
    grounded at ``root`` (h[root] = 0), solved on the graph with ``root`` and vertex 0
    swapped, by that graph's plan or multifrontal LU, and the solution of the same system
    for |g| + |mu . g| (which is >= 0, so the solve has no cancellation), which bounds how
    far rounding moves h (:func:`_ground_errors`).
    """
    swapped, vertices, edges = _patterns.pattern(graph).swapped(root)
    pattern = _patterns.pattern(swapped)
    moves = probabilities[robot, edges][np.newaxis]
    mu_row = mu[robot, vertices][np.newaxis]
    g_row = g[robot, vertices][np.newaxis] * _BOUND_SCALE  # h and the bound are linear in g
    h, bound = np.empty((2, 1, graph.n_vertices))
    if pattern.plan is not None:
        _solvers.planned_adjoints(*pattern.planned_arrays, moves, mu_row, g_row, h, bound)
    else:
        factors = pattern.borrow()
        try:
            _solvers.frontal_factor(swapped, moves[0], factors)
            for out, right_side in ((h, _solvers.centred), (bound, _solvers.magnitudes)):
                _solvers.frontal_adjoint(pattern, factors, right_side, g_row, mu_row, out[0])
        finally:
            pattern.give_back([factors])
    # The swap is its own inverse: vertex v of the swapped graph is vertices[v].
    return h[0, vertices], bound[0, vertices]


_EPSILON = np.finfo(np.float64).eps


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
    pattern = _patterns.pattern(graph)
    if pattern.plan is not None:
        x = np.empty((1, pattern.n))
        _solvers.planned_measures(*pattern.planned_arrays, probabilities[np.newaxis], x)
        return x.T
    factors = pattern.borrow()
    try:
        return _solvers.frontal_measure(graph, probabilities, factors)
    finally:
        pattern.give_back([factors])


#: Grounds :func:`best_grounded_gradient` tries for one robot, at most.
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


def _ground_errors(graph, probabilities, mu, bound):
    """A bound on the error of each entry of one robot's dJ/dtheta (n_edges,) that
    :func:`_policy.softmax_chain_rule` takes from an adjoint h whose rounding moved h by at most
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


#: Grounds tried in turn for such a robot: each at least 2^1000 / n times busier than
#: the last, and no share of a float64 is 2^-1075 or less.
_GROUNDS_TRIED = 3


def _too_extreme(robot, probabilities, what):
    """The error for a robot whose chain float64 cannot resolve."""
    return FloatingPointError(
        f"the stationary distribution of robot {robot} {what}, as its transition "
        f"probabilities span too many orders of magnitude (the smallest is "
        f"{probabilities[robot].min():.3g})"
    )
