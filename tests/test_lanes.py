"""The whole-row SIMD operations against NumPy, bit for bit."""

import numba
import numpy as np
import pytest

from fastcov import _lanes
from fastcov._lanes import LANES


@numba.njit
def _apply_all(out, a, b, rows):
    i, j, k = rows[0], rows[1], rows[2]
    _lanes.copy(out, 0, a, i)
    _lanes.add(out, 1, a, j)
    _lanes.subtract(out, 2, b, k)
    _lanes.divide(out, 3, b, i)
    _lanes.maximum(out, 4, a, j)
    _lanes.subtract_product(out, 5, a, i, b, k)
    _lanes.subtract_product(out, 6, out, 6, out, 6)  # every operand the row written
    _lanes.multiply(out, 7, b, j)
    _lanes.reciprocal(out, 8, a, k)
    _lanes.add_product(out, 9, b, j, a, i)


@pytest.mark.parametrize("index_type", [np.int32, np.int64])
def test_row_operations_are_numpys(index_type):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, LANES))
    out = rng.standard_normal((10, LANES))
    rows = np.array([4, 0, 2], index_type)
    expected = out.copy()
    i, j, k = rows
    expected[0] = a[i]
    expected[1] += a[j]
    expected[2] -= b[k]
    expected[3] /= b[i]
    expected[4] = np.maximum(expected[4], a[j])
    expected[5] -= a[i] * b[k]
    expected[6] -= expected[6] * expected[6]
    expected[7] *= b[j]
    expected[8] = 1.0 / a[k]
    expected[9] += b[j] * a[i]
    _apply_all(out, a, b, rows)
    np.testing.assert_array_equal(out, expected)


def test_only_c_contiguous_float64_rows_compile():
    @numba.njit
    def copy_first_row(out, source):
        _lanes.copy(out, 0, source, 0)

    with pytest.raises(numba.TypingError):
        copy_first_row(np.zeros((LANES, LANES)).T, np.ones((1, LANES)))
    with pytest.raises(numba.TypingError):
        copy_first_row(np.zeros((1, LANES), np.float32), np.ones((1, LANES), np.float32))


def test_require_lanes_names_the_width():
    _lanes.require_lanes(np.zeros((0, LANES)))
    with pytest.raises(ValueError, match="exactly LANES columns"):
        _lanes.require_lanes(np.zeros((3, LANES + 1)))
