"""Where a Markov chain spends most of its time, read off its transition probabilities
alone: the root of its heaviest spanning tree.

By the Markov chain tree theorem, a chain's stationary distribution is

    mu(r) proportional to sum over the spanning trees T directed towards r of
                          prod over the moves e of T of P(e)

(self-loops belong to no tree). Where the probabilities span hundreds of orders of
magnitude, as a robot's do after large training steps, a few trees outweigh all the
others, and the root of the heaviest tree of all has a share at least the largest share
over the number of trees towards the busiest vertex. It is a ground for a solve whose
measure stays inside float64's range, where a solve grounded at a vertex the robot almost
never visits under- and overflows before it can tell where the robot is
(:mod:`fastcov.patrol`).

Edmonds' algorithm finds that root, on the costs -log P(e): every vertex takes its
cheapest move out; each cycle these moves close becomes one vertex, whose moves out cost
what they cost above the move its member took; and so on, until the moves taken close no
cycle. A virtual root with a move of equal cost into every vertex tells which vertex the
tree is rooted at: entering a cycle, that move lands on the member that gives up the
dearest move, the one hardest to leave. The vertices left with no move out are the
chain's closed classes, one where it is irreducible. Tarjan's form of it follows one
path of cheapest moves at a time, contracting each cycle as the path closes it, with the
moves out of each vertex in a skew heap that takes a cost off all of them at once: O(E
log E) for E moves. (Rounds of contractions of every cycle at once, in NumPy, took 603
rounds and 4.2 s on a 100 x 100 grid of random logits; this, 0.005 to 0.013 s.)
"""

import numpy as np

from ._jit import inline_jit, jit

__all__ = ["heaviest_tree_roots"]


def heaviest_tree_roots(sources, targets, probabilities, n):
    """The root of the heaviest spanning tree of each closed class of a chain.

    Parameters
    ----------
    sources, targets : ndarray of int, shape (n_moves,)
        The moves of the chain (self-loops allowed, and ignored).
    probabilities : ndarray of float64, shape (n_moves,)
        Their probabilities; a move of probability 0 is impossible.
    n : int
        Vertices, >= 1.

    Returns
    -------
    ndarray of int64
        One vertex of each closed class of the chain (a set of vertices it never leaves;
        an irreducible chain has one, of all its vertices): the root of the heaviest tree
        towards it, whose share of the class's stationary distribution is at least the
        largest share over the number of trees towards the busiest vertex.
    """
    moves = (sources != targets) & (probabilities > 0.0)
    return _roots(
        n,
        np.asarray(sources[moves], np.int64),
        np.asarray(targets[moves], np.int64),
        -np.log(probabilities[moves]),
    )


@jit
def _roots(n, sources, targets, costs):
    m = costs.size
    heaps = np.empty(m, _HEAP)
    for move in range(m):
        heaps[move].cost, heaps[move].pending = costs[move], 0.0
        heaps[move].left, heaps[move].right = -1, -1
    first = np.full(n, -1)  # the heap of each vertex's moves out, by its root move
    for move in range(m):
        first[sources[move]] = _meld(heaps, first[sources[move]], move)
    node = np.arange(n)  # union-find: the vertex whose node each vertex is in
    # The cost of the virtual root's move into each node, less the moves its
    # contractions gave up, and the vertex that move lands on.
    entry_costs, entries = np.zeros(n), np.arange(n)
    taken = np.zeros(n)  # the cost of the move each node on the path took
    NEW, ON_PATH, DONE = 0, 1, 2
    state = np.full(n, NEW, np.int8)
    path, position = np.empty(n, np.int64), np.empty(n, np.int64)
    roots = []
    for start in range(n):
        if state[_find(node, start)] != NEW:
            continue
        top = 0
        path[0] = _find(node, start)
        state[path[0]], position[path[0]] = ON_PATH, 0
        while True:
            at = path[top]
            while first[at] >= 0 and _find(node, targets[first[at]]) == at:
                first[at] = _pop(heaps, first[at])  # a move inside the node
            if first[at] < 0:
                roots.append(entries[at])  # no move out: a closed class
                break
            taken[at] = heaps[first[at]].cost
            to = _find(node, targets[first[at]])
            if state[to] == DONE:
                break  # the path joins a tree already rooted
            if state[to] == NEW:
                top += 1
                path[top], state[to], position[to] = to, ON_PATH, top
                continue
            # The path closed a cycle, from ``to`` to ``at``: contract it into ``to``.
            cycle = path[position[to] : top + 1]
            merged, least, entry = -1, np.inf, -1
            for member in cycle:
                _add(heaps, first[member], -taken[member])
                merged = _meld(heaps, merged, first[member])
                if entry_costs[member] - taken[member] < least:
                    least, entry = entry_costs[member] - taken[member], entries[member]
                node[member] = to
            first[to], entry_costs[to], entries[to] = merged, least, entry
            top = position[to]
        for k in range(top + 1):
            state[path[k]] = DONE
    return np.array(roots, dtype=np.int64)


@inline_jit
def _find(node, vertex):
    """The node ``vertex`` is in, halving the paths on the way."""
    while node[vertex] != vertex:
        node[vertex] = node[node[vertex]]
        vertex = node[vertex]
    return vertex


# Skew heaps of moves by cost, in one record per move (a heap is its root move, -1 the
# empty one): what is added to a whole heap waits at its root, in ``pending``, for the
# moves below. One record, not an array per field, because the heaps are walked in no
# order that caches can foresee: on a 1000 x 1000 grid, where each step of a meld missed
# the caches once per field, it took 35 s; with the fields together, 7.8 s.
_HEAP = np.dtype(
    [("cost", np.float64), ("pending", np.float64), ("left", np.int64), ("right", np.int64)],
    align=True,
)


@inline_jit
def _add(heaps, heap, amount):
    """Add ``amount`` to the cost of every move of ``heap``."""
    if heap >= 0:
        heaps[heap].cost += amount
        heaps[heap].pending += amount


@inline_jit
def _pop(heaps, heap):
    """The heap less its root move."""
    _pass_down(heaps, heap)
    return _meld(heaps, heaps[heap].left, heaps[heap].right)


@inline_jit
def _meld(heaps, a, b):
    """The union of heaps ``a`` and ``b``: down the right spines, each step swapping the
    children (the skew heap's amortised O(log n)).
    """
    if a < 0 or b < 0:
        return max(a, b)
    if heaps[b].cost < heaps[a].cost:
        a, b = b, a
    root = a
    while True:
        _pass_down(heaps, a)
        rest = heaps[a].right
        heaps[a].right = heaps[a].left
        if rest < 0:
            heaps[a].left = b
            return root
        if heaps[b].cost < heaps[rest].cost:
            rest, b = b, rest
        heaps[a].left = rest
        a = rest


@inline_jit
def _pass_down(heaps, move):
    amount = heaps[move].pending
    if amount != 0.0:
        _add(heaps, heaps[move].left, amount)
        _add(heaps, heaps[move].right, amount)
        heaps[move].pending = 0.0
