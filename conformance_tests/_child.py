"""The conformance suite in a process of its own, watched by :mod:`conformance_tests._watch`.

``python -m conformance_tests._child CONFIG`` reads a JSON file::

    {"args": [pytest arguments], "channel": fd, "stacks": path, "skip": [node ids],
     "imports": [modules], "shrink_seconds": seconds}

imports the modules (a filesystem registered by importing its module, as
worker processes do), runs pytest without the tests in ``skip`` (those an
earlier child finished), and writes one JSON line per event to the file
descriptor ``channel``: ``collected`` (the node ids about to run),
``start`` and ``done`` (with the outcome and the example counts so far)
for each test, ``finished`` at the end. On SIGUSR1 it writes every
thread's stack to ``stacks``, for its parent to say where a test hung.
It dies with its parent.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

import pytest

from ._outcomes import Collector, TestOutcome, part_and_name
from ._run import bounded_shrinking, tally_by_part

PR_SET_PDEATHSIG = 1


class _Channel:
    """The suite's half of the pipe to the parent: one JSON object a line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, event: str, **fields: Any) -> None:
        data = (json.dumps({"event": event, **fields}) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]


class _Reporter:
    """Leaves out what is done already and tells the parent about each test as it starts and ends."""

    def __init__(self, channel: _Channel, skip: Iterable[str]) -> None:
        self.channel = channel
        self.skip = set(skip)
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        done = [item for item in items if item.nodeid in self.skip]
        if done:
            items[:] = [item for item in items if item.nodeid not in self.skip]
            config.hook.pytest_deselected(items=done)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.channel.send("collected", tests=[item.nodeid for item in session.items])

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.channel.send("start", nodeid=nodeid, part=part_and_name(nodeid)[0])

    def done(self, outcome: TestOutcome) -> None:
        self.channel.send("done", outcome=outcome.as_dict(), counts=self._counts())

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.channel.send("finished", exit_code=int(exitstatus), counts=self._counts())

    def _counts(self) -> dict[str, dict[str, int]]:
        from ._support import TALLY

        tally = self.config.stash.get(TALLY, None) if self.config else None
        if tally is None:
            return {}
        return {part: dict(counts) for part, counts in tally_by_part(tally.snapshot()).items()}


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies (Linux); a parent already gone means exit now."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def main(config_path: str) -> int:
    with open(config_path) as handle:
        config = json.load(handle)
    _die_with_parent(int(config["parent"]))
    stacks = open(config["stacks"], "w")  # noqa: SIM115  (kept open for the signal handler)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    for module in config.get("imports", ()):
        importlib.import_module(module)
    reporter = _Reporter(_Channel(int(config["channel"])), config.get("skip", ()))
    collector = Collector(reporter.done)
    with bounded_shrinking(float(config["shrink_seconds"])):
        return int(pytest.main(list(config["args"]), plugins=[reporter, collector]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
