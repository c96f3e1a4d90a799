"""supabase:// end to end, through the real ``supabase`` client, against a local emulator of its HTTP API.

The emulator (conformance_tests/_supabase_emulator.py) imitates Supabase
Storage's documented endpoints and error bodies on 127.0.0.1; it is not
Supabase. The conformance suite runs on it too:
``pytest conformance_tests -k "supabase and not live"``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from _faulty_proxy import plain_http_server, silent_server
from hypothesis import given, settings
from hypothesis import strategies as st
from wfe_supabase import (
    BucketNotFoundError,
    InvalidKeyError,
    ObjectTooLargeError,
    SupabaseFileSystem,
    SupabaseStorageError,
)
from wfe_supabase._errors import VALID_KEY, translate

import wfe
from conformance_tests import backends
from conformance_tests._supabase_emulator import SupabaseStorageEmulator
from wfe.store._names import decode_name, encode_name

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"
# Recognisable fakes, JWT-shaped as older clients want; the tail is what the leak checks look for.
SECRET_TAIL = "wfeFAKEsupabaseKEY0123456789"
FAKE_KEY = f"eyJhbGciOiJIUzI1NiJ9.e30.{SECRET_TAIL}"
ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.e30.wfeFAKEanonKEY"
WRONG_KEY = "eyJhbGciOiJIUzI1NiJ9.e30.wfeFAKEwrongKEY"


@pytest.fixture
def emulator() -> Iterator[SupabaseStorageEmulator]:
    with SupabaseStorageEmulator(FAKE_KEY, anon_key=ANON_KEY) as running:
        running.create_bucket("wfe")
        running.create_bucket("small", file_size_limit=1024)
        yield running


@pytest.fixture
def fs(emulator: SupabaseStorageEmulator) -> SupabaseFileSystem:
    return SupabaseFileSystem(url=emulator.url, key=FAKE_KEY, skip_instance_cache=True)


def _fs_with(emulator: SupabaseStorageEmulator, key: str) -> SupabaseFileSystem:
    return SupabaseFileSystem(url=emulator.url, key=key, skip_instance_cache=True)


# 1. registration and the conformance backend


def test_fsspec_and_wfe_find_the_backend_by_entry_point(emulator: SupabaseStorageEmulator) -> None:
    plain = fsspec.filesystem("supabase", url=emulator.url, key=FAKE_KEY, skip_instance_cache=True)
    assert isinstance(plain, SupabaseFileSystem)
    store = wfe.open_store("supabase://wfe/registry", url=emulator.url, key=FAKE_KEY)
    assert type(store.io).__name__ == "SupabaseIO" and store.io.atomic_upload
    digest = store.blobs.put(b"through the real client")
    assert store.blobs.get(digest) == b"through the real client"
    assert ("POST", f"/storage/v1/object/wfe/registry/blobs/sha256/{digest[7:9]}/{digest[9:]}") in emulator.requests


def test_conformance_builtin_starts_the_emulator() -> None:
    entry = next(b for b in backends.BUILTIN if b.name == "supabase")
    with entry.start() as (url, options):
        assert url.startswith("supabase://")
        store = wfe.open_store(url, **options)
        assert store.blobs.get(store.blobs.put(b"x")) == b"x"


def test_live_conformance_is_skipped_with_a_reason_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WFE_SUPABASE_LIVE", raising=False)
    entry = next(b for b in backends.BUILTIN if b.name == "supabase_live")
    with (
        pytest.raises(backends.BackendUnavailable, match="WFE_SUPABASE_LIVE=1, SUPABASE_URL and SUPABASE_KEY"),
        entry.start(),
    ):
        pass


# 2. the example workflow from the command line, then all cached


def test_example_workflow_runs_from_the_cli_and_reruns_cached(
    emulator: SupabaseStorageEmulator, wfe_cli: Callable[..., Any]
) -> None:
    env = {"SUPABASE_URL": emulator.url, "SUPABASE_KEY": FAKE_KEY}
    args = ("run", str(EXAMPLE), "--store", "supabase://wfe/sales", "--json", "--log-level", "debug")
    first = wfe_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    ran = json.loads(first.stdout)
    assert ran["status"] == "succeeded"
    assert {node["status"] for node in ran["nodes"].values()} == {"ran"}
    # the rerun takes the project from store options instead of the environment
    options = ("--store-option", f"url={emulator.url}", "--store-option", f"key={FAKE_KEY}")
    second = wfe_cli(*args, *options, env={"SUPABASE_URL": "", "SUPABASE_KEY": ""})
    assert second.returncode == 0, second.stderr
    cached = json.loads(second.stdout)
    assert {node_id: node["status"] for node_id, node in cached["nodes"].items()} == {
        node_id: "cached" for node_id in ran["nodes"]
    }
    assert [node["outputs"] for node in cached["nodes"].values()] == [node["outputs"] for node in ran["nodes"].values()]
    for result in (first, second):
        assert SECRET_TAIL not in result.stdout + result.stderr


def test_missing_bucket_is_one_clear_cli_error(emulator: SupabaseStorageEmulator, wfe_cli: Callable[..., Any]) -> None:
    env = {"SUPABASE_URL": emulator.url, "SUPABASE_KEY": FAKE_KEY}
    result = wfe_cli("run", str(EXAMPLE), "--store", "supabase://no-such-bucket/x", env=env)
    assert result.returncode == 2
    assert "error:" in result.stderr and "bucket 'no-such-bucket' not found" in result.stderr
    assert "Traceback" not in result.stderr and SECRET_TAIL not in result.stderr


# 3. the key is never shown


def test_key_is_absent_from_logs_errors_reprs_and_stored_records(
    emulator: SupabaseStorageEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # root: httpx, httpcore, wfe, werkzeug, everything
    store = wfe.open_store("supabase://wfe/secrets", url=emulator.url, key=FAKE_KEY)
    result = wfe.run(EXAMPLE, store)
    assert result.ok
    shown = [repr(store), str(store), repr(store.io), repr(store.blobs), repr(store.io.fs), str(store.io.fs)]
    messages = []
    failing: list[Callable[[], Any]] = [
        lambda: store.blobs.get("sha256:" + "0" * 64),
        lambda: wfe.open_store("supabase://no-bucket/x", url=emulator.url, key=FAKE_KEY).blobs.put(b"x"),
        lambda: wfe.open_store("supabase://small/x", url=emulator.url, key=FAKE_KEY).blobs.put(b"x" * 4096),
        lambda: _fs_with(emulator, WRONG_KEY).cat_file("wfe/secrets/runs"),
        lambda: _fs_with(emulator, ANON_KEY).pipe_file("wfe/secrets/anon", b"x"),
        lambda: store.io.fs.pipe_file("wfe/bad#key", b"x"),
        lambda: SupabaseFileSystem(url="http://127.0.0.1:9", key=FAKE_KEY, skip_instance_cache=True).ls("wfe"),
    ]
    for attempt in failing:
        with pytest.raises(Exception) as caught:
            attempt()
        messages.append(f"{caught.value!r} {caught.value}")
    logged = [record.getMessage() for record in caplog.records] + [caplog.text]
    captured = capfd.readouterr()
    stored = [Path(path).read_bytes() for path in emulator.stored_files()]
    assert any(b'"run_id"' in data for data in stored)  # the run manifests are among them
    assert caplog.records  # DEBUG logging really was on
    for text in [*shown, *messages, *logged, captured.out, captured.err]:
        assert SECRET_TAIL not in text and "wfeFAKEwrongKEY" not in text
    for data in stored:
        assert SECRET_TAIL.encode() not in data


def test_filesystem_pickles_for_other_processes_without_showing_the_key(fs: SupabaseFileSystem) -> None:
    fs.pipe_file("wfe/p/x", b"1")
    again = pickle.loads(pickle.dumps(fs))
    assert again.cat_file("wfe/p/x") == b"1"
    assert SECRET_TAIL not in repr(again)


# 4. listing pages through the list API


def test_listing_more_than_one_page_returns_every_entry(
    emulator: SupabaseStorageEmulator, fs: SupabaseFileSystem
) -> None:
    names = {f"wfe/many/object-{index:05d}" for index in range(1234)}
    for name in names:
        emulator.put_object("wfe", name.removeprefix("wfe/"), b"x")
    for folder in ("a", "b", "c"):
        emulator.put_object("wfe", f"many/{folder}/inner", b"y")
    emulator.requests.clear()
    listed = fs.ls("wfe/many", detail=True)
    assert {e["name"] for e in listed if e["type"] == "file"} == names
    assert {e["name"] for e in listed if e["type"] == "directory"} == {"wfe/many/a", "wfe/many/b", "wfe/many/c"}
    assert emulator.requests.count(("POST", "/storage/v1/object/list/wfe")) == 2  # 1000 + 237 rows
    assert set(fs.find("wfe/many")) == names | {f"wfe/many/{f}/inner" for f in "abc"}


def test_small_pages_still_return_everything(emulator: SupabaseStorageEmulator) -> None:
    for index in range(20):
        emulator.put_object("wfe", f"paged/{index:02d}", b"z")
    small = SupabaseFileSystem(url=emulator.url, key=FAKE_KEY, list_page_size=7, skip_instance_cache=True)
    assert small.ls("wfe/paged", detail=False) == [f"wfe/paged/{index:02d}" for index in range(20)]


# 5. each documented error, as the right exception with a helpful message


def test_missing_object_is_file_not_found(fs: SupabaseFileSystem) -> None:
    with pytest.raises(FileNotFoundError, match=r"Object not found: supabase://wfe/missing"):
        fs.cat_file("wfe/missing")
    with pytest.raises(FileNotFoundError):
        fs.info("wfe/missing")
    assert not fs.exists("wfe/missing")
    with pytest.raises(FileNotFoundError):
        fs.rm_file("wfe/missing")


def test_duplicate_without_upsert_is_file_exists(fs: SupabaseFileSystem) -> None:
    fs.pipe_file("wfe/once", b"first", mode="create")
    with pytest.raises(FileExistsError, match="The resource already exists: supabase://wfe/once"):
        fs.pipe_file("wfe/once", b"second", mode="create")
    with pytest.raises(FileExistsError), fs.open("wfe/once", "xb") as handle:
        handle.write(b"third")
    assert fs.cat_file("wfe/once") == b"first"
    fs.pipe_file("wfe/once", b"replaced")  # overwrite mode upserts
    assert fs.cat_file("wfe/once") == b"replaced"


def test_missing_bucket_is_its_own_error_not_a_missing_file(fs: SupabaseFileSystem) -> None:
    assert not fs.exists("nope")  # the bucket itself is simply absent
    for attempt in (lambda: fs.cat_file("nope/x"), lambda: fs.exists("nope/x"), lambda: fs.pipe_file("nope/x", b"")):
        with pytest.raises(BucketNotFoundError, match=r"bucket 'nope' not found .*create it") as caught:
            attempt()
        assert not isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, OSError)
        assert caught.value.code == "NoSuchBucket" and caught.value.status == "404"
    fs.mkdir("nope")
    assert fs.exists("nope") and fs.ls("nope") == []


def test_invalid_key_is_refused_before_and_by_the_server(fs: SupabaseFileSystem) -> None:
    for bad in ("wfe/bad#key", "wfe/a/../b", "wfe/caf\u00e9", "wfe/x//y"):
        with pytest.raises(InvalidKeyError, match="Supabase Storage keys"):
            fs.pipe_file(bad, b"x")
    from storage3.exceptions import StorageApiError

    with pytest.raises(StorageApiError) as raw:  # the client check bypassed: what the server says
        fs._storage.from_("wfe").upload("bad#key", b"x")
    mapped = translate(raw.value, "supabase://wfe/bad#key")
    assert isinstance(mapped, InvalidKeyError) and isinstance(mapped, ValueError)
    assert "Invalid key: bad#key" in str(mapped) and mapped.errno == errno.EINVAL


def test_size_limit_is_an_oserror_keeping_the_servers_message(
    emulator: SupabaseStorageEmulator, fs: SupabaseFileSystem
) -> None:
    fs.pipe_file("small/fits", b"x" * 1024)
    with pytest.raises(ObjectTooLargeError, match="The object exceeded the maximum allowed size") as caught:
        fs.pipe_file("small/too-big", b"x" * 1025)
    assert isinstance(caught.value, SupabaseStorageError) and caught.value.errno == errno.EFBIG
    assert "file size limit" in str(caught.value)
    store = wfe.open_store("supabase://small/store", url=emulator.url, key=FAKE_KEY)
    with pytest.raises(wfe.StoreError, match="The object exceeded the maximum allowed size"):
        store.blobs.put(b"y" * 2048)
    assert not fs.exists("small/too-big")


def test_refused_access_is_permission_error(emulator: SupabaseStorageEmulator, fs: SupabaseFileSystem) -> None:
    fs.pipe_file("wfe/public-read", b"ok")
    with pytest.raises(PermissionError, match=r"Invalid API key.*check SUPABASE_KEY"):
        _fs_with(emulator, WRONG_KEY).cat_file("wfe/public-read")
    anon = _fs_with(emulator, ANON_KEY)
    assert anon.cat_file("wfe/public-read") == b"ok"
    with pytest.raises(PermissionError, match="row-level security"):
        anon.pipe_file("wfe/anon-write", b"no")


def test_missing_settings_and_bucketless_urls_are_store_url_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_KEY", raising=False)
    with pytest.raises(wfe.StoreURLError, match="SUPABASE_URL"):
        wfe.open_store("supabase://wfe/x")
    with pytest.raises(wfe.StoreURLError, match="SUPABASE_KEY"):
        wfe.open_store("supabase://wfe/x", url="http://127.0.0.1:9")
    with pytest.raises(wfe.StoreURLError, match="needs a bucket"):
        wfe.open_store("supabase://", url="http://127.0.0.1:9", key=FAKE_KEY)


def test_unreachable_server_names_the_url(emulator: SupabaseStorageEmulator) -> None:
    gone = SupabaseFileSystem(url="http://127.0.0.1:9", key=FAKE_KEY, skip_instance_cache=True, timeout=5)
    with pytest.raises(SupabaseStorageError, match=r"cannot reach Supabase Storage at http://127.0.0.1:9"):
        gone.cat_file("wfe/x")


# bounded waits: small bounds by option so each case takes seconds; the ceilings only guard against a hang
SMALL_BOUNDS = ("--store-option", "connect_timeout=1", "--store-option", "read_timeout=1",
                "--store-option", "timeout=3")  # fmt: skip
CEILING = 3 * 3 + 10


def _runs_at(url: str, wfe_cli: Callable[..., Any]) -> tuple[subprocess.CompletedProcess[str], str, float]:
    started = time.monotonic()
    options = ("--store-option", f"url={url}", "--store-option", f"key={FAKE_KEY}", *SMALL_BOUNDS)
    done = wfe_cli("runs", "--store", "supabase://wfe/p", *options, env={"SUPABASE_URL": "", "SUPABASE_KEY": ""})
    took = time.monotonic() - started
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and SECRET_TAIL not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert took < CEILING
    return done, lines[0], took


def test_a_server_that_never_answers_fails_in_one_line_naming_the_bound(wfe_cli: Callable[..., Any]) -> None:
    with silent_server() as url:
        _, line, took = _runs_at(url, wfe_cli)
    print(f"{took:.1f} s: {line}")
    assert f"Supabase Storage at {url} did not answer within 1 s" in line
    assert "connect_timeout 1 s, read_timeout 1 s, timeout 3 s" in line


@pytest.mark.parametrize("kind", ["files", "nothing"])
def test_a_plain_http_server_is_not_taken_for_supabase(kind: str, wfe_cli: Callable[..., Any], tmp_path: Path) -> None:
    with plain_http_server(kind, tmp_path) as url:
        _, line, _ = _runs_at(url, wfe_cli)
    assert "does not answer like Supabase Storage" in line and "text/html" in line
    assert "HTTP 404" in line or "HTTP 501" in line


def test_credentials_in_the_project_url_are_refused_at_once(wfe_cli: Callable[..., Any]) -> None:
    password = "Pa55-word-never-shown"
    with silent_server() as url:
        done, line, _ = _runs_at(url.replace("http://", f"http://someone:{password}@"), wfe_cli)
    assert password not in done.stdout + done.stderr and "someone" not in line
    assert "must not carry credentials" in line and url in line


def test_timeouts_are_options_and_a_bad_one_is_refused() -> None:
    fs = SupabaseFileSystem(url="http://127.0.0.1:9", key=FAKE_KEY, skip_instance_cache=True,
                            connect_timeout="2", read_timeout=7, timeout=5)  # fmt: skip
    assert (fs.bounds.connect, fs.bounds.read, fs.bounds.operation) == (2, 5, 5)  # none over timeout
    with pytest.raises(wfe.StoreURLError, match="read_timeout must be a positive number"):
        wfe.open_store("supabase://wfe/x", url="http://127.0.0.1:9", key=FAKE_KEY, read_timeout="soon")


# names, reads, writes


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_every_encoded_name_is_a_valid_supabase_key(name: str) -> None:
    try:
        encoded = encode_name(name)
    except wfe.InvalidNameError:
        return
    assert VALID_KEY.fullmatch(f"prefix/functions/{encoded}.json")


def test_encoded_names_round_trip_through_the_server(fs: SupabaseFileSystem) -> None:
    names = ["caf\u00e9 #1", "a/b\\c", "100%", "<tag>", "\u6570\u636e", ".hidden", "plus+sign"]
    for name in names:
        fs.pipe_file(f"wfe/names/{encode_name(name)}.json", b"{}")
    listed = [path.rsplit("/", 1)[-1].removesuffix(".json") for path in fs.ls("wfe/names", detail=False)]
    assert sorted(decode_name(item) for item in listed) == sorted(names)


def test_reads_are_ranged_and_writes_stream(
    emulator: SupabaseStorageEmulator, fs: SupabaseFileSystem, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    fs.put_file(str(local), "wfe/big/object.bin")
    assert fs.size("wfe/big/object.bin") == len(data)
    emulator.ranges.clear()
    with fs.open("wfe/big/object.bin", "rb", block_size=1024 * 1024) as handle:
        assert b"".join(iter(lambda: handle.read(1024 * 1024), b"")) == data
    assert len(emulator.ranges) >= 2 and all(r.startswith("bytes=") for r in emulator.ranges)
    assert fs.cat_file("wfe/big/object.bin", start=-10) == data[-10:]
    assert fs.cat_file("wfe/big/object.bin", 5, 5) == b""
    fs.pipe_file("wfe/big/empty", b"")
    assert fs.cat_file("wfe/big/empty", 0, 100) == b""  # no InvalidRange for an empty object
    with fs.open("wfe/big/written.bin", "wb", block_size=5 * 1024 * 1024) as handle:
        for offset in range(0, len(data), 700_000):
            handle.write(data[offset : offset + 700_000])
    assert fs.cat_file("wfe/big/written.bin") == data
    local_copy = tmp_path / "copy.bin"
    fs.get_file("wfe/big/written.bin", str(local_copy))
    assert local_copy.read_bytes() == data


def test_move_copy_and_batched_remove(fs: SupabaseFileSystem, emulator: SupabaseStorageEmulator) -> None:
    fs.pipe_file("wfe/mv/a", b"a")
    fs.pipe_file("wfe/mv/b", b"b")
    fs.mv("wfe/mv/a", "wfe/mv/b")  # replaces, as mv does
    assert fs.cat_file("wfe/mv/b") == b"a" and not fs.exists("wfe/mv/a")
    fs.copy("wfe/mv/b", "wfe/mv/c")
    assert fs.cat_file("wfe/mv/c") == b"a"
    for index in range(1500):
        emulator.put_object("wfe", f"mv/bulk/{index}", b"")
    emulator.requests.clear()
    fs.rm("wfe/mv", recursive=True)
    assert emulator.requests.count(("DELETE", "/storage/v1/object/wfe")) == 2  # 1000 keys per request
    assert fs.find("wfe/mv") == []


@pytest.mark.slow
def test_large_blob_put_and_read_keep_memory_flat(emulator: SupabaseStorageEmulator, tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    source = tmp_path / "large.bin"
    with open(source, "wb") as handle:
        for _ in range(size // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    store = wfe.open_store("supabase://wfe/large", url=emulator.url, key=FAKE_KEY)
    tracemalloc.start()
    try:
        with open(source, "rb") as handle:
            digest = store.blobs.put(handle)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with store.blobs.open(digest) as blob:
            while chunk := blob.read(1024 * 1024):
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    # The emulator runs in this process too, so its buffers count here as well.
    assert put_peak < size // 2, f"put peaked at {put_peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB blob"
    assert read_peak < size // 2, f"read peaked at {read_peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB blob"


def test_a_download_racing_replacements_gets_one_whole_version(fs: SupabaseFileSystem) -> None:
    """As on Supabase: reading an object while it is being replaced gives the old or the new bytes, never an error."""
    import threading

    versions = [bytes([i]) * 4096 for i in range(8)]
    fs.pipe_file("wfe/race/x", versions[0])
    stop = threading.Event()

    def replace() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            fs.pipe_file("wfe/race/x", versions[turn % len(versions)])

    reads: list[bytes] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            reads.extend(fs.cat_file("wfe/race/x") for _ in range(150))
        except BaseException as exc:  # reported below, with the reads that worked
            failures.append(exc)

    writers = [threading.Thread(target=replace) for _ in range(2)]
    readers = [threading.Thread(target=read) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the emulator's threads share this process: switch between them often
    try:
        for thread in writers + readers:
            thread.start()
        for reader in readers:
            reader.join()
    finally:
        stop.set()
        for writer in writers:
            writer.join()
        sys.setswitchinterval(interval)
    assert not failures and len(reads) == 600 and set(reads) <= set(versions)
