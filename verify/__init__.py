"""Symbolic proof checks of Theorem 1 (EM-Patroller) and of the quantities fastcov computes.

Run from a checkout: ``python -m verify`` (``--quick``, ``--max-agents K``, ``--json FILE``,
``--latex``). Every check reduces a difference to an exact symbolic zero; numbers appear
only in the kernel comparison (check 4), which is a second line, not the proof.
"""

from .checks import (
    CheckResult,
    check_coefficients,
    check_kernels,
    check_proof_chain,
    check_theorem,
    proof_lines,
    theorem_closed_form,
)

__all__ = [
    "CheckResult",
    "check_coefficients",
    "check_kernels",
    "check_proof_chain",
    "check_theorem",
    "proof_lines",
    "theorem_closed_form",
]
