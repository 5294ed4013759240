"""What the benchmarks compare: value_and_grad by each implementation, and the roofline.

``build(name, mu)`` prepares one implementation for one input (copies to the device,
allocates ``out``, compiles) and returns a zero-argument callable that computes (J, g) and
waits for it. Every implementation computes the same objective; the roofline entries
("copy", "copy-rows", "scale", "read", "cuda-copy") move the same bytes and compute (next
to) nothing.

Each implementation runs in one place, the host or the device, and is compared with the
copy and the baseline of its own place: host rows with "copy" and the naive NumPy formula,
device rows with "cuda-copy" (a device-to-device copy of the same bytes) and
"torch-compile" (``torch.compile`` of the naive objective, differentiated by autograd:
SPEC section 4's GPU baseline).

"copy" is a loop LLVM turns into a call of the C library's memcpy, which writes large
arrays with non-temporal stores: it skips reading g's lines before writing them. "scale"
(g = 0.5 mu) is what a compiled loop that computes something and stores ordinarily
reaches: on the machine of bench/RESULTS.md, 0.57x copy at N = 8, S = 1e7. "copy-rows"
copies in the order fastcov's sweep moves mu and g: the N rows side by side, 64 states of
each at a time, streamed out of a tile in L1 where fastcov would stream this g
(``cpu._streams``), else stored ordinarily. It is what the (N, S) layout allows a kernel
that computes nothing: on a 2-core Xeon, 0.80-0.88x copy at N = 8, S = 1e7 float64; on
a 2-core Zen 4, 0.59x, where fastcov itself reached 0.63-0.74x (bench/RESULTS.md).
"""

import gc

import numba
import numpy as np

import fastcov
from fastcov import _config, _stack, _stream, cpu

#: name -> (description, what it needs installed or None, where it runs)
IMPLEMENTATIONS = {
    "copy": ("copy of the same bytes: read mu, write an array of mu's size", None, "host"),
    "copy-rows": ("the copy row by row, in fastcov's order and with its stores", None, "host"),
    "scale": ("g = 0.5 mu over the same bytes: ordinary stores, vectorised", None, "host"),
    "read": ("read-only reduction over mu", None, "host"),
    "fastcov-cpu-out": ("fastcov cpu, out=", None, "host"),
    "fastcov-cpu": ("fastcov cpu, allocating", None, "host"),
    "naive": ("naive NumPy formula (1 - prod, division by 1 - mu_i)", None, "host"),
    "reference": ("fastcov's NumPy reference (readable, (N, S) temporaries)", None, "host"),
    "jax-jit": ("JAX jit(value_and_grad) of the naive objective, on the CPU", "jax", "host"),
    "cuda-copy": ("device-to-device copy of the same bytes", "cuda", "device"),
    "fastcov-cuda": ("fastcov cuda, device arrays, out=", "cuda", "device"),
    "fastcov-cuda-general": (
        "fastcov cuda with the any-N kernel at every N (no unrolled kernel)",
        "cuda",
        "device",
    ),
    "torch-compile": (
        "torch.compile of the naive objective, gradient by autograd",
        "torch-cuda",
        "device",
    ),
    "torch-compile-formula": (
        "torch.compile of the naive closed form (J and g written out)",
        "torch-cuda",
        "device",
    ),
}
ROOFLINE = ("copy", "copy-rows", "scale", "read", "cuda-copy")

#: The copy and the baseline every row of a place is compared with.
COPY = {"host": "copy", "device": "cuda-copy"}
BASELINE = {"host": "naive", "device": "torch-compile"}

#: The reference allocates several (N, S) float64 temporaries: skip it above this size.
REFERENCE_MAX_ELEMENTS = 10**8


def available(name):
    """None when ``name`` can run here, else the reason it cannot."""
    needs = IMPLEMENTATIONS[name][1]
    if needs == "cuda" and "cuda" not in fastcov.available_backends():
        return "the CUDA backend cannot run here"
    if needs == "cuda" and numba.config.ENABLE_CUDASIM:
        return "the CUDA simulator times Python, not a GPU"
    if needs == "torch-cuda":
        try:
            import torch
        except ImportError:
            return "PyTorch is not installed"
        if not torch.cuda.is_available():
            return "PyTorch sees no GPU"
    if needs == "jax":
        try:
            import jax  # noqa: F401
        except ImportError:
            return "jax is not installed (pip install 'fastcov[bench]')"
    return None


def skip_reason(name, n_agents, n_states):
    """Why ``name`` is not run at this size (None: it is)."""
    reason = available(name)
    if reason is None and name == "reference" and n_agents * n_states > REFERENCE_MAX_ELEMENTS:
        reason = f"the reference's temporaries are too large above {REFERENCE_MAX_ELEMENTS:.0e}"
    return reason


def bytes_moved(name, mu):
    """Bytes ``name`` must move at the least: mu read and g written (mu alone for "read")."""
    return mu.nbytes if name == "read" else 2 * mu.nbytes


def place(name):
    """Where ``name`` runs: "host" or "device"."""
    return IMPLEMENTATIONS[name][2]


def build(name, mu):
    """A zero-argument callable running ``name`` on ``mu`` (N, S); it returns (J, g) on the
    host's terms: J a float, g an array-like (a device array for the GPU entries).
    """
    return _BUILDERS[name](mu)


def to_host(g):
    """``g`` as returned by an implementation (NumPy, numba device, JAX or torch), on the host."""
    if hasattr(g, "copy_to_host"):
        return g.copy_to_host()
    if hasattr(g, "detach"):
        return g.detach().cpu().numpy()
    return np.asarray(g)


def release():
    """Free what finished implementations left cached on the device (PyTorch's allocator)."""
    gc.collect()
    torch = _imported("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _imported(module):
    import sys

    return sys.modules.get(module)


def naive_value_and_grad(mu):
    """What one writes by hand: 1 - prod and a division by 1 - mu_i (inexact at mu_i = 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.prod(1.0 - mu, axis=0)
        m = 1.0 - q
        log_m = np.log(m)
        value = float(-(m * log_m).sum())
        return value, -(log_m + 1.0) * q / (1.0 - mu)


def _copy(mu):
    return _into_new_array(_parallel_copy, mu)


def _copy_rows(mu):
    target = np.zeros_like(mu)  # in memory, as fastcov streams only into such an output
    rows = (0,) * mu.shape[0]
    stream = cpu._streams(target) and _stream.line_states(target) > 0

    def run():
        _parallel_copy_rows(mu, target, rows, stream)
        return None, target

    return run


def _scale(mu):
    return _into_new_array(_parallel_scale, mu)


def _into_new_array(loop, mu):
    """A run of ``loop(mu, target)`` over the flattened arrays, target of mu's size."""
    target = np.empty_like(mu)
    flat_source, flat_target = mu.reshape(-1), target.reshape(-1)

    def run():
        loop(flat_source, flat_target)
        return None, target

    return run


def _read(mu):
    flat = mu.reshape(-1)
    return lambda: (_parallel_sum(flat), None)


def _fastcov_cpu_out(mu):
    g = np.empty_like(mu)
    return lambda: fastcov.value_and_grad(mu, out=g, backend="cpu")


def _fastcov_cpu(mu):
    return lambda: fastcov.value_and_grad(mu, backend="cpu")


def _cuda_copy(mu):
    from numba import cuda

    source = cuda.to_device(mu)
    target = cuda.device_array_like(source)

    def run():
        target.copy_to_device(source)
        cuda.synchronize()
        return None, target

    return run


def _fastcov_cuda(mu):
    from numba import cuda

    device = cuda.to_device(mu)
    g = cuda.device_array_like(device)
    return lambda: fastcov.value_and_grad(device, out=g)  # J's copy-back synchronises


def _fastcov_cuda_general(mu):
    run = _fastcov_cuda(mu)

    def general():
        unrolled = _config.CUDA_UNROLLED_AGENTS
        _config.CUDA_UNROLLED_AGENTS = 0
        try:
            return run()
        finally:
            _config.CUDA_UNROLLED_AGENTS = unrolled

    return general


def _naive(mu):
    return lambda: naive_value_and_grad(mu)


def _reference(mu):
    return lambda: fastcov.value_and_grad(mu, backend="numpy")


def _jax_jit(mu):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def objective(x):
        m = 1.0 - jnp.prod(1.0 - x, axis=0)
        return -jnp.sum(m * jnp.log(m))

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    x = jax.device_put(mu, jax.devices("cpu")[0])  # a host baseline, also where JAX has a GPU

    def run():
        value, g = value_and_grad(x)
        g.block_until_ready()
        return float(value), g

    return run


def _torch_compile(mu):
    import torch

    def objective(x):
        m = 1.0 - torch.prod(1.0 - x, dim=0)
        return -(m * torch.log(m)).sum()

    compiled = torch.compile(objective)
    x = torch.as_tensor(mu, device="cuda").requires_grad_()

    def run():
        value = compiled(x)
        (g,) = torch.autograd.grad(value, x)
        return float(value.detach()), g  # float() waits for the device

    return run


def _torch_compile_formula(mu):
    import torch

    def value_and_grad(x):
        q = torch.prod(1.0 - x, dim=0)
        m = 1.0 - q
        log_m = torch.log(m)
        return -(m * log_m).sum(), -(log_m + 1.0) * q / (1.0 - x)

    compiled = torch.compile(value_and_grad)
    x = torch.as_tensor(mu, device="cuda")

    def run():
        value, g = compiled(x)
        return float(value), g

    return run


_BUILDERS = {
    "copy": _copy,
    "copy-rows": _copy_rows,
    "scale": _scale,
    "read": _read,
    "fastcov-cpu-out": _fastcov_cpu_out,
    "fastcov-cpu": _fastcov_cpu,
    "cuda-copy": _cuda_copy,
    "fastcov-cuda": _fastcov_cuda,
    "fastcov-cuda-general": _fastcov_cuda_general,
    "torch-compile": _torch_compile,
    "torch-compile-formula": _torch_compile_formula,
    "naive": _naive,
    "reference": _reference,
    "jax-jit": _jax_jit,
}


@numba.njit(parallel=True, cache=True)
def _parallel_copy(source, target):
    for k in numba.prange(source.size):
        target[k] = source[k]


#: States of every row a step of "copy-rows" moves: those of fastcov's streamed tiles.
_ROWS_TILE = cpu._STREAM_TILE_STATES


@numba.njit(parallel=True, cache=True)
def _parallel_copy_rows(source, target, rows, stream):
    """Copy source into target, both (N, S) with N = len(rows): each chunk of states a
    tile of _ROWS_TILE states of every row at a time. Where ``stream``, each tile goes
    through a tile in L1 whose whole lines are streamed out (from the chunk's first line;
    the states before it and after the last whole tile are stored ordinarily).
    """
    n_states = source.shape[1]
    n_chunks = max(1, min(_config.MAX_CHUNKS, n_states // _ROWS_TILE))
    for chunk in numba.prange(n_chunks):
        first, last = chunk * n_states // n_chunks, (chunk + 1) * n_states // n_chunks
        head = first + min(last - first, _stream.states_to_line(target, first)) if stream else first
        tail = head + (last - head) // _ROWS_TILE * _ROWS_TILE
        tile = _stack.tile(rows, _ROWS_TILE, target)
        # Unsigned columns, as in fastcov's loops: with signed ones LLVM must allow for
        # NumPy's negative indices, and for AMD's Zen 4 it vectorised these loops into
        # gathers and scatters, 2-3x slower than the copy (2026-12-04).
        for t in range(head, tail, _ROWS_TILE):
            column = np.uint64(t)
            for k in range(len(rows)):
                for s in range(np.uint64(_ROWS_TILE)):
                    if stream:
                        tile[k, s] = source[k, column + s]
                    else:
                        target[k, column + s] = source[k, column + s]
            if stream:
                _stream.store_lines(tile, target, column)
        for k in range(len(rows)):
            for s in range(np.uint64(first), np.uint64(head)):
                target[k, s] = source[k, s]
            for s in range(np.uint64(tail), np.uint64(last)):
                target[k, s] = source[k, s]
        if stream:
            _stream.fence()


@numba.njit(parallel=True, cache=True)
def _parallel_scale(source, target):
    for k in numba.prange(source.size):
        target[k] = 0.5 * source[k]


# Reassociation lets the sum vectorise: this is a bandwidth probe, its rounding is irrelevant.
@numba.njit(parallel=True, cache=True, fastmath=True)
def _parallel_sum(values):
    total = 0.0
    for k in numba.prange(values.size):
        total += values[k]
    return total
