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
        log_m = mpmath.log(m) if m > 0 else mpmath.mpf("-inf")
        if m > 0:
            total += -m * log_m
        clamped = max(m, mpmath.mpf(eps))
        weight = (mpmath.log(clamped) if clamped > 0 else mpmath.mpf("-inf")) + 1
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
    _, coverage, _, _ = exact(mu, eps)
    out = []
    for m in coverage:
        clamped = max(m, mpmath.mpf(eps))
        out.append(math.inf if clamped == 0 else abs(float(mpmath.log(clamped) + 1)))
    return np.array(out)
