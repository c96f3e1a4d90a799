"""``supabase://bucket/key``: an fsspec filesystem over Supabase Storage, through the official client.

The client is ``storage3``, the storage API of the ``supabase`` package.

Directories are virtual: a folder exists while an object has a key under it.
What the client offers decides the rest:

- uploads are one request each (``POST /object/{bucket}/{key}``); a local
  file is streamed from disk, so memory stays flat, but the object appears
  only when the request completes (never partially). storage3 exposes no
  resumable (TUS) upload, so one object is limited by the project's upload
  limit for standard uploads.
- reads of a whole object use ``download``; ranged reads stream one GET
  with a ``Range`` header over the client's own connection and headers,
  so ``open(path, "rb")`` holds one block at a time.
- listing pages through ``POST /object/list/{bucket}`` by limit and offset
  until a short page. The server matches the folder prefix like SQL
  ``ILIKE`` (case-insensitive, ``_`` matching any one character), so two
  folders that differ only that way list each other's entries: keep such
  prefixes apart (wfe's own folder names never collide this way).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any
from urllib.parse import urlsplit

from fsspec.spec import AbstractFileSystem

from ._errors import BucketNotFoundError, SupabaseStorageError, check_key, timed_out, translate
from ._transfer import (
    CONNECT_TIMEOUT,
    OPERATION_TIMEOUT,
    READ_TIMEOUT,
    Bounds,
    SupabaseFile,
    new_storage_client,
    stream_range,
    upload_body,
)

DELETE_BATCH = 1000  # storage-api refuses more objects per DELETE request
LIST_PAGE_SIZE = 1000
LIST_CONCURRENCY = 8  # folders listed at once by find(): the list API takes one folder per call
PLACEHOLDER = ".emptyFolderPlaceholder"  # written by the dashboard when a folder is created by hand


class SupabaseFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """Supabase Storage as an fsspec filesystem; paths are ``bucket/key``.

    ``url`` and ``key`` default to ``$SUPABASE_URL`` and ``$SUPABASE_KEY``.
    The key is sent as ``apiKey`` and ``Authorization: Bearer``; it never
    appears in this object's repr, in error messages or in logs.

    Each request is one attempt (storage3 retries nothing): ``connect_timeout``
    seconds to connect, ``read_timeout`` without a byte either way (so a large
    transfer is bounded by progress, not size), no single wait over ``timeout``.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        url = url or os.environ.get("SUPABASE_URL") or ""
        key = key or os.environ.get("SUPABASE_KEY") or ""
        if not url:
            raise ValueError("no Supabase project URL: set SUPABASE_URL or pass url=https://<ref>.supabase.co")
        netloc = urlsplit(url).netloc if "://" in url else ""
        if "@" in netloc:  # the part before "@" is never shown: it may be a password
            shown = url.replace(netloc, netloc.rpartition("@")[2], 1)
            raise ValueError(
                f"the Supabase project URL must not carry credentials ({shown} with a user:password@ part); "
                "the project key goes in SUPABASE_KEY or the key option"
            )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Supabase project URL must start with http:// or https://, got {url!r}")
        if not key:
            raise ValueError("no Supabase key: set SUPABASE_KEY or pass key=...")
        self.url = url.rstrip("/")
        self.list_page_size = int(list_page_size)
        self.bounds = Bounds.parse(connect_timeout, read_timeout, timeout)
        self._storage = new_storage_client(self.url, key, self.bounds)

    def __repr__(self) -> str:
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
        from storage3.exceptions import StorageApiError

        try:
            yield
        except StorageApiError as exc:
            raise translate(exc, self._shown(path)) from None
        except httpx.TimeoutException as exc:
            raise SupabaseStorageError(timed_out(exc, self.url, self._shown(path), self.bounds)) from None
        except httpx.HTTPError as exc:
            raise SupabaseStorageError(
                f"cannot reach Supabase Storage at {self.url} for {self._shown(path)}: {type(exc).__name__}: {exc}"
            ) from None

    # reading
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key = self.split_path(path)
        if not bucket:
            return {"name": "", "type": "directory", "size": 0}
        if not key:
            try:
                with self._errors(path):
                    self._storage.get_bucket(bucket)
            except BucketNotFoundError as exc:  # the path is the bucket itself: plainly not found
                raise FileNotFoundError(errno.ENOENT, str(exc)) from None
            return {"name": bucket, "type": "directory", "size": 0}
        try:
            return self._object_info(bucket, key)
        except FileNotFoundError:
            if self._list_page(bucket, key, limit=1, offset=0):
                return {"name": f"{bucket}/{key}", "type": "directory", "size": 0}
            raise

    def _object_info(self, bucket: str, key: str) -> dict[str, Any]:
        path = f"{bucket}/{key}"
        check_key(key, self._shown(path))
        with self._errors(path):
            data = self._bucket(bucket).info(key)
        metadata = data.get("metadata") or {}
        size = data.get("size")
        if size is None:
            size = metadata.get("size", metadata.get("contentLength", 0))
        return {
            "name": path,
            "type": "file",
            "size": int(size or 0),
            "etag": data.get("etag") or metadata.get("eTag"),
            "content_type": data.get("content_type") or metadata.get("mimetype"),
            "last_modified": data.get("last_modified") or data.get("updated_at"),
            "created_at": data.get("created_at"),
        }

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
            with self._errors(path):
                data: bytes = self._bucket(bucket).download(key)
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
            with self._errors(path):
                return stream_range(self._bucket(bucket), bucket, key, start, end)
        except SupabaseStorageError as exc:
            # an empty object, or a start past the end: no bytes, as on local disk
            if exc.code == "InvalidRange" or exc.status == "416":
                return bytearray()
            raise

    def _list_page(self, bucket: str, prefix: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        options = {"limit": limit, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
        with self._errors(f"{bucket}/{prefix}"):
            rows: list[dict[str, Any]] = self._bucket(bucket).list(prefix, options)
        return rows

    def _list_all(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            rows = self._list_page(bucket, prefix, limit=self.list_page_size, offset=offset)
            yield from rows
            if len(rows) < self.list_page_size:
                return
            offset += len(rows)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries directly under ``path`` (every page of the list API); FileNotFoundError if none."""
        bucket, key = self.split_path(path)
        if not bucket:
            with self._errors(""):
                buckets = self._storage.list_buckets()
            entries = [{"name": b.id, "type": "directory", "size": 0} for b in buckets]
            return entries if detail else [e["name"] for e in entries]
        base = f"{bucket}/{key}" if key else bucket
        entries = []
        for row in self._list_all(bucket, key):
            name = row.get("name") or ""
            if not name or name == PLACEHOLDER:
                continue
            if row.get("id") is None:
                entries.append({"name": f"{base}/{name}", "type": "directory", "size": 0})
            else:
                metadata = row.get("metadata") or {}
                entries.append(
                    {
                        "name": f"{base}/{name}",
                        "type": "file",
                        "size": int(metadata.get("size", metadata.get("contentLength", 0)) or 0),
                        "etag": metadata.get("eTag"),
                        "last_modified": row.get("updated_at"),
                        "created_at": row.get("created_at"),
                    }
                )
        if not entries and key:  # (a missing bucket has raised BucketNotFoundError; an empty one lists empty)
            info = self.info(path)  # a file lists as itself; a missing path raises
            entries = [info] if info["type"] == "file" else []
        return entries if detail else [e["name"] for e in entries]

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any
    ) -> Any:
        """Every object under ``path``; [] for a missing prefix.

        The list API answers one folder at a time, so this takes one call per
        folder; the folders of one level are listed concurrently.
        """
        found: dict[str, dict[str, Any]] = {}
        bucket, key = self.split_path(path)
        if key:
            with contextlib.suppress(FileNotFoundError):
                info = self._object_info(bucket, key)
                found[info["name"]] = info
        level = [self._strip_protocol(path).strip("/")]
        depth = 1
        with ThreadPoolExecutor(max_workers=LIST_CONCURRENCY, thread_name_prefix="supabase-list") as pool:
            while level:
                listings = (
                    list(pool.map(self._ls_or_nothing, level)) if len(level) > 1 else [self._ls_or_nothing(level[0])]
                )
                next_level = []
                for folder, entries in zip(level, listings, strict=True):
                    for entry in entries:
                        if entry["type"] == "directory":
                            if withdirs:
                                found[entry["name"]] = entry
                            if maxdepth is None or depth < maxdepth:
                                next_level.append(entry["name"])
                        elif entry["name"] != folder:
                            found[entry["name"]] = entry
                level, depth = next_level, depth + 1
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    def _ls_or_nothing(self, folder: str) -> list[dict[str, Any]]:
        try:
            entries: list[dict[str, Any]] = self.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        return entries

    def modified(self, path: str) -> datetime.datetime:
        return _parse_time(self.info(path).get("last_modified"), path)

    def created(self, path: str) -> datetime.datetime:
        return _parse_time(self.info(path).get("created_at"), path)

    def ukey(self, path: str) -> str:
        return str(self.info(path).get("etag") or super().ukey(path))

    # writing
    def upload(self, path: str, source: bytes | str | IO[bytes], *, overwrite: bool = True) -> None:
        """Store ``source`` (bytes, a local file path, or a binary file) at ``path`` in one request.

        With ``overwrite=False`` the server refuses an existing key and this
        raises FileExistsError: a create-only write, safe against races.
        A local file is streamed, not read into memory.
        """
        bucket, key = self.split_path(path)
        shown = self._shown(path)
        check_key(key, shown)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        options = {"content-type": content_type, "upsert": "true" if overwrite else "false"}
        with upload_body(source) as body, self._errors(path):
            self._bucket(bucket).upload(key, body, options)
        self.invalidate_cache(self._parent(path))

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
        bucket1, key1 = self.split_path(path1)
        bucket2, key2 = self.split_path(path2)
        if recursive or bucket1 != bucket2 or not self.object_exists(path1):
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        check_key(key2, self._shown(path2))
        proxy = self._bucket(bucket1)
        with self._errors(path1):
            try:
                proxy.move(key1, key2)
            except Exception as exc:
                if not isinstance(translate(exc, ""), FileExistsError):
                    raise
                proxy.remove([key2])
                proxy.move(key1, key2)
        self.invalidate_cache()

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


def _parse_time(value: Any, path: str) -> datetime.datetime:
    if not value:
        raise NotImplementedError(f"no modification time for {path}")
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
