"""The content-addressed blob store."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, BinaryIO, Union, cast

from .._errors import BlobNotFoundError, IntegrityError
from ..storage._base import CHUNK_SIZE, StorageIO
from ..storage._fill import hash_pool
from ._digest import PREFIX, digest_of, digest_of_stream, new_hasher
from ._paths import BLOB_PREFIX, blob_path, digest_from_path

BlobSource = Union[bytes, bytearray, memoryview, IO[bytes], "os.PathLike[str]"]


SMALL_BLOB = 64 * 1024  # bytes


RECENT_BLOBS = 1024  # digests of small blobs a store remembers putting (then forgets them all and starts again)


class BlobStore:
    """Immutable bytes addressed by their sha256 digest.

    - ``put`` streams, hashes while writing and publishes atomically; putting
      bytes that are already stored is a cheap no-op. Repeats are safe.
    - ``get`` and ``open`` verify the digest as the bytes pass and raise
      :class:`IntegrityError` on a mismatch; a missing blob raises
      :class:`BlobNotFoundError`.
    - ``delete`` is idempotent: it returns False if there was nothing to delete.
    """

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage
        self._recent: dict[str, None] = {}  # small blobs this store put lately: likely there, so asked first
        self._renewed: set[str] = set()  # blobs found already there and made young again by this store

    def __repr__(self) -> str:
        return f"BlobStore({self._io!r})"

    def put(self, data: BlobSource) -> str:
        """Store bytes, a binary file object or the file at a path; return the digest."""
        return self.put_sized(data)[0]

    def put_sized(self, data: BlobSource) -> tuple[str, int]:
        """Like :meth:`put`, also returning the size in bytes."""
        digest, size, _created = self.put_new(data)
        return digest, size

    def put_moved(self, path: str) -> tuple[str, int]:
        """Store the local file at ``path`` by moving it into place; return ``(digest, size)``.

        For a file no one else holds or writes (a node's scratch file): on local
        disk it is hashed, then linked under its digest and removed from ``path``,
        so its bytes are never copied. Elsewhere it is put like any file.
        """
        if not self._io.hard_links:
            return self.put_sized(Path(path))
        with open(path, "rb") as source:
            digest, size = digest_of_stream(source, CHUNK_SIZE)
        if not self._io.adopt(path, blob_path(digest)):
            self._renew(digest)
        return digest, size

    def put_new(self, data: BlobSource) -> tuple[str, int, bool]:
        """Like :meth:`put`, returning ``(digest, size, created)``; ``created`` is False on dedup."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            put = self._put_bytes(bytes(data) if not isinstance(data, bytes) else data)
        elif isinstance(data, os.PathLike):
            with open(os.fspath(data), "rb") as handle:
                put = self._put_stream(handle)
        elif hasattr(data, "read") or hasattr(data, "readinto"):
            put = self._put_stream(data)
        elif isinstance(data, str):  # a file name or text? Neither is guessed
            raise TypeError(f"cannot store a str ({_clip(data)!r}): pass its bytes (text.encode()), or "
                            f"pathlib.Path(name) to store the file it names")  # fmt: skip
        else:
            raise TypeError(f"cannot store {type(data).__name__}: pass bytes, a binary file or a pathlib.Path")
        if not put[2]:
            self._renew(put[0])
        return put

    def _renew(self, digest: str) -> None:
        """A blob put again that was there already is as young as a new one: gc's grace period protects it.

        Once per digest per store object (a fan-out returning one value renews it once, not per node).
        """
        if digest not in self._renewed:
            if len(self._renewed) >= RECENT_BLOBS:
                self._renewed.clear()
            self._io.refresh(blob_path(digest))
            self._renewed.add(digest)

    def _put_bytes(self, data: bytes) -> tuple[str, int, bool]:
        if len(data) > CHUNK_SIZE and self._io.local_path(BLOB_PREFIX) is not None:
            return self._put_large_local(data)
        digest = digest_of(data)
        rel = blob_path(digest)
        # Ask first unless the write itself refuses an existing blob and the data is small enough
        # that writing it in vain costs less than asking every time: except for the blobs this store
        # put lately, such as the same value returned by many nodes, which are likely there already.
        io = self._io
        refuses = io.conditional_create or (
            (io.exclusive_publish or io.create_only_upload) and len(data) <= SMALL_BLOB
        )
        if (not refuses or digest in self._recent) and io.exists(rel):
            return digest, len(data), False
        created = io.write_new(rel, data)
        if refuses:
            if len(self._recent) >= RECENT_BLOBS:
                self._recent.clear()
            self._recent[digest] = None
        return digest, len(data), created

    def _put_large_local(self, data: bytes) -> tuple[str, int, bool]:
        """Hash in a helper thread while the bytes go to a temp file; publish under the digest.

        On local disk writing costs about what hashing does, so doing both at
        once halves the time. If the blob exists already the temp file is
        dropped: still no slower than hashing alone.
        """
        hashing = hash_pool().submit(digest_of, data)
        staging = self._io.stage()
        try:
            view = memoryview(data)
            for start in range(0, len(data), CHUNK_SIZE):
                staging.write(view[start : start + CHUNK_SIZE])
            digest = hashing.result()
            return digest, len(data), staging.publish(blob_path(digest), exclusive=True)
        finally:
            hashing.cancel() or hashing.exception()  # never return while the hash still reads ``data``
            staging.discard()

    def _put_stream(self, source: IO[bytes]) -> tuple[str, int, bool]:
        hasher = new_hasher()
        size = 0
        staging = self._io.stage()
        hashing: Future[None] | None = None  # the previous chunk's hash, running beside this chunk's I/O
        try:
            # Two buffers: while the hash of one runs in a helper thread (hashlib releases the GIL),
            # the next chunk is read into the other and written; updates stay in order.
            buffers = (memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE)))
            readinto = getattr(source, "readinto", None)
            turn = 0
            while True:
                if readinto is not None:
                    count = readinto(buffers[turn])
                    chunk = buffers[turn][: count or 0]
                else:
                    data = source.read(CHUNK_SIZE)
                    count = len(data) if data else 0
                    chunk = memoryview(data or b"")
                if hashing is not None:
                    hashing.result()
                    hashing = None
                if not count:
                    break
                if size == 0 and count < CHUNK_SIZE:
                    hasher.update(chunk)  # a small blob: no thread
                else:
                    hashing = hash_pool().submit(hasher.update, chunk)
                staging.write(chunk)
                size += count
                turn = 1 - turn
            digest = PREFIX + hasher.hexdigest()
            return digest, size, staging.publish(blob_path(digest), exclusive=True)
        finally:
            if hashing is not None:
                hashing.cancel() or hashing.exception()  # never leave a hash running on a reused buffer
            staging.discard()

    def get(self, digest: str) -> bytes:
        """The verified bytes of a blob."""
        rel = blob_path(digest)
        hasher = new_hasher()
        try:
            data = self._io.read_hashed(rel, hasher)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None
        if PREFIX + hasher.hexdigest() != digest:
            raise IntegrityError(digest, f"stored bytes hash to {PREFIX}{hasher.hexdigest()}")
        return data

    def open(self, digest: str) -> BinaryIO:
        """A binary file object over the blob, verified as it is read to the end."""
        rel = blob_path(digest)
        try:
            raw = self._io.open_read(rel)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None
        return cast(BinaryIO, VerifiedReader(raw, digest))

    def exists(self, digest: str) -> bool:
        return self._io.exists(blob_path(digest))

    def size(self, digest: str) -> int:
        try:
            return self._io.size(blob_path(digest))
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None

    def modified(self, digest: str) -> float | None:
        """When the blob was written (seconds since the epoch); None if the backend cannot tell."""
        try:
            return self._io.modified(blob_path(digest))
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None

    def delete(self, digest: str) -> bool:
        """Remove a blob; False if it was not there."""
        self._recent.pop(digest, None)
        return self._io.delete(blob_path(digest))

    def __iter__(self) -> Iterator[str]:
        """Every stored digest, in no set order."""
        for rel in self._io.walk(BLOB_PREFIX):
            digest = digest_from_path(rel)
            if digest is not None:
                yield digest

    def with_prefix(self, hexprefix: str, limit: int) -> list[str]:
        """Up to ``limit`` stored digests whose hex starts with ``hexprefix`` (at least two lowercase hex), in order.

        Lists only the names starting with it, in the folder of its first two
        characters: one request for up to 1,000 on a paged backend (S3,
        Supabase), that one folder elsewhere.
        """
        if len(hexprefix) < 2 or hexprefix.strip("0123456789abcdef"):
            raise ValueError(f"not a digest prefix: {hexprefix!r}")
        found: list[str] = []
        for page in self._io.list_prefix(f"{BLOB_PREFIX}/{hexprefix[:2]}/{hexprefix[2:]}"):
            for listed in page.objects:
                digest = digest_from_path(listed.rel)
                if digest is not None:
                    found.append(digest)
                    if len(found) >= limit:
                        return found
        return found

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self.exists(digest)

    def local_path(self, digest: str) -> str | None:
        """The blob's own file on this machine's disk, if the store is local (read it, never write it)."""
        return self._io.local_path(blob_path(digest))

    def export(self, digest: str, destination: str | os.PathLike[str]) -> int:
        """Copy a blob to a local file, verified; the file appears only if the bytes match."""
        destination = os.fspath(destination)
        partial = destination + ".partial"
        size = 0
        try:
            with self.open(digest) as source, open(partial, "wb") as target:
                while chunk := source.read(CHUNK_SIZE):
                    target.write(chunk)
                    size += len(chunk)
            os.replace(partial, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return size


class VerifiedReader(io.RawIOBase):
    """Reads a blob and checks its digest when the end is reached."""

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._hasher = new_hasher()
        self._done = False
        self._hashing: Future[None] | None = None  # the last chunk's hash, running beside the next read

    def readable(self) -> bool:
        return True

    def _hashed(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._hashed()  # the caller owns this buffer: hash it here, in order
        view = memoryview(buffer).cast("B")
        count = self._raw.readinto(view) if hasattr(self._raw, "readinto") else None
        if count is None:
            data = self._raw.read(len(view))
            count = len(data)
            view[:count] = data
        if count:
            self._hasher.update(view[:count])
        elif not self._done and len(view):
            self._finish()
        return count

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        data = self._raw.read(size) or b""
        self._hashed()
        if len(data) >= 1 << 20:  # bytes are immutable: hash them in the helper thread while the caller works
            self._hashing = hash_pool().submit(self._hasher.update, data)
        elif data:
            self._hasher.update(data)
        elif not self._done and size:
            self._finish()
        return data

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(CHUNK_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)

    def _finish(self) -> None:
        self._hashed()
        self._done = True
        actual = PREFIX + self._hasher.hexdigest()
        if actual != self._digest:
            raise IntegrityError(self._digest, f"stored bytes hash to {actual}")

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._raw.close()
        super().close()


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
