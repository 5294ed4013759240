"""pytest-benchmark cases: one patrol gradient step, fastcov's sparse LU against dense
inverses (NumPy, and PyTorch autodiff when installed), N = 8 robots. CI runs each once
(timing disabled) and checks they agree; the scaling table is ``python -m bench.patrol``.
"""

import numpy as np
import pytest

from bench import patrol as patrol_bench
from fastcov import graph

GRAPHS = {"museum": lambda: graph.load("museum"), "grid-32x32": lambda: graph.grid(32, 32)}


STEPS = {
    "sparse": patrol_bench.sparse_step,
    "dense": patrol_bench.dense_step,
    "torch": patrol_bench.torch_step,
}


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("name", list(GRAPHS))
def test_gradient_step(benchmark, name, step):
    if step == "torch":
        pytest.importorskip("torch")
    g = GRAPHS[name]()
    logits = np.random.default_rng(0).standard_normal((8, g.n_edges))
    benchmark.group = f"patrol step, N=8, {name}"
    value, grad = benchmark(STEPS[step], g, logits)
    other = patrol_bench.dense_step if step == "sparse" else patrol_bench.sparse_step
    patrol_bench._agree((value, grad), other(g, logits), name)


def test_scaling_table_times_dense_only_within_its_limit(capsys):
    # MUSEUM (70 vertices) is within the dense limit, a 10 x 10 grid is not.
    rows = patrol_bench.scaling([10], n_robots=2, dense_limit=80, repeat=1, torch_limit=0)
    assert [row["graph"] for row in rows] == ["MUSEUM", "grid 10x10"]
    museum, grid = rows
    assert museum["sparse s"] > 0 and museum["dense s"] > 0
    assert grid["sparse s"] > 0 and grid["dense s"] is None
    printed = capsys.readouterr().out
    ratio = museum["dense s"] / museum["sparse s"]
    assert f"{ratio:9.1f}" in printed.splitlines()[4]
    # One grid: no growth rate, and no line that promises one.
    assert "growth" not in printed
