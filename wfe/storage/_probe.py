"""What a store's filesystem can do, found out with a few requests at opening rather than assumed.

A plain fsspec filesystem promises little that wfe could lean on: whether a
second exclusive create of one key is refused, whether ``mv`` replaces its
target and whether it is atomic (fsspec's default ``mv`` is a copy and a
delete), whether the client may be used from several threads at once. So
:func:`probe` asks, under ``tmp/probe-…`` (every key it writes is deleted
again; the store's data is never touched):

- create-if-absent: one fresh key created twice, by ``pipe_file(mode="create")``
  where the filesystem has its own, else by ``open(path, "xb")``; the second
  must be refused. fsspec's generic ``pipe_file`` checks, then writes: two
  racing writers would both create, so it does not count.
- a write replaces an object: wfe rewrites run records and leases in place.
- whole writes: an object written through ``open(path, "wb")`` and flushed is
  looked for before it is closed. Seen: writes are not whole. Not seen: the
  client buffers or commits at close, but whether the server then shows the
  bytes whole cannot be told cheaply ("unknown").
- rename: ``mv`` onto an existing object, then its bytes read back; atomic is
  told from the code, not from a race: fsspec's default ``mv`` is not, local
  disk's is, anything else is "unknown".
- threads: a few threads writing, reading and listing at once on a second
  instance of the filesystem, with a deadline; a hang, an error or wrong
  bytes means not safe. The threads are daemons: a hang never holds the caller.
- listings past one page: 1,001 objects listed back, only where the writes
  above show that costs under :data:`LISTING_BUDGET` seconds; otherwise
  "unknown" (the conformance suite checks it).

The answers, each with how it was found, are a :class:`~._findings.Findings`,
kept in the store and per process (:mod:`._remember`), so a run pays nothing
after the first open.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._findings import CAPABILITIES, Finding, Findings

if TYPE_CHECKING:
    from ._base import StorageIO

log = logging.getLogger(__name__)

UNWRITABLE = "the probe could not write"  # how the findings say it, when every write of the probe failed
PROBE_PREFIX = "tmp/probe-"  # a key left by a writer killed mid-probe goes with gc's other tmp/ leftovers
THREADS = 4
THREAD_ROUNDS = 3
THREAD_DEADLINE = 15.0  # seconds for the threads' requests together, and again for the race of two creates
LISTING_OBJECTS = 1001  # one more than the usual page (S3, Azure list 1,000 names a request, Supabase 100)
LISTING_BUDGET = 1.0  # seconds of writes the listing probe may cost, estimated from the probe's first writes


def probe(storage: StorageIO) -> Findings:
    """Find out what ``storage``'s filesystem can do, in a few requests under ``tmp/probe-…``; never raises."""
    fs = storage.fs
    folder = storage.path(f"{PROBE_PREFIX}{os.urandom(16).hex()}")
    rows: dict[str, Finding] = {}
    started = time.monotonic()
    try:
        try:
            fs.makedirs(folder, exist_ok=True)
            fs.pipe_file(f"{folder}/a", b"first")
        except Exception as exc:
            why = f"{UNWRITABLE}: {_first_line(exc)}"
            return _unknown(storage, why)
        write_cost = time.monotonic() - started
        rows["replaces"] = _replaces(fs, f"{folder}/a")
        rows["create_if_absent"] = _create_if_absent(fs, folder)
        rows["whole_writes"] = _whole_writes(fs, f"{folder}/w")
        rows.update(_rename(fs, folder))
        rows["thread_safe"] = _thread_safe(fs, folder)
        if rows["thread_safe"].answer and rows["create_if_absent"].answer:
            raced = _racing_creates(fs, folder, rows["create_if_absent"].via)
            if raced is not None:
                rows["create_if_absent"] = raced
        rows["shared"] = _shared(storage)
        rows["complete_listings"] = _listings(fs, folder, write_cost)
    finally:
        _clean(fs, folder)
    order = list(CAPABILITIES)
    return Findings(tuple(sorted(rows.values(), key=lambda row: order.index(row.name))), source="probed")


def _unknown(storage: StorageIO, why: str) -> Findings:
    rows = [Finding(name, None, why) for name in CAPABILITIES if name != "shared"]
    return Findings((*rows, _shared(storage)), source="probed")


def _replaces(fs: Any, path: str) -> Finding:
    try:
        fs.pipe_file(path, b"second")
        if fs.cat_file(path) == b"second":
            return Finding("replaces", True, "probed: a second pipe_file of one key replaced its bytes")
        return Finding("replaces", False, "probed: a second pipe_file of one key left the first bytes")
    except Exception as exc:
        return Finding("replaces", False, f"probed: a second pipe_file of one key failed: {_first_line(exc)}")


def own_method(fs: Any, *names: str) -> bool:
    """True if the filesystem has its own method of one of ``names`` rather than fsspec's generic one."""
    from fsspec.asyn import AsyncFileSystem
    from fsspec.spec import AbstractFileSystem

    for name in names:
        method = getattr(type(fs), name, None)
        if method is not None and method not in (getattr(AbstractFileSystem, name, None),
                                                 getattr(AsyncFileSystem, name, None)):  # fmt: skip
            return True
    return False


def _innermost(fs: Any, method: str) -> Any:
    """The filesystem that does ``method`` for ``fs``: a folder of another (DirFileSystem) passes it on."""
    from fsspec.implementations.dirfs import DirFileSystem

    while isinstance(fs, DirFileSystem) and getattr(type(fs), method) is getattr(DirFileSystem, method):
        fs = fs.fs
    return fs


def create(fs: Any, path: str, data: bytes, via: str) -> None:
    """Create ``path`` with ``data`` unless it exists (FileExistsError), by the means the probe confirmed."""
    if via == "pipe_file":
        fs.pipe_file(path, data, mode="create")
        return
    with fs.open(path, "xb") as handle:
        handle.write(data)


def _create_if_absent(fs: Any, folder: str) -> Finding:
    tried: list[str] = []
    ways = (["pipe_file"] if own_method(_innermost(fs, "pipe_file"), "pipe_file", "_pipe_file") else []) + ["open"]
    for via in ways:
        shown = 'pipe_file(mode="create")' if via == "pipe_file" else 'open(path, "xb")'
        path = f"{folder}/create-{via}"
        try:
            create(fs, path, b"first", via)
        except (TypeError, ValueError, NotImplementedError) as exc:  # the mode is not offered
            tried.append(f"{shown} is not offered ({_first_line(exc)})")
            continue
        except Exception as exc:
            tried.append(f"{shown} failed: {_first_line(exc)}")
            continue
        try:
            create(fs, path, b"second", via)
        except FileExistsError:
            return Finding("create_if_absent", True, f"probed: a second {shown} of one key was refused", via)
        except Exception as exc:
            tried.append(f"a second {shown} failed otherwise: {_first_line(exc)}")
            continue
        tried.append(f"a second {shown} of one key was not refused")
    if not ways[:-1]:
        tried.insert(0, "fsspec's generic pipe_file checks, then writes: racing writers both create")
    return Finding("create_if_absent", False, f"probed: {'; '.join(tried)}")


def _racing_creates(fs: Any, folder: str, via: str) -> Finding | None:
    """Two threads create one fresh key at once: both succeeding shows a create that checks, then writes."""
    path = f"{folder}/race"
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def one(data: bytes) -> None:
        barrier.wait(THREAD_DEADLINE)
        try:
            create(fs, path, data, via)
            outcomes.append("created")
        except FileExistsError:
            outcomes.append("refused")

    if not _run_threads([lambda: one(b"left"), lambda: one(b"right")], THREAD_DEADLINE):
        return None
    if outcomes.count("created") > 1:
        return Finding("create_if_absent", False, "probed: two racing creates of one key both succeeded", via)
    return None


def _whole_writes(fs: Any, path: str) -> Finding:
    try:
        handle = fs.open(path, "wb")
        try:
            handle.write(b"partial")
            handle.flush()
            _invalidate(fs)
            seen = bool(fs.exists(path))
            handle.write(b" and the rest")
        finally:
            handle.close()
    except Exception as exc:
        return Finding("whole_writes", None, f"probed: writing through open() failed: {_first_line(exc)}")
    if seen:
        return Finding("whole_writes", False, "probed: an object being written was seen before it was closed")
    return Finding("whole_writes", None, "probed: not seen before it was closed; whether the server shows it "
                   "whole cannot be told cheaply")  # fmt: skip


def _rename(fs: Any, folder: str) -> dict[str, Finding]:
    source, target = f"{folder}/rename-source", f"{folder}/a"
    try:
        fs.pipe_file(source, b"renamed")
        fs.mv(source, target)
        _invalidate(fs)
        moved = fs.cat_file(target) == b"renamed"
        overwrites = Finding("rename_overwrites", moved, "probed: mv onto an existing object " +
                             ("replaced it" if moved else "left its bytes"))  # fmt: skip
    except Exception as exc:
        why = _first_line(exc)
        overwrites = Finding("rename_overwrites", False, f"probed: mv onto an existing object failed: {why}")
    return {"rename_overwrites": overwrites, "rename_atomic": _rename_atomic(fs)}


def _rename_atomic(fs: Any) -> Finding:
    from fsspec.implementations.local import LocalFileSystem

    inner = _innermost(fs, "mv")
    if isinstance(inner, LocalFileSystem) and type(inner).mv is LocalFileSystem.mv:
        return Finding("rename_atomic", True, "from the code: mv on local disk is os.rename")
    if not own_method(inner, "mv", "_mv", "_mv_file", "rename"):
        return Finding("rename_atomic", False, "from the code: fsspec's generic mv copies, then deletes")
    return Finding("rename_atomic", None, "the filesystem's own mv: whether it is atomic cannot be seen from here")


def _thread_safe(fs: Any, folder: str) -> Finding:
    """Threads writing, reading and listing at once, on a second instance: a hang there holds nothing of ours."""
    made: list[Any] = []

    def make() -> None:
        try:
            args = getattr(fs, "storage_args", ())
            made.append(type(fs)(*args, **{**fs.storage_options, "skip_instance_cache": True}))
        except Exception:
            made.append(fs)

    if not _run_threads([make], THREAD_DEADLINE):
        why = f"not probed: a second connection did not open within {THREAD_DEADLINE:g} s"
        return Finding("thread_safe", None, why)
    separate = made[0]
    wrong: list[str] = []

    def work(index: int) -> None:
        for round_ in range(THREAD_ROUNDS):
            path = f"{folder}/thread-{index}-{round_}"
            data = f"thread {index} round {round_} ".encode() * (index + 1)
            separate.pipe_file(path, data)
            if separate.cat_file(path) != data:
                wrong.append(path)
            separate.find(folder)

    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)  # released together: on a busy machine one could finish before the next began

    def guarded(index: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # a thread slow to start: go on, together or not
            start.wait(THREAD_DEADLINE)
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    calls: list[Callable[[], None]] = [functools.partial(guarded, index) for index in range(THREADS)]
    if not _run_threads(calls, THREAD_DEADLINE):
        return Finding("thread_safe", False, f"probed: {THREADS} threads writing, reading and listing at once did "
                       f"not finish within {THREAD_DEADLINE:g} s")  # fmt: skip
    if wrong:
        return Finding("thread_safe", False, f"probed: with {THREADS} threads at once, a read returned other bytes")
    if errors:
        return Finding("thread_safe", False, f"probed: with {THREADS} threads at once: {_first_line(errors[0])}")
    return Finding("thread_safe", True, f"probed: {THREADS} threads writing, reading and listing at once, no fault "
                   "seen")  # fmt: skip


def _run_threads(calls: list[Callable[[], None]], deadline: float) -> bool:
    """Run each call in a daemon thread; True if all ended within ``deadline`` seconds (the rest are left)."""
    threads = [threading.Thread(target=call, daemon=True, name="wfe-probe") for call in calls]
    for thread in threads:
        thread.start()
    until = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


def _shared(storage: StorageIO) -> Finding:
    from fsspec.implementations.memory import MemoryFileSystem

    if isinstance(storage.fs, MemoryFileSystem):
        return Finding("shared", False, "from the code: an in-memory filesystem of this process")
    return Finding("shared", True, "assumed: other processes open the same URL (the conformance suite checks it)")


def _listings(fs: Any, folder: str, write_cost: float) -> Finding:
    estimate = write_cost * LISTING_OBJECTS
    if estimate > LISTING_BUDGET:
        return Finding("complete_listings", None, f"not probed: {LISTING_OBJECTS:,} writes would take about "
                       f"{estimate:.0f} s here; wfe check-store lists past a page")  # fmt: skip
    many = f"{folder}/many"
    try:
        fs.makedirs(many, exist_ok=True)
        fs.pipe({f"{many}/{index:05d}": b"" for index in range(LISTING_OBJECTS)})
        _invalidate(fs)
        found = len(fs.find(many))
    except Exception as exc:
        return Finding("complete_listings", None, f"probed: listing {LISTING_OBJECTS:,} objects failed: "
                       f"{_first_line(exc)}")  # fmt: skip
    if found != LISTING_OBJECTS:
        return Finding("complete_listings", False, f"probed: {LISTING_OBJECTS:,} objects written, {found:,} listed")
    return Finding("complete_listings", True, f"probed: {LISTING_OBJECTS:,} objects written, all listed")


def _clean(fs: Any, folder: str) -> None:
    def remove() -> None:
        try:
            fs.rm(folder, recursive=True)
        except Exception as exc:  # gc removes tmp/ leftovers
            log.debug("could not delete the probe folder %s: %s", folder, exc)

    if not _run_threads([remove], THREAD_DEADLINE):
        log.debug("deleting the probe folder %s did not finish in time", folder)


def _invalidate(fs: Any) -> None:
    try:
        fs.invalidate_cache()
    except Exception:  # a filesystem without a cache
        return


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
