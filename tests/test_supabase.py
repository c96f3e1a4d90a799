"""supabase:// end to end, through the real ``supabase`` client, against the real Supabase Storage server.

The server is the open-source one every Supabase project runs, built once per
machine and started once per test session with its own PostgreSQL
(tests/servers/supabase_storage.py); these tests skip, saying why, where it
cannot be had. It serves its API at its root, so stores here pass
``storage_url``. What is stored is checked through the server's own HTTP API,
not through the backend. The server's particular ways (racing uploads,
connections, row-level security, case in listings) are covered in
tests/test_supabase_real_server.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import subprocess
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
import wfe_supabase._fs
from _faulty_proxy import plain_http_server, silent_server
from hypothesis import given, settings
from hypothesis import strategies as st
from servers.supabase_fixtures import WRONG_KEY
from servers.supabase_storage import Server
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
from wfe.store._names import decode_name, encode_name

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"
FAKE_KEY = "eyJhbGciOiJIUzI1NiJ9.e30.wfeFAKEsupabaseKEY0123456789"  # for tests that reach no server
# A key the server cannot verify: a service-role JWT signed with another secret.




@pytest.fixture
def fs(server: Server) -> SupabaseFileSystem:
    return _fs(server)


def _fs(server: Server, key: str | None = None, **options: Any) -> SupabaseFileSystem:
    return SupabaseFileSystem(storage_url=server.storage_url, key=key or server.service_key, skip_instance_cache=True,
                              **options)  # fmt: skip


def _store(server: Server, url: str, **options: Any) -> wfe.Store:
    return wfe.open_store(url, storage_url=server.storage_url, key=server.service_key, **options)


def _secrets(server: Server) -> list[str]:
    """What must never be shown: the keys, and their signatures alone."""
    keys = [server.service_key, WRONG_KEY, *([server.anon_key] if server.anon_key else [])]
    return [*keys, *(key.rsplit(".", 1)[-1] for key in keys)]


def _requests(fs: SupabaseFileSystem) -> list[httpx.Request]:
    """Every request ``fs`` sends from now on, as httpx sends it."""
    sent: list[httpx.Request] = []
    fs._storage.session.event_hooks["request"].append(sent.append)
    return sent


# 1. registration and the conformance backend


def test_fsspec_and_wfe_find_the_backend_by_entry_point(server: Server, bucket: str) -> None:
    plain = fsspec.filesystem("supabase", storage_url=server.storage_url, key=server.service_key,
                              skip_instance_cache=True)  # fmt: skip
    assert isinstance(plain, SupabaseFileSystem)
    store = _store(server, f"supabase://{bucket}/registry")
    assert type(store.io).__name__ == "SupabaseIO" and store.io.atomic_upload
    digest = store.blobs.put(b"through the real client")
    assert store.blobs.get(digest) == b"through the real client"
    hexdigest = digest.removeprefix("sha256:")
    key = f"registry/blobs/sha256/{hexdigest[:2]}/{hexdigest[2:]}"
    assert server.keys(bucket, "registry/") == [key]  # the staged upload was moved into place
    assert server.download(bucket, key) == b"through the real client"


def test_conformance_backend_is_the_real_server(server: Server) -> None:
    from servers.backends import WITH_SERVERS

    entry = next(b for b in WITH_SERVERS if b.name == "supabase")
    with entry.start() as (url, options):
        assert url.startswith("supabase://wfe-conformance/run-")
        assert options == {"storage_url": server.storage_url, "key": server.service_key}
        store = wfe.open_store(url, **options)
        assert store.blobs.get(store.blobs.put(b"x")) == b"x"
        prefix = url.removeprefix("supabase://wfe-conformance/")
        assert [key.split("/")[1] for key in server.keys("wfe-conformance", f"{prefix}/")] == ["blobs"]


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
    server: Server, bucket: str, wfe_cli: Callable[..., Any]
) -> None:
    args = ("run", str(EXAMPLE), "--store", f"supabase://{bucket}/sales", "--json", "--log-level", "debug",
            "--store-option", f"storage_url={server.storage_url}")  # fmt: skip
    first = wfe_cli(*args, env={"SUPABASE_URL": "", "SUPABASE_KEY": server.service_key})
    assert first.returncode == 0, first.stderr
    ran = json.loads(first.stdout)
    assert ran["status"] == "succeeded"
    assert {node["status"] for node in ran["nodes"].values()} == {"ran"}
    # the rerun takes the key from a store option instead of the environment
    second = wfe_cli(*args, "--store-option", f"key={server.service_key}", env={"SUPABASE_URL": "", "SUPABASE_KEY": ""})
    assert second.returncode == 0, second.stderr
    cached = json.loads(second.stdout)
    assert {node_id: node["status"] for node_id, node in cached["nodes"].items()} == {
        node_id: "cached" for node_id in ran["nodes"]
    }
    assert [node["outputs"] for node in cached["nodes"].values()] == [node["outputs"] for node in ran["nodes"].values()]
    for result in (first, second):
        for secret in _secrets(server):
            assert secret not in result.stdout + result.stderr
    assert server.keys(bucket, "sales/tmp/") == []  # every staged write was moved into place or removed


@pytest.mark.parametrize("verb", ["run", "runs"])
def test_missing_bucket_is_one_clear_cli_error(server: Server, verb: str, wfe_cli: Callable[..., Any]) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:6]}"
    args = [str(EXAMPLE)] if verb == "run" else []
    options = ("--store-option", f"storage_url={server.storage_url}", "--store-option", f"key={server.service_key}")
    result = wfe_cli(verb, *args, "--store", f"supabase://{missing}/x", *options)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "error:" in result.stderr and f"bucket {missing!r} not found" in result.stderr
    assert "Traceback" not in result.stderr and server.service_key not in result.stderr


# 3. the key is never shown


def test_key_is_absent_from_logs_errors_reprs_and_stored_records(
    server: Server, bucket: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # root: httpx, httpcore, wfe, everything
    small = f"{bucket}-small"
    server.create_bucket(small, file_size_limit=1024)
    store = _store(server, f"supabase://{bucket}/secrets")
    result = wfe.run(EXAMPLE, store)
    assert result.ok
    shown = [repr(store), str(store), repr(store.io), repr(store.blobs), repr(store.io.fs), str(store.io.fs)]
    messages = []
    failing: list[Callable[[], Any]] = [
        lambda: store.blobs.get("sha256:" + "0" * 64),
        lambda: _store(server, "supabase://no-bucket/x"),
        lambda: _store(server, f"supabase://{small}/x").blobs.put(b"x" * 4096),
        lambda: _fs(server, WRONG_KEY).cat_file(f"{bucket}/secrets/runs"),
        lambda: _store(server, f"supabase://{bucket}/x", key=WRONG_KEY),
        lambda: _fs(server, server.anon_key).pipe_file(f"{bucket}/secrets/anon", b"x"),
        lambda: store.io.fs.pipe_file(f"{bucket}/bad#key", b"x"),
        lambda: SupabaseFileSystem(url="http://127.0.0.1:9", key=server.service_key, skip_instance_cache=True).ls("x"),
    ]
    for attempt in failing:
        with pytest.raises(Exception) as caught:
            attempt()
        messages.append(f"{caught.value!r} {caught.value}")
    logged = [record.getMessage() for record in caplog.records] + [caplog.text]
    captured = capfd.readouterr()
    stored = [server.download(bucket, key) for key in server.keys(bucket, "secrets/")]
    assert any(b'"run_id"' in data for data in stored)  # the run manifests are among them
    assert caplog.records  # DEBUG logging really was on
    for secret in _secrets(server):
        for text in [*shown, *messages, *logged, captured.out, captured.err]:
            assert secret not in text
        for data in stored:
            assert secret.encode() not in data


def test_filesystem_pickles_for_other_processes_without_showing_the_key(
    server: Server, bucket: str, fs: SupabaseFileSystem
) -> None:
    fs.pipe_file(f"{bucket}/p/x", b"1")
    again = pickle.loads(pickle.dumps(fs))
    assert again.cat_file(f"{bucket}/p/x") == b"1"
    assert server.service_key not in repr(again)


# 4. listing pages through the list API


def test_listings_follow_every_page_and_find_is_one_flat_listing(server: Server, bucket: str) -> None:
    names = {f"many/object-{index:02d}" for index in range(25)}
    inner = {f"many/{folder}/deeper/inner" for folder in "abc"}
    for key in sorted(names | inner):
        server.upload(bucket, key, b"x")
    small = _fs(server, list_page_size=7)
    sent = _requests(small)
    listed = small.ls(f"{bucket}/many", detail=True)
    assert {e["name"] for e in listed if e["type"] == "file"} == {f"{bucket}/{name}" for name in names}
    assert {e["name"] for e in listed if e["type"] == "directory"} == {f"{bucket}/many/{f}" for f in "abc"}
    assert all(e["size"] == 1 for e in listed if e["type"] == "file")
    assert [r.url.path for r in sent] == [f"/object/list-v2/{bucket}"] * 4  # 28 entries, 7 a page
    sent.clear()
    assert small.find(f"{bucket}/many") == sorted(f"{bucket}/{key}" for key in names | inner)
    assert [r.url.path for r in sent] == [f"/object/list-v2/{bucket}"] * 4  # not one listing per folder
    assert small.find(f"{bucket}/many", maxdepth=2, withdirs=True) == sorted(
        [f"{bucket}/{key}" for key in names] + [f"{bucket}/many/{f}" for f in "abc"]
        + [f"{bucket}/many/{f}/deeper" for f in "abc"]
    )  # fmt: skip
    assert small.ls(f"{bucket}/many/a/deeper/inner", detail=False) == [f"{bucket}/many/a/deeper/inner"]
    assert small.find(f"{bucket}/many/a/deeper/inner") == [f"{bucket}/many/a/deeper/inner"]
    assert small.find(f"{bucket}/nothing-here") == []
    with pytest.raises(ValueError, match="list_page_size must be 1 to 1000"):
        _fs(server, list_page_size=1500)


# 5. each error, as the right exception with a helpful message


def test_missing_object_is_file_not_found(fs: SupabaseFileSystem, bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"Object not found: supabase://{bucket}/missing$"):
        fs.cat_file(f"{bucket}/missing")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{bucket}/missing")
    assert not fs.exists(f"{bucket}/missing")
    with pytest.raises(FileNotFoundError):
        fs.rm_file(f"{bucket}/missing")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{bucket}/missing")


def test_duplicate_without_upsert_is_file_exists(fs: SupabaseFileSystem, bucket: str) -> None:
    fs.pipe_file(f"{bucket}/once", b"first", mode="create")
    with pytest.raises(FileExistsError, match=f"The resource already exists: supabase://{bucket}/once"):
        fs.pipe_file(f"{bucket}/once", b"second", mode="create")
    with pytest.raises(FileExistsError), fs.open(f"{bucket}/once", "xb") as handle:
        handle.write(b"third")
    assert fs.cat_file(f"{bucket}/once") == b"first"
    fs.pipe_file(f"{bucket}/once", b"replaced")  # overwrite mode upserts
    assert fs.cat_file(f"{bucket}/once") == b"replaced"


def test_missing_bucket_is_its_own_error_not_a_missing_file(server: Server, fs: SupabaseFileSystem) -> None:
    nope = f"nope-{uuid.uuid4().hex[:8]}"
    assert not fs.exists(nope)  # the bucket itself is simply absent
    with pytest.raises(FileNotFoundError):
        fs.ls(nope)  # though the list API answers a missing bucket with []
    attempts = (lambda: fs.cat_file(f"{nope}/x"), lambda: fs.exists(f"{nope}/x"),
                lambda: fs.pipe_file(f"{nope}/x", b""))  # fmt: skip
    for attempt in attempts:
        with pytest.raises(BucketNotFoundError, match=rf"bucket '{nope}' not found at {server.storage_url} .*create"):
            attempt()
    with pytest.raises(BucketNotFoundError) as caught:
        fs.cat_file(f"{nope}/x")
    assert not isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, OSError)
    assert caught.value.code == "NoSuchBucket" and caught.value.status == "404"
    with pytest.raises(wfe.StoreError, match=rf"bucket '{nope}' not found"):
        _store(server, f"supabase://{nope}/store")
    fs.mkdir(nope)
    assert fs.exists(nope) and fs.ls(nope) == []
    store = _store(server, f"supabase://{nope}/store")
    assert store.blobs.get(store.blobs.put(b"now")) == b"now"


def test_invalid_key_is_refused_before_and_by_the_server(fs: SupabaseFileSystem, bucket: str) -> None:
    for bad in (f"{bucket}/bad#key", f"{bucket}/a/../b", f"{bucket}/caf\u00e9", f"{bucket}/x//y"):
        with pytest.raises(InvalidKeyError, match="Supabase Storage keys"):
            fs.pipe_file(bad, b"x")
    from storage3.exceptions import StorageApiError

    with pytest.raises(StorageApiError) as raw:  # the client check bypassed: what the server says
        fs._storage.from_(bucket).upload("bad#key", b"x")
    mapped = translate(raw.value, f"supabase://{bucket}/bad#key")
    assert isinstance(mapped, InvalidKeyError) and isinstance(mapped, ValueError)
    assert "Invalid key: bad#key" in str(mapped) and mapped.errno == errno.EINVAL


def test_size_limit_is_an_oserror_keeping_the_servers_message(server: Server, fs: SupabaseFileSystem) -> None:
    small = f"small-{uuid.uuid4().hex[:8]}"
    server.create_bucket(small, file_size_limit=1024)
    fs.pipe_file(f"{small}/fits", b"x" * 1024)
    with pytest.raises(ObjectTooLargeError, match="The object exceeded the maximum allowed size") as caught:
        fs.pipe_file(f"{small}/too-big", b"x" * 1025)
    assert isinstance(caught.value, SupabaseStorageError) and caught.value.errno == errno.EFBIG
    assert "file size limit" in str(caught.value)
    store = _store(server, f"supabase://{small}/store")
    with pytest.raises(wfe.StoreError, match="The object exceeded the maximum allowed size"):
        store.blobs.put(b"y" * 2048)
    assert server.keys(small) == ["fits"]  # nothing of the refused uploads, staged or not


def test_missing_settings_and_bucketless_urls_are_store_url_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_KEY", raising=False)
    with pytest.raises(wfe.StoreURLError, match="SUPABASE_URL"):
        wfe.open_store("supabase://wfe/x")
    with pytest.raises(wfe.StoreURLError, match="SUPABASE_KEY"):
        wfe.open_store("supabase://wfe/x", url="http://127.0.0.1:9")
    with pytest.raises(wfe.StoreURLError, match="needs a bucket"):
        wfe.open_store("supabase://", url="http://127.0.0.1:9", key=FAKE_KEY)


def test_unreachable_server_names_the_url() -> None:
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
    assert "Traceback" not in done.stderr and FAKE_KEY not in done.stdout + done.stderr
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


def test_encoded_names_round_trip_through_the_server(server: Server, bucket: str, fs: SupabaseFileSystem) -> None:
    names = ["caf\u00e9 #1", "a/b\\c", "100%", "<tag>", "\u6570\u636e", ".hidden", "plus+sign", "Load", "load"]
    for name in names:
        fs.pipe_file(f"{bucket}/names/{encode_name(name)}.json", b"{}")
    listed = [path.rsplit("/", 1)[-1].removesuffix(".json") for path in fs.ls(f"{bucket}/names", detail=False)]
    assert sorted(decode_name(item) for item in listed) == sorted(names)
    # names that differ only in case are two objects on the server, each listed and read as itself
    store = _store(server, f"supabase://{bucket}/functions")
    for name in ("Load", "load", "LOAD"):
        store.functions.put(wfe.FunctionSpec(name=name, ref=f"module:{name}", version="1"))
    assert sorted(store.functions) == ["LOAD", "Load", "load"]
    assert {store.functions.get(name).ref for name in ("Load", "load", "LOAD")} == {"module:Load", "module:load",
                                                                                   "module:LOAD"}  # fmt: skip


def test_reads_are_ranged_and_writes_stream(fs: SupabaseFileSystem, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    fs.put_file(str(local), f"{bucket}/big/object.bin")
    assert fs.size(f"{bucket}/big/object.bin") == len(data)
    sent = _requests(fs)
    with fs.open(f"{bucket}/big/object.bin", "rb", block_size=1024 * 1024) as handle:
        assert b"".join(iter(lambda: handle.read(1024 * 1024), b"")) == data
    ranges = [r.headers["Range"] for r in sent if "Range" in r.headers]
    assert len(ranges) >= 2 and all(r.startswith("bytes=") for r in ranges)
    assert fs.cat_file(f"{bucket}/big/object.bin", start=-10) == data[-10:]
    assert fs.cat_file(f"{bucket}/big/object.bin", 5, 5) == b""
    fs.pipe_file(f"{bucket}/big/empty", b"")
    assert fs.cat_file(f"{bucket}/big/empty", 0, 100) == b""  # no InvalidRange for an empty object
    with fs.open(f"{bucket}/big/written.bin", "wb", block_size=5 * 1024 * 1024) as handle:
        for offset in range(0, len(data), 700_000):
            handle.write(data[offset : offset + 700_000])
    assert fs.cat_file(f"{bucket}/big/written.bin") == data
    local_copy = tmp_path / "copy.bin"
    fs.get_file(f"{bucket}/big/written.bin", str(local_copy))
    assert local_copy.read_bytes() == data


def test_move_copy_and_batched_remove(
    server: Server, bucket: str, fs: SupabaseFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.pipe_file(f"{bucket}/mv/a", b"a")
    fs.pipe_file(f"{bucket}/mv/b", b"b")
    fs.mv(f"{bucket}/mv/a", f"{bucket}/mv/b")  # replaces, as mv does
    assert fs.cat_file(f"{bucket}/mv/b") == b"a" and not fs.exists(f"{bucket}/mv/a")
    fs.copy(f"{bucket}/mv/b", f"{bucket}/mv/c")
    assert fs.cat_file(f"{bucket}/mv/c") == b"a"
    for index in range(25):
        server.upload(bucket, f"mv/bulk/{index}", b"")
    monkeypatch.setattr(wfe_supabase._fs, "DELETE_BATCH", 10)  # the server's limit is 1,000 keys a request
    sent = _requests(fs)
    fs.rm(f"{bucket}/mv", recursive=True)
    assert [(r.method, r.url.path) for r in sent].count(("DELETE", f"/object/{bucket}")) == 3  # 27 keys
    assert fs.find(f"{bucket}/mv") == [] and server.keys(bucket) == []


@pytest.mark.slow
def test_large_blob_put_and_read_keep_memory_flat(server: Server, bucket: str, tmp_path: Path) -> None:
    size = 40 * 1024 * 1024  # the server's standard-upload limit here is 50 MB
    source = tmp_path / "large.bin"
    with open(source, "wb") as handle:
        for _ in range(size // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    store = _store(server, f"supabase://{bucket}/large")
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
    # what a put holds whatever the size: the staging spool (8 MiB) and two 4 MiB chunks; the server is elsewhere
    assert put_peak < 20 * 2**20, f"put peaked at {put_peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB blob"
    assert read_peak < 20 * 2**20, f"read peaked at {read_peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB blob"


def test_a_download_racing_replacements_gets_one_whole_version(fs: SupabaseFileSystem, bucket: str) -> None:
    """Reading an object while it is replaced gives the old or the new bytes, never an error.

    The server can answer such a read with HTTP 500 (the version it looked up
    was deleted by the replacement before its bytes were read); the backend
    asks again.
    """
    versions = [bytes([i]) * 4096 for i in range(8)]
    path = f"{bucket}/race/x"
    fs.pipe_file(path, versions[0])
    stop = threading.Event()

    def replace() -> None:  # as often as a busy run replaces its manifest, and more
        turn = 0
        while not stop.wait(0.02):
            turn += 1
            fs.pipe_file(path, versions[turn % len(versions)])

    reads: list[bytes] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            reads.extend(fs.cat_file(path) for _ in range(50))
        except BaseException as exc:  # reported below, with the reads that worked
            failures.append(exc)

    writers = [threading.Thread(target=replace) for _ in range(2)]
    readers = [threading.Thread(target=read) for _ in range(3)]
    try:
        for thread in writers + readers:
            thread.start()
        for reader in readers:
            reader.join()
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert not failures and len(reads) == 150 and set(reads) <= set(versions)


def test_a_changed_environment_is_not_answered_by_a_filesystem_cached_for_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPABASE_KEY", FAKE_KEY)
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:1")
    first = fsspec.filesystem("supabase")
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:2")
    assert fsspec.filesystem("supabase").url == "http://127.0.0.1:2"
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:1")
    assert fsspec.filesystem("supabase") is first  # the cache still serves the same settings
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(ValueError, match="no Supabase project URL"):
        fsspec.filesystem("supabase")
