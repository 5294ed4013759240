"""The CUDA sweep kernel timed alone (CUDA events) against a whole ``value_and_grad`` call
and a device-to-device copy of mu: where the time of a call goes.

Usage, on a machine with a GPU (from a checkout): ``python -m bench.cuda_kernel`` for
N = 8, S in {1e8, 1e6, 1e4} and N = 32, S = 1e7, float32 and float64, each with the
unrolled kernel (N <= ``_config.CUDA_UNROLLED_AGENTS``) and the general one;
``--sizes 8x1e8`` for others. Medians of 15 timings after a warm-up.
"""

import argparse
import math

import numpy as np

import fastcov
from bench.__main__ import _sizes
from fastcov import _config

SIZES = [(8, 10**8), (8, 10**6), (8, 10**4), (32, 10**7)]


def main(argv=None):
    """Print kernel, call and copy times for each size, dtype and kernel."""
    parser = argparse.ArgumentParser(prog="python -m bench.cuda_kernel", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help="e.g. 8x1e8,32x1e7")
    args = parser.parse_args(argv)
    from fastcov import cuda as backend

    try:
        backend.require()
    except RuntimeError as error:  # no GPU, no driver: said in a line, not a traceback
        parser.exit(1, f"{parser.prog}: {error}\n")
    from numba import cuda

    header = ("dtype", "N", "S", "kernel", "regs", "kernel ms", "call ms", "copy ms", "copy/kern")
    print("{:8} {:>3} {:>6} {:8} {:>4} {:>9} {:>8} {:>8} {:>9}".format(*header))
    for dtype in (np.float32, np.float64):
        for n_agents, n_states in args.sizes:
            host = np.random.default_rng(0).random((n_agents, n_states)).astype(dtype)
            mu, flat = cuda.to_device(host), cuda.device_array(0, dtype)
            g = cuda.device_array_like(mu)
            copy = _median_ms(cuda, lambda: g.copy_to_device(mu))
            unrolled = _config.CUDA_UNROLLED_AGENTS
            for name, limit in (("unrolled", unrolled), ("general", 0)):
                if name == "unrolled" and n_agents > unrolled:
                    continue
                _config.CUDA_UNROLLED_AGENTS = limit
                try:
                    kernel = backend._sweep_kernel(n_agents)
                    threads, blocks = _config.CUDA_THREADS_PER_BLOCK, backend._grid(n_states)
                    partials = cuda.device_array(blocks, np.float64)
                    launch = backend._launch(kernel, blocks, threads, 0, threads * 8)
                    alone = _median_ms(
                        cuda,
                        lambda: launch(mu, 0.0, -math.inf, True, 3, flat, g, partials),
                    )
                    call = _median_ms(cuda, lambda: fastcov.value_and_grad(mu, out=g))
                finally:
                    _config.CUDA_UNROLLED_AGENTS = unrolled
                print(
                    f"{np.dtype(dtype).name:8} {n_agents:3d} {n_states:6.0e} {name:8} "
                    f"{_registers(kernel):>4} {alone:9.3f} {call:8.3f} {copy:8.3f} "
                    f"{copy / alone:9.2f}"
                )


def _registers(kernel):
    """Registers per thread of the kernel's compiled versions ("-" in the simulator)."""
    if not hasattr(kernel, "get_regs_per_thread"):
        return "-"
    registers = kernel.get_regs_per_thread()
    return max(registers.values()) if isinstance(registers, dict) else registers


def _median_ms(cuda, run, repeat=15):
    run()
    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    times = []
    for _ in range(repeat):
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


if __name__ == "__main__":
    main()
