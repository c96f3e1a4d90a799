"""supabase:// where the real Supabase Storage server does what its documentation does not say.

Each test here is about one thing the open-source server (the one every
Supabase project runs) was seen to do, and what the backend makes of it:

- create-only uploads are not atomic (two racing ones both succeed), so an
  exclusive write is an upload under a fresh key and a create-only move;
- an upload refused before its body is read leaves the kept-alive connection
  unusable, so large uploads close theirs;
- row-level security answers some refusals as "not found", and a key it
  cannot verify reads a private bucket as missing;
- the old list API matches prefixes case-insensitively, so listings use list-v2;
- a bare Storage server serves its API at its root, where ``storage_url`` points.

The server is built once per machine and started once per session with its
own PostgreSQL (tests/servers/supabase_storage.py); the tests skip, saying
why, where it cannot be had.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _races import put_first_results, result_of
from servers.supabase_fixtures import WRONG_KEY
from servers.supabase_storage import Server
from wfe_supabase import BucketNotFoundError, SupabaseFileSystem, SupabaseStorageError

import wfe
from wfe.engine._lease import Leases, supports_leases
from wfe.store._digest import digest_of

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales" / "workflow.yaml"




def _fs(server: Server, key: str | None = None, **options: Any) -> SupabaseFileSystem:
    return SupabaseFileSystem(storage_url=server.storage_url, key=key or server.service_key, skip_instance_cache=True,
                              **options)  # fmt: skip


def _store(server: Server, url: str, key: str | None = None, **options: Any) -> wfe.Store:
    return wfe.open_store(url, storage_url=server.storage_url, key=key or server.service_key, **options)


def _requests(fs: SupabaseFileSystem) -> list[httpx.Request]:
    """Every request ``fs`` sends from now on, as httpx sends it."""
    sent: list[httpx.Request] = []
    fs._storage.session.event_hooks["request"].append(sent.append)
    return sent


# storage_url: a Storage server without the gateway


def test_storage_url_points_the_client_at_a_server_without_the_gateway(server: Server, bucket: str) -> None:
    fs = SupabaseFileSystem(storage_url=f"{server.storage_url}/", key=server.service_key, skip_instance_cache=True)
    assert fs.storage_url == server.storage_url and fs.url == server.storage_url
    fs.pipe_file(f"{bucket}/folder/hello.txt", b"hello, storage")
    assert fs.cat_file(f"{bucket}/folder/hello.txt") == b"hello, storage"
    assert fs.cat_file(f"{bucket}/folder/hello.txt", start=7, end=14) == b"storage"
    assert server.keys(bucket) == ["folder/hello.txt"]


def test_storage_url_is_checked_like_the_project_url() -> None:
    with pytest.raises(ValueError, match="storage_url must start with http"):
        SupabaseFileSystem(url="https://x.supabase.co", key="k", storage_url="ftp://storage", skip_instance_cache=True)
    with pytest.raises(ValueError, match="must not carry credentials") as caught:
        SupabaseFileSystem(storage_url="http://user:hunter2@127.0.0.1:1", key="k", skip_instance_cache=True)
    assert "hunter2" not in str(caught.value)


def test_a_storage_server_at_the_wrong_base_url_is_a_configuration_error(server: Server, bucket: str) -> None:
    server.upload(bucket, "there", b"x")
    # without storage_url the client asks for {url}/storage/v1/..., which a bare server does not serve:
    # it answers 404 "Route GET:/storage/v1/object/... not found", which is no missing object
    gateway_layout = SupabaseFileSystem(url=server.url, key=server.service_key, skip_instance_cache=True)
    assert gateway_layout.storage_url == f"{server.url}/storage/v1"
    attempts = (lambda: gateway_layout.cat_file(f"{bucket}/there"), lambda: gateway_layout.exists(f"{bucket}/there"))
    for attempt in attempts:
        with pytest.raises(SupabaseStorageError, match="check storage_url") as caught:
            attempt()
        assert not isinstance(caught.value, FileNotFoundError) and caught.value.code == "NoSuchRoute"
        assert f"Supabase Storage at {server.url} has no such route (Route GET:/storage/v1/" in str(caught.value)
    with pytest.raises(wfe.StoreError, match="check storage_url"):
        wfe.open_store(f"supabase://{bucket}/store", url=server.url, key=server.service_key)


# create-only uploads are not atomic: exclusive writes are an upload and a create-only move


def test_racing_exclusive_writes_have_exactly_one_winner(server: Server, bucket: str) -> None:
    storage = _store(server, f"supabase://{bucket}/race").io
    assert storage.exclusive_publish and not storage.conditional_create  # so the stores need no check first
    writers = 8
    barrier = threading.Barrier(writers)
    with ThreadPoolExecutor(writers) as pool:
        for turn in range(8):
            rel = f"actions/{turn:02d}/entry.json"

            def write(index: int, rel: str = rel) -> bool:
                barrier.wait()
                return storage.write_bytes(rel, f"writer {index}".encode(), exclusive=True)

            won = list(pool.map(write, range(writers)))
            assert won.count(True) == 1, f"turn {turn}: {won.count(True)} writers all claim to have won"
            assert server.download(bucket, f"race/{rel}") == f"writer {won.index(True)}".encode()
    assert server.keys(bucket, "race/tmp/") == []  # the losers' staged uploads are gone


def test_an_exclusive_write_is_staged_then_moved_and_a_repeat_is_refused(server: Server, bucket: str) -> None:
    storage = _store(server, f"supabase://{bucket}/staged").io
    sent = _requests(storage.fs)
    assert storage.write_bytes("actions/ab/entry.json", b"first", exclusive=True) is True
    assert storage.write_bytes("actions/ab/entry.json", b"second", exclusive=True) is False
    assert storage.write_bytes("runs/r.json", b"replaced", exclusive=False) is True  # an overwrite: one upload
    uploads = [r.url.path for r in sent if r.method == "POST" and not r.url.path.startswith("/object/move")]
    assert len(uploads) == 3 and all(path.startswith(f"/object/{bucket}/staged/tmp/") for path in uploads[:2])
    assert uploads[2] == f"/object/{bucket}/staged/runs/r.json"
    assert [r.url.path for r in sent].count("/object/move") == 2
    assert server.download(bucket, "staged/actions/ab/entry.json") == b"first"
    assert server.keys(bucket) == ["staged/actions/ab/entry.json", "staged/runs/r.json"]


def test_leases_let_one_of_racing_runs_compute(server: Server, bucket: str) -> None:
    storage = _store(server, f"supabase://{bucket}/leases").io
    assert supports_leases(storage)
    runs = [Leases(storage, f"run-{index}") for index in range(8)]
    barrier = threading.Barrier(len(runs))
    key = digest_of(b"an action")

    def acquire(leases: Leases) -> bool:
        barrier.wait()
        return leases.acquire(key)

    with ThreadPoolExecutor(len(runs)) as pool:
        taken = list(pool.map(acquire, runs))
    assert taken.count(True) == 1


# a refused upload must not leave a connection that never answers again


@pytest.mark.parametrize("size", [300_000, 5_000_000])
def test_a_refused_upload_leaves_no_connection_that_hangs(server: Server, bucket: str, tmp_path: Path,
                                                          size: int) -> None:  # fmt: skip
    fs = _fs(server, read_timeout=1, timeout=5)  # a request waiting on a poisoned connection fails in a second
    data = os.urandom(size)
    path = f"{bucket}/dup.bin"
    fs.pipe_file(path, data)
    local = tmp_path / "dup.bin"
    local.write_bytes(data)
    with open(local, "rb") as handle:
        for source in (data, str(local), handle):
            started = time.monotonic()
            with pytest.raises(FileExistsError):  # refused before the server reads the body
                fs.upload(path, source, overwrite=False)
            assert fs.cat_file(path, 0, 10) == data[:10]  # the next request answers at once
            assert time.monotonic() - started < 0.9


# what row-level security and unverifiable keys look like, and how they are worded


def test_a_key_the_server_cannot_verify_is_named_not_taken_for_a_missing_bucket(server: Server, bucket: str) -> None:
    server.upload(bucket, "secret.txt", b"x")
    wrong = _fs(server, WRONG_KEY)
    # the server reads a private bucket's objects with such a key as if the bucket were missing
    with pytest.raises(PermissionError, match=r"signature verification failed.*check SUPABASE_KEY") as caught:
        wrong.cat_file(f"{bucket}/secret.txt")
    assert not isinstance(caught.value, BucketNotFoundError)
    with pytest.raises(wfe.StoreError, match=r"signature verification failed.*check SUPABASE_KEY"):
        _store(server, f"supabase://{bucket}/store", key=WRONG_KEY)


def test_row_level_security_denials_say_to_check_the_key_and_the_policies(server: Server, bucket: str) -> None:
    if server.anon_key is None:
        pytest.skip("no anon key for this server (set WFE_SUPABASE_STORAGE_ANON_KEY)")
    server.upload(bucket, "store/hidden.txt", b"x")
    anon = _fs(server, server.anon_key)
    # the anon role's policies hide the object: the server answers "not found", which says why it may be
    with pytest.raises(FileNotFoundError, match=r"role is 'anon', not service_role: row-level security hides"):
        anon.cat_file(f"{bucket}/store/hidden.txt")
    with pytest.raises(PermissionError, match=r"row-level security policy.*policies on storage\.objects"):
        anon.pipe_file(f"{bucket}/store/new.txt", b"no")
    # the bucket's row is hidden too, yet a store opens on it (it exists), and not on a missing one
    store = _store(server, f"supabase://{bucket}/store", key=server.anon_key)
    assert store.blobs.exists(digest_of(b"x")) is False
    with pytest.raises(wfe.StoreError, match=r"bucket 'no-such-bucket-at-all' not found.*check the key too"):
        _store(server, "supabase://no-such-bucket-at-all/store", key=server.anon_key)
    public = f"{bucket}-public"
    server.create_bucket(public, public=True)
    server.upload(public, "open.txt", b"for everyone")
    assert anon.cat_file(f"{public}/open.txt") == b"for everyone"


# listings: exact about case, "_" a plain character


def test_a_foreign_object_under_a_differently_cased_prefix_is_never_taken_for_ours(server: Server, bucket: str) -> None:
    ours = _store(server, f"supabase://{bucket}/team/store")
    digest = ours.blobs.put(b"ours")
    theirs = digest_of(b"theirs").removeprefix("sha256:")
    for foreign in ("team/Store", "Team/store", "team/STORE/", "team/store/Blobs"):
        root = foreign.rstrip("/") + ("" if foreign.endswith("Blobs") else "/blobs")
        server.upload(bucket, f"{root}/sha256/{theirs[:2]}/{theirs[2:]}", b"theirs")
    other = _store(server, f"supabase://{bucket}/team/STORE")
    assert list(ours.blobs) == [digest]
    assert sorted(other.blobs) == [digest_of(b"theirs")]  # its own, put behind its back
    assert ours.blobs.exists(digest) and not ours.blobs.exists(digest_of(b"theirs"))
    fs = ours.io.fs
    assert fs.ls(f"{bucket}/team", detail=False) == [f"{bucket}/team/{name}" for name in ("STORE", "Store", "store")]
    assert fs.ls(f"{bucket}/team/store", detail=False) == [f"{bucket}/team/store/{n}" for n in ("Blobs", "blobs")]
    # "_" matches itself only
    server.upload(bucket, "under_score/x", b"1")
    server.upload(bucket, "underXscore/y", b"2")
    assert fs.find(f"{bucket}/under_score") == [f"{bucket}/under_score/x"]


def test_the_python_api_reruns_all_cached(server: Server, bucket: str) -> None:
    store = _store(server, f"supabase://{bucket}/api")
    first = wfe.run(EXAMPLE, store)
    assert first.ok
    second = wfe.run(EXAMPLE, store)
    assert second.ok
    assert {node.status for node in second.manifest.nodes.values()} == {"cached"}
    assert [node.outputs for node in second.manifest.nodes.values()] == [
        node.outputs for node in first.manifest.nodes.values()
    ]


# what the backend promises for Supabase, where every writer is a process of its own


@pytest.mark.slow  # 8 processes x 50 turns: the second tier
def test_racing_first_writes_of_an_action_entry_from_eight_processes_have_one_winner(server: Server,
                                                                                     bucket: str) -> None:  # fmt: skip
    writers, turns = 8, 50
    url = f"supabase://{bucket}/processes"
    options = {"storage_url": server.storage_url, "key": server.service_key}
    keys = [digest_of(f"action {turn}".encode()) for turn in range(turns)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(writers)
    with ProcessPoolExecutor(writers, mp_context=context) as pool:
        futures = [pool.submit(put_first_results, url, options, w, keys, barrier) for w in range(writers)]
        won = [future.result(timeout=300) for future in futures]  # won[writer][turn]
    store = _store(server, url)
    for turn, key in enumerate(keys):
        winners = [writer for writer in range(writers) if won[writer][turn]]
        assert len(winners) == 1, f"turn {turn}: writers {winners} all claim to have won"
        assert store.actions.get(key).function == result_of(winners[0]).function  # the winner's result is kept
    assert sorted(store.actions) == sorted(keys)
    assert server.keys(bucket, "processes/tmp/") == []  # the losers' staged uploads are gone


@pytest.mark.slow  # the whole conformance suite through the command line: about two minutes
def test_check_store_passes_on_the_real_server_and_names_its_capabilities(server: Server, bucket: str,
                                                                          wfe_cli: Any) -> None:  # fmt: skip
    done = wfe_cli("check-store", f"supabase://{bucket}/check", f"--store-option=storage_url={server.storage_url}",
                   f"--store-option=key={server.service_key}", "--budget=15m")  # fmt: skip  (a loaded CI machine)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "capabilities:" and not [line for line in lines if line.startswith(("lacks", "may lack"))]
    assert not [line for line in lines if "lacks" in line or "skipped" in line or "FAIL" in line], done.stdout
    assert lines[-1] == f"all properties hold on supabase://{bucket}/check"
    assert server.service_key not in done.stdout + done.stderr
