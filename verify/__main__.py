"""python -m verify: symbolic proof checks of Theorem 1 and of fastcov's kernels."""

import argparse
import contextlib
import dataclasses
import json
import sys
import time

from . import checks

THEOREM_AGENTS = 8  # check 1 for N = 1..8
CHAIN_AGENTS = 6  # checks 2-4 for N = 1..6
QUICK_AGENTS = 3


def main(argv=None):
    """Run the checks, print the table and a verdict; return 0 only if every check passed."""
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__)
    parser.add_argument(
        "--max-agents",
        type=int,
        help=f"largest N for every check (default {THEOREM_AGENTS} for Theorem 1, "
        f"{CHAIN_AGENTS} for the others; larger takes longer)",
    )
    parser.add_argument("--quick", action="store_true", help=f"N <= {QUICK_AGENTS}, for CI")
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write the rows as JSON to FILE; '-' writes them to stdout, "
        "and the table to stderr",
    )
    parser.add_argument("--latex", action="store_true", help="print the derived gradient, N = 2")
    args = parser.parse_args(argv)
    cap = QUICK_AGENTS if args.quick else args.max_agents
    if cap is not None and cap < 1:
        parser.error("--max-agents must be at least 1")
    # With the JSON on stdout, the table goes to stderr, so that stdout parses.
    table = sys.stderr if args.json == "-" else sys.stdout
    with _json_file(parser, args.json) as json_file:
        failed = _run_checks(cap, json_file, table)
    if args.latex:
        _print_latex(table)
    return 1 if failed else 0


def _json_file(parser, path):
    """``path`` opened for writing, before the checks run, so that a path that cannot be
    written fails at once (argparse.FileType did so, and Python 3.14 deprecates it); a
    context giving None where no path was given; ``-`` is stdout, left open.
    """
    if path is None:
        return contextlib.nullcontext()
    if path == "-":
        return contextlib.nullcontext(sys.stdout)
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        parser.error(f"argument --json: can't open '{path}': {error.strerror}")


def _run_checks(cap, json_file, table):
    """Run every check for N up to ``cap`` (None: the defaults), print the table and the
    verdict to the stream ``table``, write the rows to ``json_file`` unless it is None;
    return the failed rows.
    """
    start = time.perf_counter()
    rows = []
    print(f"{'check':34} {'N':>2}  {'result':6} {'seconds':>8}  detail", file=table)
    plan = [
        (checks.check_theorem, THEOREM_AGENTS),
        (checks.check_proof_chain, CHAIN_AGENTS),
        (checks.check_coefficients, CHAIN_AGENTS),
        (checks.check_kernels, CHAIN_AGENTS),
    ]
    for check, largest in plan:
        for n_agents in range(1, (cap or largest) + 1):
            for row in check(n_agents):
                rows.append(row)
                result = "ok" if row.passed else "FAILED"
                line = f"{row.check:34} {row.n_agents:>2}  {result:6} {row.seconds:8.2f}"
                print(f"{line}  {row.detail}", file=table, flush=True)
    failed = [row for row in rows if not row.passed]
    total = time.perf_counter() - start
    verdict = "FAILED" if failed else "PROVED"
    print(
        f"{verdict}: {len(rows) - len(failed)} of {len(rows)} checks passed in {total:.1f} s",
        file=table,
    )
    if json_file is not None:
        json.dump([dataclasses.asdict(row) for row in rows], json_file, indent=1)
        json_file.write("\n")
    return failed


def _print_latex(stream):
    import sympy as sp

    from .model import Model

    model = Model(2, n_states=1, n_parameters=1)
    derived = sp.diff(model.objective(), model.theta[0][0])
    print(r"\nabla_{\theta_0} J = " + sp.latex(sp.simplify(derived)), file=stream)


if __name__ == "__main__":
    sys.exit(main())
