"""``supabase://bucket/key``: an fsspec filesystem over Supabase Storage, through the official client.

The client is ``storage3``, the storage API of the ``supabase`` package.

Directories are virtual: a folder exists while an object has a key under it.
What the server does decides the rest (observed on the open-source server
every Supabase project runs):

- uploads are one request each (``POST /object/{bucket}/{key}``); a local
  file is streamed from disk, so memory stays flat, and the object appears
  only when the request completes (never partially). storage3 exposes no
  resumable (TUS) upload, so one object is limited by the project's upload
  limit for standard uploads. A create-only upload (no upsert) is refused
  when the key exists as it starts, but two racing ones can both succeed:
  :meth:`SupabaseFileSystem.move_new` is the create-only step exactly one of
  racing writers wins (the server renames within one database transaction,
  under a unique key).
- the server refuses an upload before reading its body; uploads past
  ``KEEPALIVE_UPLOAD_LIMIT`` close their connection after the answer, since
  a connection left with an unread body never answers again.
- reads of a whole object use ``download``; ranged reads stream one GET
  with a ``Range`` header over the client's own connection and headers,
  so ``open(path, "rb")`` holds one block at a time. A read answered with
  HTTP 500 is asked again (eight attempts in all, about 0.6 s of pauses at
  most): a read racing a replacement of the same object can find the version
  it looked up deleted before its bytes are read (a server without its job
  queue deletes the old version's bytes before the new one is committed).
- listings use list-v2 (see :mod:`wfe_supabase._listing`): exact,
  case-sensitive prefixes and whole keys; ``find`` is one flat listing,
  1,000 keys a request, whatever the folders.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import mimetypes
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

from fsspec.spec import AbstractFileSystem

from ._errors import (
    SERVICE_ROLE,
    BucketNotFoundError,
    SupabaseStorageError,
    check_key,
    key_role,
    timed_out,
    translate,
)
from ._listing import LIST_LIMIT, file_entry, folder_entry, list_v2, pages_v2
from ._transfer import (
    CONNECT_TIMEOUT,
    KEEPALIVE_UPLOAD_LIMIT,
    OPERATION_TIMEOUT,
    READ_TIMEOUT,
    Bounds,
    SupabaseFile,
    new_storage_client,
    stream_range,
    upload_body,
)

DELETE_BATCH = 1000  # storage-api refuses more objects per DELETE request
LIST_PAGE_SIZE = LIST_LIMIT
CONNECTION_LOST = "ConnectionLost"  # the code of an error whose connection broke under it (not a timeout)
READ_ATTEMPTS = 8  # a read answered with HTTP 500 is asked this many times in all
READ_RETRY_PAUSE = 0.02  # seconds, times the attempt's number, jittered: about 0.6 s in all at most
BUCKET_PROBE = "wfe-bucket-check"  # an object key asked for only to tell a hidden bucket from a missing one

log = logging.getLogger(__name__)
T = TypeVar("T")


class _FromEnvironment(type(AbstractFileSystem)):  # type: ignore[misc]  # fsspec is untyped
    """Fill ``url`` and ``key`` from the environment before fsspec looks up a cached instance.

    fsspec caches a filesystem by the arguments it was given; read later, a
    changed ``SUPABASE_URL`` would find the instance made for the old one.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args:
            if not kwargs.get("url") and not kwargs.get("storage_url") and os.environ.get("SUPABASE_URL"):
                kwargs["url"] = os.environ["SUPABASE_URL"]
            if not kwargs.get("key") and os.environ.get("SUPABASE_KEY"):
                kwargs["key"] = os.environ["SUPABASE_KEY"]
        return super().__call__(*args, **kwargs)


class SupabaseFileSystem(AbstractFileSystem, metaclass=_FromEnvironment):  # type: ignore[misc]  # fsspec is untyped
    """Supabase Storage as an fsspec filesystem; paths are ``bucket/key``.

    ``url`` and ``key`` default to ``$SUPABASE_URL`` and ``$SUPABASE_KEY``.
    The key is sent as ``apiKey`` and ``Authorization: Bearer``; it never
    appears in this object's repr, in error messages or in logs.

    Each request is one attempt (storage3 retries nothing; only a read the
    server answers with HTTP 500 is asked again, and a request whose
    connection broke before its answer began is sent once more): ``connect_timeout`` seconds
    to connect, ``read_timeout`` without a byte either way (so a large
    transfer is bounded by progress, not size), no single wait over ``timeout``.
    ``list_page_size`` keys per listing request (at most 1,000).

    ``storage_url`` is the Storage API's base URL, used as it is instead of
    ``{url}/storage/v1`` (where Supabase's gateway serves it): for a self-hosted
    Storage server without the gateway, which serves ``/bucket`` and
    ``/object/...`` at its root, pass that root. ``url`` may then be left out.
    """

    protocol = ("supabase",)
    root_marker = ""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        timeout: float = OPERATION_TIMEOUT,
        list_page_size: int = LIST_PAGE_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        storage_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        url = url or storage_url or os.environ.get("SUPABASE_URL") or ""
        key = key or os.environ.get("SUPABASE_KEY") or ""
        if not url:
            raise ValueError(
                "no Supabase project URL: set SUPABASE_URL or pass url=https://<ref>.supabase.co "
                "(or storage_url= for a self-hosted Storage server)"
            )
        _check_url(url, "project URL")
        if storage_url:
            _check_url(storage_url, "storage_url")
        if not key:
            raise ValueError("no Supabase key: set SUPABASE_KEY or pass key=...")
        self.url = url.rstrip("/")
        self.storage_url = (storage_url or f"{self.url}/storage/v1").rstrip("/")
        self._endpoint = storage_url.rstrip("/") if storage_url else self.url  # what messages name
        self.list_page_size = int(list_page_size)
        if not 0 < self.list_page_size <= LIST_LIMIT:
            raise ValueError(f"Supabase option list_page_size must be 1 to {LIST_LIMIT}, got {list_page_size!r}")
        self.bounds = Bounds.parse(connect_timeout, read_timeout, timeout)
        self.role = key_role(key)  # what the key acts as (it words errors); never the key itself
        self._storage = new_storage_client(self.storage_url, key, self.bounds)
        self._checked_buckets: set[str] = set()

    def __repr__(self) -> str:
        if self._endpoint != self.url:
            return f"SupabaseFileSystem(url={self.url!r}, storage_url={self.storage_url!r})"
        return f"SupabaseFileSystem(url={self.url!r})"

    __str__ = __repr__

    # paths
    @staticmethod
    def split_path(path: str) -> tuple[str, str]:
        path = SupabaseFileSystem._strip_protocol(path).strip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    def _shown(self, path: str) -> str:
        return f"supabase://{self._strip_protocol(path).strip('/')}"

    def _bucket(self, bucket: str) -> Any:
        return self._storage.from_(bucket)

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        """Translate storage3 and transport errors for ``path`` (see :mod:`wfe_supabase._errors`)."""
        import httpx
        import pydantic
        from storage3.exceptions import StorageApiError

        try:
            yield
        except StorageApiError as exc:
            error = translate(exc, self._shown(path), self._endpoint, self.role)
            if isinstance(error, BucketNotFoundError):
                error = self._why_no_bucket(path, error)
            raise error from None
        except httpx.TimeoutException as exc:
            raise SupabaseStorageError(timed_out(exc, self._endpoint, self._shown(path), self.bounds)) from None
        except httpx.HTTPError as exc:
            lost = isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError))
            raise SupabaseStorageError(
                f"cannot reach Supabase Storage at {self._endpoint} for {self._shown(path)}: "
                f"{type(exc).__name__}: {exc}",
                code=CONNECTION_LOST if lost else "",
            ) from None
        except pydantic.ValidationError as exc:
            raise SupabaseStorageError(
                f"Supabase Storage at {self._endpoint} answered {self._shown(path)} in a form storage3 does not "
                f"read ({exc.error_count()} errors, the first: {exc.errors()[0]['msg']}); check the URL"
            ) from None

    def _why_no_bucket(self, path: str, error: BucketNotFoundError) -> OSError:
        """Tell a key the server cannot verify from a missing bucket, after an object request said "no bucket".

        The server reads a private bucket's objects with such a key as if the
        bucket were missing; asked for the bucket itself, it says why.
        """
        bucket, key = self.split_path(path)
        if not key:
            return error
        try:
            with self._errors(bucket):
                self._storage.get_bucket(bucket)
        except PermissionError as refused:
            return refused
        except OSError:
            return error
        return error

    def _read(self, path: str, call: Callable[[], T]) -> T:
        """``call()`` (a read), translated; asked again while the server answers HTTP 500.

        A read racing a replacement of the same object can find the version
        it looked up just deleted (the server then fails with HTTP 500:
        ENOENT, or a reply it cannot send); asked again, it finds the new one.
        A read whose connection broke in the middle of the answer is asked
        again once. Reads are safe to repeat; writes are never repeated here.
        """
        lost = 0
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                with self._errors(path):
                    return call()
            except SupabaseStorageError as exc:
                if exc.code == CONNECTION_LOST and not lost:
                    lost += 1
                    continue
                if exc.status != "500" or exc.code == "NotSupabaseStorage" or attempt == READ_ATTEMPTS:
                    raise
            time.sleep(READ_RETRY_PAUSE * attempt * random.uniform(0.5, 1.5))  # jitter: apart from other readers
        raise AssertionError("unreachable")

    def check_bucket(self, bucket: str) -> None:
        """Raise unless ``bucket`` exists and the key may use it: BucketNotFoundError or PermissionError.

        Asked once per bucket and filesystem, in one request when the key sees
        the bucket. A key whose row-level-security policies hide the bucket's
        row gets "not found" for a bucket that exists, so one more request then
        asks for an object in it: "no such object" means the bucket is there.
        """
        if bucket in self._checked_buckets:
            return
        try:
            with self._errors(bucket):
                self._storage.get_bucket(bucket)
        except BucketNotFoundError:
            if self.role == SERVICE_ROLE:
                raise
            with contextlib.suppress(FileNotFoundError):
                self._object_info(bucket, BUCKET_PROBE)
            log.info(
                "Supabase bucket %r exists but is hidden from this key (role %r) by row-level security; "
                "objects its policies hide will look missing",
                bucket,
                self.role,
            )
        self._checked_buckets.add(bucket)

    # reading
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key = self.split_path(path)
        if not bucket:
            return folder_entry("")
        if not key:
            try:
                with self._errors(path):
                    self._storage.get_bucket(bucket)
            except BucketNotFoundError as exc:  # the path is the bucket itself: plainly not found
                raise FileNotFoundError(errno.ENOENT, str(exc)) from None
            return folder_entry(bucket)
        try:
            return self._object_info(bucket, key)
        except FileNotFoundError:
            with self._errors(path):
                below = next(list_v2(self._bucket(bucket), f"{key}/", folders=False, page_size=1), None)
            if below is not None:
                return folder_entry(f"{bucket}/{key}")
            raise

    def _object_info(self, bucket: str, key: str) -> dict[str, Any]:
        path = f"{bucket}/{key}"
        check_key(key, self._shown(path))
        row: dict[str, Any] = self._read(path, lambda: self._bucket(bucket).info(key))
        return file_entry(path, row)

    def object_exists(self, path: str) -> bool:
        """True if an object (not a folder) is stored at ``path``: one request."""
        bucket, key = self.split_path(path)
        try:
            self._object_info(bucket, key)
        except FileNotFoundError:
            return False
        return True

    def exists(self, path: str, **kwargs: Any) -> bool:
        """False only for a missing object or folder; a missing bucket or refused key raises."""
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        bucket, key = self.split_path(path)
        check_key(key, self._shown(path))
        if start is None and end is None:
            data: bytes = self._read(path, lambda: self._bucket(bucket).download(key))
            return data
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.size(path)
            start = max(size + start, 0) if start is not None and start < 0 else start
            end = max(size + end, 0) if end is not None and end < 0 else end
        return self.read_range(path, start or 0, end)

    def read_range(self, path: str, start: int, end: int | None) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive); past the end of the object gives fewer or none."""
        return bytes(self._read_range(path, start, end))

    def _read_range(self, path: str, start: int, end: int | None) -> bytearray:
        if end is not None and end <= start:
            return bytearray()
        bucket, key = self.split_path(path)
        check_key(key, self._shown(path))
        try:
            return self._read(path, lambda: stream_range(self._bucket(bucket), bucket, key, start, end))
        except SupabaseStorageError as exc:
            # an empty object, or a start past the end: no bytes, as on local disk
            if exc.code == "InvalidRange" or exc.status == "416":
                return bytearray()
            raise

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries directly under ``path`` (every page); FileNotFoundError if there is nothing at ``path``."""
        bucket, key = self.split_path(path)
        if not bucket:
            with self._errors(""):
                buckets = self._storage.list_buckets()
            entries = [folder_entry(b.id) for b in buckets]
            return entries if detail else [e["name"] for e in entries]
        entries = []
        with self._errors(path):
            for entry in list_v2(self._bucket(bucket), f"{key}/" if key else "", folders=True,
                                 page_size=self.list_page_size):  # fmt: skip
                if entry.row is None:
                    entries.append(folder_entry(f"{bucket}/{entry.key}"))
                elif not entry.is_placeholder:
                    entries.append(file_entry(f"{bucket}/{entry.key}", entry.row))
        if not entries:  # a file lists as itself; a missing path or bucket raises (listing it answers [])
            info = self.info(path)
            entries = [info] if info["type"] == "file" else []
        return entries if detail else [e["name"] for e in entries]

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any
    ) -> Any:
        """Every object under ``path`` (or ``path`` itself, if it is an object and has none); [] if none.

        One flat listing, 1,000 keys a request, however many folders there are.
        """
        bucket, key = self.split_path(path)
        if not bucket:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        prefix = f"{key}/" if key else ""
        found: dict[str, dict[str, Any]] = {}
        with self._errors(path):
            for entry in list_v2(self._bucket(bucket), prefix, folders=False, page_size=self.list_page_size):
                parts = entry.key[len(prefix) :].split("/")
                if withdirs:
                    for depth in range(1, len(parts) if maxdepth is None else min(len(parts), maxdepth + 1)):
                        folder = f"{bucket}/{prefix}{'/'.join(parts[:depth])}"
                        found.setdefault(folder, folder_entry(folder))
                if entry.row is None or entry.is_placeholder or (maxdepth is not None and len(parts) > maxdepth):
                    continue
                found[f"{bucket}/{entry.key}"] = file_entry(f"{bucket}/{entry.key}", entry.row)
        if key and not found:
            with contextlib.suppress(FileNotFoundError):
                info = self._object_info(bucket, key)
                found[info["name"]] = info
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    def list_pages(self, prefix: str) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """The objects whose keys start with ``prefix`` (``bucket/key…``, matched as a string; a final ``/`` kept).

        A page (up to ``list_page_size`` objects) a request: each page's
        entries, as :meth:`find` describes them, and whether more follow.
        """
        bucket, key = self.split_path(prefix)
        if key and prefix.endswith("/"):
            key += "/"
        with self._errors(prefix):
            for entries, more in pages_v2(self._bucket(bucket), key, folders=False, page_size=self.list_page_size):
                yield [
                    file_entry(f"{bucket}/{entry.key}", entry.row)
                    for entry in entries
                    if entry.row is not None and not entry.is_placeholder
                ], more

    def modified(self, path: str) -> datetime.datetime:
        return _parse_time(self.info(path).get("last_modified"), path)

    def created(self, path: str) -> datetime.datetime:
        return _parse_time(self.info(path).get("created_at"), path)

    def ukey(self, path: str) -> str:
        return str(self.info(path).get("etag") or super().ukey(path))

    # writing
    def upload(self, path: str, source: bytes | str | IO[bytes], *, overwrite: bool = True) -> None:
        """Store ``source`` (bytes, a local file path, or a binary file) at ``path`` in one request.

        With ``overwrite=False`` the server refuses a key that exists when the
        upload starts (FileExistsError), but two racing uploads of a new key
        can both succeed, the last one's bytes staying: for a create-only write
        that exactly one of racing writers wins, upload elsewhere and
        :meth:`move_new`. A local file is streamed, not read into memory.
        """
        bucket, key = self.split_path(path)
        shown = self._shown(path)
        check_key(key, shown)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        options: dict[str, Any] = {"content-type": content_type, "upsert": "true" if overwrite else "false"}
        with upload_body(source) as (body, size), self._errors(path):
            if size > KEEPALIVE_UPLOAD_LIMIT:  # refused, the body would be left unread on the connection
                options["headers"] = {"Connection": "close"}
            self._bucket(bucket).upload(key, body, options)
        self.invalidate_cache(self._parent(path))

    def move_new(self, path1: str, path2: str) -> None:
        """Rename the object ``path1`` to ``path2`` unless ``path2`` exists (FileExistsError; ``path1`` stays).

        The server renames within one database transaction, under a lock on
        the destination and a unique key on (bucket, name): of racing moves to
        one key exactly one succeeds. One request; both paths in one bucket.
        """
        bucket1, key1 = self.split_path(path1)
        bucket2, key2 = self.split_path(path2)
        if bucket1 != bucket2:
            raise ValueError(f"move_new works within one bucket, not from {bucket1!r} to {bucket2!r}")
        check_key(key2, self._shown(path2))
        with self._errors(path2):
            self._bucket(bucket1).move(key1, key2)
        self.invalidate_cache()

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self.upload(path, value, overwrite=mode != "create")

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return  # folders are virtual
        self.upload(rpath, os.fspath(lpath), overwrite=mode != "create")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create the bucket if ``path`` names only a bucket (private unless ``public=True``); folders are virtual."""
        bucket, key = self.split_path(path)
        if key or not bucket:
            return
        options = {"public": bool(kwargs.get("public", False))}
        if kwargs.get("file_size_limit") is not None:
            options["file_size_limit"] = kwargs["file_size_limit"]
        with self._errors(bucket):
            self._storage.create_bucket(bucket, options=options)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: folders exist while objects are under them."""

    def rm_file(self, path: str) -> None:
        bucket, key = self.split_path(path)
        with self._errors(path):
            removed = self._bucket(bucket).remove([key])
        if not removed:
            raise FileNotFoundError(2, f"Object not found: {self._shown(path)}")
        self.invalidate_cache(self._parent(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete objects, up to 1000 keys per request; folders vanish with their objects.

        FileNotFoundError if nothing matched.
        """
        targets: list[str] = []
        for item in path if isinstance(path, (list, tuple)) else [path]:
            if ("*" in item or "[" in item) and not self.object_exists(item):  # "?" and "*" are valid in keys
                targets.extend(p for p in self.expand_path(item) if self.object_exists(p))
            elif recursive:
                targets.extend(self.find(item, maxdepth=maxdepth))
            else:
                targets.append(self._strip_protocol(item).strip("/"))
        by_bucket: dict[str, list[str]] = {}
        for target in dict.fromkeys(targets):
            bucket, key = self.split_path(target)
            if key:
                by_bucket.setdefault(bucket, []).append(key)
        removed = 0
        for bucket, keys in by_bucket.items():
            for index in range(0, len(keys), DELETE_BATCH):
                with self._errors(bucket):
                    removed += len(self._bucket(bucket).remove(keys[index : index + DELETE_BATCH]))
        self.invalidate_cache()
        if not removed:
            raise FileNotFoundError(2, f"Object not found: {path}")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy on the server within a bucket; across buckets, through a local temporary file."""
        bucket1, key1 = self.split_path(path1)
        bucket2, key2 = self.split_path(path2)
        if bucket1 != bucket2:
            with tempfile.TemporaryDirectory(prefix="wfe-supabase-") as folder:
                local = os.path.join(folder, "copy")
                self.get_file(path1, local)
                self.upload(path2, local)
            return
        check_key(key2, self._shown(path2))
        proxy = self._bucket(bucket1)
        with self._errors(path1):
            try:
                proxy.copy(key1, key2)
            except Exception as exc:  # an existing destination: replace it, as cp does
                if not isinstance(translate(exc, ""), FileExistsError):
                    raise
                proxy.remove([key2])
                proxy.copy(key1, key2)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        bucket1, _ = self.split_path(path1)
        bucket2, key2 = self.split_path(path2)
        if recursive or bucket1 != bucket2 or not self.object_exists(path1):
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        try:
            self.move_new(path1, path2)
        except FileExistsError:  # an existing destination: replace it, as mv does
            with self._errors(path2):
                self._bucket(bucket2).remove([key2])
            self.move_new(path1, path2)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        """Download to a local file block by block (ranged reads), so memory stays flat."""
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        with self.open(rpath, "rb") as source, open(lpath, "wb") as target:
            while chunk := source.read(self.blocksize):
                target.write(chunk)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SupabaseFile:
        return SupabaseFile(self, path, mode, block_size or "default", autocommit, cache_options=cache_options)


def _check_url(url: str, what: str) -> None:
    """ValueError unless ``url`` is http(s) without a user:password@ part (which is never shown)."""
    netloc = urlsplit(url).netloc if "://" in url else ""
    if "@" in netloc:
        shown = url.replace(netloc, netloc.rpartition("@")[2], 1)
        raise ValueError(
            f"the Supabase {what} must not carry credentials ({shown} with a user:password@ part); "
            "the project key goes in SUPABASE_KEY or the key option"
        )
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Supabase {what} must start with http:// or https://, got {url!r}")


def _parse_time(value: Any, path: str) -> datetime.datetime:
    if not value:
        raise NotImplementedError(f"no modification time for {path}")
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
