"""The arbitrary-precision oracle: mu(s), J, c(s) and g_i(s) with mpmath at 50 digits.

Inputs are taken as the exact binary values of the float32/float64 array given, so the
result is the true value of the formulas of SPEC section 1 at those inputs. 1 - x for a
double x needs up to 1075 bits to be exact, so the products are formed at a working
precision that keeps them exact for N <= 32; results are then good to well beyond 50 digits.
"""

import math

import mpmath
import numpy as np

mpmath.mp.dps = 50
_EXACT_PRODUCT_BITS = 40_000  # >= 32 factors x 1075 bits


def exact(mu, eps=0.0):
    """Return (J, mu(s), c(s), g) as mpf / lists of mpf for mu of shape (N, S)."""
    mu = np.asarray(mu, dtype=np.float64)
    n_agents, n_states = mu.shape
    coverage, weights, grads, total = [], [], [[] for _ in range(n_agents)], mpmath.mpf(0)
    for s in range(n_states):
        product, m, others = _exact_products(mu[:, s])
        log_m = _log_coverage(product, m)
        if m > 0:
            total += -m * log_m
        weight = _clamped_log(product, m, eps) + 1
        coverage.append(m)
        weights.append(weight * product)
        for i in range(n_agents):
            grads[i].append(-weight * others[i])
    return total, coverage, weights, grads


def _exact_products(column):
    """prod_j (1 - mu_j), 1 - prod and the leave-one-out products: exact, then rounded to
    the working precision (50 digits)."""
    with mpmath.workprec(_EXACT_PRODUCT_BITS):
        one_minus = [1 - mpmath.mpf(float(x)) for x in column]
        product = mpmath.fprod(one_minus)
        m = 1 - product
        others = [mpmath.fprod(one_minus[:i] + one_minus[i + 1 :]) for i in range(len(one_minus))]
    return +product, +m, [+x for x in others]


def weight_factor(mu, eps=0.0):
    """|log max(mu(s), eps) + 1| per state, in float64: where it is tiny only an absolute
    bound is fair for c and g (SPEC section 2)."""
    mu = np.asarray(mu, dtype=np.float64)
    out = []
    for s in range(mu.shape[1]):
        product, m, _ = _exact_products(mu[:, s])
        log_clamped = _clamped_log(product, m, eps)
        out.append(math.inf if mpmath.isinf(log_clamped) else abs(float(log_clamped + 1)))
    return np.array(out)


def _log_coverage(product, m):
    """log mu(s) from whichever of m = 1 - product and product is the smaller, since only
    that one keeps all its digits at 50: near mu(s) = 1, log(m) would lose them all once
    the product is below 1e-50, and near 0, log1p(-product) once m is."""
    if m == 0:
        return mpmath.mpf("-inf")
    return mpmath.log(m) if m < product else mpmath.log1p(-product)


def _clamped_log(product, m, eps):
    """log max(mu(s), eps): the clamp of c and g (SPEC section 2)."""
    eps = mpmath.mpf(eps)
    return _log_coverage(product, m) if m >= eps else mpmath.log(eps)
