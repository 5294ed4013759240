"""Where a call's arrays live: telling device arrays apart, and the host's array handling.

:mod:`fastcov.api` runs every call through a memory object with the methods of
:class:`HostMemory`; the CUDA backend's ``fastcov.cuda.Memory`` has the same methods for
device arrays. Nothing here imports ``numba.cuda``.
"""

import numpy as np


def is_device_array(x):
    """True for anything with ``__cuda_array_interface__`` and for numba's device arrays.

    numba's own device arrays under the CUDA simulator carry no interface, but their type
    lives in ``numba.cuda``; asking by module name keeps ``numba.cuda`` unimported.
    """
    return not isinstance(x, np.ndarray) and (
        hasattr(x, "__cuda_array_interface__") or type(x).__module__.startswith("numba.cuda.")
    )


class HostMemory:
    """Array handling of one call on the host: NumPy arrays in and out."""

    stream = None

    def asarray(self, x):
        """``x`` as a NumPy array; a device array here is a TypeError."""
        if is_device_array(x):
            raise TypeError("mu is a NumPy array but another input is a device array")
        return np.asarray(x)

    def contiguous(self, array, dtype, shape):
        """A C-contiguous array of ``dtype`` holding ``array``, reshaped to ``shape``."""
        return _shaped(np.ascontiguousarray(array, dtype=dtype), shape)

    def empty(self, shape, dtype):
        """An uninitialised array."""
        return np.empty(shape, dtype)

    def result(self, buffer, shape):
        """``buffer`` as the caller receives it."""
        return _shaped(buffer, shape)

    def as_out(self, out):
        """``out`` itself, once it is known to be a writeable NumPy array."""
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array, not {type(out).__name__}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        return out

    def writes_directly(self, out, inputs):
        """True when the kernel may write into ``out`` itself (contiguous, its elements
        aligned to their size, no overlap with an input).
        """
        flags = out.flags  # a new object at each access
        return (
            flags.c_contiguous
            and flags.aligned
            and not any(np.may_share_memory(out, x) for x in inputs if x is not None)
        )

    def reshape(self, out, shape):
        """``out`` viewed as ``shape`` (it is C-contiguous)."""
        return _shaped(out, shape)

    def deliver(self, out, buffer):
        """Copy a finished ``buffer`` into ``out``."""
        np.copyto(out, buffer.reshape(out.shape))


def _shaped(array, shape):
    """``array`` viewed as ``shape`` (a tuple): itself where it has that shape already,
    as (N, S) inputs and outputs do (a reshape took 0.4 us of a 14 us small call).
    """
    return array if array.shape == shape else array.reshape(shape)
