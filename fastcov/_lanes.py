"""Arithmetic on whole rows of ``LANES`` float64 lanes, one SIMD operation a row.

The elimination plan factors a robot's matrix in each lane of a (slots, LANES) array, so
every step of its fixed loop is the same operation on LANES numbers side by side. Written
as loops over the lanes, Numba cannot vectorise them: the rows a step reads and the row it
writes may be the same memory as far as LLVM knows, so the unrolled loop stays scalar; and
with the lane count known only at run time, every short loop paid its own set-up. Each
operation here loads whole rows as one ``<LANES x double>`` vector, computes and stores
(MUSEUM, 8 robots: one factorisation 4.1 µs as loops, 1.5 µs as these).

Every operation takes 2-D C-contiguous float64 arrays of LANES columns and row indices
(``out[i] -= a[j] * b[k]``); it does no bounds check, so the caller keeps indices in range
and the arrays LANES wide (:func:`require_lanes`); arrays made by :func:`empty` have each
row in one cache line. Products and differences round as the scalar ones do (no fused
multiply-add), so each lane is bit for bit the scalar result.
"""

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._jit import jit

__all__ = [
    "LANES",
    "ONE_ROW",
    "add",
    "add_product",
    "copy",
    "divide",
    "empty",
    "full",
    "largest_magnitude",
    "largest_magnitude_of_product",
    "maximum",
    "multiply",
    "reciprocal",
    "require_lanes",
    "subtract",
    "subtract_product",
]

#: Lanes of a row: 8 float64 are one AVX-512 register, two AVX2 ones.
LANES = 8

#: The shape of one row for :func:`empty` and :func:`full`. Its count is an int64, not
#: the int 1: Numba types a constant int as a literal, and each function would be
#: compiled again for it (0.15-0.35 s each, in the patrol step's first call).
ONE_ROW = (np.int64(1),)

_VECTOR = ir.VectorType(ir.DoubleType(), LANES)


def _one_operand(combine):
    """An intrinsic ``operation(out, i, a, j)``: out[i] = combine(out[i], a[j])."""

    def typer(typingctx, out, i, a, j):
        return _typed((out, i, a, j), combine)

    return intrinsic(typer)


def _two_operands(combine):
    """An intrinsic ``operation(out, i, a, j, b, k)``: out[i] = combine(out[i], a[j], b[k])."""

    def typer(typingctx, out, i, a, j, b, k):
        return _typed((out, i, a, j, b, k), combine)

    return intrinsic(typer)


def _typed(argument_types, combine):
    """(signature, codegen) of a row operation on (array, row) pairs, or None (no match)."""
    arrays, rows = argument_types[0::2], argument_types[1::2]
    if not all(_is_lane_array(a) for a in arrays):
        return None
    if not all(isinstance(r, types.Integer) for r in rows):
        return None

    def codegen(context, builder, signature, args):
        pointers = [
            _row_pointer(context, builder, signature.args[p : p + 2], args[p : p + 2])
            for p in range(0, len(args), 2)
        ]
        operands = [builder.load(pointer, align=8) for pointer in pointers]
        builder.store(combine(builder, *operands), pointers[0], align=8)
        return context.get_dummy_value()

    return types.void(*argument_types), codegen


def _is_lane_array(array):
    return (
        isinstance(array, types.Array)
        and array.dtype == types.float64
        and (array.ndim == 2 and array.layout == "C")
    )


def _row_pointer(context, builder, types_, values):
    """A ``<LANES x double>*`` to a row of a 2-D C-contiguous array: ``types_`` and
    ``values`` are the array's and the row index's.
    """
    (array_type, row_type), (array, row) = types_, values
    struct = context.make_array(array_type)(context, builder, array)
    row = context.cast(builder, row, row_type, types.intp)
    stride = builder.extract_value(struct.strides, 0)
    address = builder.add(builder.ptrtoint(struct.data, stride.type), builder.mul(row, stride))
    return builder.inttoptr(address, _VECTOR.as_pointer())


def _larger(builder, out, source):
    """The larger of out and source, lane by lane (out where they are equal)."""
    return builder.select(builder.fcmp_ordered(">", source, out), source, out)


def _larger_or_nan(builder, out, source):
    """:func:`_larger`, but NaN where either is NaN (as ``np.maximum``)."""
    take = builder.or_(
        builder.fcmp_ordered(">", source, out), builder.fcmp_unordered("uno", source, source)
    )
    return builder.select(take, source, out)


def _magnitude(builder, vector):
    """|vector|, by LLVM's fabs (its declare_intrinsic takes no vector types)."""
    fabs = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VECTOR, [_VECTOR]), f"llvm.fabs.v{LANES}f64"
    )
    return builder.call(fabs, [vector])


copy = _one_operand(lambda builder, out, source: source)
copy.__doc__ = "out[i] = source[j]"
add = _one_operand(lambda builder, out, source: builder.fadd(out, source))
add.__doc__ = "out[i] += source[j]"
maximum = _one_operand(lambda builder, out, source: _larger(builder, out, source))
maximum.__doc__ = "out[i] = max(out[i], source[j]) (source[j] where it is larger; no NaN)"
largest_magnitude = _one_operand(
    lambda builder, out, source: _larger_or_nan(builder, out, _magnitude(builder, source))
)
largest_magnitude.__doc__ = "out[i] = max(out[i], |source[j]|), NaN once either is (np.maximum)"
largest_magnitude_of_product = _two_operands(
    lambda builder, out, left, right: _larger_or_nan(
        builder, out, _magnitude(builder, builder.fmul(left, right))
    )
)
largest_magnitude_of_product.__doc__ = (
    "out[i] = max(out[i], |left[j] * right[k]|), NaN once either is (np.maximum)"
)
subtract = _one_operand(lambda builder, out, source: builder.fsub(out, source))
subtract.__doc__ = "out[i] -= source[j]"
divide = _one_operand(lambda builder, out, by: builder.fdiv(out, by))
divide.__doc__ = "out[i] /= by[j]"
multiply = _one_operand(lambda builder, out, by: builder.fmul(out, by))
multiply.__doc__ = "out[i] *= by[j]"
reciprocal = _one_operand(
    lambda builder, out, source: builder.fdiv(ir.Constant(_VECTOR, [1.0] * LANES), source)
)
reciprocal.__doc__ = "out[i] = 1 / source[j]"
add_product = _two_operands(
    lambda builder, out, left, right: builder.fadd(out, builder.fmul(left, right))
)
add_product.__doc__ = "out[i] += left[j] * right[k]"
subtract_product = _two_operands(
    lambda builder, out, left, right: builder.fsub(out, builder.fmul(left, right))
)
subtract_product.__doc__ = "out[i] -= left[j] * right[k]"


@jit
def empty(shape):
    """An uninitialised float64 array of shape ``shape + (LANES,)`` (``shape`` a tuple of
    ints) whose rows each fill one cache line.

    Numba aligns the arrays it allocates to 32 bytes only, so half of them had every
    64-byte row across two lines, and each vector load and store of a row touched both
    (MUSEUM, 8 robots, in compiled loops: the chain rule 1.6 -> 1.2 us and the stationary
    solve 6.6 -> 6.3 us with their arrays aligned; the whole step 33.8 -> 32.5 us, a
    paired difference of 1.2 us, in a slow hour).

    Compiled apart, not into each caller as Numba IR: at each of its calls in the patrol
    step that cost typing and optimising again, and the first step on MUSEUM (4 robots,
    an empty cache) compiled in 20.7-23.2 s against 27.8-29.5 s; the step's time did
    not move (paired timings, 8 robots: -0.4 and +0.6 us, where two copies of the same
    code differed by -0.2).
    """
    size = LANES
    for extent in shape:
        size *= extent
    buffer = np.empty(size + LANES - 1)
    address = buffer.ctypes.data
    skip = (LANES - address // 8 % LANES) % LANES  # float64s to the next line
    return buffer[skip : skip + size].reshape(shape + (LANES,))


@jit
def full(shape, value):
    """:func:`empty`, every entry ``value``."""
    array = empty(shape)
    array[:] = value
    return array


@jit
def require_lanes(array):
    """Raise ValueError unless ``array`` has LANES columns (its rows are whole vectors)."""
    if array.shape[1] != LANES:
        raise ValueError("an array of lanes must have exactly LANES columns")
