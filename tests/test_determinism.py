"""Bit-identical J and g on every call, whatever the thread count; J summation accuracy."""

import math
import multiprocessing
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastcov


@pytest.fixture
def restore_threads():
    threads = numba.get_num_threads()
    yield
    numba.set_num_threads(threads)


def _all_results(mu, dmu):
    J, g = fastcov.value_and_grad(mu, 1e-12, backend="cpu")
    return (
        J,
        g,
        fastcov.entropy(mu, backend="cpu"),
        fastcov.state_weights(mu, backend="cpu"),
        fastcov.policy_gradient(mu, dmu, eps=1e-12, backend="cpu"),
    )


def _assert_bit_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_repeat_calls_and_thread_counts_agree_bitwise(restore_threads, dtype):
    rng = np.random.default_rng(0)
    # Enough states for the maximum number of chunks, so threads really split the work.
    mu = rng.random((6, 1_500_001)).astype(dtype)
    dmu = rng.standard_normal((6, 1_500_001, 2)).astype(dtype)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    first = _all_results(mu, dmu)
    _assert_bit_identical(first, _all_results(mu, dmu))
    numba.set_num_threads(1)
    _assert_bit_identical(first, _all_results(mu, dmu))


@pytest.mark.parametrize("n_agents", [3, 8, 13])
@pytest.mark.parametrize(
    ("what", "dtype"),
    [("sweep", np.float64), ("sweep", np.float32), ("policy_gradient", np.float64)],
)
def test_one_chunk_on_this_thread_is_the_parallel_kernels(n_agents, what, dtype):
    # A call of one chunk, or any call in a process forked after GNU OpenMP started,
    # skips the threading layer: its serial driver must give the parallel kernel's bits
    # (several blocks, a group of the agents left over, bad values counted; a float32 g
    # written straight (N <= 8) or rounded from a float64 block, streamed and not; the
    # policy gradient's partial sums of one chunk and of three).
    from fastcov import _interleave, cpu

    rng = np.random.default_rng(n_agents)
    group, block, _ = cpu.partition(n_agents)
    n_states = 2 * block + 17
    assert cpu._chunking(n_states, block, 1) == (3, 1)
    mu = rng.random((n_agents, n_states)).astype(dtype)
    mu[-1, -1] = 1.5
    if what == "sweep":
        g_parallel, g_serial = np.empty_like(mu), np.empty_like(mu)
        args = (1e-9, cpu._WRITE_GRADIENT, np.empty(0, dtype))

        results = []
        for stream in (False, True):  # streaming stores change no bit either
            rest = (stream, group, block, 1)
            parallel = cpu._sweep_kernel(mu, *args, g_parallel, *rest)
            serial = cpu._sweep_on_this_thread(mu, *args, g_serial, *rest)
            _assert_bit_identical((*parallel, g_parallel), (*serial, g_serial))
            results.append((*parallel, g_parallel.copy()))
        _assert_bit_identical(*results)
        assert parallel[1] == 1
    else:
        # contracted in SIMD steps of 8 states, and along the parameters
        for n_params in (2, _interleave.MAX_PARAMETERS + 1):
            dmu = rng.standard_normal((n_agents, n_states, n_params))
            dmu[0, 5, 1] = np.nan
            for max_chunks in (1, 3):
                args = (mu, dmu, 1e-9, True, group, block, max_chunks)
                parallel = cpu._policy_gradient_kernel(*args)
                serial = cpu._policy_gradient_on_this_thread(*args)
                _assert_bit_identical(parallel, serial)
                assert parallel[0].shape[0] == max_chunks and parallel[1:] == (1, 1)


def test_entropy_sum_at_ten_million_states_matches_fsum():
    # One agent: mu(s) = mu_1(s) exactly, so the exact terms are -p log p, each rounded
    # once by NumPy's correctly rounded-ish log; fsum adds them exactly.
    rng = np.random.default_rng(5)
    p = rng.random((1, 10_000_000))
    terms = -p[0] * np.log(p[0])
    expected = math.fsum(terms.tolist())
    value = fastcov.entropy(p, backend="cpu")
    assert abs(value - expected) <= 1e-12 * expected
    # and a mixed-magnitude sum, where naive left-to-right summation loses digits
    p[0, ::2] = 1e-12
    terms = np.where(p[0] > 0, -p[0] * np.log(p[0]), 0.0)
    expected = math.fsum(terms.tolist())
    assert abs(fastcov.entropy(p, backend="cpu") - expected) <= 1e-12 * expected


def test_small_calls_run_on_fewer_threads_and_restore_the_count():
    # One chunk of states: the kernel runs on one thread, then the caller's count is back,
    # after an error too.
    threads = numba.get_num_threads()
    mu = np.random.default_rng(3).random((3, 50))
    J, g = fastcov.value_and_grad(mu)
    assert numba.get_num_threads() == threads
    with pytest.raises(ValueError, match="mu"):
        fastcov.policy_gradient(np.full((2, 10), 2.0), np.ones((2, 10, 1)))
    assert numba.get_num_threads() == threads
    J_reference, g_reference = fastcov.value_and_grad(mu, backend="numpy")
    assert abs(J - J_reference) <= 1e-12 * J_reference
    np.testing.assert_allclose(g, g_reference, rtol=1e-12)


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_calls_from_several_python_threads(layer):
    # Numba's workqueue layer (its fallback where neither TBB nor OpenMP loads) aborts the
    # process when two threads launch parallel kernels at once; fastcov serialises its
    # launches there. Every thread must get the single-threaded caller's bits. The
    # default layer is the workqueue too where neither library is installed (libgomp is
    # not in a minimal Debian).
    script = """
import threading, numpy as np, fastcov
mu = np.random.default_rng(0).random((8, 100_000))
dmu = np.random.default_rng(1).random((8, 100_000, 2))
J, g = fastcov.value_and_grad(mu)
pg = fastcov.policy_gradient(mu, dmu)
wrong = []
def work():
    for _ in range(20):
        value, grad = fastcov.value_and_grad(mu)
        wrong.append(value != J or not np.array_equal(grad, g))
        wrong.append(not np.array_equal(fastcov.policy_gradient(mu, dmu), pg))
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
import numba
def loads(pool):
    try:
        __import__("numba.np.ufunc." + pool)
    except ImportError:
        return False
    return True
print(numba.threading_layer(), loads("omppool") or loads("tbbpool"), len(wrong), any(wrong))
"""
    env = dict(os.environ)
    if layer == "workqueue":
        env["NUMBA_THREADING_LAYER"] = "workqueue"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    used, threadsafe_layer_loads, calls, wrong = result.stdout.split()
    assert (calls, wrong) == ("160", "False")
    assert (used == "workqueue") == (layer == "workqueue" or threadsafe_layer_loads == "False")


def test_a_process_forked_after_the_kernels_ran_computes_the_same_bits():
    # multiprocessing's default start on Linux is fork. GNU OpenMP cannot run in a child
    # forked after it started: Numba terminates one that launches a parallel kernel, and
    # the pool then waits for its result forever. fastcov runs such a child's calls on
    # its own thread, which gives the same bits.
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    script = """
import multiprocessing, numba, numpy as np, fastcov
mu = np.random.default_rng(0).random((8, 100_000))
dmu = np.random.default_rng(1).random((8, 100_000, 2))
def results(_):
    return fastcov.value_and_grad(mu), fastcov.policy_gradient(mu, dmu)
(J, g), pg = results(None)  # the threading layer starts here
with multiprocessing.get_context("fork").Pool(2) as pool:
    children = pool.map_async(results, range(2)).get(timeout=120)
same = all(v == J and np.array_equal(h, g) and np.array_equal(p, pg) for (v, h), p in children)
print(numba.threading_layer(), same)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[1] == "True", result.stdout


def test_a_kernel_from_the_disk_cache_runs_the_standalone_loop_with_the_same_bits(tmp_path):
    # The sweep loaded from the disk cache would run its own copy of the gradient's loop;
    # fastcov loads the standalone loop first (cpu._bind_hot_loop), as a process that
    # compiles the sweep does. Both processes must give the same bits, and so must the
    # policy gradient, whose contraction in SIMD steps adds its lanes in a fixed order.
    script = """
import hashlib, numpy as np, fastcov
from fastcov import cpu
mu = np.random.default_rng(7).random((2, 3000))  # one block: the serial driver, quick to compile
J, g = fastcov.value_and_grad(mu)
pg = fastcov.policy_gradient(mu, np.random.default_rng(8).standard_normal((2, 3000, 3)))
print(J.hex(), hashlib.sha256(g.tobytes()).hexdigest(), len(cpu._one_group.overloads),
      hashlib.sha256(pg.tobytes()).hexdigest(),
      len(cpu._several_groups.overloads) + len(cpu._forward.overloads))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
        )
        for _ in ("compiles", "loads from the cache")
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    compiled, cached = (run.stdout.split() for run in runs)
    assert compiled == cached
    assert cached[2] == "1"  # the standalone loop is loaded (2 agents: never streamed)
    # A group of fewer than 8 agents is one group, known when compiled: its kernels do
    # not compile, nor even type, the loops of several groups (half their compile time).
    assert compiled[4] == "0"


def test_one_group_and_several_groups_compile_apart(tmp_path):
    # N = 8 is one group and N = 9 two, each known when compiled: N = 8's kernels do not
    # compile the loops of several groups (they once did, sharing N > 8's kernel type:
    # 40 % of a first value_and_grad's compiling), nor N = 9's the loop of one group.
    script = """
import numpy as np, fastcov
from fastcov import cpu, reference
def compiled():
    return (len(cpu._several_groups.overloads) + len(cpu._forward.overloads),
            len(cpu._single_group.overloads) + len(cpu._one_group_states.overloads))
for n_agents in (8, 9):
    mu = np.random.default_rng(n_agents).random((n_agents, 1000))
    J, g = fastcov.value_and_grad(mu)
    expected = np.empty_like(mu)
    assert abs(J - reference.value_and_grad(mu, 0.0, expected, True)) <= 1e-13 * J
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    print(*compiled())
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    after_eight, after_nine = (tuple(map(int, line.split())) for line in run.stdout.splitlines())
    assert after_eight[0] == 0 and after_eight[1] > 0
    assert after_nine[0] > 0 and after_nine[1] == after_eight[1]


def test_the_patrol_steps_sweep_compiles_the_gradient_alone(tmp_path):
    # gradient_on_this_thread (the patrol step's) passes no output for mu(s) or c(s):
    # its sweep is compiled without their loops, which the public functions' kernel has.
    script = """
import numpy as np
from fastcov import cpu, reference
mu = np.random.default_rng(3).random((2, 500))
g = np.empty_like(mu)
partials, bad = cpu.gradient_on_this_thread(mu, 0.0, g, *cpu.partition(2)[:2])
before = len(cpu._states.overloads)
expected = np.empty_like(mu)
J = reference.value_and_grad(mu, 0.0, expected, True)
np.testing.assert_allclose(g, expected, rtol=1e-13)
assert bad == 0 and abs(sum(partials) - J) <= 1e-13 * J
cpu.coverage(mu, np.empty(500), True)
print(before, len(cpu._states.overloads))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["0", "1"]
