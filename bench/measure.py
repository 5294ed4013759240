"""Timing and the side measurements: compile latency, per-call overhead, peak memory,
threads, the sweeps of one value per state and the policy gradient.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import timeit

import numba
import numpy as np

import fastcov
from bench import implementations


def median_seconds(run, repeat, min_seconds=0.02):
    """Median time of ``run()`` over ``repeat`` timings, after a warm-up call.

    Each timing loops ``run`` enough times to last ``min_seconds`` (small inputs would
    otherwise measure the timer), and reports the time of one call.
    """
    return interleaved_medians([run], repeat, min_seconds)[0]


def interleaved_medians(runs, repeat, min_seconds=0.02):
    """:func:`median_seconds` of each of ``runs``, their timings taken in turn.

    Timing A seven times and then B seven times compares A on the machine of one moment
    with B on the machine of the next; taking them in turn (A, B, A, B, ...) puts both
    medians on the same moments. On the shared machine of bench/RESULTS.md a kernel's time
    at S = 1e7 moved by 20-30 % between minutes, which a ratio of back-to-back medians
    carried whole.
    """
    numbers = []
    for run in runs:
        run()  # compilation, first-touch page faults
        start = time.perf_counter()
        run()
        once = time.perf_counter() - start
        numbers.append(max(1, int(min_seconds / max(once, 1e-9))))
    times = [[] for _ in runs]
    for _ in range(repeat):
        for run, number, timings in zip(runs, numbers, times, strict=True):
            if len(runs) > 1:
                time.sleep(_SETTLE_SECONDS)
            timings.append(timeit.timeit(run, number=number) / number)
    return [float(np.median(timings)) for timings in times]


#: A pause before each interleaved timing. Thread pools spin for a while after their work
#: (XLA's did, here): a copy timed right after JAX ran at half speed, 60 against 31 ms.
_SETTLE_SECONDS = 0.05


def compile_latency():
    """Seconds to import fastcov and run a first value_and_grad in a fresh process, with an
    empty disk cache and then with the cache that first process wrote.
    """
    code = (
        "import time; start = time.perf_counter(); import numpy as np, fastcov; "
        "fastcov.value_and_grad(np.full((8, 1000), 0.5)); print(time.perf_counter() - start)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        return {
            label: float(_python(code, env))
            for label in ("cold (empty cache)", "warm (disk cache)")
        }


def per_call(repeat=7, number=2000):
    """Best time per call at N = 4, S = 1e3, float64, in microseconds (SPEC: <= 20 us)."""
    mu = np.random.default_rng(1).random((4, 1000))
    g = np.empty_like(mu)
    calls = {
        "value_and_grad, out=": lambda: fastcov.value_and_grad(mu, out=g),
        "value_and_grad": lambda: fastcov.value_and_grad(mu),
        "entropy": lambda: fastcov.entropy(mu),
    }
    result = {}
    for name, call in calls.items():
        call()
        result[name] = min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6
    return result


def peak_memory(n_agents, n_states, dtype):
    """Growth of the peak RSS over one value_and_grad call, in MiB, each case in a fresh
    process after a small warm-up: with ``out=`` (g allocated and touched before), and
    allocating (the growth then includes g itself); and the size of g for comparison.
    """
    # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss into a forked child, so
    # from inside a large benchmark process every growth read as 0.
    code = """
import resource, sys, numpy as np, fastcov
from fastcov import _config
def peak_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n_agents, n_states, dtype, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
# Drawn in its own dtype: a float64 draw cast to float32 would leave a peak above g's.
mu = np.random.default_rng(0).random((n_agents, n_states), dtype=dtype)
# The warm-up runs the kernels the measured call will (loading them costs memory too):
# the parallel sweep, which takes more than one block of states, both ways; on few
# states, as the high-water mark keeps its arrays' peak.
warm = mu[:, : min(n_states, 2 * _config.MAX_BLOCK_STATES)].copy()
fastcov.value_and_grad(warm)
fastcov.value_and_grad(warm, out=np.empty_like(warm))
del warm
g = None
if label == "out=":
    g = np.empty_like(mu)
    g.fill(0)
before = peak_kib()
fastcov.value_and_grad(mu, out=g)
print((peak_kib() - before) / 1024)
"""
    args = [str(n_agents), str(n_states), np.dtype(dtype).name]
    result = {"size of g": n_agents * n_states * np.dtype(dtype).itemsize / 2**20}
    for label in ("out=", "allocating"):
        result[label] = float(_python(code, dict(os.environ), [*args, label]))
    return result


def thread_scaling(mu, repeat):
    """Median seconds of fastcov cpu value_and_grad(out=) with 1 thread and with all."""
    g = np.empty_like(mu)
    threads = numba.get_num_threads()
    result = {}
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            result[count] = median_seconds(lambda: fastcov.value_and_grad(mu, out=g), repeat)
    finally:
        numba.set_num_threads(threads)
    return result


def state_sweeps(n_agents, n_states, dtype, repeat):
    """Median seconds of fastcov cpu ``coverage`` and ``state_weights`` (into an ``out=``
    already written) and ``entropy``, timed in turn with their floor, a parallel read of
    mu (each reads mu once and writes at most S numbers).

    Returns {"coverage": s, "state_weights": s, "entropy": s, "read": s}.
    """
    mu = np.random.default_rng(0).random((n_agents, n_states)).astype(dtype)
    out = np.zeros(n_states, dtype)
    runs = {
        "coverage": lambda: fastcov.coverage(mu, out=out, backend="cpu"),
        "state_weights": lambda: fastcov.state_weights(mu, out=out, backend="cpu"),
        "entropy": lambda: fastcov.entropy(mu, backend="cpu"),
        "read": implementations.build("read", mu),
    }
    return dict(zip(runs, interleaved_medians(list(runs.values()), repeat), strict=True))


def policy_gradient(n_agents, n_states, parameter_counts, repeat):
    """Median seconds of fastcov cpu ``policy_gradient`` (check on, ``out=``) for each P
    of ``parameter_counts``, float64, each timed in turn with its floor, a parallel read
    of mu and dmu (it reads each once and writes N x P numbers), and with the way that
    materialises g (fastcov's ``grad``, then NumPy's ``einsum``).

    Returns {P: {"fastcov": s, "read": s, "grad + einsum": s}}.
    """
    rng = np.random.default_rng(0)
    mu = rng.random((n_agents, n_states))
    return {p: _policy_gradient_times(mu, p, rng, repeat) for p in parameter_counts}


def _policy_gradient_times(mu, n_params, rng, repeat):
    dmu = rng.standard_normal((*mu.shape, n_params))  # freed on return: up to 1 GB
    out = np.empty((mu.shape[0], n_params))
    reads = [implementations.build("read", array) for array in (mu, dmu)]
    runs = {
        "fastcov": lambda: fastcov.policy_gradient(mu, dmu, out=out, backend="cpu"),
        "read": lambda: [read() for read in reads],
        "grad + einsum": lambda: np.einsum("is,isp->ip", fastcov.grad(mu), dmu),
    }
    return dict(zip(runs, interleaved_medians(list(runs.values()), repeat), strict=True))


def _python(code, env, args=()):
    completed = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip().splitlines()[-1]


def dumps(results):
    """JSON text of a results dict (numpy scalars made plain)."""
    return json.dumps(results, indent=2, default=float)
