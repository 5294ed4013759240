"""The patrol gradient of extreme robots against mpmath: README's and bench/RESULTS.md's
table of errors on MUSEUM with logits of spread 16 to 64 (about a minute).

Run from a checkout with the test extra installed: ``python tests/grounds_table.py``.
For each spread and seed, one robot with standard normal logits times the spread: its
gradient's largest entry, the largest error against a solve at the given digits (with
dJ/dmu from the step's mu), that error over the largest entry, and the warnings raised.
"""

import warnings

import numpy as np
from exact import patrol_logit_gradient

import fastcov
from fastcov import graph, patrol

#: (spread, digits): a move of probability e^-x needs more than x / 2.3 digits.
SPREADS = ((16, 300), (24, 300), (32, 500), (48, 600), (64, 700))
SEEDS = range(6)


def main():
    museum = graph.load("museum")
    print("spread seed  largest entry  error      of the largest  warnings")
    for spread, digits in SPREADS:
        for seed in SEEDS:
            theta = np.random.default_rng(seed).standard_normal((1, museum.n_edges)) * spread
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                state = patrol.value_and_grad(museum, theta)
            _, dj_dmu = fastcov.value_and_grad(state.mu)
            exact = patrol_logit_gradient(museum, theta[0], dj_dmu[0], digits=digits)
            largest, error = np.abs(exact).max(), np.abs(state.grad[0] - exact).max()
            print(
                f"{spread:6d} {seed:4d}  {largest:13.2g}  {error:9.2g}  {error / largest:14.2g}"
                f"  {len(caught):8d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
