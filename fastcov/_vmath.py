"""A natural logarithm that LLVM can vectorise, for the CPU kernels.

Numba's ``math.log`` is a call into the C library, one state at a time: at small N that
single call costs more than everything else a state needs. (Numba's SVML path would
vectorise it, but the llvmlite wheels on PyPI are not built with the SVML patch.) This
module writes the logarithm as straight-line arithmetic and integer bit operations, with no
branch and no call, so a loop of it compiles to SIMD code.

The algorithm is fdlibm's ``e_log.c`` (Sun Microsystems, 1993), error below 1 ulp: write
x = 2^k (1 + f) with sqrt(2)/2 <= 1 + f < sqrt(2), s = f / (2 + f), and

    log(1 + f) = f - s (f - R(s^2)),   R a degree-7 minimax polynomial in s^2,

arranged exactly as fdlibm arranges it so that the rounding analysis holds. Subnormal x is
scaled by 2^54 first; x = 0 gives -inf, x = +inf gives +inf and NaN or x < 0 give NaN.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_LN2_HI = 6.93147180369123816490e-01  # high 32 bits of log(2); k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01

_TWO54 = 18014398509481984.0
_SMALLEST_NORMAL = 2.2250738585072014e-308
_EXPONENT_SHIFT = 52
_MANTISSA_MASK = np.uint64(0x000FFFFFFFFFFFFF)
# Adding this to the mantissa bits carries into the exponent exactly when 1 + f >= sqrt(2).
_SQRT2_CARRY = np.uint64(0x95F6400000000)
_CARRY_BIT = np.uint64(0x0010000000000000)
_ONE_EXPONENT = np.uint64(0x3FF0000000000000)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def log(x):
    """Natural logarithm of a float64 ``x``, branch-free, error below 1 ulp (fdlibm)."""
    subnormal = x < _SMALLEST_NORMAL
    scaled = x * _TWO54 if subnormal else x
    bits = _float_bits(scaled)
    k = np.int64(bits >> _EXPONENT_SHIFT) - 1023 - (54 if subnormal else 0)
    mantissa = bits & _MANTISSA_MASK
    carry = (mantissa + _SQRT2_CARRY) & _CARRY_BIT
    k += np.int64(carry >> _EXPONENT_SHIFT)
    # 1 + f in [sqrt(2)/2, sqrt(2)): the mantissa with exponent 0, or -1 after a carry.
    f = _bits_float(mantissa | (carry ^ _ONE_EXPONENT)) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    half_f_squared = 0.5 * f * f
    dk = np.float64(k)
    result = dk * _LN2_HI - ((half_f_squared - (s * (half_f_squared + t1 + t2) + dk * _LN2_LO)) - f)
    if x == 0.0:
        return -np.inf
    if not (x >= 0.0 and x < np.inf):
        return x if x == np.inf else np.nan
    return result


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE-754 bits of a float64 as a uint64 (a register move, no memory)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float64 whose IEEE-754 bits are the uint64 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen
