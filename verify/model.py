"""The symbolic model: N agents, |V| states, mu_j(s) unknown functions of a vector theta_j.

Agent j's parameters are theta_j = (theta_j0, ..., theta_j{P-1}) and mu_j(s) is an
undefined sympy function of theta_j only, one per state: nothing about its form is
assumed, so an identity proved here holds for every differentiable policy model.
"""

import sympy as sp
from sympy.core.function import AppliedUndef

N_STATES = 2  # two states: enough for every sum over s to be a real sum
N_PARAMETERS = 2  # theta_i is a vector: each component is checked


class Model:
    """Symbols and expressions for ``n_agents`` agents."""

    def __init__(self, n_agents, n_states=N_STATES, n_parameters=N_PARAMETERS):
        self.n_agents, self.n_states = n_agents, n_states
        self.theta = [sp.symbols(f"theta_{j}_0:{n_parameters}", real=True) for j in range(n_agents)]
        # mu[j][s] = mu_j(s)(theta_j)
        self.mu = [
            [sp.Function(f"mu_{j}_{s}", real=True)(*self.theta[j]) for s in range(n_states)]
            for j in range(n_agents)
        ]

    def team(self, s):
        """mu(s) = 1 - prod_j (1 - mu_j(s))."""
        return 1 - sp.Mul(*[1 - self.mu[j][s] for j in range(self.n_agents)])

    def objective(self):
        """J = sum_s -mu(s) log mu(s)."""
        return sp.Add(*[-self.team(s) * sp.log(self.team(s)) for s in range(self.n_states)])


def one_state(n_agents, **assumptions):
    """Plain symbols x_j for mu_j(s) at one state, mu = 1 - prod (1 - x_j) and J = -mu log mu."""
    x = sp.symbols(f"x0:{n_agents}", **assumptions)
    team = 1 - sp.Mul(*[1 - xj for xj in x])
    return x, team, -team * sp.log(team)


def is_zero(expression):
    """Decide exactly whether ``expression`` is identically zero.

    Evaluates unevaluated derivatives, then replaces the opaque pieces -- derivatives of
    the unknown functions, logarithms, the functions themselves -- by fresh symbols.
    Treating them as independent is sound: what vanishes for independent symbols vanishes
    for every value of them. The expressions of Theorem 1 are polynomial of degree <= 1 in
    each derivative and each logarithm, so the expression is 0 exactly when each of its
    coefficients in those symbols (taken by differentiating) cancels to 0 as a rational
    function of the mu symbols: small gcds instead of one large one.
    """
    expression = sp.sympify(expression).doit()
    opaque = []
    for atoms in (
        lambda e: e.atoms(sp.Derivative),
        lambda e: e.atoms(sp.log),
        lambda e: e.atoms(AppliedUndef),
    ):
        pieces = sorted(atoms(expression), key=sp.default_sort_key)
        replacement = {piece: sp.Dummy() for piece in pieces}
        expression = expression.xreplace(replacement)
        opaque.append(list(replacement.values()))
    derivatives, logarithms, _ = opaque
    coefficients = [expression]
    for symbol in derivatives + logarithms:
        coefficients = [part for c in coefficients for part in _split_linear(c, symbol)]
    return all(sp.cancel(sp.together(c)) == 0 for c in coefficients)


def _split_linear(expression, symbol):
    """(constant part, coefficient) of ``expression`` in ``symbol``, if it is affine in it;
    otherwise the expression itself, which is then cancelled whole.
    """
    if not expression.has(symbol):
        return [expression]
    slope = sp.diff(expression, symbol)
    if slope.has(symbol):
        return [expression]
    return [expression.xreplace({symbol: 0}), slope]
