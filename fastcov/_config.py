"""Tunables shared by the backends.

Every number here changes speed only, never a result's meaning; but the block partition
also fixes the order in which J is summed, so it depends on the input's shape alone and
never on the thread count (that is what makes J bit-identical across thread counts).
"""

#: Upper bound on the float64 scratch a CPU block keeps per agent row (N x block states):
#: 16384 doubles = 128 KiB, so a block's prefix products stay in L2 between the forward
#: and the backward pass and the block touches main memory once.
BLOCK_SCRATCH_ELEMENTS = 16384

#: Smallest and largest number of states in one CPU block.
MIN_BLOCK_STATES = 256
MAX_BLOCK_STATES = 4096

#: Number of chunks (groups of consecutive blocks) the CPU work is split into, at most.
#: Each chunk owns its scratch and, for policy_gradient, an (N, P) partial sum, so the
#: extra memory of policy_gradient is at most MAX_CHUNKS * N * P doubles.
MAX_CHUNKS = 256


def block_states(n_agents: int) -> int:
    """States per CPU block for ``n_agents`` agents: a power of two in the configured range."""
    size = MAX_BLOCK_STATES
    while size > MIN_BLOCK_STATES and size * max(n_agents, 1) > BLOCK_SCRATCH_ELEMENTS:
        size //= 2
    return size


#: A float32 g of more than 8 agents, computed in a float64 block, is rounded into the
#: caller's g with streaming stores (``_stream``), which skip the cache, when g has at least
#: this many bytes: worth it only where g would not stay there anyway. Measured when N = 8
#: took this path too (float32 on 2 cores, ms per 10^7 states, streamed against not):
#: 38.5 / 35.1 at S = 10^6 (32 MB of g), 37.0 / 47.9 at 2 10^6, 37.5 / 46.2 at 10^7.
#: (A float32 g of N <= 8 is written straight, in its dtype; a float64 g of more agents is
#: computed in the caller's array: streamed from a block it was slower, 51 against 48 ms at
#: 10^7, except where its rows are 4 KiB multiples apart: ``cpu._float64_rows``.)
STREAM_STORE_BYTES = 48 << 20

#: CUDA threads per block (a power of two: the blocks' J reduction is a halving tree).
CUDA_THREADS_PER_BLOCK = 256

#: Most blocks a CUDA sweep launches; each thread then walks S / (blocks x threads)
#: states. Fixed, not taken from the device, so J is summed in the same order everywhere.
CUDA_MAX_BLOCKS = 8192

#: Up to this many agents, the CUDA sweep is compiled for the exact agent count (once per
#: count): its agent loops unroll and a state's mu column stays in registers, so mu is read
#: once. Above it, one general kernel keeps the prefix products in g (see fastcov.cuda).
CUDA_UNROLLED_AGENTS = 16

#: Blocks per (agent, parameter) row in the CUDA policy-gradient contraction.
CUDA_CONTRACT_BLOCKS = 64

#: States of g the CUDA policy gradient holds at a time: N x this many doubles.
CUDA_POLICY_CHUNK_STATES = 1 << 20
