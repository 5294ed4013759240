"""Numba CPU kernels: parallel, one pass over mu, deterministic.

Layout of the work. The S states are cut into blocks of ``_config.block_states(N)`` states
and consecutive blocks are grouped into at most ``_config.MAX_CHUNKS`` chunks; ``prange``
runs over chunks. Both partitions depend on (N, S) only, never on the thread count, and J
is accumulated per block and summed in block order (exactly, with ``math.fsum``), so J and
g are bit-identical whatever ``numba.set_num_threads`` says.

Inside a block (``_forward``, then ``_backward``):

1. forward over agents i = 0..N-1: check mu_i(s) in [0, 1], save the exclusive prefix
   product prod_{j<i} (1 - mu_j(s)) in a float64 scratch row, and update
       m(s) <- m(s) + mu_i(s) q(s),   q(s) <- q(s) (1 - mu_i(s)),
   so that m = mu(s) and q = 1 - mu(s) = prod_j (1 - mu_j(s)). Every term of m is
   non-negative: mu(s) keeps full relative accuracy even when every mu_j(s) is tiny, with
   no transcendental call;
2. log mu(s) = log1p(-q) where q < 1/2, else log(m): one call per state of the
   branch-free logarithm of ``_vmath``, which vectorises where libm's would not;
3. backward over agents i = N-1..0 with the suffix product r(s):
       g_i(s) = -(log max(mu(s), eps) + 1) * prefix_i(s) * r(s),  r(s) <- r(s) (1 - mu_i(s)).
   No division by 1 - mu_i(s): exact where mu_i(s) = 1.

The block's rows stay in cache between the passes, so main memory sees one read of mu and
one write of g. Inner loops are small ``@njit`` helpers, which LLVM vectorises (loops
written inline in a ``prange`` body stayed scalar when measured); agents go four at a time
so that the per-state rows m, q and r make one trip through L1 per four agents.

The entry points take mu (N, S) C-contiguous float32 or float64 and caller-allocated,
C-contiguous outputs of mu's dtype (float64 for J); they raise
:class:`fastcov._errors.InvalidValues` when ``check`` is true and a value is out of range.
"""

import math

import numba
import numpy as np

from . import _config, _vmath
from ._errors import InvalidValues

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_parallel_jit = numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
# Reassociation only (no nnan/ninf): lets a block's sum use several SIMD accumulators. The
# order is fixed by the compiled code, so the result is still the same on every call.
_sum_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})

# What the sweep writes: nothing (J only), mu(s), c(s) or g.
_WRITE_NOTHING, _WRITE_COVERAGE, _WRITE_WEIGHTS, _WRITE_GRADIENT = 0, 1, 2, 3


def coverage(mu, out, check):
    """Write mu(s) into ``out`` (S,)."""
    _sweep(mu, 0.0, check, _WRITE_COVERAGE, states_out=out)


def entropy(mu, check):
    """Return J as a float."""
    return _sweep(mu, 0.0, check, _WRITE_NOTHING)


def state_weights(mu, eps, out, check):
    """Write c(s) = (log max(mu(s), eps) + 1)(1 - mu(s)) into ``out`` (S,)."""
    _sweep(mu, eps, check, _WRITE_WEIGHTS, states_out=out)


def value_and_grad(mu, eps, out, check):
    """Write g (N, S) into ``out`` and return J, in one pass over ``mu``."""
    return _sweep(mu, eps, check, _WRITE_GRADIENT, grad_out=out)


def policy_gradient(mu, dmu, eps, out, check):
    """Write sum_s g_i(s) dmu[i, s, p] into ``out`` (N, P) without materialising g.

    ``dmu`` is (N, S, P), C-contiguous, of mu's dtype. Chunks accumulate (N, P) partials
    in float64, merged in chunk order after the parallel loop.
    """
    partials, bad_mu, bad_dmu = _policy_gradient_kernel(mu, dmu, eps, check, *_partition(mu))
    _raise_if_bad(bad_mu, "mu")
    _raise_if_bad(bad_dmu, "dmu")
    # The chunk count depends on the shape only, so this order is fixed too.
    out[...] = partials.sum(axis=0)


def _sweep(mu, eps, check, what, states_out=None, grad_out=None):
    # Unused outputs are empty arrays of the same types, so one compiled kernel serves all.
    if states_out is None:
        states_out = np.empty(0, mu.dtype)
    if grad_out is None:
        grad_out = np.empty((0, 0), mu.dtype)
    partials, bad = _sweep_kernel(mu, eps, check, what, states_out, grad_out, *_partition(mu))
    _raise_if_bad(bad, "mu")
    return math.fsum(partials.tolist())


def _partition(mu):
    """(block states, maximum chunk count): from the shape and the configuration only."""
    return _config.block_states(mu.shape[0]), _config.MAX_CHUNKS


def _raise_if_bad(bad, array):
    if bad:
        raise InvalidValues(array)


# ---------------------------------------------------------------------------------------
# Parallel drivers: the sweep and the policy gradient. Each prange iteration is one chunk:
# it owns its float64 scratch, ``work`` (rows m, q, log_m, suffix) and ``prefix``
# (N, block), and walks its blocks in order.


@_jit
def _chunking(n_states, block, max_chunks):
    n_blocks = (n_states + block - 1) // block
    return n_blocks, min(n_blocks, max_chunks)


@_jit
def _chunk_blocks(chunk, n_chunks, n_blocks):
    return chunk * n_blocks // n_chunks, (chunk + 1) * n_blocks // n_chunks


@_jit
def _scratch(n_agents, block):
    return np.empty((4, block)), np.empty((max(n_agents, 1), block))


@_parallel_jit
def _sweep_kernel(mu, eps, check, what, states_out, grad_out, block, max_chunks):
    """Per-block J partials and bad-value count.

    Writes ``what`` into states_out (S,) or, for _WRITE_GRADIENT, g into grad_out (N, S).
    """
    n_agents, n_states = mu.shape
    n_blocks, n_chunks = _chunking(n_states, block, max_chunks)
    partials = np.zeros(n_blocks)
    bad = np.zeros(n_chunks, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        work, prefix = _scratch(n_agents, block)
        first, last = _chunk_blocks(chunk, n_chunks, n_blocks)
        for b in range(first, last):
            s0, s1 = b * block, min((b + 1) * block, n_states)
            bad[chunk] += _forward(mu, s0, s1, check, work[0], work[1], prefix)
            if what == _WRITE_GRADIENT:
                partials[b] = _backward(mu, s0, s1, eps, work, prefix, grad_out[:, s0:s1])
                continue
            m, q, log_m = work[0, : s1 - s0], work[1, : s1 - s0], work[2, : s1 - s0]
            partials[b] = _log_coverage(m, q, log_m)
            if what == _WRITE_COVERAGE:
                _store(m, states_out[s0:s1])
            elif what == _WRITE_WEIGHTS:
                _weights(m, q, log_m, eps, states_out[s0:s1])
    return partials, bad.sum()


@_parallel_jit
def _policy_gradient_kernel(mu, dmu, eps, check, block, max_chunks):
    n_agents, n_states = mu.shape
    n_blocks, n_chunks = _chunking(n_states, block, max_chunks)
    partials = np.zeros((n_chunks, n_agents, dmu.shape[2]))
    bad_mu = np.zeros(n_chunks, dtype=np.int64)
    bad_dmu = np.zeros(n_chunks, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        work, prefix = _scratch(n_agents, block)
        g = np.empty((n_agents, block))
        first, last = _chunk_blocks(chunk, n_chunks, n_blocks)
        for b in range(first, last):
            s0, s1 = b * block, min((b + 1) * block, n_states)
            n = s1 - s0
            bad_mu[chunk] += _forward(mu, s0, s1, check, work[0], work[1], prefix)
            _backward(mu, s0, s1, eps, work, prefix, g[:, :n])
            for i in range(n_agents):
                bad_dmu[chunk] += _contract(g[i, :n], dmu[i, s0:s1], check, partials[chunk, i])
    return partials, bad_mu.sum(), bad_dmu.sum()


# ---------------------------------------------------------------------------------------
# Block steps. Rows passed in are at least the block's length n = s1 - s0; the 1-D helpers
# are the loops LLVM vectorises.


@_jit
def _forward(mu, s0, s1, check, m, q, prefix):
    """Set m = mu(s), q = 1 - mu(s) over the block, saving the exclusive prefix products
    prod_{j<i} (1 - mu_j(s)) in ``prefix[i]``; return the count of values outside [0, 1].

    Agents go four at a time (then one at a time for the rest), so m and q make one trip
    through memory per four agents instead of one per agent.
    """
    n = s1 - s0
    m[:n] = 0.0
    q[:n] = 1.0
    bad = 0
    n_agents = mu.shape[0]
    for i in range(0, n_agents - n_agents % 4, 4):
        bad += _forward_four(mu, i, s0, n, m, q, prefix, check)
    for i in range(n_agents - n_agents % 4, n_agents):
        bad += _forward_one(mu[i, s0:s1], m[:n], q[:n], prefix[i, :n], check)
    return bad


@_jit
def _forward_four(mu, i, s0, n, m, q, prefix, check):
    bad = 0
    for s in range(n):
        mm, qq = m[s], q[s]
        for k in range(4):
            x = np.float64(mu[i + k, s0 + s])
            if check:
                bad += not (x >= 0.0 and x <= 1.0)
            prefix[i + k, s] = qq
            mm += x * qq
            qq *= 1.0 - x
        m[s], q[s] = mm, qq
    return bad


@_jit
def _forward_one(row, m, q, prefix, check):
    bad = 0
    for s in range(row.size):
        x = np.float64(row[s])
        if check:
            bad += not (x >= 0.0 and x <= 1.0)
        prefix[s] = q[s]
        m[s] += x * q[s]
        q[s] *= 1.0 - x
    return bad


@_jit
def _backward(mu, s0, s1, eps, work, prefix, g):
    """After ``_forward``: write g_i(s) for the block into ``g`` (N, n); return its J."""
    n = s1 - s0
    m, q, log_m, suffix = work[0, :n], work[1, :n], work[2, :n], work[3, :n]
    block_entropy = _log_coverage(m, q, log_m)
    # The suffix product starts from the weight -(log max(mu(s), eps) + 1), folding it in.
    log_eps = _log_eps(eps)
    for s in range(n):
        suffix[s] = -_log_weight(m[s], log_m[s], eps, log_eps)
    n_agents = mu.shape[0]
    for i in range(n_agents - 1, n_agents - n_agents % 4 - 1, -1):
        _backward_one(mu[i, s0:s1], prefix[i, :n], suffix, g[i])
    for i in range(n_agents - n_agents % 4 - 4, -1, -4):
        rows = g[i, :n], g[i + 1, :n], g[i + 2, :n], g[i + 3, :n]
        _backward_four(mu, i, s0, n, prefix, suffix, *rows)
    return block_entropy


@_jit
def _backward_four(mu, i, s0, n, prefix, suffix, g0, g1, g2, g3):
    # Separate 1-D output rows: with one 2-D output LLVM left this loop scalar.
    for s in range(n):
        r3 = suffix[s]
        r2 = r3 * (1.0 - np.float64(mu[i + 3, s0 + s]))
        r1 = r2 * (1.0 - np.float64(mu[i + 2, s0 + s]))
        r0 = r1 * (1.0 - np.float64(mu[i + 1, s0 + s]))
        suffix[s] = r0 * (1.0 - np.float64(mu[i, s0 + s]))
        g3[s] = prefix[i + 3, s] * r3
        g2[s] = prefix[i + 2, s] * r2
        g1[s] = prefix[i + 1, s] * r1
        g0[s] = prefix[i, s] * r0


@_jit
def _backward_one(row, prefix, suffix, g):
    for s in range(row.size):
        g[s] = prefix[s] * suffix[s]
        suffix[s] *= 1.0 - np.float64(row[s])


@_jit
def _log_coverage(m, q, log_m):
    """Fill log mu(s) and return the block's J = sum -mu(s) log mu(s) (0 log 0 = 0).

    Where q = 1 - mu(s) < 1/2, log mu(s) = log1p(-q) as fdlibm computes it: the log of
    u = fl(1 - q) plus the first-order correction ((1 - u) - q) / u for u's rounding
    (1 - u is exact there). Choosing the argument first keeps one log per state.
    """
    for s in range(m.size):
        near_one = q[s] < 0.5
        u = 1.0 - q[s] if near_one else m[s]
        correction = ((1.0 - u) - q[s]) / u if near_one else 0.0
        log_m[s] = _vmath.log(u) + correction
    return _entropy_sum(m, log_m)


@_sum_jit
def _entropy_sum(m, log_m):
    total = 0.0
    for s in range(m.size):
        total += -m[s] * log_m[s] if m[s] > 0.0 else 0.0
    return total


@_jit
def _log_eps(eps):
    return math.log(eps) if eps > 0.0 else -np.inf


@_jit
def _log_weight(m, log_m, eps, log_eps):
    """Return log max(mu(s), eps) + 1: eps clamps the weights' log only, never J."""
    return (log_eps if m < eps else log_m) + 1.0


@_jit
def _weights(m, q, log_m, eps, out):
    """c(s) = (log max(mu(s), eps) + 1) q(s)."""
    log_eps = _log_eps(eps)
    for s in range(m.size):
        out[s] = _log_weight(m[s], log_m[s], eps, log_eps) * q[s]


@_jit
def _store(values, out):
    for s in range(values.size):
        out[s] = values[s]


@_jit
def _contract(g, dmu, check, acc):
    """acc[p] += sum_s g[s] dmu[s, p]; return the count of non-finite dmu entries."""
    bad = 0
    for s in range(g.size):
        for p in range(acc.size):
            x = np.float64(dmu[s, p])
            if check:
                bad += not math.isfinite(x)
            acc[p] += g[s] * x
    return bad
