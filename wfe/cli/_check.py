"""``wfe check-store URL``: run the backend conformance suite against one store URL.

The suite runs in a watched child process: one line per property as it
finishes, a time limit per property (a property past it is reported as
hung, with the stack where it was stuck) and a budget for the whole run
(properties not started by then are reported, and the check does not
pass). Then a summary per store part, every failure told (the assertion or
exception, where, and hypothesis' smallest counterexample), and a verdict
on the last line.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from typing import Any

from . import EXIT_FAILED, EXIT_OK, add_common_flags, add_store_option, parse_options

STATUS_WIDTH = 8
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|m|min|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """``90``, ``90s``, ``5m`` or ``1h`` in seconds; argparse's type for the time options."""
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration like 90, 90s or 5m, got {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-store",
        help="run the backend conformance suite against a store URL",
        description="Run the conformance suite (blobs, functions, configs, actions, runs) against a "
        "fresh sub-prefix of URL, one line per property as it finishes. Exits 0 if every property holds, "
        "1 if any fails or hangs, or if the budget ran out before all of them ran.",
    )
    parser.add_argument("url", metavar="URL", help="store URL, e.g. memory://scratch or s3://bucket/prefix")
    add_store_option(parser)
    parser.add_argument(
        "--profile",
        choices=("ci", "soak"),
        default="ci",
        help="hypothesis settings: 'ci' (quick, default) or 'soak' (many more examples and steps)",
    )
    parser.add_argument(
        "--test-timeout",
        type=duration,
        default=None,
        metavar="TIME",
        help="a property with no result after this long (shrinking included) is reported as hung, with "
        "where it was stuck, and the others go on (default 60s; 10m with --profile soak)",
    )
    parser.add_argument(
        "--budget",
        type=duration,
        default=None,
        metavar="TIME",
        help="the whole run's time: properties not started by then are reported as not run, and the check "
        "does not pass (default 5m; 2h with --profile soak)",
    )
    parser.add_argument("-k", dest="select", metavar="EXPRESSION",
                        help="only the properties whose names match (pytest's -k syntax)")  # fmt: skip
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing property")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's full report at the end")
    add_common_flags(parser)
    parser.set_defaults(handler=check_main)


def check_main(args: argparse.Namespace) -> int:
    options = parse_options(args.store_option)
    soak = args.profile == "soak"
    test_seconds = args.test_timeout or (600.0 if soak else 60.0)
    budget = args.budget or (7200.0 if soak else 300.0)
    store = _open_within(args.url, options, test_seconds)  # a bad URL or option is a usage error (exit 2)
    if store is None:
        return EXIT_FAILED
    try:
        from conformance_tests._run import pytest_args
        from conformance_tests._watch import Limits, watch_suite
        from conformance_tests._workers import filesystem_module
        from conformance_tests.plugin import capability_lines
    except ImportError as exc:  # pytest or hypothesis missing
        from .._errors import WfeError

        raise WfeError(f"check-store needs the conformance extra (pip install 'wfe[conformance]'): {exc}") from None

    print(f"checking {args.url} (profile {args.profile})", flush=True)
    for line in capability_lines(store.io):  # what the backend has, and what does not hold where it lacks some
        print(line, flush=True)
    print(f"limits: {_seconds(test_seconds)} a property, {_seconds(budget)} in all", flush=True)
    extra = [*(["--exitfirst"] if args.exitfirst else []), *(["-k", args.select] if args.select else [])]
    module = filesystem_module(store)
    result = watch_suite(
        pytest_args(args.url, options=options, profile=args.profile, extra_args=extra),
        limits=Limits(test_seconds, budget, min(30.0, test_seconds / 2)),
        imports=[module] if module else [],
        exitfirst=args.exitfirst,
        on_outcome=_progress_line,
    )
    if args.verbose:
        print(result.output, end="")
    if not result.outcomes:
        if not args.verbose:
            print(result.output[-4000:], end="")
        print("error: the conformance suite did not run", file=sys.stderr)
        return EXIT_FAILED
    _summary(result)
    return _verdict(result, args.url, budget)


def _open_within(url: str, options: dict[str, str], seconds: float) -> Any:
    """The store, opened in a thread: a client that hangs at opening (a probe, a login) fails the check (None)."""
    from ..store._store import open_store

    outcome: dict[str, Any] = {}

    def open_it() -> None:
        try:
            outcome["store"] = open_store(url, **options)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    opener = threading.Thread(target=open_it, name="wfe-check-store-open", daemon=True)
    opener.start()
    opener.join(seconds)
    if opener.is_alive():  # a daemon thread: left behind, it does not keep the process from ending
        print(f"checking {url}: opening the store gave no answer within {_seconds(seconds)} (--test-timeout); "
              f"it was in {_thread_stack(opener)}", flush=True)  # fmt: skip
        print(f"not verified: {url} did not open", flush=True)
        return None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["store"]


def _thread_stack(thread: threading.Thread) -> str:
    import traceback

    frame = sys._current_frames().get(thread.ident or 0)
    if frame is None:
        return "(unknown)"
    calls = traceback.extract_stack(frame)[-3:]
    return " <- ".join(f"{summary.name} ({summary.filename}:{summary.lineno})" for summary in reversed(calls))


def _seconds(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def _progress_line(outcome: Any) -> None:
    """One line per property as it finishes: part, outcome, seconds, name (and, for a failure, its first line)."""
    why = ""
    if outcome.outcome == "hung":
        blocked = next((line for line in outcome.failure if "blocked in " in line), "")
        why = f"  ({outcome.detail}{', ' + blocked[blocked.index('blocked in ') :] if blocked else ''})"
    elif outcome.outcome == "failed" and outcome.failure:
        why = f"  ({outcome.failure[0][:100]})"
    print(f"{outcome.part:<10} {outcome.outcome:<{STATUS_WIDTH}} {outcome.seconds:6.1f} s  {outcome.name}{why}",
          flush=True)  # fmt: skip


def _summary(result: Any) -> None:
    """A line per part, each failure told under it, and why tests were skipped or not run."""
    for part, outcomes in result.by_part().items():
        failed = [o for o in outcomes if o.outcome in ("failed", "hung")]
        passed = sum(o.outcome == "passed" for o in outcomes)
        skipped = sum(o.outcome == "skipped" for o in outcomes)
        hung = sum(o.outcome == "hung" for o in outcomes)
        left = sum(o.outcome in ("stopped", "not run") for o in outcomes)
        tally = result.examples.get(part)
        examples = f", {tally['examples']} examples" if tally else ""
        steps = f", {tally['steps']} steps" if tally and tally["steps"] else ""
        if not outcomes:
            print(f"{part:<10} {'-':<4}  not run")
            continue
        status = "FAIL" if failed else "-" if left else "ok"
        extra = f", {skipped} skipped" if skipped else ""
        extra += f", {hung} hung" if hung else ""
        extra += f", {left} not run" if left else ""
        print(f"{part:<10} {status:<4}  {passed} passed{extra}{examples}{steps}")
        for outcome in failed:
            print(f"  {'hung' if outcome.outcome == 'hung' else 'failed'}: {outcome.name}")
            for line in outcome.failure or [outcome.detail]:
                print(f"    {line}")
        for reason, names in _reasons(outcomes, ("skipped",)).items():
            print(f"  skipped {len(names)}: {reason}")
        for reason, names in _reasons(outcomes, ("stopped", "not run")).items():
            print(f"  not run {len(names)}: {reason}: {', '.join(names)}")


def _verdict(result: Any, url: str, budget: float) -> int:
    failures = len(result.failed)
    left = len(result.not_run)
    hung = sum(o.outcome == "hung" for o in result.failed)
    said = []
    if failures:
        said.append(f"{failures} propert{'y' if failures == 1 else 'ies'} failed" + (f" ({hung} hung)" if hung else ""))
    if left:
        cause = f"within the budget of {_seconds(budget)}" if result.out_of_budget else "to the end"
        said.append(f"{left} not run {cause}")
    if said:
        print(f"{' and '.join(said)} on {url}" + ("; not verified" if left and not failures else ""))
        return EXIT_FAILED
    if result.exit_code:
        print(f"the conformance suite did not finish cleanly on {url}")
        return EXIT_FAILED
    print(f"all properties hold on {url}")
    return EXIT_OK


def _reasons(outcomes: list[Any], kinds: tuple[str, ...]) -> dict[str, list[str]]:
    """The tests of these kinds, by the reason given (the same reason once, however many tests it covers)."""
    reasons: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.outcome in kinds:
            reasons.setdefault(outcome.detail or "no reason given", []).append(outcome.name)
    return reasons
