"""fastcov: the multi-agent coverage entropy and its exact policy gradient.

N agents cover a state space of S states; agent i covers state s with probability
mu_i(s). The team covers s with probability mu(s) = 1 - prod_j (1 - mu_j(s)), and the
objective is the coverage entropy J = sum_s -mu(s) log mu(s). Theorem 1 of EM-Patroller
(Guo et al., IEEE RA-L 2023) gives its policy gradient in closed form:

    grad_{theta_i} J = sum_s c(s) grad_{theta_i} log(1 - mu_i(s)),
    c(s) = (log mu(s) + 1)(1 - mu(s)).

Public functions: :func:`coverage`, :func:`entropy`, :func:`state_weights`, :func:`grad`,
:func:`value_and_grad`, :func:`policy_gradient`, :func:`available_backends`.
"""

from .api import (
    available_backends,
    coverage,
    entropy,
    grad,
    policy_gradient,
    state_weights,
    value_and_grad,
)

__version__ = "0.1.0"

__all__ = [
    "available_backends",
    "coverage",
    "entropy",
    "grad",
    "policy_gradient",
    "state_weights",
    "value_and_grad",
    "__version__",
]
