import subprocess
import sys

import numpy as np

import fastcov


def _fastcov(*args):
    return subprocess.run(
        [sys.executable, "-m", "fastcov", *args], capture_output=True, text=True, timeout=600
    )


def test_version():
    result = _fastcov("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fastcov {fastcov.__version__}"


def test_info_lists_backends():
    result = _fastcov("info")
    assert result.returncode == 0, result.stderr
    assert f"fastcov {fastcov.__version__}" in result.stdout
    assert "backends: cpu, numpy" in result.stdout


def test_info_names_the_processor_the_kernels_are_compiled_for():
    from llvmlite import binding as llvm

    line = next(x for x in _fastcov("info").stdout.splitlines() if x.startswith("cpu target: "))
    assert line.startswith(f"cpu target: {llvm.get_host_cpu_name()}")
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        assert line.endswith("AVX-512, 512-bit vectors")
    elif features.get("avx2"):
        assert line.endswith("AVX2, 256-bit vectors")


def test_info_names_a_processor_set_by_numba_cpu_name(monkeypatch):
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    assert "cpu target: generic (NUMBA_CPU_NAME)\n" in _fastcov("info").stdout


def test_run_prints_entropy_and_saves_gradient(tmp_path):
    mu = np.random.default_rng(0).random((3, 8, 8))
    np.save(tmp_path / "mu.npy", mu)
    result = _fastcov("run", str(tmp_path / "mu.npy"), "-o", str(tmp_path / "g.npy"))
    assert result.returncode == 0, result.stderr
    J, g = fastcov.value_and_grad(mu)
    assert "mu: 3 agents x 64 states (8 x 8), float64" in result.stdout
    assert f"J = {J!r}" in result.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), g)


def test_run_writes_the_path_it_is_given_and_checks_its_folder_first(tmp_path):
    mu = np.random.default_rng(1).random((2, 5))
    np.save(tmp_path / "mu.npy", mu)
    result = _fastcov("run", str(tmp_path / "mu.npy"), "-o", str(tmp_path / "g"))
    assert result.returncode == 0, result.stderr
    assert "mu: 2 agents x 5 states, float64" in result.stdout
    assert f"g written to {tmp_path / 'g'} " in result.stdout
    assert not (tmp_path / "g.npy").exists()  # np.save alone would have named it so
    np.testing.assert_array_equal(np.load(tmp_path / "g"), fastcov.grad(mu))
    result = _fastcov("run", str(tmp_path / "mu.npy"), "-o", str(tmp_path / "none" / "g.npy"))
    assert result.returncode == 1
    assert "there is no folder" in result.stderr and result.stdout == ""


def test_run_reports_bad_input(tmp_path):
    np.save(tmp_path / "mu.npy", np.array([[0.5, 2.0]]))
    result = _fastcov("run", str(tmp_path / "mu.npy"))
    assert result.returncode == 1
    assert "mu[0, 1] = 2.0" in result.stderr


def test_run_says_when_a_file_is_not_npy(tmp_path):
    (tmp_path / "notes.npy").write_text("not an array")
    np.savez(tmp_path / "both.npz", mu=np.zeros((1, 2)))
    for name in ("notes.npy", "both.npz"):
        result = _fastcov("run", str(tmp_path / name))
        assert result.returncode == 1
        assert f"{name} is not a .npy file" in result.stderr


def test_run_takes_a_team_of_no_agents_and_refuses_objects(tmp_path):
    # N = 0 once crashed after the gradient was written (its summary read mu[0]).
    np.save(tmp_path / "none.npy", np.zeros((0, 4, 5)))
    result = _fastcov("run", str(tmp_path / "none.npy"))
    assert result.returncode == 0, result.stderr
    assert "mu: 0 agents x 20 states (4 x 5), float64" in result.stdout
    assert np.load(tmp_path / "none.grad.npy").shape == (0, 4, 5)
    np.save(tmp_path / "objects.npy", np.array([{"mu": 0.5}]), allow_pickle=True)
    result = _fastcov("run", str(tmp_path / "objects.npy"))
    assert result.returncode == 1
    assert "objects.npy: Object arrays cannot be loaded" in result.stderr
