"""The symbolic verifier proves the true closed form and rejects wrong ones, naming them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from verify import checks


@pytest.mark.parametrize("n_agents", [1, 2, 3])
def test_theorem_and_proof_chain_hold(n_agents):
    assert checks.check_theorem(n_agents)[0].passed
    assert all(row.passed for row in checks.check_proof_chain(n_agents))
    assert checks.check_coefficients(n_agents)[0].passed
    assert checks.check_kernels(n_agents)[0].passed


def _flipped_sign(model, i, k):
    return -checks.theorem_closed_form(model, i, k)


def _missing_one_minus_mu(model, i, k):
    return sp.Add(
        *[
            (sp.log(model.team(s)) + 1) * sp.diff(sp.log(1 - model.mu[i][s]), model.theta[i][k])
            for s in range(model.n_states)
        ]
    )


def _log_mu_i(model, i, k):
    return sp.Add(
        *[
            (sp.log(model.team(s)) + 1)
            * (1 - model.team(s))
            * sp.diff(sp.log(model.mu[i][s]), model.theta[i][k])
            for s in range(model.n_states)
        ]
    )


@pytest.mark.parametrize("wrong", [_flipped_sign, _missing_one_minus_mu, _log_mu_i])
@pytest.mark.parametrize("n_agents", [1, 3])
def test_wrong_closed_forms_are_rejected(wrong, n_agents):
    row = checks.check_theorem(n_agents, closed_form=wrong)[0]
    assert not row.passed
    assert "differs for agent 0, component 0" in row.detail


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        # g with its sign flipped, and with the whole product 1 - mu in place of the
        # leave-one-out product
        ({"coefficient": lambda team, others: (sp.log(team) + 1) * others}, "dJ/dmu_0 !="),
        ({"coefficient": lambda team, others: -(sp.log(team) + 1) * (1 - team)}, "dJ/dmu_0 !="),
        # c without its (1 - mu) factor: no longer 0/0 at mu_i = 1
        ({"weight": lambda team: sp.log(team) + 1}, "is not 0/0 at mu_0 = 1"),
        ({"step": lambda m, q, x: (m + x * q, q * (1 + x))}, "recurrence does not give mu"),
    ],
    ids=["flipped g", "g without leave-one-out", "c without 1 - mu", "wrong recurrence"],
)
def test_wrong_coefficients_are_rejected(wrong, message):
    row = checks.check_coefficients(2, **wrong)[0]
    assert not row.passed
    assert message in row.detail


def test_a_wrong_proof_line_is_named():
    def lines_with_bad_leave_one_out(model, i, k):
        lines = checks.proof_lines(model, i, k)
        label, _, condition = lines[6]
        states = range(model.n_states)
        # includes j = i in the "leave-one-out" product: wrong
        wrong = sp.Add(
            *[
                -(sp.log(model.team(s)) + 1)
                * sp.Mul(*[1 - model.mu[j][s] for j in range(model.n_agents)])
                * sp.diff(model.mu[i][s], model.theta[i][k])
                for s in states
            ]
        )
        lines[6] = (label, wrong, condition)
        return lines

    rows = checks.check_proof_chain(2, lines=lines_with_bad_leave_one_out)
    failed = [row.check for row in rows if not row.passed]
    assert failed == ["proof line 5 -> 6", "proof line 6 -> 7"]
    assert "fails for agent 0, component 0" in rows[5].detail


def test_conditional_step_is_reported():
    rows = checks.check_proof_chain(1)
    assert "holds where mu_i(s) != 1" in rows[6].detail


def test_quotient_kernel_is_rejected_at_mu_i_one():
    def quotient_gradient(mu):
        q = np.prod(1 - mu, axis=0)
        log_m = np.log(1 - q)
        return -(log_m + 1) * q / (1 - mu)  # g = -c / (1 - mu_i): 0/0 at mu_i = 1

    row = checks.check_kernels(3, gradients={"quotient": quotient_gradient})[0]
    assert not row.passed and "quotient differs" in row.detail

    def quotient_policy(mu, dmu):
        return np.einsum("is,isp->ip", quotient_gradient(mu), dmu)

    row = checks.check_kernels(3, policies={"quotient policy": quotient_policy})[0]
    assert not row.passed and "quotient policy differs" in row.detail


def test_command_line_quick_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "verify", "--quick", "--json", str(tmp_path / "v.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROVED" in result.stdout.splitlines()[-1]
    rows = json.loads((tmp_path / "v.json").read_text())
    assert {row["check"] for row in rows} >= {
        "theorem 1",
        "coefficients g, c",
        "kernels vs lambdify",
    }
    assert max(row["n_agents"] for row in rows) == 3


def test_command_line_exits_non_zero_on_a_failure(monkeypatch, capsys):
    from verify import __main__ as command

    def failing_theorem(n_agents):
        return [checks.CheckResult("theorem 1", n_agents, False, 0.0, "differs for agent 0")]

    monkeypatch.setattr(checks, "check_theorem", failing_theorem)
    assert command.main(["--max-agents", "1"]) == 1
    output = capsys.readouterr().out
    assert "FAILED" in output.splitlines()[-1]
    assert "theorem 1" in output and "differs for agent 0" in output


def test_an_unwritable_json_path_fails_before_the_checks(monkeypatch, capsys, tmp_path):
    # It once failed with a traceback after the whole run.
    from verify import __main__ as command

    def not_to_be_run(n_agents):
        raise AssertionError("a check ran")

    monkeypatch.setattr(checks, "check_theorem", not_to_be_run)
    with pytest.raises(SystemExit) as exit_info:
        command.main(["--json", str(tmp_path / "missing" / "v.json")])
    assert exit_info.value.code == 2
    assert "--json: can't open" in capsys.readouterr().err


def test_json_to_stdout_leaves_the_table_on_stderr(monkeypatch, capsys, tmp_path):
    # "--json -" once wrote a file named "-"; now stdout holds the JSON alone, so that it
    # can be piped, and the table and verdict go to stderr.
    from verify import __main__ as command

    def one_row(name):
        return lambda n_agents: [checks.CheckResult(name, n_agents, True, 0.0, "exact zero")]

    for name in ("check_theorem", "check_proof_chain", "check_coefficients", "check_kernels"):
        monkeypatch.setattr(checks, name, one_row(name))
    monkeypatch.chdir(tmp_path)
    assert command.main(["--max-agents", "2", "--json", "-"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [(row["check"], row["n_agents"]) for row in rows][:3] == [
        ("check_theorem", 1),
        ("check_theorem", 2),
        ("check_proof_chain", 1),
    ]
    assert len(rows) == 8
    assert "PROVED: 8 of 8" in captured.err.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_max_agents_sets_the_largest_n_of_every_check(monkeypatch, capsys):
    # Above the defaults too: --max-agents once lowered the caps only, and a larger K
    # silently checked the defaults.
    from verify import __main__ as command

    seen = []

    def recorder(name):
        def check(n_agents):
            seen.append((name, n_agents))
            return [checks.CheckResult(name, n_agents, True, 0.0, "")]

        return check

    for name in ("check_theorem", "check_proof_chain", "check_coefficients", "check_kernels"):
        monkeypatch.setattr(checks, name, recorder(name))

    def largest(argv):
        seen.clear()
        assert command.main(argv) == 0
        capsys.readouterr()
        return {name: max(n for check, n in seen if check == name) for name, _ in seen}

    above = command.THEOREM_AGENTS + 1
    assert set(largest(["--max-agents", str(above)]).values()) == {above}
    defaults = largest([])
    assert defaults.pop("check_theorem") == command.THEOREM_AGENTS
    assert set(defaults.values()) == {command.CHAIN_AGENTS}
