"""Figures (needs matplotlib, the ``plot`` extra): a graph coloured by coverage, the demo.

Importing this module raises ImportError when matplotlib is missing; callers catch it.
"""

import os

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.csgraph  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402

from . import api, patrol  # noqa: E402

__all__ = ["demo_figure", "draw_coverage", "figure_format", "layout"]

#: Graphs larger than this get no computed layout (it costs O(n^2) memory).
LAYOUT_LIMIT = 3000


def demo_figure(demo, path):
    """Write the demo's figure to ``path``: team coverage mu(s) before and after
    training, on one colour scale, and J at every step against the upper bound.
    """
    graph, after = demo.graph, demo.after
    positions = layout(graph)
    before_coverage = api.coverage(demo.before.mu, backend="numpy")
    after_coverage = api.coverage(after.mu, backend="numpy")
    top = max(before_coverage.max(), after_coverage.max())
    figure, axes = plt.subplots(1, 3, figsize=(16, 5), width_ratios=[1, 1, 0.9])
    n_robots = after.mu.shape[0]
    for axis, coverage, title in (
        (axes[0], before_coverage, f"before: J = {demo.before.value:.3f}"),
        (axes[1], after_coverage, f"after training: J = {after.value:.3f}"),
    ):
        points = draw_coverage(axis, graph, coverage, positions, vmax=top)
        axis.set_title(title)
    figure.colorbar(points, ax=axes[:2], shrink=0.8, label="team coverage μ(s)")
    history = demo.training.history
    axes[2].plot(np.arange(len(history)), history, label="J")
    bound = patrol.upper_bound(graph.n_vertices, n_robots)
    axes[2].axhline(bound, color="grey", linestyle="--", label=f"upper bound {bound:.3f}")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("J (nats)")
    axes[2].set_title("learning curve")
    axes[2].legend(loc="lower right")
    figure.suptitle(f"{graph.name}: {n_robots} robots, {graph.n_vertices} vertices")
    figure.savefig(path, dpi=120, format=figure_format(path))
    plt.close(figure)


def figure_format(path):
    """The format a figure is written to ``path`` in: that of its extension (in any case),
    or PNG where it has none, written to ``path`` itself (matplotlib alone would add
    ".png" to the name).

    Raises
    ------
    ValueError
        An extension matplotlib cannot write; a command asks before its long work.
    """
    extension = os.path.splitext(path)[1][1:].lower()
    if not extension:
        return "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if extension not in formats:
        raise ValueError(
            f"cannot write a figure to {path}: matplotlib writes {', '.join(sorted(formats))}"
        )
    return extension


def draw_coverage(axis, graph, values, positions, *, vmax=None):
    """Draw ``graph`` on ``axis`` with vertex colour = ``values`` (shape (n,)); the start
    vertex, if any, is ringed. Returns the vertices' PathCollection (for a colour bar).
    """
    sources, targets = graph.sources, graph.indices
    shown = sources < targets  # each undirected edge once, no self-loops
    shown |= (sources > targets) & ~_has_reverse(graph)
    segments = np.stack([positions[sources[shown]], positions[targets[shown]]], axis=1)
    axis.add_collection(
        matplotlib.collections.LineCollection(segments, colors="0.75", linewidths=0.8, zorder=1)
    )
    size = max(8.0, 3000.0 / graph.n_vertices)
    points = axis.scatter(
        positions[:, 0],
        positions[:, 1],
        c=values,
        s=size,
        cmap="viridis",
        vmin=0.0,
        vmax=vmax,
        zorder=2,
    )
    if graph.start is not None:
        axis.scatter(
            *positions[graph.start],
            s=size * 3,
            facecolors="none",
            edgecolors="red",
            linewidths=1.5,
            zorder=3,
            label="start",
        )
        axis.legend(loc="upper right", fontsize="small")
    axis.set_aspect("equal")
    axis.set_axis_off()
    return points


def layout(graph, *, iterations=200):
    """Positions (n, 2) for drawing: ``graph.positions`` when the graph has them, else a
    stress-majorisation layout of the hop distances (vertices as far apart on the page
    as in the graph), started from classical multidimensional scaling.

    Raises
    ------
    ValueError
        The graph has no positions and more than :data:`LAYOUT_LIMIT` vertices.
    """
    if graph.positions is not None:
        return graph.positions
    refusal = layout_refusal(graph)
    if refusal is not None:
        raise ValueError(refusal)
    n = graph.n_vertices
    hops = scipy.sparse.csgraph.shortest_path(graph.adjacency(), directed=False, unweighted=True)
    hops[~np.isfinite(hops)] = hops[np.isfinite(hops)].max() + 1.0
    centring = np.eye(n) - 1.0 / n
    values, vectors = np.linalg.eigh(-0.5 * centring @ (hops**2) @ centring)
    # The two leading axes; a single vertex has one (and sits at the origin).
    positions = np.zeros((n, 2))
    axes = min(n, 2)
    positions[:, 2 - axes :] = vectors[:, -axes:] * np.sqrt(np.maximum(values[-axes:], 1e-12))
    # SMACOF with weights 1/d^2: each Guttman transform lowers the stress.
    weights = np.zeros_like(hops)
    off = hops > 0
    weights[off] = 1.0 / hops[off] ** 2
    laplacian = np.diag(weights.sum(axis=1)) - weights
    pseudo_inverse = np.linalg.pinv(laplacian)
    for _ in range(iterations):
        apart = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
        ratio = np.zeros_like(hops)
        moved = off & (apart > 1e-12)
        ratio[moved] = weights[moved] * hops[moved] / apart[moved]
        guttman = np.diag(ratio.sum(axis=1)) - ratio
        positions = pseudo_inverse @ guttman @ positions
    return positions


def layout_refusal(graph):
    """Why :func:`layout` would refuse ``graph`` (a sentence), or None where it draws it."""
    if graph.positions is None and graph.n_vertices > LAYOUT_LIMIT:
        return (
            f"{graph.name} has {graph.n_vertices} vertices and no positions; a layout is "
            f"computed only up to {LAYOUT_LIMIT}"
        )
    return None


def _has_reverse(graph):
    """Whether each edge u -> v has its reverse v -> u."""
    n = graph.n_vertices
    keys = graph.sources * n + graph.indices
    return np.isin(graph.indices * n + graph.sources, keys)
