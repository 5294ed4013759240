"""The policy gradient's sums over states of g(s) dmu[s, p], 8 states a SIMD step.

A block of dmu for one agent is an (n, P) C-ordered array: each state's P parameters lie
side by side. Summed one parameter at a time, each sum reads a column with stride P,
element by element; summed a state at a time, each state's few updates wait on the last
state's. Neither kept up with memory: N = 8, S = 1e6 float64 on 2 cores, P = 3 took 21 ms
by columns, where a parallel read of mu and dmu takes 8; in the steps below, 12.

Here 8 states' rows are 8 P numbers in a row, so P whole vectors: lane l of vector j holds
element 8 j + l, the parameter (8 j + l) mod P of the state (8 j + l) div P. The g each lane
needs is then a fixed shuffle of the 8 states' g, known once P is, and a step is P loads,
shuffles and multiply-adds into P accumulators that stay in registers. LLVM cannot find
this on its own from a loop (P is known only at run time); :func:`accumulate` writes the
loop for each P up to :data:`MAX_PARAMETERS` and picks one by P.

Products and sums round as the scalar ones do (no fused multiply-add): every element is
``g(s) * float64(dmu[s, p])`` added into its lane's sum in state order. The lanes hold
interleaved partial sums; the caller adds them up in a fixed order.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["LANES", "MAX_PARAMETERS", "accumulate"]

#: States a step: 8 float64 are one AVX-512 register.
LANES = 8

#: The largest P with a loop of its own (P accumulators of LANES float64 each); more are
#: summed a state at a time (``cpu._contract_along_parameters``). policy_gradient, N = 8
#: float64 on 2 cores, S = 2e5, against that loop: P = 16 12.0 -> 7.5 ms, P = 24 15.5 ->
#: 12.0, P = 32 20.5 -> 17 (where the accumulators no longer all fit in registers).
#: Each P's loop adds to the compile time: about 0.5 s for the 16 from 17 to 32.
MAX_PARAMETERS = 32

_DOUBLES = ir.VectorType(ir.DoubleType(), LANES)


@intrinsic
def accumulate(typingctx, g, dmu, lanes):
    """Set the first P rows of ``lanes`` to the sums over the first ``n // 8 * 8`` states.

    ``g`` is 1-D C-contiguous float64, n states; ``dmu`` 2-D C-contiguous (n, P), float32
    or float64, with 1 <= P <= MAX_PARAMETERS (for any other P, nothing is set); ``lanes`` 2-D
    C-contiguous float64 with at least P rows of LANES. Row j, lane l of ``lanes`` gets
    the sum over steps of the products of element 8 j + l of each step's 8 P numbers:
    parameter (8 j + l) % P. A NaN or infinity in dmu (or g) leaves one in its lane.
    """
    if not (_contiguous(g, 1, (types.float64,)) and _contiguous(lanes, 2, (types.float64,))):
        return None
    if not _contiguous(dmu, 2, (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        g_struct, dmu_struct, lanes_struct = (
            context.make_array(t)(context, builder, a)
            for t, a in zip(signature.args, args, strict=True)
        )
        n_parameters = builder.extract_value(dmu_struct.shape, 1)
        steps = builder.sdiv(builder.extract_value(g_struct.shape, 0), n_parameters.type(LANES))
        element = context.get_value_type(signature.args[1].dtype)
        done = builder.append_basic_block("accumulate.done")
        by_parameters = builder.switch(n_parameters, done)
        for p in range(1, MAX_PARAMETERS + 1):
            block = builder.append_basic_block(f"accumulate.p{p}")
            by_parameters.add_case(n_parameters.type(p), block)
            builder.position_at_end(block)
            _steps(builder, p, steps, g_struct.data, dmu_struct.data, element, lanes_struct.data)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.void(g, dmu, lanes), codegen


def _contiguous(array, ndim, dtypes):
    return (
        isinstance(array, types.Array)
        and array.ndim == ndim
        and array.layout == "C"
        and array.dtype in dtypes
    )


def _zeros():
    return _DOUBLES([0.0] * LANES)


def _steps(builder, n_parameters, steps, g, dmu, element, lanes):
    """The loop for one P: accumulators in allocas (promoted to registers), stored into
    ``lanes``' first P rows at the end.
    """
    vector = ir.VectorType(element, LANES)
    sums = [cgutils.alloca_once(builder, _DOUBLES) for _ in range(n_parameters)]
    for total in sums:
        builder.store(_zeros(), total)
    # Lane l of vector j multiplies element 8 j + l, of the state (8 j + l) // P in the step.
    masks = [
        ir.Constant(
            ir.VectorType(ir.IntType(32), LANES),
            [(LANES * j + lane) // n_parameters for lane in range(LANES)],
        )
        for j in range(n_parameters)
    ]
    with cgutils.for_range(builder, steps) as loop:
        first_state = builder.mul(loop.index, loop.index.type(LANES))
        g_step = _load(builder, g, first_state, _DOUBLES)
        first_element = builder.mul(first_state, loop.index.type(n_parameters))
        for j, (total, mask) in enumerate(zip(sums, masks, strict=True)):
            offset = builder.add(first_element, loop.index.type(LANES * j))
            values = _load(builder, dmu, offset, vector)
            if element != ir.DoubleType():
                values = builder.fpext(values, _DOUBLES)
            weights = builder.shuffle_vector(g_step, g_step, mask)
            builder.store(builder.fadd(builder.load(total), builder.fmul(weights, values)), total)
    for j, total in enumerate(sums):
        row = builder.gep(lanes, [ir.IntType(64)(LANES * j)])
        builder.store(builder.load(total), builder.bitcast(row, _DOUBLES.as_pointer()), align=8)


def _load(builder, data, offset, vector):
    """``vector``'s lanes from ``data`` (a pointer to its element type) at ``offset``."""
    pointer = builder.bitcast(builder.gep(data, [offset]), vector.as_pointer())
    return builder.load(pointer, align=4 if isinstance(vector.element, ir.FloatType) else 8)
