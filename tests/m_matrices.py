"""Random non-singular M-matrices of a given pattern, for the sparse LU tests."""

import numpy as np


def m_matrices(rng, rows, columns, n, count):
    """``count`` non-singular M-matrices with entries at (rows, columns), and their row
    sums, shape (n, count): negative off the diagonal, each row summing to a random
    positive number.
    """
    matrices = np.zeros((count, n, n))
    row_sums = rng.random((n, count)) + 0.01
    for m, matrix in enumerate(matrices):
        off = rows != columns
        np.add.at(matrix, (rows[off], columns[off]), -rng.random(off.sum()))
        matrix[np.arange(n), np.arange(n)] = row_sums[:, m] - matrix.sum(axis=1)
    return matrices, row_sums


def leaky_chain(n, seed):
    """(rows, columns, matrix, row_sums) of a chain whose couplings span 1e-40 .. 1:
    tridiagonal, off-diagonal entries -w, and only row 0 leaks (row sum 1e-30). Solving
    A^T x = e_0 needs no cancellation when the pivots come from the row sums, and x spans
    some forty orders of magnitude. The diagonal entries are left 0: a factorisation from
    the row sums must not read them.
    """
    weights = 10.0 ** np.random.default_rng(seed).uniform(-40, 0, (2, n - 1))
    rows = np.concatenate([np.arange(n - 1), np.arange(1, n), np.arange(n)])
    columns = np.concatenate([np.arange(1, n), np.arange(n - 1), np.arange(n)])
    row_sums = np.zeros(n)
    row_sums[0] = 1e-30
    matrix = np.zeros((n, n))
    matrix[np.arange(n - 1), np.arange(1, n)] = -weights[0]
    matrix[np.arange(1, n), np.arange(n - 1)] = -weights[1]
    return rows, columns, matrix, row_sums


def worst_relative_error_of_first_column(matrix, row_sums, x):
    """The largest relative error of ``x`` against the solution of A^T x = e_0 in
    400-digit arithmetic, A = ``matrix`` with its diagonal made from ``row_sums``.
    """
    import mpmath

    n = len(matrix)
    with mpmath.workdps(400):
        exact = mpmath.matrix(n, n)
        for i in range(n):
            for j in range(n):
                exact[i, j] = mpmath.mpf(float(matrix[i, j]))
            exact[i, i] = mpmath.mpf(float(row_sums[i])) - sum(exact[i, j] for j in range(n))
        expected = mpmath.lu_solve(exact.T, mpmath.matrix([1] + [0] * (n - 1)))
        return float(
            max(abs((mpmath.mpf(float(x[i])) - expected[i]) / expected[i]) for i in range(n))
        )
