"""Sparse LU of large matrices with one sparsity pattern: nested dissection and dense fronts.

The patrol solver factors one matrix per robot at every gradient step, all with the
graph's pattern. On a large graph the arithmetic of the factorisation is the cost (about
10^10 flops per robot on a 10^6-vertex grid), and it runs fastest as dense matrix products,
which BLAS does at close to the machine's peak. This module analyses the pattern once
(:class:`Analysis`) and then factors and solves with it:

- **Order.** Nested dissection of the graph of A + A^T: a connected part larger than a leaf
  is split by a separator, the vertices of the middle level of a breadth-first search from
  a pseudo-peripheral vertex that border the next level (George and Liu's automatic nested
  dissection), and the rest is split again. Each separator, and each leaf, is a node of the
  separator tree; the order lists the nodes children first.
- **Fronts.** Node t eliminates its own k_t consecutive positions (its pivots). What their
  elimination touches later lies in the node's boundary B_t: its pivots' neighbours of
  later position, and its children's boundaries, less its pivots. The front of t is a dense
  matrix on (pivots, B_t). A factorisation walks the nodes in order: it assembles the
  front from the entries of A that the node owns and the children's Schur complements
  (their update matrices, kept on a stack), eliminates the pivots (blocked LU, the trailing
  updates by BLAS ``dgemm`` and ``dtrsm``) and leaves the Schur complement on B_t for the
  parent (the multifrontal method).

There is no pivoting: the matrices must allow elimination in any symmetric order, as
non-singular M-matrices do (every Schur complement of one is again one, with a positive
diagonal). Given an M-matrix's row sums, :func:`factor` computes every pivot from them, as
:func:`fastcov._elimination.factor` does: the sums are one more column of each front, and
since L and the off-diagonal part of U are <= 0, neither BLAS's updates nor the solve of a
system with a non-negative right-hand side subtract numbers of like sign.

Factors of node t, in one float64 array at ``factor_ptr[t]``: its k_t x f_t rows of U
(the pivots' rows of the eliminated front: U_KK on and above the diagonal, L_KK below it,
then U_KB), then the b_t x k_t block L_BK.
"""

import ctypes
import threading
from typing import NamedTuple

import llvmlite.binding
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from ._jit import jit

__all__ = ["Analysis", "factor", "solve", "one_blas_thread"]


#: Connected parts up to this many vertices are not split: their front is dense.
LEAF_VERTICES = 32

#: Columns eliminated per block of a front's dense LU before a BLAS update.
_BLOCK = 16


class Analysis(NamedTuple):
    """The separator tree and the fronts of one n x n sparsity pattern (a named tuple of
    arrays, so compiled code takes it whole). Positions are places in the elimination
    order; nodes are numbered children first.

    Attributes
    ----------
    order : ndarray of int64, shape (n,)
        order[v] is the position of row and column v.
    node_ptr : ndarray of int64, shape (T + 1,)
        Node t's pivots are the positions node_ptr[t] .. node_ptr[t + 1] - 1.
    child_ptr, children : ndarray of int64
        Node t's children are children[child_ptr[t]:child_ptr[t + 1]], in order.
    boundary_ptr, boundary : ndarray of int64
        B_t = boundary[boundary_ptr[t]:boundary_ptr[t + 1]], ascending positions.
    in_parent : ndarray of int64, shape like ``boundary``
        Where each member of B_t lies in the front of t's parent (its row there).
    entry_ptr, entries, entry_places : ndarray of int64
        Node t owns the matrix entries entries[entry_ptr[t]:entry_ptr[t + 1]] (indices
        into the rows and columns the analysis was made from); entries[at] goes to place
        entry_places[at] of the row-major front (f_t x (f_t + 1), the row sums last).
    factor_ptr : ndarray of int64, shape (T + 1,)
        Where each node's factors lie in :func:`factor`'s result.
    largest_front, stack_size : int64 arrays of one element
        The largest front's order, and the most float64 the update stack holds at once.
    """

    order: np.ndarray
    node_ptr: np.ndarray
    child_ptr: np.ndarray
    children: np.ndarray
    boundary_ptr: np.ndarray
    boundary: np.ndarray
    in_parent: np.ndarray
    entry_ptr: np.ndarray
    entries: np.ndarray
    entry_places: np.ndarray
    factor_ptr: np.ndarray
    largest_front: np.ndarray
    stack_size: np.ndarray

    @classmethod
    def from_pattern(cls, rows, columns, n, leaf=LEAF_VERTICES):
        """Analyse the pattern with entries at (rows[e], columns[e]), diagonal included.

        Parameters
        ----------
        rows, columns : array_like of int, shape (nnz,)
            Positions of the entries of an n x n matrix; the values of repeated positions
            add up.
        n : int
        leaf : int
            Connected parts of at most this many vertices are not split further.
        """
        rows, columns = np.asarray(rows, np.int64), np.asarray(columns, np.int64)
        adjacency_ptr, adjacency = _adjacency(rows, columns, n)
        order, node_ptr, parent = _nested_dissection(adjacency_ptr, adjacency, leaf)
        child_ptr, children = _children(parent)
        boundary_ptr, boundary, in_parent = _boundaries(
            adjacency_ptr, adjacency, order, node_ptr, child_ptr, children, parent
        )
        entry_ptr, entries, entry_places = _entry_places(
            order[rows], order[columns], node_ptr, boundary_ptr, boundary
        )
        factor_ptr, largest, stack = _sizes(node_ptr, boundary_ptr, child_ptr, children)
        return cls(
            order,
            node_ptr,
            child_ptr,
            children,
            boundary_ptr,
            boundary,
            in_parent,
            entry_ptr,
            entries,
            entry_places,
            factor_ptr,
            np.array([largest]),
            np.array([stack]),
        )

    @property
    def n(self):
        return len(self.order)

    @property
    def n_factors(self):
        """float64 values in one matrix's factors."""
        return int(self.factor_ptr[-1])

    def flops(self):
        """Floating-point operations of one factorisation, dense fronts counted whole."""
        k = np.diff(self.node_ptr).astype(np.float64)
        b = np.diff(self.boundary_ptr).astype(np.float64)
        # Eliminating k pivots of an order f front: sum_i 2 (f - i)^2 for i < k.
        return float(np.sum(2.0 / 3.0 * ((k + b) ** 3 - b**3) - (k + b) ** 2 + b**2))


@jit
def factor(analysis, values, row_sums, factors):
    """Write the LU factors of the matrix with ``values`` (float64, one per entry of the
    pattern, in its order) into ``factors`` (float64, ``analysis.n_factors``).

    ``row_sums`` is either empty: plain Gaussian elimination; or, for an M-matrix
    (off-diagonal entries <= 0), its row sums, shape (n,), >= 0, in the original row
    order. Then the row sums ride along as one more column of every front, and each pivot
    is computed as its row's sum less its off-diagonal entries (the Grassmann-Taksar-
    Heyman variant, as in :func:`fastcov._elimination.factor`): no step subtracts numbers
    of like sign, and the diagonal entries given are never read.
    """
    node_ptr, boundary_ptr = analysis.node_ptr, analysis.boundary_ptr
    carried = row_sums.size > 0
    sums = np.zeros(analysis.order.size)
    if carried:
        for v in range(sums.size):
            sums[analysis.order[v]] = row_sums[v]
    largest = analysis.largest_front[0]
    front_buffer = np.empty(largest * (largest + 1))
    stack = np.empty(analysis.stack_size[0])
    parameters = _blas_parameters()
    top = 0
    for t in range(node_ptr.size - 1):
        k = node_ptr[t + 1] - node_ptr[t]
        b = boundary_ptr[t + 1] - boundary_ptr[t]
        f = k + b
        # The front, with the row sums as its last column.
        flat = front_buffer[: f * (f + 1)]
        front = flat.reshape((f, f + 1))
        flat[:] = 0.0
        for at in range(analysis.entry_ptr[t], analysis.entry_ptr[t + 1]):
            flat[analysis.entry_places[at]] += values[analysis.entries[at]]
        for i in range(k):
            front[i, f] = sums[node_ptr[t] + i]
        top = _extend_add(analysis, t, stack, top, front)
        _eliminate(front, k, carried, parameters)
        at = analysis.factor_ptr[t]
        for i in range(k):
            factors[at : at + f] = front[i, :f]
            at += f
        for i in range(k, f):
            factors[at : at + k] = front[i, :k]
            at += k
        for i in range(b):
            stack[top : top + b + 1] = front[k + i, k:]
            top += b + 1


@jit
def solve(analysis, factors, rhs, transposed):
    """Solve A x = rhs (A^T x = rhs with ``transposed``) in place; ``rhs`` is float64 (n,)
    in the original order and ``factors`` is :func:`factor`'s result.
    """
    order, node_ptr = analysis.order, analysis.node_ptr
    x = np.empty(order.size)
    for v in range(order.size):
        x[order[v]] = rhs[v]
    # A = L U: L y = b forwards, then U x = y backwards. A^T = U^T L^T: U^T y = b
    # forwards, then L^T x = y backwards. Every loop reads the factors row by row (a
    # transposed factor by spreading each solved entry over the others).
    for t in range(node_ptr.size - 1):
        s, k, outer, rows, lower = _node_factors(analysis, factors, t)
        if transposed:
            for i in range(k):
                x[s + i] /= rows[i, i]
                solved = x[s + i]
                for j in range(i + 1, k):
                    x[s + j] -= rows[i, j] * solved
                for j in range(outer.size):
                    x[outer[j]] -= rows[i, k + j] * solved
        else:
            for i in range(k):
                total = 0.0
                for j in range(i):
                    total += rows[i, j] * x[s + j]
                x[s + i] -= total
            for j in range(outer.size):
                total = 0.0
                for i in range(k):
                    total += lower[j, i] * x[s + i]
                x[outer[j]] -= total
    for t in range(node_ptr.size - 2, -1, -1):
        s, k, outer, rows, lower = _node_factors(analysis, factors, t)
        if transposed:
            for j in range(outer.size):
                known = x[outer[j]]
                for i in range(k):
                    x[s + i] -= lower[j, i] * known
            for i in range(k - 1, -1, -1):
                solved = x[s + i]
                for j in range(i):
                    x[s + j] -= rows[i, j] * solved
        else:
            for i in range(k - 1, -1, -1):
                total = 0.0
                for j in range(i + 1, k):
                    total += rows[i, j] * x[s + j]
                for j in range(outer.size):
                    total += rows[i, k + j] * x[outer[j]]
                x[s + i] = (x[s + i] - total) / rows[i, i]
    for v in range(order.size):
        rhs[v] = x[order[v]]


@jit
def _node_factors(analysis, factors, t):
    """Node t's (first pivot position, pivot count k, boundary, its k x f rows of U, its
    b x k block L_BK), views into ``factors``.
    """
    s, k = analysis.node_ptr[t], analysis.node_ptr[t + 1] - analysis.node_ptr[t]
    outer = analysis.boundary[analysis.boundary_ptr[t] : analysis.boundary_ptr[t + 1]]
    f = k + outer.size
    at = analysis.factor_ptr[t]
    rows = factors[at : at + k * f].reshape((k, f))
    lower = factors[at + k * f : analysis.factor_ptr[t + 1]].reshape((outer.size, k))
    return s, k, outer, rows, lower


# ---------------------------------------------------------------------------------------
# The numeric factorisation: a front's assembly and its dense elimination.


@jit
def _extend_add(analysis, t, stack, top, front):
    """Add the update matrices of t's children (the top of the stack, in order; b x (b + 1)
    each, their row sums last) into ``front``; return the stack's new top (where they
    began).
    """
    boundary_ptr, in_parent = analysis.boundary_ptr, analysis.in_parent
    children = analysis.children[analysis.child_ptr[t] : analysis.child_ptr[t + 1]]
    for c in children:
        b = boundary_ptr[c + 1] - boundary_ptr[c]
        top -= b * (b + 1)
    at = top
    sums = front.shape[1] - 1
    for c in children:
        places = in_parent[boundary_ptr[c] : boundary_ptr[c + 1]]
        b = places.size
        for i in range(b):
            row = front[places[i]]
            for j in range(b):
                row[places[j]] += stack[at + j]
            row[sums] += stack[at + b]
            at += b + 1
    return top


@jit
def _eliminate(front, k, carried, parameters):
    """Eliminate the first k pivots of the C-contiguous f x (f + 1) ``front`` in place: L
    below the diagonal of its first k columns, U in its first k rows, and the Schur
    complement in front[k:, k:]. Its last column holds the rows' sums; with ``carried``
    the pivots come from them.

    Blocks of ``_BLOCK`` columns: the block's columns are eliminated one pivot at a time
    (over all rows below), then its rows of U right of the block come from a triangular
    solve and the trailing matrix from one matrix product (BLAS), the sums column
    included. Within a block, a pivot row's sum over the block's columns is its sum less
    its entries right of the block (all <= 0: no cancellation), carried like the sums.
    """
    f = front.shape[0]
    block_sums = np.empty(_BLOCK)
    for first in range(0, k, _BLOCK):
        last = min(first + _BLOCK, k)
        if carried:
            for i in range(first, last):
                total = front[i, f]
                for j in range(last, f):
                    total -= front[i, j]
                block_sums[i - first] = total
        for i in range(first, last):
            if carried:
                pivot = block_sums[i - first]
                for j in range(i + 1, last):
                    pivot -= front[i, j]
                front[i, i] = pivot
            pivot = front[i, i]
            for r in range(i + 1, f):
                front[r, i] /= pivot
                factor = front[r, i]
                if factor != 0.0:
                    for c in range(i + 1, last):
                        front[r, c] -= factor * front[i, c]
                    if carried and r < last:
                        block_sums[r - first] -= factor * block_sums[i - first]
        if last < f:
            _triangular_solve(front, first, last, parameters)
            _schur_update(front, first, last, parameters)


# BLAS from SciPy (the Fortran interface through scipy.linalg.cython_blas), called on a
# row-major front F as on the column-major matrix X = F^T, in place: no copies.
_DGEMM_ADDRESS = get_cython_function_address("scipy.linalg.cython_blas", "dgemm")
llvmlite.binding.add_symbol("fastcov_dgemm", _DGEMM_ADDRESS)
llvmlite.binding.add_symbol(
    "fastcov_dtrsm", get_cython_function_address("scipy.linalg.cython_blas", "dtrsm")
)
_dgemm = types.ExternalFunction("fastcov_dgemm", types.void(*([types.intp] * 13)))
_dtrsm = types.ExternalFunction("fastcov_dtrsm", types.void(*([types.intp] * 11)))


def one_blas_thread():
    """A context in which the BLAS calls of the calling thread run on that thread alone,
    where the BLAS behind SciPy is an OpenBLAS with ``openblas_set_num_threads_local``
    (SciPy's wheels); elsewhere it does nothing.

    Robots are factored on threads of their own; an OpenBLAS that also starts its threads
    for each call made a 10^6-vertex step 2.8x slower on 2 cores (2 robots: 6.3 s, against
    2.2 s with one BLAS thread each). See :class:`_OneBlasThread` for how threads share it.
    """
    return _ONE_BLAS_THREAD


class _OneBlasThread:
    """One BLAS thread for every thread inside, through ``setter`` (sets the count,
    returns the previous one).

    In OpenBLAS's pthreads builds, SciPy's among them, the setter changes the count of the
    whole process, not of the calling thread. Each thread still sets 1 (where the setting
    is the thread's own, each needs it), but only the last thread to leave restores the
    count from before the first came in. Restoring each thread's own previous count, as
    this once did, let a thread that left early give the BLAS its threads back in the
    middle of another's factorisation (whose last bits then varied from run to run), and
    left the process on one BLAS thread for good after a thread that came in late. While
    any thread is inside, the process's other BLAS calls run on one thread too.
    """

    def __init__(self, setter):
        self.setter = setter
        self.lock = threading.Lock()
        self.inside = 0
        self.before = None

    def __enter__(self):
        if self.setter is not None:
            with self.lock:
                previous = self.setter(1)
                if self.inside == 0:
                    self.before = previous
                self.inside += 1
        return self

    def __exit__(self, *exception):
        if self.setter is not None:
            with self.lock:
                self.inside -= 1
                if self.inside == 0:
                    self.setter(self.before)


def _local_thread_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` in the library that holds SciPy's
    dgemm, or None.
    """

    class _Info(ctypes.Structure):
        _fields_ = [
            ("file", ctypes.c_char_p),
            ("base", ctypes.c_void_p),
            ("symbol", ctypes.c_char_p),
            ("address", ctypes.c_void_p),
        ]

    try:
        info = _Info()
        if not ctypes.CDLL(None).dladdr(ctypes.c_void_p(_DGEMM_ADDRESS), ctypes.byref(info)):
            return None
        setter = ctypes.CDLL(info.file.decode()).openblas_set_num_threads_local
    except (AttributeError, OSError, TypeError):  # no dladdr, no such library or symbol
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


_ONE_BLAS_THREAD = _OneBlasThread(_local_thread_setter())


@jit
def _blas_parameters():
    """The by-reference arguments of the BLAS calls: the characters N, U, R; four int32
    sizes; the scalars -1 and 1. The caller keeps them alive across the calls.
    """
    return (
        np.array([ord("N"), ord("U"), ord("R")], np.uint8),
        np.zeros(4, np.int32),
        np.array([-1.0, 1.0]),
    )


@jit
def _schur_update(front, first, last, parameters):
    """front[last:, last:] -= front[last:, first:last] @ front[first:last, last:]."""
    chars, sizes, scalars = parameters
    f, width = front.shape
    sizes[0], sizes[1], sizes[2], sizes[3] = width - last, f - last, last - first, width
    no, m, n, inner, ld = chars.ctypes.data, *_int_addresses(sizes)
    # X[last:, last:] -= X[last:, first:last] X[first:last, last:], X = F^T.
    _dgemm(
        no, no, m, n, inner, scalars.ctypes.data,
        _address(front, first, last), ld,
        _address(front, last, first), ld,
        scalars.ctypes.data + 8, _address(front, last, last), ld,
    )  # fmt: skip


@jit
def _triangular_solve(front, first, last, parameters):
    """front[first:last, last:] = L^-1 front[first:last, last:], L the unit lower triangle
    of front[first:last, first:last].
    """
    chars, sizes, scalars = parameters
    width = front.shape[1]
    sizes[0], sizes[1], sizes[3] = width - last, last - first, width
    c = chars.ctypes.data
    m, n, _, ld = _int_addresses(sizes)
    # X[last:, first:last] = X[last:, first:last] T^-1, T = X[first:last, first:last]: L
    # transposed, unit upper. Arguments: side R, uplo U, transa N, diag U.
    _dtrsm(
        c + 2, c + 1, c, c + 1, m, n, scalars.ctypes.data + 8,
        _address(front, first, first), ld,
        _address(front, first, last), ld,
    )  # fmt: skip


@jit
def _int_addresses(sizes):
    base = sizes.ctypes.data
    return base, base + 4, base + 8, base + 12


@jit
def _address(front, i, j):
    return front.ctypes.data + (i * front.shape[1] + j) * 8


# ---------------------------------------------------------------------------------------
# The analysis.


@jit
def _adjacency(rows, columns, n):
    """CSR of the graph of A + A^T, without self-loops or repeats, neighbours ascending."""
    # Each off-diagonal entry both ways; a diagonal one goes to no vertex (key -1).
    keys = np.concatenate((rows, columns))
    for e in range(rows.size):
        if rows[e] == columns[e]:
            keys[e] = -1
            keys[rows.size + e] = -1
    ptr, at = _buckets(keys, n)
    neighbours = np.concatenate((columns, rows))[at]
    # Sort each vertex's neighbours and drop repeats, compacting as it goes.
    kept = 0
    start = 0
    for v in range(n):
        end = ptr[v + 1]
        mine = np.sort(neighbours[start:end])
        ptr[v] = kept
        for q in range(mine.size):
            if q == 0 or mine[q] != mine[q - 1]:
                neighbours[kept] = mine[q]
                kept += 1
        start = end
    ptr[n] = kept
    return ptr, neighbours[:kept].copy()


@jit
def _nested_dissection(adjacency_ptr, adjacency, leaf):
    """(order, node_ptr, parent) of the separator tree, nodes numbered children first.

    Parts are processed from a stack; each is a segment of ``work``. A part's connected
    components are found by breadth-first search; a component of at most ``leaf``
    vertices becomes a leaf node, a larger one gives its separator a node and its
    remainder a new part, whose components become that node's children.
    """
    n = adjacency_ptr.size - 1
    work = np.arange(n)
    scratch = np.empty(n, np.int64)
    part_of = np.full(n, -1, np.int64)
    level = np.empty(n, np.int64)
    # Nodes as made (parents before children).
    node_vertices = np.empty(n, np.int64)
    node_start = np.zeros(n + 1, np.int64)
    node_parent = np.empty(n, np.int64)
    n_nodes = 0
    stack = np.empty((n + 1, 3), np.int64)
    stack[0] = (0, n, -1)
    depth = 1
    part = 0
    while depth > 0:
        depth -= 1
        a, b, parent = stack[depth]
        part += 1
        for p in range(a, b):
            part_of[work[p]] = part
        # Components, laid out one after another in scratch[a:b].
        # The part's vertices are read from a copy: work[a:b] is rewritten as it goes.
        tail = a
        for v in work[a:b].copy():
            if part_of[v] != part:
                continue
            head, tail = _search(adjacency_ptr, adjacency, part_of, part, v, level, scratch, tail)
            split = head  # a leaf: all its vertices are its node's
            if tail - head > leaf:
                split = _separate(
                    adjacency_ptr, adjacency, part_of, part, level, scratch, head, tail
                )
            for q in range(head, tail):
                part_of[scratch[q]] = part + 1  # found: not searched again from here
            for q in range(split, tail):
                node_vertices[node_start[n_nodes] + q - split] = scratch[q]
            node_start[n_nodes + 1] = node_start[n_nodes] + tail - split
            node_parent[n_nodes] = parent
            for q in range(head, split):
                work[q] = scratch[q]
            if split > head:
                stack[depth] = (head, split, n_nodes)
                depth += 1
            n_nodes += 1
        part += 1
    return _postorder(node_vertices, node_start[: n_nodes + 1], node_parent[:n_nodes])


@jit
def _search(adjacency_ptr, adjacency, part_of, part, root, level, out, tail):
    """Breadth-first search from ``root`` through vertices of ``part``: the vertices in
    out[tail:new_tail] in order of distance, their distance in ``level``; returns
    (tail, new_tail). Marks them visited by setting part_of to -2 - part, then restores it.
    """
    head = tail
    out[tail] = root
    level[root] = 0
    part_of[root] = -2 - part
    tail += 1
    q = head
    while q < tail:
        v = out[q]
        for e in range(adjacency_ptr[v], adjacency_ptr[v + 1]):
            u = adjacency[e]
            if part_of[u] == part:
                part_of[u] = -2 - part
                level[u] = level[v] + 1
                out[tail] = u
                tail += 1
        q += 1
    for q in range(head, tail):
        part_of[out[q]] = part
    return head, tail


@jit
def _separate(adjacency_ptr, adjacency, part_of, part, level, scratch, head, tail):
    """Reorder the connected component scratch[head:tail] (vertices of ``part``) so that
    a separator comes last; return where it starts.

    A breadth-first search from a pseudo-peripheral vertex (the last vertex of a search,
    repeated while the searches get deeper) puts the vertices on levels; the separator is
    the middle level's vertices with a neighbour on the next level.
    """
    size = tail - head
    depth = level[scratch[tail - 1]]
    for _ in range(8):
        candidate = scratch[tail - 1]
        _search(adjacency_ptr, adjacency, part_of, part, candidate, level, scratch, head)
        new_depth = level[scratch[tail - 1]]
        if new_depth <= depth:
            break
        depth = new_depth
    depth = level[scratch[tail - 1]]
    # The middle level: the first at which half the vertices are reached, and not the
    # last (it needs a next level).
    middle = 0
    for q in range(head, tail):
        if 2 * (q - head + 1) >= size:
            middle = level[scratch[q]]
            break
    middle = min(middle, depth - 1)
    rest, separator = head, 0
    members = np.empty(size, np.int64)
    for q in range(head, tail):
        v = scratch[q]
        on_separator = False
        if level[v] == middle:
            for e in range(adjacency_ptr[v], adjacency_ptr[v + 1]):
                u = adjacency[e]
                if part_of[u] == part and level[u] == middle + 1:
                    on_separator = True
                    break
        if on_separator:
            members[separator] = v
            separator += 1
        else:
            scratch[rest] = v
            rest += 1
    for q in range(separator):
        scratch[rest + q] = members[q]
    return rest


@jit
def _postorder(node_vertices, node_start, node_parent):
    """Renumber nodes children first (depth-first postorder); return (order, node_ptr,
    parent) in the new numbering.
    """
    n_nodes = node_parent.size
    # Children of each node, the roots under a virtual node 0 (parent -1 shifted by one).
    first_child, kids = _buckets(node_parent + 1, n_nodes + 1)
    # Iterative depth-first search from the virtual root (index 0 = parent -1).
    new_number = np.empty(n_nodes, np.int64)
    stack = np.empty(n_nodes + 1, np.int64)
    cursor = first_child.copy()
    stack[0], depth, count = -1, 1, 0
    while depth > 0:
        t = stack[depth - 1]
        slot = t + 1
        if cursor[slot] < first_child[slot + 1]:
            stack[depth] = kids[cursor[slot]]
            cursor[slot] += 1
            depth += 1
        else:
            depth -= 1
            if t >= 0:
                new_number[t] = count
                count += 1
    old_of = np.empty(n_nodes, np.int64)
    for t in range(n_nodes):
        old_of[new_number[t]] = t
    order = np.empty(node_vertices.size, np.int64)
    node_ptr = np.zeros(n_nodes + 1, np.int64)
    parent = np.empty(n_nodes, np.int64)
    position = 0
    for t in range(n_nodes):
        old = old_of[t]
        for p in range(node_start[old], node_start[old + 1]):
            order[node_vertices[p]] = position
            position += 1
        node_ptr[t + 1] = position
        parent[t] = -1 if node_parent[old] < 0 else new_number[node_parent[old]]
    return order, node_ptr, parent


@jit
def _children(parent):
    """(child_ptr, children): each node's children, ascending (roots have parent -1)."""
    return _buckets(parent, parent.size)


@jit
def _buckets(keys, n_buckets):
    """(ptr, members): the indices e with keys[e] = b, ascending, at members[ptr[b] :
    ptr[b + 1]] (a stable counting sort); an index with a negative key is in no bucket.
    """
    ptr = np.zeros(n_buckets + 1, np.int64)
    for e in range(keys.size):
        if keys[e] >= 0:
            ptr[keys[e] + 1] += 1
    for b in range(n_buckets):
        ptr[b + 1] += ptr[b]
    members = np.empty(ptr[n_buckets], np.int64)
    filled = ptr[:-1].copy()
    for e in range(keys.size):
        if keys[e] >= 0:
            members[filled[keys[e]]] = e
            filled[keys[e]] += 1
    return ptr, members


@jit
def _boundaries(adjacency_ptr, adjacency, order, node_ptr, child_ptr, children, parent):
    """(boundary_ptr, boundary, in_parent): each node's boundary B_t, ascending, and where
    its members lie in the parent's front.
    """
    n_nodes = node_ptr.size - 1
    vertex_at = np.empty(order.size, np.int64)
    for v in range(order.size):
        vertex_at[order[v]] = v
    marked = np.full(order.size, -1, np.int64)
    boundary_ptr = np.zeros(n_nodes + 1, np.int64)
    boundary = np.empty(max(16, 4 * order.size), np.int64)
    for t in range(n_nodes):
        end = node_ptr[t + 1]
        size = 0
        # Collected into a growing tail of ``boundary``.
        start = boundary_ptr[t]
        for p in range(node_ptr[t], end):
            v = vertex_at[p]
            for e in range(adjacency_ptr[v], adjacency_ptr[v + 1]):
                q = order[adjacency[e]]
                if q >= end and marked[q] != t:
                    marked[q] = t
                    boundary = _grown(boundary, start + size + 1)
                    boundary[start + size] = q
                    size += 1
        for c in children[child_ptr[t] : child_ptr[t + 1]]:
            for at in range(boundary_ptr[c], boundary_ptr[c + 1]):
                q = boundary[at]
                if q >= end and marked[q] != t:
                    marked[q] = t
                    boundary = _grown(boundary, start + size + 1)
                    boundary[start + size] = q
                    size += 1
        members = boundary[start : start + size]
        members.sort()
        boundary_ptr[t + 1] = start + size
    boundary = boundary[: boundary_ptr[-1]].copy()
    in_parent = np.empty(boundary.size, np.int64)
    for t in range(n_nodes):
        p = parent[t]
        if p < 0:
            continue
        first, k = node_ptr[p], node_ptr[p + 1] - node_ptr[p]
        outer = boundary[boundary_ptr[p] : boundary_ptr[p + 1]]
        for at in range(boundary_ptr[t], boundary_ptr[t + 1]):
            q = boundary[at]
            in_parent[at] = q - first if q < first + k else k + np.searchsorted(outer, q)
    return boundary_ptr, boundary, in_parent


@jit
def _grown(array, size):
    """``array``, or a copy twice as large when it holds fewer than ``size`` values."""
    if size <= array.size:
        return array
    bigger = np.empty(2 * max(size, array.size), array.dtype)
    bigger[: array.size] = array
    return bigger


@jit
def _entry_places(i, j, node_ptr, boundary_ptr, boundary):
    """(entry_ptr, entries, places): the entries each node owns (the node whose pivots
    include the earlier of the entry's two positions) and their places in its front.
    """
    n_nodes = node_ptr.size - 1
    node_of = np.empty(node_ptr[-1], np.int64)
    for t in range(n_nodes):
        node_of[node_ptr[t] : node_ptr[t + 1]] = t
    owner = np.empty(i.size, np.int64)
    for e in range(i.size):
        owner[e] = node_of[min(i[e], j[e])]
    entry_ptr, entries = _buckets(owner, n_nodes)
    places = np.empty(i.size, np.int64)
    for at in range(entries.size):
        e = entries[at]
        t = owner[e]
        first, k = node_ptr[t], node_ptr[t + 1] - node_ptr[t]
        outer = boundary[boundary_ptr[t] : boundary_ptr[t + 1]]
        row = i[e] - first if i[e] < first + k else k + np.searchsorted(outer, i[e])
        column = j[e] - first if j[e] < first + k else k + np.searchsorted(outer, j[e])
        places[at] = row * (k + outer.size + 1) + column
    return entry_ptr, entries, places


@jit
def _sizes(node_ptr, boundary_ptr, child_ptr, children):
    """(factor_ptr, largest front order, most stack space in use)."""
    n_nodes = node_ptr.size - 1
    factor_ptr = np.zeros(n_nodes + 1, np.int64)
    largest, top, most = 0, 0, 0
    for t in range(n_nodes):
        k = node_ptr[t + 1] - node_ptr[t]
        b = boundary_ptr[t + 1] - boundary_ptr[t]
        factor_ptr[t + 1] = factor_ptr[t] + k * (k + b) + b * k
        largest = max(largest, k + b)
        for c in children[child_ptr[t] : child_ptr[t + 1]]:
            bc = boundary_ptr[c + 1] - boundary_ptr[c]
            top -= bc * (bc + 1)
        top += b * (b + 1)
        most = max(most, top)
    return factor_ptr, largest, most
