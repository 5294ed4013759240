"""Small arrays in the calling function's stack frame, which LLVM can see whole.

NumPy arrays live on the heap, where LLVM must assume that any store may change any other
array: a value kept in a heap array is stored and loaded again, and a loop that reads
one array and writes another needs run-time overlap checks before it vectorises. An
array in the function's own stack frame, whose address never escapes, aliases nothing:

- :func:`column`: a state's agents need their prefix products again on the way back. In
  a short stack array whose every index is a constant once the loops over a group's
  agents unroll, LLVM's scalar replacement turns them into plain values, which stay in
  registers and vectorise with the loop over states.
- :func:`tile`: a few lines of each of a group's rows of g, computed by a loop of a
  constant trip count with no overlap checks and streamed out from L1 (``_stream``).

Numba has no such array; these intrinsics make them. Each lives as long as the calling
function's frame: it must not be returned, nor kept past the call.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

__all__ = ["column", "tile"]

#: Alignment of a tile: a cache line, so that each of its rows' lines is one vector load.
_TILE_ALIGNMENT = 64


@intrinsic
def column(typingctx, like):
    """A (len(like), 1) float64 array, uninitialised, on the stack.

    ``like`` is a tuple whose length (a constant of the compiled code) is the row count.
    Index it with constants (or loop indices of loops that unroll) for it to become
    registers; it is correct memory either way.
    """
    if not isinstance(like, types.BaseTuple):
        return None
    array_type = types.Array(types.float64, 2, "C")

    def codegen(context, builder, signature, args):
        return _stack_array(context, builder, array_type, len(like.types), 1, alignment=8)

    return array_type(like), codegen


@intrinsic
def tile(typingctx, like, columns, dtype_of):
    """A (len(like), columns) array of ``dtype_of``'s dtype, uninitialised, on the stack,
    aligned to a cache line.

    ``like`` is a tuple whose length is the row count, ``columns`` an integer constant
    (a literal or a module-level global), ``dtype_of`` an array.
    """
    literal = isinstance(columns, types.IntegerLiteral)
    if not (isinstance(like, types.BaseTuple) and literal and isinstance(dtype_of, types.Array)):
        return None
    array_type = types.Array(dtype_of.dtype, 2, "C")
    rows, width = len(like.types), columns.literal_value

    def codegen(context, builder, signature, args):
        return _stack_array(context, builder, array_type, rows, width, _TILE_ALIGNMENT)

    return array_type(like, columns, dtype_of), codegen


def _stack_array(context, builder, array_type, rows, columns, alignment):
    """A C-contiguous ``array_type`` of shape (rows, columns) allocated on the stack."""
    element = context.get_value_type(array_type.dtype)
    # In the entry block, so that a loop calling this reuses one allocation.
    data = cgutils.alloca_once(builder, element, size=max(rows * columns, 1))
    data.align = alignment
    intp = context.get_value_type(types.intp)
    itemsize = context.get_abi_sizeof(element)
    array = context.make_array(array_type)(context, builder)
    populate_array(
        array,
        data=data,
        shape=[ir.Constant(intp, rows), ir.Constant(intp, columns)],
        strides=[ir.Constant(intp, columns * itemsize), ir.Constant(intp, itemsize)],
        itemsize=ir.Constant(intp, itemsize),
        meminfo=None,
    )
    return array._getvalue()
