"""``python -m bench``'s own machinery: its timings taken in turn, and a small report."""

import argparse
import json

import numpy as np
import pytest

import fastcov
from bench import __main__ as report
from bench import cuda_kernel, measure


def test_interleaved_timings_alternate_and_time_each_run():
    calls = []

    def run(label, spin):
        def call():
            calls.append(label)
            total = 0
            for k in range(spin):
                total += k
            return total

        return call

    cheap, dear = measure.interleaved_medians([run("a", 10), run("b", 200_000)], 3, 0.0)
    # Two warm-up calls each, then one timing of each in turn (min_seconds 0: one call).
    assert calls == ["a", "a", "b", "b", "a", "b", "a", "b", "a", "b"]
    assert 0.0 < cheap < dear


def test_small_report_compares_each_row_with_the_copy_timed_beside_it(tmp_path):
    path = tmp_path / "report.json"
    report.main(
        [
            "--sizes", "2x1e3", "--impl", "copy,fastcov-cpu-out,naive", "--dtype", "float32",
            "--quick", "--repeat", "2", "--json", str(path), "--plot", str(tmp_path / "p.png"),
        ]
    )  # fmt: skip
    rows = {row["implementation"]: row for row in json.loads(path.read_text())["rows"]}
    assert list(rows) == ["copy", "fastcov-cpu-out", "naive"]
    assert rows["copy"]["x copy"] == 1.0
    assert rows["naive"]["x naive"] == 1.0
    for row in rows.values():
        assert (row["N"], row["S"], row["dtype"]) == (2, 1000, "float32")
        assert np.isfinite(row["x copy"]) and row["x copy"] > 0
        assert row["GB/s"] == 2 * 2 * 1000 * 4 / row["seconds"] / 1e9


def test_fastcov_rows_give_their_speed_up_over_jax(tmp_path, capsys):
    pytest.importorskip("jax")
    path = tmp_path / "report.json"
    report.main(
        [
            "--sizes", "2x1e3", "--impl", "fastcov-cpu-out,naive,jax-jit", "--quick",
            "--repeat", "2", "--json", str(path), "--plot", str(tmp_path / "p.png"),
        ]
    )  # fmt: skip
    rows = {row["implementation"]: row for row in json.loads(path.read_text())["rows"]}
    ratio = rows["jax-jit"]["seconds"] / rows["fastcov-cpu-out"]["seconds"]
    assert rows["fastcov-cpu-out"]["x jax-jit"] == pytest.approx(ratio, rel=1e-12)
    assert "x jax-jit" not in rows["naive"] and "x jax-jit" not in rows["jax-jit"]
    assert f"# x jax-jit (the same run's medians): fastcov-cpu-out {ratio:.1f}\n" in (
        capsys.readouterr().out
    )


def test_the_side_measurements_quoted_in_results_run():
    # bench/RESULTS.md's table of targets quotes these two as commands of their own.
    calls = measure.per_call(repeat=1, number=3)
    assert list(calls) == ["value_and_grad, out=", "value_and_grad", "entropy"]
    assert all(0.0 < microseconds < 1e6 for microseconds in calls.values())
    for dtype in (np.float64, np.float32):  # each case in a fresh process
        memory = measure.peak_memory(2, 10**6, dtype)
        assert memory["size of g"] == 2 * 10**6 * np.dtype(dtype).itemsize / 2**20
        # Into out= the kernels need a few MiB of scratch at most (the process's own noise
        # included); allocating, g itself as well (a float32 mu drawn as float64 and cast
        # once left a peak above g's, and float32's growth read 0).
        assert 0.0 <= memory["out="] < memory["size of g"] / 2
        assert memory["allocating"] > memory["size of g"] - 0.5


def test_sizes_are_parsed_or_refused_with_the_form_they_take():
    assert report._sizes("8x1e7,2X1e5,4x1000") == [(8, 10**7), (2, 10**5), (4, 1000)]
    for bad in ["8x", "axb", "0x10", "8x0", "8x1.5", "8xinf", "8xnan", "8", "8x1e7,"]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {bad.split(',')[-1]!r}"):
            report._sizes(bad)


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_in_no_folder_is_refused_before_the_run(option, tmp_path, capsys):
    missing = tmp_path / "missing" / "out"
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--sizes", "2x1e3", "--impl", "copy", option, str(missing)])
    assert exit_info.value.code == 2
    error = capsys.readouterr()
    assert f"cannot write {missing}: there is no folder {missing.parent}" in error.err
    assert "copy" not in error.out  # no measurement ran


def test_a_plot_format_matplotlib_cannot_write_is_refused_before_the_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "plot.npy"
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--sizes", "2x1e3", "--impl", "copy", "--plot", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr()
    assert f"cannot write a figure to {path}: matplotlib writes " in error.err
    assert "copy" not in error.out  # no measurement ran


def test_the_cuda_kernel_timing_says_in_a_line_why_it_cannot_run(capsys):
    if "cuda" in fastcov.available_backends():
        pytest.skip("the CUDA backend runs here")
    with pytest.raises(SystemExit) as exit_info:
        cuda_kernel.main(["--sizes", "8x1e3"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("python -m bench.cuda_kernel: the CUDA backend cannot run")
    assert "Traceback" not in error


def test_state_sweeps_are_timed_beside_a_read():
    times = measure.state_sweeps(3, 5000, np.float32, 2)
    assert list(times) == ["coverage", "state_weights", "entropy", "read"]
    assert all(np.isfinite(t) and t > 0 for t in times.values())


def test_policy_gradient_is_timed_beside_its_floor_and_the_materialising_way():
    times = measure.policy_gradient(3, 5000, (1, 9), 2)
    assert list(times) == [1, 9]
    for row in times.values():
        assert list(row) == ["fastcov", "read", "grad + einsum"]
        assert all(np.isfinite(t) and t > 0 for t in row.values())
