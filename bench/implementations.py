"""What the benchmarks compare: value_and_grad by each implementation, and the roofline.

``build(name, mu)`` prepares one implementation for one input (copies to the device,
allocates ``out``, compiles) and returns a zero-argument callable that computes (J, g) and
waits for it. Every implementation computes the same objective; the roofline entries
("copy", "scale", "read") move the same bytes and compute (next to) nothing.

"copy" is a loop LLVM turns into a call of the C library's memcpy, which writes large
arrays with non-temporal stores: it skips reading g's lines before writing them. "scale"
(g = 0.5 mu) is what a compiled loop that computes something and stores ordinarily
reaches: on the machine of bench/RESULTS.md, 0.57x copy at N = 8, S = 1e7.
"""

import numba
import numpy as np

import fastcov

#: name -> (description, what it needs installed or None)
IMPLEMENTATIONS = {
    "copy": ("copy of the same bytes: read mu, write an array of mu's size", None),
    "scale": ("g = 0.5 mu over the same bytes: ordinary stores, vectorised", None),
    "read": ("read-only reduction over mu", None),
    "fastcov-cpu-out": ("fastcov cpu, out=", None),
    "fastcov-cpu": ("fastcov cpu, allocating", None),
    "fastcov-cuda": ("fastcov cuda, device arrays, out=", "cuda"),
    "naive": ("naive NumPy formula (1 - prod, division by 1 - mu_i)", None),
    "reference": ("fastcov's NumPy reference (readable, (N, S) temporaries)", None),
    "jax-jit": ("JAX jit(value_and_grad) of the naive objective", "jax"),
}
ROOFLINE = ("copy", "scale", "read")

#: The reference allocates several (N, S) float64 temporaries: skip it above this size.
REFERENCE_MAX_ELEMENTS = 10**8


def available(name):
    """None when ``name`` can run here, else the reason it cannot."""
    needs = IMPLEMENTATIONS[name][1]
    if needs == "cuda" and "cuda" not in fastcov.available_backends():
        return "the CUDA backend cannot run here"
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


def build(name, mu):
    """A zero-argument callable running ``name`` on ``mu`` (N, S); it returns (J, g) on the
    host's terms: J a float, g an array-like (a device array for the GPU entries).
    """
    return _BUILDERS[name](mu)


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


def _fastcov_cuda(mu):
    from numba import cuda

    device = cuda.to_device(mu)
    g = cuda.device_array_like(device)
    return lambda: fastcov.value_and_grad(device, out=g)  # J's copy-back synchronises


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
    x = jnp.asarray(mu)

    def run():
        value, g = value_and_grad(x)
        g.block_until_ready()
        return float(value), g

    return run


_BUILDERS = {
    "copy": _copy,
    "scale": _scale,
    "read": _read,
    "fastcov-cpu-out": _fastcov_cpu_out,
    "fastcov-cpu": _fastcov_cpu,
    "fastcov-cuda": _fastcov_cuda,
    "naive": _naive,
    "reference": _reference,
    "jax-jit": _jax_jit,
}


@numba.njit(parallel=True, cache=True)
def _parallel_copy(source, target):
    for k in numba.prange(source.size):
        target[k] = source[k]


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
