"""The CUDA backend's own surface: device arrays in and out, out=, streams, conversions.

Marked ``cuda``: these run in the simulator pass of .ci/run (NUMBA_ENABLE_CUDASIM=1) and on
a machine with a GPU; elsewhere they skip. The numerical matrix (accuracy, hand-worked
cases, errors) runs against backend="cuda" through the ``backend`` fixture in that pass.
"""

import math

import numpy as np
import pytest
from conftest import SIMULATOR, hard_inputs
from exact import exact, weight_factor
from tolerance import assert_close

import fastcov

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cuda():
    if "cuda" not in fastcov.available_backends():
        pytest.skip("the CUDA backend cannot run here (no GPU and not the simulator run)")
    from numba import cuda

    return cuda


def _host(array):
    return array.copy_to_host()


def test_device_input_gives_device_results(cuda, dtype):
    mu = hard_inputs(5, 70, seed=3, dtype=dtype).reshape(5, 7, 10)
    value, coverage, weights, grads = exact(mu.reshape(5, 70), 1e-12)
    device = cuda.to_device(mu)
    m = fastcov.coverage(device)
    c = fastcov.state_weights(device, 1e-12)
    J, g = fastcov.value_and_grad(device, 1e-12)
    for result, shape in ((m, (7, 10)), (c, (7, 10)), (g, (5, 7, 10))):
        assert cuda.devicearray.is_cuda_ndarray(result) and result.shape == shape
        assert result.dtype == dtype
    factor = weight_factor(mu.reshape(5, 70), 1e-12)
    assert_close(_host(m).ravel(), coverage, dtype, "coverage")
    assert_close(_host(c).ravel(), weights, dtype, "weights", 5, factor)
    assert_close(_host(g).reshape(5, 70), np.array(grads).reshape(5, 70), dtype, "grad", 5, factor)
    assert_close(J, value, dtype, "entropy")
    assert J == fastcov.entropy(device)  # same sweep, same order


@pytest.mark.parametrize("n_agents", [1, 8, 16, 17])
def test_unrolled_sweep_matches_the_general_one_and_the_exact_values(
    cuda, monkeypatch, n_agents, dtype
):
    from fastcov import _config

    mu = hard_inputs(n_agents, 700, seed=n_agents, dtype=dtype)
    value, _, _, grads = exact(mu, 1e-12)
    factor = weight_factor(mu, 1e-12)
    J, g = fastcov.value_and_grad(mu, 1e-12, backend="cuda")
    monkeypatch.setattr(_config, "CUDA_UNROLLED_AGENTS", 0)  # every count: the general kernel
    J_general, g_general = fastcov.value_and_grad(mu, 1e-12, backend="cuda")
    assert J == J_general  # the same float64 arithmetic in the same order
    if dtype == np.float64:
        np.testing.assert_array_equal(g, g_general)
    # float32: the general kernel rounds each prefix product to float32 (it is kept in g)
    for result in (g, g_general):
        assert_close(result, np.array(grads).reshape(mu.shape), dtype, "grad", n_agents, factor)
    assert_close(J, value, dtype, "entropy")


def test_entropy_is_bit_identical_across_calls_and_matches_fsum(cuda):
    mu = hard_inputs(3, 301, seed=11)
    device = cuda.to_device(mu)
    values = {fastcov.entropy(device) for _ in range(3)}
    assert len(values) == 1
    value, _, _, _ = exact(mu)
    assert abs(values.pop() - float(value)) <= 1e-12 * abs(float(value))


def test_more_block_partials_than_threads_are_all_summed(cuda, monkeypatch):
    # The last kernel sums the sweep's partials with one block, each thread striding over
    # them; with more partials than threads (on a GPU: 8192 blocks, 256 threads), a
    # thread takes several. The simulator run's tiny grid has fewer, so this one has more.
    from fastcov import _config

    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(_config, "CUDA_MAX_BLOCKS", 11)  # 11 partials for 4 threads
    mu = hard_inputs(3, 301, seed=12)
    value, _, _, _ = exact(mu)
    J = fastcov.entropy(mu, backend="cuda")
    assert abs(J - float(value)) <= 1e-12 * abs(float(value))


def test_device_out_is_filled_and_returned(cuda, dtype):
    mu = cuda.to_device(np.random.default_rng(0).random((3, 4, 5)).astype(dtype))
    out = cuda.device_array((3, 4, 5), dtype)
    J, g = fastcov.value_and_grad(mu, out=out)
    assert g is out
    np.testing.assert_array_equal(_host(out), _host(fastcov.grad(mu)))
    states = cuda.device_array((4, 5), dtype)
    assert fastcov.coverage(mu, out=states) is states
    # the same kernel on host input (the CPU's rounding differs: no FMA contraction)
    np.testing.assert_array_equal(_host(states), fastcov.coverage(_host(mu), backend="cuda"))


def test_device_out_may_alias_the_input(cuda):
    host = np.random.default_rng(1).random((3, 40))
    mu = cuda.to_device(host)
    assert fastcov.grad(mu, out=mu) is mu
    np.testing.assert_allclose(_host(mu), fastcov.grad(host), rtol=1e-14)


@pytest.mark.parametrize(
    "out, error, message",
    [
        (lambda cuda: cuda.device_array((3, 5)), ValueError, "shape"),
        (lambda cuda: cuda.device_array((2, 3, 4), np.float32), ValueError, "dtype"),
        (lambda cuda: cuda.device_array((2, 3, 8))[:, :, ::2], ValueError, "C-contiguous"),
        (lambda cuda: np.empty((2, 3, 4)), TypeError, "device array"),
    ],
    ids=["shape", "dtype", "strided", "host"],
)
def test_wrong_device_out_is_rejected(cuda, out, error, message):
    mu = cuda.to_device(np.full((2, 3, 4), 0.5))
    with pytest.raises(error, match=message):
        fastcov.grad(mu, out=out(cuda))


def test_other_dtypes_and_layouts_are_converted(cuda):
    host = np.random.default_rng(2).random((4, 30))
    strided = cuda.to_device(np.ascontiguousarray(np.repeat(host, 2, axis=1)))[:, ::2]
    np.testing.assert_array_equal(_host(fastcov.grad(strided)), fastcov.grad(host, backend="cuda"))
    integers = (host > 0.5).astype(np.int32)
    np.testing.assert_array_equal(
        _host(fastcov.coverage(cuda.to_device(integers))), fastcov.coverage(integers)
    )
    assert fastcov.coverage(cuda.to_device(integers)).dtype == np.float64


def test_numpy_input_on_cuda_gives_numpy_results(cuda, dtype):
    mu = hard_inputs(4, 50, seed=5, dtype=dtype)
    g = fastcov.grad(mu, 1e-9, backend="cuda")
    assert isinstance(g, np.ndarray) and g.dtype == dtype
    assert_close(
        g, fastcov.grad(mu, 1e-9, backend="numpy"), dtype, "grad", 4, weight_factor(mu, 1e-9)
    )


def test_stream_is_used_and_check_false_is_asynchronous(cuda):
    host = np.random.default_rng(4).random((3, 64))
    stream = cuda.stream()
    mu = cuda.to_device(host, stream=stream)
    g = fastcov.grad(mu, stream=stream, check=False)
    c = fastcov.state_weights(mu, stream=stream, check=False)
    stream.synchronize()
    np.testing.assert_array_equal(_host(g), fastcov.grad(host, backend="cuda"))
    np.testing.assert_array_equal(_host(c), fastcov.state_weights(host, backend="cuda"))
    assert fastcov.entropy(mu, stream=stream) == fastcov.entropy(host, backend="cuda")
    J, _ = fastcov.value_and_grad(mu, stream=stream, check=False)
    assert J == fastcov.entropy(host, backend="cuda")


def test_policy_gradient_on_the_device_over_several_chunks(cuda, monkeypatch):
    from fastcov import cuda as backend

    monkeypatch.setattr(backend, "_MAX_GRID_Y", 4)  # 6 (agent, parameter) rows: 2 launches
    rng = np.random.default_rng(6)
    mu = hard_inputs(3, 300, seed=6)  # more states than a simulator chunk (128)
    dmu = rng.standard_normal((3, 300, 2))
    expected = fastcov.policy_gradient(mu, dmu, eps=1e-9, backend="numpy")
    result = fastcov.policy_gradient(cuda.to_device(mu), cuda.to_device(dmu), eps=1e-9)
    assert cuda.devicearray.is_cuda_ndarray(result)
    scale = np.abs(fastcov.grad(mu, 1e-9)[:, :, None] * dmu).sum(axis=1)
    assert np.all(np.abs(_host(result) - expected) <= 1e-13 * scale)
    again = fastcov.policy_gradient(cuda.to_device(mu), cuda.to_device(dmu), eps=1e-9)
    np.testing.assert_array_equal(_host(again), _host(result))


def test_device_errors_name_the_first_bad_position(cuda):
    mu = np.full((3, 2, 5), 0.5)
    mu[1, 1, 2] = math.nan
    mu[2, 0, 0] = 3.0
    with pytest.raises(ValueError, match=r"mu\[1, 1, 2\] = nan .*agent 1, state \(1, 2\)"):
        fastcov.value_and_grad(cuda.to_device(mu))
    dmu = np.ones((2, 4, 3))
    dmu[1, 3, 1] = math.inf
    with pytest.raises(ValueError, match=r"dmu\[1, 3, 1\] = inf"):
        fastcov.policy_gradient(cuda.to_device(np.full((2, 4), 0.5)), cuda.to_device(dmu))


def test_mixed_host_and_device_inputs_are_rejected(cuda):
    mu = cuda.to_device(np.full((2, 4), 0.5))
    with pytest.raises(TypeError, match="device"):
        fastcov.policy_gradient(mu, np.ones((2, 4, 1)))
    with pytest.raises(TypeError, match="device"):
        fastcov.policy_gradient(
            np.full((2, 4), 0.5), cuda.to_device(np.ones((2, 4, 1))), backend="cuda"
        )
    with pytest.raises(TypeError, match="backend='cpu'"):
        fastcov.entropy(mu, backend="cpu")
    with pytest.raises(ValueError, match="stream"):
        fastcov.entropy(np.full((2, 4), 0.5), backend="cpu", stream=0)


@pytest.mark.gpu
@pytest.mark.skipif(SIMULATOR, reason="PyTorch tensors need a real GPU")
def test_torch_cuda_tensors_zero_copy(cuda):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no GPU")
    mu = torch.rand(4, 1000, device="cuda", dtype=torch.float64)
    out = torch.empty_like(mu)
    J, g = fastcov.value_and_grad(mu, out=out, stream=torch.cuda.current_stream())
    assert g is out
    J_host, g_host = fastcov.value_and_grad(mu.cpu().numpy())
    assert abs(J - J_host) <= 1e-12 * abs(J_host)
    np.testing.assert_allclose(out.cpu().numpy(), g_host, rtol=1e-12)
    view = torch.as_tensor(fastcov.coverage(mu), device="cuda")
    np.testing.assert_allclose(view.cpu().numpy(), fastcov.coverage(mu.cpu().numpy()), rtol=1e-14)
