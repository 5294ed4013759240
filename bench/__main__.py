"""CPU value_and_grad against the naive NumPy formula and the machine's copy bandwidth.

Every figure is a ratio taken in the same run: the "copy" of the same bytes (read mu,
write an array of mu's size) is the faster of ``np.copyto`` and a parallel Numba copy on
all threads, into a preallocated array. Effective bandwidth = (bytes of mu + bytes of g) /
time. Usage: ``python -m bench [--states 1e7] [--agents 8] [--repeat 7]``.
"""

import argparse
import platform
import time
import timeit

import numba
import numpy as np

import fastcov


def main(argv=None):
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--states", type=float, default=1e7)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    n_agents, n_states = args.agents, int(args.states)
    print(
        f"# {platform.processor() or platform.machine()}, {numba.get_num_threads()} threads, "
        f"numpy {np.__version__}, numba {numba.__version__}, N = {n_agents}, S = {n_states:.0e}"
    )
    header = ("dtype", "implementation", "median ms", "GB/s", "x copy", "x naive")
    print("{:8} {:28} {:>10} {:>7} {:>7} {:>8}".format(*header))
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        mu = rng.random((n_agents, n_states)).astype(dtype)
        g = np.empty_like(mu)
        moved = 2 * mu.nbytes
        copy = min(
            _median(lambda: np.copyto(g, mu), args.repeat),
            _median(lambda: _parallel_copy(mu.reshape(-1), g.reshape(-1)), args.repeat),
        )
        naive = _median(lambda: naive_value_and_grad(mu), max(3, args.repeat // 2))
        rows = [
            ("copy of the same bytes", copy),
            ("naive NumPy formula", naive),
            ("fastcov cpu, out=", _median(lambda: fastcov.value_and_grad(mu, out=g), args.repeat)),
            ("fastcov cpu, allocating", _median(lambda: fastcov.value_and_grad(mu), args.repeat)),
        ]
        for name, seconds in rows:
            print(
                f"{np.dtype(dtype).name:8} {name:28} {seconds * 1e3:10.1f} "
                f"{moved / seconds / 1e9:7.1f} {copy / seconds:7.2f} {naive / seconds:8.1f}"
            )
    _small_calls()


def _small_calls():
    """Per-call time at N = 4, S = 1e3 (SPEC: <= 20 us after compilation): best of 7 x 2000."""
    mu = np.random.default_rng(1).random((4, 1000))
    g = np.empty_like(mu)
    print("# per call, N = 4, S = 1e3, float64 (best of 7 runs of 2000 calls)")
    for name, call in (
        ("value_and_grad, out=", lambda: fastcov.value_and_grad(mu, out=g)),
        ("value_and_grad", lambda: fastcov.value_and_grad(mu)),
        ("entropy", lambda: fastcov.entropy(mu)),
    ):
        call()
        best = min(timeit.repeat(call, number=2000, repeat=7)) / 2000
        print(f"{name:28} {best * 1e6:8.1f} us")


def naive_value_and_grad(mu):
    """What one writes by hand: 1 - prod and a division by 1 - mu_i (inexact at mu_i = 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.prod(1.0 - mu, axis=0)
        m = 1.0 - q
        log_m = np.log(m)
        value = float(-(m * log_m).sum())
        return value, -(log_m + 1.0) * q / (1.0 - mu)


def _median(run, repeat):
    run()  # warm: compilation, page faults of the first touch
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@numba.njit(parallel=True, cache=True)
def _parallel_copy(source, target):
    for k in numba.prange(source.size):
        target[k] = source[k]


if __name__ == "__main__":
    main()
