"""Graphs for patrolling: vertices, directed edges in CSR form, and the paper's maps.

A :class:`Graph` stores its directed edges sorted by source vertex as CSR arrays
(``indptr``, ``indices``): the out-edges of vertex v are ``indices[indptr[v]:indptr[v+1]]``,
and edge e runs from ``sources[e]`` to ``indices[e]``. An undirected edge is two directed
ones. Vertices are numbered 0 .. n - 1; ``labels`` keeps the caller's names for messages
and plots. Optional self-loops (``stay=True``) let a robot stay where it is.

The three maps of EM-Patroller (Guo et al., IEEE RA-L 2023) ship with the package:
``load("house")`` (9 vertices), ``load("office")`` (60) and ``load("museum")`` (70), each
with the start vertex the paper uses.
"""

import dataclasses
import functools
import json
import numbers
from importlib import resources

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from . import _checks

__all__ = ["Graph", "load", "grid", "BUNDLED"]

#: Names accepted by :func:`load`.
BUNDLED = ("house", "office", "museum")


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """A directed graph in CSR form (see the module docstring).

    Attributes
    ----------
    indptr : ndarray of int64, shape (n + 1,)
    indices : ndarray of int64, shape (n_edges,)
        Targets of the edges, sorted by source and then by target.
    labels : ndarray, shape (n,)
        The caller's vertex names (0 .. n - 1 when none were given).
    start : int or None
        Index of the start vertex, if the map has one.
    name : str
    positions : ndarray of float64, shape (n, 2), or None
        Where to draw the vertices, when the graph has a natural geometry (grids do).

    The arrays are the graph's own read-only copies, so what is derived from them (the
    edge sources, the connectivity check, the patrol solver's sparsity pattern) is
    computed once per graph; :func:`dataclasses.replace` makes a new graph.

    Built directly (rather than by :meth:`from_edges` and the others), the arrays must
    already be in this form, and are checked: indptr starts at 0, never decreases and ends
    at n_edges; indices are integers in 0 .. n - 1, ascending and distinct within each
    vertex's edges; labels has n entries; positions is finite, (n, 2); start is a vertex
    index or None. Anything else raises ValueError or TypeError naming the first fault
    (the compiled solvers do not check indices).
    """

    indptr: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    start: int | None = None
    name: str = "graph"
    positions: np.ndarray | None = None

    def __post_init__(self):
        indptr, indices = _csr_arrays(self.indptr, self.indices)
        n = len(indptr) - 1
        labels = _labels_array(self.labels, n)
        positions = None if self.positions is None else _positions_array(self.positions, n)
        start = self.start
        if start is not None:
            start = _checks.integer(start, "start")
            if not 0 <= start < n:
                raise ValueError(f"start vertex {start} is outside 0 .. {n - 1}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, not {type(self.name).__name__}")
        for field, value in (
            ("indptr", indptr),
            ("indices", indices),
            ("labels", labels),
            ("positions", positions),
            ("start", start),
        ):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, field, value)

    @classmethod
    def from_edges(
        cls,
        edges,
        n_vertices=None,
        *,
        directed=False,
        stay=False,
        labels=None,
        start=None,
        name="graph",
    ):
        """Build a graph from an edge list.

        Parameters
        ----------
        edges : array_like of int, shape (n_edges, 2)
            Pairs (u, v) of vertex indices 0 .. n - 1 (or of ``labels`` entries when given).
            Duplicates are merged; an undirected graph gets both directions.
        n_vertices : int, optional
            Number of vertices (default: one more than the largest index, or len(labels)).
        directed : bool
            Whether (u, v) is one-way.
        stay : bool
            Add a self-loop at every vertex (a robot may stay put).
        labels : sequence, optional
            Vertex names; ``edges`` and ``start`` then use these names.
        start : int or label, optional
            The start vertex.
        name : str

        Raises
        ------
        ValueError
            An edge with a vertex outside the graph or not among ``labels``; an edge array
            not of shape (n_edges, 2), or with indices that are not whole numbers; labels
            that repeat; a negative ``n_vertices``; an unknown ``start``.
        TypeError
            Edges, ``n_vertices`` or ``start`` that are not numbers where indices are due;
            labels that cannot be dictionary keys (lists, rows of an array: pass tuples).
        """
        if labels is not None:
            labels = _object_array(labels)
            position = _label_positions(labels)
            n_vertices = len(labels)
            edges = [
                [_position(position, u, "edges"), _position(position, v, "edges")]
                for u, v in _pairs(edges)
            ]
            start = None if start is None else _position(position, start, "start")
        edges = _edge_array(edges)
        if n_vertices is None:
            n_vertices = int(edges.max()) + 1 if edges.size else 0
        n_vertices = _checks.integer(n_vertices, "n_vertices", minimum=0)
        bad = np.flatnonzero((edges < 0).any(axis=1) | (edges >= n_vertices).any(axis=1))
        if bad.size:
            raise ValueError(
                f"edge {bad[0]} = {tuple(edges[bad[0]].tolist())} has a vertex outside "
                f"0 .. {n_vertices - 1}"
            )
        if not directed:
            edges = np.concatenate([edges, edges[:, ::-1]])
        if stay:
            loops = np.arange(n_vertices, dtype=np.int64)
            edges = np.concatenate([edges, np.stack([loops, loops], axis=1)])
        adjacency = scipy.sparse.coo_array(
            (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)
        ).tocsr()
        adjacency.sum_duplicates()
        adjacency.sort_indices()
        return cls(
            adjacency.indptr.astype(np.int64),
            adjacency.indices.astype(np.int64),
            np.arange(n_vertices) if labels is None else labels,
            start,
            name,
        )

    @classmethod
    def from_adjacency(cls, adjacency, *, stay=False, labels=None, start=None, name="graph"):
        """Build a directed graph from a square (dense or SciPy sparse) adjacency matrix:
        an edge u -> v wherever ``adjacency[u, v]`` is non-zero. ``labels`` (one a row)
        name the vertices, and ``start`` is then a label.

        Raises
        ------
        ValueError
            A matrix that is not 2-D and square or holds a NaN or an infinity; labels of
            the wrong length or that repeat; an unknown ``start``.
        TypeError
            A matrix that does not hold numbers (bool, integer, float or complex); labels
            that cannot be dictionary keys (lists, rows of an array: pass tuples).
        """
        matrix = _square_matrix(adjacency)
        n = matrix.shape[0]
        if not np.isfinite(matrix.data).all():
            k = np.flatnonzero(~np.isfinite(matrix.data))[0]
            raise ValueError(
                f"adjacency[{matrix.row[k]}, {matrix.col[k]}] = {matrix.data[k]} is not finite"
            )
        if labels is not None:
            labels = _object_array(labels)
            if len(labels) != n:
                raise ValueError(f"labels has {len(labels)} entries for {n} vertices")
            position = _label_positions(labels)
            if start is not None:
                start = _position(position, start, "start")
        keep = matrix.data != 0
        edges = np.stack([matrix.row[keep], matrix.col[keep]], axis=1)
        graph = cls.from_edges(edges, n, directed=True, stay=stay, start=start, name=name)
        return graph if labels is None else dataclasses.replace(graph, labels=labels)

    @classmethod
    def from_networkx(cls, graph, *, stay=False, start=None, name=None):
        """Build from a networkx graph (its nodes become the labels).

        A Graph or DiGraph; a MultiGraph's or MultiDiGraph's parallel edges merge into one.

        Raises
        ------
        TypeError
            ``graph`` is not a networkx graph.
        ValueError
            As for :meth:`from_edges`.
        """
        if not all(hasattr(graph, name) for name in ("nodes", "edges", "is_directed")):
            raise TypeError(f"graph must be a networkx graph, not {type(graph).__name__}")
        nodes = list(graph.nodes)
        return cls.from_edges(
            list(graph.edges()),  # (u, v) pairs, without a multigraph's edge keys
            directed=graph.is_directed(),
            stay=stay,
            labels=nodes,
            start=start,
            name=name or str(graph.name or "graph"),
        )

    def __repr__(self):
        # The arrays themselves would fill a screen; their sizes say which graph this is.
        return (
            f"Graph(name={self.name!r}, n_vertices={self.n_vertices}, "
            f"n_edges={self.n_edges}, start={self.start!r})"
        )

    @property
    def n_vertices(self):
        """Number of vertices n."""
        return len(self.indptr) - 1

    @property
    def n_edges(self):
        """Number of directed edges (the policy has one logit per edge)."""
        return len(self.indices)

    @functools.cached_property
    def sources(self):
        """Source vertex of every edge, shape (n_edges,), read-only."""
        sources = np.repeat(np.arange(self.n_vertices), np.diff(self.indptr))
        sources.setflags(write=False)
        return sources

    @functools.cached_property
    def out_degrees(self):
        """Number of out-edges of every vertex, shape (n,), read-only."""
        degrees = np.diff(self.indptr)
        degrees.setflags(write=False)
        return degrees

    @functools.cached_property
    def largest_out_degree(self):
        """The most out-edges of any vertex (0 for a graph without vertices)."""
        return int(self.out_degrees.max(initial=0))

    def label(self, vertex):
        """The caller's name of vertex index ``vertex`` (a Python object, not a NumPy scalar).

        Raises TypeError for an index that is not an integer, IndexError for one outside
        0 .. n - 1 (-1 is refused, not taken as the last vertex).
        """
        vertex = _checks.integer(vertex, "vertex")
        if not 0 <= vertex < self.n_vertices:
            raise IndexError(
                f"{self.name} has no vertex {vertex}: indices are 0 .. {self.n_vertices - 1}"
            )
        label = self.labels[vertex]
        return label.item() if isinstance(label, np.generic) else label

    def adjacency(self):
        """The 0/1 adjacency matrix as a SciPy CSR array."""
        return scipy.sparse.csr_array(
            (np.ones(self.n_edges), self.indices, self.indptr),
            shape=(self.n_vertices, self.n_vertices),
        )

    def require_out_edges(self):
        """Raise ValueError if the graph is empty or a vertex has no outgoing edge."""
        if self.n_vertices == 0:
            raise ValueError(f"{self.name} has no vertices")
        if self._first_stuck is not None:
            raise ValueError(
                f"{self.name}: vertex {self.label(self._first_stuck)!r} has no outgoing "
                "edge, so a robot there cannot move (add edges, or stay=True)"
            )

    def require_strongly_connected(self):
        """Raise ValueError unless every vertex can reach every other one.

        Only then does every policy with positive edge probabilities have a unique
        stationary distribution. The message names a component that cannot be left (or
        entered) and the number of components.
        """
        self.require_out_edges()
        count, component = self._strong_components
        if count > 1:
            sizes = np.bincount(component)
            smallest = np.flatnonzero(component == np.argmin(sizes))
            shown = ", ".join(repr(self.label(v)) for v in smallest[:10])
            more = f" and {smallest.size - 10} more" if smallest.size > 10 else ""
            raise ValueError(
                f"{self.name} is not strongly connected ({count} strongly connected "
                f"components), so a patrol policy has no unique stationary distribution; "
                f"one component: vertices {shown}{more}"
            )

    @functools.cached_property
    def _first_stuck(self):
        """The first vertex without out-edges, or None."""
        stuck = np.flatnonzero(self.out_degrees == 0)
        return int(stuck[0]) if stuck.size else None

    @functools.cached_property
    def _strong_components(self):
        """(count, component of each vertex) of the strongly connected components."""
        return scipy.sparse.csgraph.connected_components(
            self.adjacency(), directed=True, connection="strong"
        )


def load(name):
    """One of the maps of EM-Patroller: ``"house"``, ``"office"`` or ``"museum"``.

    The edges are undirected, as in the paper's code; vertex labels are the paper's
    (1-based) and ``start`` is the paper's start vertex. The name may be written in any
    case; anything else raises ValueError (TypeError for a name that is not a str).
    """
    if not isinstance(name, str):
        raise TypeError(f"a map's name must be a str, not {type(name).__name__}")
    key = name.lower()
    if key not in BUNDLED:
        raise ValueError(f"unknown map {name!r}; bundled maps: {', '.join(BUNDLED)}")
    text = resources.files("fastcov").joinpath("data", f"{key}.json").read_text()
    data = json.loads(text)
    return Graph.from_edges(
        data["edges"],
        directed=not data["undirected"],
        labels=data["nodes"],
        start=data["start_node"],
        name=data["name"],
    )


def grid(width, height, *, stay=False):
    """The width x height 4-neighbour grid; vertex (x, y) is index y * width + x."""
    width, height = _checks.integer(width, "width"), _checks.integer(height, "height")
    if width < 1 or height < 1:
        raise ValueError(f"grid needs width, height >= 1, got {width} x {height}")
    index = np.arange(width * height).reshape(height, width)
    edges = np.concatenate(
        [
            np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], axis=1),
            np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], axis=1),
        ]
    )
    graph = Graph.from_edges(
        edges, width * height, stay=stay, start=0, name=f"grid {width}x{height}"
    )
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    positions = np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float64)
    return dataclasses.replace(graph, positions=positions)


def _csr_arrays(indptr, indices):
    """Own int64 copies of a graph's CSR arrays, checked (see :class:`Graph`)."""
    indptr, indices = _index_array(indptr, "indptr"), _index_array(indices, "indices")
    if len(indptr) == 0 or indptr[0] != 0:
        raise ValueError("indptr must start with 0 (it has n + 1 entries for n vertices)")
    decreasing = np.flatnonzero(np.diff(indptr) < 0)
    if decreasing.size:
        v = decreasing[0]
        raise ValueError(
            f"indptr must not decrease: indptr[{v}] = {indptr[v]} > indptr[{v + 1}] = "
            f"{indptr[v + 1]}"
        )
    if indptr[-1] != len(indices):
        raise ValueError(f"indptr ends at {indptr[-1]}, but indices has {len(indices)} entries")
    n = len(indptr) - 1
    outside = np.flatnonzero((indices < 0) | (indices >= n))
    if outside.size:
        e = outside[0]
        raise ValueError(
            f"edge {e} (out of vertex {_source(indptr, e)}) goes to {indices[e]}, outside "
            f"0 .. {n - 1}"
        )
    # Ascending within a vertex's edges: a step down or a repeat is allowed only where
    # the next vertex's edges begin.
    first_edge = np.zeros(len(indices), dtype=bool)
    first_edge[indptr[:-1][indptr[:-1] < len(indices)]] = True
    unsorted = np.flatnonzero((np.diff(indices) <= 0) & ~first_edge[1:]) + 1
    if unsorted.size:
        e = unsorted[0]
        raise ValueError(
            f"vertex {_source(indptr, e)}'s edges {e - 1} and {e} go to {indices[e - 1]} "
            f"and {indices[e]}: each vertex's targets must be ascending and distinct "
            "(Graph.from_edges sorts and merges them)"
        )
    return indptr, indices


def _index_array(array, name):
    """``array`` as a new 1-D int64 array, from integers only."""
    array = np.array(array)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and array.size == 0):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    # uint64 against uint64: NumPy 1's uint64 against int compared them as float64, in
    # which 2^63 is int64's largest value.
    if array.dtype.kind == "u" and array.size and array.max() > np.uint64(2**63 - 1):
        raise ValueError(f"{name} holds {array.max()}, too large for a vertex or edge index")
    return array.astype(np.int64)


def _source(indptr, edge):
    """The vertex whose out-edges include ``edge``."""
    return int(np.searchsorted(indptr, edge, side="right") - 1)


def _labels_array(labels, n):
    """An own 1-D copy of ``labels``, one a vertex: an array's own dtype, else objects
    (tuples stay whole, and [1, "a"] does not become strings).
    """
    array = np.array(labels) if isinstance(labels, np.ndarray) else _object_array(labels)
    if array.ndim != 1:
        array = _object_array(labels)
    if len(array) != n:
        raise ValueError(f"labels has {len(array)} entries for {n} vertices")
    return array


def _positions_array(positions, n):
    """An own float64 copy of ``positions``, finite and of shape (n, 2)."""
    array = np.array(positions, dtype=np.float64)
    if array.shape != (n, 2):
        raise ValueError(f"positions must have shape ({n}, 2), got {array.shape}")
    if not np.isfinite(array).all():
        v = np.flatnonzero(~np.isfinite(array).all(axis=1))[0]
        raise ValueError(f"positions[{v}] = {tuple(array[v].tolist())} is not finite")
    return array


def _square_matrix(adjacency):
    """``adjacency`` (dense or SciPy sparse) as a square COO array. SciPy makes COO arrays
    of any number of axes, whose ``row`` and ``col`` are the last two: a 3-D array would
    otherwise pass as a graph.
    """
    if not scipy.sparse.issparse(adjacency):
        adjacency = np.asarray(adjacency)
    if adjacency.dtype.kind not in "biufc":
        raise TypeError(f"adjacency must hold numbers; got dtype {adjacency.dtype}")
    if len(adjacency.shape) != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency must be a square matrix, got shape {adjacency.shape}")
    return scipy.sparse.coo_array(adjacency)


def _object_array(labels):
    """Labels as a 1-D object array (tuples such as grid coordinates stay whole)."""
    labels = list(labels)
    array = np.empty(len(labels), dtype=object)
    for i, label in enumerate(labels):
        array[i] = label
    return array


def _label_positions(labels):
    """{label: its vertex index}; labels must be distinct and hashable."""
    position = {}
    for i, label in enumerate(labels):
        try:
            seen = position.setdefault(label, i)
        except TypeError:  # unhashable: a list, or a row of a 2-D array
            raise TypeError(
                f"labels[{i}] is of type {type(label).__name__}, which cannot name a vertex (it is "
                "not hashable); pass tuples, e.g. [tuple(row) for row in coordinates]"
            ) from None
        if seen != i:
            raise ValueError(f"labels must be distinct; {label!r} appears twice")
    return position


def _pairs(edges):
    """The edges of a labelled graph, each checked to be a pair."""
    for k, edge in enumerate(edges):
        if len(edge) != 2:
            raise ValueError(f"edge {k} = {edge!r} is not a pair (u, v)")
        yield edge


def _edge_array(edges):
    """``edges`` as int64 pairs of shape (n_edges, 2); floats only where they are whole."""
    array = np.asarray(edges)
    if array.size == 0:
        return np.empty((0, 2), np.int64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"edges must have shape (n_edges, 2), got {array.shape}")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            k = np.flatnonzero(~whole.all(axis=1))[0]
            raise ValueError(
                f"edge {k} = {tuple(array[k].tolist())} is not a pair of vertex indices "
                "(whole numbers); pass labels= to name vertices otherwise"
            )
    elif array.dtype.kind not in "iu" and not _all_integers(array):
        raise TypeError(
            f"edges must hold vertex indices (integers), got dtype {array.dtype}; pass "
            "labels= to name vertices otherwise"
        )
    if array.dtype.kind != "i":
        # Beyond int64 (floats, uint64, Python ints in an object array) the cast would wrap.
        beyond = (array < -(2**63)) | (array >= 2**63)
        if beyond.any():
            k = np.flatnonzero(beyond.any(axis=1))[0]
            raise ValueError(f"edge {k} = {tuple(array[k].tolist())} has a vertex beyond int64")
    return array.astype(np.int64)


def _all_integers(array):
    """Whether an object array holds Python (or NumPy) integers only, bools excluded."""
    return array.dtype == object and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in array.flat
    )


def _position(position, label, what):
    try:
        return position[label]
    except KeyError:
        raise ValueError(f"{what}: {label!r} is not a vertex label") from None
