"""The multifrontal LU (nested dissection, dense fronts) against dense solves."""

import ctypes
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from m_matrices import leaky_chain, m_matrices, worst_relative_error_of_first_column

from fastcov import _multifrontal, _patterns, graph, patrol


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


def test_one_blas_thread_restores_the_count_when_the_last_thread_leaves():
    # A setter whose count is the process's, as in OpenBLAS's pthreads builds. The early
    # thread leaves while the late one is still inside: the late one must keep one BLAS
    # thread, and the count from before must come back at the end (restoring each
    # thread's own previous count gave 4 inside and left 1 behind).
    count = [4]

    def setter(threads):
        previous, count[0] = count[0], threads
        return previous

    context = _multifrontal._OneBlasThread(setter)
    early_in, late_in, early_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def early():
        with context:
            early_in.set()
            late_in.wait()
        early_out.set()

    def late():
        early_in.wait()
        with context:
            late_in.set()
            early_out.wait()
            seen.append(count[0])

    threads = [threading.Thread(target=early), threading.Thread(target=late)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen == [1]
    assert count[0] == 4


def test_a_threaded_step_leaves_the_blas_as_it_found_it():
    # SciPy's OpenBLAS, where the count can be read: robots factored on two threads, with
    # fronts large enough for OpenBLAS to thread its calls, give the same bits every time
    # and leave its thread count as it was.
    setter = _multifrontal.one_blas_thread().setter
    getter = _blas_thread_getter(setter)
    if getter is None or numba.get_num_threads() < 2:
        pytest.skip("no OpenBLAS thread count to read, or one thread")
    g = graph.grid(200, 200, stay=True)  # beyond an elimination plan: multifrontal
    assert _patterns.pattern(g).plan is None
    theta = np.random.default_rng(1).standard_normal((2, g.n_edges))
    before = getter()
    first = patrol.value_and_grad(g, theta)
    for _ in range(3):
        again = patrol.value_and_grad(g, theta)
        np.testing.assert_array_equal(again.mu, first.mu)
        np.testing.assert_array_equal(again.grad, first.grad)
        assert getter() == before


def _blas_thread_getter(setter):
    """The get_num_threads of the OpenBLAS that holds ``setter``, or None."""
    if setter is None:
        return None

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_void_p) for name in ("file", "base", "symbol", "address")]

    info = Info()
    address = ctypes.cast(setter, ctypes.c_void_p)
    if not ctypes.CDLL(None).dladdr(address, ctypes.byref(info)):
        return None
    library = ctypes.CDLL(ctypes.string_at(info.file).decode())
    for name in ("scipy_openblas_get_num_threads", "openblas_get_num_threads"):
        getter = getattr(library, name, None)
        if getter is not None:
            getter.restype = ctypes.c_int
            return getter
    return None
