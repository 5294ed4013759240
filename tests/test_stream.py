"""Streaming stores: every element lands, rounded once, whatever the output's alignment."""

import sys

import numba
import numpy as np
import pytest

import fastcov
from fastcov import _config, _stream, cpu


@numba.njit
def _store_row(values, out):
    _stream.store(values, out)
    _stream.fence()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", range(16))
def test_store_is_an_ordinary_copy(dtype, offset):
    # Rows that start at every position within a cache line, lengths around whole lines.
    rng = np.random.default_rng(offset)
    for n in (0, 1, 7, 15, 16, 17, 33, 100, 1000):
        values = rng.normal(size=n) * 1e30
        memory = np.zeros(3 * (n + 20) + offset, dtype)
        out = memory[offset : offset + 3 * (n + 20)].reshape(3, n + 20)
        _store_row(values, out[1, 10 : 10 + n])
        expected = np.zeros_like(out)
        expected[1, 10 : 10 + n] = values.astype(dtype)
        np.testing.assert_array_equal(out, expected)  # nothing outside the row is touched


def _unaligned(shape, dtype):
    """A writeable array whose elements are not aligned to their size (2 bytes off)."""
    count = int(np.prod(shape))
    memory = bytearray(count * np.dtype(dtype).itemsize + 8)
    array = np.frombuffer(memory, dtype, count=count, offset=2).reshape(shape)
    assert not array.flags.aligned
    return array


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_store_into_unaligned_memory_is_an_ordinary_copy(dtype):
    # No element starts a line there: a streaming store would fault.
    values = np.random.default_rng(1).normal(size=100)
    out = _unaligned(values.shape, dtype)
    _store_row(values, out)
    np.testing.assert_array_equal(out, values.astype(dtype))


def test_streamed_gradient_into_an_unaligned_out(monkeypatch):
    mu = np.random.default_rng(2).uniform(0.0, 0.4, (9, 1000)).astype(np.float32)
    value, g = fastcov.value_and_grad(mu, backend="cpu")
    monkeypatch.setattr(_config, "STREAM_STORE_BYTES", 0)
    out = _unaligned(mu.shape, np.float32)
    streamed_value, same = fastcov.value_and_grad(mu, backend="cpu", out=out)
    assert same is out and streamed_value == value
    np.testing.assert_array_equal(out, g)


@pytest.mark.parametrize("n_agents", [9, 13, 16])  # N <= 8 writes g straight
def test_streamed_float32_gradient_is_the_cached_one(monkeypatch, n_agents):
    rng = np.random.default_rng(n_agents)
    mu = rng.uniform(0.0, 0.4, (n_agents, 20_011)).astype(np.float32)
    mu[0, :7] = [0.0, 1.0, 1e-30, 0.5, 0.25, 1e-8, 0.999]
    value, g = fastcov.value_and_grad(mu, backend="cpu")
    monkeypatch.setattr(_config, "STREAM_STORE_BYTES", 0)
    streamed = np.full_like(g, np.nan)
    streamed_value, same = fastcov.value_and_grad(mu, backend="cpu", out=streamed)
    assert same is streamed and streamed_value == value
    np.testing.assert_array_equal(streamed, g)
    np.testing.assert_allclose(g, fastcov.grad(mu, backend="numpy"), rtol=1e-5, atol=0)


@pytest.mark.parametrize("n_agents", [9, 16])
def test_streamed_float64_gradient_of_aliasing_rows_is_the_straight_one(monkeypatch, n_agents):
    # S = 4608 (a multiple of 512): the rows of a float64 g are a multiple of 4 KiB apart,
    # so the sweep computes g in its block and streams it out (cpu._float64_rows,
    # cpu._streams); with streaming off, the block is copied out ordinarily.
    rng = np.random.default_rng(n_agents)
    mu = rng.uniform(0.0, 0.4, (n_agents, 4608))
    mu[0, :7] = [0.0, 1.0, 1e-300, 0.5, 0.25, 1e-8, 0.999]
    value, g = fastcov.value_and_grad(mu, backend="cpu")
    assert g.strides[0] % cpu._ALIASING_BYTES == 0
    monkeypatch.setattr(_config, "STREAM_STORE_BYTES", 0)
    assert cpu._streams(g)
    streamed = np.full_like(g, np.nan)
    streamed_value, same = fastcov.value_and_grad(mu, backend="cpu", out=streamed)
    assert same is streamed and streamed_value == value
    np.testing.assert_array_equal(streamed, g)
    np.testing.assert_allclose(g, fastcov.grad(mu, backend="numpy"), rtol=1e-13, atol=0)


def _line_aligned(shape, dtype, offset=0):
    """An array whose first element lies ``offset`` elements past a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    memory = np.zeros(int(np.prod(shape)) + 2 * 64 // itemsize, dtype)
    start = (-memory.ctypes.data % 64) // itemsize + offset
    return memory[start : start + int(np.prod(shape))].reshape(shape)


def test_line_states_hand_worked():
    assert _stream.line_states(_line_aligned((3, 16), np.float64)) == 8  # rows of 128 bytes
    assert _stream.line_states(_line_aligned((3, 16), np.float32)) == 16  # rows of 64 bytes
    assert _stream.line_states(_line_aligned((3, 12), np.float64)) == 0  # rows of 96 bytes
    assert _stream.line_states(_unaligned((3, 16), np.float64)) == 0
    rows = _line_aligned((3, 16), np.float64, offset=2)
    assert [_stream.states_to_line(rows, column) for column in (0, 5, 6, 7)] == [6, 1, 0, 7]


@pytest.mark.parametrize("n_states", [37, 20_008, 20_011])  # one chunk; rows of whole lines; not
def test_tiled_and_streamed_gradient_is_the_straight_one(monkeypatch, n_states):
    n_agents = 8  # N = 7 takes this path too; fewer agents are never streamed
    rng = np.random.default_rng(n_states)
    mu = rng.uniform(0.0, 0.4, (n_agents, n_states))
    mu[0, :7] = [0.0, 1.0, 1e-300, 0.5, 0.25, 1e-8, 0.999]
    value, g = fastcov.value_and_grad(mu, backend="cpu")
    monkeypatch.setattr(_config, "STREAM_STORE_BYTES", 0)
    for offset in range(8):  # every place within a line; outside out, nothing is touched
        memory = _line_aligned((n_agents * n_states + 16,), np.float64, offset)
        memory[:] = -7.0
        out = memory[8:-8].reshape(mu.shape)
        assert cpu._streams(out)  # the path under test is taken, not silently skipped
        streamed_value, same = fastcov.value_and_grad(mu, backend="cpu", out=out)
        assert same is out and streamed_value == value
        np.testing.assert_array_equal(out, g)
        assert (memory[:8] == -7.0).all() and (memory[-8:] == -7.0).all()


@pytest.mark.parametrize("function", [fastcov.coverage, fastcov.state_weights])
@pytest.mark.parametrize("n_agents", [3, 12])  # one group, several groups
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_streamed_states_are_the_straight_ones(monkeypatch, function, n_agents, dtype):
    rng = np.random.default_rng(n_agents)
    n_states = 20_011  # several blocks, a last one not of whole lines
    mu = rng.uniform(0.0, 0.4, (n_agents, n_states)).astype(dtype)
    mu[0, :7] = [0.0, 1.0, 1e-30, 0.5, 0.25, 1e-8, 0.999]
    straight = function(mu, backend="cpu")
    monkeypatch.setattr(_config, "STREAM_STORE_BYTES", 0)
    for offset in (0, 1, 5):
        memory = _line_aligned((n_states + 32,), dtype, offset)
        memory[:] = -7.0
        out = memory[16:-16]
        assert cpu._streams_states(out)  # the path under test is taken
        assert function(mu, backend="cpu", out=out) is out
        np.testing.assert_array_equal(out, straight)
        assert (memory[:16] == -7.0).all() and (memory[-16:] == -7.0).all()
    unaligned = _unaligned((n_states,), dtype)
    function(mu, backend="cpu", out=unaligned)  # into a copy, then delivered
    np.testing.assert_array_equal(unaligned, straight)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="asks Linux's mincore")
def test_in_memory_tells_new_pages_from_written_ones():
    fresh = np.empty(8 << 20)  # 64 MiB: mapped for it alone, and not yet touched
    assert not _stream.in_memory(fresh)
    fresh[:] = 1.0
    assert _stream.in_memory(fresh)
    assert _stream.in_memory(np.empty(0))
