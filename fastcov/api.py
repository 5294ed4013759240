"""The public functions: validation, shape handling and dispatch to a backend.

Every function takes ``mu`` of shape (N, *state_shape) -- agents first, then any number of
state axes -- and returns results with the state shape. NumPy arrays of any real dtype are
accepted: float32 stays float32, every other real dtype becomes float64. Backends see a
C-contiguous (N, S) view and write into caller-shaped outputs; they never allocate g.
"""

import functools
import importlib
import math
import numbers

import numpy as np

from ._errors import InvalidValues
from ._memory import HostMemory, is_device_array

__all__ = [
    "coverage",
    "entropy",
    "state_weights",
    "grad",
    "value_and_grad",
    "policy_gradient",
    "available_backends",
]

BACKENDS = ("auto", "cpu", "cuda", "numpy")


def coverage(mu, *, out=None, backend="auto", check=True, stream=None):
    """Team coverage mu(s) = 1 - prod_j (1 - mu_j(s)).

    Parameters
    ----------
    mu : array_like or CUDA array, shape (N, *state_shape)
        Per-agent coverage probabilities in [0, 1], agents first. Any real dtype: float32
        stays float32, others become float64. Non-contiguous input is copied once. A
        CUDA array (anything with ``__cuda_array_interface__``: numba device arrays, CuPy
        arrays, PyTorch CUDA tensors) is read in place when it is C-contiguous float32 or
        float64, and gives a numba device array result (``cupy.asarray(r)`` and
        ``torch.as_tensor(r, device="cuda")`` view it without a copy).
    out : ndarray or CUDA array, shape state_shape, optional
        Array to write the result into; must have the result dtype exactly. On the CUDA
        backend it lives where the result would (device for device input, else host), and
        a device ``out`` must be C-contiguous.
    backend : {"auto", "cpu", "numpy", "cuda"}
        "auto" picks "cuda" for CUDA arrays and "cpu" for everything else. "numpy" is the
        readable reference. "cuda" with NumPy input copies it to the device and returns
        NumPy results.
    check : bool
        Verify every value lies in [0, 1] (fused into the kernel: no extra pass). On the
        CUDA backend the check makes the call wait for the device; with ``check=False``
        :func:`coverage` and :func:`state_weights` return as soon as the work is queued
        on ``stream`` (functions returning J always wait for it).
    stream : None, numba stream, int handle, PyTorch or CuPy stream
        CUDA backend only: the stream the work goes on (None: the default stream).

    Returns
    -------
    ndarray, shape state_shape
        mu(s), with full relative accuracy even where every mu_j(s) is tiny (no 1 - prod
        cancellation). ``out`` itself when given. N = 0 gives zeros.

    Raises
    ------
    ValueError
        A NaN, an infinity or a value outside [0, 1] (the message names the first bad
        agent, state and value), ``mu`` with no axis, or an ``out`` of the wrong shape or
        dtype. If raised, the contents of ``out`` are unspecified.
    TypeError
        Complex, object, string or other non-real ``mu``; a masked array (its mask
        would be lost); a device array with a host backend; a ``check`` that is not a
        bool.
    RuntimeError
        ``backend="cuda"`` where it cannot run; the message says why (numba-cuda not
        installed, no driver, no GPU).
    """
    check = _check_flag(check)
    call = _Call(mu, backend, stream)
    return call.finish_states(
        out, lambda kernel_out: call.kernel("coverage")(call.mu, kernel_out, check)
    )


def entropy(mu, *, backend="auto", check=True, stream=None):
    """Coverage entropy J = sum_s -mu(s) log mu(s), with 0 log 0 = 0 (natural log).

    Parameters
    ----------
    mu : array_like or CUDA array, shape (N, *state_shape)
        As for :func:`coverage`.
    backend, check, stream
        As for :func:`coverage`.

    Returns
    -------
    float
        J, summed blockwise and exactly across blocks (relative error <= 1e-12 at 1e8
        states), accumulated in float64 for float32 input too; bit-identical on every
        call with the same input and backend, whatever the thread count. 0 when S = 0 or
        N = 0.

    Raises
    ------
    ValueError, TypeError
        As for :func:`coverage`.
    """
    check = _check_flag(check)
    call = _Call(mu, backend, stream)
    return call.run(lambda: call.kernel("entropy")(call.mu, check))


def state_weights(mu, eps=0.0, *, out=None, backend="auto", check=True, stream=None):
    """State weight c(s) = (log mu(s) + 1)(1 - mu(s)) of Theorem 1, the same for every agent.

    Theorem 1: grad_{theta_i} J = sum_s c(s) grad_{theta_i} log(1 - mu_i(s)). Hence, with c
    held constant (no gradient through it), the surrogate

        L_i = sum_s c(s) log(1 - mu_i(s))

    has grad_{theta_i} L_i = grad_{theta_i} J. For example, in PyTorch, with ``mu_model``
    the (N, *state_shape) float64 tensor of the agents' mu computed from their parameters::

        c = torch.as_tensor(fastcov.state_weights(mu_model.detach().numpy(), eps=1e-12))
        loss = -(c * torch.log1p(-mu_model)).sum()   # ascend J by descending -L
        loss.backward()

    Parameters
    ----------
    mu : array_like, shape (N, *state_shape)
        As for :func:`coverage`.
    eps : float in [0, 1]
        A Python or NumPy real number, or a 0-d array of one (a bool is refused).
        Clamp mu(s) from below to ``eps`` inside the logarithm (only there: 1 - mu(s) is
        not clamped). With ``eps = 0`` a state no agent covers has c(s) = -inf, the true
        limit; ``eps > 0`` keeps it finite.
    out, backend, check, stream
        As for :func:`coverage`.

    Returns
    -------
    ndarray, shape state_shape
        c(s). 1 - mu(s) enters as the product prod_j (1 - mu_j(s)) itself and log mu(s) as
        log1p(-prod) where mu(s) > 1/2, so both keep full precision. Where some
        mu_i(s) = 1, c(s) = 0.

    Raises
    ------
    ValueError, TypeError
        As for :func:`coverage`; ValueError also for ``eps`` outside [0, 1] or NaN.
    """
    eps, check = _check_eps(eps), _check_flag(check)
    call = _Call(mu, backend, stream)
    return call.finish_states(
        out, lambda kernel_out: call.kernel("state_weights")(call.mu, eps, kernel_out, check)
    )


def grad(mu, eps=0.0, *, out=None, backend="auto", check=True, stream=None):
    """Per-agent coefficients g_i(s) = dJ/dmu_i(s) = -(log mu(s) + 1) prod_{j != i} (1 - mu_j(s)).

    With them, grad_{theta_i} J = sum_s g_i(s) grad_{theta_i} mu_i(s) for any model of mu_i.

    Parameters
    ----------
    mu : array_like, shape (N, *state_shape)
        As for :func:`coverage`.
    eps : float in [0, 1]
        A Python or NumPy real number, or a 0-d array of one (a bool is refused).
        Clamp mu(s) from below to ``eps`` inside the logarithm. With ``eps = 0`` a state no
        agent covers has g_i(s) = +inf for every i (the true derivative).
    out : ndarray, shape (N, *state_shape), optional
        Array to write g into, of the result dtype. It may be ``mu`` itself (the input is
        then read before it is overwritten).
    backend, check, stream
        As for :func:`coverage`.

    Returns
    -------
    ndarray, shape (N, *state_shape)
        g. The leave-one-out product is computed as prefix x suffix products, never as a
        division by 1 - mu_i(s): where mu_i(s) = 1, g_i(s) = -prod_{j != i} (1 - mu_j(s))
        exactly and every other agent's g_j(s) = 0.

    Raises
    ------
    ValueError, TypeError
        As for :func:`state_weights`.
    """
    return value_and_grad(mu, eps, out=out, backend=backend, check=check, stream=stream)[1]


def value_and_grad(mu, eps=0.0, *, out=None, backend="auto", check=True, stream=None):
    """J and g in one pass over ``mu``: ``(entropy(mu), grad(mu, eps))``.

    ``eps`` clamps the logarithm of the gradient only; J is always the unclamped entropy.
    Parameters, results and errors are those of :func:`entropy` and :func:`grad`.

    Returns
    -------
    (float, ndarray of shape (N, *state_shape))
    """
    eps, check = _check_eps(eps), _check_flag(check)
    call = _Call(mu, backend, stream)
    gradient, value = call.finish(
        out,
        call.mu.shape,
        (call.mu.shape[0], *call.shape),
        call.dtype,
        lambda kernel_out: call.kernel("value_and_grad")(call.mu, eps, kernel_out, check),
    )
    return value, gradient


def policy_gradient(mu, dmu, *, eps=0.0, out=None, backend="auto", check=True, stream=None):
    """Policy gradient sum_s g_i(s) dmu[i, s, p] for models with few parameters per agent.

    g is never materialised: each block of states is contracted with ``dmu`` as soon as
    its g is known, so the extra memory is O(N x P) per chunk, not O(N x S).

    Parameters
    ----------
    mu : array_like, shape (N, *state_shape)
        As for :func:`coverage`.
    dmu : array_like, shape (N, S, P)
        Dense Jacobian dmu_i(s) / dtheta_i[p], state axes flattened in C order
        (``jac.reshape(N, -1, P)``). Real dtype; must be finite when ``check``.
    eps : float in [0, 1]
        A Python or NumPy real number, or a 0-d array of one (a bool is refused).
        As for :func:`grad`. Pass ``eps > 0`` when some state may be uncovered: there
        g = +inf, and inf x 0 in the contraction would give NaN.
    out : ndarray, shape (N, P), optional
        Of the result dtype: float32 when both inputs are float32, else float64.
    backend, check, stream
        As for :func:`coverage`.

    Returns
    -------
    ndarray, shape (N, P)
        Row i is grad_{theta_i} J. Accumulated in float64; chunk partial sums are merged
        in a fixed order, so the result is bit-identical across thread counts.

    Raises
    ------
    ValueError
        As for :func:`grad`, and for a ``dmu`` of the wrong shape or, when ``check``, with
        a NaN or infinity (the message names its position).
    TypeError
        Non-real or masked ``mu`` or ``dmu``; a ``check`` that is not a bool.

    Notes
    -----
    On the CPU, up to 32 parameters per agent are summed 8 states at a time in SIMD
    registers; with more, state by state, which keeps up less well with memory (N = 8,
    S = 2e5 on 2 cores: P = 32 took 16-18 ms, P = 33 20-21 ms).
    """
    eps, check = _check_eps(eps), _check_flag(check)
    call = _Call(mu, backend, stream, jacobian=dmu)
    jacobian = call.jacobian
    n_agents, n_states = call.mu.shape
    if jacobian.ndim != 3 or jacobian.shape[:2] != (n_agents, n_states):
        raise ValueError(
            f"dmu has shape {jacobian.shape}; expected (N, S, P) = ({n_agents}, {n_states}, P) "
            f"for mu of shape {(n_agents, *call.shape)} (flatten the state axes: "
            "dmu.reshape(N, -1, P))"
        )
    call.dmu = call.memory.contiguous(jacobian, call.dtype, jacobian.shape)
    shape = (n_agents, jacobian.shape[2])
    return call.finish(
        out,
        shape,
        shape,
        call.dtype,
        lambda kernel_out: call.kernel("policy_gradient")(
            call.mu, call.dmu, eps, kernel_out, check
        ),
    )[0]


def available_backends():
    """Names of the backends that can run here, in preference order (e.g. ``["cpu", "numpy"]``)."""
    names = []
    for name in ("cuda", "cpu", "numpy"):
        try:
            _backend_module(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------


class _Call:
    """One public call: the canonical (N, S) input, its state shape, the backend and where
    its arrays live (``memory``: the host, or the device for the CUDA backend).
    """

    def __init__(self, mu, backend, stream=None, jacobian=None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        on_device = is_device_array(mu)
        if stream is not None and not (backend == "cuda" or (backend == "auto" and on_device)):
            chose = " (for a NumPy mu, 'auto' is the CPU)" if backend == "auto" else ""
            raise ValueError(
                f"stream= applies to the CUDA backend only, not backend={backend!r}{chose}"
            )
        if backend == "auto":
            backend = "cuda" if on_device else "cpu"
        if backend != "cuda" and on_device:
            raise TypeError(
                f"mu is a device array; backend={backend!r} needs a NumPy array "
                "(use backend='cuda' or 'auto', or copy it to the host)"
            )
        self.module = _backend_module(backend)
        self.memory = self.module.Memory(mu, stream) if backend == "cuda" else HostMemory()
        self.stream_args = {"stream": self.memory.stream} if backend == "cuda" else {}
        array = _real_array(self.memory, mu, "mu")
        if array.ndim == 0:
            raise ValueError("mu must have shape (N, *state_shape), agents first; got a scalar")
        self.jacobian = None if jacobian is None else _real_array(self.memory, jacobian, "dmu")
        # .type, not the dtype: a big-endian float32 is float32 too.
        float32 = array.dtype.type is np.float32 and (
            self.jacobian is None or self.jacobian.dtype.type is np.float32
        )
        self.dtype = np.float32 if float32 else np.float64
        self.shape = tuple(array.shape[1:])
        self.mu = self.memory.contiguous(array, self.dtype, (array.shape[0], math.prod(self.shape)))
        self.dmu = None
        if backend == "cpu" and not self.mu.shape[0]:
            # No agents, no work per agent: the reference answers. The kernels would compile
            # their loops for a group of no agents, for this case alone (some 50 s a dtype).
            self.module = _backend_module("numpy")

    def kernel(self, name):
        """The backend's entry point ``name``, bound to this call's stream on CUDA."""
        return functools.partial(getattr(self.module, name), **self.stream_args)

    def run(self, kernel):
        """Run ``kernel()``, turning a backend's InvalidValues into a located ValueError."""
        try:
            return kernel()
        except InvalidValues as error:
            raise ValueError(self._locate(error)) from None

    def finish_states(self, out, kernel):
        """Run ``kernel(buffer)`` that writes a per-state result; return it as state_shape."""
        return self.finish(out, (self.mu.shape[1],), self.shape, self.dtype, kernel)[0]

    def finish(self, out, kernel_shape, shape, dtype, kernel):
        """Run ``kernel(buffer)`` writing a ``kernel_shape`` result; return the result as
        ``shape`` and the kernel's own return value.

        The buffer is ``out`` itself when it is C-contiguous, lives where the kernel writes
        and shares no memory with the inputs; otherwise a temporary, copied into ``out``
        after the kernel succeeds (so an in-place call such as ``grad(mu, out=mu)`` reads
        mu before overwriting it).
        """
        memory = self.memory
        if out is None:
            buffer = memory.empty(kernel_shape, dtype)
            value = self.run(lambda: kernel(buffer))
            return memory.result(buffer, shape), value
        target = memory.as_out(out)
        _check_out(target, shape, dtype)
        direct = memory.writes_directly(target, (self.mu, self.dmu))
        buffer = (
            memory.reshape(target, kernel_shape) if direct else memory.empty(kernel_shape, dtype)
        )
        value = self.run(lambda: kernel(buffer))
        if not direct:
            memory.deliver(target, buffer)
        return out, value

    def _locate(self, error):
        """The message for the first bad value, in C order, of ``mu`` or ``dmu``."""
        array = self.mu if error.array == "mu" else self.dmu
        index, value = error.index, error.value
        if index is None:  # a host backend: find it here
            bad = ~((array >= 0.0) & (array <= 1.0)) if error.array == "mu" else ~np.isfinite(array)
            index = int(np.argmax(bad))
            value = float(array.reshape(-1)[index])
        if error.array == "mu":
            agent, state = np.unravel_index(index, array.shape)
            position = np.unravel_index(state, self.shape) if self.shape else ()
            position = tuple(int(k) for k in position)
            where = ", ".join(str(k) for k in (agent, *position))
            # A state of a 1-D state space is its index; of a grid, its tuple of indices.
            state = position[0] if len(position) == 1 else position
            return (
                f"mu[{where}] = {value!r} is not a probability in [0, 1] "
                f"(agent {agent}, state {state})"
            )
        agent, state, parameter = np.unravel_index(index, array.shape)
        return (
            f"dmu[{agent}, {state}, {parameter}] = {value!r} is not finite "
            f"(agent {agent}, state {state}, parameter {parameter})"
        )


def _backend_module(name):
    module = _imported(_BACKEND_MODULES[name])
    if name == "cuda":
        module.require()
    return module


_BACKEND_MODULES = {"cpu": ".cpu", "cuda": ".cuda", "numpy": ".reference"}


@functools.cache
def _imported(module):
    """importlib.import_module of a module of this package, remembered (its lookup took
    0.4 us a call, this 0.06). Relative, so that a copy of the package under another
    name runs its own backends, not those of an installed ``fastcov``.
    """
    return importlib.import_module(module, __package__)


def _real_array(memory, x, name):
    """``x`` as an array where ``memory`` keeps it (NumPy or device), after checking that it
    holds real numbers.
    """
    return _require_real(memory.asarray(_unmasked(x, name)), name)


def _require_real(array, name):
    """``array`` itself, once its dtype is known to hold real numbers."""
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float); got dtype {array.dtype}"
        )
    return array


def _unmasked(x, name):
    """``x``, unless it is a masked array: NumPy's conversion would drop the mask, and the
    masked values would count as data.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array, whose mask fastcov would ignore: pass "
            f"{name}.filled(value) or {name}.data"
        )
    return x


def _check_eps(eps):
    # A float skips the ABC's isinstance, which takes longer than the rest.
    if type(eps) is not float:
        # A 0-d array of a real dtype is a number too, as it is to NumPy.
        zero_d = isinstance(eps, np.ndarray) and eps.ndim == 0 and eps.dtype.kind in "fiu"
        if not (zero_d or isinstance(eps, numbers.Real)) or isinstance(eps, bool):
            raise TypeError(f"eps must be a real number, not {type(eps).__name__}")
        eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1]; got {eps!r}")
    return eps


def _check_flag(check):
    """``check`` as a bool: True or False, NumPy's included. Anything else is a TypeError
    (a truthy string would otherwise pass, and another type compile new kernels).
    """
    if type(check) is not bool:
        if not isinstance(check, np.bool_):
            raise TypeError(f"check must be True or False, not {type(check).__name__}")
        check = bool(check)
    return check


def _check_out(out, shape, dtype):
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype}; expected {np.dtype(dtype)}")
