"""numba-cuda kernels: the CUDA backend. The only module of fastcov that imports numba.cuda.

numba-cuda is in maintenance mode; keeping every use of it here means a move to another
GPU toolkit touches one file. Importing this module never touches a GPU: kernels are
compiled lazily at their first launch (no eager signatures), and :func:`require` says
why the backend cannot run when it cannot.

Layout of the work. A thread owns states s = t, t + T, t + 2T, ... (T threads in all) and
walks the agents along the slow axis, so every read ``mu[i, s]`` of a warp is coalesced.
The grid, ``_grid(S)``, depends on S and the configuration only, never on the device,
so J is summed in the same order on every call:

1. forward over agents: check mu_i(s) in [0, 1] (no extra pass), keep the
   exclusive prefix product prod_{j<i} (1 - mu_j(s)), and update m <- m + mu_i q,
   q <- q (1 - mu_i) -- every term non-negative, so tiny mu keeps full relative accuracy.
   Up to ``_config.CUDA_UNROLLED_AGENTS`` agents the kernel is compiled for the exact
   count and the column mu[:, s] and its prefix products stay in registers; above it the
   prefix products are stored into g[i, s] (the output doubles as scratch) and mu is read
   again in step 3;
2. log mu(s) = log1p(-q) where q < 1/2, else log(m) (libdevice, within 2 ulp);
3. backward over agents with the suffix product r, which starts at the weight
   -(log max(mu(s), eps) + 1): g[i, s] <- g[i, s] * r, r <- r (1 - mu_i(s)). No division
   by 1 - mu_i(s), so g is exact where mu_i(s) = 1.

J: each thread sums its states in float64 in a fixed order, each block reduces its threads
in shared memory (a fixed tree), and one more block sums the per-block partials the same
way; only J (8 bytes) comes back. No float atomics: bit-identical on every call. Every
term -mu(s) log mu(s) is non-negative, so the tree's error stays within a few ulps of J.
A thread that saw a value outside [0, 1] makes its block's partial NaN, so the check costs
no flag array and no extra copy: a NaN J means bad input.
float32 input is computed in float64; only the outputs (and, above the unrolled count,
g's prefix scratch) are float32 (g's error stays within a few float32 ulps).

Launch cost matters at small S: one value_and_grad is two launches (the sweep and the
final sum), one allocation of 8 bytes and one copy back of J.

Entry points mirror :mod:`fastcov.cpu`: mu is a C-contiguous (N, S) device array of
float32 or float64, outputs are device arrays of mu's dtype. A value out of range raises
:class:`fastcov._errors.InvalidValues` carrying the flat index and value of the first bad
entry, found by a second kernel (an integer atomic min) only on that error path.
"""

import functools
import importlib
import importlib.metadata
import math
import sys
import warnings

import numpy as np
from numba import config as _numba_config
from numba import float64 as _numba_float64

from . import _config
from ._errors import InvalidValues
from ._memory import HostMemory, is_device_array

_UNITLESS_TIMEDELTA = r"The 'generic' unit for NumPy timedelta is deprecated"

try:
    # numba-cuda (in maintenance, 0.30 included) makes a NaT without a unit at its import,
    # which NumPy 2.5 deprecates: under -W error that import would fail, and fastcov's
    # with it, for a line of numba-cuda's that fastcov cannot change.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _UNITLESS_TIMEDELTA, DeprecationWarning)
        from numba import cuda
except ImportError:  # numba-cuda not installed, and no CUDA target in numba
    cuda = None

__all__ = [
    "require",
    "describe",
    "install_hint",
    "Memory",
    "coverage",
    "entropy",
    "state_weights",
    "value_and_grad",
    "policy_gradient",
]

_SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)


def require():
    """Raise RuntimeError saying why the CUDA backend cannot run here; return if it can."""
    if cuda is None:
        raise RuntimeError(
            "the CUDA backend needs numba-cuda, which is not installed: "
            + install_hint(sys.version_info)
        )
    if _SIMULATOR:
        return  # it runs the kernels as Python, compiling nothing
    if not cuda.is_available():
        try:
            cuda.current_context()
        except Exception as error:  # the driver says why: no library, no device, too old
            reason = " ".join(str(error).split()).rstrip(" :")
        else:
            reason = "numba.cuda.is_available() is False"
        raise RuntimeError(f"the CUDA backend cannot run on this machine: {reason}")
    problem = _compiler_problem()
    if problem is not None:
        raise RuntimeError(f"the CUDA backend cannot compile its kernels here: {problem}")


def describe():
    """One line on the backend here: the device it would use, or why it cannot run."""
    try:
        require()
    except RuntimeError as error:
        return f"not available: {error}"
    if _SIMULATOR:
        return "available (the Numba CUDA simulator: NUMBA_ENABLE_CUDASIM=1)"
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    major, minor = device.compute_capability
    return f"available: {name} (compute capability {major}.{minor})"


def install_hint(python):
    """How to install numba-cuda for the Python of version ``python`` (a
    ``sys.version_info``, or a tuple (major, minor)), or why fastcov's extra does not.
    """
    if tuple(python[:2]) >= (3, 15):
        return (
            "fastcov's cuda extra installs it on Python 3.14 and earlier only, as numba-cuda "
            f"with the CUDA 13 wheels does not install on Python {python[0]}.{python[1]}"
        )
    return "pip install 'fastcov[cuda]'  (numba-cuda with the CUDA 13 wheels)"


@functools.cache
def _compiler_problem():
    """Why the kernels cannot compile here, or None where they can.

    Without libNVVM, the CUDA compiler: numba-cuda brings it in its CUDA 13 wheels, but
    numba itself (0.68 included) still has a CUDA target of its own, which imports
    without numba-cuda and then finds no compiler unless a CUDA toolkit is installed.

    With a NumPy that numba-cuda cannot compile with: numba-cuda 0.21 and later (0.30
    included) register a function of NumPy's that NumPy 2.5 removed, np.row_stack, when
    their compiler first loads its array functions; every kernel's first launch, and
    ``cuda.compile_ptx``, then fail with an AttributeError that names neither. Loading
    those functions here turns that into a reason and a fix.
    """
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        return "libNVVM, the CUDA compiler, is not available: " + install_hint(sys.version_info)
    try:
        importlib.import_module("numba.cuda.np.arrayobj")
    except ModuleNotFoundError:
        return None  # a numba-cuda without its own array functions (0.20: numba's)
    except AttributeError as error:
        version = importlib.metadata.version("numba-cuda")
        return (
            f"numba-cuda {version} does not support NumPy {np.__version__} ({error}); "
            "pip install 'numpy<2.5', as fastcov's cuda extra does"
        )
    return None


# ---------------------------------------------------------------------------------------
# The public entry points, called by fastcov.api with device arrays.


def coverage(mu, out, check, stream=0):
    """Write mu(s) into ``out`` (S,)."""
    _sweep(mu, 0.0, check, _WRITE_COVERAGE, stream, states_out=out)


def entropy(mu, check, stream=0):
    """Return J as a float."""
    return _sweep(mu, 0.0, check, _WRITE_NOTHING, stream)


def state_weights(mu, eps, out, check, stream=0):
    """Write c(s) = (log max(mu(s), eps) + 1)(1 - mu(s)) into ``out`` (S,)."""
    _sweep(mu, eps, check, _WRITE_WEIGHTS, stream, states_out=out)


def value_and_grad(mu, eps, out, check, stream=0):
    """Write g (N, S) into ``out`` and return J, in one pass over ``mu``."""
    return _sweep(mu, eps, check, _WRITE_GRADIENT, stream, grad_out=out)


def policy_gradient(mu, dmu, eps, out, check, stream=0):
    """Write sum_s g_i(s) dmu[i, s, p] into ``out`` (N, P); ``dmu`` is (N, S, P).

    g is formed a chunk of ``_config.CUDA_POLICY_CHUNK_STATES`` states at a time in a
    float64 (N, chunk) buffer and contracted with dmu by a 2-D grid (a row of blocks per
    (i, p)); the (chunk, i, p, block) partials are summed on the host in a fixed order.
    Extra device memory: N x chunk doubles, never N x S.
    """
    n_agents, n_states = mu.shape
    n_params = dmu.shape[2]
    if n_states == 0 or n_agents * n_params == 0:
        _fill(out, 0.0, stream)
        return
    chunk = min(n_states, _config.CUDA_POLICY_CHUNK_STATES)
    g = cuda.device_array((n_agents, chunk), np.float64, stream=stream)
    starts = range(0, n_states, chunk)
    threads, blocks = _config.CUDA_THREADS_PER_BLOCK, _config.CUDA_CONTRACT_BLOCKS
    partials = cuda.device_array(
        (len(starts), n_agents * n_params, blocks), np.float64, stream=stream
    )
    sweeps = cuda.device_array(len(starts), np.float64, stream=stream)  # J per chunk: NaN if bad
    flags = cuda.to_device(np.zeros(1, np.int32), stream=stream)  # a bad value in dmu
    rows = n_agents * n_params
    for k, s0 in enumerate(starts):
        s1 = min(s0 + chunk, n_states)
        _launch_sweep(mu[:, s0:s1], eps, check, _WRITE_GRADIENT, stream, sweeps, k, grad_out=g)
        for row0 in range(0, rows, _MAX_GRID_Y):  # gridDim.y is at most 65535
            grid = (blocks, min(_MAX_GRID_Y, rows - row0))
            _launch(_contract_kernel, grid, threads, stream, _shared_bytes(threads))(
                g, dmu, s0, s1 - s0, row0, check, partials[k], flags
            )
    values = sweeps.copy_to_host(stream=stream)
    bad = flags.copy_to_host(stream=stream)
    stream_synchronize(stream)
    if check and np.isnan(values).any():
        _raise_first_bad(mu, "mu", stream)
    if bad[0]:
        _raise_first_bad(dmu, "dmu", stream)
    # The partials' shape depends on (N, S, P) only, so this summation order is fixed.
    totals = partials.copy_to_host(stream=stream)
    stream_synchronize(stream)
    result = totals.sum(axis=(0, 2)).reshape(n_agents, n_params).astype(out.dtype)
    out.copy_to_device(result, stream=stream)
    stream_synchronize(stream)


def stream_synchronize(stream):
    """Wait for ``stream`` (0: the default stream) to finish its work."""
    if stream:
        stream.synchronize()
    else:
        cuda.synchronize()


# ---------------------------------------------------------------------------------------
# Memory: how fastcov.api moves arrays to, on and from the device for one call.


class Memory:
    """Array handling of one call on the CUDA backend.

    Device input (``__cuda_array_interface__``, numba device arrays) stays on the device,
    zero-copy when it is C-contiguous float32/float64, and results are numba device arrays.
    NumPy input is copied to the device, and results come back as NumPy arrays.

    Parameters
    ----------
    mu : array-like or device array
        The call's first input; decides where results live.
    stream : None, numba stream, int, or an object with ``cuda_stream`` or ``ptr``
        The stream every copy and kernel goes on (PyTorch and CuPy streams are wrapped
        with ``numba.cuda.external_stream``). None: the default stream.
    """

    def __init__(self, mu, stream):
        self.on_host = not is_device_array(mu)
        self.stream = _as_stream(stream)

    def asarray(self, x):
        """A NumPy array (host input) or a numba device array view of ``x`` (zero-copy)."""
        if self.on_host:
            return HostMemory().asarray(x)
        if not is_device_array(x):
            raise TypeError(
                f"mu is on the device but another input is a {type(x).__name__}: pass both "
                "as device arrays (e.g. numba.cuda.to_device(x))"
            )
        return _as_device(x)

    def contiguous(self, array, dtype, shape):
        """A C-contiguous device array of ``dtype`` holding ``array``, reshaped to ``shape``.

        Zero-copy for device input that is already C-contiguous of ``dtype``. Other real
        dtypes are converted on the device; a non-contiguous device array goes through
        the host once (slow: pass contiguous arrays where speed matters).
        """
        if self.on_host:
            host = np.ascontiguousarray(array, dtype=dtype).reshape(shape)
            return cuda.to_device(host, stream=self.stream)
        if not array.is_c_contiguous():
            host = np.ascontiguousarray(array.copy_to_host(stream=self.stream), dtype=dtype)
            return cuda.to_device(host.reshape(shape), stream=self.stream)
        if array.dtype == dtype:
            return array.reshape(shape)
        converted = cuda.device_array(shape, dtype, stream=self.stream)
        if array.size:
            _launch_elementwise(
                _cast_kernel, array.reshape(array.size), converted.reshape(array.size), self.stream
            )
        return converted

    def empty(self, shape, dtype):
        """An uninitialised device array."""
        return cuda.device_array(shape, dtype, stream=self.stream)

    def result(self, buffer, shape):
        """``buffer`` as the caller receives it: reshaped, and copied back for host input."""
        if self.on_host:
            host = buffer.copy_to_host(stream=self.stream)
            stream_synchronize(self.stream)
            return host.reshape(shape)
        return buffer.reshape(shape)

    def as_out(self, out):
        """The array to deliver into: ``out`` itself (host input) or its device view."""
        if self.on_host:
            return HostMemory().as_out(out)
        if not is_device_array(out):
            raise TypeError(
                f"out must be a device array for device input, not {type(out).__name__}"
            )
        if _is_read_only(out):
            raise ValueError("out is read-only")
        array = _as_device(out)
        if not array.is_c_contiguous():
            raise ValueError(
                f"out must be C-contiguous on the CUDA backend; got strides {array.strides}"
            )
        return array

    def writes_directly(self, out, inputs):
        """True when the kernel may write into ``out`` itself (device, no overlap)."""
        return not self.on_host and not any(_overlap(out, x) for x in inputs)

    def reshape(self, out, shape):
        """``out`` viewed as ``shape`` (it is C-contiguous)."""
        return out.reshape(shape)

    def deliver(self, out, buffer):
        """Copy a finished ``buffer`` into ``out``."""
        if self.on_host:
            host = buffer.copy_to_host(stream=self.stream)
            stream_synchronize(self.stream)
            np.copyto(out, host.reshape(out.shape))
        else:
            out.reshape(buffer.shape).copy_to_device(buffer, stream=self.stream)


def _as_device(x):
    if cuda.devicearray.is_cuda_ndarray(x):
        return x
    return cuda.as_cuda_array(x)


def _as_stream(stream):
    if stream is None:
        return 0
    if _SIMULATOR or isinstance(stream, cuda.cudadrv.driver.Stream):
        return stream
    for handle in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        if hasattr(stream, handle):
            return cuda.external_stream(int(getattr(stream, handle)))
    if isinstance(stream, int):
        return cuda.external_stream(stream)
    raise TypeError(
        "stream must be None, a numba stream, a stream handle (int), or a PyTorch / CuPy "
        f"stream; got {type(stream).__name__}"
    )


def _is_read_only(x):
    interface = getattr(x, "__cuda_array_interface__", None)
    return bool(interface and interface["data"][1])


def _overlap(a, b):
    if b is None:
        return False
    if _SIMULATOR:
        return np.may_share_memory(a._ary, b._ary)
    (a_lo, a_hi), (b_lo, b_hi) = _byte_span(a), _byte_span(b)
    return a_lo < b_hi and b_lo < a_hi


def _byte_span(array):
    """[first, last) device addresses an array's elements occupy."""
    start = array.__cuda_array_interface__["data"][0]
    if array.size == 0:
        return start, start
    low = sum(min(0, (n - 1) * st) for n, st in zip(array.shape, array.strides, strict=True))
    high = sum(max(0, (n - 1) * st) for n, st in zip(array.shape, array.strides, strict=True))
    return start + low, start + high + array.dtype.itemsize


# ---------------------------------------------------------------------------------------
# Host-side launching.

# What the sweep writes: nothing (J only), mu(s), c(s) or g.
_WRITE_NOTHING, _WRITE_COVERAGE, _WRITE_WEIGHTS, _WRITE_GRADIENT = 0, 1, 2, 3


def _sweep(mu, eps, check, what, stream, states_out=None, grad_out=None):
    if mu.shape[1] == 0:
        return 0.0
    total = cuda.device_array(1, np.float64, stream=stream)
    _launch_sweep(mu, eps, check, what, stream, total, 0, states_out, grad_out)
    if not check and what in (_WRITE_COVERAGE, _WRITE_WEIGHTS):
        return None  # no J wanted, nothing to check: return while the stream works
    value = float(total.copy_to_host(stream=stream)[0])
    stream_synchronize(stream)
    if check and math.isnan(value):  # J of valid input is finite: NaN marks a bad value
        _raise_first_bad(mu, "mu", stream)
    return value


def _launch_sweep(mu, eps, check, what, stream, totals, index, states_out=None, grad_out=None):
    """Launch the sweep over ``mu`` (N, S) and the sum of its block partials into
    ``totals[index]``: J, or NaN where ``check`` found a value outside [0, 1].
    """
    dtype = mu.dtype
    if states_out is None:
        states_out = cuda.device_array(0, dtype, stream=stream)
    if grad_out is None:
        grad_out = cuda.device_array((0, 0), dtype, stream=stream)
    threads, blocks = _config.CUDA_THREADS_PER_BLOCK, _grid(mu.shape[1])
    partials = cuda.device_array(blocks, np.float64, stream=stream)
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    kernel = _sweep_kernel(mu.shape[0])
    _launch(kernel, blocks, threads, stream, _shared_bytes(threads))(
        mu, eps, log_eps, check, what, states_out, grad_out, partials
    )
    _launch(_finish_kernel, 1, threads, stream, _shared_bytes(threads))(partials, totals, index)


_MAX_GRID_Y = 65535


def _grid(n_states):
    """Blocks for a sweep over ``n_states`` states: from the shape and configuration only."""
    per_block = _config.CUDA_THREADS_PER_BLOCK
    return max(1, min(_config.CUDA_MAX_BLOCKS, -(-n_states // per_block)))


def _shared_bytes(threads):
    return threads * 8


def _launch(kernel, grid, threads, stream, shared_bytes=0):
    """``kernel[grid, threads, stream, shared_bytes]``, the launcher to call with the arguments.

    numba warns (NumbaPerformanceWarning) at every launch of fewer than 128 blocks; a small
    input gets a small grid on purpose here, so that warning is silenced for these launches
    (and only these: the filter is set only while the grid is small).
    """
    blocks = grid if isinstance(grid, int) else math.prod(grid)
    if _SIMULATOR or blocks >= 128:
        return kernel[grid, threads, stream, shared_bytes]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _LOW_OCCUPANCY, Warning)
        return kernel[grid, threads, stream, shared_bytes]


# The message, after the terminal's bold code; numba-cuda's warning class has moved between
# releases (numba.core.errors, numba.cuda.core.errors), so it is matched by its text.
_LOW_OCCUPANCY = r"\W*(\[\d+m)?Grid size \d+ will likely result in GPU under-utilization"


def _sweep_kernel(n_agents):
    """The sweep for mu of ``n_agents`` rows: the unrolled one up to
    ``_config.CUDA_UNROLLED_AGENTS`` agents, the general one above.
    """
    agents = n_agents if n_agents <= _config.CUDA_UNROLLED_AGENTS else 0
    kernel = _SWEEPS.get(agents)
    if kernel is None:
        kernel = _SWEEPS[agents] = _make_sweep_kernel(agents)
    return kernel


_SWEEPS = {}


def _launch_elementwise(kernel, source, target, stream):
    threads = _config.CUDA_THREADS_PER_BLOCK
    _launch(kernel, _grid(source.size), threads, stream)(source, target)


def _fill(out, value, stream):
    flat = out.reshape(out.size)
    if flat.size:
        _launch(_fill_kernel, _grid(flat.size), _config.CUDA_THREADS_PER_BLOCK, stream)(flat, value)
    stream_synchronize(stream)


def _raise_first_bad(array, name, stream):
    """Find the first (C order) bad entry of ``array`` on the device; raise InvalidValues."""
    flat = array.reshape(array.size)
    first = cuda.to_device(np.array([flat.size], np.int64), stream=stream)
    _launch(_first_bad_kernel, _grid(flat.size), _config.CUDA_THREADS_PER_BLOCK, stream)(
        flat, name == "dmu", first
    )
    index = int(first.copy_to_host(stream=stream)[0])
    value = float(flat[index : index + 1].copy_to_host(stream=stream)[0])
    stream_synchronize(stream)
    raise InvalidValues(name, index=index, value=value)


# ---------------------------------------------------------------------------------------
# Kernels and device functions. Compiled on first launch for the argument types seen.

if cuda is not None:

    @cuda.jit(device=True)
    def _log_coverage(m, q):
        """Log mu(s) from m = mu(s) and q = 1 - mu(s): log1p(-q) where q < 1/2."""
        if q < 0.5:
            return math.log1p(-q)
        if m > 0.0:
            return math.log(m)
        return -math.inf

    @cuda.jit(device=True)
    def _log_weight(m, log_m, eps, log_eps):
        """Log max(mu(s), eps) + 1: eps clamps the weights' log only, never J."""
        return (log_eps if m < eps else log_m) + 1.0

    @cuda.jit(device=True)
    def _block_total(value):
        """Sum ``value`` over the block's threads in a fixed tree (blockDim a power of 2)."""
        cache = cuda.shared.array(0, _numba_float64)
        tid = cuda.threadIdx.x
        cache[tid] = value
        cuda.syncthreads()
        step = cuda.blockDim.x // 2
        while step > 0:
            if tid < step:
                cache[tid] = float(cache[tid]) + float(cache[tid + step])
            cuda.syncthreads()
            step //= 2
        return cache[0]

    def _make_sweep_kernel(agents):
        """The sweep kernel for exactly ``agents`` agents, or for any number when 0.

        With the count fixed at compile time the agent loops unroll and each state's mu
        column and prefix products stay in registers: mu is read once and g written once.
        For any count, the prefix products go through g itself (see the module docstring)
        and mu is read twice (the second read mostly from L2). On an H100, N = 8, S = 1e8,
        float32 (kernel time alone): unrolled 2.44 ms, general 3.94 ms, a device-to-device
        copy of mu 2.37 ms.

        No store may come between the loads of a state's column: the compiler cannot
        prove that a store does not alias mu, so each load would wait for the store before
        it. So the loads come first, and the range check is a register flag written out
        (as a NaN partial) once per thread. (With a flag stored inside the loop, a whole
        value_and_grad call took 5.7 ms; now 2.9 ms.) ``float()`` around local-array
        reads is for the simulator, whose numpy scalars would warn where a GPU computes
        quietly.
        """
        held = agents > 0
        size = max(agents, 1)

        @cuda.jit
        def sweep(mu, eps, log_eps, check, what, states_out, grad_out, partials):
            n_agents = agents if held else mu.shape[0]
            column = cuda.local.array(size, _numba_float64)
            prefix = cuda.local.array(size, _numba_float64)
            total = 0.0
            bad = False
            for s in range(cuda.grid(1), mu.shape[1], cuda.gridsize(1)):
                if held:  # the column's loads first, all in flight at once
                    for i in range(n_agents):
                        column[i] = float(mu[i, s])
                m = 0.0
                q = 1.0
                for i in range(n_agents):
                    x = float(column[i]) if held else float(mu[i, s])
                    bad |= not (x >= 0.0 and x <= 1.0)
                    if what == 3:  # _WRITE_GRADIENT: the prefix product, used below
                        if held:
                            prefix[i] = q
                        else:
                            grad_out[i, s] = q
                    m += x * q
                    q *= 1.0 - x
                log_m = _log_coverage(m, q)
                if m > 0.0:
                    total -= m * log_m
                if what == 1:  # _WRITE_COVERAGE
                    states_out[s] = m
                elif what == 2:  # _WRITE_WEIGHTS
                    states_out[s] = _log_weight(m, log_m, eps, log_eps) * q
                elif what == 3:
                    r = -_log_weight(m, log_m, eps, log_eps)
                    for k in range(n_agents):
                        i = n_agents - 1 - k
                        if held:
                            grad_out[i, s] = float(prefix[i]) * r
                            r *= 1.0 - float(column[i])
                        else:
                            grad_out[i, s] = float(grad_out[i, s]) * r
                            r *= 1.0 - float(mu[i, s])
            if check and bad:
                total = math.nan  # the block's partial, then J, carries the finding
            block_total = _block_total(total)
            if cuda.threadIdx.x == 0:
                partials[cuda.blockIdx.x] = block_total

        return sweep

    @cuda.jit
    def _contract_kernel(g, dmu, s0, n, row0, check, partials, flags):
        """partials[i * P + p, block] = sum over the block's states of g[i, s] dmu[i, s0 + s, p]."""
        n_params = dmu.shape[2]
        row = row0 + cuda.blockIdx.y
        i = row // n_params
        p = row - i * n_params
        step = cuda.gridDim.x * cuda.blockDim.x
        total = 0.0
        for s in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n, step):
            x = float(dmu[i, s0 + s, p])
            if check and not math.isfinite(x):
                flags[0] = 1
            total += g[i, s] * x
        block_total = _block_total(total)
        if cuda.threadIdx.x == 0:
            partials[row, cuda.blockIdx.x] = block_total

    @cuda.jit
    def _finish_kernel(partials, totals, index):
        """totals[index] = the sum of ``partials``, by one block in a fixed order."""
        total = 0.0
        for k in range(cuda.threadIdx.x, partials.size, cuda.blockDim.x):
            total += partials[k]
        block_total = _block_total(total)
        if cuda.threadIdx.x == 0:
            totals[index] = block_total

    @cuda.jit
    def _first_bad_kernel(values, finite_only, first):
        for k in range(cuda.grid(1), values.size, cuda.gridsize(1)):
            x = float(values[k])
            bad = not math.isfinite(x) if finite_only else not (x >= 0.0 and x <= 1.0)
            if bad:
                cuda.atomic.min(first, 0, k)  # an integer min: the result is order-free

    @cuda.jit
    def _cast_kernel(source, target):
        for k in range(cuda.grid(1), source.size, cuda.gridsize(1)):
            target[k] = source[k]

    @cuda.jit
    def _fill_kernel(target, value):
        for k in range(cuda.grid(1), target.size, cuda.gridsize(1)):
            target[k] = value


def kernel_signatures(dtype):
    """The kernels' ``numba.cuda.compile_ptx`` signatures for mu of ``dtype``.

    Returns a dict name -> (python function, signature tuple). Used by the tests to
    compile each kernel for sm_90 without a GPU.
    """
    from numba import types

    real = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    f64, i32 = types.float64, types.int32
    matrix = types.Array(real, 2, "A")
    sweep = (
        matrix,
        f64,
        f64,
        types.boolean,
        types.int64,
        types.Array(real, 1, "C"),
        types.Array(real, 2, "C"),
        types.Array(f64, 1, "C"),
    )
    return {
        "sweep": (_make_sweep_kernel(0).py_func, sweep),
        "sweep (8 agents, unrolled)": (_make_sweep_kernel(8).py_func, sweep),
        "contract": (
            _contract_kernel.py_func,
            (
                types.Array(f64, 2, "C"),
                types.Array(real, 3, "C"),
                types.int64,
                types.int64,
                types.int64,
                types.boolean,
                types.Array(f64, 2, "A"),
                types.Array(i32, 1, "C"),
            ),
        ),
        "finish": (
            _finish_kernel.py_func,
            (types.Array(f64, 1, "C"), types.Array(f64, 1, "C"), types.int64),
        ),
        "first_bad": (
            _first_bad_kernel.py_func,
            (types.Array(real, 1, "C"), types.boolean, types.Array(types.int64, 1, "C")),
        ),
    }
