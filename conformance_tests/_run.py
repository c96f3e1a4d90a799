"""Run the suite in this process against one URL and collect a result per store part.

This is what ``wfe check-store`` calls; tests use it to show the suite fails
on broken backends. ``pytest conformance_tests --store-url URL`` runs the
same tests with pytest's own report.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class TestOutcome:
    name: str  # the test function's name, e.g. test_put_is_idempotent
    part: str
    outcome: str  # passed, failed or skipped
    detail: str = ""  # for a failure, pytest's report (with hypothesis' falsifying example); for a skip, why


@dataclass
class SuiteResult:
    exit_code: int
    outcomes: list[TestOutcome] = field(default_factory=list)
    examples: dict[str, Counter[str]] = field(default_factory=dict)  # part -> examples, steps
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failed

    @property
    def failed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.outcome == "failed"]

    def failed_names(self) -> set[str]:
        return {o.name for o in self.failed}

    def by_part(self) -> dict[str, list[TestOutcome]]:
        from ._support import PARTS

        grouped: dict[str, list[TestOutcome]] = {part: [] for part in PARTS}
        for outcome in self.outcomes:
            grouped.setdefault(outcome.part, []).append(outcome)
        return grouped


class _Collector:
    """A pytest plugin object that records one outcome per test."""

    def __init__(self) -> None:
        self.outcomes: list[TestOutcome] = []
        self.counts: dict[tuple[str, str], Counter[str]] = {}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ._support import TALLY

        tally = session.config.stash.get(TALLY, None)
        self.counts = tally.snapshot() if tally else {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        setup_problem = report.when == "setup" and report.outcome != "passed"
        if report.when == "call" or setup_problem or (report.when == "teardown" and report.failed):
            module, _, test = report.nodeid.partition("::")
            part = os.path.basename(module).removeprefix("test_").removesuffix(".py")
            name = test.split("[", 1)[0]
            detail = report.longreprtext if report.outcome == "failed" else ""
            if report.skipped and isinstance(report.longrepr, tuple):  # (file, line, "Skipped: why")
                detail = str(report.longrepr[2]).removeprefix("Skipped: ")
            self.outcomes.append(TestOutcome(name, part, report.outcome, detail))


def run_suite(
    url: str,
    *,
    options: Mapping[str, str] | None = None,
    profile: str = "ci",
    extra_args: Sequence[str] = (),
    capture_output: bool = True,
) -> SuiteResult:
    """Run every conformance test against ``url``; never raises for a failing test."""
    args = [
        PACKAGE_DIR,
        "--store-url",
        url,
        "--conformance-profile",
        profile,
        "--conformance-no-db",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        PACKAGE_DIR,
        "-o",
        "addopts=",
        "-q",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *extra_args,
    ]
    for key, value in (options or {}).items():
        args += ["--store-option", f"{key}={value}"]
    collector = _Collector()
    buffer = io.StringIO()
    redirect: Any = contextlib.redirect_stdout(buffer) if capture_output else contextlib.nullcontext()
    with redirect:
        exit_code = int(pytest.main(args, plugins=[collector]))
    examples: dict[str, Counter[str]] = {}
    for (_backend, part), tally in collector.counts.items():
        examples.setdefault(part, Counter()).update(tally)
    return SuiteResult(exit_code, collector.outcomes, examples, buffer.getvalue())
