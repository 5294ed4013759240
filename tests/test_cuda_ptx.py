"""The CUDA kernels compile to PTX for sm_90 without a GPU, and the J path has no float atomics.

Also: importing fastcov never imports numba.cuda, and where the CUDA backend cannot run,
asking for it says why. (Not run in the simulator pass: it compiles for real.)
"""

import re
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

import fastcov

FLOAT_ATOMIC = re.compile(r"\b(atom|red)(\.\w+)*\.(f16|bf16|f32|f64)\b")


@pytest.fixture(scope="module")
def compile_ptx():
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from numba.cuda import dispatcher

    from fastcov import cuda as backend

    problem = backend._compiler_problem()
    if problem is not None:  # a NumPy that the cuda extra excludes
        pytest.skip(problem)

    class Hopper:  # device functions ask the current device its compute capability
        compute_capability = (9, 0)

    def compile_all(dtype):
        with mock.patch.object(dispatcher, "get_current_device", Hopper):
            return {
                name: cuda.compile_ptx(function, signature, cc=(9, 0))[0]
                for name, (function, signature) in backend.kernel_signatures(dtype).items()
            }

    return compile_all


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernels_compile_for_sm90_without_float_atomics(compile_ptx, dtype):
    ptx = compile_ptx(dtype)
    assert set(ptx) == {"sweep", "sweep (8 agents, unrolled)", "contract", "finish", "first_bad"}
    for name, text in ptx.items():
        assert ".target sm_90" in text, name
        assert not FLOAT_ATOMIC.search(text), (
            f"float atomic in {name}: {FLOAT_ATOMIC.search(text)[0]}"
        )
    # mu is read in its own precision and the reduction goes through shared memory.
    width = "f32" if dtype == np.float32 else "f64"
    assert re.search(rf"ld\.global(\.\w+)*\.{width}", ptx["sweep"])
    assert "bar.sync" in ptx["sweep"] and "st.shared.f64" in ptx["sweep"]
    # With the agent count fixed, the column mu[:, s] and its prefix products live in
    # registers, not in local memory (a per-thread stack that lives in DRAM).
    assert ".local" not in ptx["sweep (8 agents, unrolled)"]
    # The only atomic anywhere: the integer min that locates a bad value.
    assert re.search(r"atom\.global\.min\.s64", ptx["first_bad"])


def test_float_atomic_pattern_is_not_vacuous():
    assert FLOAT_ATOMIC.search("atom.global.add.f64 %fd1, [%rd1], %fd2;")
    assert FLOAT_ATOMIC.search("red.global.add.f32 [%rd1], %f2;")
    assert not FLOAT_ATOMIC.search("atom.global.min.s64 %rd3, [%rd1], %rd2;")


def test_import_does_not_touch_numba_cuda():
    code = (
        "import sys, fastcov; print(sorted(m for m in sys.modules if m.startswith('numba.cuda')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_cuda_backend_loads_where_warnings_are_errors():
    # numba-cuda's import warns under NumPy >= 2.5 (a NaT without a unit); a user's
    # -W error must not turn that into a failed import of fastcov's backend.
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    code = "import fastcov.cuda, fastcov; print(fastcov.available_backends())"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "'cpu'" in result.stdout


def test_what_keeps_the_kernels_from_compiling_is_named():
    # Exactly where a kernel fails to compile: without libNVVM (numba's own CUDA target,
    # numba-cuda not installed, no CUDA toolkit), or under a NumPy numba-cuda cannot
    # compile with.
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from numba.cuda.cudadrv.error import NvvmSupportError

    from fastcov import cuda as backend

    def axpy(a, x, y):  # any kernel: numba-cuda loads its array functions for all
        i = cuda.grid(1)
        if i < x.size:
            y[i] += a * x[i]

    try:
        cuda.compile_ptx(axpy, "(float64, float64[:], float64[:])", cc=(9, 0))
    except NvvmSupportError:
        problem = backend._compiler_problem()
        assert problem is not None and problem.startswith("libNVVM, the CUDA compiler,")
        assert backend.install_hint(sys.version_info) in problem
    except AttributeError as error:
        problem = backend._compiler_problem()
        assert problem is not None and str(error) in problem and "numpy<2.5" in problem
    else:
        assert backend._compiler_problem() is None


def test_a_missing_compiler_is_named_before_a_kernel_compiles(monkeypatch):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from numba.cuda.cudadrv import nvvm

    from fastcov import cuda as backend

    monkeypatch.setattr(backend.cuda, "is_available", lambda: True)
    monkeypatch.setattr(nvvm, "is_available", lambda: False)
    backend._compiler_problem.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="cannot compile its kernels here: libNVVM"):
            fastcov.entropy(np.full((2, 3), 0.5), backend="cuda")
    finally:
        backend._compiler_problem.cache_clear()


def test_the_backend_refuses_to_run_where_it_cannot_compile(monkeypatch):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastcov import cuda as backend

    monkeypatch.setattr(backend.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backend, "_compiler_problem", lambda: "numba-cuda 0.30 does not ...")
    with pytest.raises(RuntimeError, match="cannot compile its kernels here: numba-cuda 0.30"):
        fastcov.entropy(np.full((2, 3), 0.5), backend="cuda")


def test_cuda_backend_says_why_it_cannot_run():
    if "cuda" in fastcov.available_backends():
        pytest.skip("the CUDA backend can run here")
    with pytest.raises(RuntimeError, match="CUDA backend") as info:
        fastcov.entropy(np.full((2, 3), 0.5), backend="cuda")
    assert "driver" in str(info.value) or "numba-cuda" in str(info.value)
