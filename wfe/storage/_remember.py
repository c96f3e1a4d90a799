"""Findings remembered: per process (:class:`Memo`) and in the store (``capabilities/fsspec.json``), for a day.

The first open of a store on a plain fsspec filesystem in a process reads
the store's record; with none it can trust (missing, garbled, written for
another filesystem class, or older than :data:`MAX_AGE`) it probes
(:func:`~wfe.storage._probe.probe`) and writes the record. Every later open
in the process, of any store on an equally configured filesystem, costs
nothing. S3's probe keeps its own record with the same :class:`Memo` and
:func:`fresh`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._findings import CAPABILITIES, Finding, Findings
from ._probe import probe

if TYPE_CHECKING:
    from ._base import StorageIO

log = logging.getLogger(__name__)

RECORD = "capabilities/fsspec.json"  # beside S3's record; outside every folder gc, verify and sync walk
FORMAT = 1
MAX_AGE = 24 * 3600.0  # seconds a record is trusted
CLOCK_SLACK = 300.0  # a record probed up to this far in the future (another machine's clock) still counts
MAX_RECORD_BYTES = 16 * 1024


V = TypeVar("V")


class Memo(Generic[V]):
    """What this process learnt, by key: each key learnt once, however many threads ask at once.

    The lock is made anew in a forked child: a child forked while another
    thread was learning must not inherit a held lock.
    """

    def __init__(self) -> None:
        self._known: dict[Hashable, V] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    def get(self, key: Hashable, learn: Callable[[], V]) -> tuple[V, bool]:
        """``(what is known for key, True)``, or ``(learn(), False)`` remembered for next time."""
        with self._lock:
            if key in self._known:
                return self._known[key], True
            found = self._known[key] = learn()
            return found, False

    def forget(self) -> None:
        """Drop everything, so the next open reads the store's record again (as a new process would)."""
        with self._lock:
            self._known.clear()


def fresh(probed: Any) -> bool:
    """True if a record's ``probed`` time is a number from the last :data:`MAX_AGE` (or a little ahead)."""
    if not isinstance(probed, (int, float)) or isinstance(probed, bool):
        return False
    now = time.time()
    return now - MAX_AGE < probed <= now + CLOCK_SLACK


_KNOWN: Memo[Findings] = Memo()  # (filesystem class, its fsspec token) -> what this process learnt


def forget() -> None:
    """Drop what this process learnt, so the next open reads the store's record again (as a new process would)."""
    _KNOWN.forget()


def filesystem_name(fs: Any) -> str:
    cls = type(fs)
    return f"{cls.__module__}.{cls.__qualname__}"


def remembered(storage: StorageIO) -> Findings:
    """The findings for ``storage``'s filesystem: this process's memo, else the store's record, else a probe.

    Never raises: a probe whose requests fail answers "unknown" where it could not tell.
    """
    key = (filesystem_name(storage.fs), str(getattr(storage.fs, "_fs_token", None) or id(storage.fs)))
    found, known = _KNOWN.get(key, lambda: _learn(storage))
    return replace(found, source="memo") if known else found


def _learn(storage: StorageIO) -> Findings:
    found = _read_record(storage)
    if found is None:
        found = probe(storage)
        if found.answer("replaces") is not None:  # a probe that could not write says nothing worth keeping
            _write_record(storage, found)
    return found


def _read_record(storage: StorageIO) -> Findings | None:
    """The store's record, if it parses, names this filesystem class and is fresh; else None."""
    try:
        data = storage.read_bytes(RECORD, MAX_RECORD_BYTES)
        record: Any = json.loads(data)
    except Exception:  # missing, unreadable or garbled: probe as if it were not there
        return None
    try:
        _require(isinstance(record, dict) and record["format"] == FORMAT and record["backend"] == "fsspec")
        _require(record["filesystem"] == filesystem_name(storage.fs))
        probed = record["probed"]
        _require(fresh(probed))
        rows = []
        for row in record["findings"]:
            _require(row["name"] in CAPABILITIES and row["answer"] in (True, False, None))
            _require(isinstance(row["how"], str) and isinstance(row.get("via", ""), str))
            rows.append(Finding(row["name"], row["answer"], row["how"], row.get("via", "")))
        _require({row.name for row in rows} == set(CAPABILITIES))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.debug("%r: capability record garbled, foreign or old: probing", storage)
        return None
    return Findings(tuple(rows), float(probed), "record")


def _require(condition: bool) -> None:
    if not condition:
        raise ValueError("not a valid record")


def _write_record(storage: StorageIO, found: Findings) -> None:
    record = {
        "format": FORMAT,
        "backend": "fsspec",
        "filesystem": filesystem_name(storage.fs),
        "probed": found.probed,
        "findings": [{"name": r.name, "answer": r.answer, "how": r.how, "via": r.via} for r in found.rows],
    }
    try:
        path = storage.path(RECORD)
        storage.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        storage.fs.pipe_file(path, json.dumps(record, sort_keys=True).encode())
    except Exception as exc:  # then the next process probes again
        log.debug("%r: could not write the capability record: %s", storage, exc)
