"""The vectorisable logarithm and exponential of the CPU kernels against mpmath."""

import math
import re

import llvmlite.binding as llvm
import mpmath
import numba
import numpy as np
import pytest

from fastcov import _vmath


# Compiled as the kernels compile them: with NumPy's error model a division raises nothing,
# so a loop of them may be vectorised. Not cached: a test reads the compiled IR.
@numba.njit(error_model="numpy")
def _log_loop(x, out):
    for i in range(x.size):
        out[i] = _vmath.log(x[i])


@numba.njit(error_model="numpy")
def _exp_loop(x, out):
    for i in range(x.size):
        out[i] = _vmath.exp(x[i])


def _ulps(actual, x, function=mpmath.log):
    """|actual - function(x)| in units of the last place of the exact result (50 digits,
    whatever precision another module left mpmath at)."""
    with mpmath.workdps(50):
        exact = function(mpmath.mpf(float(x)))
        return float(abs(mpmath.mpf(actual) - exact) / mpmath.mpf(np.spacing(abs(float(exact)))))


def test_log_is_within_one_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.random(2000),
            10.0 ** rng.uniform(-323, 300, 2000),
            1.0 + rng.uniform(-1e-6, 1e-6, 500),
            np.nextafter(np.sqrt(0.5), [0.0, 1.0]),
            np.nextafter(np.sqrt(2.0), [0.0, 2.0]),
            [5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 0.5, 2.0, 1e308],
        ]
    )
    x = x[x != 1.0]
    out = np.empty_like(x)
    _log_loop(x, out)
    worst = max(_ulps(a, b) for a, b in zip(out, x, strict=True))
    assert worst < 1.0


def test_exp_is_within_one_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.uniform(-745.1, 709.7, 3000),
            rng.uniform(-1.0, 1.0, 1000),
            rng.uniform(-40.0, 0.0, 1000),  # the softmax's range
            rng.uniform(-745.1, -708.4, 500),  # subnormal results
            np.log(2.0) * np.array([0.5, -0.5, 1.0, -1.0]),
            [0.0, 1e-300, -1e-300, 709.78, -745.13, -708.39],
        ]
    )
    out = np.empty_like(x)
    _exp_loop(x, out)
    worst = max(_ulps(a, b, mpmath.exp) for a, b in zip(out, x, strict=True))
    assert worst < 1.0


@pytest.mark.parametrize(
    "function, x, expected",
    [
        ("log", 0.0, -math.inf),
        ("log", 1.0, 0.0),
        ("log", math.inf, math.inf),
        ("log", -1.0, math.nan),
        ("log", math.nan, math.nan),
        ("exp", 0.0, 1.0),
        ("exp", -math.inf, 0.0),
        ("exp", math.inf, math.inf),
        ("exp", 709.79, math.inf),
        ("exp", 1e308, math.inf),
        ("exp", -745.14, 0.0),
        ("exp", -1e308, 0.0),
        ("exp", math.nan, math.nan),
    ],
)
def test_special_values(function, x, expected):
    out = np.empty(1)
    {"log": _log_loop, "exp": _exp_loop}[function](np.array([x]), out)
    if math.isnan(expected):
        assert math.isnan(out[0])
    else:
        assert out[0] == expected


def _host_has_avx2():
    try:
        return bool(llvm.get_host_cpu_features().get("avx2", False))
    except RuntimeError:  # llvmlite could not read the processor's features
        return False


@pytest.mark.skipif(not _host_has_avx2(), reason="no AVX2 on this processor (or unknown)")
@pytest.mark.parametrize("loop", [_log_loop, _exp_loop], ids=["log", "exp"])
def test_a_loop_of_them_is_vectorised(loop):
    # AVX2 has no int64 -> float64 conversion: with one in the logarithm, LLVM left a
    # loop of logarithms scalar on a Zen 3 (the kernels' own loops vectorised anyway).
    loop(np.ones(16), np.empty(16))
    ir = loop.inspect_llvm(loop.signatures[0])
    assert re.search(r"fdiv[^\n]*<\d+ x double>", ir), "the loop's division stayed scalar"
