"""One outcome per conformance test, as each finishes: a pytest plugin that merges a test's reports.

:class:`Collector` turns a test's setup, call and teardown reports into one
:class:`TestOutcome` the moment the test finishes (``pytest_runtest_logfinish``),
with the wall time it took and, for a failure in any phase, the lines
:func:`conformance_tests._explain.describe_failure` makes of the exception
itself. The in-process :func:`conformance_tests._run.run_suite` keeps the
outcomes; the watched child process (:mod:`conformance_tests._child`) sends
each one to its parent as it comes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from ._explain import describe_failure

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
HUNG = "hung"  # gave no result within the per-test time limit
CUT = "stopped"  # was running when the whole run's budget ran out
NOT_RUN = "not run"  # not started: the budget ran out, or the run stopped at the first failure
FAILING = (FAILED, HUNG)


@dataclass
class TestOutcome:
    __test__ = False  # not a test class, whatever pytest makes of its name

    name: str  # the test function's name, e.g. test_put_is_idempotent
    part: str
    outcome: str  # passed, failed, skipped, hung, stopped or not run
    detail: str = ""  # for a failure, pytest's report (with hypothesis' falsifying example); for a skip, why
    failure: list[str] = field(default_factory=list)  # what failed, where, and the smallest counterexample
    seconds: float = 0.0
    nodeid: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def part_and_name(nodeid: str) -> tuple[str, str]:
    """``test_blobs.py::test_x[memory]`` -> ``("blobs", "test_x")``."""
    module, _, test = nodeid.partition("::")
    part = os.path.basename(module).removeprefix("test_").removesuffix(".py")
    return part, test.split("[", 1)[0] or part


class Collector:
    """A pytest plugin object: one :class:`TestOutcome` per test, handed to ``on_outcome`` when it finishes."""

    def __init__(self, on_outcome: Callable[[TestOutcome], None] | None = None) -> None:
        self.outcomes: list[TestOutcome] = []
        self._on_outcome = on_outcome
        self._running: dict[str, TestOutcome] = {}
        self._started: dict[str, float] = {}
        self._failures: dict[tuple[str, str], list[str]] = {}  # (nodeid, phase) -> lines from the exception

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        part, name = part_and_name(nodeid)
        self._started[nodeid] = time.monotonic()
        self._running[nodeid] = TestOutcome(name, part, PASSED, nodeid=nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and call.excinfo is not None:
            lines = describe_failure(call.excinfo.value)
            if call.when != "call":
                lines = [f"error in {call.when}:", *lines]
            self._failures[(item.nodeid, call.when)] = lines
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self._running.get(report.nodeid)
        if outcome is None or outcome.outcome == FAILED:
            return  # the first failure is the one worth telling
        if report.failed:
            outcome.outcome = FAILED
            outcome.detail = report.longreprtext
            outcome.failure = self._failures.pop((report.nodeid, report.when), []) or _last_lines(report)
        elif report.skipped and outcome.outcome == PASSED:
            outcome.outcome = SKIPPED
            if isinstance(report.longrepr, tuple):  # (file, line, "Skipped: why")
                outcome.detail = str(report.longrepr[2]).removeprefix("Skipped: ")

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        outcome = self._running.pop(nodeid, None)
        if outcome is None:
            return
        outcome.seconds = time.monotonic() - self._started.pop(nodeid, time.monotonic())
        self._finish(outcome)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a module that does not import: every test in it is lost, say why
            part, name = part_and_name(report.nodeid)
            lines = _last_lines(report)
            self._finish(TestOutcome(name, part, FAILED, report.longreprtext, ["error collecting:", *lines],
                                     nodeid=report.nodeid))  # fmt: skip

    def _finish(self, outcome: TestOutcome) -> None:
        self.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)


def _last_lines(report: pytest.TestReport | pytest.CollectReport, count: int = 8) -> list[str]:
    """Without the exception object (a report from elsewhere), the error lines of pytest's text."""
    text = report.longreprtext
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return errors[:count] or text.strip().splitlines()[-count:]
