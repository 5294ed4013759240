"""fastcov value_and_grad against its peers and against the machine's own bandwidth.

Every figure is a ratio taken in the same run: "copy" reads mu and writes an array of
mu's size (the floor for value_and_grad: one read of mu, one write of g; it is memcpy,
which streams its stores), "copy-rows" copies the N rows side by side in the order and
with the stores fastcov's sweep uses (what the (N, S) layout allows), "scale" does the
copy with ordinary stores and one multiply, "read" only reads mu. Effective bandwidth =
(bytes of mu + bytes of g) / time (mu alone for "read"). Each row's timings alternate
with timings of its place's copy, and its "x copy" is against that copy, so that a
machine whose speed drifts from minute to minute moves both.

Host rows are compared with the host's copy and the naive NumPy formula (and fastcov's
with JAX ``jit``, where it ran), device rows with a device-to-device copy and
``torch.compile`` of the objective (SPEC section 4).

Usage (from a checkout): ``python -m bench`` for the full report (N in {2, 8, 32}, S in
{1e3, 1e5, 1e7}, float64 and float32, then compile latency, per-call time, peak memory,
thread scaling and the policy gradient), ``--quick`` for about a minute,
``--sizes 8x1e7,2x1e5``, ``--dtype float32``, ``--impl fastcov-cpu-out,naive``. Writes
``--json`` (default bench-results.json) and, with matplotlib, ``--plot`` (default
bench-results.png).
"""

import argparse
import datetime
import platform

import numba
import numpy as np

from bench import implementations, measure
from fastcov import _checks

FULL_SIZES = [(n, s) for n in (2, 8, 32) for s in (10**3, 10**5, 10**7)]
QUICK_SIZES = [(8, 10**5), (8, 10**6)]


def main(argv=None):
    """Run the benchmarks, print the tables, write JSON and the plot."""
    args = _parser().parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    repeat = args.repeat or (3 if args.quick else 7)
    names = args.impl or list(implementations.IMPLEMENTATIONS)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{numba.get_num_threads()} threads",
        "versions": {"numpy": np.__version__, "numba": numba.__version__},
        "rows": [],
    }
    versions = f"numpy {np.__version__}, numba {numba.__version__}"
    print(f"# {report['date']}, {report['machine']}, {versions}")
    for name in names:
        reason = implementations.available(name)
        if reason:
            print(f"# {name}: not run ({reason})")
    print(
        "# x copy, x naive: against the copy and the baseline of the row's own place; "
        "on the device the naive baseline is torch-compile"
    )
    header = ("implementation", "N", "S", "dtype", "median ms", "GB/s", "x copy", "x naive")
    print("{:21} {:>3} {:>6} {:8} {:>10} {:>7} {:>7} {:>8}".format(*header))
    for dtype in args.dtype:
        for n_agents, n_states in sizes:
            report["rows"] += _size(names, n_agents, n_states, dtype, repeat)
    if not args.quick:
        report.update(_side_measurements(repeat))
    with open(args.json, "w") as file:
        file.write(measure.dumps(report))
    print(f"# wrote {args.json}")
    _plot(report["rows"], args.plot)


def _size(names, n_agents, n_states, dtype, repeat):
    """Time every runnable implementation at one size, with the copy and the baseline of
    each place it runs in; print and return the rows.

    Each implementation's timings alternate with its place's copy (``measure.
    interleaved_medians``), and its "x copy" is against the copy timed alongside it; the
    copy's own row is timed alone, first.
    """
    mu = np.random.default_rng(0).random((n_agents, n_states)).astype(dtype)
    places = sorted({implementations.place(name) for name in names})
    copies = {
        where: implementations.build(implementations.COPY[where], mu)
        for where in places
        if not implementations.skip_reason(implementations.COPY[where], n_agents, n_states)
    }
    seconds, copy_seconds = {}, {}
    for where, copy in copies.items():
        name = implementations.COPY[where]
        seconds[name] = copy_seconds[name] = measure.median_seconds(copy, repeat)
    baselines = [implementations.BASELINE[where] for where in places]
    for name in dict.fromkeys((*baselines, *names)):
        where = implementations.place(name)
        if name == implementations.COPY[where]:
            continue
        if implementations.skip_reason(name, n_agents, n_states):
            continue
        run = implementations.build(name, mu)
        if where in copies:
            seconds[name], copy_seconds[name] = measure.interleaved_medians(
                [run, copies[where]], repeat
            )
        else:
            seconds[name] = measure.median_seconds(run, repeat)
        del run
        implementations.release()
    del copies
    implementations.release()
    rows = []
    for name in names:
        if name not in seconds:
            continue
        where = implementations.place(name)
        baseline = seconds.get(implementations.BASELINE[where], np.nan)
        row = {
            "implementation": name,
            "N": n_agents,
            "S": n_states,
            "dtype": np.dtype(dtype).name,
            "seconds": seconds[name],
            "GB/s": implementations.bytes_moved(name, mu) / seconds[name] / 1e9,
            "x copy": copy_seconds.get(name, np.nan) / seconds[name],
            "x naive": baseline / seconds[name],
        }
        rows.append(row)
        print(
            f"{name:21} {n_agents:3d} {n_states:6.0e} {row['dtype']:8} "
            f"{row['seconds'] * 1e3:10.3f} {row['GB/s']:7.1f} {row['x copy']:7.2f} "
            f"{row['x naive']:8.1f}"
        )
    _against_jax(rows, seconds)
    return rows


def _against_jax(rows, seconds):
    """SPEC's other CPU baseline, JAX ``jit``, where it was timed: each fastcov host row's
    speed-up over it, printed on a line and kept in the row as "x jax-jit".
    """
    if "jax-jit" not in seconds:
        return
    ratios = []
    for row in rows:
        name = row["implementation"]
        if name.startswith("fastcov") and implementations.place(name) == "host":
            row["x jax-jit"] = seconds["jax-jit"] / row["seconds"]
            ratios.append(f"{name} {row['x jax-jit']:.1f}")
    if ratios:
        print(f"# x jax-jit (the same run's medians): {', '.join(ratios)}")


def _side_measurements(repeat):
    print("# first call in a fresh process (import + compile or cache load), N = 8, S = 1e3")
    latency = measure.compile_latency()
    for label, seconds in latency.items():
        print(f"{label:28} {seconds:8.2f} s")
    print("# per call, N = 4, S = 1e3, float64 (best of 7 runs of 2000 calls; SPEC <= 20 us)")
    calls = measure.per_call()
    for label, micros in calls.items():
        print(f"{label:28} {micros:8.1f} us")
    print("# peak RSS growth over one value_and_grad, N = 8, S = 1e7 (fresh process)")
    memory = {}
    for dtype in (np.float64, np.float32):
        memory[dtype.__name__] = measure.peak_memory(8, 10**7, dtype)
        for label, mib in memory[dtype.__name__].items():
            print(f"{dtype.__name__ + ' ' + label:28} {mib:8.1f} MiB")
    print("# thread scaling, fastcov cpu out=, N = 8, S = 1e7, float64")
    mu = np.random.default_rng(0).random((8, 10**7))
    threads = measure.thread_scaling(mu, repeat)
    one = threads[1]
    for count, seconds in threads.items():
        print(f"{count} thread(s){'':18} {seconds * 1e3:8.1f} ms   x{one / seconds:.2f}")
    print("# one value per state, fastcov cpu, N = 8, S = 1e7, beside a parallel read of mu")
    sweeps = {}
    for dtype in (np.float64, np.float32):
        sweeps[dtype.__name__] = times = measure.state_sweeps(8, 10**7, dtype, repeat)
        read = times["read"]
        for label, seconds in times.items():
            if label != "read":
                print(
                    f"{label + ', ' + dtype.__name__:28} {seconds * 1e3:8.1f} ms   "
                    f"read {read * 1e3:.1f} ms (x{read / seconds:.2f})"
                )
    print(
        "# policy_gradient, N = 8, S = 1e6, float64: fastcov cpu, a parallel read of mu and "
        "dmu, fastcov grad + NumPy einsum (timed in turn)"
    )
    policy = measure.policy_gradient(8, 10**6, (1, 3, 16), repeat)
    for n_params, times in policy.items():
        fastest = times["fastcov"]
        print(
            f"P = {n_params:<3}{'':20} {fastest * 1e3:8.1f} ms   read {times['read'] * 1e3:.1f} ms "
            f"(x{times['read'] / fastest:.2f}), grad + einsum "
            f"{times['grad + einsum'] * 1e3:.1f} ms (x{times['grad + einsum'] / fastest:.1f})"
        )
    return {
        "state sweeps s": sweeps,
        "policy_gradient s": {str(k): v for k, v in policy.items()},
        "compile latency s": latency,
        "per call us": calls,
        "peak memory MiB": memory,
        "threads s": {str(k): v for k, v in threads.items()},
    }


def _plot(rows, path):
    try:
        import matplotlib.pyplot as plt

        from fastcov.plot import figure_format  # which also picks the file-only backend
    except ImportError:
        print("# no plot: matplotlib is not installed")
        return
    dtypes = sorted({row["dtype"] for row in rows})
    agents = sorted({row["N"] for row in rows})
    figure, axes = plt.subplots(
        len(dtypes), len(agents), figsize=(4.5 * len(agents), 4 * len(dtypes)), squeeze=False
    )
    for axis, (dtype, n_agents) in zip(
        axes.ravel(), [(d, n) for d in dtypes for n in agents], strict=True
    ):
        for name in dict.fromkeys(row["implementation"] for row in rows):
            points = sorted(
                (row["S"], row["GB/s"])
                for row in rows
                if (row["implementation"], row["dtype"], row["N"]) == (name, dtype, n_agents)
            )
            if points:
                style = "k--" if name == "copy" else "o-"
                axis.plot(*zip(*points, strict=True), style, label=name)
        axis.set(xscale="log", yscale="log", xlabel="states S", title=f"N = {n_agents}, {dtype}")
        axis.set_ylabel("effective GB/s (mu + g)")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format=figure_format(path))
    print(f"# wrote {path}")


def _dtypes(text):
    """float64 and/or float32, the dtypes fastcov computes in."""
    names = text.split(",")
    unknown = [name for name in names if name not in ("float64", "float32")]
    if unknown:
        raise argparse.ArgumentTypeError(f"float64 or float32, not {', '.join(unknown)}")
    return [np.dtype(name).type for name in names]


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def _parser():
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="N = 8, S in {1e5, 1e6}; no side tables"
    )
    parser.add_argument("--sizes", type=_sizes, help="comma-separated NxS, e.g. 8x1e7,2x1e5")
    parser.add_argument(
        "--dtype",
        type=_dtypes,
        default=[np.float64, np.float32],
        help="float64, float32 or both (default both)",
    )
    parser.add_argument(
        "--impl",
        type=_implementations,
        help=f"comma-separated, from: {', '.join(implementations.IMPLEMENTATIONS)}",
    )
    parser.add_argument("--repeat", type=_positive, help="timings per median (default 7, quick 3)")
    parser.add_argument("--json", type=_output_path, default="bench-results.json")
    parser.add_argument("--plot", type=_figure_path, default="bench-results.png")
    return parser


def _output_path(text):
    """A file to write at the end of the run, whose folder exists now: said before the
    measurements, not after them.
    """
    try:
        _checks.output_folder(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _figure_path(text):
    """A ``--plot`` path: an output path whose format matplotlib, where installed, writes."""
    text = _output_path(text)
    try:
        from fastcov import plot
    except ImportError:  # no matplotlib: no plot is written
        return text
    try:
        plot.figure_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _sizes(text):
    """``"8x1e7,2x1e5"`` as [(8, 10**7), (2, 10**5)]: N agents >= 1 by S states >= 1."""
    sizes = []
    for item in text.split(","):
        agents, _, states = item.lower().partition("x")
        try:
            size = int(agents), float(states)
        except ValueError:
            size = None
        if size is None or size[0] < 1 or not 1 <= size[1] < 2**63 or size[1] % 1:
            raise argparse.ArgumentTypeError(
                f"each size is NxS, N agents by S states (whole numbers >= 1), "
                f"for example 8x1e7,2x1e5; got {item!r}"
            )
        sizes.append((size[0], int(size[1])))
    return sizes


def _implementations(text):
    names = text.split(",")
    unknown = [name for name in names if name not in implementations.IMPLEMENTATIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown implementation(s): {', '.join(unknown)}")
    return names


if __name__ == "__main__":
    main()
