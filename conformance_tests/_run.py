"""Run the suite against one URL and collect a result per store part.

:func:`run_suite` runs it in this process (tests use it to show the suite
fails on broken backends); ``wfe check-store`` runs it in a watched child
process instead (:func:`conformance_tests._watch.watch_suite`), which bounds
every test's time and the whole run's. ``pytest conformance_tests --store-url URL``
runs the same tests with pytest's own report.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ._outcomes import CUT, FAILING, NOT_RUN, Collector, TestOutcome

__all__ = ["PACKAGE_DIR", "SHRINK_SECONDS", "SuiteResult", "TestOutcome", "bounded_shrinking", "pytest_args",
           "run_suite"]  # fmt: skip

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SHRINK_SECONDS = 30.0  # hypothesis' own bound is 300 s a failure: a report should come within a minute


@dataclass
class SuiteResult:
    exit_code: int
    outcomes: list[TestOutcome] = field(default_factory=list)
    examples: dict[str, Counter[str]] = field(default_factory=dict)  # part -> examples, steps
    output: str = ""
    out_of_budget: bool = False  # the whole run's time ran out before every test had run

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failed and not self.not_run

    @property
    def failed(self) -> list[TestOutcome]:
        """The tests that failed or hung."""
        return [o for o in self.outcomes if o.outcome in FAILING]

    @property
    def not_run(self) -> list[TestOutcome]:
        """The tests that did not run to the end: cut off or never started."""
        return [o for o in self.outcomes if o.outcome in (NOT_RUN, CUT)]

    def failed_names(self) -> set[str]:
        return {o.name for o in self.failed}

    def by_part(self) -> dict[str, list[TestOutcome]]:
        from ._support import PARTS

        grouped: dict[str, list[TestOutcome]] = {part: [] for part in PARTS}
        for outcome in self.outcomes:
            grouped.setdefault(outcome.part, []).append(outcome)
        return grouped


def pytest_args(url: str, *, options: Mapping[str, str] | None = None, profile: str = "ci",
                extra_args: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """The pytest command line that runs every conformance test against ``url``."""
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
    return args


@contextlib.contextmanager
def bounded_shrinking(seconds: float) -> Iterator[None]:
    """Hypothesis shrinks a failure for at most ``seconds`` (its documented, monkeypatchable bound)."""
    from hypothesis.internal.conjecture import engine

    saved = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


def tally_by_part(counts: Mapping[tuple[str, str], Counter[str]]) -> dict[str, Counter[str]]:
    """A session's (backend, part) counts summed per part."""
    examples: dict[str, Counter[str]] = {}
    for (_backend, part), tally in counts.items():
        examples.setdefault(part, Counter()).update(tally)
    return examples


class _Tally:
    """Reads the session's example and step counts when it ends."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], Counter[str]] = {}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ._support import TALLY

        tally = session.config.stash.get(TALLY, None)
        self.counts = tally.snapshot() if tally else {}


def run_suite(
    url: str,
    *,
    options: Mapping[str, str] | None = None,
    profile: str = "ci",
    extra_args: Sequence[str] = (),
    capture_output: bool = True,
    shrink_seconds: float = SHRINK_SECONDS,
) -> SuiteResult:
    """Run every conformance test against ``url`` in this process; never raises for a failing test."""
    args = pytest_args(url, options=options, profile=profile, extra_args=extra_args)
    collector, tally = Collector(), _Tally()
    buffer = io.StringIO()
    redirect: Any = contextlib.redirect_stdout(buffer) if capture_output else contextlib.nullcontext()
    with redirect, bounded_shrinking(shrink_seconds):
        exit_code = int(pytest.main(args, plugins=[collector, tally]))
    return SuiteResult(exit_code, collector.outcomes, tally_by_part(tally.counts), buffer.getvalue())
