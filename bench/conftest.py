"""Options of the pytest-benchmark suite: ``--bench-large`` adds S = 1e8.

With timing disabled (the default: a correctness run, as in CI) each case runs once at
S = 1e3 and 1e5 only: the larger sizes measure memory bandwidth, which a run that times
nothing does not need, and took 130 of its 165 s (2 cores). Timed, S = 1e7 is included.
"""


def pytest_addoption(parser):
    parser.addoption(
        "--bench-large",
        action="store_true",
        help="also benchmark S = 1e8 states (about 6 GiB for mu and g at N = 8, float64)",
    )


def pytest_generate_tests(metafunc):
    if "n_states" in metafunc.fixturenames:
        states = [10**3, 10**5]
        config = metafunc.config
        if config.getoption("benchmark_enable") or not config.getoption("benchmark_disable"):
            states.append(10**7)
        if config.getoption("--bench-large"):
            states.append(10**8)
        metafunc.parametrize("n_states", states, ids=[f"S{s:.0e}" for s in states])
