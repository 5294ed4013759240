"""The root of a chain's heaviest spanning tree (fastcov._trees), against trees counted
one by one."""

import itertools

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcov._trees import heaviest_tree_roots


def _roots(moves, n):
    """heaviest_tree_roots of {(source, target): probability}, as a sorted list."""
    sources = np.array([s for s, _ in moves], dtype=np.int64)
    targets = np.array([t for _, t in moves], dtype=np.int64)
    probabilities = np.array(list(moves.values()), dtype=np.float64)
    return sorted(heaviest_tree_roots(sources, targets, probabilities, n).tolist())


def test_two_vertices_the_one_harder_to_leave():
    # mu(0) / mu(1) = P(1 -> 0) / P(0 -> 1); the self-loops are in no tree.
    assert _roots({(0, 1): 1e-5, (1, 0): 0.5, (0, 0): 1 - 1e-5, (1, 1): 0.5}, 2) == [0]
    assert _roots({(0, 1): 0.5, (1, 0): 1e-300, (0, 0): 0.5}, 2) == [1]


def test_three_vertices_hand_worked():
    # The trees towards each vertex (self-loops in none): towards 0, {1 -> 0, 2 -> 0} of
    # weight 0.5 and {1 -> 2, 2 -> 0} of 1e-200; towards 1, {0 -> 1, 2 -> 0} of 0.25;
    # towards 2, {0 -> 1, 1 -> 2} of 2.5e-201. mu is proportional to their sums.
    moves = {(0, 1): 0.25, (0, 0): 0.75, (1, 0): 0.5, (1, 2): 1e-200, (1, 1): 0.5, (2, 0): 1}
    assert _roots(moves, 3) == [0]
    moves[(1, 0)] = 0.125  # towards 0: 0.125, towards 1 still 0.25
    assert _roots(moves, 3) == [1]


def test_a_cycle_is_left_by_the_move_that_costs_least_over_the_one_it_replaces():
    # Log-probabilities: 0 <-> 3 at 0, 3 -> 1 at -1, 1 -> 0 at 0, 0 -> 2 at -4, 2 -> 0 at
    # -5. The heaviest trees towards each vertex weigh e^-5 (0), e^-6 (1), e^-4 (2: 0 -> 2,
    # 1 -> 0, 3 -> 0) and e^-5 (3). Contracted, the cycle 0 <-> 3 leaves by 0 -> 2, which
    # costs 4 over the move 0 -> 3 it replaces, not by 3 -> 1, which costs 1 but 1 over
    # 3 -> 0: without that reduction the root came out 0 or 3.
    logs = {(0, 3): 0.0, (3, 0): 0.0, (3, 1): -1.0, (1, 0): 0.0, (0, 2): -4.0, (2, 0): -5.0}
    assert _roots({move: np.exp(log) for move, log in logs.items()}, 4) == [2]


def test_a_cost_taken_off_a_whole_heap_reaches_every_move_in_it():
    # Costs -log P: 0 -> 3 at 6, 0 -> 1 at 9, 1 -> 0 at 4, 1 -> 2 at 3, 1 -> 3 at 8,
    # 2 -> 1 at 2, 3 -> 2 at 5. The cheapest trees towards 0, 1, 2, 3 cost 11 (1 -> 0,
    # 2 -> 1, 3 -> 2), 13, 14 and 12. Vertex 1's three moves fill a heap two levels deep;
    # contracting the cycle 1 <-> 2 takes 3 off all of them. With the deeper moves left
    # at their old costs, the root came out 1.
    costs = {(0, 3): 6, (0, 1): 9, (1, 0): 4, (1, 2): 3, (1, 3): 8, (2, 1): 2, (3, 2): 5}
    assert _roots({move: np.exp(-cost) for move, cost in costs.items()}, 4) == [0]


def test_closed_classes_each_get_a_root():
    # In float64 moves of probability 0 are impossible: from 0 the robot is trapped at 1
    # or in the cycle 2 <-> 3, where 3 is harder to leave.
    moves = {(0, 1): 0.5, (0, 2): 0.5, (1, 0): 0.0, (1, 1): 1.0, (2, 3): 1.0, (3, 2): 0.1}
    moves[(3, 3)] = 0.9
    assert _roots(moves, 4) == [1, 3]
    assert _roots({}, 3) == [0, 1, 2]  # no moves at all
    assert _roots({(0, 0): 1.0}, 1) == [0]


def _closed_classes(n, sources, targets):
    moves = scipy.sparse.csr_array(
        (np.ones(sources.size), (sources, targets)), shape=(n, n), dtype=float
    )
    _, component = scipy.sparse.csgraph.connected_components(
        moves, directed=True, connection="strong"
    )
    leaves = set(component[sources[component[sources] != component[targets]]].tolist())
    return [np.flatnonzero(component == c) for c in set(component.tolist()) - leaves]


def _heaviest_tree_costs(members, costs):
    """For each r of ``members``, the least sum of -log P over the trees towards r that
    span ``members``, every tree written out: each other member takes one of its moves.
    """
    least = {}
    for root in members:
        others = [v for v in members if v != root]
        choices = [[t for t in members if (v, t) in costs] for v in others]
        least[root] = np.inf
        for parents in itertools.product(*choices):
            parent = dict(zip(others, parents, strict=True))
            if all(_reaches(v, root, parent) for v in others):
                least[root] = min(least[root], sum(costs[v, parent[v]] for v in others))
    return least


def _reaches(vertex, root, parent):
    for _ in range(len(parent) + 1):
        if vertex == root:
            return True
        vertex = parent[vertex]
    return False


@settings(max_examples=600, deadline=None)
@given(
    n=st.integers(1, 5),
    data=st.data(),
)
def test_the_root_is_that_of_the_heaviest_tree_of_its_class(n, data):
    # A cycle through every vertex in a drawn order (strongly connected, unless a move
    # underflows to 0), and more moves drawn.
    pairs = [(s, t) for s in range(n) for t in range(n) if s != t]
    order = data.draw(st.permutations(range(n)))
    cycle = [(order[k], order[(k + 1) % n]) for k in range(n)] if n > 1 else []
    rest = [pair for pair in pairs if pair not in cycle]
    chosen = cycle + (data.draw(st.lists(st.sampled_from(rest), unique=True)) if rest else [])
    # Logs of probabilities over 700 orders of magnitude, some moves 0; or small whole
    # numbers, whose near ties test each cost the heaps carry (over 1600 orders, the
    # cheapest move tends to win whatever is added to it).
    logs = data.draw(st.sampled_from([st.floats(-1600.0, 0.0), st.integers(-9, 0).map(float)]))
    logs = data.draw(st.lists(logs, min_size=len(chosen), max_size=len(chosen)))
    moves = {pair: float(np.exp(log)) for pair, log in zip(chosen, logs, strict=True)}
    possible = {pair: -np.log(p) for pair, p in moves.items() if p > 0.0}
    sources = np.array([s for s, _ in possible], dtype=np.int64)
    targets = np.array([t for _, t in possible], dtype=np.int64)
    roots = _roots(moves, n)
    classes = _closed_classes(n, sources, targets)
    assert len(roots) == len(classes)
    for members in classes:
        (root,) = [r for r in roots if r in members]
        least = _heaviest_tree_costs(members.tolist(), possible)
        best = min(least.values())
        assert least[root] <= best + 1e-9 * max(1.0, best)


@pytest.mark.parametrize("n", [10, 1000])
def test_a_directed_ring_is_rooted_where_it_is_slowest(n):
    # The shares of a ring of stays are proportional to 1 / P(leave): the heaviest tree
    # leaves out the move out of the vertex left most rarely.
    rng = np.random.default_rng(n)
    leave = np.exp(-rng.uniform(0, 700, n))
    sources = np.concatenate([np.arange(n), np.arange(n)])
    targets = np.concatenate([(np.arange(n) + 1) % n, np.arange(n)])
    probabilities = np.concatenate([leave, 1 - leave])
    assert heaviest_tree_roots(sources, targets, probabilities, n).tolist() == [
        int(np.argmin(leave))
    ]
