"""``wfe check-store`` reports as it goes, within its limits, and tells every failure in full.

The suite runs in a watched child process (:mod:`conformance_tests._watch`).
These tests point it at a filesystem whose reads of one store part block
forever on a socket (as a client whose server stopped answering does), at
filesystems that break a promise, and at small test files that fail each
way hypothesis can report a failure; and they check what a user sees: a
line per test while the run goes on, a hang named as one with the frame it
blocked in, the budget's verdict, and no process left behind whatever way
the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest
from faulty_fs import Faultless
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance_tests._explain import describe_failure, hang_stacks
from conformance_tests._watch import Limits, watch_suite
from wfe.cli._check import duration

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class HangingReadFS(Faultless):
    """Reads of existing files under ``hang_under`` (``blobs/``) wait forever for a socket's answer.

    The wait is a blocking ``recv`` on a socket pair whose other end never
    writes: nothing in the process can interrupt it, as with a server that
    accepted the request and went silent.
    """

    protocol = "hanging-read"

    def __init__(self, base: str, hang_under: str = "blobs/", login: str = "answered", **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.hang_under = hang_under
        if login == "unanswered":  # a client whose login never gets an answer
            self._wait_for_an_answer()

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        if self.hang_under in path and self.exists(path):
            self._wait_for_an_answer()
        data: bytes = super().cat_file(path, start, end, **kwargs)
        return data

    def _wait_for_an_answer(self) -> None:
        asking, answering = socket.socketpair()
        with asking, answering:
            asking.recv(1)  # never answered


fsspec.register_implementation(HangingReadFS.protocol, HangingReadFS, clobber=True)

# Three properties that draw only bytes (hypothesis builds nothing slow before their first example), in the
# order they run: one passes, one reads a stored blob and hangs, one reads only missing blobs and passes.
BEFORE = "test_missing_action_is_a_miss"
HANGS = "test_put_returns_sha256_and_round_trips"
AFTER = "test_missing_blob_raises_blob_not_found"
SELECTION = f"{BEFORE} or {HANGS} or {AFTER}"


# The wfe command with this module's filesystems registered first, as `pytest -p MODULE` would.
LAUNCH = "import sys, test_check_store_report; from wfe.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Watched:
    """A finished ``wfe check-store`` process: its lines, when each arrived, and when it ended."""

    code: int
    lines: list[str]
    arrived: list[float]  # seconds since the start, per line
    ended: float
    stderr: str

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    def line_for(self, name: str) -> str:
        found = [line for line in self.lines if line.endswith(f"  {name}") or f"  {name}  (" in line]
        assert len(found) == 1, self.stdout
        return found[0]


def _check_store(url: str, *args: str, marker: str, cwd: Path, interrupt: signal.Signals | None = None,
                 timeout: float = 120) -> Watched:  # fmt: skip
    """Run ``python -m wfe check-store URL ARGS``, reading its stdout line by line as it comes.

    With ``interrupt``, that signal is sent once the first line about a test has arrived.
    """
    env = {**os.environ, "WFE_TEST_MARKER": marker, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    env.pop("PYTEST_ADDOPTS", None)
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, "check-store", url, *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)  # fmt: skip
    started = time.monotonic()
    lines: list[str] = []
    arrived: list[float] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            arrived.append(time.monotonic() - started)
            if interrupt and _test_line(line) and process.poll() is None:
                process.send_signal(interrupt)
                interrupt = None
            assert time.monotonic() - started < timeout, "\n".join(lines)
        code = process.wait(timeout)
        ended = time.monotonic() - started
        assert process.stderr is not None
        return Watched(code, lines, arrived, ended, process.stderr.read())
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def _test_line(line: str) -> bool:
    words = line.split()
    return len(words) >= 4 and words[1] in {"passed", "failed", "skipped", "hung", "stopped"} and words[3] == "s"


def _processes_with(marker: str) -> list[int]:
    """The processes whose environment carries ``marker`` (check-store's children inherit it)."""
    found = []
    needle = f"WFE_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A mark in the environment of check-store and all it starts; none of them may outlive the test."""
    mark = uuid.uuid4().hex
    yield mark
    deadline = time.monotonic() + 5
    while _processes_with(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _processes_with(mark)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def _hanging_url(tmp_path: Path) -> tuple[str, list[str]]:
    return "hanging-read://check", ["--store-option", f"base={tmp_path}"]


def test_a_hang_is_named_with_the_frame_it_blocked_in_and_the_run_goes_on(tmp_path: Path, marker: str) -> None:
    url, options = _hanging_url(tmp_path)
    run = _check_store(url, *options, "-k", SELECTION, "--test-timeout", "6", marker=marker, cwd=tmp_path)
    assert run.code == 1, run.stdout + run.stderr
    assert run.line_for(BEFORE).startswith("actions    passed "), run.stdout
    hung = run.line_for(HANGS)
    assert hung.startswith("blobs      hung        6.") and "blocked in _wait_for_an_answer (" in hung, hung
    assert run.line_for(AFTER).startswith("blobs      passed "), run.stdout  # went on after the hang, in a new child
    # Each line came as its test finished, not at the end.
    first = next(index for index, line in enumerate(run.lines) if _test_line(line))
    assert run.ended - run.arrived[first] > 6, (run.arrived, run.ended)
    assert run.ended < 60, run.ended
    summary = run.stdout[run.stdout.index("\nblobs      FAIL") :]
    assert summary.startswith("\nblobs      FAIL  1 passed, 1 hung"), summary
    assert "\nactions    ok    1 passed" in summary, summary
    told = summary[summary.index(f"  hung: {HANGS}") :].splitlines()
    assert told[1] == "    no result within 6 s; where it was:", told
    assert "blocked in _wait_for_an_answer (test_check_store_report.py:" in told[2], "\n".join(told)
    frames = "\n".join(told[3:12])
    assert "in cat_file" in frames and "conformance_tests/test_blobs.py" in frames, frames
    assert run.lines[-1] == f"1 property failed (1 hung) on {url}"


def test_a_store_that_hangs_while_opening_fails_the_check_and_says_where(tmp_path: Path, marker: str) -> None:
    url = "hanging-read://check"
    options = ["--store-option", f"base={tmp_path}", "--store-option", "login=unanswered"]
    run = _check_store(url, *options, "--test-timeout", "3", marker=marker, cwd=tmp_path)
    assert run.code == 1, run.stdout + run.stderr
    assert run.ended < 20, run.ended
    assert run.lines[0].startswith(f"checking {url}: opening the store gave no answer within 3 s"), run.stdout
    assert "it was in _wait_for_an_answer (" in run.lines[0], run.stdout
    assert run.lines[-1] == f"not verified: {url} did not open"


@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_check_leaves_no_process_behind(tmp_path: Path, marker: str,
                                                       interrupt: signal.Signals) -> None:  # fmt: skip
    url, options = _hanging_url(tmp_path)
    run = _check_store(url, *options, "-k", SELECTION, marker=marker, cwd=tmp_path, interrupt=interrupt)
    assert run.code == 130, run.stdout + run.stderr
    assert run.ended < 20
    # the marker fixture checks that the child, and whatever it started, is gone


def test_the_budget_stops_the_run_and_the_verdict_says_it_is_not_verified(tmp_path: Path, marker: str) -> None:
    url, options = _hanging_url(tmp_path)
    # The budget runs out during the hang (the per-test limit, 60 s by default, is further off).
    run = _check_store(url, *options, "-k", SELECTION, "--budget", "20s", marker=marker, cwd=tmp_path)
    assert run.code == 1, run.stdout + run.stderr
    assert run.ended < 45, run.ended
    assert run.line_for(HANGS).startswith("blobs      stopped"), run.stdout
    assert "\nblobs      -     0 passed, 2 not run" in run.stdout, run.stdout
    assert f"  not run 1: the run's budget ran out while it ran: {HANGS}" in run.lines, run.stdout
    assert f"  not run 1: the run's budget ran out before it started: {AFTER}" in run.lines, run.stdout
    assert run.lines[-1] == f"2 not run within the budget of 20 s on {url}; not verified"


def test_a_failing_property_shows_its_assertion_and_counterexample(tmp_path: Path, marker: str) -> None:
    url = "faulty-delete://check"
    run = _check_store(url, "--store-option", f"base={tmp_path}", "-k", "test_exists_delete_and_iterate_agree",
                       marker=marker, cwd=tmp_path)  # fmt: skip
    assert run.code == 1, run.stdout + run.stderr
    told = run.stdout[run.stdout.index("  failed: test_exists_delete_and_iterate_agree") :].splitlines()
    assert told[1].startswith("    AssertionError"), told
    assert any(line.startswith("    at conformance_tests/test_blobs.py:") for line in told), told
    assert any("Failing test case" in line or "Falsifying example" in line for line in told), told
    assert not any("reproduce" in line for line in told), told
    assert run.lines[-1] == f"1 property failed on {url}"


# every form a failure takes, through the watched child on a small test file

FORMS = """
import itertools
import pytest
from hypothesis import given, settings, strategies as st

CALLS = itertools.count()


@settings(database=None)
@given(st.integers())
def test_plain_assert(number):
    assert number < 10, "too big"


@settings(database=None)
@given(st.integers())
def test_two_distinct_failures(number):
    if number > 10:
        raise ConnectionResetError("the server reset the connection")
    assert number > -10, "too small"


@settings(database=None)
@given(st.integers())
def test_flaky(number):
    if next(CALLS) == 3:
        raise TimeoutError("only the once")


@pytest.fixture
def broken():
    raise OSError("the fixture could not start")


def test_setup_error(broken):
    pass


@settings(database=None)
@given(st.text())
def test_raised_by_a_library(text):
    import ipaddress

    ipaddress.ip_address(text)
"""


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("forms")
    (folder / "test_forms.py").write_text(textwrap.dedent(FORMS))
    args = [str(folder), "-p", "no:cacheprovider", "--rootdir", str(folder), "-o", "addopts=", "-q"]
    result = watch_suite(args, limits=Limits(test_seconds=60, budget_seconds=120, shrink_seconds=10))
    return {outcome.name: outcome for outcome in result.outcomes}


def test_a_plain_assert_is_told_with_its_line_and_counterexample(forms: dict[str, Any]) -> None:
    failure = forms["test_plain_assert"].failure
    assert failure[:2] == ["AssertionError: too big", "assert 10 < 10"], failure
    assert failure[2].startswith("at test_forms.py:12 in test_plain_assert: assert number < 10"), failure
    assert failure[3:] == ["Failing test case: test_plain_assert(", "    number=10,", ")"], failure


def test_distinct_failures_are_told_one_after_the_other(forms: dict[str, Any]) -> None:
    failure = forms["test_two_distinct_failures"].failure
    assert failure[0] == "ExceptionGroup: Hypothesis found 2 distinct failures.", failure
    text = "\n".join(failure)
    assert "failure 1 of 2:" in text and "failure 2 of 2:" in text
    assert (
        "  AssertionError: too small" in failure
        and "  ConnectionResetError: the server reset the connection" in failure
    )
    assert "      number=-10," in failure and "      number=11," in failure, failure
    assert "Explanation" not in text and "These lines" not in text


def test_a_flaky_failure_says_so_and_what_failed_first(forms: dict[str, Any]) -> None:
    failure = forms["test_flaky"].failure
    assert failure[0].startswith("flaky: hypothesis.errors.FlakyFailure: "), failure
    assert "Hypothesis test_flaky(...) produces unreliable results" in failure[0], failure  # the example comes next
    assert any(line.startswith("Failing test case: test_flaky(") for line in failure), failure
    assert "  TimeoutError: only the once" in failure, failure
    assert not any("Failed to reproduce" in line for line in failure), failure


@given(message=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4).map("\n".join),
       members=st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_every_line_of_a_told_failure_is_one_line(message: str, members: list[str]) -> None:
    """A group's or flaky failure's message can run over lines (hypothesis adds replay notes): one line each."""
    from hypothesis.errors import FlakyFailure

    for group in (FlakyFailure(message, [OSError(m) for m in members]),
                  ExceptionGroup(message, [ValueError(m) for m in members])):
        told = describe_failure(group)
        assert all("\n" not in line and "\r" not in line for line in told), told
        first = next((line for line in message.splitlines() if line.strip()), "")
        assert told[0].endswith(f"{type(group).__name__}: {first}"), told  # the message's first line, whole


def test_a_setup_error_and_a_library_exception_are_told_where_they_happened(forms: dict[str, Any]) -> None:
    setup = forms["test_setup_error"].failure
    assert setup[:2] == ["error in setup:", "OSError: the fixture could not start"], setup
    assert setup[2].startswith("at test_forms.py:") and "raise OSError" in setup[2], setup
    raised = forms["test_raised_by_a_library"].failure
    assert raised[0] == "ValueError: '' does not appear to be an IPv4 or IPv6 address", raised
    assert raised[1].startswith("at ipaddress.py:") and raised[1].endswith(
        "in ip_address: raise ValueError(f'{address!r} does not appear to be an IPv4 or IPv6 address')"
    ), raised
    assert raised[2].startswith("from test_forms.py:") and "ipaddress.ip_address(text)" in raised[2], raised
    assert any(line.startswith("    text='',") for line in raised), raised


# the pieces, over any input

_messages = st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), min_size=1, max_size=40)
# What hypothesis adds besides the counterexample: how to reproduce it, and which lines only failures ran.
_noise = st.sampled_from([
    ["\nYou can reproduce this example by temporarily adding @reproduce_failure('6', b'AA') as a decorator"],
    ["Explanation:", "    These lines were always and only run by failing test cases:", "        /x/y.py:3"],
])  # fmt: skip


@st.composite
def _failures(draw: st.DrawFn, depth: int = 2) -> BaseException:
    if depth and draw(st.booleans()):
        members = draw(st.lists(_failures(depth - 1), min_size=1, max_size=3))
        return ExceptionGroup(draw(_messages), members)
    exc = draw(st.sampled_from([AssertionError, OSError, ValueError]))(draw(_messages).strip() or "x")
    for notes in draw(st.lists(st.one_of(_messages.map(lambda m: [f"Failing test case: {m.strip()}"]), _noise))):
        for note in notes:
            exc.add_note(note)
    return exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for member in exc.exceptions for leaf in _leaves(member)]
    return [exc]


@settings(max_examples=60, deadline=None)
@given(_failures())
def test_every_failure_in_a_group_is_told_with_its_counterexample_and_none_of_the_noise(exc: BaseException) -> None:
    told = describe_failure(exc, limit=10_000)
    text = "\n".join(told)
    for leaf in _leaves(exc):
        assert f"{type(leaf).__name__}: {str(leaf).splitlines()[0]}" in text
        for note in getattr(leaf, "__notes__", ()):
            if note.startswith("Failing test case"):
                assert note.splitlines()[0] in text
    assert "reproduce_failure" not in text and "These lines were always" not in text


_stdlib = os.path.dirname(os.__file__)
_frames = st.sampled_from([
    (f"{_stdlib}/threading.py", "wait", "stdlib"),
    (f"{_stdlib}/socket.py", "readinto", "stdlib"),
    (f"{_stdlib}/concurrent/futures/thread.py", "_worker", "stdlib"),
    ("/x/site-packages/_pytest/python.py", "pytest_pyfunc_call", "machinery"),
    ("/x/site-packages/hypothesis/core.py", "execute_once", "machinery"),
    ("/x/site-packages/fsspec/spec.py", "cat_file", "code"),
    ("/x/site-packages/paramiko/channel.py", "recv", "code"),
    ("/w/conformance_tests/test_blobs.py", "put_then_read", "code"),
])  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_frames, max_size=20), min_size=1, max_size=4))
def test_a_dump_is_trimmed_to_the_busy_threads_and_their_blocking_calls(threads: list[list[Any]]) -> None:
    dump = "\n\n".join(
        f"Thread 0x{number:016x} (most recent call first):\n"
        + "\n".join(f'  File "{path}", line {line} in {function}' for line, (path, function, _) in enumerate(frames, 1))
        for number, frames in enumerate(threads)
    )
    told = hang_stacks(dump)
    busy = [frames for frames in threads if any(kind == "code" for _, _, kind in frames)]
    assert sum(line.startswith("thread ") for line in told) == len(busy)
    # The machinery shows only as what a thread waits in (its two innermost frames), never on the way to it.
    blocks = "\n".join(told).split("thread ")[1:]
    for block in blocks:
        below = block.splitlines()[3:]
        assert not any("_pytest" in line or "hypothesis/" in line for line in below), told
    for frames in busy:
        line, (_path, function, _) = next((n, f) for n, f in enumerate(frames, 1) if f[2] == "code")
        assert any(f"blocked in {function} (" in entry and f":{line})" in entry for entry in told), told
        outermost, (_path, function, _) = [(n, f) for n, f in enumerate(frames, 1) if f[2] == "code"][-1]
        assert any(entry.endswith(f":{outermost} in {function}") for entry in told), told  # the test's end


@given(st.floats(0.001, 1e5, allow_nan=False), st.sampled_from([("", 1), ("s", 1), ("m", 60), ("h", 3600)]))
def test_durations_read_with_their_units(number: float, unit: tuple[str, int]) -> None:
    text = f"{number:.3f}{unit[0]}"
    assert duration(text) == pytest.approx(float(f"{number:.3f}") * unit[1])
