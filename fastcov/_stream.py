"""Streaming stores: writing a large output without reading it first.

An ordinary store brings the cache line it writes into the cache first (a read for
ownership), so a kernel that reads mu and writes g with ordinary stores moves g's bytes
twice. A non-temporal store writes whole 64-byte lines straight to memory. The CPU
kernels use it three times:

- a float32 g of more than 8 agents is computed in a float64 block in cache and its
  rows rounded out with :func:`store`;
- a float64 g of at most 8 agents (``cpu._STREAM_MIN_AGENTS`` or more) is computed
  64 states at a time into a tile on the stack, whose whole lines :func:`store_lines`
  writes out, one 64-byte store each;
- mu(s) and c(s) go out of a float64 row in cache with :func:`store`.

Each store must be one whole line: stores of half a line each were slower than ordinary
ones (bench/RESULTS.md).

Streamed lines are not in the cache afterwards, so this pays only for outputs larger
than the caches (``_config.STREAM_STORE_BYTES``). They are also weakly ordered: a thread
calls :func:`fence` after its last streaming store, before the caller may read them.
"""

import ctypes
import mmap

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ._jit import jit

__all__ = ["fence", "in_memory", "line_states", "states_to_line", "store", "store_lines"]

#: Bytes of one cache line: each streaming store writes one whole line.
LINE_BYTES = 64


def in_memory(array):
    """Whether the pages that hold ``array``'s first and last bytes are in memory (asked
    with ``mincore``; True where the C library has none, or for an empty array).

    Streaming pays only into memory already in place. The first store into a page never
    touched faults it in, and the kernel zeroes the page through the cache, where an
    ordinary store then finds its lines and a streaming store must evict them: into a new
    g (N = 8, S = 1e7 float64, 2 cores) streaming took 104-112 ms against about 80 ms.
    """
    if _MINCORE is None or array.nbytes == 0:
        return True
    status = ctypes.c_ubyte()
    for address in (array.ctypes.data, array.ctypes.data + array.nbytes - 1):
        page = address - address % mmap.PAGESIZE
        if _MINCORE(page, mmap.PAGESIZE, ctypes.byref(status)) != 0:
            return True  # not a mapping mincore knows: no reason to hold back
        if not status.value & 1:
            return False
    return True


@jit
def store(values, out):
    """out[:] = values with streaming stores (out's dtype, rounded once where float32).

    ``values`` is a 1-D float64 array, ``out`` a 1-D contiguous float64 or float32 array
    of the same length. Elements before out's first 64-byte boundary, and after its last
    whole line, are stored ordinarily; so is all of an ``out`` whose elements are not
    aligned to their size (none of them would start a line).
    """
    n = values.size
    per_line = LINE_BYTES // out.itemsize
    aligned = out.ctypes.data % out.itemsize == 0
    head = min(n, states_to_line(out, 0)) if aligned else n
    for k in range(head):
        out[k] = values[k]
    tail = head + (n - head) // per_line * per_line
    for k in range(head, tail, per_line):
        _store_line(out, k, values, k)
    for k in range(tail, n):
        out[k] = values[k]


@jit
def line_states(rows):
    """States in a 64-byte line of ``rows`` (a 2-D C-contiguous float32 or float64 array)
    where all its rows start at the same place within a line (the row stride is whole
    lines, the data aligned to its items), so that a run of states starting a line in one
    row starts a line in every row; else 0.
    """
    if rows.ctypes.data % rows.itemsize or rows.strides[0] % LINE_BYTES:
        return 0
    return LINE_BYTES // rows.itemsize


@jit
def states_to_line(rows, column):
    """States from ``column`` to the first line boundary at or after it in the rows of a
    :func:`line_states` array, or in a 1-D array aligned to its items (0 to one line less
    one).
    """
    offset = (rows.ctypes.data + column * rows.itemsize) % LINE_BYTES
    return (LINE_BYTES - offset) % LINE_BYTES // rows.itemsize


@jit
def store_lines(tile, rows, column):
    """rows[:, column : column + W] = tile, W = tile.shape[1], with streaming stores.

    ``tile`` has rows' dtype (or is float64, rounded once into float32 rows); ``rows`` is
    a :func:`line_states` array whose ``column`` starts a line, W a whole number of lines.
    """
    per_line = LINE_BYTES // rows.itemsize
    for i in range(tile.shape[0]):
        out, values = rows[i], tile[i]
        for k in range(0, tile.shape[1], per_line):
            _store_line(out, column + k, values, k)


@intrinsic
def fence(typingctx):
    """Order this thread's streaming stores before its later stores and loads (a full
    memory fence: ``mfence`` on x86, which streaming stores respect).
    """

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _store_line(typingctx, out, i, values, j):
    """out[i : i + L] = values[j : j + L], L = one line of out's dtype, streamed.

    out[i] must start a 64-byte line; float64 values are rounded to out's dtype.
    """
    floats = (types.float32, types.float64)
    if not (_is_row(out, floats) and _is_row(values, (out.dtype, types.float64))):
        return None
    lanes = LINE_BYTES // np.dtype(str(out.dtype)).itemsize
    out_vector = ir.VectorType(_llvm_type(out.dtype), lanes)
    value_vector = ir.VectorType(_llvm_type(values.dtype), lanes)

    def codegen(context, builder, signature, args):
        out_pointer = _element_pointer(context, builder, signature.args[:2], args[:2])
        value_pointer = _element_pointer(context, builder, signature.args[2:], args[2:])
        line = builder.load(builder.bitcast(value_pointer, value_vector.as_pointer()), align=8)
        if values.dtype != out.dtype:
            line = builder.fptrunc(line, out_vector)
        stored = builder.store(
            line, builder.bitcast(out_pointer, out_vector.as_pointer()), align=64
        )
        stored.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return types.void(out, i, values, j), codegen


def _is_row(array, dtypes):
    """A 1-D C-contiguous array of one of ``dtypes``."""
    return (
        isinstance(array, types.Array)
        and array.dtype in dtypes
        and (array.ndim == 1 and array.layout == "C")
    )


def _llvm_type(dtype):
    """The LLVM type of a float32 or float64 element."""
    return ir.FloatType() if dtype == types.float32 else ir.DoubleType()


def _element_pointer(context, builder, types_, values):
    """A pointer to element ``index`` of a 1-D array: ``types_``/``values`` are the
    array's and the index's.
    """
    (array_type, index_type), (array, index) = types_, values
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])


def _mincore():
    """The C library's ``mincore``, or None."""
    try:
        function = ctypes.CDLL(None).mincore
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_MINCORE = _mincore()
