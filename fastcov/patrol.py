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
  (:func:`_grounds.best_grounded_gradient`).
- dJ/dmu = +inf at a vertex no robot's share reaches in float64 (fastcov's value at
  mu(s) = 0; the true shares are positive): the step takes that share as the least
  float64, for a finite derivative and a gradient without NaN.

This module holds the public functions, the team's step and training; the parts live in
private modules: :mod:`fastcov._policy` (the softmax and its chain rule, compiled),
:mod:`fastcov._patterns` (each graph's analysis, made once), :mod:`fastcov._solvers`
(stationary distributions and adjoints by plan or multifrontal LU, and the planned step
in one compiled call) and :mod:`fastcov._grounds` (the other grounds).
"""

import dataclasses
import math
import weakref
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import _checks, _grounds, _patterns, _policy, _solvers, api, cpu
from ._jit import jit
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
    rows = _policy.rows(logits)
    pattern = _patterns.pattern(graph) if graph.n_vertices > 1 else None
    if pattern is not None and pattern.plan is not None:
        # One compiled call, the gradient step's first half (MUSEUM, 8 robots: 45-69 us
        # as separate calls, most of it Python, more than the whole step's 30).
        mu, probabilities = np.empty((len(rows), graph.n_vertices)), np.empty_like(rows)
        scale = _planned_scale(graph, floor)
        if _solvers.planned_mu(*pattern.planned_arrays, rows, floor, scale, mu, probabilities) >= 0:
            _grounds.ground_faint_robots(graph, probabilities, mu)
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
        an integer, a ``seed`` NumPy cannot use, a ``callback`` that is not callable.

    Notes
    -----
    An exception raised once the first step has been computed (a later step's
    FloatingPointError where training drove the probabilities too far apart, a warning
    turned into an error, the callback's own, a KeyboardInterrupt) keeps the training
    done so far: its ``result`` attribute is the :class:`TrainResult` up to the last step
    computed (the logits of that step, not those of an update after it), and on Python
    3.11 and later a note on the exception says so.
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
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
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
    # The last state computed, as (step, state) in one assignment; a row of theta updated
    # since then has its logits of that state in ``before`` and has one more count in
    # ``updates`` than :func:`_updates_before` that step (should a later step fail).
    kept = None
    before = np.empty_like(theta)
    try:
        for step in range(iterations + 1):
            state = _team_state(graph, theta, 0.0, floor)
            history.append(state.value)
            kept = step, state
            if callback is not None and callback(step, state):
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
            if optimizer == "plain":
                # In this order, wherever an interrupt lands, a row counted as updated has
                # its logits in ``before``. (_adam does all three in compiled code.)
                before[robots] = theta[robots]
                updates[robots] += 1.0
                theta[robots] += learning_rate * state.grad[robots]
            else:
                _adam(
                    theta[robots],
                    before[robots],
                    first_moment[robots],
                    second_moment[robots],
                    updates[robots],
                    state.grad[robots],
                    learning_rate,
                )
    except (Exception, KeyboardInterrupt) as error:
        if kept is not None:
            kept_step, kept_state = kept
            logits = theta.copy()
            updated = updates > _updates_before(kept_step, n_robots, round_length)
            logits[updated] = before[updated]  # back to the logits of the state kept
            values = np.asarray(history[: kept_step + 1])
            _keep_progress(error, step, TrainResult(logits, values, kept_state))
        raise
    return TrainResult(theta, np.asarray(history), kept[1])


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


def _team_state(graph, logits, eps, floor):
    """:func:`value_and_grad` on a graph already known to be strongly connected, with a
    floor already checked.
    """
    logits = _logits_array(graph, logits, ndims=(2,))
    eps = max(api._check_eps(eps), _LEAST_SHARE)
    pattern = _patterns.pattern(graph) if graph.n_vertices > 1 else None
    if pattern is not None and pattern.plan is not None:
        return _planned_state(graph, pattern, logits, eps, floor)
    _require_finite(logits)
    softmax = _softmax_of(graph, logits)
    probabilities = _with_floor(graph, softmax.copy() if floor else softmax, floor)
    team = _Team(graph, probabilities)
    value, g = api.value_and_grad(team.mu, eps, backend="cpu")
    grad = team.logit_gradient(g, softmax)
    flags = _solvers.grounds_losing_digits(team.mu, team.h, grad)
    flags[list(team.faint)] = True  # their factors were never used
    regrounded = np.flatnonzero(flags)
    if regrounded.size:
        _grounds.reground(graph, regrounded, team.mu, g, probabilities, softmax, grad)
    if floor:
        grad *= _floor_scale(graph, floor)  # dP/dsoftmax
    return PatrolState(value, grad, team.mu, probabilities)


def _planned_state(graph, pattern, logits, eps, floor):
    """:func:`_team_state` on a graph with an elimination plan (its ``pattern``), for
    logits not yet known to be finite: the whole step in one compiled call (on MUSEUM the
    separate calls' overhead was most of the step).
    """
    group, block, _ = cpu.partition(len(logits))
    partials, robot, grad, mu, probabilities = _solvers.planned_step(
        *pattern.planned_arrays, logits, floor, _planned_scale(graph, floor), eps, group, block
    )
    if robot == _solvers.LOGITS_NOT_FINITE:
        _require_finite(logits)
    if robot >= 0:
        return _faint_ground_state(graph, logits, mu, probabilities, eps, floor)
    if robot == _solvers.REGROUND:
        # Rare enough to take the separate calls: the same g as the step's (its blocks).
        _, g = api.value_and_grad(mu, eps, backend="cpu")
        softmax = _softmax_of(graph, logits) if floor else probabilities
        robots = np.flatnonzero(np.isnan(grad[:, 0]))
        unscaled = np.empty_like(grad)
        _grounds.reground(graph, robots, mu, g, probabilities, softmax, unscaled)
        grad[robots] = unscaled[robots] * (_floor_scale(graph, floor) if floor else 1.0)
    return PatrolState(math.fsum(partials.tolist()), grad, mu, probabilities)


def _faint_ground_state(graph, logits, mu, probabilities, eps, floor):
    """:func:`_planned_state` where some robot visits vertex 0 too rarely for its mu
    (``mu`` and ``probabilities`` are the step's, the rows of those robots not usable):
    their mu grounded elsewhere, then every robot's dJ/dtheta from other grounds than
    vertex 0 (:func:`_grounds.reground`; rare enough to take the separate calls).
    """
    _grounds.ground_faint_robots(graph, probabilities, mu)
    value, g = api.value_and_grad(mu, eps, backend="cpu")
    softmax = _softmax_of(graph, logits) if floor else probabilities
    grad = np.empty_like(probabilities)
    _grounds.reground(graph, np.arange(len(mu)), mu, g, probabilities, softmax, grad)
    if floor:
        grad *= _floor_scale(graph, floor)
    return PatrolState(value, grad, mu, probabilities)


def _planned_scale(graph, floor):
    """The planned compiled calls' ``scale``: :func:`_floor_scale`, or no entries where
    there is no floor (the plain softmax, which they then leave unscaled).
    """
    return _floor_scale(graph, floor) if floor else _NO_SCALE


_NO_SCALE = np.ones(0)


#: mu(s) = 0 comes about here only by underflow (every robot's chain is irreducible, so
#: every share is positive). The step's dJ/dmu takes it as the least float64 (eps's
#: clamp: no other share changes), so that a vertex no robot's share reaches has a
#: finite derivative rather than fastcov's +inf (and dJ/dtheta no NaN from 0 * inf).
#: That vertex moves dJ/dtheta by no more than its share: the chain rule weighs every
#: move into s by mu(s') P(s', s) <= mu(s).
_LEAST_SHARE = float(np.nextafter(0.0, 1.0))


def _keep_progress(error, step, result):
    """Give ``error``, raised in :func:`train` at ``step``, the training's ``result`` so far."""
    error.result = result
    if hasattr(error, "add_note"):  # Python 3.11
        error.add_note(
            f"fastcov.patrol.train stopped at step {step}; the exception's .result holds "
            f"the training up to step {len(result.history) - 1}"
        )


def _updates_before(step, n_robots, round_length):
    """How many updates each robot has had before ``step`` of :func:`train`: one a step, or
    (``round_length`` = N, one robot a step in turn) one a round.
    """
    if round_length == 1:
        return np.full(n_robots, float(step))
    return (step - np.arange(n_robots) + n_robots - 1) // n_robots  # robot r at r, r + N, ..


@jit
def _adam(theta, before, first_moment, second_moment, updates, grad, learning_rate):
    """One Adam ascent step, in place, for the robots (rows) given, with ``theta`` as it
    was left in ``before``; ``updates`` counts each robot's steps (its bias correction).
    The operations and their order are the textbook's, so the result is that of its
    array expressions bit for bit (each bias correction from the scalar power: NumPy's
    array power may differ in the last bit).
    Compiled: as some twenty small array operations it took about 15 us, as long as the
    gradient step itself on MUSEUM.
    """
    for robot in range(theta.shape[0]):
        updates[robot] += 1.0
        first_correction = 1.0 - 0.9 ** updates[robot]
        second_correction = 1.0 - 0.999 ** updates[robot]
        for e in range(theta.shape[1]):
            before[robot, e] = theta[robot, e]
            first_moment[robot, e] = first_moment[robot, e] * 0.9 + 0.1 * grad[robot, e]
            second_moment[robot, e] = second_moment[robot, e] * 0.999 + 0.001 * grad[robot, e] ** 2
            m_hat = first_moment[robot, e] / first_correction
            v_hat = second_moment[robot, e] / second_correction
            theta[robot, e] += learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)


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
        #: The robots that visit vertex 0 too rarely (:func:`_grounds.grounded_elsewhere`), and
        #: their measures there. Their mu is solved with another ground; their factors
        #: are None, and their dJ/dtheta is for the caller to find (:func:`_grounds.reground`).
        self.faint = {}
        if graph.n_vertices > 1:
            self.borrowed = []
            weakref.finalize(self, _patterns.pattern(graph).give_back, self.borrowed)
            self.factors = _in_threads(self._factor, range(len(probabilities)))
        for robot in sorted(self.faint):
            self.mu[robot] = _grounds.grounded_elsewhere(
                graph, probabilities, robot, self.faint[robot]
            )

    def logit_gradient(self, g, softmax):
        """dJ/dtheta, shape (N, n_edges), from g = dJ/dmu, shape (N, n), for P =
        ``softmax`` (N, n_edges) of theta: dJ/dsoftmax when a floor scales it. The
        adjoint stays as ``h`` (N, n). The rows of the robots in ``faint`` are not
        dJ/dtheta (their h is 0).
        """
        self.h = np.zeros_like(self.mu)
        robots = [item for item in enumerate(self.factors) if item[1] is not None]
        _in_threads(lambda item: self._adjoint(*item, g, self.h), robots)
        return _policy.softmax_chain_rule(self.graph, softmax, self.mu, self.h)

    def _factor(self, robot):
        """Factor robot ``robot``'s A into an array borrowed from the pattern and set its
        mu; return the factors, or None for a robot that visits vertex 0 too rarely (then
        its measure goes into ``faint``).
        """
        factors = _patterns.pattern(self.graph).borrow()
        self.borrowed.append(factors)
        x = _solvers.frontal_measure(self.graph, self.probabilities[robot], factors)
        mu = self.mu[robot : robot + 1].T
        _solvers.normalise(x, mu)
        if not mu[0, 0] >= _solvers.FAINTEST_GROUND:
            self.faint[robot] = x
            return None
        return factors

    def _adjoint(self, robot, factors, g, h):
        rows = slice(robot, robot + 1)
        _solvers.frontal_adjoint(
            _patterns.pattern(self.graph),
            factors,
            _solvers.centred,
            g[rows],
            self.mu[rows],
            h[robot],
        )


def _in_threads(function, items):
    """[function(item) for item in items], on up to numba.get_num_threads() threads."""
    threads = min(numba.get_num_threads(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


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
    _policy.softmax(graph.indptr, _policy.rows(logits), _policy.rows(probabilities))
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
    """``logits`` as a C-contiguous, writeable float64 array of shape (n_edges,) or
    (N, n_edges), of as many dimensions as ``ndims`` allows.
    """
    logits = np.asarray(api._unmasked(logits, "logits"))
    api._require_real(logits, "logits")
    if logits.ndim not in ndims or logits.shape[-1] != graph.n_edges:
        shapes = " or ".join(("(n_edges,)", "(N, n_edges)")[ndim - 1] for ndim in ndims)
        raise ValueError(
            f"logits must have shape {shapes} with n_edges = {graph.n_edges}, got {logits.shape}"
        )
    # A copy in any other layout: the compiled steps take C-contiguous, writeable float64
    # arrays, and a transposed, strided or read-only one would compile them again for its
    # type (MUSEUM: 9 s in an empty cache). The logits are few: the copy costs little.
    flags = logits.flags
    if logits.dtype != np.float64 or not (flags.c_contiguous and flags.writeable):
        logits = np.array(logits, dtype=np.float64, order="C")
    return logits


def _require_finite(logits):
    """Raise ValueError naming the first logit that is not finite, if one is."""
    if not _policy.all_finite(_policy.rows(logits)):
        bad = tuple(np.argwhere(~np.isfinite(logits))[0])
        position = ", ".join(str(int(k)) for k in bad)
        raise ValueError(f"logits[{position}] = {logits[bad]} is not finite")
