"""The four checks of SPEC section 5. Each returns a list of :class:`CheckResult` rows.

Every check takes the formula it verifies as an argument (defaulting to the true one), so
the tests can feed it a wrong closed form or a wrong proof line and see it rejected.
"""

import dataclasses
import functools
import time

import numpy as np
import sympy as sp

from .model import Model, is_zero, one_state


@dataclasses.dataclass
class CheckResult:
    """One row of the report."""

    check: str
    n_agents: int
    passed: bool
    seconds: float
    detail: str = ""


def theorem_closed_form(model, i, k):
    """Theorem 1's right-hand side for component k of theta_i:
    sum_s (log mu(s) + 1)(1 - mu(s)) d/dtheta_ik log(1 - mu_i(s)).
    """
    return sp.Add(
        *[
            state_weight(model.team(s)) * sp.diff(sp.log(1 - model.mu[i][s]), model.theta[i][k])
            for s in range(model.n_states)
        ]
    )


def check_theorem(n_agents, closed_form=theorem_closed_form):
    """Check 1: sympy's own dJ/dtheta_ik equals ``closed_form`` for every agent i, component k."""
    start = time.perf_counter()
    model = Model(n_agents)
    objective = model.objective()
    failures = [
        f"agent {i}, component {k}"
        for i in range(n_agents)
        for k in range(len(model.theta[i]))
        if not is_zero(sp.diff(objective, model.theta[i][k]) - closed_form(model, i, k))
    ]
    return [_row("theorem 1", n_agents, [f"differs for {f}" for f in failures], start)]


def proof_lines(model, i, k):
    """The seed's proof of Theorem 1, line by line, for component k of theta_i.

    Returns a list of (label, expression, condition) -- condition is the hypothesis under
    which the step *into* that line holds, or "". Partial derivatives of J(s) and mu(s) are
    taken with respect to plain symbols standing for mu(s) and mu_j(s), then evaluated at
    the model, exactly as the chain rule in the proof reads.
    """
    n, theta = model.n_agents, model.theta[i][k]
    big_m = sp.Symbol("M", positive=True)
    x, team_of_x, _ = one_state(n)

    def at(expression, s):
        values = {big_m: model.team(s), **{x[j]: model.mu[j][s] for j in range(n)}}
        return expression.xreplace(values)

    def dj_dm(s):  # dJ(s)/dmu(s)
        return at(sp.diff(-big_m * sp.log(big_m), big_m), s)

    def dm_dmj(s, j):  # dmu(s)/dmu_j(s)
        return at(sp.diff(team_of_x, x[j]), s)

    def dmj_dtheta(s, j):  # dmu_j(s)/dtheta_i
        return sp.diff(model.mu[j][s], theta)

    def term(s, j):
        return dj_dm(s) * dm_dmj(s, j) * dmj_dtheta(s, j)

    states, others = range(model.n_states), [j for j in range(n) if j != i]

    def log_weight(s):
        return sp.log(model.team(s)) + 1

    def leave_one_out(s):
        return sp.Mul(*[1 - model.mu[j][s] for j in others])

    def full_product(s):
        return sp.Mul(*[1 - model.mu[j][s] for j in range(n)])

    dmi = [sp.diff(model.mu[i][s], theta) for s in states]
    return [
        ("grad J", sp.Derivative(model.objective(), theta), ""),
        (
            "grad sum_s J(s)",
            sp.Add(*[sp.Derivative(-model.team(s) * sp.log(model.team(s)), theta) for s in states]),
            "",
        ),
        (
            "chain rule",
            sp.Add(
                *[
                    dj_dm(s) * sp.Add(*[dm_dmj(s, j) * dmj_dtheta(s, j) for j in range(n)])
                    for s in states
                ]
            ),
            "",
        ),
        ("sum over s and j", sp.Add(*[term(s, j) for s in states for j in range(n)]), ""),
        (
            "split j != i and j = i",
            sp.Add(*[term(s, j) for s in states for j in others])
            + sp.Add(*[term(s, i) for s in states]),
            "",
        ),
        ("drop j != i (grad_i mu_j = 0)", sp.Add(*[term(s, i) for s in states]), ""),
        (
            "leave-one-out product",
            sp.Add(*[-log_weight(s) * leave_one_out(s) * dmi[s] for s in states]),
            "",
        ),
        (
            "quotient by 1 - mu_i",
            sp.Add(
                *[-log_weight(s) * full_product(s) / (1 - model.mu[i][s]) * dmi[s] for s in states]
            ),
            "mu_i(s) != 1",
        ),
        (
            "1 - mu(s) = prod",
            sp.Add(
                *[
                    -log_weight(s) * (1 - model.team(s)) / (1 - model.mu[i][s]) * dmi[s]
                    for s in states
                ]
            ),
            "",
        ),
        (
            "Theorem 1",
            sp.Add(
                *[
                    log_weight(s)
                    * (1 - model.team(s))
                    * sp.Derivative(sp.log(1 - model.mu[i][s]), theta)
                    for s in states
                ]
            ),
            "",
        ),
    ]


def check_proof_chain(n_agents, lines=proof_lines):
    """Check 2: each line of the proof equals the next, for every agent and component."""
    model = Model(n_agents)
    rows = []
    chains = {
        (i, k): lines(model, i, k) for i in range(n_agents) for k in range(len(model.theta[i]))
    }
    n_steps = len(next(iter(chains.values()))) - 1
    for step in range(n_steps):
        start = time.perf_counter()
        failures = [
            f"agent {i}, component {k}"
            for (i, k), chain in chains.items()
            if not is_zero(chain[step][1] - chain[step + 1][1])
        ]
        labels = chains[0, 0]
        before, after, condition = labels[step][0], labels[step + 1][0], labels[step + 1][2]
        name = f"proof line {step} -> {step + 1}"
        detail = f"{before} = {after}" + (f" (holds where {condition})" if condition else "")
        if failures:
            detail += "; fails for " + "; ".join(failures)
        rows.append(CheckResult(name, n_agents, not failures, time.perf_counter() - start, detail))
    return rows


def state_weight(team):
    """c(s) = (log mu(s) + 1)(1 - mu(s)), from mu(s) = ``team``."""
    return (sp.log(team) + 1) * (1 - team)


def kernel_coefficient(team, others):
    """g_i(s) as the kernels compute it: -(log mu(s) + 1) times ``others``, the
    leave-one-out product prod_{j != i} (1 - mu_j(s)).
    """
    return -(sp.log(team) + 1) * others


def kernel_step(m, q, x):
    """One agent's step of the kernels' pass over a state: m <- m + x q, q <- q (1 - x)."""
    return m + x * q, q * (1 - x)


def check_coefficients(
    n_agents, coefficient=kernel_coefficient, weight=state_weight, step=kernel_step
):
    """Check 3: g_i = dJ/dmu_i, c and the leave-one-out form the kernels compute
    (``coefficient``, ``weight`` and the recurrence ``step``).

    With plain symbols x_j for mu_j(s) at one state:
    - dJ/dx_i = -(log mu + 1) prod_{j != i} (1 - x_j), and c = (log mu + 1)(1 - mu);
    - g_i = -c / (1 - x_i) where x_i != 1 (exact cancel);
    - at x_i = 1 the quotient form is 0/0 (undefined), its limit is the product form, which
      is finite there: -prod_{j != i} (1 - x_j); and every other g_j is 0;
    - the kernels' recurrence m <- m + x q, q <- q (1 - x) yields m = mu, q = 1 - mu, and
      their exclusive prefix x suffix products are prod_{j != i} (1 - x_j).
    """
    start = time.perf_counter()
    x, team, objective = one_state(n_agents, real=True)
    c = weight(team)
    failures = []
    m, q = sp.Integer(0), sp.Integer(1)
    prefixes = []
    for xj in x:
        prefixes.append(q)
        m, q = step(m, q, xj)
    if sp.expand(m - team) != 0 or sp.expand(q - (1 - team)) != 0:
        failures.append("recurrence does not give mu and 1 - mu")
    suffix = sp.Integer(1)
    for i in range(n_agents - 1, -1, -1):
        others = sp.Mul(*[1 - x[j] for j in range(n_agents) if j != i])
        if sp.expand(prefixes[i] * suffix - others) != 0:
            failures.append(f"prefix x suffix != leave-one-out product for agent {i}")
        suffix *= 1 - x[i]
        g_i = coefficient(team, others)
        if not is_zero(sp.diff(objective, x[i]) - g_i):
            failures.append(f"dJ/dmu_{i} != -(log mu + 1) prod_(j != i) (1 - mu_j)")
        if not is_zero(g_i - (-c / (1 - x[i]))):
            failures.append(f"g_{i} != -c / (1 - mu_{i}) where mu_{i} != 1")
        at_one = {x[i]: 1}
        # sympy would cancel the (1 - x_i) factor inside c before substituting, so the
        # quotient's 0/0 is shown on its numerator and denominator separately.
        if sp.simplify(c.subs(at_one)) != 0 or (1 - x[i]).subs(at_one) != 0:
            failures.append(f"quotient form -c / (1 - mu_{i}) is not 0/0 at mu_{i} = 1")
        limit = sp.limit(-c / (1 - x[i]), x[i], 1, "-")
        if (
            sp.simplify(limit - g_i.subs(at_one)) != 0
            or sp.simplify(g_i.subs(at_one) + others) != 0
        ):
            failures.append(f"limit at mu_{i} = 1 is not the finite product form")
        for j in range(n_agents):
            other_g = coefficient(team, sp.Mul(*[1 - x[k] for k in range(n_agents) if k != j]))
            if j != i and sp.simplify(other_g.subs(at_one)) != 0:
                failures.append(f"g_{j} != 0 when mu_{i} = 1")
    return [_row("coefficients g, c", n_agents, failures, start)]


def check_kernels(n_agents, seed=0, gradients=None, policies=None):
    """Check 4: fastcov.grad / policy_gradient (every installed backend) against the
    lambdified symbolic gradient at random and edge points (mu near 0, near 1, exactly 1).

    ``gradients`` maps a name to a function mu (N, S) -> g, and ``policies`` a name to a
    function (mu, dmu (N, S, P)) -> (N, P), to check instead of fastcov's (given either,
    only those given are checked).
    """
    import mpmath

    import fastcov

    start = time.perf_counter()
    x, _, objective = one_state(n_agents, real=True)
    gradient = sp.lambdify(x, [sp.diff(objective, xi) for xi in x], modules="mpmath")
    rng = np.random.default_rng(seed)
    columns = [rng.random(n_agents) for _ in range(20)]
    columns += [np.full(n_agents, 1e-12), np.full(n_agents, 1 - 1e-12), rng.random(n_agents) * 1e-9]
    for i in range(n_agents):
        column = rng.random(n_agents)
        column[i] = 1.0
        columns.append(column)
    mu = np.array(columns).T
    with mpmath.workdps(50):
        expected = np.array(
            [[float(v) for v in gradient(*map(mpmath.mpf, col.tolist()))] for col in columns]
        ).T
    dmu = rng.standard_normal((n_agents, mu.shape[1], 3))
    backends = fastcov.available_backends()
    if gradients is None and policies is None:
        gradients = {f"grad ({b})": functools.partial(fastcov.grad, backend=b) for b in backends}
        policies = {
            f"policy_gradient ({b})": functools.partial(fastcov.policy_gradient, backend=b)
            for b in backends
        }
    gradients, policies = gradients or {}, policies or {}
    failures = []
    for name, gradient_of in gradients.items():
        with np.errstate(all="ignore"):
            g = gradient_of(mu)
        if not np.allclose(g, expected, rtol=1e-12, atol=1e-15 * (n_agents + 1)):
            worst = (
                np.unravel_index(np.nanargmax(np.abs(g - expected)), g.shape)
                if np.isfinite(g).any()
                else (0, 0)
            )
            failures.append(f"{name} differs (e.g. at mu = {mu[:, worst[1]].tolist()})")
    reference = np.einsum("is,isp->ip", expected, dmu)
    for name, policy_of in policies.items():
        with np.errstate(all="ignore"):
            policy = policy_of(mu, dmu)
        if not np.allclose(policy, reference, rtol=1e-11, atol=1e-13 * np.abs(reference).max()):
            failures.append(f"{name} differs")
    return [
        _row(
            "kernels vs lambdify",
            n_agents,
            failures,
            start,
            f"checked: {', '.join([*gradients, *policies])}",
        )
    ]


def _row(check, n_agents, failures, start, detail=""):
    return CheckResult(
        check, n_agents, not failures, time.perf_counter() - start, "; ".join(failures) or detail
    )
