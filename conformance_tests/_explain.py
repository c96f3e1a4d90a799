"""What went wrong in a conformance test, in a few lines: a failure from its exception, a hang from its stacks.

:func:`describe_failure` reads the exception object pytest caught (never
report text): the exception line (for a plain assert, pytest's rewritten
message), where it was raised and from which line of the test, and
hypothesis' smallest counterexample (the notes it attaches). An
``ExceptionGroup`` of distinct failures and a hypothesis flaky failure are
told one sub-failure after the other.

:func:`hang_stacks` trims a ``faulthandler`` dump of a stuck process to the
threads doing something and, in each, to the frames worth reading: the call
that blocks and the chain from the test down to it, without pytest's,
pluggy's and hypothesis' own frames or the standard library's plumbing.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass

MESSAGE_LINES = 12
NOTE_LINES = 30
LINE_CHARS = 300
STACK_FRAMES = 12

# Frames of the test machinery, never where a test is stuck or fails.
_MACHINERY = ("/_pytest/", "/pluggy/", "/hypothesis/", "/conformance_tests/_child.py", "<frozen ")
_CALLED = re.compile(r"^(Hypothesis \w+)\(.*\) (produces unreliable results)", re.DOTALL)
# Notes hypothesis adds that say nothing about the failure itself.
_NOISE_NOTES = ("You can reproduce", "Failed to reproduce exception", "Unreliable test timings")


def short_path(filename: str) -> str:
    """``filename`` relative to the import root it is found under, e.g. ``fsspec/spec.py``."""
    best = ""
    for root in {*sys.path, *sysconfig.get_paths().values()}:
        root = os.path.abspath(root or os.curdir).rstrip(os.sep) + os.sep
        if filename.startswith(root) and len(root) > len(best):
            best = root
    return filename[len(best) :] if best else filename


def _standard_library(filename: str) -> bool:
    paths = sysconfig.get_paths()
    return filename.startswith((paths["stdlib"], paths["platstdlib"])) and "-packages" not in filename


def _machinery(filename: str) -> bool:
    return any(part in filename for part in _MACHINERY) or filename.endswith("/runpy.py")


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 3] + "..."


# failures


def describe_failure(exc: BaseException, limit: int = 60) -> list[str]:
    """The exception, where it was raised, and hypothesis' counterexample; groups one member at a time."""
    lines = _describe(exc)
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return lines


def _describe(exc: BaseException) -> list[str]:
    members = _group_members(exc)
    if members:  # each member's failure first: a long counterexample must not push them out of sight
        lines = [_headline(exc)]
        for number, member in enumerate(members, 1):
            lines.append(f"failure {number} of {len(members)}:")
            lines += ["  " + line for line in _describe(member)]
        return [*lines, *_notes(exc)]
    return [*_message(exc), *_where(exc), *_notes(exc)]


def _group_members(exc: BaseException) -> tuple[BaseException, ...]:
    """An exception group's members (the builtin on Python 3.11, the backport before), else none."""
    members = getattr(exc, "exceptions", None)
    if isinstance(members, tuple) and isinstance(getattr(exc, "message", None), str):
        return tuple(member for member in members if isinstance(member, BaseException))
    return ()


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _headline(exc: BaseException) -> str:
    from hypothesis.errors import Flaky

    label = "flaky: " if isinstance(exc, Flaky) else ""
    # Its first line: hypothesis goes on with its own replay notes ("last: INTERESTING from ...") on lines of their
    # own, which the members below tell better, and which would break the report's one-entry-per-line layout.
    message = next((line for line in str(getattr(exc, "message", "")).splitlines() if line.strip()), "")
    # "Hypothesis race(key=..., results=[...]) produces unreliable results: ...": the example follows in full
    message = _CALLED.sub(r"\1(...) \2", message)
    return _clip(f"{label}{_type_name(exc)}: {message}")


def _message(exc: BaseException) -> list[str]:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    first = f"{_type_name(exc)}: {lines[0]}" if lines[0] else _type_name(exc)
    head = [_clip(first), *(_clip(line) for line in lines[1:MESSAGE_LINES])]
    if len(lines) > MESSAGE_LINES:
        head.append(f"... ({len(lines) - MESSAGE_LINES} more lines)")
    return head


@dataclass(frozen=True)
class _Frame:
    filename: str
    lineno: int
    function: str

    def source(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        return f"{short_path(self.filename)}:{self.lineno} in {self.function}"


def _where(exc: BaseException) -> list[str]:
    """The line that raised it and, if that is not in the test module, the test's line that led there."""
    frames = [
        _Frame(summary.filename, summary.lineno or 0, summary.name)
        for summary in traceback.extract_tb(exc.__traceback__)
        if not _machinery(summary.filename)
    ]
    if not frames:
        return []
    innermost = frames[-1]
    lines = [_clip(f"at {innermost}: {innermost.source()}")]
    in_tests = [frame for frame in frames if os.path.basename(frame.filename).startswith("test_")]
    if in_tests and in_tests[-1] != innermost:
        lines.append(_clip(f"from {in_tests[-1]}: {in_tests[-1].source()}"))
    return lines


def _notes(exc: BaseException) -> list[str]:
    """Hypothesis' notes (the counterexample, a state machine's steps), without the reproduce and explain ones."""
    kept: list[str] = []
    explaining = False
    for note in getattr(exc, "__notes__", ()):
        note = str(note).strip("\n")
        if note.startswith("Explanation:"):
            explaining = True
            continue
        if explaining and note.startswith(" "):  # the explanation's indented lines
            continue
        explaining = False
        if note.strip().startswith(_NOISE_NOTES):
            continue
        kept += [_clip(line) for line in note.splitlines() if line.strip()]
    if len(kept) > NOTE_LINES:  # a counterexample of huge values: its start, and how much more there is
        kept = [*kept[:NOTE_LINES], f"... ({len(kept) - NOTE_LINES} more lines of the example)"]
    return kept


# hangs

_THREAD = re.compile(r"^(Current thread|Thread) (0x[0-9a-f]+)", re.IGNORECASE)
_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+) in (?P<function>.*)$')


def parse_dump(text: str) -> list[tuple[str, list[_Frame]]]:
    """A ``faulthandler`` dump as (thread id, frames innermost first)."""
    threads: list[tuple[str, list[_Frame]]] = []
    for line in text.splitlines():
        thread = _THREAD.match(line)
        if thread:
            threads.append((thread.group(2), []))
            continue
        frame = _FRAME.match(line)
        if frame and threads:
            threads[-1][1].append(_Frame(frame["file"], int(frame["line"]), frame["function"].strip()))
    return threads


def hang_stacks(text: str) -> list[str]:
    """Where a stuck process was: per busy thread, the blocking call first, then the calls that led to it.

    The blocking call is the innermost frame of code under test (a backend,
    fsspec, wfe, the test); the two frames it waits in are shown above it.
    A thread with only the standard library's and the test machinery's
    frames (an idle pool thread, a waiting timer) is left out.
    """
    lines: list[str] = []
    threads = parse_dump(text)
    # The test's own thread first: the others are often only waiting for it.
    threads.sort(key=lambda found: not any(os.path.basename(f.filename).startswith("test_") for f in found[1]))
    for thread, frames in threads:
        code = [frame for frame in frames if not _standard_library(frame.filename) and not _machinery(frame.filename)]
        code = [frame for index, frame in enumerate(code) if not index or frame != code[index - 1]]  # decorators
        if not code:
            continue
        blocking = code[0]
        # What it was waiting in below its own code: a socket read, a lock, or hypothesis' own work.
        waiting_in = frames[: frames.index(blocking)][:2]
        shown = [f"  {frame}" for frame in [*waiting_in, *code]]
        if len(shown) > STACK_FRAMES:  # the blocking end and the test's end matter; the middle is the way between
            outer = STACK_FRAMES // 4
            hidden = len(shown) - STACK_FRAMES + 1
            shown = [*shown[: STACK_FRAMES - outer - 1], f"  ... ({hidden} frames)", *shown[-outer:]]
        lines.append(f"thread {thread}: blocked in {blocking.function} ({short_path(blocking.filename)}:"
                     f"{blocking.lineno})")  # fmt: skip
        lines += shown
    return lines
