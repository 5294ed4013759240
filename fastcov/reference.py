"""The readable NumPy reference: the oracle every other backend is tested against.

Written for clarity, not speed: it allocates (N, S) temporaries freely. It is nevertheless
numerically careful, because the tests trust it:

- 1 - mu(s) is the product of the (1 - mu_j(s)) themselves, never 1 minus the computed mu(s);
- mu(s) itself is -expm1(sum_j log1p(-mu_j(s))), which keeps full relative accuracy when
  every mu_j(s) is tiny (1 - prod would cancel to 0);
- log mu(s) is log1p(-(1 - mu(s))) where mu(s) > 1/2, where log(mu(s)) would lose digits;
- the leave-one-out products prod_{j != i} (1 - mu_j(s)) are exclusive prefix and suffix
  products, never a division by 1 - mu_i(s), so they stay exact where mu_i(s) = 1;
- J is summed exactly (``math.fsum``) and rounded once.

All functions take ``mu`` of shape (N, S), C-contiguous float32 or float64, values checked
to lie in [0, 1] when ``check`` is true; arithmetic is float64 throughout; outputs are
caller-allocated arrays of the result dtype.
"""

import math

import numpy as np

from ._errors import InvalidValues


def coverage(mu, out, check):
    """Write mu(s) = 1 - prod_j (1 - mu_j(s)) into ``out`` (S,)."""
    out[...] = _coverage_terms(_checked(mu, check))[0]


def entropy(mu, check):
    """Return J = sum_s -mu(s) log mu(s) as a float (0 log 0 = 0)."""
    m, _, log_m = _coverage_terms(_checked(mu, check))
    return _entropy_sum(m, log_m)


def state_weights(mu, eps, out, check):
    """Write c(s) = (log max(mu(s), eps) + 1)(1 - mu(s)) into ``out`` (S,)."""
    m, q, log_m = _coverage_terms(_checked(mu, check))
    out[...] = (_clamped_log(m, log_m, eps) + 1.0) * q


def value_and_grad(mu, eps, out, check):
    """Write g_i(s) into ``out`` (N, S) and return J.

    g_i(s) = -(log max(mu(s), eps) + 1) * prod_{j != i} (1 - mu_j(s)).
    """
    mu64 = _checked(mu, check)
    m, _, log_m = _coverage_terms(mu64)
    out[...] = -(_clamped_log(m, log_m, eps) + 1.0) * _leave_one_out_products(mu64)
    return _entropy_sum(m, log_m)


def policy_gradient(mu, dmu, eps, out, check):
    """Write sum_s g_i(s) * dmu[i, s, p] into ``out`` (N, P); ``dmu`` is (N, S, P)."""
    dmu64 = np.asarray(dmu, dtype=np.float64)
    if check and not np.all(np.isfinite(dmu64)):
        raise InvalidValues("dmu")
    g = np.empty(mu.shape, dtype=np.float64)
    value_and_grad(mu, eps, g, check)
    out[...] = np.einsum("is,isp->ip", g, dmu64)


def _checked(mu, check):
    """Return ``mu`` as float64, raising InvalidValues for anything outside [0, 1] or NaN."""
    mu64 = np.asarray(mu, dtype=np.float64)
    if check and not np.all((mu64 >= 0.0) & (mu64 <= 1.0)):
        raise InvalidValues("mu")
    return mu64


def _coverage_terms(mu64):
    """Return (mu(s), 1 - mu(s), log mu(s)), each of shape (S,), accurately."""
    with np.errstate(divide="ignore"):
        m = -np.expm1(np.sum(np.log1p(-mu64), axis=0))
        q = np.prod(1.0 - mu64, axis=0)
        log_m = np.where(q < 0.5, np.log1p(-q), np.log(m))
    return m, q, log_m


def _clamped_log(m, log_m, eps):
    """Return log max(mu(s), eps): the clamp applies to the weights' logarithm only, never to J."""
    if eps <= 0.0:
        return log_m
    return np.where(m < eps, math.log(eps), log_m)


def _leave_one_out_products(mu64):
    """prod_{j != i} (1 - mu_j(s)) for every i, as exclusive prefix x suffix products."""
    one_minus = 1.0 - mu64
    prefix = np.ones_like(one_minus)
    suffix = np.ones_like(one_minus)
    prefix[1:] = np.cumprod(one_minus[:-1], axis=0)
    suffix[:-1] = np.cumprod(one_minus[:0:-1], axis=0)[::-1]
    return prefix * suffix


def _entropy_sum(m, log_m):
    """Sum the terms -mu(s) log mu(s) exactly, taking 0 log 0 = 0."""
    terms = np.where(m > 0.0, -m * np.where(m > 0.0, log_m, 0.0), 0.0)
    return math.fsum(terms.tolist())
