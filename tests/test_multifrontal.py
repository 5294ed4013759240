"""The multifrontal LU (nested dissection, dense fronts) against dense solves."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from m_matrices import leaky_chain, m_matrices, worst_relative_error_of_first_column

from fastcov import _multifrontal


def _grid_pattern(width, height):
    v = np.arange(width * height).reshape(height, width)
    first = np.concatenate([v[:, :-1].ravel(), v[:-1].ravel()])
    second = np.concatenate([v[:, 1:].ravel(), v[1:].ravel()])
    return np.concatenate([first, second]), np.concatenate([second, first])


def _factored(analysis, rows, columns, matrix, row_sums):
    factors = np.empty(analysis.n_factors)
    _multifrontal.factor(analysis, matrix[rows, columns], row_sums, factors)
    return factors


def _check_solves(rows, columns, n, seed, leaf, count=2):
    """Both factorisations (plain, and from the row sums) solve both ways as dense solves
    do; return the analysis.
    """
    rng = np.random.default_rng(seed)
    rows, columns = np.append(rows, np.arange(n)), np.append(columns, np.arange(n))
    keys = np.unique(rows * n + columns)  # each position once
    rows, columns = keys // n, keys % n
    analysis = _multifrontal.Analysis.from_pattern(rows, columns, n, leaf)
    matrices, row_sums = m_matrices(rng, rows, columns, n, count)
    rhs = rng.standard_normal(n)
    for m, matrix in enumerate(matrices):
        for sums in (np.empty(0), row_sums[:, m]):
            factors = _factored(analysis, rows, columns, matrix, sums)
            for transposed in (False, True):
                x = rhs.copy()
                _multifrontal.solve(analysis, factors, x, transposed)
                expected = np.linalg.solve(matrix.T if transposed else matrix, rhs)
                np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)
    return analysis


def _check_tree(analysis):
    """The separator tree's invariants: an order, children numbered before their parent,
    boundaries ascending and after the node's pivots, each inside the parent's front.
    """
    n = analysis.n
    np.testing.assert_array_equal(np.sort(analysis.order), np.arange(n))
    assert analysis.node_ptr[0] == 0 and analysis.node_ptr[-1] == n
    assert (np.diff(analysis.node_ptr) > 0).all()
    for t in range(len(analysis.node_ptr) - 1):
        boundary = analysis.boundary[analysis.boundary_ptr[t] : analysis.boundary_ptr[t + 1]]
        assert (np.diff(boundary) > 0).all()
        assert (boundary >= analysis.node_ptr[t + 1]).all()
        for c in analysis.children[analysis.child_ptr[t] : analysis.child_ptr[t + 1]]:
            assert c < t
            outer = analysis.boundary[analysis.boundary_ptr[c] : analysis.boundary_ptr[c + 1]]
            pivots = np.arange(analysis.node_ptr[t], analysis.node_ptr[t + 1])
            assert np.isin(outer, np.concatenate([pivots, boundary])).all()


@pytest.mark.parametrize("leaf", [1, 4, 32, 10_000])
def test_grid_pattern_matches_dense_solves_both_ways(leaf):
    rows, columns = _grid_pattern(17, 13)
    analysis = _check_solves(rows, columns, 17 * 13, seed=0, leaf=leaf)
    _check_tree(analysis)
    if leaf == 10_000:
        assert len(analysis.node_ptr) == 2  # one dense front
    else:
        # Nested dissection: far fewer flops than the dense LU's 2 n^3 / 3.
        assert analysis.flops() < 0.05 * 2 / 3 * (17 * 13) ** 3


def test_fronts_wider_than_a_block():
    # Separators and leaves of more than _BLOCK columns: the blocked elimination, its
    # triangular solve and matrix product (BLAS) all run, the row sums column with them.
    rows, columns = _grid_pattern(60, 60)
    analysis = _check_solves(rows, columns, 3600, seed=1, leaf=100, count=1)
    assert np.diff(analysis.node_ptr).max() > 3 * _multifrontal._BLOCK


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 70),
    density=st.floats(0.0, 0.4),
    leaf=st.sampled_from([1, 2, 5, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_patterns_match_dense_solves(n, density, leaf, seed):
    rng = np.random.default_rng(seed)
    rows, columns = np.nonzero(rng.random((n, n)) < density)
    _check_tree(_check_solves(rows, columns, n, seed, leaf))


def test_disconnected_and_diagonal_patterns():
    _check_solves(np.zeros(0, int), np.zeros(0, int), 1, seed=2, leaf=1)
    analysis = _check_solves(np.zeros(0, int), np.zeros(0, int), 7, seed=3, leaf=1)
    assert len(analysis.node_ptr) == 8 and analysis.n_factors == 7  # seven 1 x 1 fronts
    # Two paths, not joined: each is dissected on its own.
    path = np.arange(29)
    rows = np.concatenate([path, path + 1, path + 30, path + 31])
    columns = np.concatenate([path + 1, path, path + 31, path + 30])
    _check_tree(_check_solves(rows, columns, 60, seed=4, leaf=3))


def test_a_directed_cycle():
    # Unsymmetric: the analysis works on A + A^T, and the fronts hold both triangles.
    n = 40
    _check_solves(np.arange(n), (np.arange(n) + 1) % n, n, seed=5, leaf=4)


def test_row_sums_keep_full_relative_accuracy():
    # The patrol solver's case: A^T x = e_0, a non-negative right-hand side. With the
    # pivots from the row sums every entry of x keeps its digits, though x spans some
    # forty orders of magnitude (see leaky_chain). Leaves of one vertex make the chain a
    # tree of separators, so the sums cross fronts; one leaf of n, a single front.
    pytest.importorskip("mpmath")
    n = 40
    rows, columns, matrix, sums = leaky_chain(n, seed=9)
    for leaf in (1, 4, n):
        analysis = _multifrontal.Analysis.from_pattern(rows, columns, n, leaf)
        factors = _factored(analysis, rows, columns, matrix, sums)
        x = np.zeros(n)
        x[0] = 1.0
        _multifrontal.solve(analysis, factors, x, True)
        assert worst_relative_error_of_first_column(matrix, sums, x) < 1e-13, leaf
    assert x.max() / x.min() > 1e20  # the case is as hard as it claims


def test_the_diagonal_is_not_read_with_row_sums():
    rows, columns = _grid_pattern(9, 7)
    n = 63
    rows, columns = np.append(rows, np.arange(n)), np.append(columns, np.arange(n))
    analysis = _multifrontal.Analysis.from_pattern(rows, columns, n, 4)
    (matrix,), row_sums = m_matrices(np.random.default_rng(6), rows, columns, n, 1)
    given = _factored(analysis, rows, columns, matrix, row_sums[:, 0])
    garbage = matrix.copy()
    garbage[np.arange(n), np.arange(n)] = np.nan
    np.testing.assert_array_equal(
        _factored(analysis, rows, columns, garbage, row_sums[:, 0]), given
    )
