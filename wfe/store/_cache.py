"""A local read-through cache of blobs, on diskcache, in front of a remote store.

Blobs are immutable and named by their digest, so a cached copy can never be
stale: the only way it can be wrong is by damage on the local disk, and every
hit is hashed before it is served. A damaged entry is dropped and the blob
fetched again from the store.

Switched on by any of, first match wins:

- the store options ``cache=PATH`` and ``cache_size=SIZE`` (URL query or
  ``--store-option``), or ``wfe … --cache PATH[,SIZE]``;
- the environment variable ``WFE_CACHE=PATH[,SIZE]``.

``SIZE`` is bytes or a number with a unit (``500MB``, ``2GiB``); the default is
1 GiB. The cache is bounded: past the limit the least recently used blobs
are evicted. Several stores and processes may share one cache folder.
Stores on local disk are never cached (they are already local).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from .._errors import StoreURLError
from ..storage._base import CHUNK_SIZE, StorageIO
from ._blobs import BlobStore
from ._digest import PREFIX, digest_of_stream, new_hasher, validate_digest

CACHE_OPTIONS = ("cache", "cache_size")
CACHE_ENV = "WFE_CACHE"
DEFAULT_CACHE_SIZE = 1024**3
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}  # fmt: skip
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str | int) -> int:
    """``"2GiB"`` -> bytes; a StoreURLError for anything else."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.fullmatch(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise StoreURLError(f"invalid cache size {text!r}: use bytes or a unit, e.g. 500MB or 2GiB")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class CacheSettings:
    """Where the cache lives and how many bytes it may hold."""

    path: str
    size_limit: int = DEFAULT_CACHE_SIZE

    @classmethod
    def parse(cls, spec: str) -> CacheSettings:
        """``PATH[,SIZE]``, as given to ``--cache`` or ``WFE_CACHE``."""
        path, _, size = spec.partition(",")
        if not path.strip():
            raise StoreURLError(f"invalid cache setting {spec!r}: expected PATH[,SIZE]")
        return cls(os.path.abspath(os.path.expanduser(path.strip())), parse_size(size) if size else DEFAULT_CACHE_SIZE)


def cache_settings(options: Mapping[str, Any]) -> tuple[CacheSettings | None, dict[str, Any]]:
    """Split the cache options off store options; fall back to ``$WFE_CACHE``.

    Returns the settings (None for no cache) and the remaining backend options.
    """
    rest = {k: v for k, v in options.items() if k not in CACHE_OPTIONS}
    path = options.get("cache")
    if path:
        settings = CacheSettings.parse(str(path))
        if options.get("cache_size"):
            settings = CacheSettings(settings.path, parse_size(options["cache_size"]))
        return settings, rest
    if options.get("cache_size"):
        raise StoreURLError("cache_size needs cache=PATH as well")
    spec = os.environ.get(CACHE_ENV, "").strip()
    return (CacheSettings.parse(spec) if spec else None), rest


_OPEN: dict[CacheSettings, BlobCache] = {}
_OPEN_LOCK = threading.Lock()


def blob_cache(settings: CacheSettings) -> BlobCache:
    """The one :class:`BlobCache` of this process for these settings."""
    with _OPEN_LOCK:
        cache = _OPEN.get(settings)
        if cache is None:
            cache = _OPEN[settings] = BlobCache(settings)
        return cache


class BlobCache:
    """Digest -> verified bytes on local disk, bounded, least recently used evicted first."""

    def __init__(self, settings: CacheSettings) -> None:
        try:
            import diskcache
        except ImportError:
            raise StoreURLError("the blob cache needs diskcache: pip install 'wfe[cache]'") from None
        self.settings = settings
        # cull_limit=0: diskcache would evict ten entries at a time, the new one among them
        # when the cache holds few; :meth:`_evict` removes just enough instead.
        self._cache = diskcache.Cache(
            settings.path, size_limit=settings.size_limit, eviction_policy="least-recently-used", cull_limit=0
        )

    def __repr__(self) -> str:
        return f"BlobCache({self.settings.path!r}, size_limit={self.settings.size_limit})"

    def get(self, digest: str) -> bytes | None:
        """The cached bytes, or None on a miss or a damaged entry (which is dropped)."""
        data = self._cache.get(digest)
        if data is None:
            return None
        if not isinstance(data, bytes) or PREFIX + _hash(data) != digest:
            self.discard(digest)
            return None
        return data

    def open(self, digest: str) -> BinaryIO | None:
        """A file over the cached bytes, checked whole before it is returned; None on a miss or damage."""
        handle = self._cache.get(digest, read=True)
        if handle is None:
            return None
        if isinstance(handle, bytes):
            handle = io.BytesIO(handle)
        if digest_of_stream(handle, CHUNK_SIZE)[0] != digest:
            handle.close()
            self.discard(digest)
            return None
        handle.seek(0)
        result: BinaryIO = handle
        return result

    def add(self, digest: str, data: bytes) -> None:
        """Keep verified bytes; a repeat replaces the entry with the same bytes."""
        self._cache.set(digest, data)
        self._evict(keep=digest)

    def add_stream(self, digest: str, source: IO[bytes]) -> None:
        """Copy a stream that raises on a digest mismatch into the cache; nothing is kept if it raises."""
        try:
            self._cache.set(digest, source, read=True)
            self._evict(keep=digest)
        except BaseException:
            # diskcache writes the file before its index row: sweep the orphaned file.
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache.check(fix=True)
            raise

    def _evict(self, keep: str) -> None:
        """Drop least recently used entries until under the limit; ``keep`` goes only if it alone is too big."""
        while self._cache.volume() > self.settings.size_limit:
            rows = self._cache._sql(  # diskcache has no public "least recently used key"
                "SELECT key FROM Cache WHERE key != ? ORDER BY access_time LIMIT 1", (keep,)
            ).fetchall()
            if not rows:
                self._cache.delete(keep)
                return
            self._cache.delete(rows[0][0])

    def discard(self, digest: str) -> None:
        self._cache.delete(digest)

    def __contains__(self, digest: object) -> bool:
        return digest in self._cache

    @property
    def volume(self) -> int:
        """Bytes the cache holds on disk."""
        return int(self._cache.volume())

    def close(self) -> None:
        self._cache.close()


def _hash(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


class CachedBlobStore(BlobStore):
    """A :class:`BlobStore` whose reads go through a local :class:`BlobCache`.

    A hit makes no request to the store. A miss reads the store once, verifies
    and keeps the bytes. A damaged cache entry is dropped and refetched, never
    returned. Writes and existence checks go to the store as before.
    """

    def __init__(self, storage: StorageIO, cache: BlobCache) -> None:
        super().__init__(storage)
        self.cache = cache

    def __repr__(self) -> str:
        return f"CachedBlobStore({self._io!r}, {self.cache!r})"

    def get(self, digest: str) -> bytes:
        validate_digest(digest)
        data = self.cache.get(digest)
        if data is None:
            data = super().get(digest)  # verified
            self.cache.add(digest, data)
        return data

    def open(self, digest: str) -> BinaryIO:
        validate_digest(digest)
        handle = self.cache.open(digest)
        if handle is not None:
            return handle
        source = super().open(digest)
        try:
            self.cache.add_stream(digest, source)  # VerifiedReader: raises at the end on a mismatch
        finally:
            source.close()
        handle = self.cache.open(digest)
        # Larger than the whole cache: it was evicted at once, so stream from the store.
        return handle if handle is not None else super().open(digest)

    def delete(self, digest: str) -> bool:
        self.cache.discard(validate_digest(digest))
        return super().delete(digest)


def with_cache(blobs: BlobStore, storage: StorageIO, settings: CacheSettings | None) -> BlobStore:
    """``blobs`` behind a cache if one is set and the store is not already on local disk."""
    if settings is None or storage.local_path("probe") is not None:
        return blobs
    return CachedBlobStore(storage, blob_cache(settings))
