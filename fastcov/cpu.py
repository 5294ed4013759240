"""Numba CPU kernels: parallel, one pass over mu, deterministic.

Layout of the work. The S states are cut into blocks of ``_config.block_states(N)`` states
and consecutive blocks are grouped into at most ``_config.MAX_CHUNKS`` chunks; ``prange``
runs over chunks. Both partitions depend on (N, S) only, never on the thread count, and J
is accumulated per block and summed in block order (exactly, with ``math.fsum``), so J and
g are bit-identical whatever ``numba.set_num_threads`` says.

Agents go in a first group of the 1 to 8 left over and groups of 8 after it (N <= 8
agents are one group of exactly N); each size of group is its own compiled loop (see
:func:`_group_type`). For each state of a group:

1. forward over its agents i: check mu_i(s) in [0, 1], keep the exclusive prefix product
   prod_{j<i} (1 - mu_j(s)) for the way back, and update
       m(s) <- m(s) + mu_i(s) q(s),   q(s) <- q(s) (1 - mu_i(s)),
   so that after every group m = mu(s) and q = 1 - mu(s) = prod_j (1 - mu_j(s)). Every
   term of m is non-negative: mu(s) keeps full relative accuracy even when every mu_j(s)
   is tiny, with no transcendental call;
2. log mu(s) = log1p(-q) where q < 1/2, else log(m): one call per state of the
   branch-free logarithm of ``_vmath``, which vectorises where libm's would not;
3. backward over the agents with the suffix product r(s), which starts from the weight:
       g_i(s) <- prefix_i(s) r(s),   r(s) <- r(s) (1 - mu_i(s)),   r = -(log max(mu(s), eps) + 1)
   No division by 1 - mu_i(s): exact where mu_i(s) = 1.

With N <= 8 (one group) the three steps are one loop over the block's states: each mu
value is read from memory once, the prefix products wait in registers (``_stack``)
and each g value is written once, in g's dtype (a float64 g larger than the caches, of
_STREAM_MIN_AGENTS agents or more, 64 states at a time into a tile on the stack,
streamed from there into g: ``_stream``); c(s) and J alone take steps 1 and 2 in one
loop, with no prefix products kept, and mu(s) alone step 1. More agents chain the groups
through float64 rows m, q and r (the sweeps of mu(s), c(s) and J alone through m and q,
with no prefix products kept); the prefix products of all groups but the last wait in
g's own place, so a float32 g is computed in a float64 block and rounded into g once
(with streaming stores, ``_stream``, where g is larger than the caches), and their mu
is read twice (the second time from cache). The last group takes the three steps in one
loop, as a single group does, from the m and q of the groups before it.
The loops over states are what LLVM vectorises, and it does so only when (measured, one by
one): the loop over a group's agents has a constant trip count (it unrolls); the prefix
products are in registers or in g's own place (a separate scratch array kept the loop
scalar); column indices are unsigned (a signed index costs a wraparound test); and the
loop has no branch on ``check`` and no reduction (the bad-value count is always taken and
only reported when ``check`` is true; the J terms go to a row summed afterwards).

The entry points take mu (N, S) C-contiguous float32 or float64 and caller-allocated,
C-contiguous outputs of mu's dtype (float64 for J); they raise
:class:`fastcov._errors.InvalidValues` when ``check`` is true and a value is out of range.
"""

import contextlib
import functools
import math
import os
import threading

import numba
import numpy as np
from numba.core import types
from numba.core.cpu_options import ParallelOptions
from numba.extending import overload

from . import _config, _interleave, _stack, _stream, _vmath
from ._errors import InvalidValues
from ._jit import jit, jit_with

# prange alone: NumPy calls in a kernel (its small np.zeros, .sum()) stay serial code, not
# parallel regions of their own, each a thread launch at every call and a gufunc to
# compile (about 1.7 s for each parallel kernel). A ParallelOptions, not the dict it is
# made from: Numba pops the dict's keys as it reads them, so a second compile would see {}.
_PRANGE_ONLY = ParallelOptions(
    {
        option: False
        for option in ("comprehension", "reduction", "inplace_binop", "setitem", "numpy")
        + ("stencil", "fusion")
    }
)
_parallel_jit = jit_with(parallel=_PRANGE_ONLY)
# Reassociation only (no nnan/ninf): lets a block's sum use several SIMD accumulators. The
# order is fixed by the compiled code, so the result is still the same on every call.
_sum_jit = jit_with(fastmath={"reassoc"})

# What the sweep writes: nothing (J only), mu(s), c(s) or g.
_WRITE_NOTHING, _WRITE_COVERAGE, _WRITE_WEIGHTS, _WRITE_GRADIENT = 0, 1, 2, 3

#: Agents per group: their products stay in registers (16 vector registers with AVX2).
#: With N <= 8 agents the gradient's one group has exactly N of them: a padded group costs
#: the padding rows and copies of mu and g through scratch (S = 1e7: N = 2 ran 1.8x
#: faster in a group of 2 than in a padded group of 4, N = 5..7 up to 2.3x faster
#: unpadded than in a padded group of 8). Each size is its own compiled kernel, made the
#: first time an N needs it, then cached on disk (N = 5 float64: 23 s on a 2-core Zen 3
#: for the sweep and the policy gradient, each on one thread and in parallel).
_GROUP = 8

#: Addresses this many bytes apart, or a multiple, look alike to the processor's check of
#: a load against earlier stores, which then takes the load to depend on the store (4K
#: aliasing): rows this far apart, stored into one and loaded from the next, stall.
_ALIASING_BYTES = 4096

#: Columns a scratch row gets past its block where its rows would otherwise be
#: _ALIASING_BYTES apart (:func:`_scratch`): one line of float64.
_SCRATCH_PAD = 8

#: States of g a streamed single group computes into a tile in L1 before it streams the
#: tile's lines out: whole lines of float32 and float64 (16 and 8 states a line).
_STREAM_TILE_STATES = 64

#: A float64 g of at most 8 agents and at least this many, of at least
#: ``_config.STREAM_STORE_BYTES``, is computed a tile at a time and streamed. Against g
#: written straight, one process alternating the two (S x N = 8e7 float64, 2 cores, g 16
#: bytes past a line): N = 8 -11 to -21 %, N = 7 -13 %, N = 6 +3 to +5 %, N = 5 -17 %,
#: N = 4 -2 to +10 %, N = 2, 3 +2 to +10 %, N = 1 +30 %; a float32 g was no faster at any
#: N. Only these kernels compile the tiled loop (:func:`_tiles`).
_STREAM_MIN_AGENTS = 7


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
    _bind_hot_loop(mu.dtype, out.dtype, mu.shape[0], streams=True)
    return _sweep(mu, eps, check, _WRITE_GRADIENT, grad_out=out)


def policy_gradient(mu, dmu, eps, out, check):
    """Write sum_s g_i(s) dmu[i, s, p] into ``out`` (N, P) without materialising g.

    ``dmu`` is (N, S, P), C-contiguous, of mu's dtype. Chunks accumulate (N, P) partials
    in float64, merged in chunk order after the parallel loop.
    """
    # g goes in a float64 block, never streamed
    _bind_hot_loop(mu.dtype, np.dtype(np.float64), mu.shape[0], streams=False)
    partials, bad_mu, bad_dmu = _partitioned(
        _policy_gradient_kernel,
        _policy_gradient_on_this_thread,
        mu,
        _kernel_input(dmu),
        eps,
        check,
    )
    _raise_if_bad(check and bad_mu, "mu")
    _raise_if_bad(bad_dmu, "dmu")
    # The chunk count depends on the shape only, so this order is fixed too.
    out[...] = partials.sum(axis=0)


#: A whole group, for :func:`_stack.column`: int64 zeros, not the int 0, whose literal
#: type would compile the loops of a group of 8 a second time beside ``group[_GROUP:]``.
_ONE_GROUP = (np.int64(0),) * _GROUP


@functools.cache
def partition(n_agents):
    """(the group of ``_gradient``, block states, maximum chunk count) for N agents: from
    the shape and the configuration's constants only, so it is computed once per N.
    """
    return _group_type(n_agents), _config.block_states(n_agents), _config.MAX_CHUNKS


def _group_type(n_agents):
    """The ``group`` of N agents: N zeros for N <= 8; for more, 8 + r zeros, r = 1 .. 8 the size of
    the group of agents left over from groups of 8. Its length is a constant of the compiled
    code, so each length is a kernel of its own, compiling only its own loops: N = 8 (one
    group of 8) apart from N > 8 (groups of 8 chained through scratch rows; with one type
    for both, a first value_and_grad at N = 8 float64 also compiled their loops: 14.6-16.6 s
    in an empty cache on a 2-core Zen 4, against 8.1-8.5 s), and N > 8 by the size of their
    group left over, whose loops are compiled for its exact count (with all eight sizes in
    one kernel, a first N = 9 compiled in 17.3 s against 9.7 with one).
    """
    if n_agents <= _GROUP:
        return (0,) * n_agents
    return (0,) * (_GROUP + (n_agents - 1) % _GROUP + 1)


@jit
def gradient_on_this_thread(mu, eps, g, group, block):
    """``value_and_grad``'s sweep for compiled callers (the patrol step), on the calling
    thread: g (float64, (N, S)) written straight from float64 ``mu``, the same blocks in
    the same order as the parallel kernel (so the same g, bit for bit); returns the
    per-block J partials (sum them with ``math.fsum``) and the count of states with a
    value outside [0, 1]. ``group`` and ``block`` come from :func:`partition`.
    """
    return _sweep_on_this_thread(mu, eps, _WRITE_GRADIENT, None, g, False, group, block, 1)


@functools.cache
def _bind_hot_loop(mu_dtype, g_dtype, n_agents, streams):
    """Load the gradient's loops for N <= 8 agents (``_one_group`` for these types: mu's
    and the g it writes, straight and, for a caller that ``streams``, tiled where
    :func:`_tiles` allows) on their own, before the kernels that call them, so that they
    run those copies.

    A compiled kernel carries its own copy of each function it calls, optimised again with
    the kernel; but the JIT binds a call to the first definition of the function it was
    given, and a process that compiles a kernel has compiled each callee on its own first.
    So a process that compiled the sweep ran the standalone loop, and one that loaded the
    sweep from the disk cache ran the sweep's own copy: the same bits (the same code, with
    no fast-math flags), but N = 8 float32 at S = 1e7 on 2 threads took 30-36 ms the first
    way and 41-48 ms the second (bench/RESULTS.md). A call on empty arrays loads the
    standalone loop (from the disk cache, or compiling it), so every process runs it.
    """
    if n_agents <= _GROUP:
        mu, g = np.empty((n_agents, 0), mu_dtype), np.empty((n_agents, 0), g_dtype)
        first, group = np.uint64(0), partition(n_agents)[0]
        tiled = streams and _tiles_pay(g_dtype, n_agents)
        for streamed in (None, True) if tiled else (None,):
            _one_group(mu, first, g, first, np.empty(0), 0.0, -np.inf, group, streamed)


def _sweep(mu, eps, check, what, states_out=None, grad_out=None):
    # Unused outputs are empty arrays of the same types, so one compiled kernel serves all.
    unused_states, unused_grad = _unused_outputs(mu.dtype)
    if states_out is None:
        states_out = unused_states
    if grad_out is None:
        grad_out = unused_grad
    stream = _streams(grad_out) if grad_out.size else _streams_states(states_out)
    partials, bad = _partitioned(
        _sweep_kernel, _sweep_on_this_thread, mu, eps, what, states_out, grad_out, stream
    )
    _raise_if_bad(check and bad, "mu")
    return math.fsum(partials.tolist())


@functools.cache
def _unused_outputs(dtype):
    """Empty (S,) and (N, S) outputs of ``dtype``, made once: nothing is ever written into
    them, and two allocations took 0.5 us of a small call. Writeable, as the outputs
    the kernels are compiled for are.
    """
    return np.empty(0, dtype), np.empty((0, 0), dtype)


def _streams(g):
    """Whether the sweep writes g with streaming stores (``_stream``): where g is larger
    than the caches and already in memory, in the cases where it was measured to pay
    (bench/RESULTS.md): a g of more than 8 agents copied out of its float64 block (a
    float32 g, rounded; a float64 g whose rows are _ALIASING_BYTES apart: N = 12 at
    S = 2^20 on a 2-core Zen 4, 1.18x), and a float64 g of at least _STREAM_MIN_AGENTS
    (and at most 8), computed a tile at a time.
    """
    if g.nbytes < _config.STREAM_STORE_BYTES:
        return False
    n_agents = g.shape[0]
    if n_agents > _GROUP:
        pays = g.dtype == np.float32 or _rows_alias.py_func(g.strides[0])
    else:
        pays = _tiles_pay(g.dtype, n_agents)
    return pays and _stream.in_memory(g)  # mincore's two system calls only where it may pay


def _streams_states(out):
    """Whether mu(s) or c(s) goes into ``out`` with streaming stores: where it is larger
    than the caches and already in memory.
    """
    return out.nbytes >= _config.STREAM_STORE_BYTES and _stream.in_memory(out)


def _tiles_pay(g_dtype, n_agents):
    """Whether a g of N <= 8 agents pays to be computed a tile at a time and streamed
    (the measurements at _STREAM_MIN_AGENTS): float64, _STREAM_MIN_AGENTS agents or more.
    """
    return np.dtype(g_dtype) == np.float64 and _STREAM_MIN_AGENTS <= n_agents <= _GROUP


def _partitioned(kernel, serial, mu, *args):
    """``kernel(mu, *args, *partition(N))``, on no more threads than it has chunks; a call
    of one chunk runs ``serial`` (the same chunks and blocks in the same order, so the
    same bits) on this thread, without the threading layer, and so does every call in a
    process forked from one whose parallel kernels ran on GNU OpenMP
    (:func:`_forked_from_gnu_openmp`).

    A small call then wakes no thread that would only wait: at N = 4, S = 1e3 (one chunk)
    a call took 19 us on two threads and 14 us on one, and 52 us on a 16-thread machine.
    Even on one thread the parallel kernel's launch, and setting and restoring the thread
    count, took 5.5 us of it (here: the kernel 7.9 us on one thread, the count 2.1 us,
    the serial driver 4.5 us).
    """
    mu = _kernel_input(mu)
    _, block, max_chunks = agents_partition = partition(mu.shape[0])
    # The compiled function's Python original: a call into Numba from Python costs more.
    chunks = max(1, _chunking.py_func(mu.shape[1], block, max_chunks)[1])
    if chunks == 1 or _forked_from_gnu_openmp():
        return serial(mu, *args, *agents_partition)
    threads = numba.get_num_threads()
    with _launch_lock():
        if chunks >= threads:
            return kernel(mu, *args, *agents_partition)
        numba.set_num_threads(chunks)
        try:
            return kernel(mu, *args, *agents_partition)
        finally:
            numba.set_num_threads(threads)


def _kernel_input(array):
    """``array`` itself where it is writeable, else the same memory as an array NumPy
    calls writeable, which the kernels, compiled for writeable inputs, take as they are.

    They never write their inputs; but a read-only one (``np.asarray`` of a JAX array,
    ``np.load(..., mmap_mode="r")``, ``np.frombuffer``) is a type of its own to Numba,
    which would compile every kernel again for it (N = 4 float64: 67 s on a busy 2-core
    Xeon, once per machine), and copying it would double the traffic of a pass over it.
    """
    if array.flags.writeable:
        return array
    return np.asarray(_WriteableView(array))


class _WriteableView:
    """The ``__array_interface__`` of a C-contiguous ``array`` with its read-only flag
    cleared; the array made from it keeps this object, and so ``array``, alive.
    """

    def __init__(self, array):
        self.array = array
        pointer, _ = array.__array_interface__["data"]
        self.__array_interface__ = {
            "shape": array.shape,
            "typestr": array.dtype.str,
            "data": (pointer, False),
            "version": 3,
        }


def _launch_lock():
    """A lock around a parallel kernel's launch where Numba's threading layer is its
    workqueue, which aborts the whole process when two Python threads launch at once
    (Numba picks it where neither TBB nor OpenMP loads); no lock under TBB or OpenMP,
    which are threadsafe. Until a first launch has made Numba choose, the lock too.
    """
    layer = _threading_layer()
    return _WORKQUEUE_LOCK if layer in (None, "workqueue") else contextlib.nullcontext()


def _threading_layer():
    """The threading layer Numba launched its parallel kernels on, or None before the first."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _forked_from_gnu_openmp():
    """Whether this process was forked (multiprocessing's default on Linux) from one whose
    parallel kernels ran on GNU OpenMP, which cannot run in such a child: Numba
    terminates a child that launches one (and a multiprocessing pool then waits forever
    for its result). The serial drivers walk the kernels' chunks, so they give the same
    bits on this thread.
    """
    return _INHERITED_LAYER == "omp" and _gnu_openmp()


@functools.cache
def _gnu_openmp():
    """Whether Numba's OpenMP layer is built on GNU OpenMP (Intel's is fork-safe)."""
    from numba.np.ufunc import omppool

    return omppool.openmp_vendor == "GNU"


def _after_fork_in_child():
    # Only what is safe between fork and exec: no import, no lock taken.
    global _INHERITED_LAYER, _WORKQUEUE_LOCK
    _INHERITED_LAYER = _threading_layer()
    _WORKQUEUE_LOCK = threading.Lock()  # one held by another thread at the fork stays held


_INHERITED_LAYER = None
_WORKQUEUE_LOCK = threading.Lock()
os.register_at_fork(after_in_child=_after_fork_in_child)


def _raise_if_bad(bad, array):
    if bad:
        raise InvalidValues(array)


# ---------------------------------------------------------------------------------------
# Parallel drivers: the sweep and the policy gradient. Each prange iteration is one chunk:
# it owns its scratch (``_scratch``) and walks its blocks in order.


@jit
def _chunking(n_states, block, max_chunks):
    n_blocks = (n_states + block - 1) // block
    return n_blocks, min(n_blocks, max_chunks)


@jit
def _chunk_blocks(chunk, n_chunks, n_blocks):
    return chunk * n_blocks // n_chunks, (chunk + 1) * n_blocks // n_chunks


@jit
def _rows_alias(row_bytes):
    """Whether rows ``row_bytes`` apart are a multiple of _ALIASING_BYTES apart: a store
    into one row and a load from the next then stall (the one test of it, for the
    scratch rows, the choice of a float64 g's block and whether that block is streamed).
    """
    return row_bytes % _ALIASING_BYTES == 0


@jit
def _scratch(mu, block, g_rows):
    """A chunk's scratch: float64 rows (m, q, log_m or the J terms, r or a streamed
    c(s)) and a float64 g block of ``g_rows`` rows. No wider than S: small calls then
    stay clear of the allocator's page-mapping sizes.
    """
    width = min(block, mu.shape[1])
    # Rows a line longer than the block where the block's width (a power of two, or S)
    # puts them _ALIASING_BYTES apart (float32 N = 9, 12 at S = 1e7 on a 2-core Zen 4:
    # 1.24-1.31x slower). The float64 rows decide: mu's dtype is never wider.
    columns = width + _SCRATCH_PAD if _rows_alias(width * 8) else width
    return np.empty((4, columns)), np.empty((g_rows, columns))


@_parallel_jit
def _sweep_kernel(mu, eps, what, states_out, grad_out, stream, group, block, max_chunks):
    """Per-block J partials and bad-value count.

    Writes ``what`` into states_out (S,) or, for _WRITE_GRADIENT, g into grad_out (N, S);
    where g is computed in a float64 block (more than 8 agents and a float32 g), the block
    is rounded into grad_out with streaming stores (``_stream``) where ``stream``, as is
    a tiled g of N <= 8 (:func:`_single_group`) and states_out (:func:`_states`).
    """
    n_blocks, n_chunks = _chunking(mu.shape[1], block, max_chunks)
    partials = np.zeros(n_blocks)
    bad = np.zeros(n_chunks, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        first, last = _chunk_blocks(chunk, n_chunks, n_blocks)
        bad[chunk] = _sweep_blocks(
            mu, eps, what, states_out, grad_out, stream, group, block, first, last, partials
        )
        if stream:
            _stream.fence()
    return partials, bad.sum()


#: The first block of a call on one thread: an int64, not the literal 0, whose type would
#: make Numba compile the blocks' function a second time, beside the parallel kernel's
#: copy (about 2.3 s for each N and dtype).
_FIRST = np.int64(0)


@jit
def _sweep_on_this_thread(mu, eps, what, states_out, grad_out, stream, group, block, max_chunks):
    """:func:`_sweep_kernel` as one chunk, on the calling thread: the same bits whatever
    the kernel's chunk count, as each block's results are its own.
    """
    n_blocks = _chunking(mu.shape[1], block, max_chunks)[0]
    partials = np.zeros(n_blocks)
    bad = _sweep_blocks(
        mu, eps, what, states_out, grad_out, stream, group, block, _FIRST, n_blocks, partials
    )
    if stream:
        _stream.fence()
    return partials, bad


@jit
def _sweep_blocks(mu, eps, what, states_out, grad_out, stream, group, block, first, last, partials):
    """The sweep over blocks first .. last - 1 (one chunk's), with its own scratch: their
    J partials into ``partials``; returns their count of states with a value outside [0, 1].
    """
    n_agents, n_states = mu.shape
    # A g block where several groups may compute g there (a float32 g, or rows 4 KiB
    # apart); one group writes g straight, and mu(s), c(s) and J alone keep no g.
    several = what == _WRITE_GRADIENT and n_agents > _GROUP
    work, g_block = _scratch(mu, block, n_agents if several else 0)
    bad = 0
    for b in range(first, last):
        s0, s1 = b * block, min((b + 1) * block, n_states)
        partials[b], block_bad = _block(
            mu, s0, s1, eps, what, work, g_block, group, states_out, grad_out, stream
        )
        bad += block_bad
    return bad


def _block(mu, s0, s1, eps, what, work, g_block, group, states_out, grad_out, stream):
    """One block of the sweep: ``what`` into ``states_out`` (:func:`_states`), or, for
    _WRITE_GRADIENT, g into ``grad_out`` (:func:`_gradient`). Where ``states_out`` is None
    only g's code is compiled (chosen by type): the patrol step, which only ever wants g,
    compiles none of the states' loops (N = 4 float64 in an empty cache on a 2-core Zen
    3: ``fastcov demo``'s first run 31.7, 31.6 -> 25.8, 28.8 s). The public functions'
    sweep passes both outputs (the one not written empty), so that one kernel serves
    them all: with a kernel each for g and for the rest, a first ``grad`` and
    ``coverage`` at N = 5 float64 compiled in 19.8 s, against 16.3.
    """


@overload(_block, jit_options={"cache": True, "nogil": True})
def _block_typed(mu, s0, s1, eps, what, work, g_block, group, states_out, grad_out, stream):
    return _gradient_block if isinstance(states_out, types.NoneType) else _either_block


def _gradient_block(mu, s0, s1, eps, what, work, g_block, group, states_out, grad_out, stream):
    return _gradient(mu, s0, s1, eps, work, grad_out, s0, g_block, group, stream)


def _either_block(mu, s0, s1, eps, what, work, g_block, group, states_out, grad_out, stream):
    # The calls themselves, not _block's: each function between costs its own compile.
    if what == _WRITE_GRADIENT:
        return _gradient(mu, s0, s1, eps, work, grad_out, s0, g_block, group, stream)
    return _states(mu, s0, s1, eps, what, work, group, states_out, stream)


@_parallel_jit
def _policy_gradient_kernel(mu, dmu, eps, check, group, block, max_chunks):
    """Per-chunk (N, P) partials of sum_s g_i(s) dmu[i, s, p], and the counts of bad
    values in mu and in dmu.
    """
    n_blocks, n_chunks = _chunking(mu.shape[1], block, max_chunks)
    partials = np.zeros((n_chunks, mu.shape[0], dmu.shape[2]))
    bad_mu = np.zeros(n_chunks, dtype=np.int64)
    bad_dmu = np.zeros(n_chunks, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        first, last = _chunk_blocks(chunk, n_chunks, n_blocks)
        bad_mu[chunk], bad_dmu[chunk] = _policy_gradient_blocks(
            mu, dmu, eps, check, group, block, first, last, partials[chunk]
        )
    return partials, bad_mu.sum(), bad_dmu.sum()


@jit
def _policy_gradient_on_this_thread(mu, dmu, eps, check, group, block, max_chunks):
    """:func:`_policy_gradient_kernel`'s chunks one after another, on the calling thread,
    each into its own partials as there: the same sums, so the same bits.
    """
    n_blocks, n_chunks = _chunking(mu.shape[1], block, max_chunks)
    partials = np.zeros((n_chunks, mu.shape[0], dmu.shape[2]))
    bad_mu = bad_dmu = 0
    for chunk in range(n_chunks):
        first, last = _chunk_blocks(chunk, n_chunks, n_blocks)
        chunk_bad_mu, chunk_bad_dmu = _policy_gradient_blocks(
            mu, dmu, eps, check, group, block, first, last, partials[chunk]
        )
        bad_mu += chunk_bad_mu
        bad_dmu += chunk_bad_dmu
    return partials, bad_mu, bad_dmu


@jit
def _policy_gradient_blocks(mu, dmu, eps, check, group, block, first, last, partials):
    """Blocks first .. last - 1 (one chunk's) of the policy gradient, with their own
    scratch, added into ``partials`` (N, P); returns the counts of bad values in mu and
    in dmu.
    """
    n_agents, n_states = mu.shape
    work, g = _scratch(mu, block, n_agents)  # g computed in a block, then contracted
    n_parameters = dmu.shape[2]
    interleaved = n_parameters <= _interleave.MAX_PARAMETERS
    lanes = np.empty((n_parameters if interleaved else 0, _interleave.LANES))
    bad_mu = bad_dmu = 0
    for b in range(first, last):
        s0, s1 = b * block, min((b + 1) * block, n_states)
        n = s1 - s0
        bad_mu += _gradient(mu, s0, s1, eps, work, g, 0, g, group, False)[1]
        for i in range(n_agents):
            if interleaved:
                bad_dmu += _contract_interleaved(g[i, :n], dmu[i, s0:s1], check, lanes, partials[i])
            else:
                bad_dmu += _contract_along_parameters(g[i, :n], dmu[i, s0:s1], check, partials[i])
    return bad_mu, bad_dmu


# ---------------------------------------------------------------------------------------
# Block steps, for states s0:s1 (n of them). N <= 8 agents are one group, which writes g
# once, in its own dtype, into the caller's g at columns g_s0:g_s0 + n. More agents go in
# groups of 8 and one of 1 to 8, whose g goes into a float64 g: the caller's
# where it is float64, else the chunk's block ``g_block`` (at column 0), rounded into the
# caller's g afterwards.


def _gradient(mu, s0, s1, eps, work, g, g_s0, g_block, group, stream):
    """Write g_i(s) for the block into g[:, g_s0 : g_s0 + n]; return (the block's J, the
    count of states with a value outside [0, 1]).

    ``group`` is :func:`_group_type`'s. Its length is a constant of the compiled code, as
    the loops over a group's agents need to unroll; and each length is compiled (and
    cached) only when an N needs it. One group compiles
    :func:`_single_group` alone, several groups :func:`_several_groups` alone (chosen by
    the group's type, :func:`_gradient_typed`), neither typing the other's loops: N = 5
    float64 on a 2-core Zen 3, the sweep and the policy gradient, each on one thread and
    in parallel, compiled in 41 s with both and 23 s with one. ``stream``: write g with
    streaming stores (``_stream``), from a float64 block into a float32 g of more than 8
    agents, from tiles for N <= 8.
    """


def _one_group_gradient(mu, s0, s1, eps, work, g, g_s0, g_block, group, stream):
    return _single_group(mu, s0, s1, eps, work, g, g_s0, group, stream)


def _several_groups_gradient(mu, s0, s1, eps, work, g, g_s0, g_block, group, stream):
    n = s1 - s0
    block_g, in_place = _float64_rows(g, g_block)
    block_g_s0 = g_s0 if in_place else 0
    block = _several_groups(mu, s0, s1, eps, work, block_g, block_g_s0, group)
    if not in_place:
        for i in range(mu.shape[0]):
            if stream:
                _stream.store(g_block[i, :n], g[i, g_s0 : g_s0 + n])
            else:
                _store(g_block[i, :n], g[i, g_s0 : g_s0 + n])
    return block


@overload(_gradient, jit_options={"cache": True, "nogil": True})
def _gradient_typed(mu, s0, s1, eps, work, g, g_s0, g_block, group, stream):
    return _one_group_gradient if len(group.types) <= _GROUP else _several_groups_gradient


def _float64_rows(g, g_block):
    """(g, True) where g is float64, else (g_block, False): chosen when compiled; and
    (g_block, False) for a float64 g whose rows are a multiple of _ALIASING_BYTES apart
    (S a multiple of 512), chosen at run time: there the way back's stores into a row and
    loads from the next stall. On a 2-core Zen 4, N = 12 at S = 2^20 ran 1.3x faster in
    the block than in g's own place, which at other S was 1.0-1.1x the faster.
    """


@overload(_float64_rows, jit_options={"cache": True, "nogil": True})
def _float64_rows_typed(g, g_block):
    if g.dtype == types.float64:
        return lambda g, g_block: (g_block, False) if _rows_alias(g.strides[0]) else (g, True)
    return lambda g, g_block: (g_block, False)


@jit
def _several_groups(mu, s0, s1, eps, work, g, g_s0, group):
    """``_gradient`` for N > 8, g float64: a first group of the 1 to 8 agents left over
    (its size from ``group``), then groups of 8, chained through work's rows, the last
    group's three steps in one loop (:func:`_last_group_steps`). The groups before the
    last take two passes over the block (forward, their prefix products kept in g, and
    back, reading their mu again), so the smallest group goes first.
    """
    n = s1 - s0
    first_group = group[_GROUP:]
    size, last = len(first_group), mu.shape[0] - _GROUP
    src_s0, dst_s0 = np.uint64(s0), np.uint64(g_s0)
    bad = _forward(mu, s0, s1, work, g, g_s0, first_group)
    bad += _last_group_steps(mu[last:], src_s0, g[last:], dst_s0, work, n, eps)
    block_entropy = _sum(work[1, :n])
    r = work[0, :n]
    for first in range(last - _GROUP, size - 1, -_GROUP):
        rows = slice(first, first + _GROUP)
        _backward_group(mu[rows], src_s0, g[rows], dst_s0, r, _ONE_GROUP)
    _backward_group(mu[:size], src_s0, g[:size], dst_s0, r, first_group)
    return block_entropy, bad


@jit
def _backward_group(src, src_s0, dst, dst_s0, r, group):
    """Step 3 over the block for the ``len(group)`` agents of ``src``, g into ``dst`` over
    the prefix products there, from and into the suffix products ``r``.
    """
    for s in range(r.size):
        state = np.uint64(s)
        column = dst_s0 + state
        r[s] = _backward_state(src, src_s0 + state, dst, column, dst, column, r[s], len(group))


@jit
def _last_group_steps(src, src_s0, dst, dst_s0, work, n, eps):
    """Steps 1 to 3 for the last of several groups (8 agents), one state at a time, from the m and
    q the groups before it left in work's rows 0 and 1: its prefix products wait in
    registers, as in :func:`_one_group`. Each state's suffix product, which the groups
    before it start from, replaces its m, and its J term its q: a row read and written at
    the same state needs no overlap check, and LLVM vectorises the loop (with the two
    written to other rows of work, it kept the loop scalar, 2x slower). Return the count of
    states with a value outside [0, 1].
    """
    _vmath.prefer_wide_vectors()
    values, prefix = _stack.column(_ONE_GROUP), _stack.column(_ONE_GROUP)
    m_then_r, q_then_term = work[0, :n], work[1, :n]
    log_eps = _log_eps(eps)
    first = np.uint64(0)
    bad = 0
    for s in range(n):
        state = np.uint64(s)
        for k in range(np.uint64(_GROUP)):
            values[k, first] = src[k, src_s0 + state]
        q, m, state_bad = _forward_state(
            values, first, prefix, first, q_then_term[s], m_then_r[s], _GROUP
        )
        bad += state_bad
        log_m = _log_mu(m, q)
        q_then_term[s] = _entropy_term(m, log_m)
        r = -_log_weight(m, log_m, eps, log_eps)
        m_then_r[s] = _backward_state(values, first, prefix, first, dst, dst_s0 + state, r, _GROUP)
    return bad


@jit
def _states(mu, s0, s1, eps, what, work, group, out, stream):
    """Write ``what`` (mu(s) or c(s)) into out[s0:s1], with streaming stores where
    ``stream``; return (the block's J, bad count), J only for _WRITE_NOTHING (0 else:
    coverage and state_weights return none).

    N <= 8 agents (``group``, as for :func:`_gradient`) take one loop over the states
    (:func:`_one_group_states`); more take steps 1 and 2 of the module docstring one
    after the other, keeping no prefix products (:func:`_coverage_of_groups`).
    """
    n = s1 - s0
    m, q, log_m = work[0, :n], work[1, :n], work[2, :n]
    with_log = what != _WRITE_COVERAGE  # mu(s) alone needs no logarithm
    bad = _coverage_steps(mu, s0, s1, work, group, with_log)
    block_entropy = _entropy_sum(m, log_m) if what == _WRITE_NOTHING else 0.0
    if what == _WRITE_WEIGHTS and not stream:
        _weights(m, q, log_m, eps, out[s0:s1])
    elif what != _WRITE_NOTHING:
        values = m
        if what == _WRITE_WEIGHTS:  # streamed from a row of their own
            values = work[3, :n]
            _weights(m, q, log_m, eps, values)
        if stream:
            _stream.store(values, out[s0:s1])
        else:
            _store(values, out[s0:s1])
    return block_entropy, bad


def _coverage_steps(mu, s0, s1, work, group, with_log):
    """Steps 1 and 2 for the block: work's rows m = mu(s), q = 1 - mu(s) and (``with_log``)
    log mu(s); return the count of states with a value outside [0, 1]. One group compiles
    the one-group loop alone, several groups theirs alone, as for :func:`_gradient`.
    """


def _one_group_coverage_steps(mu, s0, s1, work, group, with_log):
    n = s1 - s0
    m, q, log_m = work[0, :n], work[1, :n], work[2, :n]
    return _one_group_states(mu, np.uint64(s0), m, q, log_m, group, with_log)


def _several_groups_coverage_steps(mu, s0, s1, work, group, with_log):
    n = s1 - s0
    m, q, log_m = work[0, :n], work[1, :n], work[2, :n]
    bad = _coverage_of_groups(mu, s0, s1, m, q, group)
    if with_log:
        _log_coverage(m, q, log_m)
    return bad


@overload(_coverage_steps, jit_options={"cache": True, "nogil": True})
def _coverage_steps_typed(mu, s0, s1, work, group, with_log):
    if len(group.types) <= _GROUP:
        return _one_group_coverage_steps
    return _several_groups_coverage_steps


@jit
def _coverage_of_groups(mu, s0, s1, m, q, group):
    """Step 1 for every group over the block (as for g: first the agents left over, as many
    as ``group`` says, then groups of 8), into the rows m = mu(s) and q = 1 - mu(s); return
    the count of states with a value outside [0, 1].
    """
    n = s1 - s0
    m[:] = 0.0
    q[:] = 1.0
    first_group = group[_GROUP:]
    size, src_s0 = len(first_group), np.uint64(s0)
    bad = _coverage_of_group(mu[:size], src_s0, m, q, n, first_group)
    for first in range(size, mu.shape[0], _GROUP):
        bad += _coverage_of_group(mu[first : first + _GROUP], src_s0, m, q, n, _ONE_GROUP)
    return bad


@jit
def _coverage_of_group(src, src_s0, m, q, n, group):
    """Step 1 for the ``len(group)`` agents of ``src``, from and into the rows m and q. The
    prefix products, which only the gradient needs, go to one column on the stack, whose
    stores LLVM drops: kept in a g block (as :func:`_forward` keeps them in g), they cost
    N float64 stores a state, and J, mu(s) and c(s) of N = 16 float64 at S = 2e6 took
    1.44-1.58x as long.
    """
    discarded = _stack.column(group)
    first_column = np.uint64(0)
    bad = 0
    for s in range(n):
        q[s], m[s], state_bad = _forward_state(
            src, src_s0 + np.uint64(s), discarded, first_column, q[s], m[s], len(group)
        )
        bad += state_bad
    return bad


@jit
def _forward(mu, s0, s1, work, prefix, prefix_s0, first_group):
    """Step 1 over the block for every group but the last (the first of
    ``len(first_group)`` agents, then groups of 8): work's rows m and q the coverage of
    their agents and its complement, and the exclusive prefix products where g goes;
    return the count of states with a value outside [0, 1].
    """
    n = s1 - s0
    m, q = work[0, :n], work[1, :n]
    m[:] = 0.0
    q[:] = 1.0
    size = len(first_group)
    src_s0, dst_s0 = np.uint64(s0), np.uint64(prefix_s0)
    bad = _forward_group(mu[:size], src_s0, prefix[:size], dst_s0, m, q, first_group)
    for first in range(size, mu.shape[0] - _GROUP, _GROUP):
        rows = slice(first, first + _GROUP)
        bad += _forward_group(mu[rows], src_s0, prefix[rows], dst_s0, m, q, _ONE_GROUP)
    return bad


@jit
def _forward_group(src, src_s0, dst, dst_s0, m, q, group):
    """Step 1 over the block for the ``len(group)`` agents of ``src``, from and into the
    rows m and q, their prefix products into ``dst``.
    """
    bad = 0
    for s in range(m.size):
        state = np.uint64(s)
        q[s], m[s], state_bad = _forward_state(
            src, src_s0 + state, dst, dst_s0 + state, q[s], m[s], len(group)
        )
        bad += state_bad
    return bad


@jit
def _one_group_states(src, src_s0, m, q, log_m, group, with_log):
    """Steps 1 and 2 for one group of ``len(group)`` (a compile-time constant) agents, one
    state at a time, into the rows m, q and (``with_log``) log_m; return the count of
    states with a value outside [0, 1].

    The bits of :func:`_coverage_of_groups` and :func:`_log_coverage` for one group, in
    one loop whose prefix products, never read, cost nothing: N = 8 float64, S = 1e7,
    2 cores, entropy 35 -> 28 ms (N = 4 35 -> 19 ms).
    """
    _vmath.prefer_wide_vectors()
    prefix = _stack.column(group)
    first = np.uint64(0)
    bad = 0
    for s in range(m.size):
        state_q, state_m, state_bad = _forward_state(
            src, src_s0 + np.uint64(s), prefix, first, 1.0, 0.0, len(group)
        )
        bad += state_bad
        m[s], q[s] = state_m, state_q
        if with_log:
            log_m[s] = _log_mu(state_m, state_q)
    return bad


@jit
def _one_group(src, src_s0, dst, dst_s0, terms, eps, log_eps, group, streamed):
    """All three steps for one group of ``len(group)`` (a compile-time constant) agents,
    one state at a time; the J terms go to ``terms`` (a reduction in this loop would keep
    it from vectorising).

    The state's mu values and prefix products wait in registers (``_stack.column``), so
    mu is read once and g written once, in its own dtype: straight into ``dst`` where
    ``streamed`` is None; where it is a bool, in whole tiles of _STREAM_TILE_STATES
    states (``terms.size`` a multiple of it), each computed into a tile on the stack,
    where the loop needs no overlap checks, and streamed from there into ``dst``, whose
    column ``dst_s0`` starts a line (``_stream``). The type of ``streamed`` chooses, not
    its value: each way is its own compiled loop. (A bool variable, never the constant
    True, whose type Numba makes a literal: :func:`_bind_hot_loop` could not load that
    loop from Python.)
    """
    _vmath.prefer_wide_vectors()
    values, prefix = _stack.column(group), _stack.column(group)
    size = len(group)
    first = np.uint64(0)
    bad = 0
    # The two loops spell out the same steps: with them in a shared function that Numba
    # inlines, or with the straight loop inside the tiled one's outer loop, the straight
    # loop ran 12 to 30 % slower (N = 4, 8 in L2) or did not vectorise at all.
    if streamed is None:
        for s in range(terms.size):
            state = np.uint64(s)
            for k in range(np.uint64(size)):
                values[k, first] = src[k, src_s0 + state]
            q, m, state_bad = _forward_state(values, first, prefix, first, 1.0, 0.0, size)
            bad += state_bad
            log_m = _log_mu(m, q)
            terms[s] = _entropy_term(m, log_m)
            r = -_log_weight(m, log_m, eps, log_eps)
            _backward_state(values, first, prefix, first, dst, dst_s0 + state, r, size)
        return bad
    tile = _stack.tile(group, _STREAM_TILE_STATES, dst)
    for t in range(0, terms.size, _STREAM_TILE_STATES):
        for s in range(_STREAM_TILE_STATES):
            state = np.uint64(t + s)
            for k in range(np.uint64(size)):
                values[k, first] = src[k, src_s0 + state]
            q, m, state_bad = _forward_state(values, first, prefix, first, 1.0, 0.0, size)
            bad += state_bad
            log_m = _log_mu(m, q)
            terms[t + s] = _entropy_term(m, log_m)
            r = -_log_weight(m, log_m, eps, log_eps)
            _backward_state(values, first, prefix, first, tile, np.uint64(s), r, size)
        _stream.store_lines(tile, dst, dst_s0 + np.uint64(t))
    return bad


@jit
def _single_group(mu, s0, s1, eps, work, g, g_s0, group, stream):
    """``_gradient`` for N = len(group) <= 8 agents, a compile-time constant.

    With ``stream``, where g's rows share their place within a line, the block's whole
    tiles of g are streamed; the states before the first whole line and after the last
    whole tile are written straight.
    """
    n = s1 - s0
    terms = work[2, :n]
    log_eps = _log_eps(eps)
    tiled = stream and _stream.line_states(g) > 0
    head = min(n, _stream.states_to_line(g, g_s0)) if tiled else n
    tail = head + (n - head) // _STREAM_TILE_STATES * _STREAM_TILE_STATES
    # Unsigned columns: a signed one would cost the loops a wraparound test.
    a, b, c = np.uint64(s0), np.uint64(s0 + head), np.uint64(s0 + tail)
    g_a, g_b, g_c = np.uint64(g_s0), np.uint64(g_s0 + head), np.uint64(g_s0 + tail)
    bad = _one_group(mu, a, g, g_a, terms[:head], eps, log_eps, group, None)
    streamed = _tiles(g, group, stream, tiled)
    bad += _one_group(mu, b, g, g_b, terms[head:tail], eps, log_eps, group, streamed)
    bad += _one_group(mu, c, g, g_c, terms[tail:], eps, log_eps, group, None)
    return _sum(terms), bad


def _tiles(g, group, stream, tiled):
    """``tiled`` where the tiled loop may stream this g (float64, _STREAM_MIN_AGENTS
    agents or more, from a caller that may stream), else None: chosen when compiled, so
    that no other kernel compiles the tiled loop (each costs seconds of compilation). The
    policy gradient and the patrol step pass ``stream`` as the constant False.
    """


@overload(_tiles, jit_options={"cache": True, "nogil": True}, prefer_literal=True)
def _tiles_typed(g, group, stream, tiled):
    never = isinstance(stream, types.BooleanLiteral) and not stream.literal_value
    if not never and _tiles_pay(str(g.dtype), len(group.types)):
        return lambda g, group, stream, tiled: tiled
    return lambda g, group, stream, tiled: None


# ---------------------------------------------------------------------------------------
# One state s of one group: the steps of the module docstring. ``src`` and ``dst`` hold the
# group's 8 rows; s and the first columns are unsigned. LLVM inlines these into the loops
# over states and unrolls the loops over agents.


@jit
def _forward_state(src, column, prefix, prefix_column, q, m, size):
    """Step 1 for the state in src's ``column``, its prefix products into prefix's
    ``prefix_column``: return (q, m, whether a value is outside [0, 1]).

    x (1 - x) >= 0 holds exactly when x is in [0, 1] (the product of a negative x and
    1 - x > 1 cannot round to zero, nor can that of x > 1 and 1 - x = -(x - 1); NaN and
    both infinities fail it): one product on the 1 - x the step needs anyway, in place of
    two comparisons per value (N = 8 float64 in L1, one thread, 512-bit loop: 4.6-4.7
    against 4.3-4.4 ns a state).
    """
    inside = True
    for k in range(np.uint64(size)):
        x = np.float64(src[k, column])
        complement = 1.0 - x
        inside &= x * complement >= 0.0
        prefix[k, prefix_column] = q
        m += x * q
        q *= complement
    return q, m, not inside


@jit
def _backward_state(src, column, prefix, prefix_column, dst, dst_column, r, size):
    """Step 3 for the state in src's ``column``, last agent first: g into dst's
    ``dst_column`` (which may be the prefix's own place); return the suffix product.
    """
    for j in range(np.uint64(size)):
        k = np.uint64(size) - 1 - j
        dst[k, dst_column] = prefix[k, prefix_column] * r
        r *= 1.0 - np.float64(src[k, column])
    return r


@jit
def _log_mu(m, q):
    """Return log mu(s) from m = mu(s) and q = 1 - mu(s), each with full relative accuracy.

    Where q < 1/2, log mu(s) = log1p(-q) as fdlibm computes it: the log of u = fl(1 - q)
    plus the first-order correction c / u for u's rounding c = (1 - u) - q (1 - u is
    exact there). Choosing the argument first keeps one log per state.

    1 / u is taken as 1 + q + q^2, not divided: |c| <= 2^-53 and the series misses
    1 / (1 - q) by q^3 / (1 - q) <= 2 q^3, so the correction is off by at most 2^-52 q^3,
    under 2^-54 relative to |log mu(s)| >= q. A division is the slowest operation of the
    state (about 16 cycles for 8 lanes), though timed against it the loop was within
    noise (N = 8 float64 in L1: 4.3-4.7 ns a state either way). (With q^3 in the series
    as well, LLVM kept the loop scalar.)
    """
    near_one = q < 0.5
    u = 1.0 - q if near_one else m
    correction = ((1.0 - u) - q) * (1.0 + q * (1.0 + q)) if near_one else 0.0
    return _vmath.log(u) + correction


@jit
def _entropy_term(m, log_m):
    """-mu(s) log mu(s), with 0 log 0 = 0."""
    return -m * log_m if m > 0.0 else 0.0


@jit
def _log_coverage(m, q, log_m):
    """Fill log mu(s)."""
    for s in range(m.size):
        log_m[s] = _log_mu(m[s], q[s])


@_sum_jit
def _entropy_sum(m, log_m):
    total = 0.0
    for s in range(m.size):
        total += _entropy_term(m[s], log_m[s])
    return total


@_sum_jit
def _sum(values):
    total = 0.0
    for s in range(values.size):
        total += values[s]
    return total


@jit
def _log_eps(eps):
    return math.log(eps) if eps > 0.0 else -np.inf


@jit
def _log_weight(m, log_m, eps, log_eps):
    """Return log max(mu(s), eps) + 1: eps clamps the weights' log only, never J."""
    return (log_eps if m < eps else log_m) + 1.0


@jit
def _weights(m, q, log_m, eps, out):
    """c(s) = (log max(mu(s), eps) + 1) q(s)."""
    log_eps = _log_eps(eps)
    for s in range(m.size):
        out[s] = _log_weight(m[s], log_m[s], eps, log_eps) * q[s]


@jit
def _store(values, out):
    for s in range(values.size):
        out[s] = values[s]


@jit
def _contract_along_parameters(g, dmu, check, acc):
    """acc[p] += sum_s g[s] dmu[s, p], state by state, each a loop along dmu's row;
    return the count of non-finite dmu entries (0 unless ``check``).
    """
    bad = 0
    for s in range(g.size):
        for p in range(acc.size):
            x = np.float64(dmu[s, p])
            if check:
                bad += not math.isfinite(x)
            acc[p] += g[s] * x
    return bad


@jit
def _contract_interleaved(g, dmu, check, lanes, acc):
    """:func:`_contract_along_parameters` for P <= _interleave.MAX_PARAMETERS: whole steps
    of 8 states as SIMD operations (:func:`_interleave.accumulate`, whose lanes are added
    into ``acc`` in a fixed order), the last n % 8 states one by one. dmu is checked only
    where a lane is not finite, which one bad entry makes sure of.
    """
    n_parameters = acc.size
    _interleave.accumulate(g, dmu, lanes)
    finite = True
    for j in range(n_parameters):
        for lane in range(_interleave.LANES):
            finite &= math.isfinite(lanes[j, lane])
            acc[(_interleave.LANES * j + lane) % n_parameters] += lanes[j, lane]
    stepped = g.size // _interleave.LANES * _interleave.LANES
    bad = 0
    if check and not finite:
        bad = _count_not_finite(dmu[:stepped])
    return bad + _contract_along_parameters(g[stepped:], dmu[stepped:], check, acc)


@jit
def _count_not_finite(values):
    bad = 0
    for x in values.ravel():
        bad += not math.isfinite(x)
    return bad
