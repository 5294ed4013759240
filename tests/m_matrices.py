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
