"""Options of the pytest-benchmark suite: ``--bench-large`` adds S = 1e8."""


def pytest_addoption(parser):
    parser.addoption(
        "--bench-large",
        action="store_true",
        help="also benchmark S = 1e8 states (about 6 GiB for mu and g at N = 8, float64)",
    )


def pytest_generate_tests(metafunc):
    if "n_states" in metafunc.fixturenames:
        states = [10**3, 10**5, 10**7]
        if metafunc.config.getoption("--bench-large"):
            states.append(10**8)
        metafunc.parametrize("n_states", states, ids=[f"S{s:.0e}" for s in states])
