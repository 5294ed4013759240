"""Command line: ``fastcov demo``, ``fastcov info`` and ``fastcov run FILE.npy`` (also
``python -m fastcov``).
"""

import argparse
import math
import os
import sys
import time

import numpy as np

from . import __version__, _checks


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="fastcov", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fastcov {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train patrol robots on a map; print J, write a figure (the main job)"
    )
    demo.add_argument(
        "--graph",
        default="museum",
        help="house, office, museum (the paper's maps), grid:WxH, or an edge-list file "
        "(default museum)",
    )
    demo.add_argument("--robots", type=int, default=4, help="team size N (default 4)")
    demo.add_argument("--iterations", type=int, default=300, help="training steps (default 300)")
    demo.add_argument("--learning-rate", type=float, default=0.1, help="(default 0.1)")
    # patrol.OPTIMIZERS, spelt out: the command line does not import scipy to start.
    demo.add_argument(
        "--optimizer", choices=("adam", "plain"), default="adam", help="(default adam)"
    )
    demo.add_argument("--seed", type=int, default=0, help="initial policies and patrol (default 0)")
    demo.add_argument(
        "--steps", type=int, default=1_000_000, help="Monte-Carlo patrol steps (default 1000000)"
    )
    demo.add_argument(
        "-o", "--output", default="fastcov-demo.png", help="figure path (default fastcov-demo.png)"
    )
    commands.add_parser("info", help="version, backends, threads and CUDA status")
    run = commands.add_parser("run", help="load mu (N, *state_shape) from a .npy, print J, save g")
    run.add_argument("mu", help="a .npy file holding mu, agents first")
    run.add_argument("-o", "--output", help="where to save g (default: FILE.grad.npy)")
    run.add_argument("--eps", type=float, default=0.0, help="clamp of log mu(s) in g (default 0)")
    run.add_argument("--backend", default="auto", help="auto, cpu, numpy or cuda (default auto)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from . import demo

            return demo.main(args)
        return _info() if args.command == "info" else _run(args)
    except (OSError, ValueError, TypeError, RuntimeError, FloatingPointError) as error:
        print(f"fastcov: error: {error}", file=sys.stderr)
        return 1
    except MemoryError as error:  # say, a grid larger than this machine holds
        print(f"fastcov: error: out of memory: {error}", file=sys.stderr)
        return 1


def _info():
    import numba

    from . import available_backends

    print(f"fastcov {__version__}")
    print(f"numpy {np.__version__}, numba {numba.__version__}")
    print(f"backends: {', '.join(available_backends())}")
    print(f"cpu threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS or numba.set_num_threads)")
    print(f"cpu target: {_cpu_target()}")
    print(f"cuda: {_cuda_status()}")
    return 0


#: (LLVM feature, what it gives the CPU kernels), the widest first.
_SIMD = (
    ("avx512f", "AVX-512, 512-bit vectors"),
    ("avx2", "AVX2, 256-bit vectors"),
    ("sse2", "SSE2, 128-bit vectors"),
    ("sve", "SVE"),
    ("neon", "NEON, 128-bit vectors"),
)


def _cpu_target():
    """The processor Numba compiles the CPU kernels for, and the widest vectors it has:
    what their speed depends on most, after the thread count.
    """
    import numba
    from llvmlite import binding as llvm

    if numba.config.CPU_NAME:  # set for a cache that other processors can load
        return f"{numba.config.CPU_NAME} (NUMBA_CPU_NAME)"
    features = llvm.get_host_cpu_features()
    widest = next((label for feature, label in _SIMD if features.get(feature)), None)
    name = llvm.get_host_cpu_name()
    return f"{name}, {widest}" if widest else name


def _cuda_status():
    try:
        from . import cuda
    except ImportError as error:
        return f"not available ({error})"
    return cuda.describe()


def _run(args):
    from . import value_and_grad

    mu = _load_npy(args.mu)
    output = args.output or os.path.splitext(args.mu)[0] + ".grad.npy"
    _checks.output_folder(output)
    start = time.perf_counter()
    value, gradient = value_and_grad(mu, args.eps, backend=args.backend)
    seconds = time.perf_counter() - start
    with open(output, "wb") as file:  # np.save would add ".npy" to a path without it
        np.save(file, gradient)
    state_shape = gradient.shape[1:]
    axes = f" ({' x '.join(map(str, state_shape))})" if len(state_shape) > 1 else ""
    print(
        f"mu: {gradient.shape[0]} agents x {math.prod(state_shape)} states{axes}, {gradient.dtype}"
    )
    print(f"J = {value!r}")
    print(f"g written to {output} ({seconds * 1e3:.1f} ms, compilation included on first use)")
    return 0


def _load_npy(path):
    """The array in the .npy file ``path``; anything else is a ValueError that says so
    (np.load took a stray file for a pickle, and an .npz for a dict of arrays).
    """
    with open(path, "rb") as file:
        try:
            np.lib.format.read_magic(file)
        except ValueError:
            raise ValueError(f"{path} is not a .npy file (numpy.save writes one)") from None
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:  # an object array: fastcov reads numbers only
        raise ValueError(f"{path}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
