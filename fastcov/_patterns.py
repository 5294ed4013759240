"""What every policy on a graph shares: the pattern of A = I - P without vertex 0.

A robot's chain changes with its policy, but A = (I - P) without vertex 0 keeps the
graph's pattern. :class:`Pattern` analyses it once per graph (an elimination plan where
the graph is small or tree-like enough, a multifrontal analysis elsewhere), keeps the
factor arrays of past steps for the next ones, and makes the graphs with vertex 0 swapped
for another ground (:mod:`fastcov._grounds`).
"""

import threading
import weakref

import numpy as np

from . import _elimination, _multifrontal

__all__ = ["Pattern", "pattern"]


def pattern(graph):
    """The graph's :class:`Pattern`, made on first use (graphs are immutable)."""
    pattern = _PATTERNS.get(graph)
    if pattern is None:
        pattern = _PATTERNS[graph] = Pattern(graph)
    return pattern


class Pattern:
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

#: Each graph's :class:`Pattern`, made on first use, freed with the graph.
_PATTERNS = weakref.WeakKeyDictionary()


#: Swapped graphs (:meth:`Pattern.swapped`) kept per graph: each with its plan or
#: analysis, and on large graphs the factor arrays of its last step.
_SWAPPED_GRAPHS = 8


def _swapped(graph, root):
    """:meth:`Pattern.swapped`, made anew."""
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
