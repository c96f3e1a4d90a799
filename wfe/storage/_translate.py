"""Error translation: the one boundary where backend errors become wfe's."""

from __future__ import annotations

import errno
import stat
from typing import NoReturn

from .._errors import Damaged, StoreError


class translate:
    """Turn backend errors into wfe's, keeping not-found and exists as builtins.

    A class rather than a generator context manager: it wraps every file
    operation, and this costs a third as much. The local store's per-node
    paths use :func:`raise_os_error` in a plain ``except`` instead, which costs
    nothing until something fails.
    """

    __slots__ = ("operation", "path")

    def __init__(self, operation: str, path: str) -> None:
        self.operation = operation
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        if isinstance(exc, (FileNotFoundError, FileExistsError, StoreError)):
            return
        if isinstance(exc, OSError):
            raise_os_error(self.operation, self.path, exc)
        if type(exc).__module__.startswith(("wfe.", "wfe")):  # backend libraries raise their own types
            return
        from .._redact import redact

        raise StoreError(redact(f"{self.operation} {self.path!r} failed: {type(exc).__name__}: {exc}")) from exc




def too_large(path: str, limit: int) -> Damaged:
    return Damaged(f"store damaged: {path!r} holds more than the {limit} bytes a record may; remove it")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISDIR(mode):
        return "is a folder where a file belongs"
    if stat.S_ISREG(mode):
        return "is a file where a folder belongs"
    name = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "something else")
    return f"is not a regular file ({name})"


def damaged(path: str, mode: int) -> Damaged:
    return Damaged(f"store damaged: {path!r} {_kind(mode)}; remove it")


def raise_os_error(operation: str, path: str, exc: OSError) -> NoReturn:
    """Raise what becomes of an OSError: not-found, exists and StoreError as they are, any other a StoreError."""
    if isinstance(exc, (FileNotFoundError, FileExistsError, StoreError)):
        raise exc
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
        raise damaged(path, stat.S_IFLNK) from None
    if exc.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
        raise Damaged(f"store damaged: {path!r} is not a regular file; remove it") from None
    from .._redact import redact

    raise StoreError(redact(f"{operation} {path!r} failed: {exc}")) from exc
