"""The demo: graph specs, the training run, its summary and figure, the command line."""

import io
import subprocess
import sys
import time

import numpy as np
import pytest

import fastcov
from fastcov import demo, graph, patrol
from fastcov.__main__ import main


def test_graph_specs(tmp_path):
    assert demo.graph_from_spec("MUSEUM").n_vertices == 70
    grid = demo.graph_from_spec("grid:4x3")
    assert grid.n_vertices == 12
    assert demo.graph_from_spec("Grid:4X3").n_edges == grid.n_edges
    assert grid.n_edges == 2 * 17 + 12  # 17 grid edges both ways, a stay loop per vertex
    assert grid.positions[5].tolist() == [1.0, 1.0]
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("# a triangle with a tail\n10 20\n20 30  # comment\n\n30 10\n30 40\n")
    g = demo.graph_from_spec(str(numbers))
    assert g.labels.tolist() == [10, 20, 30, 40]
    assert g.label(g.start) == 10
    assert g.n_edges == 8
    names = tmp_path / "rooms.txt"
    names.write_text("hall kitchen\nkitchen attic\n")
    assert demo.graph_from_spec(str(names)).labels.tolist() == ["hall", "kitchen", "attic"]


def test_bad_graph_specs(tmp_path):
    with pytest.raises(ValueError, match="grid:WxH, for example grid:20x10, got 'grid:3'"):
        demo.graph_from_spec("grid:3")
    with pytest.raises(ValueError, match="grid:WxH, for example grid:20x10, got 'GRID:3'"):
        demo.graph_from_spec("GRID:3")
    with pytest.raises(ValueError, match="neither a bundled map"):
        demo.graph_from_spec("castle")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n2 3 4\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected two vertex names, got '2 3 4'"):
        demo.graph_from_spec(str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no edges"):
        demo.graph_from_spec(str(empty))


def test_run_trains_and_patrols():
    g = graph.load("house")
    seen = []
    result = demo.run(g, 2, iterations=40, steps=20_000, progress=lambda *args: seen.append(args))
    assert [step for step, _, _ in seen] == list(range(41))
    assert seen[0][2] == result.before.value == result.training.history[0]
    assert result.after.value == result.training.history[-1] > result.before.value
    assert result.patrol.steps == 20_000
    assert result.patrol.start.tolist() == [g.start, g.start]
    np.testing.assert_allclose(result.patrol.visits, result.after.mu, atol=0.05)


def test_the_first_step_times_its_update_as_well(monkeypatch):
    # On a fresh install the first update compiles too (Adam's, 0.5 s on MUSEUM): timed
    # with the steps after it, it made them read 1.6 ms each instead of 0.03.
    calls, update = [], patrol._adam

    def slow_first_update(*args):
        calls.append(None)
        if len(calls) == 1:
            time.sleep(0.3)
        return update(*args)

    monkeypatch.setattr(patrol, "_adam", slow_first_update)
    result = demo.run(graph.load("house"), 2, iterations=5, steps=10)
    assert len(calls) == 5
    assert result.first_seconds >= 0.3 > result.seconds


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_draws_on_a_terminal_only():
    terminal = _Terminal()
    bar = demo._ProgressBar(terminal, width=10)
    for step in range(1, 401):
        bar.update(step, 400, 1.0 + step / 400)
    bar.close()
    lines = terminal.getvalue().split("\r")[1:]
    assert len(lines) == 101  # at each whole percent, 0 to 100, not at each of 400 steps
    assert lines[0] == "training [..........] 1/400  J = 1.0025"
    assert lines[-1] == "training [##########] 400/400  J = 2.0000\n"
    log = io.StringIO()  # a file: no carriage-return clutter
    bar = demo._ProgressBar(log)
    bar.update(1, 2, 0.0)
    bar.close()
    assert log.getvalue() == ""


def test_the_progress_bar_counts_the_seconds_of_a_slow_first_step():
    terminal = _Terminal()
    bar = demo._ProgressBar(terminal, width=10, patience=0.0)
    deadline = time.monotonic() + 30
    while not terminal.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    bar.update(1, 4, 1.5)
    bar.close()
    waiting, *drawn = terminal.getvalue().split("\r")[1:]
    assert waiting.startswith("training: the first step, 0 s (it compiles the kernels")
    assert len(waiting) < 80  # a line that wraps on a terminal is not redrawn in place
    first = "training [##........] 1/4  J = 1.5000"
    # The bar covers the longer line before it; nothing is drawn over the bar after it.
    assert drawn == [first + " " * (len(waiting) - len(first)) + "\n"]


def test_the_progress_bar_is_silent_while_the_first_step_is_quick():
    terminal = _Terminal()
    bar = demo._ProgressBar(terminal, width=10, patience=60.0)
    bar.update(0, 4, 1.0)
    bar.close()  # at once: it does not wait out the patience
    assert terminal.getvalue() == "\rtraining [..........] 0/4  J = 1.0000\n"
    bar = demo._ProgressBar(_Terminal(), patience=60.0)
    bar.close()  # a training that raised before its first step
    assert not bar._waiting.is_alive()


def test_layout_keeps_neighbours_close():
    plot = pytest.importorskip("fastcov.plot")
    g = graph.load("office")
    positions = plot.layout(g)
    assert positions.shape == (60, 2)
    apart = np.linalg.norm(positions[g.sources] - positions[g.indices], axis=1)
    everyone = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    assert apart.mean() < 0.5 * everyone[np.triu_indices(60, 1)].mean()
    grid = graph.grid(3, 2)
    assert plot.layout(grid) is grid.positions


@pytest.mark.parametrize("edges", [[(0, 0)], [(0, 1)]], ids=["one vertex", "two vertices"])
def test_layout_of_the_smallest_graphs(edges):
    plot = pytest.importorskip("fastcov.plot")
    positions = plot.layout(graph.Graph.from_edges(edges))
    assert positions.shape == (len(np.unique(edges)), 2)
    assert np.isfinite(positions).all()
    if len(positions) == 2:
        assert np.linalg.norm(positions[0] - positions[1]) > 0.5


def test_command_line_summary_and_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figure = tmp_path / "demo.png"
    status = main(
        [
            "demo",
            "--graph",
            "house",
            "--robots",
            "2",
            "--iterations",
            "30",
            "--steps",
            "1000",
            "-o",
            str(figure),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "HOUSE: 9 vertices, 20 directed edges, 2 robots" in out
    assert f"upper bound {patrol.upper_bound(9, 2):.4f}" in out
    assert "robot 1:" in out
    assert f"figure written to {figure}" in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastcov.plot", None)  # import fails as if missing
    monkeypatch.delattr(fastcov, "plot", raising=False)
    status = main(
        [
            "demo",
            "--graph",
            "house",
            "--iterations",
            "5",
            "--optimizer",
            "plain",
            "--steps",
            "100",
            "-o",
            str(tmp_path / "x.png"),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    plain = patrol.train(graph.load("house"), 4, iterations=5, optimizer="plain", seed=0)
    assert f"J after 5 steps: {plain.history[-1]:.4f}" in out
    assert "no figure: matplotlib is not installed" in out
    assert not (tmp_path / "x.png").exists()


def test_a_graph_too_large_to_lay_out_is_said_before_training(tmp_path, capsys):
    # It was once an error after the training, and the figure was lost with the summary.
    plot = pytest.importorskip("fastcov.plot")
    n = plot.LAYOUT_LIMIT + 1
    ring = tmp_path / "ring.txt"
    ring.write_text("".join(f"{v} {(v + 1) % n}\n" for v in range(n)))
    figure = tmp_path / "ring.png"
    assert main(["demo", "--graph", str(ring), "--iterations", "2", "-o", str(figure)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first == f"no figure: {plot.layout_refusal(demo.graph_from_spec(str(ring)))}"
    assert f"{n} vertices and no positions" in first
    assert "J after 2 steps" in out and not figure.exists()


def test_python_dash_m_demo_reports_a_bad_graph():
    result = subprocess.run(
        [sys.executable, "-m", "fastcov", "demo", "--graph", "grid:0x3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    assert "fastcov: error: grid needs width, height >= 1, got 0 x 3" in result.stderr


def test_a_grid_larger_than_memory_is_an_error_not_a_traceback(capsys):
    # 10^14 vertices: the index array alone would take 711 TiB, on any machine.
    assert main(["demo", "--graph", "grid:10000000x10000000"]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("fastcov: error: out of memory: ")
    assert "Traceback" not in printed.err


def test_demo_checks_the_output_folder_before_training(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    missing = tmp_path / "no such folder" / "x.png"
    assert main(["demo", "--graph", "house", "-o", str(missing)]) == 1
    printed = capsys.readouterr()
    assert "there is no folder" in printed.err
    assert printed.out == ""  # said before the training, not after


def test_demo_checks_the_figure_format_before_training(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--graph", "house", "-o", str(tmp_path / "x.npy")]) == 1
    printed = capsys.readouterr()
    assert f"cannot write a figure to {tmp_path / 'x.npy'}: matplotlib writes " in printed.err
    assert printed.out == ""  # said before the training, not after


def test_a_figure_goes_to_the_path_given_in_the_format_of_its_extension(tmp_path, capsys):
    plot = pytest.importorskip("fastcov.plot")
    assert plot.figure_format("a/b.SVG") == "svg" and plot.figure_format("b") == "png"
    for name, magic in (("figure", b"\x89PNG"), ("figure.PDF", b"%PDF")):
        figure = tmp_path / name
        arguments = ["--graph", "house", "--iterations", "1", "--steps", "10", "-o", str(figure)]
        assert main(["demo", *arguments]) == 0
        assert f"figure written to {figure}" in capsys.readouterr().out
        assert figure.read_bytes().startswith(magic)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figure", "figure.PDF"]


def test_training_driven_too_far_is_an_error_naming_its_step(
    tmp_path, capsys, patrol_step_failing_at
):
    patrol_step_failing_at(3, FloatingPointError("probabilities too far apart"))  # step 2
    assert main(["demo", "--graph", "house", "-o", str(tmp_path / "x.png")]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith(
        "fastcov: error: training stopped at step 2: probabilities too far apart; "
        "a smaller --learning-rate"
    )
    assert "Traceback" not in printed.err
    assert not (tmp_path / "x.png").exists()
