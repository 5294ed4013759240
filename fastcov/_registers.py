"""A few float64 values per loop iteration, kept in registers: a column on the stack.

A state's agents need their prefix products again on the way back. Kept in an array that
LLVM sees only as memory (a row of g), each is stored and loaded again, and the stores
cannot be skipped: for all LLVM knows, they change mu. Kept in a short array in the
function's own stack frame, whose every index is a constant once the loops over a group's
agents unroll, LLVM's scalar replacement turns the array into plain values, which stay in
registers and vectorise with the loop over states.

NumPy arrays live on the heap, so Numba has no such array; :func:`column` makes one.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

__all__ = ["column"]

_COLUMN = types.Array(types.float64, 2, "C")


@intrinsic
def column(typingctx, like):
    """A (len(like), 1) float64 array, uninitialised, in the calling function's stack frame.

    ``like`` is a tuple whose length (a constant of the compiled code) is the row count.
    The array lives as long as the calling function's frame: it must not be returned, nor
    kept past the call. Index it with constants (or loop indices of loops that unroll) for
    it to become registers; it is correct memory either way.
    """
    if not isinstance(like, types.BaseTuple):
        return None
    rows = len(like.types)

    def codegen(context, builder, signature, args):
        double = context.get_value_type(types.float64)
        # In the entry block, so that a loop calling this reuses one allocation.
        data = cgutils.alloca_once(builder, double, size=max(rows, 1))
        array = context.make_array(_COLUMN)(context, builder)
        intp = context.get_value_type(types.intp)
        itemsize = ir.Constant(intp, 8)
        populate_array(
            array,
            data=data,
            shape=[ir.Constant(intp, rows), ir.Constant(intp, 1)],
            strides=[itemsize, itemsize],
            itemsize=itemsize,
            meminfo=None,
        )
        return array._getvalue()

    return _COLUMN(like), codegen
