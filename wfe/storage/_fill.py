"""Reading a large local file and hashing it at once, into the very bytes object handed back.

A verified read of a large blob is a read and a hash. One after the other,
a 256 MiB blob costs both in full (here 0.3 s and 0.2 s). Hashing each
chunk in a helper thread (hashlib releases the GIL) while the next one is
read hides the hash behind the read, if both work on the bytes finally
returned: hashing the file a second time, or reading into a buffer and
copying it out, would either check other bytes than the ones returned or
add a copy that costs more than the hash.

So on CPython the read fills a new, not yet shared ``bytes`` object, made
and addressed through the C API's ``PyBytes_FromStringAndSize(NULL, n)``
and ``PyBytes_AsString``: the documented way to build a bytes object in
place. Nothing else holds the object until it is full; the writable view of
it is released before it is returned. Elsewhere, or should ctypes be
missing, the file is read whole and then hashed.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._base import CHUNK_SIZE as CHUNK  # bytes read, then hashed beside the next read
from ._base import Hasher

_POOL: ThreadPoolExecutor | None = None


_POOL_LOCK = threading.Lock()


def hash_pool() -> ThreadPoolExecutor:
    """One small pool per process for hashing large data beside its I/O."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wfe-hash")
        return _POOL


_MAKERS: list[tuple[Any, Any] | None] = []  # found once: the two functions, or None where they cannot be had


def _makers() -> tuple[Any, Any] | None:
    """The two C functions as ctypes prototypes of our own (never the shared ``pythonapi`` attributes)."""
    if not _MAKERS:
        _MAKERS.append(_find_makers())
    return _MAKERS[0]


def _find_makers() -> tuple[Any, Any] | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        import ctypes

        api = ctypes.pythonapi
        new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(("PyBytes_FromStringAndSize", api))
        address = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object)(("PyBytes_AsString", api))
    except (ImportError, AttributeError, OSError):
        return None
    return new, address


def fresh_bytes(size: int) -> tuple[bytes, memoryview] | None:
    """A new ``bytes`` of ``size`` unset bytes and a writable view of it; None where this cannot be done.

    The caller fills the whole view, releases it and only then lets anyone
    else see the bytes object.
    """
    makers = _makers()
    if makers is None or size <= 0:
        return None
    import ctypes

    new, address = makers
    data: bytes = new(None, size)
    view = memoryview((ctypes.c_char * size).from_address(address(data))).cast("B")
    return data, view


def read_hashing(fd: int, size: int, hasher: Hasher) -> bytes:
    """The content of the open regular file ``fd`` (``size`` bytes when last seen), also fed to ``hasher``.

    A file that has shrunk or grown since ``size`` was taken is read as it
    is now: the bytes returned are always the bytes hashed.
    """
    made = fresh_bytes(size) if size > CHUNK else None
    if made is None:
        data = _read_rest(fd)
        hasher.update(data)
        return data
    data, view = made
    done = 0
    hashing: Future[None] | None = None
    try:
        while done < size:
            count = os.readv(fd, [view[done : done + CHUNK]])
            if hashing is not None:
                hashing.result()
                hashing = None
            if not count:
                break
            hashing = hash_pool().submit(hasher.update, view[done : done + count])
            done += count
        if hashing is not None:
            hashing.result()
            hashing = None
    finally:
        if hashing is not None:  # never leave a hash reading the view (an error or a Ctrl-C stopped the read)
            hashing.cancel() or hashing.exception()
        view.release()
    if done < size:  # shrank since it was measured: a copy of what there is
        return data[:done]
    more = _read_rest(fd)
    if more:  # grew since it was measured
        hasher.update(more)
        return data + more
    return data


def _read_rest(fd: int) -> bytes:
    """Everything from ``fd``'s position to its end."""
    import io

    with io.FileIO(fd, "rb", closefd=False) as handle:
        return handle.readall()
