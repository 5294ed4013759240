"""The elimination-plan LU against dense solves, on random M-matrices of random patterns."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from m_matrices import leaky_chain, m_matrices, worst_relative_error_of_first_column

from fastcov import _elimination
from fastcov._lanes import LANES


def _factored(plan, rows, columns, matrices, row_sums, spare=1.0):
    """The factors of up to LANES ``matrices``; the spare lanes hold ``spare`` times the
    identity."""
    values = np.zeros((plan.n_slots, LANES))
    values[: plan.n] = spare  # the diagonal's slots
    slots = plan.slots(rows, columns)
    for m, matrix in enumerate(matrices):
        values[slots, m] = matrix[rows, columns]
    if row_sums.shape[0]:
        row_sums = _in_lanes(row_sums, spare)
    _elimination.factor(plan, values, row_sums)
    return values


def _in_lanes(columns, spare=0.0):
    """(n, count) as (n, LANES), the spare lanes filled with ``spare``."""
    lanes = np.full((len(columns), LANES), spare)
    lanes[:, : columns.shape[1]] = columns
    return lanes


def _plain():
    """The ``row_sums`` argument of a plain factorisation."""
    return np.empty((0, LANES))


def _check_solves(rows, columns, n, seed, count=3):
    """Both factorisations (plain, and from the row sums) solve both ways as dense
    solves do."""
    rng = np.random.default_rng(seed)
    rows, columns = np.append(rows, np.arange(n)), np.append(columns, np.arange(n))
    plan = _elimination.Plan.from_pattern(rows, columns, n)
    matrices, row_sums = m_matrices(rng, rows, columns, n, count)
    rhs = rng.standard_normal((n, count))
    for sums in (_plain(), row_sums):
        values = _factored(plan, rows, columns, matrices, sums)
        for transposed in (False, True):
            x = _in_lanes(rhs)
            _elimination.solve(plan, values, x, transposed)
            for m, matrix in enumerate(matrices):
                expected = np.linalg.solve(matrix.T if transposed else matrix, rhs[:, m])
                np.testing.assert_allclose(x[:, m], expected, rtol=1e-10, atol=1e-12)
    return plan


def test_grid_pattern_matches_dense_solves_both_ways():
    side = 9
    v = np.arange(side * side).reshape(side, side)
    pairs = np.concatenate(
        [
            np.stack([v[:, :-1].ravel(), v[:, 1:].ravel()]),
            np.stack([v[:-1].ravel(), v[1:].ravel()]),
        ],
        axis=1,
    )
    rows = np.concatenate([pairs[0], pairs[1]])
    columns = np.concatenate([pairs[1], pairs[0]])
    plan = _check_solves(rows, columns, side * side, seed=0)
    # Minimum degree keeps a 9 x 9 grid far from the dense count (n^3 / 3 ~ 177,000).
    assert plan.n_updates < 20_000


def test_a_directed_cycle_fills_only_its_closing_column():
    # 0 -> 1 -> ... -> n-1 -> 0: unsymmetric; eliminating along the cycle fills the last
    # row and column, which the plan must hold even though A has no entry there.
    n = 12
    plan = _check_solves(np.arange(n), (np.arange(n) + 1) % n, n, seed=1)
    assert plan.n_slots <= 5 * n


def test_one_by_one_and_diagonal_patterns():
    _check_solves(np.zeros(0, int), np.zeros(0, int), 1, seed=2)
    plan = _check_solves(np.zeros(0, int), np.zeros(0, int), 7, seed=3)
    assert plan.n_updates == 0 and plan.n_slots == 7


def test_positions_outside_the_filled_pattern_have_no_slot():
    plan = _elimination.Plan.from_pattern([0, 1, 2], [1, 2, 3], 4)  # a path: no fill
    rows, columns = [0, 1, 2, 1, 2, 3, 0, 1, 2, 3], [1, 2, 3, 0, 1, 2, 0, 1, 2, 3]
    slots = plan.slots(rows, columns)
    assert sorted(slots.tolist()) == list(range(plan.n_slots)) == list(range(10))
    with pytest.raises(ValueError, match=r"\(0, 3\) is not in the plan's filled pattern"):
        plan.slots([0, 0], [1, 3])


def test_update_count_and_the_limit():
    rows, columns = np.triu_indices(6)  # full upper triangle, plus the mirror below
    rows, columns = np.append(rows, columns), np.append(columns, rows)
    plan = _elimination.Plan.from_pattern(rows, columns, 6)
    # Dense: column k has 5 - k later neighbours, each pair an update.
    assert plan.n_updates == sum(k * k for k in range(6)) == 55
    assert plan.n_slots == 36
    assert _elimination.Plan.from_pattern(rows, columns, 6, max_updates=54) is None
    assert _elimination.Plan.from_pattern(rows, columns, 6, max_updates=55) is not None


def test_matrices_are_independent_lanes():
    # Factoring a full row of lanes equals factoring each matrix alone beside spare
    # lanes of any content, and solving too, bit for bit.
    rng = np.random.default_rng(4)
    n = 30
    rows, columns = rng.integers(0, n, 90), rng.integers(0, n, 90)
    rows, columns = np.append(rows, np.arange(n)), np.append(columns, np.arange(n))
    plan = _elimination.Plan.from_pattern(rows, columns, n)
    matrices, row_sums = m_matrices(rng, rows, columns, n, LANES)
    rhs = rng.standard_normal((n, LANES))
    for sums in (_plain(), row_sums):
        together = _factored(plan, rows, columns, matrices, sums)
        solved = rhs.copy()
        _elimination.solve(plan, together, solved, True)
        for m in range(LANES):
            single = sums[:, m : m + 1] if sums.shape[0] else sums
            alone = _factored(plan, rows, columns, matrices[m : m + 1], single, spare=3.0)
            np.testing.assert_array_equal(alone[:, 0], together[:, m])
            x = _in_lanes(rhs[:, m : m + 1], spare=np.nan)
            _elimination.solve(plan, alone, x, True)
            np.testing.assert_array_equal(x[:, 0], solved[:, m])


def test_arrays_must_be_lanes_wide():
    plan = _elimination.Plan.from_pattern([0], [1], 2)
    with pytest.raises(ValueError, match="exactly LANES columns"):
        _elimination.factor(plan, np.zeros((plan.n_slots, LANES - 1)), _plain())
    with pytest.raises(ValueError, match="exactly LANES columns"):
        _elimination.solve(plan, np.ones((plan.n_slots, LANES)), np.zeros((2, 3)), False)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 25),
    density=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_patterns_match_dense_solves(n, density, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, n)) < density
    rows, columns = np.nonzero(mask)
    _check_solves(rows, columns, n, seed)


@pytest.mark.parametrize("count", [1, LANES])
def test_any_number_of_matrices(count):
    n = 20
    rows = np.arange(n - 1)
    _check_solves(np.append(rows, rows + 1), np.append(rows + 1, rows), n, seed=5, count=count)


def test_row_sums_keep_full_relative_accuracy():
    # The patrol solver's case: A^T x = e_0, a non-negative right-hand side. With the
    # pivots from the row sums every entry of x keeps its digits, though x spans some
    # forty orders of magnitude (see leaky_chain).
    pytest.importorskip("mpmath")
    n = 12
    rows, columns, matrix, sums = leaky_chain(n, seed=9)
    plan = _elimination.Plan.from_pattern(rows, columns, n)
    values = _factored(plan, rows, columns, [matrix], sums[:, np.newaxis])
    x = np.zeros((n, LANES))
    x[0] = 1.0
    _elimination.solve(plan, values, x, True)
    x = x[:, 0]
    assert worst_relative_error_of_first_column(matrix, sums, x) < 1e-13
    assert x.max() / x.min() > 1e20  # the case is as hard as it claims


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    density=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_minimum_degree_order_is_the_complete_lus_order(n, density, seed):
    # It takes the order from an incomplete LU; SuperLU's complete LU must order the same.
    import scipy.sparse
    import scipy.sparse.linalg

    rng = np.random.default_rng(seed)
    rows, columns = np.nonzero(rng.random((n, n)) < density)
    rows, columns = np.append(rows, np.arange(n)), np.append(columns, np.arange(n))
    (matrix,), _ = m_matrices(rng, rows, columns, n, 1)
    lu = scipy.sparse.linalg.splu(
        scipy.sparse.csc_array(matrix),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    order = _elimination.minimum_degree_order(rows, columns, n)
    np.testing.assert_array_equal(order, lu.perm_c)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
