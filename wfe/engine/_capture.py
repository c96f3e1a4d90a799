"""Capture what a node's function prints and logs, per node, also when nodes share a process.

``sys.stdout``/``sys.stderr`` are replaced once per process by routers that
send a write to the capture of the node running in the current context
(a :class:`contextvars.ContextVar`, so threads of a pool each capture their
own node) and to the original stream otherwise. Log records reach the
capture through one handler on the root logger. Output written straight to
file descriptors (C extensions, subprocesses) is not captured.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

MAX_CAPTURE_CHARS = 4 * 1024 * 1024  # a chatty node keeps its first 4 Mi characters
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

_current: contextvars.ContextVar[NodeCapture | None] = contextvars.ContextVar("wfe_node_capture", default=None)
_install_lock = threading.Lock()


class NodeCapture:
    """Text one node wrote, in order, capped at ``MAX_CAPTURE_CHARS``."""

    def __init__(self, limit: int = MAX_CAPTURE_CHARS) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self._truncated = False
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            room = self._limit - self._size
            if room <= 0:
                self._truncated = True
                return
            if len(text) > room:
                text, self._truncated = text[:room], True
            self._parts.append(text)
            self._size += len(text)

    def text(self) -> str:
        with self._lock:
            body = "".join(self._parts)
            return body + ("\n[output truncated]\n" if self._truncated else "")


class _StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout/stderr: to the running node's capture if any, else to the original."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is None:
            return self.original.write(text)
        capture.write(text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class _CaptureHandler(logging.Handler):
    """Sends a record to the running node's capture; does what logging would have done otherwise."""

    def __init__(self, fallback_level: int) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        # the root level before it was lowered to let node records through
        self.fallback_level = fallback_level

    def emit(self, record: logging.LogRecord) -> None:
        capture = _current.get()
        if capture is not None and not record.name.startswith("wfe."):
            capture.write(self.format(record) + "\n")
            return
        root = logging.getLogger()
        # With no other handler configured, logging would have used its last resort for warnings.
        last_resort = logging.lastResort
        if (
            last_resort is not None
            and record.levelno >= self.fallback_level
            and not any(h is not self for h in root.handlers)
        ):
            last_resort.handle(record)


class _Hooks:
    """The process-wide hooks, installed while at least one capture is active and undone after."""

    def __init__(self) -> None:
        self.active = 0
        self.handler: _CaptureHandler | None = None
        self.saved_root_level = logging.NOTSET
        self.relevelled: list[logging.Handler] = []
        self.pinned: logging.Logger | None = None  # wfe's own logger, held at the root's level while lowered

    def acquire(self, level: int) -> None:
        with _install_lock:
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name)
                if stream is not None and not isinstance(stream, _StreamRouter):
                    setattr(sys, name, _StreamRouter(stream))
            self.active += 1
            if self.active > 1:
                return
            root = logging.getLogger()
            self.saved_root_level = root.level
            self.handler = _CaptureHandler(root.getEffectiveLevel())
            self.relevelled = []
            if root.getEffectiveLevel() > level:
                # Let node records through at ``level`` without changing what the other handlers show.
                for other in root.handlers:
                    if other.level == logging.NOTSET:
                        other.setLevel(root.level)
                        self.relevelled.append(other)
                root.setLevel(level)
                # wfe's own records stay at the level they had: below it, nothing would show them, and
                # making each one (a record per node) only to drop it costs a run with many nodes.
                own = logging.getLogger("wfe")
                if own.level == logging.NOTSET:
                    own.setLevel(self.handler.fallback_level)
                    self.pinned = own
            root.addHandler(self.handler)

    def release(self) -> None:
        with _install_lock:
            self.active -= 1
            if self.active > 0:
                return
            root = logging.getLogger()
            if self.handler is not None:
                root.removeHandler(self.handler)
                self.handler = None
            root.setLevel(self.saved_root_level)
            for other in self.relevelled:
                other.setLevel(logging.NOTSET)
            self.relevelled = []
            if self.pinned is not None:
                self.pinned.setLevel(logging.NOTSET)
                self.pinned = None


_hooks = _Hooks()


class capture_output:
    """Capture prints and log records (at ``level`` and above) of the code run inside, in this context.

    ``with capture_output() as captured: ...`` gives a :class:`NodeCapture`.
    Nesting and concurrent use from several threads are safe; logging is
    left as it was found once the last capture ends. A class, not a
    generator: it wraps every node a run computes in process.
    """

    __slots__ = ("_level", "_token")

    def __init__(self, level: int = logging.INFO) -> None:
        self._level = level

    def __enter__(self) -> NodeCapture:
        _hooks.acquire(self._level)
        capture = NodeCapture()
        self._token = _current.set(capture)
        return capture

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        _hooks.release()


@contextlib.contextmanager
def hooks_installed(level: int = logging.INFO) -> Iterator[None]:
    """Keep the process-wide hooks in place for a while (a run whose nodes run in this process).

    Each node's :func:`capture_output` then only counts itself in and out,
    instead of adding and removing a logging handler every time.
    """
    _hooks.acquire(level)
    try:
        yield
    finally:
        _hooks.release()
