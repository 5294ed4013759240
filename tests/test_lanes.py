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
    _lanes.largest_magnitude(out, 10, a, i)
    _lanes.largest_magnitude_of_product(out, 11, a, j, b, k)


@pytest.mark.parametrize("index_type", [np.int32, np.int64])
def test_row_operations_are_numpys(index_type):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, LANES))
    out = rng.standard_normal((12, LANES))
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
    expected[10] = np.maximum(expected[10], np.abs(a[i]))
    expected[11] = np.maximum(expected[11], np.abs(a[j] * b[k]))
    _apply_all(out, a, b, rows)
    np.testing.assert_array_equal(out, expected)


@numba.njit
def _largest_magnitudes(out, a, b):
    _lanes.largest_magnitude(out, 0, a, 0)
    _lanes.largest_magnitude_of_product(out, 1, a, 0, b, 0)


def test_largest_magnitudes_keep_a_nan_as_numpy_does():
    # The patrol step flags a robot whose gradient is not a number through them.
    nan, inf = np.nan, np.inf
    out = np.array([[nan, 1.0, 1.0, nan, 2.0, 0.0, 5.0, -inf]] * 2)
    a = np.array([[1.0, nan, -3.0, nan, -inf, 0.0, 4.0, -2.0]])
    b = np.array([[2.0, 1.0, 1.0, 1.0, 1.0, nan, 1.0, 1.0]])
    expected = np.maximum(out, np.abs([a[0], a[0] * b[0]]))
    assert np.isnan(expected).any(axis=0).sum() == 4
    _largest_magnitudes(out, a, b)
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


@numba.njit
def _many_empty(rows, count):
    """``count`` arrays of each shape, all alive at once (so each is a new allocation):
    the offset of each row within its cache line, and the shapes.
    """
    kept = []
    offsets = np.empty((count, 2, max(rows, 1)), np.int64)
    offsets[:] = 0
    for c in range(count):
        flat, stacked = _lanes.empty((rows,)), _lanes.empty((2, rows))
        kept.append(stacked)
        for r in range(rows):
            offsets[c, 0, r] = flat[r:].ctypes.data % 64
            offsets[c, 1, r] = stacked[1, r:].ctypes.data % 64
    return offsets, flat.shape, stacked.shape


@pytest.mark.parametrize("rows", [0, 1, 3, 70])
def test_empty_puts_each_row_in_one_cache_line(rows):
    # Numba's own arrays are aligned to 32 bytes, so among 40 allocations some start
    # half-way into a line: each of those is where a wrong skip would show.
    offsets, flat_shape, stacked_shape = _many_empty(rows, 40)
    assert flat_shape == (rows, LANES) and stacked_shape == (2, rows, LANES)
    assert not offsets.any()
    from_python = _lanes.empty((rows,))
    assert from_python.shape == (rows, LANES) and from_python.flags.c_contiguous
    assert from_python.ctypes.data % 64 == 0 or rows == 0
