"""``fastcov demo``: train a team of patrol robots on a map and show what they learned.

The whole method in one command: a graph (one of the paper's maps, a grid or an edge-list
file), N robots with random softmax policies, Adam on the exact gradient of J, a
Monte-Carlo patrol of the trained team from the map's start vertex, and, with matplotlib
installed, a figure of the coverage before and after and of the learning curve.
"""

import dataclasses
import os
import re
import sys
import threading
import time

import numpy as np

from . import _checks, api, patrol, simulate
from . import graph as graphs

__all__ = ["graph_from_spec", "run", "Demo"]

_GRID = re.compile(r"grid:(\d+)x(\d+)$", re.IGNORECASE)  # as the maps' names


def graph_from_spec(spec):
    """The graph a ``--graph`` argument names.

    Parameters
    ----------
    spec : str
        ``house``, ``office`` or ``museum`` (the paper's maps, with their start vertex);
        ``grid:WxH`` (a W x H 4-neighbour grid where robots may also stay put; start at
        the corner); or the path of an edge-list file: one undirected edge per line,
        two vertex names separated by white space, ``#`` starting a comment. Names that
        are all integers are read as integers; the first vertex named is the start. The
        maps' names and ``grid:WxH`` may be written in any case.

    Raises
    ------
    ValueError
        An unknown name, a malformed grid size, or a malformed line (file and line named).
    OSError
        The file cannot be read.
    """
    if spec.lower() in graphs.BUNDLED:
        return graphs.load(spec)
    grid = _GRID.match(spec)
    if grid:
        return graphs.grid(int(grid[1]), int(grid[2]), stay=True)
    if spec.lower().startswith("grid"):
        raise ValueError(f"a grid is written grid:WxH, for example grid:20x10, got {spec!r}")
    if not os.path.exists(spec):
        raise ValueError(
            f"{spec!r} is neither a bundled map ({', '.join(graphs.BUNDLED)}), nor grid:WxH, "
            "nor an existing edge-list file"
        )
    return _read_edge_list(spec)


@dataclasses.dataclass(frozen=True)
class Demo:
    """What :func:`run` computed.

    Attributes
    ----------
    graph : fastcov.graph.Graph
    before, after : fastcov.patrol.PatrolState
        The team at its random start and after training.
    training : fastcov.patrol.TrainResult
    patrol : fastcov.simulate.Simulation
        The trained team's walk from the start vertex.
    first_seconds : float
        Time of the first training step (the first gradient evaluation and update, up to
        the second evaluation), which on a fresh install includes compiling the kernels
        (or, later, loading them from the disk cache).
    seconds : float
        Time of the training steps after it.
    """

    graph: graphs.Graph
    before: patrol.PatrolState
    after: patrol.PatrolState
    training: patrol.TrainResult
    patrol: simulate.Simulation
    first_seconds: float
    seconds: float


def run(
    graph,
    n_robots=4,
    *,
    iterations=300,
    learning_rate=0.1,
    optimizer="adam",
    seed=0,
    steps=1_000_000,
    progress=None,
):
    """Train ``n_robots`` robots on ``graph`` and walk the trained team for ``steps`` steps.

    ``progress``, when given, is called as ``progress(step, iterations, J)`` after every
    training step. Raises what :func:`fastcov.patrol.train` raises.
    """
    states, times = [], [time.perf_counter()]

    def callback(step, state):
        if step == 0:
            states.append(state)  # the team before its first update
        if step <= 1:
            # The first step ends with the second evaluation: its update compiles too.
            times.append(time.perf_counter())
        if progress is not None:
            progress(step, iterations, state.value)

    training = patrol.train(
        graph,
        n_robots,
        iterations=iterations,
        learning_rate=learning_rate,
        optimizer=optimizer,
        seed=seed,
        callback=callback,
    )
    start, first_done, end = times[0], times[-1], time.perf_counter()
    walk = simulate.simulate(graph, training.logits, steps, seed=seed)
    return Demo(
        graph, states[0], training.state, training, walk, first_done - start, end - first_done
    )


def main(args):
    """The ``demo`` command: print the summary, write the figure; return the exit status."""
    graph = graph_from_spec(args.graph)
    try:
        from . import plot
    except ImportError:
        plot = None
    # What stops the figure is said before the training, not after it.
    no_figure = "matplotlib is not installed (pip install 'fastcov[plot]')"
    if plot is not None:
        no_figure = plot.layout_refusal(graph)
        if no_figure is None:
            _checks.output_folder(args.output)
            plot.figure_format(args.output)
    if no_figure is not None:
        print(f"no figure: {no_figure}")
    bar = _ProgressBar(sys.stderr)
    try:
        demo = run(
            graph,
            args.robots,
            iterations=args.iterations,
            learning_rate=args.learning_rate,
            optimizer=args.optimizer,
            seed=args.seed,
            steps=args.steps,
            progress=bar.update,
        )
    except FloatingPointError as error:  # the policies driven too far apart
        kept = getattr(error, "result", None)
        where = "" if kept is None else f" at step {len(kept.history)}"
        raise FloatingPointError(
            f"training stopped{where}: {error}; a smaller --learning-rate keeps the "
            "policies from growing this extreme"
        ) from None
    finally:
        bar.close()
    print(_summary(demo))
    if no_figure is not None:
        return 0
    plot.demo_figure(demo, args.output)
    print(f"figure written to {args.output}")
    return 0


def _summary(demo):
    graph, before, after = demo.graph, demo.before, demo.after
    n_robots = after.mu.shape[0]
    bound = patrol.upper_bound(graph.n_vertices, n_robots)
    steps = len(demo.training.history) - 1
    per_step = demo.seconds / max(steps - 1, 1)  # the steps after the first
    start = graph.label(demo.patrol.start[0])
    lines = [
        f"{graph.name}: {graph.n_vertices} vertices, {graph.n_edges} directed edges, "
        f"{n_robots} robots",
        f"J before training: {before.value:.4f}",
        f"J after {steps} steps: {after.value:.4f} "
        f"(upper bound {bound:.4f}; {per_step * 1e3:.2f} ms/step with the progress bar "
        f"after the first, which took {demo.first_seconds:.2f} s: it loads the compiled "
        "kernels, or compiles them on first use)",
        f"J of a {demo.patrol.steps}-step patrol from vertex {start!r}: "
        f"{_entropy(demo.patrol.coverage):.4f}",
        "entropy of each robot's stationary distribution (max log n = "
        f"{np.log(graph.n_vertices):.4f}):",
    ]
    for i, (mu_before, mu_after) in enumerate(zip(before.mu, after.mu, strict=True)):
        lines.append(f"  robot {i}: {_entropy(mu_before):.4f} -> {_entropy(mu_after):.4f}")
    return "\n".join(lines)


def _entropy(shares):
    """-sum s log s: J of a single distribution (one agent's mu is its own coverage)."""
    return api.entropy(shares[np.newaxis], backend="numpy")


def _read_edge_list(path):
    edges = []
    with open(path) as file:
        for number, line in enumerate(file, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2:
                raise ValueError(
                    f"{path}:{number}: expected two vertex names, got {line.strip()!r}"
                )
            edges.append(words)
    if not edges:
        raise ValueError(f"{path}: no edges")
    names = [word for edge in edges for word in edge]
    if all(re.fullmatch(r"-?\d+", word) for word in names):
        edges = [[int(u), int(v)] for u, v in edges]
        names = [int(word) for word in names]
    labels = list(dict.fromkeys(names))  # in order of first appearance
    return graphs.Graph.from_edges(
        edges, labels=labels, start=labels[0], name=os.path.basename(path)
    )


class _ProgressBar:
    """A one-line text bar, redrawn at most every 1 % of the steps; silent unless the
    stream is a terminal (a log file gets no carriage-return clutter).

    Until the first step is done, a line counts its seconds, from ``patience`` seconds
    on: on a fresh install the first step compiles the kernels, some 20 s, and the
    command would otherwise say nothing meanwhile.
    """

    def __init__(self, stream, width=30, patience=1.0):
        self.stream, self.width, self.drawn = stream, width, -1
        self.shown = stream.isatty()
        self._written = 0  # the length of the line on the terminal
        self._lock = threading.Lock()  # the waiting line is drawn from its own thread
        self._first_step = threading.Event()
        self._waiting = None
        if self.shown:
            self._waiting = threading.Thread(
                target=self._count_seconds, args=(time.perf_counter(), patience), daemon=True
            )
            self._waiting.start()

    def update(self, step, total, value):
        if not self.shown:
            return
        self._first_step.set()
        filled = self.width * step // max(total, 1)
        percent = 100 * step // max(total, 1)
        if percent == self.drawn and step != total:
            return
        self.drawn = percent
        bar = "#" * filled + "." * (self.width - filled)
        self._draw(f"training [{bar}] {step}/{total}  J = {value:.4f}")

    def close(self):
        if not self.shown:
            return
        self._first_step.set()
        self._waiting.join()
        self.stream.write("\n")
        self.stream.flush()

    def _count_seconds(self, start, patience):
        wait = patience
        while not self._first_step.wait(wait):
            seconds = time.perf_counter() - start
            # Shorter than 80 columns: a line that wraps is not redrawn in place.
            line = (
                f"training: the first step, {seconds:.0f} s (it compiles the kernels on first use)"
            )
            self._draw(line, unless_started=True)
            wait = 1.0

    def _draw(self, line, unless_started=False):
        with self._lock:
            if unless_started and self._first_step.is_set():
                return
            # Spaces cover what is left of a longer line before it.
            self.stream.write("\r" + line + " " * (self._written - len(line)))
            self._written = len(line)
            self.stream.flush()
