"""The robots' softmax policies and the chain rule through them, compiled.

Robot i takes edge e out of vertex s with probability P_i(e) = exp(theta_i[e]) / sum over
s's out-edges e' of exp(theta_i[e']). The functions here compute P from the logits and
dJ/dtheta from dJ/dP(s, s') = mu(s) h(s') (the softmax chain rule) for
:mod:`fastcov.patrol` and its solvers, LANES robots at a time side by side in SIMD lanes
(:mod:`fastcov._lanes`).
"""

import numpy as np

from . import _lanes, _vmath
from ._jit import inline_jit, jit

__all__ = [
    "all_finite",
    "chain_rule",
    "chain_rule_lanes",
    "floored",
    "into_lanes",
    "out_of_lanes",
    "rows",
    "softmax",
    "softmax_chain_rule",
    "softmax_lanes",
]


def rows(array):
    """A 1-D or 2-D array as a 2-D view (one row per robot)."""
    return array.reshape(-1, array.shape[-1])


@jit
def softmax(indptr, logits, out):
    """out[i, e] = exp(logits[i, e]) / sum of exp(logits[i, e']) over the edges e' out of
    e's source, for rows of robots: LANES robots at a time, in blocks of whole vertices'
    edges (:func:`softmax_lanes`).
    """
    work = _lanes.empty((_block_edges(indptr, logits.shape[1]),))
    for first in range(0, logits.shape[0], _lanes.LANES):
        start = 0
        while start < indptr.size - 1:
            stop = _block_stop(indptr, start, work.shape[0])
            edges = range(indptr[start], indptr[stop])
            into_lanes(logits, first, edges.start, len(edges), work)
            softmax_lanes(indptr, range(start, stop), work)
            out_of_lanes(work, len(edges), first, edges.start, out)
            start = stop


@jit
def softmax_lanes(indptr, vertices, work):
    """The softmax of the logits of the ``vertices`` (a range) in ``work``, in place: a
    row per edge from the first vertex's first, a robot a lane, so that each step over a
    vertex's edges is one SIMD operation (MUSEUM, 8 robots: 5.9 us as loops over each
    robot's edges, 4.0 us in lanes). Its loops are 512 bits wide where the processor
    allows (``_vmath.prefer_wide_vectors``).

    The vertices come as a range, not as two ints: a call with the int 0 would compile
    a version of its own for that constant (Numba types it as a literal).
    """
    _vmath.prefer_wide_vectors()
    vertex = _lanes.empty(_lanes.ONE_ROW)  # a vertex's largest logit, or its sum
    # Less each vertex's largest logit: exp never overflows.
    _each_vertex(indptr, vertices, work, vertex, True)
    # One loop over all edges, apart from the per-vertex ones: it vectorises.
    exponents = work.reshape(-1)
    for k in range((indptr[vertices.stop] - indptr[vertices.start]) * _lanes.LANES):
        exponents[k] = _vmath.exp(exponents[k])
    _each_vertex(indptr, vertices, work, vertex, False)


@inline_jit
def floored(softmax, scale, floor, out):
    """Set out = softmax (1 - d(s) floor) + floor, edge by edge (``scale``: one an edge)."""
    for e in range(softmax.shape[0]):
        for m in range(_lanes.LANES):
            out[e, m] = softmax[e, m] * scale[e] + floor


@jit
def chain_rule(indptr, indices, probabilities, mu, h, out):
    """:func:`chain_rule_lanes` for rows of robots: LANES robots at a time, in blocks of
    whole vertices' edges.
    """
    n = indptr.size - 1
    work = _lanes.empty((_block_edges(indptr, probabilities.shape[1]),))
    gradient = _lanes.empty(work.shape[:1])
    mu_lanes, h_lanes = _lanes.empty((n,)), _lanes.empty((n,))
    for first in range(0, probabilities.shape[0], _lanes.LANES):
        into_lanes(mu, first, 0, n, mu_lanes)
        into_lanes(h, first, 0, n, h_lanes)
        start = 0
        while start < n:
            stop = _block_stop(indptr, start, work.shape[0])
            edges = range(indptr[start], indptr[stop])
            into_lanes(probabilities, first, edges.start, len(edges), work)
            chain_rule_lanes(indptr, indices, range(start, stop), work, mu_lanes, h_lanes, gradient)
            out_of_lanes(gradient, len(edges), first, edges.start, out)
            start = stop


@jit
def chain_rule_lanes(indptr, indices, vertices, probabilities, mu, h, out):
    """For edge e out of s, with G_e = mu(s) h(target of e):
    dJ/dtheta[e] = P(e) (G_e - sum_{e' out of s} P(e') G_e'),
    for the ``vertices`` (a range, as for :func:`softmax_lanes`), a robot a lane:
    ``probabilities`` and ``out`` a row per edge from the first vertex's first, ``mu`` and
    ``h`` a row per vertex.
    """
    mean, zero = _lanes.empty(_lanes.ONE_ROW), _lanes.full(_lanes.ONE_ROW, 0.0)
    first = indptr[vertices.start]
    for s in vertices:
        edges = range(indptr[s] - first, indptr[s + 1] - first)
        _lanes.copy(mean, 0, zero, 0)
        for e in edges:
            _lanes.copy(out, e, mu, s)
            _lanes.multiply(out, e, h, indices[first + e])
            _lanes.add_product(mean, 0, probabilities, e, out, e)
        for e in edges:
            _lanes.subtract(out, e, mean, 0)
            _lanes.multiply(out, e, probabilities, e)


def softmax_chain_rule(graph, probabilities, mu, h):
    """dJ/dtheta from dJ/dP(s, s') = mu(s) h(s'): the softmax chain rule (one robot's
    arrays, or every robot's stacked along a first axis).

    Shared with the dense baseline of ``bench/patrol.py``, which finds h another way.
    """
    grad = np.empty_like(probabilities)
    chain_rule(graph.indptr, graph.indices, rows(probabilities), rows(mu), rows(h), rows(grad))
    return grad


@inline_jit
def into_lanes(rows, first, start, count, lanes):
    """lanes[k, m] = rows[first + m, start + k] for k < count; lanes past the last row
    repeat it (so that every lane holds a real robot's numbers).
    """
    last = rows.shape[0] - 1
    for k in range(count):
        for m in range(_lanes.LANES):
            lanes[k, m] = rows[min(first + m, last), start + k]


@inline_jit
def out_of_lanes(lanes, count, first, start, rows):
    """rows[first + m, start + k] = lanes[k, m] for k < count, for the rows there are."""
    for m in range(min(_lanes.LANES, rows.shape[0] - first)):
        for k in range(count):
            rows[first + m, start + k] = lanes[k, m]


@inline_jit
def all_finite(rows):
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


#: Edges a block of :func:`softmax` holds (more where one vertex has more): 256 KiB.
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


@jit
def _each_vertex(indptr, vertices, work, vertex, largest):
    """For each vertex s of the range ``vertices``, whose edges' rows of ``work`` begin at
    row 0 with the first vertex's: those rows less their largest (``largest``), or over
    their sum (times its reciprocal: one division a vertex, not one an edge, and within an
    ulp).
    """
    first = indptr[vertices.start]
    for s in vertices:
        edges = range(indptr[s] - first, indptr[s + 1] - first)
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


_LARGEST_FLOAT = np.finfo(np.float64).max
