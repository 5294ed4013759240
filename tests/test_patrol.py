"""Graphs, stationary distributions and the exact patrol gradient against independent
references: dense linear algebra, central finite differences, hand-worked chains."""

import dataclasses
import pathlib
import sys

import numba
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from derivatives import central_differences
from exact import patrol_chain, patrol_logit_gradient, patrol_softmax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcov
from fastcov import _grounds, _patterns, _policy, _solvers, graph, patrol, simulate
from fastcov._lanes import LANES

EPS = np.finfo(np.float64).eps
DATA = pathlib.Path(__file__).parent / "data"


def _dense_transition(g, probabilities):
    n = g.n_vertices
    return scipy.sparse.csr_array((probabilities, g.indices, g.indptr), shape=(n, n)).toarray()


def _dense_stationary(matrix):
    """mu by another route: the dense state reduction of Grassmann, Taksar and Heyman
    (GTH), which eliminates the last state into the others, one at a time, without a
    subtraction (a state's exit probability is its off-diagonal row sum), so every share
    keeps its relative accuracy. LAPACK's eigenvector, the oracle here before, was only
    accurate to about 1e-14 of the largest share: up to 3e-10 relative error in small
    shares of random chains, against 8e-16 for GTH (mpmath, 600 chains).
    """
    reduced = np.array(matrix, dtype=np.float64)
    n = len(reduced)
    for k in range(n - 1, 0, -1):
        reduced[:k, k] /= reduced[k, :k].sum()
        reduced[:k, :k] += np.outer(reduced[:k, k], reduced[k, :k])
    shares = np.zeros(n)
    shares[0] = 1.0
    for k in range(1, n):
        shares[k] = shares[:k] @ reduced[:k, k]
    return shares / shares.sum()


def _dense_adjoint_gradient(g, probabilities, mu, dj_dmu, softmax=None, scale=1.0):
    """One robot's dJ/dtheta by another route: dmu/dP through the dense group inverse
    (I - P + 1 mu^T)^-1, then the softmax chain rule (``softmax`` where a floor makes P
    differ from it, ``scale`` = dP/dsoftmax = 1 - d(s) floor).
    """
    n = g.n_vertices
    dense = _dense_transition(g, probabilities)
    fundamental = np.linalg.inv(np.eye(n) - dense + np.outer(np.ones(n), mu))
    dj_dp = np.outer(mu, fundamental @ dj_dmu)[g.sources, g.indices]
    s = probabilities if softmax is None else softmax
    return scale * s * (dj_dp - np.add.reduceat(s * dj_dp, g.indptr[:-1])[g.sources])


@pytest.mark.parametrize(
    ("name", "n_vertices", "n_undirected_edges", "start_label"),
    [("house", 9, 10, 3), ("office", 60, 65, 43), ("museum", 70, 93, 1)],
)
def test_bundled_maps(name, n_vertices, n_undirected_edges, start_label):
    g = graph.load(name)
    assert g.n_vertices == n_vertices
    assert g.n_edges == 2 * n_undirected_edges  # both directions, no self-loops
    assert g.labels[g.start] == start_label
    g.require_strongly_connected()


def test_a_graph_prints_as_its_sizes_not_its_arrays():
    # The dataclass's own repr printed every array: a screen of numbers for MUSEUM.
    assert repr(graph.load("museum")) == "Graph(name='MUSEUM', n_vertices=70, n_edges=186, start=0)"
    assert repr(graph.grid(1000, 1000)) == (
        "Graph(name='grid 1000x1000', n_vertices=1000000, n_edges=3996000, start=0)"
    )
    assert repr(graph.Graph.from_edges([(0, 1)])).endswith("n_edges=2, start=None)")


def test_unknown_map_lists_the_bundled_ones():
    with pytest.raises(ValueError, match="house, office, museum"):
        graph.load("castle")
    assert graph.load("MUSEUM").n_vertices == 70
    with pytest.raises(TypeError, match="a map's name must be a str, not int"):
        graph.load(3)


def test_edges_labels_and_stay():
    g = graph.Graph.from_edges([("a", "b"), ("b", "c")], labels=["a", "b", "c"], stay=True)
    assert g.n_edges == 2 * 2 + 3
    assert list(g.indices[g.indptr[1] : g.indptr[2]]) == [0, 1, 2]  # b -> a, b, c
    with pytest.raises(ValueError, match="'d' is not a vertex label"):
        graph.Graph.from_edges([("a", "d")], labels=["a", "b"])
    with pytest.raises(ValueError, match=r"edge 1 = \(1, 5\) has a vertex outside 0 \.\. 2"):
        graph.Graph.from_edges([(0, 1), (1, 5)], 3)


@pytest.mark.parametrize(
    "edges, error, message",
    [
        ([(0, 1), (1, 2.5)], ValueError, r"edge 1 = \(1.0, 2.5\) is not a pair of vertex indices"),
        ([(0, 1), (1, np.nan)], ValueError, r"edge 1 = \(1.0, nan\) is not a pair"),
        ([(0, 1, 2), (3, 4, 5)], ValueError, r"shape \(n_edges, 2\), got \(2, 3\)"),
        ([0, 1, 1, 2], ValueError, r"shape \(n_edges, 2\), got \(4,\)"),
        ([("a", "b")], TypeError, "pass labels= to name vertices"),
        # Beyond int64 the cast wrapped, and the error named another vertex.
        ([(0, 1), (1, 1e300)], ValueError, r"edge 1 = \(1.0, 1e\+300\) has a vertex beyond int64"),
        (np.array([(0, 2**64 - 1)], np.uint64), ValueError, r"\(0, 18446744073709551615\)"),
        ([(0, 2**70)], ValueError, r"edge 0 = \(0, 1180591620717411303424\) has a vertex beyond"),
    ],
)
def test_malformed_edges_are_rejected(edges, error, message):
    # Each was once read as some other graph: 2.5 truncated to 2, triples cut into pairs.
    with pytest.raises(error, match=message):
        graph.Graph.from_edges(edges)


def test_graph_arguments_are_checked():
    assert graph.Graph.from_edges([(0.0, 1.0)]).n_edges == 2  # whole floats are indices
    with pytest.raises(TypeError, match="start must be an integer, got 1.5"):
        graph.Graph.from_edges([(0, 1)], start=1.5)
    with pytest.raises(ValueError, match="n_vertices must be >= 0"):
        graph.Graph.from_edges([], -1)
    with pytest.raises(ValueError, match="labels must be distinct; 'a' appears twice"):
        graph.Graph.from_edges([("a", "b")], labels="aba")
    with pytest.raises(ValueError, match=r"edge 0 = \('a', 'b', 'c'\) is not a pair"):
        graph.Graph.from_edges([("a", "b", "c")], labels="abc")
    with pytest.raises(TypeError, match="width must be an integer"):
        graph.grid(2.5, 3)
    ring = np.roll(np.eye(3), 1, axis=1)
    holed = ring.copy()
    holed[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"adjacency\[2, 1\] = nan is not finite"):
        graph.Graph.from_adjacency(holed)
    named = graph.Graph.from_adjacency(ring, labels=["x", "y", "z"], start="y")
    assert named.start == 1 and list(named.labels) == ["x", "y", "z"]
    with pytest.raises(ValueError, match="start vertex 5 is outside 0 .. 2"):
        graph.Graph.from_adjacency(ring, start=5)
    with pytest.raises(ValueError, match="labels has 2 entries for 3 vertices"):
        graph.Graph.from_adjacency(ring, labels=["x", "y"])
    # Repeated labels were taken when no start was named.
    with pytest.raises(ValueError, match="labels must be distinct; 'x' appears twice"):
        graph.Graph.from_adjacency(ring, labels=["x", "y", "x"])
    coordinates = np.array([[0, 0], [0, 1], [1, 1]])
    for build in (
        lambda: graph.Graph.from_adjacency(ring, labels=coordinates, start=(0, 1)),
        lambda: graph.Graph.from_edges([((0, 0), (0, 1))], labels=coordinates),
    ):
        with pytest.raises(TypeError, match=r"labels\[0\] is of type ndarray, .* pass tuples"):
            build()
    tuples = graph.Graph.from_adjacency(ring, labels=[tuple(row) for row in coordinates])
    assert tuples.labels[2] == (1, 1)
    for shape in [(3,), (2, 3), (3, 3, 3), ()]:
        with pytest.raises(ValueError, match=r"adjacency must be a square matrix, got shape"):
            graph.Graph.from_adjacency(np.ones(shape))
    with pytest.raises(ValueError, match=r"adjacency must be a square matrix, got shape \(2, 3\)"):
        graph.Graph.from_adjacency(scipy.sparse.csr_array(np.ones((2, 3))))
    with pytest.raises(TypeError, match="adjacency must hold numbers; got dtype <U1"):
        graph.Graph.from_adjacency([["a", "b"], ["c", "d"]])


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"indptr": [[0, 2, 3]]}, ValueError, r"indptr must be 1-D, got shape \(1, 3\)"),
        ({"indptr": [0.0, 2.0, 3.0]}, TypeError, "indptr must hold integers, got dtype float64"),
        ({"indptr": [], "indices": [], "labels": []}, ValueError, "indptr must start with 0"),
        ({"indptr": [1, 2, 3]}, ValueError, "indptr must start with 0"),
        ({"indptr": [0, 5, 3]}, ValueError, r"indptr\[1\] = 5 > indptr\[2\] = 3"),
        ({"indptr": [0, 2, 4]}, ValueError, "indptr ends at 4, but indices has 3 entries"),
        ({"indices": [0, 5, 0]}, ValueError, r"edge 1 \(out of vertex 0\) goes to 5, outside"),
        ({"indices": [0, 1, -1]}, ValueError, r"edge 2 \(out of vertex 1\) goes to -1"),
        ({"indices": [1, 0, 0]}, ValueError, "vertex 0's edges 0 and 1 go to 1 and 0"),
        ({"indices": [1, 1, 0]}, ValueError, "vertex 0's edges 0 and 1 go to 1 and 1"),
        ({"labels": ["a"]}, ValueError, "labels has 1 entries for 2 vertices"),
        ({"positions": [[0, 0]]}, ValueError, r"positions must have shape \(2, 2\)"),
        ({"positions": [[0, 0], [1, np.inf]]}, ValueError, r"positions\[1\] = \(1.0, inf\)"),
        ({"start": 2}, ValueError, r"start vertex 2 is outside 0 .. 1"),
        ({"start": 1.0}, TypeError, "start must be an integer"),
        ({"name": None}, TypeError, "name must be a str, not NoneType"),
        ({"indices": np.array([0, 2**63, 0], np.uint64)}, ValueError, "9223372036854775808, too"),
    ],
)
def test_a_graph_built_from_its_arrays_is_checked(fields, error, message):
    # The compiled solvers index with these arrays unchecked: before these checks, a
    # target outside the graph gave a J and a 2-D indptr crashed the process.
    arrays = {"indptr": [0, 2, 3], "indices": [0, 1, 0], "labels": [0, 1]}
    with pytest.raises(error, match=message):
        graph.Graph(**(arrays | fields))


def test_a_graph_built_from_its_arrays_is_the_same_graph():
    edges = graph.Graph.from_edges([(0, 1), (1, 2), (2, 0)], directed=True, stay=True)
    rebuilt = graph.Graph(
        edges.indptr.astype(np.int32),
        edges.indices.astype(np.uint16),
        [("room", k) for k in range(3)],  # tuples stay whole labels
        start=np.int64(2),
        positions=np.eye(3, 2, dtype=np.float32),
    )
    assert rebuilt.indices.dtype == rebuilt.indptr.dtype == np.int64
    assert rebuilt.label(1) == ("room", 1) and rebuilt.start == 2
    assert rebuilt.positions.dtype == np.float64 and not rebuilt.positions.flags.writeable
    logits = np.random.default_rng(0).standard_normal((2, edges.n_edges))
    np.testing.assert_array_equal(
        patrol.value_and_grad(rebuilt, logits).grad, patrol.value_and_grad(edges, logits).grad
    )
    empty = graph.Graph(np.zeros(1, np.int64), [], [])
    assert empty.n_vertices == empty.n_edges == 0
    mixed = graph.Graph(edges.indptr, edges.indices, [7, "hall", 2.5])
    assert [mixed.label(v) for v in range(3)] == [7, "hall", 2.5]  # not made strings
    assert mixed.label(np.int32(1)) == "hall"
    for outside in (-1, 3):
        with pytest.raises(IndexError, match=rf"graph has no vertex {outside}: indices are 0 .. 2"):
            mixed.label(outside)
    with pytest.raises(TypeError, match="vertex must be an integer, got 1.0"):
        mixed.label(1.0)
    assert graph.Graph(edges.indptr, edges.indices, np.arange(3)).labels.dtype == np.int_


def test_networkx_and_adjacency_agree_with_edges():
    nx = pytest.importorskip("networkx")
    grid = graph.grid(3, 2)
    from_nx = graph.Graph.from_networkx(nx.grid_2d_graph(2, 3))  # nodes (row, column)
    assert from_nx.n_edges == grid.n_edges == 2 * 7
    adjacency = grid.adjacency().toarray()
    again = graph.Graph.from_adjacency(adjacency)
    np.testing.assert_array_equal(again.indptr, grid.indptr)
    np.testing.assert_array_equal(again.indices, grid.indices)
    # A multigraph's parallel edges merge, as duplicates do in an edge list.
    multi = nx.MultiDiGraph()
    # Not MultiDiGraph(edges): networkx < 3.4 then tries pandas, and warns without it.
    multi.add_edges_from([("a", "b"), ("a", "b"), ("b", "a")])
    merged = graph.Graph.from_networkx(multi)
    assert merged.n_edges == 2 and list(merged.labels) == ["a", "b"]
    with pytest.raises(TypeError, match="graph must be a networkx graph, not list"):
        graph.Graph.from_networkx([(0, 1)])


def test_not_strongly_connected_names_a_component():
    one_way = graph.Graph.from_edges([(0, 1), (1, 0), (1, 2), (2, 3), (3, 2)], directed=True)
    with pytest.raises(ValueError, match=r"not strongly connected \(2 .*vertices"):
        patrol.stationary(one_way, np.zeros(one_way.n_edges))
    dead_end = graph.Graph.from_edges([(0, 1)], directed=True)
    with pytest.raises(ValueError, match="vertex 1 has no outgoing edge"):
        patrol.stationary(dead_end, np.zeros(1))
    empty = graph.Graph.from_edges([], name="void")
    for call in (patrol.stationary, patrol.transition_probabilities, patrol.value_and_grad):
        with pytest.raises(ValueError, match="void has no vertices"):
            call(empty, np.zeros((1, 0)))


def test_a_graph_is_immutable_and_owns_its_arrays():
    indptr, indices = np.array([0, 1, 2]), np.array([1, 0])
    g = graph.Graph(indptr, indices, np.arange(2))
    indices[:] = 0  # the caller's array: the graph keeps its own copy
    np.testing.assert_array_equal(g.indices, [1, 0])
    np.testing.assert_array_equal(g.out_degrees, [1, 1])
    for array in (g.indptr, g.indices, g.labels, g.sources, g.out_degrees):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    g.require_strongly_connected()
    # A changed graph is a new graph, with its own derived data.
    stuck = dataclasses.replace(g, indices=np.array([1, 1]))
    with pytest.raises(ValueError, match="not strongly connected"):
        stuck.require_strongly_connected()
    np.testing.assert_allclose(patrol.stationary(g, np.zeros(2)), [0.5, 0.5])


def test_a_graph_that_is_not_a_graph_is_named():
    # A map's name, or networkx's graph, reached the solver and failed there with an
    # AttributeError about a method the caller never heard of.
    theta = np.zeros((1, graph.load("house").n_edges))
    calls = (
        lambda g: patrol.transition_probabilities(g, theta),
        lambda g: patrol.stationary(g, theta),
        lambda g: patrol.value_and_grad(g, theta),
        lambda g: patrol.train(g, 1, iterations=1),
        lambda g: simulate.simulate(g, theta, 10),
    )
    for call in calls:
        message = r"graph must be a fastcov.graph.Graph, got builtins.str \(fastcov.graph.load"
        with pytest.raises(TypeError, match=message):
            call("house")
        with pytest.raises(TypeError, match="got builtins.dict .*from_networkx build one"):
            call({0: [1], 1: [0]})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bad_logits(bad):
    g = graph.load("house")
    # A team's step takes (N, n_edges) logits, and says so whichever shape is wrong.
    for shape in [(2, 19), (20,), (1, 2, 20)]:
        with pytest.raises(ValueError, match=r"must have shape \(N, n_edges\) with n_edges = 20"):
            patrol.value_and_grad(g, np.zeros(shape))
    with pytest.raises(ValueError, match=r"shape \(n_edges,\) or \(N, n_edges\)"):
        patrol.stationary(g, np.zeros(19))
    theta = np.zeros((3, 40))[:, ::2]  # not contiguous
    theta[1, 7] = bad
    with pytest.raises(ValueError, match=rf"logits\[1, 7\] = {bad} is not finite"):
        patrol.value_and_grad(g, theta)
    with pytest.raises(ValueError, match=rf"logits\[7\] = {bad} is not finite"):
        patrol.stationary(g, theta[1])
    theta[1, 7] = np.finfo(np.float64).max  # finite, however large
    assert np.isfinite(patrol.transition_probabilities(g, theta)).all()
    masked = np.ma.array(np.zeros((2, 20)), mask=False)
    with pytest.raises(TypeError, match="logits is a masked array"):
        patrol.value_and_grad(g, masked)
    with pytest.raises(TypeError, match="logits must hold real numbers"):
        patrol.value_and_grad(g, np.zeros((2, 20), complex))  # not cast with a warning


def _ring_and_hub():
    """More edges than one block of lanes holds, and a hub with more than a block alone;
    every vertex has two out-edges at least (with one, its chain-rule terms are zero).
    """
    n = 6000
    ring = [(v, (v + step) % n) for v in range(n) for step in (1, -1)]
    hub = [(0, v) for v in range(2, 5000)]
    g = graph.Graph.from_edges(ring + hub, directed=True)
    assert g.n_edges > _policy._SOFTMAX_BLOCK_EDGES < g.largest_out_degree
    return g


@pytest.mark.parametrize("n_robots", [1, 8, 11])
def test_softmax_in_lanes_and_blocks_is_numpys(n_robots):
    g = _ring_and_hub()
    n = g.n_vertices
    theta = np.random.default_rng(1).standard_normal((n_robots, g.n_edges)) * 30.0
    p = patrol.transition_probabilities(g, theta)
    for robot in range(n_robots):
        for s in (0, 1, 2, n - 1):
            edges = slice(g.indptr[s], g.indptr[s + 1])
            weights = np.exp(theta[robot, edges] - theta[robot, edges].max())
            np.testing.assert_allclose(p[robot, edges], weights / weights.sum(), rtol=1e-13)
    np.testing.assert_allclose(np.add.reduceat(p, g.indptr[:-1], axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("n_robots", [1, 8, 11])
def test_chain_rule_in_lanes_and_blocks_is_numpys(n_robots):
    # dJ/dtheta[e] = P(e) (G_e - sum_{e' out of s} P(e') G_e'), G_e = mu(s) h(target of e),
    # written out with NumPy over every edge at once.
    g = _ring_and_hub()
    rng = np.random.default_rng(2)
    p = patrol.transition_probabilities(g, rng.standard_normal((n_robots, g.n_edges)))
    mu = rng.random((n_robots, g.n_vertices))
    h = rng.standard_normal((n_robots, g.n_vertices))
    G = mu[:, g.sources] * h[:, g.indices]
    mean = np.add.reduceat(p * G, g.indptr[:-1], axis=1)[:, g.sources]
    expected = p * (G - mean)
    grad = _policy.softmax_chain_rule(g, p, mu, h)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15 * np.abs(G).max())


def test_softmax_rows_sum_to_one_and_survive_huge_logits():
    g = graph.load("office")
    theta = np.random.default_rng(0).standard_normal(g.n_edges) * 800.0
    p = patrol.transition_probabilities(g, theta)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(np.add.reduceat(p, g.indptr[:-1]), 1.0, rtol=1e-14)


def test_uniform_walk_on_an_undirected_graph_is_degree_proportional():
    # Hand-worked: the simple random walk's stationary distribution is deg(s) / 2|E|.
    g = graph.load("museum")
    mu = patrol.stationary(g, np.zeros(g.n_edges))
    degree = np.diff(g.indptr)
    np.testing.assert_allclose(mu, degree / degree.sum(), rtol=1e-12)


def _graphs():
    """The bundled maps, a grid with self-loops and a directed graph with self-loops."""
    ring = [(v, (v + 1) % 12) for v in range(12)] + [(0, 6), (6, 3), (3, 9), (9, 0)]
    return {
        **{name: graph.load(name) for name in graph.BUNDLED},
        "grid-stay": graph.grid(5, 4, stay=True),
        "directed-stay": graph.Graph.from_edges(ring, directed=True, stay=True),
    }


GRAPHS = _graphs()

SOLVERS = ("plan", "multifrontal")


def _solved_by(solver, g, monkeypatch):
    """A copy of ``g`` that the patrol solver factors with ``solver``: the elimination plan
    (what every graph small enough gets) or the multifrontal LU (what larger ones get).
    """
    if solver == "multifrontal":
        monkeypatch.setattr(_patterns, "_PLAN_ROWS", 0)
    fresh = dataclasses.replace(g)  # a new graph: its solver is chosen afresh
    assert (_patterns.pattern(fresh).plan is None) == (solver == "multifrontal")
    return fresh


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", GRAPHS)
def test_stationary_matches_a_dense_state_reduction(name, solver, monkeypatch):
    g = _solved_by(solver, GRAPHS[name], monkeypatch)
    theta = np.random.default_rng(1).standard_normal((3, g.n_edges))
    mu = patrol.stationary(g, theta)
    for i in range(3):
        dense = _dense_transition(g, patrol.transition_probabilities(g, theta[i]))
        np.testing.assert_allclose(mu[i], _dense_stationary(dense), rtol=1e-12, atol=0)
        np.testing.assert_allclose(mu[i] @ dense, mu[i], atol=1e-15)


@pytest.mark.parametrize("scale", [1.0, 10.0, 40.0])
def test_stationary_keeps_every_digit_of_tiny_shares(scale):
    # Logits of spread 40 make some moves e^-160 likely and some shares 1e-124. With the
    # elimination plan mu is computed with no cancellation: every entry, however small,
    # matches a 300-digit solve of mu^T P = mu^T from the same logits.
    mpmath = pytest.importorskip("mpmath")
    g = graph.load("office")
    theta = np.random.default_rng(3).standard_normal(g.n_edges) * scale
    mu = patrol.stationary(g, theta)
    with mpmath.workdps(300):
        _, exact = patrol_chain(g, patrol_softmax(g, theta))
        errors = [abs((mpmath.mpf(float(x)) - e) / e) for x, e in zip(mu, exact, strict=True)]
    assert float(max(errors)) < 1e-12
    if scale == 40.0:
        assert mu.min() < 1e-100


def test_multifrontal_lu_keeps_every_digit_as_the_plan_does(monkeypatch):
    # Logits of spread 20 on a 3,600-vertex grid: shares of 1e-70 and less. The plan's
    # shares keep full relative accuracy (the 300-digit test above), and so must the
    # multifrontal LU's: both compute pivots from row sums. (SuperLU, which large graphs
    # used before, returned a share of -2.8e-5 here.)
    g = graph.grid(60, 60)
    theta = np.random.default_rng(3).standard_normal((3, g.n_edges)) * 20.0
    planned = patrol.stationary(g, theta)
    frontal = patrol.stationary(_solved_by("multifrontal", g, monkeypatch), theta)
    assert planned.min() < 1e-60
    np.testing.assert_allclose(frontal, planned, rtol=1e-11, atol=0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_vertex_that_cannot_be_left_in_float64(solver, monkeypatch):
    # Vertex 1 stays with probability 1 - e^-800 = 1.0: its exits underflow to 0. Robot 1
    # is there for all but about e^-800 of its time, all of it in float64, and every
    # entry of its gradient is about e^-800 too. Grounded at vertex 0 its measure
    # overflowed (once an error); grounded at vertex 1, where it is, it is exact.
    g = _solved_by(
        solver,
        graph.Graph.from_edges([(0, 1), (1, 2), (2, 0)], directed=True, stay=True),
        monkeypatch,
    )
    theta = np.zeros((2, g.n_edges))
    theta[1, (g.sources == 1) & (g.indices == 1)] = 800.0
    state = patrol.value_and_grad(g, theta)
    np.testing.assert_array_equal(state.mu[1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(patrol.stationary(g, theta)[1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(state.grad[1], 0.0)
    np.testing.assert_allclose(state.mu[0], 1 / 3, rtol=1e-15)
    assert np.abs(state.grad[0]).min() > 1e-3
    # With vertex 2 as hard to leave, the chain has two closed classes in float64, and no
    # ground gives robot 1 a stationary distribution.
    theta[1, (g.sources == 2) & (g.indices == 2)] = 800.0
    message = (
        r"robot 1's chain has 2 closed classes in float64.*smallest probability is 0\)"
        r".*vertex 1 it cannot reach vertex 2, nor back"
    )
    with pytest.raises(FloatingPointError, match=message):
        patrol.value_and_grad(g, theta)
    with pytest.raises(FloatingPointError, match=message):
        patrol.stationary(g, theta)


@pytest.mark.parametrize(
    ("solver", "floor"), [("plan", 0.0), ("multifrontal", 0.0), ("plan", 1e-7)]
)
def test_a_robot_that_rarely_visits_vertex_0_keeps_its_gradient(solver, floor, monkeypatch):
    # Logits of spread 8 on MUSEUM: robots 0, 1 and 2 visit vertex 0 5e-31, 4e-18 and
    # 9e-10 of the time (a little more often with the floor). An adjoint grounded at vertex 0
    # has entries of about the time it takes to get there, and their differences, which
    # the gradient needs, were lost: robot 0's gradient came out wrong by 10 times its
    # largest entry (0 on an edge where it is -3e-3), robot 1's by 2e-6 of it. Robots
    # whose estimated loss exceeds _GROUND_ERROR are solved again from other grounds
    # (robot 1 with the floor is not: it is within 3.3e-10); robot 3's adjoint (logits
    # of spread 1) stays at vertex 0.
    g = _solved_by(solver, graph.load("museum"), monkeypatch)
    rng = np.random.default_rng(5)
    theta = np.concatenate(
        [rng.standard_normal((3, g.n_edges)) * 8.0, rng.standard_normal((1, g.n_edges))]
    )
    regrounded = []
    reground = _grounds.reground
    monkeypatch.setattr(
        _grounds,
        "reground",
        lambda graph, robots, *rest: regrounded.extend(robots) or reground(graph, robots, *rest),
    )
    state = patrol.value_and_grad(g, theta, floor=floor)
    assert regrounded == ([0, 2] if floor else [0, 1, 2])
    assert state.mu[:2, 0].max() < 1e-16
    _, dj_dmu = fastcov.value_and_grad(state.mu)
    for i, bound in ((0, 1e-10), (1, 1e-8), (3, 1e-12)):
        exact = patrol_logit_gradient(g, theta[i], dj_dmu[i], floor)
        assert np.abs(state.grad[i] - exact).max() <= bound * np.abs(exact).max(), i


def test_the_ground_error_estimate_is_eps_max_mu_h_over_the_largest_entry():
    # 11 robots: a full chunk of lanes and a partial one. Each robot's estimate is put on
    # either side of the bound (whether vertex 0 is busy or not: a part of the map the
    # robot rarely leaves loses digits either way).
    rng = np.random.default_rng(6)
    n_robots, n, n_edges = 11, 37, 90
    mu = rng.random((n_robots, n))
    h = rng.standard_normal((n_robots, n))
    grad = rng.standard_normal((n_robots, n_edges))
    h *= rng.choice([1e2, 1e10], n_robots)[:, np.newaxis]
    estimate = np.finfo(float).eps * np.abs(mu * h).max(axis=1) / np.abs(grad).max(axis=1)
    expected = estimate > _solvers._GROUND_ERROR
    assert 0 < expected.sum() < n_robots
    np.testing.assert_array_equal(_solvers.grounds_losing_digits(mu, h, grad), expected)
    # A gradient or adjoint that is not finite is solved again wherever vertex 0 is.
    kept = np.flatnonzero(~expected)[:3]
    grad[kept[0], 7], grad[kept[1], -1], h[kept[2], 5] = np.nan, np.inf, np.nan
    expected[kept] = True
    np.testing.assert_array_equal(_solvers.grounds_losing_digits(mu, h, grad), expected)


def _ring_of_stays(n=6):
    """A directed ring with a self-loop at every vertex: robot i's stationary share of a
    vertex is proportional to 1 / (its probability of leaving it).
    """
    return graph.Graph.from_edges([(v, (v + 1) % n) for v in range(n)], directed=True, stay=True)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_robot_that_visits_vertex_0_less_than_2_to_the_minus_1000(solver, monkeypatch):
    # Robot 1 leaves vertices 1 and 4 with probability e^-710 = 4.5e-309: it spends half
    # its time at each, and 4.5e-309 at every other vertex. Its measure x = mu / mu(0) is
    # 1.1e308 at both, their sum overflowed, and mu came out all zeros (J = log 6, as if
    # robot 1 were not there), with no error. It is solved grounded at vertex 1.
    mpmath = pytest.importorskip("mpmath")
    g = _solved_by(solver, _ring_of_stays(), monkeypatch)
    theta = np.zeros((2, g.n_edges))
    theta[1, (g.sources == g.indices) & np.isin(g.sources, [1, 4])] = 710.0
    state = patrol.value_and_grad(g, theta)
    with mpmath.workdps(400):
        _, exact = patrol_chain(g, patrol_softmax(g, theta[1]))
        exact = np.array([float(x) for x in exact])
    assert exact[0] < 1e-308
    np.testing.assert_allclose(state.mu[1], exact, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(patrol.stationary(g, theta), state.mu)
    assert state.value == pytest.approx(fastcov.entropy([state.mu[0], exact]), rel=1e-15)
    _, dj_dmu = fastcov.value_and_grad(state.mu)
    for robot, digits in ((0, 50), (1, 400)):
        exact_grad = patrol_logit_gradient(g, theta[robot], dj_dmu[robot], digits=digits)
        # Robot 1's entries are all about e^-710: below the rounding of dJ/dmu.
        bound = max(1e-12 * np.abs(exact_grad).max(), 8 * EPS * np.abs(dj_dmu[robot]).max())
        assert np.abs(state.grad[robot] - exact_grad).max() <= bound, robot


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_vertex_no_robot_reaches_in_float64_has_a_finite_derivative(solver, monkeypatch):
    # Both robots stay at vertex 0 with probability 1 - e^-760: every other vertex's share
    # is about e^-760, 0 in float64, where fastcov's dJ/dmu is +inf. The step takes it as
    # the least float64 (its true derivative is finite: every share is positive), so the
    # gradient is not NaN but, as it should be, about e^-760: 0.
    g = _solved_by(solver, _ring_of_stays(), monkeypatch)
    theta = np.zeros((2, g.n_edges))
    theta[:, (g.sources == 0) & (g.indices == 0)] = 760.0
    state = patrol.value_and_grad(g, theta)
    np.testing.assert_array_equal(state.mu, [[1.0, 0, 0, 0, 0, 0]] * 2)
    assert state.value == 0.0
    assert np.isinf(fastcov.value_and_grad(state.mu)[1]).any()
    np.testing.assert_array_equal(state.grad, 0.0)


def _funnel(g, pair, logit):
    """Logits that send a robot by shortest paths to the 2-cycle ``pair`` and round it:
    ``logit`` on each vertex's edge nearest to pair[0] (on the two edges of the cycle),
    0 on the others.
    """
    towards = scipy.sparse.csr_array(
        (np.ones(g.n_edges), (g.indices, g.sources)), shape=(g.n_vertices,) * 2
    )
    distance = scipy.sparse.csgraph.shortest_path(towards, indices=pair[0], unweighted=True)
    distance[pair[1]] = -1.0  # pair[0] goes to pair[1]
    theta = np.zeros(g.n_edges)
    for s in range(g.n_vertices):
        edges = np.arange(*g.indptr[s : s + 2])
        theta[edges[np.argmin(distance[g.indices[edges]])]] = logit
    return theta


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_robot_whose_measure_grounded_at_vertex_0_is_out_of_range(solver, monkeypatch):
    # Logits of 300 send the robot to the 2-cycle 60 <-> 58 of MUSEUM and round it: it
    # makes any other move with probability about e^-300, and vertex 0, six moves away,
    # gets 10^-782 of its time. Grounded at vertex 0, the measure's factors under- and
    # overflowed, its busiest entries were no busy vertex, and the step raised
    # FloatingPointError. It is grounded at the root of the chain's heaviest tree.
    mpmath = pytest.importorskip("mpmath")
    g = _solved_by(solver, graph.load("museum"), monkeypatch)
    theta = _funnel(g, (60, 58), 300.0)[np.newaxis]
    probabilities = patrol.transition_probabilities(g, theta)[0]
    with mpmath.workdps(50):  # state reduction: every share to the working precision
        _, exact = patrol_chain(g, [mpmath.mpf(float(p)) for p in probabilities])
        assert mpmath.log10(exact[0]) < -780
        exact = np.array([float(x) for x in exact])
    assert exact[[58, 60]] == pytest.approx(0.5, rel=1e-100)
    mu = patrol.stationary(g, theta)
    np.testing.assert_allclose(mu[0], exact, rtol=1e-13, atol=0)
    state = patrol.value_and_grad(g, theta)
    np.testing.assert_array_equal(state.mu, mu)
    assert np.isfinite(state.grad).all()


@pytest.mark.parametrize("solver", SOLVERS)
def test_an_adjoint_that_overflows_at_a_ground_the_gradient_needs(solver, monkeypatch):
    # A robot on MUSEUM after ten Adam steps of 30 (J's gradient from 4 robots; tests/data):
    # it circles a 2-cycle, and its moves span 117 orders of magnitude. Grounded at some
    # vertices its gradient needs, the adjoint h (as large as the time it takes to reach
    # the ground) overflowed, and the step raised FloatingPointError. Solved for g 2^-600,
    # with the chain rule from mu 2^600, it has every digit.
    g = _solved_by(solver, graph.load("museum"), monkeypatch)
    theta = np.loadtxt(DATA / "museum_logits_after_adam_steps_of_30.txt")[np.newaxis]
    state = patrol.value_and_grad(g, theta)
    _, dj_dmu = fastcov.value_and_grad(state.mu, eps=patrol._LEAST_SHARE)
    exact = patrol_logit_gradient(g, theta[0], dj_dmu[0], digits=800)
    assert np.abs(state.grad[0] - exact).max() <= 1e-12 * np.abs(exact).max()


@pytest.mark.parametrize("seed", [3, 7])
def test_a_gradient_of_several_grounds_keeps_its_digits(seed, monkeypatch):
    # Logits of spread 24 on MUSEUM. Grounded at the busiest vertex alone, this robot's
    # gradient was wrong by 5e8 (seed 3) and 1.3e2 (seed 7), with entries below 0.08:
    # h was as large as the time to reach the ground from a part of the map the robot
    # rarely leaves. Each part's edges take their entries from a ground in that part.
    g = graph.load("museum")
    theta = np.random.default_rng(seed).standard_normal((1, g.n_edges)) * 24.0
    state = patrol.value_and_grad(g, theta)
    _, dj_dmu = fastcov.value_and_grad(state.mu)
    exact = patrol_logit_gradient(g, theta[0], dj_dmu[0])
    assert np.abs(state.grad[0] - exact).max() <= 1e-6 * np.abs(exact).max()
    monkeypatch.setattr(_grounds, "_GRADIENT_GROUNDS", 1)
    with pytest.warns(RuntimeWarning, match="gradient of robot 0 may have lost digits"):
        one_ground = patrol.value_and_grad(g, theta)
    assert np.abs(one_ground.grad[0] - exact).max() > np.abs(exact).max()


def test_each_entry_takes_the_ground_whose_bound_is_least():
    # Logits of spread 16 on MUSEUM (seed 1): a second ground is needed, and it also
    # bounds the entries the first had within the tolerance (1e-4 of the largest) more
    # tightly. Kept from the first ground, those entries were wrong by 3.4e-8 of the
    # largest; from the ground of the least bound, 3.5e-14.
    g = graph.load("museum")
    theta = np.random.default_rng(1).standard_normal((1, g.n_edges)) * 16.0
    state = patrol.value_and_grad(g, theta)
    _, dj_dmu = fastcov.value_and_grad(state.mu)
    exact = patrol_logit_gradient(g, theta[0], dj_dmu[0], digits=300)
    assert np.abs(state.grad[0] - exact).max() <= 1e-12 * np.abs(exact).max()


def test_a_swapped_graph_is_the_graph_with_two_vertices_renamed():
    g = graph.load("museum")
    swapped, vertices, edges = _patterns.pattern(g).swapped(44)
    assert vertices[0] == 44 and vertices[44] == 0
    np.testing.assert_array_equal(np.delete(vertices, [0, 44]), np.delete(np.arange(70), [0, 44]))
    np.testing.assert_array_equal(swapped.sources, vertices[g.sources[edges]])
    np.testing.assert_array_equal(swapped.indices, vertices[g.indices[edges]])
    np.testing.assert_array_equal(np.sort(edges), np.arange(g.n_edges))
    assert swapped.labels[0] == g.labels[44] and swapped.labels[swapped.start] == g.labels[g.start]
    assert _patterns.pattern(g).swapped(44)[0] is swapped  # kept for the next step
    for root in range(1, 1 + _patterns._SWAPPED_GRAPHS):
        _patterns.pattern(g).swapped(root)
    assert _patterns.pattern(g).swapped(44)[0] is not swapped  # the oldest made way


def _other_layouts(theta):
    """``theta``'s values in arrays that are read-only, transposed or strided."""
    frozen = theta.copy()
    frozen.flags.writeable = False
    strided = np.repeat(theta, 2, axis=1)[:, ::2]
    return {"read-only": frozen, "Fortran order": np.asfortranarray(theta), "strided": strided}


@pytest.mark.parametrize("layout", ["read-only", "Fortran order", "strided"])
def test_logits_of_any_layout_run_the_compiled_steps_of_c_contiguous_ones(layout):
    g = graph.load("museum")
    theta = np.random.default_rng(12).standard_normal((4, g.n_edges))
    state = patrol.value_and_grad(g, theta)
    mu = patrol.stationary(g, theta)
    probabilities = patrol.transition_probabilities(g, theta)
    steps = [_solvers.planned_step, _solvers.planned_mu, _policy.softmax]
    compiled = [len(step.signatures) for step in steps]
    other = _other_layouts(theta)[layout]
    assert not (other.flags.c_contiguous and other.flags.writeable)
    other_state = patrol.value_and_grad(g, other)
    assert other_state.value == state.value
    np.testing.assert_array_equal(other_state.grad, state.grad)
    np.testing.assert_array_equal(patrol.stationary(g, other), mu)
    np.testing.assert_array_equal(patrol.transition_probabilities(g, other), probabilities)
    assert [len(step.signatures) for step in steps] == compiled


def test_a_floor_bounds_every_probability():
    g = GRAPHS["directed-stay"]  # out-degrees 2 and 3
    theta = np.random.default_rng(10).standard_normal((2, g.n_edges)) * 50.0
    plain = patrol.transition_probabilities(g, theta)
    floored = patrol.transition_probabilities(g, theta, floor=0.01)
    degree = np.diff(g.indptr)[g.sources]
    np.testing.assert_allclose(floored, 0.01 + (1.0 - 0.01 * degree) * plain, rtol=1e-15)
    assert floored.min() >= 0.01 > plain.min()
    np.testing.assert_allclose(np.add.reduceat(floored, g.indptr[:-1], axis=1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(patrol.transition_probabilities(g, theta, floor=0.0), plain)
    for bad in (-0.1, 1.0 / 3.0, 0.5, "0.1", np.nan, False):
        with pytest.raises(ValueError, match=r"floor must be a number in \[0, 1/3\)"):
            patrol.transition_probabilities(g, theta, floor=bad)


@pytest.mark.parametrize("solver", SOLVERS)
def test_gradient_with_a_floor_matches_central_differences(solver, monkeypatch):
    g = _solved_by(solver, GRAPHS["directed-stay"], monkeypatch)
    theta = np.random.default_rng(11).standard_normal((3, g.n_edges))
    state = patrol.value_and_grad(g, theta, floor=0.02)
    np.testing.assert_allclose(
        state.probabilities, patrol.transition_probabilities(g, theta, floor=0.02)
    )
    numeric = central_differences(
        lambda at: patrol.value_and_grad(g, at, floor=0.02).value, theta, 1e-6
    )
    np.testing.assert_allclose(state.grad, numeric, atol=1e-8 * np.abs(numeric).max())


def test_a_floor_keeps_an_underflowing_move_alive():
    # As below, where the plain softmax raises: with a floor the chain stays irreducible.
    g = graph.Graph.from_edges([(0, 1), (1, 2), (2, 0)], directed=True, stay=True)
    theta = np.zeros((2, g.n_edges))
    theta[1, (g.sources == 1) & (g.indices == 1)] = 800.0
    state = patrol.value_and_grad(g, theta, floor=1e-9)
    assert np.isfinite(state.grad).all()
    # Robot 1 stays at vertex 1 for 1 / 1e-9 steps on average, and a few steps elsewhere.
    assert state.mu[1, 1] == pytest.approx(1.0, abs=1e-8)
    trained = patrol.train(g, 2, iterations=3, logits=theta, floor=1e-9)
    assert trained.history.shape == (4,)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", ["house", "directed-stay"])
def test_gradient_matches_central_differences(name, solver, monkeypatch):
    g = _solved_by(solver, GRAPHS[name], monkeypatch)
    theta = np.random.default_rng(2).standard_normal((3, g.n_edges))
    state = patrol.value_and_grad(g, theta)
    numeric = central_differences(lambda at: patrol.value_and_grad(g, at).value, theta, 1e-6)
    np.testing.assert_allclose(state.grad, numeric, atol=1e-8 * np.abs(numeric).max())


@pytest.mark.parametrize("solver", SOLVERS)
def test_gradient_matches_the_dense_adjoint_formula(solver, monkeypatch):
    # Independent route: dmu/dP through the dense group inverse (I - P + 1 mu^T)^-1, and
    # dJ/dmu from the NumPy reference backend.
    g = _solved_by(solver, graph.load("office"), monkeypatch)
    theta = np.random.default_rng(3).standard_normal((2, g.n_edges))
    state = patrol.value_and_grad(g, theta)
    _, dj_dmu = fastcov.value_and_grad(state.mu, backend="numpy")
    for i in range(2):
        expected = _dense_adjoint_gradient(g, state.probabilities[i], state.mu[i], dj_dmu[i])
        np.testing.assert_allclose(state.grad[i], expected, atol=1e-12 * np.abs(expected).max())


def _random_strong_graph(n, density, stay, rng):
    """A directed graph on n vertices, strongly connected through a ring in a random order,
    with random chords (so vertex 0 may have any number of edges in and out).
    """
    order = rng.permutation(n)
    ring = np.stack([order, np.roll(order, -1)], axis=1)
    chords = np.argwhere(rng.random((n, n)) < density)
    edges = np.concatenate([ring, chords[chords[:, 0] != chords[:, 1]]])
    return graph.Graph.from_edges(edges, n, directed=True, stay=stay)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(2, 14),
    density=st.floats(0.0, 0.4),
    stay=st.booleans(),
    n_robots=st.sampled_from([2, 3, 11]),  # 11: a second pass of the plan's 8 lanes
    floor=st.sampled_from([0.0, 0.01]),
    seed=st.integers(0, 2**32 - 1),
)
@pytest.mark.parametrize("solver", SOLVERS)
def test_random_graphs_match_dense_linear_algebra(
    solver, monkeypatch, n, density, stay, n_robots, floor, seed
):
    rng = np.random.default_rng(seed)
    g = _solved_by(solver, _random_strong_graph(n, density, stay, rng), monkeypatch)
    floor = min(floor, 0.5 / g.largest_out_degree)
    theta = rng.standard_normal((n_robots, g.n_edges)) * 2.0
    state = patrol.value_and_grad(g, theta, floor=floor)
    # The softmax per vertex, floored, in NumPy; mu as the dense chain's eigenvector; the
    # gradient by the dense adjoint (the group inverse) and the softmax chain rule.
    exponentials = np.exp(theta - theta.max())
    sums = np.add.reduceat(exponentials, g.indptr[:-1], axis=1)[:, g.sources]
    degree = np.diff(g.indptr)[g.sources]
    probabilities = floor + (1.0 - degree * floor) * exponentials / sums
    np.testing.assert_allclose(state.probabilities, probabilities, rtol=1e-13)
    _, dj_dmu = fastcov.value_and_grad(state.mu, backend="numpy")
    for i in range(n_robots):
        dense = _dense_transition(g, probabilities[i])
        np.testing.assert_allclose(state.mu[i], _dense_stationary(dense), rtol=1e-12, atol=0)
        expected = _dense_adjoint_gradient(
            g, probabilities[i], state.mu[i], dj_dmu[i], exponentials[i] / sums[i],
            1.0 - degree * floor,
        )  # fmt: skip
        np.testing.assert_allclose(
            state.grad[i], expected, rtol=1e-7, atol=1e-10 * np.abs(expected).max()
        )
    assert state.value == pytest.approx(fastcov.entropy(state.mu, backend="numpy"), rel=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_team_of_no_robots(solver, monkeypatch):
    g = _solved_by(solver, graph.load("house"), monkeypatch)
    state = patrol.value_and_grad(g, np.zeros((0, g.n_edges)))
    assert state.value == 0.0
    assert state.grad.shape == (0, g.n_edges) and state.mu.shape == (0, g.n_vertices)


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_vertices_hand_worked(solver, monkeypatch):
    # Leaving 0 with probability a and 1 with probability b: mu = (b, a) / (a + b).
    g = _solved_by(solver, graph.Graph.from_edges([(0, 1)], stay=True), monkeypatch)
    theta = np.random.default_rng(4).standard_normal((3, g.n_edges))
    p = patrol.transition_probabilities(g, theta)
    leave_0 = p[:, (g.sources == 0) & (g.indices == 1)][:, 0]
    leave_1 = p[:, (g.sources == 1) & (g.indices == 0)][:, 0]
    expected = np.stack([leave_1, leave_0], axis=1) / (leave_0 + leave_1)[:, np.newaxis]
    np.testing.assert_allclose(patrol.stationary(g, theta), expected, rtol=1e-14)


def test_a_single_vertex_is_always_covered():
    g = graph.Graph.from_edges([], 1, stay=True)
    state = patrol.value_and_grad(g, np.zeros((2, 1)))
    np.testing.assert_array_equal(state.mu, [[1.0], [1.0]])
    np.testing.assert_array_equal(state.grad, 0.0)
    assert state.value == 0.0


def test_value_is_fastcov_entropy_of_the_stationary_distributions():
    g = graph.grid(5, 4, stay=True)
    theta = np.random.default_rng(4).standard_normal((4, g.n_edges))
    state = patrol.value_and_grad(g, theta)
    assert state.value == pytest.approx(fastcov.entropy(state.mu, backend="numpy"), rel=1e-14)


@pytest.mark.parametrize("schedule", patrol.SCHEDULES)
def test_training_raises_J_and_stays_below_the_bound(schedule):
    g = graph.load("house")
    seen = []
    result = patrol.train(
        g,
        2,
        iterations=60,
        learning_rate=0.2,
        schedule=schedule,
        seed=5,
        callback=lambda step, state: seen.append(step),
    )
    assert seen == list(range(61))
    assert result.history.shape == (61,)
    assert result.history[-1] > result.history[0] + 0.1
    assert result.history[-1] <= patrol.upper_bound(g.n_vertices, 2)
    assert result.state.value == result.history[-1]
    if schedule == "one-at-a-time":
        # Step 0 moves robot 0 only.
        again = patrol.train(g, 2, iterations=1, schedule=schedule, seed=5)
        start = np.random.default_rng(5).standard_normal((2, g.n_edges))
        assert not np.array_equal(again.logits[0], start[0])
        np.testing.assert_array_equal(again.logits[1], start[1])


@pytest.mark.parametrize("schedule", patrol.SCHEDULES)
def test_first_steps_of_each_optimizer_hand_worked(schedule):
    # From the same start: a plain step is theta + lr g; Adam's first is theta +
    # lr g / (|g| + 1e-8) (m_hat = g, v_hat = g^2 once bias-corrected).
    g = graph.load("office")
    start = np.random.default_rng(8).standard_normal((3, g.n_edges))
    grad = patrol.value_and_grad(g, start).grad
    moved = slice(0, 1) if schedule == "one-at-a-time" else slice(None)
    expected = {
        "plain": start[moved] + 0.5 * grad[moved],
        "adam": start[moved] + 0.5 * grad[moved] / (np.abs(grad[moved]) + 1e-8),
    }
    for optimizer in patrol.OPTIMIZERS:
        one = patrol.train(
            g, 3, iterations=1, learning_rate=0.5, schedule=schedule, optimizer=optimizer,
            logits=start,
        )  # fmt: skip
        np.testing.assert_allclose(one.logits[moved], expected[optimizer], rtol=1e-12)
        kept = np.ones(3, bool)
        kept[moved] = False
        np.testing.assert_array_equal(one.logits[kept], start[kept])


@pytest.mark.parametrize("schedule", patrol.SCHEDULES)
def test_adam_steps_are_the_textbooks(schedule):
    # Ten steps of train against Adam written out as array expressions, on the gradients
    # of the same policies: the same numbers bit for bit.
    g = graph.load("museum")
    theta = np.random.default_rng(3).standard_normal((3, g.n_edges))
    m, v, t = np.zeros_like(theta), np.zeros_like(theta), np.zeros(3)
    for step in range(10):
        robots = [step % 3] if schedule == "one-at-a-time" else [0, 1, 2]
        grad = patrol.value_and_grad(g, theta).grad[robots]
        t[robots] += 1
        m[robots] = 0.9 * m[robots] + 0.1 * grad
        v[robots] = 0.999 * v[robots] + 0.001 * grad**2
        m_hat = m[robots] / np.array([[1.0 - 0.9 ** float(k)] for k in t[robots]])
        v_hat = v[robots] / np.array([[1.0 - 0.999 ** float(k)] for k in t[robots]])
        theta[robots] += 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    start = np.random.default_rng(3).standard_normal((3, g.n_edges))
    trained = patrol.train(g, 3, iterations=10, schedule=schedule, logits=start)
    np.testing.assert_array_equal(trained.logits, theta)


def test_plain_steps_raise_J():
    g = graph.load("house")
    result = patrol.train(g, 2, iterations=100, learning_rate=5.0, optimizer="plain", seed=5)
    assert result.history[-1] > result.history[0] + 0.1
    assert result.history[-1] <= patrol.upper_bound(g.n_vertices, 2)


def test_training_rejects_logits_for_another_team():
    g = graph.load("house")
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adam', 'plain'\)"):
        patrol.train(g, 3, optimizer="sgd")
    with pytest.raises(ValueError, match=r"schedule must be one of \('simultaneous', 'one-"):
        patrol.train(g, 3, schedule="random")
    with pytest.raises(ValueError, match=r"logits must have shape \(3, 20\) for 3 robots"):
        patrol.train(g, 3, logits=np.zeros((2, 20)))
    with pytest.raises(ValueError, match="n_robots must be >= 1, got 0"):
        patrol.train(g, 0)
    with pytest.raises(TypeError, match="n_robots must be an integer, got 2.5"):
        patrol.train(g, 2.5)
    with pytest.raises(TypeError, match=r"array of shape \(3, 20\); pass starting logits as"):
        patrol.train(g, np.zeros((3, 20)))  # the logits where n_robots goes
    with pytest.raises(TypeError, match=r"integer, got an array of shape \(3,\)$"):
        patrol.train(g, np.arange(3))
    with pytest.raises(ValueError, match="iterations must be >= 0, got -1"):
        patrol.train(g, 2, iterations=-1)
    for rate in (0.0, -0.1, np.nan, np.inf, "0.1", True):
        with pytest.raises(ValueError, match="learning_rate must be a positive finite number"):
            patrol.train(g, 2, learning_rate=rate)
    for tol in (-1e-3, np.nan, False):
        with pytest.raises(ValueError, match="tol must be a number >= 0 or None"):
            patrol.train(g, 2, tol=tol)
    with pytest.raises(TypeError, match="callback must be callable or None, got int"):
        patrol.train(g, 2, callback=3)  # said before the first step, not after it
    with pytest.raises(ValueError, match="seed -1 cannot seed a random generator"):
        patrol.train(g, 2, seed=-1)
    with pytest.raises(TypeError, match="seed 'a' cannot seed a random generator"):
        patrol.train(g, 2, seed="a")
    generator = patrol.train(g, 2, iterations=0, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(generator.logits, patrol.train(g, 2, iterations=0, seed=3).logits)


def test_training_stops_at_tolerance_and_on_callback():
    g = graph.load("house")
    early = patrol.train(g, 2, iterations=500, tol=1e30)
    assert early.history.shape == (2,)
    # Adam's second step lowers J by more than tol here: training goes on until J settles.
    settled = patrol.train(g, 2, iterations=500, tol=1e-3)
    changes = np.diff(settled.history)
    assert changes[1] < -1e-3
    assert abs(changes[-1]) < 1e-3 and (np.abs(changes[:-1]) >= 1e-3).all()
    stopped = patrol.train(g, 2, iterations=500, callback=lambda step, state: step == 3)
    assert stopped.history.shape == (4,)


@pytest.mark.parametrize("error", [FloatingPointError("too far apart"), KeyboardInterrupt()])
@pytest.mark.parametrize("optimizer", patrol.OPTIMIZERS)
@pytest.mark.parametrize("schedule", patrol.SCHEDULES)
def test_a_failed_step_keeps_the_training_before_it(
    patrol_step_failing_at, schedule, optimizer, error
):
    g = graph.load("house")
    expected = patrol.train(g, 3, iterations=2, schedule=schedule, optimizer=optimizer)
    patrol_step_failing_at(4, error)  # step 3
    with pytest.raises(type(error)) as caught:
        patrol.train(g, 3, iterations=10, schedule=schedule, optimizer=optimizer)
    assert caught.value is error
    kept = caught.value.result
    np.testing.assert_array_equal(kept.history, expected.history)
    np.testing.assert_array_equal(kept.logits, expected.logits)  # not the failed update's
    np.testing.assert_array_equal(kept.state.grad, expected.state.grad)
    if sys.version_info >= (3, 11):
        assert "stopped at step 3" in caught.value.__notes__[0]
        assert "up to step 2" in caught.value.__notes__[0]


@pytest.mark.parametrize("schedule", patrol.SCHEDULES)
def test_an_interrupt_just_after_an_update_keeps_the_logits_of_the_state_before_it(
    monkeypatch, schedule
):
    # The interrupt lands as Adam's compiled update returns: its rows are updated, but the
    # training's own bookkeeping after the call has not run.
    g = graph.load("house")
    expected = patrol.train(g, 3, iterations=4, schedule=schedule)
    update, calls = patrol._adam, []

    def interrupted_after_its_fifth_call(*args):
        update(*args)
        calls.append(None)
        if len(calls) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(patrol, "_adam", interrupted_after_its_fifth_call)
    with pytest.raises(KeyboardInterrupt) as caught:
        patrol.train(g, 3, iterations=10, schedule=schedule)
    kept = caught.value.result
    np.testing.assert_array_equal(kept.history, expected.history)
    np.testing.assert_array_equal(kept.logits, expected.logits)
    assert patrol.value_and_grad(g, kept.logits).value == kept.history[-1]


def test_a_first_step_that_fails_has_no_training_to_keep(patrol_step_failing_at):
    patrol_step_failing_at(1, FloatingPointError("too far apart"))
    with pytest.raises(FloatingPointError) as caught:
        patrol.train(graph.load("house"), 2)
    assert not hasattr(caught.value, "result")


def test_a_callback_that_raises_keeps_the_training_up_to_its_step():
    g = graph.load("house")
    expected = patrol.train(g, 2, iterations=3)

    def callback(step, state):
        if step == 3:
            raise KeyError("the user's own")

    with pytest.raises(KeyError, match="the user's own") as caught:
        patrol.train(g, 2, iterations=10, callback=callback)
    kept = caught.value.result
    np.testing.assert_array_equal(kept.history, expected.history)
    np.testing.assert_array_equal(kept.logits, expected.logits)
    assert kept.state.value == expected.history[-1]


def test_upper_bound_hand_worked():
    assert patrol.upper_bound(70, 4) == pytest.approx(4 * np.log(70 / 4), rel=1e-15)
    assert patrol.upper_bound(5, 4) == pytest.approx(5 / np.e, rel=1e-15)  # N / n > 1/e
    assert patrol.upper_bound(0, 3) == patrol.upper_bound(9, 0) == 0.0  # nothing covered


@pytest.mark.parametrize(
    "n_vertices, n_robots, error",
    [(-1, 2, ValueError), (9, -1, ValueError), (9.0, 2, TypeError), (9, True, TypeError)],
)
def test_upper_bound_rejects_bad_counts(n_vertices, n_robots, error):
    with pytest.raises(error, match="n_vertices|n_robots"):
        patrol.upper_bound(n_vertices, n_robots)


def test_plan_and_multifrontal_agree_on_a_grid(monkeypatch):
    g = graph.grid(30, 20, stay=True)
    theta = np.random.default_rng(5).standard_normal((5, g.n_edges))
    planned = patrol.value_and_grad(_solved_by("plan", g, monkeypatch), theta)
    frontal = patrol.value_and_grad(_solved_by("multifrontal", g, monkeypatch), theta)
    assert planned.value == pytest.approx(frontal.value, rel=1e-13)
    np.testing.assert_allclose(planned.mu, frontal.mu, rtol=1e-11)
    np.testing.assert_allclose(planned.grad, frontal.grad, rtol=1e-8, atol=1e-13)


def test_a_plan_too_large_goes_to_the_multifrontal_lu(monkeypatch):
    g = graph.load("museum")
    assert _patterns.pattern(g).plan.n_updates == 301  # MUSEUM: a tiny elimination
    monkeypatch.setattr(_patterns, "_PLAN_UPDATES", 300)
    assert _patterns.pattern(dataclasses.replace(g)).plan is None


def test_robots_on_threads_give_the_same_step_bit_for_bit(monkeypatch):
    g = _solved_by("multifrontal", graph.load("office"), monkeypatch)
    theta = np.random.default_rng(7).standard_normal((3, g.n_edges))
    threads = numba.get_num_threads()
    if threads == 1:
        pytest.skip("one thread: nothing to compare")
    try:
        numba.set_num_threads(1)
        serial = patrol.value_and_grad(g, theta)
        numba.set_num_threads(threads)
        threaded = patrol.value_and_grad(g, theta)
    finally:
        numba.set_num_threads(threads)
    assert threaded.value == serial.value
    np.testing.assert_array_equal(threaded.mu, serial.mu)
    np.testing.assert_array_equal(threaded.grad, serial.grad)


@pytest.mark.parametrize(
    ("eps", "floor", "n_robots"), [(0.0, 0.0, 4), (1e-3, 0.0, 4), (0.0, 0.01, 4), (0.0, 0.01, 11)]
)
def test_the_compiled_planned_step_is_the_step_written_out(eps, floor, n_robots):
    # On a graph with a plan the whole step is one compiled call; it must be, bit for bit,
    # the composition of the public pieces: the softmax, the planned stationary
    # distributions, fastcov.value_and_grad (parallel kernel) and the adjoint, called one
    # by one. patrol.stationary is the step's first half. (11 robots: two passes of
    # lanes, the second with spare lanes.)
    g = graph.load("museum")
    theta = np.random.default_rng(8).standard_normal((n_robots, g.n_edges))
    state = patrol.value_and_grad(g, theta, eps=eps, floor=floor)
    softmax = patrol._softmax_of(g, theta)
    probabilities = patrol.transition_probabilities(g, theta, floor=floor)
    pattern = _patterns.pattern(g)
    mu, h = np.empty((2, n_robots, g.n_vertices))
    passes = [(first, min(LANES, n_robots - first)) for first in range(0, n_robots, LANES)]
    factors = []
    for first, count in passes:
        lanes = np.empty((g.n_edges, LANES))
        _policy.into_lanes(probabilities, first, 0, g.n_edges, lanes)
        values, mu_lanes = np.empty((pattern.plan.n_slots, LANES)), np.empty((g.n_vertices, LANES))
        _solvers.planned_stationary(
            pattern.plan, pattern.planned_slots, pattern.kept_edges, g.indptr, g.indices,
            lanes, values, mu_lanes,
        )  # fmt: skip
        mu[first : first + count] = mu_lanes[:, :count].T
        factors.append(values)
    value, coefficients = fastcov.value_and_grad(mu, eps, backend="cpu")
    for (first, count), values in zip(passes, factors, strict=True):
        h_lanes = np.empty((g.n_vertices, LANES))
        _solvers.planned_adjoint(pattern.plan, values, coefficients[first:], mu[first:], h_lanes)
        h[first : first + count] = h_lanes[:, :count].T
    grad = _policy.softmax_chain_rule(g, softmax, mu, h)
    if floor:
        grad *= patrol._floor_scale(g, floor)
    assert state.value == value
    np.testing.assert_array_equal(state.mu, mu)
    np.testing.assert_array_equal(patrol.stationary(g, theta, floor=floor), mu)
    np.testing.assert_array_equal(state.probabilities, probabilities)
    np.testing.assert_array_equal(state.grad, grad)


def test_steps_reuse_the_factor_arrays_of_earlier_steps(monkeypatch):
    g = _solved_by("multifrontal", graph.load("office"), monkeypatch)
    theta = np.random.default_rng(9).standard_normal((3, g.n_edges))
    pattern = _patterns.pattern(g)
    first = patrol.value_and_grad(g, theta)
    spare = {id(array) for array in pattern._spare_factors}
    assert len(spare) == 3  # one a robot, given back when the step was done
    second = patrol.value_and_grad(g, theta)
    assert {id(array) for array in pattern._spare_factors} == spare
    assert second.value == first.value
    np.testing.assert_array_equal(second.grad, first.grad)


def test_a_large_tree_gets_a_plan_not_nested_dissection():
    # Beyond _PLAN_ROWS a graph goes to the multifrontal LU, unless its nested dissection
    # is poor: level-structure separators of a tree are wide (a random tree of 5e4
    # vertices: 2.5e6 flops a vertex), while a minimum-degree LU of it has no fill.
    rng = np.random.default_rng(10)
    n = _patterns._PLAN_ROWS + 2000
    edges = [(v, int(rng.integers(0, v))) for v in range(1, n)]
    g = graph.Graph.from_edges(edges, stay=True)
    pattern = _patterns.pattern(g)
    assert pattern.plan is not None and pattern.analysis is None
    theta = rng.standard_normal((2, g.n_edges))
    state = patrol.value_and_grad(g, theta)
    shape = (g.n_vertices, g.n_vertices)
    for mu, p in zip(state.mu, state.probabilities, strict=True):
        chain = scipy.sparse.csr_array((p, g.indices, g.indptr), shape=shape)
        np.testing.assert_allclose(chain.T @ mu, mu, rtol=1e-12, atol=1e-18)
