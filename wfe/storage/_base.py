"""The storage base class a backend subclasses, its capability flags, and the staging it gives by default.

:class:`StorageIO` is byte-level access to one root folder on one fsspec
filesystem. Backend errors become wfe's inside :class:`~wfe.storage.translate`:
``FileNotFoundError`` and ``FileExistsError`` pass through (the stores turn
them into their own errors), anything else becomes :class:`wfe.StoreError`
with the backend's message kept.

Writes are staged and then published: :meth:`StorageIO.stage` gives a
writable temporary object, :meth:`Staging.publish` makes it appear under its
final path whole or not at all. How depends on the filesystem, chosen by
class flags rather than by name anywhere else in wfe.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, BinaryIO, NamedTuple, Protocol, TypeVar, cast

from .._errors import NoHardLink, StoreError
from ._translate import too_large, translate

CHUNK_SIZE = 4 * 1024 * 1024


class Hasher(Protocol):
    """What :meth:`StorageIO.read_hashed` feeds (a hashlib object)."""

    def update(self, data: Any, /) -> None: ...


SPOOL_LIMIT = 8 * 1024 * 1024

CONCURRENCY = 32  # requests a remote backend has in flight at once, by default (the ``concurrency`` option)

T = TypeVar("T")
R = TypeVar("R")


class Listed(NamedTuple):
    """One object of a listing: its path under the root, size, and the server's ETag where it gives one."""

    rel: str
    size: int
    etag: str | None = None


class Page(NamedTuple):
    """Objects of one listing request, in name order; ``more`` if the listing goes on after them."""

    objects: list[Listed]
    more: bool


class Staging:
    """A temporary object being written; :meth:`publish` moves it into place."""

    def write(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        """Make the written bytes appear at ``rel``; False if ``exclusive`` and it exists."""
        raise NotImplementedError

    def discard(self) -> None:
        """Drop the staged bytes; safe to call twice and after publish."""
        raise NotImplementedError


class StorageIO:
    """Access to files under ``root`` on an fsspec filesystem.

    Capability flags, read by the stores and the conformance suite:

    - ``atomic_upload``: one upload of a whole object appears at once
      (object stores, memory); otherwise uploads go to ``tmp/`` and are moved.
    - ``shared``: other processes see the same data (False for ``memory://``).
    - ``tamperable``: tests may rewrite stored bytes behind the store's back.
    - ``conditional_create``: an exclusive ``write_bytes`` is refused by the
      backend itself in the same request (S3 ``If-None-Match``), so callers
      need no existence check first.
    - ``exclusive_publish``: of concurrent exclusive writes to one path, exactly
      one succeeds (a hard link on local disk, a lock in memory); without it,
      racing writers may each think they wrote first.
    - ``create_only_upload``: :meth:`write_new` is one request that is refused
      when the object exists as it starts (racing writers may both succeed:
      fine for content-addressed bytes, which are the same from every writer),
      so callers need no existence check first.
    - ``hard_links``: :meth:`LocalIO.link_new` and :meth:`LocalIO.touch` exist
      (local disk): a lease can then be a link to one file its run keeps fresh.
    - ``remote``: each request is a round trip over a network (object stores),
      so independent requests are worth sending together (:meth:`gather`) and
      a listing that answers many questions at once beats one request per
      question. False for local disk and memory, where a call costs microseconds.

    - ``paged_listing``: :meth:`list_page` and each page of :meth:`list_prefix`
      are one request for up to 1,000 names in name order (S3's
      ListObjectsV2, Supabase's list-v2), so a run may list a folder
      instead of asking for each object in it; without it (the default) a
      listing may cost a request per folder, and a run asks per object.

    ``concurrency`` bounds the requests :meth:`gather` has in flight at once.

    For ``wfe check-store``'s capability table, a subclass may also say, as
    class attributes, what the flags cannot: ``whole_writes`` (how its objects
    appear whole, e.g. "a staged upload, then a MOVE with Overwrite: T"),
    ``complete_listings`` (how its listings are complete) and ``thread_safe``.
    """

    atomic_upload = False
    shared = True
    tamperable = True
    conditional_create = False
    exclusive_publish = False
    create_only_upload = False
    hard_links = False
    remote = True
    paged_listing = False
    concurrency = CONCURRENCY

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    @property
    def protocol(self) -> str:
        protocol = self.fs.protocol
        return str(protocol if isinstance(protocol, str) else protocol[0])

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def __repr__(self) -> str:
        from .._redact import redact

        return f"{type(self).__name__}({redact(f'{self.protocol}://{self.root}')})"

    # reads
    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        """The whole content of ``rel``; :class:`Damaged` if ``limit`` is given and it holds more bytes."""
        path = self.path(rel)
        with translate("read", path):
            # with a limit, one ranged read of a byte more: enough to tell, never the whole of a huge object
            data: bytes = self.fs.cat_file(path) if limit is None else self.fs.cat_file(path, 0, limit + 1)
        if limit is not None and len(data) > limit:
            raise too_large(path, limit)
        return data

    def read_hashed(self, rel: str, hasher: Hasher) -> bytes:
        """The whole content of ``rel``, also fed to ``hasher`` (where it can be, while it is read)."""
        data = self.read_bytes(rel)
        hasher.update(data)
        return data

    def open_read(self, rel: str) -> BinaryIO:
        path = self.path(rel)
        with translate("open", path):
            handle: BinaryIO = self.fs.open(path, "rb")
            return handle

    def exists(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("check", path):
            return bool(self.fs.exists(path))

    def size(self, rel: str) -> int:
        path = self.path(rel)
        with translate("stat", path):
            return int(self.fs.size(path))

    def modified(self, rel: str) -> float | None:
        """Modification time in seconds since the epoch, where the backend tells it."""
        path = self.path(rel)
        with translate("stat", path):
            try:
                return float(self.fs.modified(path).timestamp())
            except NotImplementedError:
                return None

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        """The objects under ``prefix`` whose paths sort after ``start_after``, at most ``limit`` of them.

        One request where the backend pages its listings (S3); here, one
        listing of the whole prefix, of which this returns the part asked for.
        """
        base = self.path(prefix).rstrip("/")
        with translate("list", base):
            try:
                found: dict[str, Any] = self.fs.find(base, detail=True)
            except FileNotFoundError:
                found = {}
        objects = sorted(
            Listed(_rel(str(path), self.root), int(info.get("size") or 0), _etag(info))
            for path, info in found.items()
        )
        after = [o for o in objects if o.rel > start_after]
        return Page(after[:limit], len(after) > limit)

    def list_prefix(self, prefix: str, start_after: str = "") -> Iterator[Page]:
        """The objects whose paths start with ``prefix`` (any string, not only a folder), after ``start_after``.

        In name order, a page at a time: one request per page of up to 1,000
        where the backend pages its listings (``paged_listing``). Here, pages
        of :meth:`list_page` of the folder ``prefix`` is in, from just before
        ``prefix`` to the first name past it.
        """
        folder = prefix.rpartition("/")[0]
        after = max(start_after, prefix[:-1])  # names from here on may start with prefix
        while True:
            page = self.list_page(folder, after)
            inside = [o for o in page.objects if o.rel.startswith(prefix) and o.rel > start_after]
            past = any(o.rel > prefix and not o.rel.startswith(prefix) for o in page.objects)
            yield Page(inside, page.more and not past)
            if past or not page.more or not page.objects:
                return
            after = page.objects[-1].rel

    def gather(self, call: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[call(item) for item in items]``, with up to ``concurrency`` calls at once where the store is remote.

        Results come back in order; the first exception (after every call has
        ended) is raised.
        """
        items = list(items)
        if not self.remote or len(items) < 2 or self.concurrency < 2:
            return [call(item) for item in items]
        futures = [self._executor().submit(call, item) for item in items]
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def submit(self, call: Callable[..., R], *args: Any) -> Any:
        """Run ``call(*args)`` on this store's request threads; a Future."""
        return self._executor().submit(call, *args)

    def _executor(self) -> ThreadPoolExecutor:
        return _request_threads(max(1, self.concurrency))

    def remove(self, rel: str) -> None:
        """Delete ``rel`` if it exists, in as few requests as the backend allows (nothing is returned)."""
        self.delete(rel)

    def walk(self, prefix: str) -> Iterator[str]:
        """Paths (relative to the root) of every file under ``prefix``, in no set order."""
        base = self.path(prefix).rstrip("/")
        with translate("list", base):
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                return
        for path in found:
            yield _rel(str(path), self.root)

    # writes
    def write_bytes(self, rel: str, data: bytes, *, exclusive: bool = False) -> bool:
        staging = self.stage()
        try:
            staging.write(data)
            return staging.publish(rel, exclusive=exclusive)
        finally:
            staging.discard()

    def stage(self) -> Staging:
        return SpooledStaging(self)

    def write_new(self, rel: str, data: bytes) -> bool:
        """Put content-addressed ``data`` at ``rel`` unless an object is there; True if this call wrote it.

        Every writer of ``rel`` writes these same bytes, so a backend may let
        racing writers both succeed (``create_only_upload``); here, an
        exclusive :meth:`write_bytes`.
        """
        return self.write_bytes(rel, data, exclusive=True)

    def create_small(self, rel: str, data: bytes) -> bool:
        """Create a small record only if ``rel`` does not exist; False if it does.

        Unlike :meth:`write_bytes`, a reader may briefly see the record empty or
        partly written (on local disk it is created in place, to save the temp
        file and the link): for records whose readers allow for that (leases).
        """
        return self.write_bytes(rel, data, exclusive=True)

    def upload(self, local: IO[bytes], rel: str, size: int) -> None:
        """Put the whole content of ``local`` (positioned at 0) at ``rel``."""
        path = self.path(rel)
        with translate("write", path):
            self._mkdir_parent(path)
            if self.atomic_upload:
                self._put(local, path, size)
            else:
                temporary = self.path(f"tmp/{os.urandom(16).hex()}")
                self._mkdir_parent(temporary)
                self._put(local, temporary, size)
                try:
                    self.fs.mv(temporary, path)
                except BaseException:
                    with contextlib.suppress(Exception):
                        self.fs.rm_file(temporary)
                    raise

    def _put(self, local: IO[bytes], path: str, size: int) -> None:
        name = getattr(local, "name", None)
        if isinstance(name, str) and size > SPOOL_LIMIT:
            self.fs.put_file(name, path)
        else:
            local.seek(0)
            self.fs.pipe_file(path, local.read())

    def _mkdir_parent(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.fs.makedirs(parent, exist_ok=True)

    def delete(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("delete", path):
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True

    def prune(self, rel: str) -> None:
        """Remove the empty folders at and below ``rel``, where the backend has folders (local disk)."""

    def local_path(self, rel: str) -> str | None:
        """A path on this machine's disk for ``rel``, if the backend is local."""
        return None

    def link_new(self, source: str, rel: str) -> bool:
        """A second name for ``source``, where ``hard_links`` says there is a way (local disk)."""
        raise NoHardLink(f"{self!r} has no hard links")

    def touch(self, rel: str, when: float) -> None:
        """Set the modification time of ``rel``, where ``hard_links`` says there is a way (local disk)."""
        raise NoHardLink(f"{self!r} cannot set a modification time")

    def adopt(self, path: str, rel: str) -> bool:
        """Move the local file at ``path`` to ``rel`` unless ``rel`` exists (False), where ``hard_links`` says how."""
        raise NoHardLink(f"{self!r} cannot take over a local file")

    def refresh(self, rel: str) -> bool:
        """Make ``rel``'s modification time now, as if just written (gc's grace period counts from it).

        For a blob put again that was there already: without this, gc could take it for an old, unused one
        right after the put. False where the backend has no way (the age of ``rel`` is then left as it was).
        """
        path = self.path(rel)
        try:
            with translate("refresh", path):
                self.fs.touch(path, truncate=False)
        except (NotImplementedError, ValueError, StoreError):
            return False
        return True


_POOLS: dict[int, tuple[int, ThreadPoolExecutor]] = {}  # size -> (the process that made it, the pool)
_POOLS_LOCK = threading.Lock()


def _request_threads(size: int) -> ThreadPoolExecutor:
    """The process's threads for store requests, ``size`` of them, shared by every store that wants as many.

    Threads are made as needed and kept: a store opened and dropped leaves none
    behind. A forked child inherits the pool but not its threads: it makes its own.
    """
    with _POOLS_LOCK:
        found = _POOLS.get(size)
        if found is None or found[0] != os.getpid():
            found = _POOLS[size] = (os.getpid(), ThreadPoolExecutor(size, thread_name_prefix="wfe-io"))
        return found[1]


def _etag(info: dict[str, Any]) -> str | None:
    tag = info.get("ETag") or info.get("etag") or info.get("e_tag")
    return str(tag).strip('"') if tag else None


def _rel(path: str, root: str) -> str:
    path = path.lstrip("/")
    root = root.lstrip("/")
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return path


class SpooledStaging(Staging):
    """Stage in memory, rolling over to a local temporary file past SPOOL_LIMIT."""

    def __init__(self, storage: StorageIO) -> None:
        self._storage = storage
        self._buffer: IO[bytes] = io.BytesIO()
        self._size = 0
        self._on_disk = False

    def write(self, data: bytes | memoryview) -> None:
        if not self._on_disk and self._size + len(data) > SPOOL_LIMIT:
            import tempfile

            spill = tempfile.NamedTemporaryFile(prefix="wfe-", delete=False)  # noqa: SIM115
            spill.write(cast(io.BytesIO, self._buffer).getbuffer())
            self._buffer = spill
            self._on_disk = True
        self._buffer.write(data)
        self._size += len(data)

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        if exclusive and self._storage.exists(rel):
            return False
        self._buffer.flush()
        self._buffer.seek(0)
        self._storage.upload(self._buffer, rel, self._size)
        return True

    def discard(self) -> None:
        self._buffer.close()
        if self._on_disk:
            with contextlib.suppress(OSError):
                os.unlink(self._buffer.name)
            self._on_disk = False
