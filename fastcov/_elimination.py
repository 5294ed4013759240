"""Sparse LU of many matrices with one sparsity pattern, by a precomputed elimination plan.

The patrol solver factors a new matrix per robot at every gradient step, all with the
graph's pattern. On small graphs SuperLU's per-call overhead, not its arithmetic, is then
the cost (MUSEUM: about 300 multiply-adds per robot). Here the pattern is analysed once,
into a :class:`Plan`:

- a fill-reducing symmetric order: SuperLU's minimum degree on A + A^T;
- the filled pattern of L + U in that order, made structurally symmetric: column k of L
  and row k of U have the same indices ``neighbours[ptr[k]:ptr[k + 1]]`` (ascending, all
  greater than k);
- the value slot that each update of the elimination writes to.

A factorisation is then a fixed loop of divisions and multiply-adds over value slots. The
matrices lie side by side in the innermost axis (values have shape (slots, LANES)), so one
pass factors LANES of them, each step one SIMD operation on a row (:mod:`fastcov._lanes`);
callers with fewer matrices fill the spare lanes with any harmless one.

There is no pivoting, so a plan suits matrices whose elimination in any symmetric order
is stable: non-singular M-matrices (pivots stay positive), which is what the patrol solver
factors (as :mod:`fastcov._multifrontal` does on large graphs). Given the row sums
of M-matrices, :func:`factor` computes every pivot without cancellation (the
Grassmann-Taksar-Heyman variant), and a solve with a non-negative right-hand side is then
free of cancellation too: its solution keeps full relative accuracy in every entry.

Value slots of a plan with n rows and F filled entries in each triangle: the diagonal
entry (k, k) at k; L(i, k), for the t-th entry i = neighbours[t] (in column k's range), at
n + t; U(k, j), for j = neighbours[t], at n + F + t. Row and column indices in the slots
are positions in the order; :meth:`Plan.slots` and the solves take the original ones.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from . import _lanes
from ._jit import jit

__all__ = ["Plan", "factor", "solve", "minimum_degree_order"]


class Plan(NamedTuple):
    """The elimination plan of one n x n sparsity pattern with a non-zero diagonal (a
    named tuple of arrays, so compiled code takes it whole).

    Attributes
    ----------
    order : ndarray of int64, shape (n,)
        order[v] is the position of row and column v in the factored matrix.
    ptr, neighbours : ndarray of int64, shapes (n + 1,) and (F,)
        The filled pattern (see the module docstring).
    targets : ndarray of int32, shape (n_updates,)
        The slot of each update L(i, k) U(k, j) -> (i, j), in the order of the loops.
    """

    order: np.ndarray
    ptr: np.ndarray
    neighbours: np.ndarray
    targets: np.ndarray

    @classmethod
    def from_pattern(cls, rows, columns, n, max_updates=None):
        """Analyse the pattern with entries at (rows[e], columns[e]), diagonal included.

        Parameters
        ----------
        rows, columns : array_like of int, shape (nnz,)
            Positions of the entries of an n x n matrix (duplicates allowed).
        n : int
        max_updates : int, optional
            Give up (return None) when a factorisation would take more multiply-adds per
            matrix: the plan stores one slot index for each.

        Returns
        -------
        Plan or None
        """
        rows, columns = np.asarray(rows, np.int64), np.asarray(columns, np.int64)
        order = minimum_degree_order(rows, columns, n)
        symbolic = _symbolic(order[rows], order[columns], n, max_updates)
        if symbolic is None:
            return None
        ptr, neighbours = symbolic
        if n + 2 * len(neighbours) > np.iinfo(np.int32).max:
            raise ValueError(f"the filled pattern of {n} rows has too many entries for a plan")
        return cls(order, ptr, neighbours, _update_targets(ptr, neighbours))

    @property
    def n(self):
        return len(self.ptr) - 1

    @property
    def n_slots(self):
        """Value slots per matrix: n + 2 F."""
        return self.n + 2 * len(self.neighbours)

    @property
    def n_updates(self):
        """Multiply-adds per matrix in a factorisation."""
        return len(self.targets)

    def slots(self, rows, columns):
        """Value slots of the entries (rows[e], columns[e]) of the original matrix.

        Every position of the pattern the plan was made from has a slot, and so does every
        position the elimination fills; any other raises ValueError.
        """
        rows, columns = np.asarray(rows), np.asarray(columns)
        i, j = self.order[rows], self.order[columns]
        slots = _slots(self.ptr, self.neighbours, i.ravel(), j.ravel()).reshape(i.shape)
        missing = np.flatnonzero(slots.ravel() < 0)
        if missing.size:
            e = missing[0]
            raise ValueError(
                f"({rows.ravel()[e]}, {columns.ravel()[e]}) is not in the plan's filled pattern"
            )
        return slots


@jit
def factor(plan, values, row_sums):
    """Overwrite ``values`` (n_slots, LANES), float64, with the LU factors of its LANES
    matrices (their entries at :meth:`Plan.slots`, zeros elsewhere).

    ``row_sums`` is either empty, shape (0, LANES): plain Gaussian elimination; or, for
    M-matrices (off-diagonal entries <= 0), each matrix's row sums, shape (n, LANES),
    >= 0, in the original row order. Then every pivot is computed as the row sum of what
    is left to eliminate less its off-diagonal entries, and the row sums are carried
    along (the Grassmann-Taksar-Heyman variant): no step subtracts numbers of like sign,
    so the factors keep full relative accuracy however ill-conditioned the matrices are,
    and the diagonal entries given are never read.
    """
    _lanes.require_lanes(values)
    _lanes.require_lanes(row_sums)
    order, ptr, neighbours, targets = plan.order, plan.ptr, plan.neighbours, plan.targets
    n, fill = ptr.size - 1, neighbours.size
    sums = _lanes.empty((n if row_sums.shape[0] else 0,))
    for v in range(sums.shape[0]):
        _lanes.copy(sums, order[v], row_sums, v)
    update = 0
    for k in range(n):
        if sums.shape[0]:
            # Row k of U is final: its pivot is what leaves the row, to later columns and
            # to the columns already eliminated (the carried row sum).
            _lanes.copy(values, k, sums, k)
            for t in range(ptr[k], ptr[k + 1]):
                _lanes.subtract(values, k, values, n + fill + t)
        for t in range(ptr[k], ptr[k + 1]):
            _lanes.divide(values, n + t, values, k)
        if sums.shape[0]:
            for t in range(ptr[k], ptr[k + 1]):
                _lanes.subtract_product(sums, neighbours[t], values, n + t, sums, k)
        for a in range(ptr[k], ptr[k + 1]):
            for b in range(ptr[k], ptr[k + 1]):
                _lanes.subtract_product(
                    values, targets[update], values, n + a, values, n + fill + b
                )
                update += 1


@jit
def solve(plan, values, rhs, transposed):
    """Solve A_m x_m = rhs[:, m] (A_m^T x_m with ``transposed``) for each of the LANES
    matrices m, in place. ``values`` is :func:`factor`'s result; ``rhs`` is (n, LANES)
    float64 with rows in the original order.
    """
    _lanes.require_lanes(values)
    _lanes.require_lanes(rhs)
    order, ptr, neighbours = plan.order, plan.ptr, plan.neighbours
    n, fill = ptr.size - 1, neighbours.size
    x = _lanes.empty((n,))
    for v in range(n):
        _lanes.copy(x, order[v], rhs, v)
    # A = L U: L y = b forwards, then U x = y backwards. A^T = U^T L^T: U^T y = b
    # forwards, then L^T x = y backwards. The first factor's slots start at ``first``.
    first, second = (n + fill, n) if transposed else (n, n + fill)
    for k in range(n):
        if transposed:
            _lanes.divide(x, k, values, k)
        for t in range(ptr[k], ptr[k + 1]):
            _lanes.subtract_product(x, neighbours[t], values, first + t, x, k)
    for k in range(n - 1, -1, -1):
        for t in range(ptr[k], ptr[k + 1]):
            _lanes.subtract_product(x, k, values, second + t, x, neighbours[t])
        if not transposed:
            _lanes.divide(x, k, values, k)
    for v in range(n):
        _lanes.copy(rhs, v, x, order[v])


def minimum_degree_order(rows, columns, n):
    """SuperLU's multiple minimum degree order on A + A^T, as a symmetric permutation."""
    if n == 0:
        return np.zeros(0, np.int64)
    # A column-diagonally dominant M-matrix with the pattern: SuperLU keeps its diagonal
    # pivots, so perm_c is the order of a symmetric elimination.
    off = rows != columns
    degree = np.bincount(columns[off], minlength=n)
    diagonal = np.arange(n)
    entries = np.concatenate([-np.ones(off.sum()), degree + 1.0])
    positions = (np.append(rows[off], diagonal), np.append(columns[off], diagonal))
    matrix = scipy.sparse.csc_array((entries, positions), shape=(n, n))
    # SuperLU orders before it factors, and scipy gives no ordering alone: an incomplete LU
    # that drops every entry it may keeps the order and skips the fill (on a 1e6-vertex
    # grid 0.8 s, against 9.4 s for the complete LU).
    lu = scipy.sparse.linalg.spilu(
        matrix,
        drop_tol=1e300,
        fill_factor=1,
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    return lu.perm_c.astype(np.int64)


def _symbolic(rows, columns, n, max_updates=None):
    """(ptr, neighbours) of the filled pattern of a matrix with entries at (rows, columns),
    already in elimination order: eliminating k joins its later neighbours pairwise, so its
    neighbour set, less its first member p, is merged into p's (p is k's parent in the
    elimination tree, and is eliminated after k). None as soon as the elimination takes
    more than ``max_updates`` multiply-adds (the square of each neighbour count).
    """
    later = [set() for _ in range(n)]
    for first, second in zip(rows.tolist(), columns.tolist(), strict=True):
        if first != second:
            later[min(first, second)].add(max(first, second))
    updates = 0
    for k in range(n):
        updates += len(later[k]) ** 2
        if max_updates is not None and updates > max_updates:
            return None
        if later[k]:
            parent = min(later[k])
            later[parent] |= later[k] - {parent}
    sizes = np.array([len(s) for s in later], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    neighbours = np.array([j for s in later for j in sorted(s)], dtype=np.int64)
    return ptr, neighbours


@jit
def _slot(ptr, neighbours, i, j):
    """The value slot of position (i, j) of the filled pattern (positions in the order),
    or -1 where the pattern has no entry.
    """
    if i == j:
        return i
    owner, other = min(i, j), max(i, j)
    # Bisection by hand: np.searchsorted took 1.1 s to compile, most of the plan's first use.
    t, stop = ptr[owner], ptr[owner + 1]
    while t < stop:
        middle = (t + stop) // 2
        if neighbours[middle] < other:
            t = middle + 1
        else:
            stop = middle
    if t == ptr[owner + 1] or neighbours[t] != other:
        return -1
    n, fill = ptr.size - 1, neighbours.size
    return n + t if i > j else n + fill + t


@jit
def _slots(ptr, neighbours, i, j):
    out = np.empty(i.size, np.int64)
    for e in range(i.size):
        out[e] = _slot(ptr, neighbours, i[e], j[e])
    return out


@jit
def _update_targets(ptr, neighbours):
    """The slot of each update L(a, k) U(k, b) -> (a, b), a and b over k's neighbours."""
    count = 0
    for k in range(ptr.size - 1):
        count += (ptr[k + 1] - ptr[k]) ** 2
    targets = np.empty(count, np.int32)
    update = 0
    for k in range(ptr.size - 1):
        for a in range(ptr[k], ptr[k + 1]):
            for b in range(ptr[k], ptr[k + 1]):
                targets[update] = _slot(ptr, neighbours, neighbours[a], neighbours[b])
                update += 1
    return targets
