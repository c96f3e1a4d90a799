"""Any fsspec filesystem without a storage class of its own: used as its probe found it, not as assumed.

Opening probes the filesystem once (:mod:`._probe`; then remembered in the
store and in the process, :mod:`._remember`) and sets the flags from what was found:

- ``conditional_create`` and ``exclusive_publish`` where a second exclusive
  create of one key was refused and writes are not seen half-done: an
  exclusive write is then that create of the final bytes, one request, so of
  racing writers exactly one wins (first result wins, leases hold).
- Publishing goes through ``tmp/`` and ``mv`` only where ``mv`` was seen to
  replace its target and is not known to copy (fsspec's generic ``mv`` copies,
  then deletes); otherwise objects are written in place under their name.
- A filesystem found unsafe from threads is used from one thread at a time:
  every call to it, and to the files it opens, holds one lock per filesystem.
- A filesystem on which a write does not replace an object cannot hold run
  records: opening the store fails at once with one line.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import weakref
from typing import IO, Any

from .._errors import StoreError
from ._base import SPOOL_LIMIT, SpooledStaging, Staging, StorageIO
from ._findings import Findings
from ._probe import UNWRITABLE, create, own_method
from ._remember import remembered
from ._translate import translate

MAX_FOLDERS = 10_000  # folders remembered as made, per store


class FsspecIO(StorageIO):
    """A store on a plain fsspec filesystem; ``findings`` says what it can do and how that was found."""

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(fs, root)
        self._folders: set[str] = set()  # folders made (or found) already: on an object store each costs a request
        self.findings: Findings = remembered(self)
        found = self.findings
        unwritable = found.get("replaces")
        if unwritable is not None and unwritable.how.startswith(UNWRITABLE):
            self._check_top_folder()
        replaces = found.get("replaces")
        if replaces is not None and replaces.answer is False:
            why = replaces.how.removeprefix("probed: ")
            raise StoreError(f"{self!r} cannot hold a wfe store: a write does not replace an object ({why}), "
                             "and wfe rewrites run records in place")  # fmt: skip
        self.shared = found.answer("shared") is not False
        self.capability_notes: dict[str, str] = {}
        self._create_via = ""
        created = found.get("create_if_absent")
        if created is not None and created.answer and found.answer("whole_writes") is not False:
            self._create_via = created.via
            self.conditional_create = self.exclusive_publish = True
        elif created is not None and created.answer:
            note = "a second create is refused, but objects are seen while they are written"
            self.capability_notes["conditional_create"] = note
        elif created is not None:
            self.capability_notes["conditional_create"] = created.how.removeprefix("probed: ")
        atomic = found.answer("rename_atomic")
        # A rename not known to copy is the better bet where writes are seen half-done (a file system).
        self._by_rename = found.answer("rename_overwrites") is True and (
            atomic is True or (atomic is None and found.answer("whole_writes") is False)
        )
        self.atomic_upload = found.answer("whole_writes") is True
        # Whether a reader (and a crashed writer) only ever leaves whole objects under their names.
        self.whole_objects: bool | None = (
            (True if atomic else None) if self._by_rename else found.answer("whole_writes")
        )
        if self.whole_objects is not True:
            written = found.get("whole_writes")
            how = written.how.removeprefix("probed: ") if written is not None else "not probed"
            self.capability_notes["whole_objects"] = (
                "published by the filesystem's own mv, not known to be atomic" if self._by_rename
                else f"written in place: {how}"
            )  # fmt: skip
        if found.answer("thread_safe") is not True:
            self.fs = OneAtATime(fs)
            self.concurrency = 1


    def _check_top_folder(self) -> None:
        """Where the probe could not write at all: a missing bucket or container is said now, in one line."""
        top = self.root.strip("/").partition("/")[0]
        if not top:
            return
        try:
            there = bool(self.fs.exists(top))
        except Exception:  # cannot tell: the first write will say what is wrong
            return
        if not there:
            raise StoreError(f"{self.protocol}://{top} does not exist (the bucket, container or folder the store "
                             "is in): create it first")  # fmt: skip
    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        try:
            return super().read_bytes(rel, limit)
        except StoreError:
            if limit is None or self.size(rel) != 0:
                raise
            return b""  # an empty object, of which some servers (Azure) refuse any byte range

    def stage(self) -> Staging:
        return _CreatingStaging(self)

    def upload(self, local: IO[bytes], rel: str, size: int) -> None:
        try:
            self._upload(local, rel, size)
        except FileNotFoundError:  # a folder was removed since it was made: make it again
            self._folders.clear()
            self._upload(local, rel, size)

    def _upload(self, local: IO[bytes], rel: str, size: int) -> None:
        if self._by_rename:
            super().upload(local, rel, size)  # to tmp/, then mv
            return
        path = self.path(rel)
        with translate("write", path):
            self._mkdir_parent(path)
            self._put(local, path, size)

    def _mkdir_parent(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if parent not in self._folders:
            super()._mkdir_parent(path)
            if len(self._folders) >= MAX_FOLDERS:
                self._folders.clear()
            self._folders.add(parent)

    def create_from(self, local: IO[bytes], rel: str, size: int) -> bool:
        """Put ``local`` at ``rel`` in one create that the backend refuses if ``rel`` exists; False then."""
        path = self.path(rel)
        with translate("write", path):
            for attempt in (1, 2):
                self._mkdir_parent(path)
                try:
                    self._create(local, path, size)
                except FileExistsError:
                    return False
                except FileNotFoundError:  # its folder was removed since it was made: make it again
                    if attempt == 2:
                        raise
                    self._folders.clear()
                else:
                    break
        return True

    def _create(self, local: IO[bytes], path: str, size: int) -> None:
        local.seek(0)
        name = getattr(local, "name", None)
        if size <= SPOOL_LIMIT or not isinstance(name, str):
            create(self.fs, path, local.read(), self._create_via)
        elif self._create_via == "open":
            with self.fs.open(path, "xb") as handle:
                shutil.copyfileobj(local, handle)
        elif own_method(_unwrapped(self.fs), "put_file", "_put_file"):
            self.fs.put_file(name, path, mode="create")
        else:
            create(self.fs, path, local.read(), self._create_via)


class _CreatingStaging(SpooledStaging):
    """Exclusive publishes as one create of the final bytes, where the probe confirmed the backend refuses."""

    def __init__(self, storage: FsspecIO) -> None:
        super().__init__(storage)
        self._fsspec = storage

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        if not exclusive or not self._fsspec.conditional_create:
            return super().publish(rel, exclusive=exclusive)
        self._buffer.flush()
        return self._fsspec.create_from(self._buffer, rel, self._size)


_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _lock_for(fs: Any) -> threading.RLock:
    """One lock per filesystem instance: stores that share one (fsspec's instance cache) share its lock."""
    with _LOCKS_LOCK:
        try:
            lock = _LOCKS.get(fs)
            if lock is None:
                lock = _LOCKS[fs] = threading.RLock()
        except TypeError:  # not weakly referable
            lock = threading.RLock()
        return lock


def _unwrapped(fs: Any) -> Any:
    return fs._fs if isinstance(fs, OneAtATime) else fs


class OneAtATime:
    """A filesystem whose every call (and every call to a file it opens) holds the filesystem's lock."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self._lock = _lock_for(fs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._fs, name)
        if not callable(value) or name.startswith("__"):
            return value
        return _Locked(value, self._lock, wrap=name == "open")

    def __repr__(self) -> str:
        return f"OneAtATime({self._fs!r})"


class _Locked:
    __slots__ = ("_call", "_lock", "_wrap")

    def __init__(self, call: Any, lock: threading.RLock, *, wrap: bool = False) -> None:
        self._call = call
        self._lock = lock
        self._wrap = wrap

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            result = self._call(*args, **kwargs)
        return _LockedFile(result, self._lock) if self._wrap else result


class _LockedFile:
    """A file of a filesystem used one call at a time."""

    def __init__(self, handle: Any, lock: threading.RLock) -> None:
        self._handle = handle
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._handle, name)
        return _Locked(value, self._lock) if callable(value) else value

    def __enter__(self) -> _LockedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._handle.close()

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._handle.closed:
                self.close()
