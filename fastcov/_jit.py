"""The Numba options of every compiled CPU function, set in one place.

All of fastcov's CPU code compiles with the same options: cached to disk (the first call
in a new environment compiles; later processes load the machine code), the GIL released
(the patrol solver factors robots on threads), and NumPy's error model (a division by
zero gives inf or NaN, as in NumPy, with no check in the loop). The CUDA kernels, in
:mod:`fastcov.cuda`, have their own.
"""

import numba

__all__ = ["OPTIONS", "jit", "inline_jit", "jit_with"]

#: The options every compiled function shares.
OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


def jit_with(**options):
    """A decorator that compiles with :data:`OPTIONS` and ``options`` besides."""
    return numba.njit(**OPTIONS, **options)


#: Compile a function on its own.
jit = jit_with()

#: Compile a small helper into each caller as Numba IR, not apart: each function compiled
#: on its own costs its own typing and LLVM module (fastcov demo's compiling, in an empty
#: cache on a 2-core Zen 3: 29.8 -> 28.6 s, medians of 5 runs, where the patrol step's
#: helpers went inline; the step's time the same).
inline_jit = jit_with(inline="always")
