"""A natural logarithm and an exponential that LLVM can vectorise, for the CPU kernels.

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

The exponential is fdlibm's ``e_exp.c`` (error below 1 ulp): x = k log(2) + r with
|r| <= log(2) / 2, exp(r) = 1 + r + r c / (2 - c) with c = r - r^2 P(r^2), P of degree 4,
and 2^k applied as two powers of two made from their bits, so that results below the
smallest normal number round once, into a subnormal. x > 709.78 gives +inf, x < -745.14
gives 0, NaN gives NaN.
"""

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ._jit import inline_jit

_LN2_HI = 6.93147180369123816490e-01  # high 32 bits of log(2); k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01

_INV_LN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_ROUNDING_SHIFT = 6755399441055744.0  # 1.5 2^52: adding it rounds to an integer
_ROUNDING_SHIFT_BITS = np.float64(_ROUNDING_SHIFT).view(np.uint64)  # its bits
_EXP_OVERFLOW = 7.09782712893383973096e02  # log(largest float64)
_EXP_UNDERFLOW = -7.45133219101941108420e02  # log(smallest subnormal / 2)

_TWO54 = 18014398509481984.0
_SMALLEST_NORMAL = 2.2250738585072014e-308
_EXPONENT_SHIFT = 52
_MANTISSA_MASK = np.uint64(0x000FFFFFFFFFFFFF)
# Adding this to the mantissa bits carries into the exponent exactly when 1 + f >= sqrt(2).
_SQRT2_CARRY = np.uint64(0x95F6400000000)
_CARRY_BIT = np.uint64(0x0010000000000000)
_ONE_EXPONENT = np.uint64(0x3FF0000000000000)
_LOG_BIAS = np.uint64(1023)  # the exponent's bias
_LOG_BIAS_SCALED = np.uint64(1023 + 54)  # and the 2^54 that scaled a subnormal x


@inline_jit
def log(x):
    """Natural logarithm of a float64 ``x``, branch-free, error below 1 ulp (fdlibm)."""
    subnormal = x < _SMALLEST_NORMAL
    scaled = x * _TWO54 if subnormal else x
    bits = _float_bits(scaled)
    mantissa = bits & _MANTISSA_MASK
    carry = (mantissa + _SQRT2_CARRY) & _CARRY_BIT
    # k = exponent - 1023 (- 54 when scaled, + 1 after a carry), made a float64 by adding
    # it to the bits of 1.5 2^52 (exact for |k| < 2^51), not by an int64 -> float64
    # conversion: AVX2 has none, and for it LLVM's cost model left a plain loop of
    # logarithms scalar (on a Zen 3: 8.5 ns a value scalar, 4.2-4.7 vectorised; the
    # kernels' loops had vectorised anyway).
    k_bits = (
        (bits >> _EXPONENT_SHIFT)
        + (carry >> _EXPONENT_SHIFT)
        + (_ROUNDING_SHIFT_BITS - (_LOG_BIAS_SCALED if subnormal else _LOG_BIAS))
    )
    # 1 + f in [sqrt(2)/2, sqrt(2)): the mantissa with exponent 0, or -1 after a carry.
    f = _bits_float(mantissa | (carry ^ _ONE_EXPONENT)) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    half_f_squared = 0.5 * f * f
    dk = _bits_float(k_bits) - _ROUNDING_SHIFT
    result = dk * _LN2_HI - ((half_f_squared - (s * (half_f_squared + t1 + t2) + dk * _LN2_LO)) - f)
    if x == 0.0:
        return -np.inf
    if not (x >= 0.0 and x < np.inf):
        return x if x == np.inf else np.nan
    return result


@inline_jit
def exp(x):
    """e^x for a float64 ``x``, branch-free, error below 1 ulp (fdlibm)."""
    # Clamped, the reduction stays finite and k small; the range tests pick the result.
    clamped = min(max(x, _EXP_UNDERFLOW - 1.0), _EXP_OVERFLOW + 1.0)
    # k = round(x / log 2), read off the low mantissa bits of x / log 2 + 1.5 2^52.
    shifted = clamped * _INV_LN2 + _ROUNDING_SHIFT
    k_bits = np.int64(_float_bits(shifted) - _ROUNDING_SHIFT_BITS)
    k = shifted - _ROUNDING_SHIFT
    hi = clamped - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # 2^k as 2^half 2^(k - half): each factor normal, so only the last product rounds.
    half = k_bits >> 1
    result = y * _power_of_two(half) * _power_of_two(k_bits - half)
    if x > _EXP_OVERFLOW:
        return np.inf
    if x < _EXP_UNDERFLOW:
        return 0.0
    return result if x == x else x


@inline_jit
def _power_of_two(k):
    """2.0 ** k for -1022 <= k <= 1023, from its exponent bits."""
    return _bits_float(np.uint64(k + 1023) << np.uint64(_EXPONENT_SHIFT))


@intrinsic
def prefer_wide_vectors(typingctx):
    """Let LLVM vectorise the loops of the calling function at 512 bits where it can.

    LLVM's tuning for AVX-512 processors keeps loops it vectorises at 256 bits (ymm) unless
    a function says otherwise with the attribute ``"prefer-vector-width"="512"``; Numba
    sets no such attribute, and llvmlite names only a fixed set of attributes, so this
    adds it to the set as it is written into the IR. It changes the width of the code and
    nothing else: each lane computes what it did. Where the processor has no AVX-512 it
    changes nothing. The attribute belongs to the function that calls this, whose loops
    are vectorised before a caller inlines them (``cpu._one_group``, N = 8 float64 in L1,
    one thread: 5.4-5.7 ns a state at 256 bits, 4.6-4.7 at 512).
    """

    def codegen(context, builder, signature, args):
        # AttributeSet.add accepts only llvmlite's known names; the set itself is written
        # out as it is, so a string attribute goes in through set.add.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


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
