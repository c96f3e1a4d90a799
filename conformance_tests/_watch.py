"""Run the suite in a child process and watch it: a time limit per test, a budget for the whole run.

A stuck socket read cannot be interrupted inside the process that makes
it, so the tests run in a child (:mod:`conformance_tests._child`) that sends
each test's start and outcome over a pipe. The parent hands each outcome
on as it comes. When a test gives no outcome within ``test_seconds``, the
parent asks the child for every thread's stack (SIGUSR1, written by
``faulthandler``), kills the child's whole process group, reports the test
as hung with where it was stuck, and goes on in a new child without the
tests already done. When the budget runs out, the test running is
reported as stopped and those not started as not run. The child runs in a
session of its own and dies with its parent; it is killed on every way out
of :func:`watch_suite`, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._explain import hang_stacks
from ._outcomes import CUT, FAILING, HUNG, NOT_RUN, TestOutcome, part_and_name
from ._run import SHRINK_SECONDS, SuiteResult

TEST_SECONDS = 60.0
BUDGET_SECONDS = 300.0
STACKS_WAIT = 2.0  # seconds for the child to write its stacks once asked
FINISH_GRACE = 10.0  # seconds for a child that has finished its tests to exit (its worker pool shuts down)
POLL = 0.25
STARTUP_SECONDS = 120.0  # for a child to import and collect the tests, at the least


@dataclass(frozen=True)
class Limits:
    """How long one test may take (shrinking included), and the whole run."""

    test_seconds: float = TEST_SECONDS
    budget_seconds: float = BUDGET_SECONDS
    shrink_seconds: float = SHRINK_SECONDS


@dataclass
class _Progress:
    """What the children have done so far, across restarts."""

    planned: list[str] | None = None  # node ids, from the first child's collection
    done: dict[str, TestOutcome] = field(default_factory=dict)
    counts: list[dict[str, dict[str, int]]] = field(default_factory=list)  # the latest per child
    logs: list[str] = field(default_factory=list)
    out_of_budget: bool = False
    stopped_early: str = ""  # why the run stopped before every test ran, if not the budget


class _Child:
    """One child process running the suite: its pipe, its stacks file, its log."""

    def __init__(self, args: Sequence[str], skip: Sequence[str], imports: Sequence[str], limits: Limits,
                 folder: Path, number: int) -> None:  # fmt: skip
        self.stacks = folder / f"stacks-{number}.txt"
        self.log = folder / f"log-{number}.txt"
        self._buffer = b""
        self.closed = False
        read_fd, write_fd = os.pipe()
        self._read_fd = read_fd
        config = folder / f"child-{number}.json"
        config.write_text(json.dumps({
            "args": list(args), "channel": write_fd, "stacks": str(self.stacks), "skip": list(skip),
            "imports": list(imports), "shrink_seconds": limits.shrink_seconds, "parent": os.getpid(),
        }))  # fmt: skip
        try:
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "conformance_tests._child", str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                    start_new_session=True, env=_child_environment(),
                )  # fmt: skip
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._selector = selectors.DefaultSelector()
        self._selector.register(read_fd, selectors.EVENT_READ)

    def events(self, timeout: float) -> list[dict[str, Any]]:
        """The events that arrive within ``timeout`` seconds (none if nothing does)."""
        if self.closed or not self._selector.select(max(timeout, 0.0)):
            return []
        chunk = os.read(self._read_fd, 1 << 16)
        if not chunk:
            self.closed = True
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def where(self) -> list[str]:
        """Every busy thread's stack, asked of the child (which must still run), trimmed."""
        if not hasattr(signal, "SIGUSR1") or self.process.poll() is not None:
            return []
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGUSR1)
        deadline, size = time.monotonic() + STACKS_WAIT, -1
        while time.monotonic() < deadline:  # the dump is written from a signal handler: wait until it stops growing
            time.sleep(0.1)
            now = self.stacks.stat().st_size if self.stacks.exists() else 0
            if now and now == size:
                break
            size = now
        return hang_stacks(self.stacks.read_text(errors="replace")) if self.stacks.exists() else []

    def kill(self) -> None:
        """Kill the child and everything it started (its process group); idempotent."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._read_fd)
        self._selector.close()
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _child_environment() -> dict[str, str]:
    """This environment, with this process's extra import folders (test helpers, a project's own modules)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    bases = tuple(os.path.abspath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    extra = [os.path.abspath(p or os.curdir) for p in sys.path]
    extra = [p for p in dict.fromkeys(extra) if not p.startswith(bases) and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join([*extra, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt here, so the child is killed on the way out.

    SIGINT too: a process started with SIGINT ignored (by a parent that ignores it) would not stop on Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def watch_suite(
    args: Sequence[str],
    *,
    limits: Limits = Limits(),
    imports: Sequence[str] = (),
    exitfirst: bool = False,
    on_outcome: Callable[[TestOutcome], None] | None = None,
) -> SuiteResult:
    """Run pytest ``args`` in watched children; each test's outcome goes to ``on_outcome`` as it finishes.

    The result holds every planned test: passed, failed, skipped, hung,
    stopped (running when the budget ran out) or not run. ``exit_code`` is 0
    only if every test ran and none failed or hung.
    """
    progress = _Progress()
    deadline = time.monotonic() + limits.budget_seconds
    report = on_outcome or (lambda outcome: None)

    def record(outcome: TestOutcome) -> None:
        progress.done[outcome.nodeid or f"{outcome.part}::{outcome.name}"] = outcome
        report(outcome)

    with tempfile.TemporaryDirectory(prefix="wfe-check-") as folder, _signals_interrupt():
        number = 0
        while True:
            child = _Child(args, list(progress.done), imports, limits, Path(folder), number)
            progress.counts.append({})
            try:
                again = _watch_child(child, progress, number, limits, deadline, record)
            finally:
                child.kill()
                progress.logs.append(child.output())
            number += 1
            if not again or (exitfirst and any(o.outcome in FAILING for o in progress.done.values())):
                break
    return _result(progress, exitfirst)


def _watch_child(child: _Child, progress: _Progress, number: int, limits: Limits, deadline: float,
                 record: Callable[[TestOutcome], None]) -> bool:  # fmt: skip
    """Follow one child until it ends; True if a new child should take over the tests left."""
    running: str | None = None
    since = started = time.monotonic()
    finished_at: float | None = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            progress.out_of_budget = True
            if running:
                part, name = part_and_name(running)
                record(TestOutcome(name, part, CUT, "the run's budget ran out while it ran", seconds=now - since,
                                   nodeid=running))  # fmt: skip
            return False
        if running and now - since > limits.test_seconds:
            part, name = part_and_name(running)
            stacks = child.where() or ["(no stack could be had from the test process)"]
            record(TestOutcome(name, part, HUNG, f"no result within {limits.test_seconds:g} s",
                               [f"no result within {limits.test_seconds:g} s; where it was:", *stacks],
                               seconds=now - since, nodeid=running))  # fmt: skip
            return True
        startup = max(limits.test_seconds, STARTUP_SECONDS)
        if progress.planned is None and not running and now - started > startup:
            progress.stopped_early = f"the test process collected nothing within {startup:g} s"
            return False
        if finished_at is not None and now - finished_at > FINISH_GRACE:
            return False  # every test is done; a child stuck on its way out is killed
        for event in child.events(POLL):
            kind = event["event"]
            if kind == "collected":
                if progress.planned is None:
                    progress.planned = list(event["tests"])
                    if not progress.planned:
                        progress.stopped_early = "no test was selected"
            elif kind == "start":
                running, since = event["nodeid"], time.monotonic()
            elif kind == "done":
                progress.counts[number] = event["counts"]
                record(TestOutcome(**event["outcome"]))
                running = None
            elif kind == "finished":
                progress.counts[number] = event["counts"]
                finished_at = time.monotonic()
        if child.closed:
            code = child.process.wait()
            if running:  # the child died under a test: that test failed, the others go on
                part, name = part_and_name(running)
                why = f"the test process died ({_exit_status(code)}) while it ran"
                tail = child.output().strip().splitlines()[-8:]
                record(TestOutcome(name, part, "failed", why, [why, *tail], time.monotonic() - since, running))
                return True
            if finished_at is None and progress.planned is None:
                progress.stopped_early = f"the test process ended ({_exit_status(code)}) before running any test"
            return False


def _exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _result(progress: _Progress, exitfirst: bool) -> SuiteResult:
    outcomes = list(progress.done.values())
    left = [nodeid for nodeid in progress.planned or () if nodeid not in progress.done]
    if progress.out_of_budget:
        why = "the run's budget ran out before it started"
    elif exitfirst and any(o.outcome in FAILING for o in outcomes):
        why = ""  # stopped at the first failure, as asked: the rest is not a finding
    else:
        why = progress.stopped_early or "the test process ended before it started"
    if why:
        for nodeid in left:
            part, name = part_and_name(nodeid)
            outcomes.append(TestOutcome(name, part, NOT_RUN, why, nodeid=nodeid))
    examples: dict[str, Counter[str]] = {}
    for counts in progress.counts:
        for part, tally in counts.items():
            examples.setdefault(part, Counter()).update(tally)
    bad = any(o.outcome in (*FAILING, CUT, NOT_RUN) for o in outcomes) or progress.stopped_early
    exit_code = 1 if bad or not outcomes else 0
    output = "".join(progress.logs) + (f"{progress.stopped_early}\n" if progress.stopped_early else "")
    return SuiteResult(exit_code, outcomes, examples, output, progress.out_of_budget)
