"""``wfe check-store URL``: run the backend conformance suite against one store URL."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from . import EXIT_FAILED, EXIT_OK, add_common_flags, add_store_option, parse_options

_FALSIFYING = re.compile(r"^\s*E?\s*(Falsifying|Failing) (explicit )?(example|test case)", re.IGNORECASE)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-store",
        help="run the backend conformance suite against a store URL",
        description="Run the conformance suite (blobs, functions, configs, actions, runs) against a "
        "fresh sub-prefix of URL. Exits 0 if every property holds, 1 if any fails.",
    )
    parser.add_argument("url", metavar="URL", help="store URL, e.g. memory://scratch or s3://bucket/prefix")
    add_store_option(parser)
    parser.add_argument(
        "--profile",
        choices=("ci", "soak"),
        default="ci",
        help="hypothesis settings: 'ci' (quick, default) or 'soak' (many more examples and steps)",
    )
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing property")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's full report")
    add_common_flags(parser)
    parser.set_defaults(handler=check_main)


def check_main(args: argparse.Namespace) -> int:
    from ..store._store import open_store

    options = parse_options(args.store_option)
    store = open_store(args.url, **options)  # a bad URL or option is a usage error (exit 2), not a failed check
    try:
        from conformance_tests._run import run_suite
        from conformance_tests.plugin import capability_lines
    except ImportError as exc:  # pytest or hypothesis missing
        from .._errors import WfeError

        raise WfeError(f"check-store needs the conformance extra (pip install 'wfe[conformance]'): {exc}") from None

    print(f"checking {args.url} (profile {args.profile})", flush=True)
    for line in capability_lines(store.io):  # what the backend has, and what does not hold where it lacks some
        print(line, flush=True)
    pytest_args = ["--exitfirst"] if args.exitfirst else []
    result = run_suite(
        args.url, options=options, profile=args.profile, extra_args=pytest_args, capture_output=not args.verbose
    )
    if not result.outcomes:
        print(result.output, end="")
        print(f"error: the conformance suite did not run (pytest exit code {result.exit_code})", file=sys.stderr)
        return EXIT_FAILED
    for part, outcomes in result.by_part().items():
        failed = [o for o in outcomes if o.outcome == "failed"]
        passed = sum(o.outcome == "passed" for o in outcomes)
        skipped = sum(o.outcome == "skipped" for o in outcomes)
        tally = result.examples.get(part)
        examples = f", {tally['examples']} examples" if tally else ""
        steps = f", {tally['steps']} steps" if tally and tally["steps"] else ""
        status = "FAIL" if failed else "ok" if outcomes else "-"
        if not outcomes:
            print(f"{part:<10} {status:<4}  not run")
            continue
        extra = f", {skipped} skipped" if skipped else ""
        print(f"{part:<10} {status:<4}  {passed} passed{extra}{examples}{steps}")
        for outcome in failed:
            print(f"  failed: {outcome.name}")
            for line in _counterexample(outcome.detail):
                print(f"    {line}")
        for reason, names in _skip_reasons(outcomes).items():
            print(f"  skipped {len(names)}: {reason}")
    failures = len(result.failed)
    if failures or result.exit_code:
        print(f"{failures} propert{'y' if failures == 1 else 'ies'} failed on {args.url}")
        return EXIT_FAILED
    print(f"all properties hold on {args.url}")
    return EXIT_OK


def _skip_reasons(outcomes: list[Any]) -> dict[str, list[str]]:
    """The tests skipped, by the reason given (the same reason once, however many tests it skipped)."""
    reasons: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.outcome == "skipped":
            reasons.setdefault(outcome.detail or "no reason given", []).append(outcome.name)
    return reasons


def _counterexample(report: str, limit: int = 30) -> list[str]:
    """The hypothesis falsifying example from a pytest report, or its last error lines."""
    import textwrap

    lines = [line[1:] if line.startswith("E") else line for line in report.splitlines()]
    for index, line in enumerate(lines):
        if _FALSIFYING.match(line):
            block = []
            for follow in lines[index : index + limit]:
                if follow.strip().startswith(("You can reproduce", "Explanation:")):
                    break
                if follow.strip():
                    block.append(follow)
            return textwrap.dedent("\n".join(block)).splitlines()
    errors = [line.strip() for line in report.splitlines() if line.startswith("E ")]
    return errors[:3]
