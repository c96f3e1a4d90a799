from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _cli import Cli

import wfe


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> wfe.Store:
    if request.param == "local":
        return wfe.open_store(str(tmp_path / "store"))
    return wfe.open_store(f"memory://blobs-{tmp_path.name}")


def test_put_bytes_stream_and_path_give_one_digest(store: wfe.Store, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    (tmp_path / "f.bin").write_bytes(data)
    assert store.blobs.put(data) == expected
    assert store.blobs.put(io.BytesIO(data)) == expected
    assert store.blobs.put(tmp_path / "f.bin") == expected
    assert store.blobs.get(expected) == data
    with store.blobs.open(expected) as handle:
        assert handle.read() == data
    assert list(store.blobs) == [expected]


def test_put_is_deduplicated_and_delete_is_idempotent(store: wfe.Store) -> None:
    digest, size, created = store.blobs.put_new(b"hello")
    assert (size, created) == (5, True)
    assert store.blobs.put_new(b"hello") == (digest, 5, False)
    assert store.blobs.put_new(io.BytesIO(b"hello")) == (digest, 5, False)
    assert store.blobs.exists(digest)
    assert store.blobs.delete(digest) is True
    assert store.blobs.delete(digest) is False
    assert not store.blobs.exists(digest)
    assert list(store.blobs) == []
    with pytest.raises(wfe.BlobNotFoundError, match=digest):
        store.blobs.get(digest)
    with pytest.raises(wfe.BlobNotFoundError):
        store.blobs.open(digest)


def test_empty_blob(store: wfe.Store) -> None:
    digest = store.blobs.put(b"")
    assert digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert store.blobs.get(digest) == b""
    assert store.blobs.open(digest).read() == b""


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha256:" + "g" * 64, "../x"])
def test_malformed_digest_never_reaches_the_filesystem(store: wfe.Store, bad: str) -> None:
    for call in (store.blobs.get, store.blobs.open, store.blobs.exists, store.blobs.delete):
        with pytest.raises(wfe.InvalidDigestError):
            call(bad)


def test_flipped_byte_is_detected_on_every_read_path(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    data = os.urandom(5 * 1024 * 1024)
    digest = store.blobs.put(data)
    path = Path(store.blobs.local_path(digest) or "")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(wfe.IntegrityError, match=digest):
        store.blobs.get(digest)
    with pytest.raises(wfe.IntegrityError, match=digest), store.blobs.open(digest) as handle:
        handle.read()
    with pytest.raises(wfe.IntegrityError, match=digest):
        store.blobs.export(digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()  # a failed export leaves nothing behind


def test_truncated_blob_is_detected_in_memory_store() -> None:
    store = wfe.open_store("memory://tamper-test")
    digest = store.blobs.put(b"0123456789")
    store.io.fs.pipe_file(store.io.path(f"blobs/sha256/{digest[7:9]}/{digest[9:]}"), b"01234")
    with pytest.raises(wfe.IntegrityError):
        store.blobs.get(digest)


WRITER = textwrap.dedent(
    """
    import sys, time, wfe

    class Slow:
        def __init__(self):
            self.sent = 0
        def read(self, n=-1):
            if self.sent >= 64 * 1024 * 1024:
                print("halfway", flush=True)
                time.sleep(60)
            self.sent += 1024 * 1024
            return bytes([self.sent % 251]) * (1024 * 1024)

    wfe.open_store(sys.argv[1]).blobs.put(Slow())
    """
)


def test_killed_writer_leaves_no_visible_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "halfway"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    store = wfe.open_store(str(root))
    assert list(store.blobs) == []  # nothing published under any digest
    assert list((root / "tmp").iterdir())  # the partial write stayed in the staging area
    digest = store.blobs.put(b"after the crash")
    assert store.blobs.get(digest) == b"after the crash"


PEAK = textwrap.dedent(
    """
    import hashlib, json, sys, wfe

    GIB = 1024 ** 3
    block = bytes(range(256)) * 4096  # 1 MiB

    class Source:
        def __init__(self):
            self.left = GIB
        def readinto(self, view):
            n = min(len(view), self.left, len(block))
            view[:n] = block[:n]
            self.left -= n
            return n

    def rss_kib(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

    def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")

    def peak_mib():
        return rss_kib("VmHWM") / 1024

    store = wfe.open_store(sys.argv[1])
    store.blobs.put(b"warm-up")
    baseline = rss_kib("VmRSS") / 1024
    reset_peak()
    digest = store.blobs.put(Source())
    after_put = peak_mib()
    reset_peak()
    hasher = hashlib.sha256()
    with store.blobs.open(digest) as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            hasher.update(chunk)
    print(json.dumps({"baseline": baseline, "put": after_put - baseline, "get": peak_mib() - baseline,
                      "digest": digest, "read_digest": "sha256:" + hasher.hexdigest(),
                      "size": store.blobs.size(digest)}))
    """
)


@pytest.mark.slow
def test_one_gib_blob_round_trip_keeps_memory_flat(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "store")], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    print(f"1 GiB put/get, peak RSS above baseline: put {result['put']:.1f} MiB, get {result['get']:.1f} MiB")
    assert result["size"] == 1024**3
    assert result["read_digest"] == result["digest"]
    assert result["put"] < 100 and result["get"] < 100


def test_readers_never_see_a_partial_blob_while_a_put_is_in_flight(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "store")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "halfway"
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for digest in store.blobs:  # anything visible must read back whole and verified
                store.blobs.get(digest)
        assert list(store.blobs) == []
    finally:
        writer.kill()
        writer.wait()


def test_cat_prints_nothing_of_a_damaged_blob(tmp_path: Path, wfe_cli: Cli) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    digest = store.blobs.put(b"precious bytes " * 1000)
    path = Path(store.blobs.local_path(digest) or "")
    path.write_bytes(b"X" + path.read_bytes()[1:])
    out = wfe_cli("cat", digest, "--store", str(tmp_path / "store"))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"error: integrity check failed for {digest}")


@pytest.mark.parametrize("url", ["local", "memory://listing-pages"])
def test_a_listing_page_is_in_name_order_and_says_whether_more_follow(url: str, tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store") if url == "local" else url)
    digests = sorted(store.blobs.put(f"blob {i}".encode()) for i in range(7))
    rels = [f"blobs/sha256/{d[7:9]}/{d[9:]}" for d in digests]
    first = store.io.list_page("blobs", limit=3)
    assert [o.rel for o in first.objects] == rels[:3] and first.more
    assert all(o.size == len(b"blob 0") for o in first.objects)
    rest = store.io.list_page("blobs", start_after=rels[2], limit=10)
    assert [o.rel for o in rest.objects] == rels[3:] and not rest.more
    assert store.io.list_page("nothing-here").objects == []


def test_a_str_is_neither_taken_for_a_file_name_nor_for_text(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    (tmp_path / "file.bin").write_bytes(b"in the file")
    with pytest.raises(TypeError, match=r"cannot store a str \('file.bin'\): pass its bytes .*pathlib.Path\(name\)"):
        store.blobs.put(str(tmp_path / "file.bin")[-8:])
    assert store.blobs.put(tmp_path / "file.bin") == store.blobs.put(b"in the file")
    assert list(store.blobs) == [store.blobs.put(b"in the file")]
