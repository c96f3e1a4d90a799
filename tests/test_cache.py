"""The local read-through blob cache: hits are local, damage is refetched, size is bounded."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import wfe
from wfe.cli import add_store_argument, store_from_args
from wfe.store._cache import CachedBlobStore, CacheSettings, cache_settings, parse_size

pytest.importorskip("diskcache")

KiB = 1024


@pytest.fixture(autouse=True)
def _no_env_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WFE_CACHE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _memory_url() -> str:
    return f"memory://cache-{uuid.uuid4().hex[:8]}"


def _corrupt_entry(cache_dir: Path, digest: str, replacement: bytes) -> None:
    """Damage an entry behind the store's back, as a bad disk or a stray writer would."""
    import diskcache

    with diskcache.Cache(str(cache_dir)) as raw:
        raw.set(digest, replacement)


def _corrupt_files(cache_dir: Path) -> int:
    """Flip the first byte of every value file diskcache keeps on disk."""
    count = 0
    for path in cache_dir.rglob("*.val"):
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))
        count += 1
    return count


# settings


@pytest.mark.parametrize(
    ("text", "size"),
    [("123", 123), ("2GiB", 2 * 1024**3), ("500MB", 500 * 1000**2), ("1.5kib", 1536), (4096, 4096)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "2 parsecs", "-1GB"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(wfe.StoreURLError):
        parse_size(text)


def test_settings_from_options_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, rest = cache_settings({"cache": str(tmp_path), "cache_size": "2MiB", "endpoint_url": "x"})
    assert settings == CacheSettings(str(tmp_path), 2 * 1024**2)
    assert rest == {"endpoint_url": "x"}
    assert cache_settings({}) == (None, {})
    monkeypatch.setenv("WFE_CACHE", f"{tmp_path},10MB")
    assert cache_settings({})[0] == CacheSettings(str(tmp_path), 10 * 1000**2)
    with pytest.raises(wfe.StoreURLError, match="cache_size needs cache"):
        cache_settings({"cache_size": "1GB", "cache": ""})


def test_url_option_turns_cache_on_and_stays_in_options(tmp_path: Path) -> None:
    store = wfe.open_store(f"{_memory_url()}?cache={tmp_path}&cache_size=1MiB")
    assert isinstance(store.blobs, CachedBlobStore)
    assert store.blobs.cache.settings == CacheSettings(str(tmp_path), 1024**2)
    assert store.options["cache"] == str(tmp_path)  # tasks in other processes open the same cache


def test_env_turns_cache_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFE_CACHE", str(tmp_path))
    assert isinstance(wfe.open_store(_memory_url()).blobs, CachedBlobStore)


def test_cli_flag_turns_cache_on(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_store_argument(parser)
    args = parser.parse_args(["--store", _memory_url(), "--cache", f"{tmp_path / 'c'},3MiB"])
    store = store_from_args(args)
    assert isinstance(store.blobs, CachedBlobStore)
    assert store.blobs.cache.settings == CacheSettings(str(tmp_path / "c"), 3 * 1024**2)


def test_local_stores_are_not_cached(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"), cache=str(tmp_path / "cache"))
    assert not isinstance(store.blobs, CachedBlobStore)


# behaviour (on memory://, whose reads the cache can be seen to skip)


@pytest.fixture
def cached(tmp_path: Path) -> Iterator[wfe.Store]:
    yield wfe.open_store(_memory_url(), cache=str(tmp_path / "cache"), cache_size="1MiB")


def test_hit_is_served_without_the_store(cached: wfe.Store) -> None:
    data = os.urandom(64 * KiB)
    digest = cached.blobs.put(data)
    assert cached.blobs.get(digest) == data  # miss: fetched and kept
    cached.io.delete(f"blobs/sha256/{digest[7:9]}/{digest[9:]}")  # the store no longer has it
    assert cached.blobs.get(digest) == data
    with cached.blobs.open(digest) as handle:
        assert handle.read() == data


@pytest.mark.parametrize("size", [100, 64 * KiB], ids=["inline", "file"])
def test_damaged_entry_is_dropped_and_refetched(cached: wfe.Store, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    digest = cached.blobs.put(data)
    cached.blobs.get(digest)
    _corrupt_entry(tmp_path / "cache", digest, b"x" * size)
    assert cached.blobs.get(digest) == data
    _corrupt_entry(tmp_path / "cache", digest, b"y" * size)
    with cached.blobs.open(digest) as handle:
        assert handle.read() == data
    assert isinstance(cached.blobs, CachedBlobStore)
    assert cached.blobs.cache.get(digest) == data  # the refetched copy replaced the damaged one


def test_corrupt_store_bytes_are_not_cached(cached: wfe.Store) -> None:
    digest = cached.blobs.put(os.urandom(64 * KiB))
    cached.io.write_bytes(f"blobs/sha256/{digest[7:9]}/{digest[9:]}", b"tampered")
    with pytest.raises(wfe.IntegrityError):
        cached.blobs.get(digest)
    with pytest.raises(wfe.IntegrityError):
        cached.blobs.open(digest)
    assert isinstance(cached.blobs, CachedBlobStore)
    assert digest not in cached.blobs.cache


def test_cache_is_bounded_and_evicts(cached: wfe.Store) -> None:
    assert isinstance(cached.blobs, CachedBlobStore)
    digests = [cached.blobs.put(os.urandom(100 * KiB)) for _ in range(20)]
    for digest in digests:
        cached.blobs.get(digest)
    assert cached.blobs.cache.volume <= 1024**2
    assert digests[0] not in cached.blobs.cache
    assert digests[-1] in cached.blobs.cache
    assert len(cached.blobs.get(digests[0])) == 100 * KiB  # evicted blobs are fetched again


def test_blob_larger_than_the_cache_still_reads(cached: wfe.Store) -> None:
    data = os.urandom(3 * 1024**2)
    digest = cached.blobs.put(data)
    with cached.blobs.open(digest) as handle:
        assert handle.read() == data
    assert isinstance(cached.blobs, CachedBlobStore)
    assert digest not in cached.blobs.cache


def test_delete_drops_the_cached_copy(cached: wfe.Store) -> None:
    digest = cached.blobs.put(b"short-lived")
    cached.blobs.get(digest)
    assert cached.blobs.delete(digest) is True
    with pytest.raises(wfe.BlobNotFoundError):
        cached.blobs.get(digest)


# against the S3 server, counting GETs where they arrive


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from servers.s3 import s3_server

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as server:
        yield server


@pytest.mark.parametrize("read", ["get", "open"])
def test_two_reads_make_one_get_on_the_server(s3: object, tmp_path: Path, read: str) -> None:
    from servers.s3 import S3Server

    assert isinstance(s3, S3Server)
    store = wfe.open_store(f"{s3.url(uuid.uuid4().hex[:8])}?cache={tmp_path / 'cache'}", **s3.options)
    data = os.urandom(256 * KiB)
    digest = store.blobs.put(data)

    def read_once() -> bytes:
        if read == "get":
            return store.blobs.get(digest)
        with store.blobs.open(digest) as handle:
            return handle.read()

    s3.reset_requests()
    assert read_once() == data
    assert read_once() == data
    assert s3.count("GET", digest[9:], query="") == 1

    assert _corrupt_files(tmp_path / "cache") == 1
    assert read_once() == data  # damaged copy detected: fetched again, not returned
    assert s3.count("GET", digest[9:], query="") == 2
    assert read_once() == data
    assert s3.count("GET", digest[9:], query="") == 2
