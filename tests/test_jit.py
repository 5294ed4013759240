"""Every compiled CPU function takes its Numba options from fastcov._jit."""

import importlib
import pkgutil

import numba
import pytest

import fastcov
from fastcov import _jit


def _dispatchers():
    for module_info in pkgutil.iter_modules(fastcov.__path__):
        if module_info.name == "cuda":  # numba-cuda kernels: options of their own
            continue
        try:
            module = importlib.import_module(f"fastcov.{module_info.name}")
        except ImportError:  # fastcov.plot without matplotlib: it compiles nothing
            continue
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher):
                if value.py_func.__module__ == module.__name__:
                    yield f"{module.__name__}.{name}", value


DISPATCHERS = dict(_dispatchers())


def test_the_package_has_compiled_functions_to_check():
    assert len(DISPATCHERS) > 50
    assert "fastcov._solvers.planned_step" in DISPATCHERS
    assert "fastcov._lanes.empty" in DISPATCHERS


@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_compiled_with_the_shared_options(name):
    dispatcher = DISPATCHERS[name]
    options = dict(dispatcher.targetoptions)
    # Numba keeps cache=True as the dispatcher's disk cache, not as a target option.
    options["cache"] = not isinstance(dispatcher._cache, numba.core.caching.NullCache)
    assert {key: options.get(key) for key in _jit.OPTIONS} == _jit.OPTIONS
    # fastmath, where used, may reassociate but never assume away NaN or inf (the range
    # check and the conventions' infinities must survive).
    fastmath = options.get("fastmath", set())
    assert not {"nnan", "ninf", "fast"} & set(fastmath or ())
