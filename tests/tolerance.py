"""The one tolerance policy of the test suite (SPEC section 2), used against every oracle."""

import numpy as np

# (relative bound, absolute bound near mu = 1/e per agent) for each dtype and quantity.
RELATIVE = {
    np.float64: {"coverage": 1e-14, "entropy": 1e-12, "weights": 1e-12, "grad": 1e-12},
    np.float32: {"coverage": 1e-5, "entropy": 1e-5, "weights": 1e-5, "grad": 1e-5},
}
NEAR_ZERO_WEIGHT = 1e-3  # |log mu + 1| below this: only an absolute bound is fair
ABSOLUTE_PER_AGENT = {np.float64: 1e-15, np.float32: 1e-6}


def assert_close(actual, expected, dtype, quantity, n_agents=1, weight_factor=None):
    """Assert ``actual`` matches ``expected`` to the policy for ``quantity``.

    ``expected`` may be float64 or mpmath values. Infinities must match exactly (same
    sign); for "weights" and "grad", ``weight_factor`` (|log mu(s) + 1| per state, broadcast
    against the arrays) switches to the absolute bound where it is below 1e-3.
    """
    dtype = np.dtype(dtype).type
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.array([float(x) for x in np.ravel(expected)]).reshape(np.shape(expected))
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert not np.isnan(actual).any(), "NaN in result"
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(actual[infinite], expected[infinite])
    finite = ~infinite
    error = np.abs(actual[finite] - expected[finite])
    # A subnormal result cannot carry a relative bound: allow one unit of the format there.
    bound = (
        RELATIVE[dtype][quantity] * np.abs(expected[finite]) + np.finfo(dtype).smallest_subnormal
    )
    if weight_factor is not None:
        factor = np.broadcast_to(np.asarray(weight_factor), expected.shape)[finite]
        absolute = ABSOLUTE_PER_AGENT[dtype] * (n_agents + 1)
        bound = np.where(factor < NEAR_ZERO_WEIGHT, np.maximum(bound, absolute), bound)
    worst = np.argmax(error - bound) if error.size else None
    assert np.all(error <= bound), (
        f"{quantity} ({np.dtype(dtype).name}): |error| {error[worst]:.3e} > bound "
        f"{bound[worst]:.3e} at flat index {worst} (expected {expected[finite][worst]!r}, "
        f"got {actual[finite][worst]!r})"
    )
