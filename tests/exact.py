"""The arbitrary-precision oracle: mu(s), J, c(s) and g_i(s) with mpmath at 50 digits;
and, for the patrol model, a robot's stationary distribution and dJ/dtheta at any
precision (``patrol_*``).

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


# The patrol model (fastcov.patrol): one robot's chain and the gradient of J through it.


def patrol_softmax(g, theta):
    """One patrol robot's edge probabilities (the softmax of its logits ``theta`` on graph
    ``g``), as mpmath numbers at the working precision.
    """
    softmax = []
    for s in range(g.n_vertices):
        weights = [mpmath.exp(mpmath.mpf(float(theta[e]))) for e in range(*g.indptr[s : s + 2])]
        softmax += [w / sum(weights) for w in weights]
    return softmax


def patrol_chain(g, moves):
    """(I - P, mu) for edge probabilities ``moves`` (numbers mpmath takes exactly), at the
    working precision: mu by state reduction, which subtracts nothing (Grassmann, Taksar
    and Heyman), so that every share keeps the working precision, however many orders of
    magnitude the shares span. Every vertex must reach vertex 0 by moves of probability
    > 0.
    """
    n = g.n_vertices
    system = mpmath.eye(n)
    rates = [{} for _ in range(n)]  # rates[s][t]: the chain's moves s -> t, t != s
    for e, p in enumerate(moves):
        s, t = int(g.sources[e]), int(g.indices[e])
        system[s, t] -= p
        if s != t and p:
            rates[s][t] = rates[s].get(t, 0) + mpmath.mpf(p)
    # Censor the chain to vertices 0 .. k - 1, for k = n - 1 down to 1: a move into k
    # continues by k's moves to them, in proportion. (Moves to the vertices censored
    # already stay in ``rates``, unread, for the measure.)
    exits = [None] * n
    for k in range(n - 1, 0, -1):
        exits[k] = {j: rate for j, rate in rates[k].items() if j < k}
        leaving = mpmath.fsum(exits[k].values())
        for i in range(k):
            into = rates[i].get(k, 0)
            for j, rate in exits[k].items():
                rates[i][j] = rates[i].get(j, 0) + into * rate / leaving
    measure = [mpmath.mpf(1)]
    for k in range(1, n):
        into = mpmath.fsum(measure[i] * rates[i].get(k, 0) for i in range(k))
        measure.append(into / mpmath.fsum(exits[k].values()))
    total = mpmath.fsum(measure)
    return system, mpmath.matrix([x / total for x in measure])


def patrol_logit_gradient(g, theta, dj_dmu, floor=0.0, digits=300):
    """One robot's dJ/dtheta from a solve at ``digits`` digits, for dJ/dmu = ``dj_dmu``
    (taken as exact): mu, then h from (I - P + 1 mu^T) h = dJ/dmu, then the softmax chain
    rule.
    """
    n = g.n_vertices
    with mpmath.workdps(digits):
        softmax = patrol_softmax(g, theta)
        degree = g.out_degrees[g.sources]
        moves = [
            floor + (1 - int(d) * mpmath.mpf(floor)) * p
            for d, p in zip(degree, softmax, strict=True)
        ]
        system, mu = patrol_chain(g, moves)
        for i in range(n):
            for j in range(n):
                system[i, j] += mu[j]
        h = mpmath.lu_solve(system, mpmath.matrix([mpmath.mpf(float(x)) for x in dj_dmu]))
        out = [mu[int(g.sources[e])] * h[int(g.indices[e])] for e in range(g.n_edges)]
        grad = []
        for s in range(n):
            edges = range(*g.indptr[s : s + 2])
            mean = sum(softmax[e] * out[e] for e in edges)
            grad += [
                (1 - int(degree[e]) * mpmath.mpf(floor)) * softmax[e] * (out[e] - mean)
                for e in edges
            ]
        return np.array([float(x) for x in grad])
