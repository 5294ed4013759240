"""Patrolling: the paper's experiments and the cost of a gradient step against a dense one.

Usage (from a checkout): ``python -m bench.patrol`` for both tables, ``--quick`` for
smaller ones (about a minute), ``--experiments`` or ``--scaling`` for one of them.

Experiments: J reached on MUSEUM and OFFICE for N = 2, 3, 4 robots (Adam, both update
schedules, the best and the mean over seeds), next to the values EM-Patroller reports in
its Fig. 3 and next to :func:`fastcov.patrol.upper_bound`.

Scaling: the time of one gradient step (stationary distributions, J, dJ/dtheta for every
robot) on W x W grids, fastcov's sparse LU (an elimination plan up to mid-sized graphs,
a multifrontal LU beyond: the solver column) against a dense step that inverts the n x n matrix
P - I + 1 1^T per robot as EM-Patroller's code does (with the same adjoint, so the dense
side does no more than its inverse needs), on MUSEUM as well; growth rates are the log-log
slopes between successive sizes. Each ratio is of two medians taken in turn
(:func:`bench.measure.interleaved_medians`): the machines of bench/RESULTS.md changed
speed by half between minutes, which back-to-back medians carried into the ratio whole.
"""

import argparse
import time
import timeit

import numpy as np

import fastcov
from bench import measure
from fastcov import _patterns, _policy, graph, patrol

#: EM-Patroller, Fig. 3, read off the bar chart (log base unstated).
PAPER = {("MUSEUM", 2): 7.86, ("MUSEUM", 3): 10.44, ("MUSEUM", 4): 12.46,
         ("OFFICE", 2): 7.11, ("OFFICE", 3): 8.53, ("OFFICE", 4): 10.29}  # fmt: skip


def dense_step(graph, logits):
    """J and dJ/dtheta through dense inverses: mu^T = 1^T (P - I + 1 1^T)^-1 (column sums
    of the inverse, as EM-Patroller computes it), h = -(P - I + 1 1^T)^-1 g.
    """
    probabilities = patrol.transition_probabilities(graph, logits)
    n = graph.n_vertices
    inverses = []
    for p in probabilities:
        system = np.ones((n, n)) - np.eye(n)
        system[graph.sources, graph.indices] += p
        inverses.append(np.linalg.inv(system))
    mu = np.stack([inverse.sum(axis=0) for inverse in inverses])
    value, g = fastcov.value_and_grad(mu)
    grad = np.stack(
        [
            _policy.softmax_chain_rule(graph, p, mu_i, -(inverse @ g_i))
            for p, mu_i, inverse, g_i in zip(probabilities, mu, inverses, g, strict=True)
        ]
    )
    return value, grad


def torch_step(graph, logits):
    """EM-Patroller's own way (needs PyTorch): P by a masked softmax, mu as the column
    sums of torch.linalg.inv(P - I + 1 1^T), J, and reverse-mode autodiff back to the
    logits (the paper's code also builds P with a per-state MLP, not timed here).
    """
    import torch

    n = graph.n_vertices
    theta = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    masked = torch.full((len(logits), n, n), -torch.inf, dtype=torch.float64)
    # Writable copies: PyTorch warns when indexed with read-only NumPy arrays.
    masked[:, graph.sources.copy(), graph.indices.copy()] = theta
    transition = torch.softmax(masked, dim=2)
    system = transition - torch.eye(n, dtype=torch.float64) + 1.0
    mu = torch.linalg.inv(system).sum(dim=1)
    team = 1.0 - torch.prod(1.0 - mu, dim=0)
    value = -(team * torch.log(team)).sum()
    value.backward()
    return value.item(), theta.grad.numpy()


def sparse_step(graph, logits):
    """Fastcov's step: :func:`fastcov.patrol.value_and_grad`."""
    state = patrol.value_and_grad(graph, logits)
    return state.value, state.grad


def experiments(iterations, seeds):
    """Print and return the table of J reached against the paper and the bound."""
    print(f"# J reached (nats), Adam lr 0.1, {iterations} steps, best / mean of {seeds} seeds")
    header = ("map", "N", "simultaneous", "one-at-a-time", "in bits", "paper", "bound")
    print("{:7} {:>2} {:>17} {:>17} {:>8} {:>6} {:>7}".format(*header))
    rows = []
    for name in ("museum", "office"):
        g = graph.load(name)
        for n_robots in (2, 3, 4):
            reached = {}
            for schedule in patrol.SCHEDULES:
                # One robot per step: N times the steps for as many updates per robot.
                steps = iterations * (n_robots if schedule == "one-at-a-time" else 1)
                values = [
                    patrol.train(
                        g, n_robots, iterations=steps, schedule=schedule, seed=seed
                    ).history[-1]
                    for seed in range(seeds)
                ]
                reached[schedule] = (max(values), float(np.mean(values)))
            best = max(best for best, _ in reached.values())
            row = {
                "map": g.name,
                "N": n_robots,
                **{f"{k} best": v[0] for k, v in reached.items()},
                **{f"{k} mean": v[1] for k, v in reached.items()},
                "best bits": best / np.log(2),
                "paper": PAPER[(g.name, n_robots)],
                "bound": patrol.upper_bound(g.n_vertices, n_robots),
            }
            rows.append(row)
            cells = [f"{v[0]:7.3f} / {v[1]:7.3f}" for v in reached.values()]
            print(
                f"{g.name:7} {n_robots:2d} {cells[0]:>17} {cells[1]:>17} {row['best bits']:8.3f} "
                f"{row['paper']:6.2f} {row['bound']:7.3f}"
            )
    return rows


def scaling(widths, n_robots, dense_limit, repeat, torch_limit=1100):
    """Print and return the step times on W x W grids and MUSEUM."""
    print(f"# one gradient step, N = {n_robots}, median of {repeat} (one from 1e5 vertices), s")
    print("# (sparse and dense timed in turn; from 1e5 vertices, the step after an untimed one)")
    print("# setup: the once-per-graph analysis (ordering, elimination plan), not in the step")
    print(
        "{:14} {:>9} {:>8} {:>8} {:>10} {:>10} {:>9}".format(
            "graph", "vertices", "solver", "setup", "sparse", "dense", "x"
        )
    )
    cases = [graph.load("museum")] + [graph.grid(w, w) for w in widths]
    rows = []
    for g in cases:
        logits = np.random.default_rng(0).standard_normal((n_robots, g.n_edges))
        start = time.perf_counter()
        _patterns.pattern(g)
        setup = time.perf_counter() - start
        dense = None
        if g.n_vertices <= dense_limit:
            sparse, dense = measure.interleaved_medians(
                [lambda: sparse_step(g, logits), lambda: dense_step(g, logits)], repeat
            )
            _agree(sparse_step(g, logits), dense_step(g, logits), g.name)
        elif g.n_vertices < 10**5:
            sparse = measure.median_seconds(lambda: sparse_step(g, logits), repeat)
        else:
            # A step takes seconds: timed once, after one untimed step (the first on a
            # graph also allocates the factor arrays that later steps reuse).
            sparse_step(g, logits)
            sparse = timeit.timeit(lambda: sparse_step(g, logits), number=1)
        row = {
            "graph": g.name,
            "vertices": g.n_vertices,
            "setup s": setup,
            "sparse s": sparse,
            "dense s": dense,
        }
        rows.append(row)
        ratio = f"{dense / sparse:9.1f}" if dense else f"{'-':>9}"
        dense_text = f"{dense:10.4g}" if dense else f"{'-':>10}"
        solver = "frontal" if _patterns.pattern(g).plan is None else "plan"
        print(
            f"{g.name:14} {g.n_vertices:9d} {solver:>8} {setup:8.3g} {sparse:10.4g} "
            f"{dense_text} {ratio}"
        )
    grids = [row for row in rows if row["graph"].startswith("grid")]
    for key in ("sparse s", "dense s"):
        pairs = [(a, b) for a, b in zip(grids, grids[1:], strict=False) if a[key] and b[key]]
        if not pairs:  # the dense step timed on fewer than two grids
            continue
        slopes = [np.log(b[key] / a[key]) / np.log(b["vertices"] / a["vertices"]) for a, b in pairs]
        text = ", ".join(
            f"{a['vertices']}->{b['vertices']}: {s:.2f}"
            for (a, b), s in zip(pairs, slopes, strict=True)
        )
        print(f"# growth of the {key.split()[0]} step, time ~ n^k: {text}")
    if _has_torch():
        # Last, so that no earlier row is timed beside PyTorch's OpenMP threads, which
        # keep spinning after each call (the timings in turn pause before each one).
        print("# EM-Patroller's way: PyTorch autodiff through inv, against the sparse step")
        print("{:14} {:>9} {:>10} {:>10} {:>9}".format("graph", "vertices", "sparse", "torch", "x"))
        for g, row in zip(cases, rows, strict=True):
            if g.n_vertices > torch_limit:
                continue
            logits = np.random.default_rng(0).standard_normal((n_robots, g.n_edges))
            row["torch sparse s"], row["torch s"] = measure.interleaved_medians(
                [lambda: sparse_step(g, logits), lambda: torch_step(g, logits)], repeat
            )
            _agree(sparse_step(g, logits), torch_step(g, logits), g.name)
            print(
                f"{g.name:14} {g.n_vertices:9d} {row['torch sparse s']:10.4g} "
                f"{row['torch s']:10.4g} {row['torch s'] / row['torch sparse s']:9.1f}"
            )
    return rows


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("# torch column: not run (PyTorch is not installed)")
        return False
    return True


def _agree(sparse, dense, name):
    """The two steps must compute the same thing, or the timing compares nothing."""
    scale = np.abs(sparse[1]).max()
    error = np.abs(sparse[1] - dense[1]).max()
    if abs(sparse[0] - dense[0]) > 1e-9 * abs(sparse[0]) or error > 1e-6 * scale:
        raise AssertionError(f"{name}: sparse and dense steps disagree ({error:.3g} in grad)")


def main(argv=None):
    """Run the tables chosen on the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.patrol", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller tables (about a minute)")
    parser.add_argument("--experiments", action="store_true", help="only the experiments")
    parser.add_argument("--scaling", action="store_true", help="only the scaling table")
    args = parser.parse_args(argv)
    both = not (args.experiments or args.scaling)
    if args.experiments or both:
        experiments(iterations=200 if args.quick else 1000, seeds=1 if args.quick else 3)
    if args.scaling or both:
        widths = [10, 32, 56] if args.quick else [10, 18, 32, 56, 100, 178, 316, 562, 1000]
        scaling(widths, n_robots=8, dense_limit=3200, repeat=3 if args.quick else 5)


if __name__ == "__main__":
    main()
