"""The SFTP adapter on a real OpenSSH server: safe from threads, atomic publishes, and what the generic path did.

The server is sshd from Debian's ``openssh-server`` (tests/servers/sshd.py),
on a free loopback port with keys made for the test; without sshd the tests
are skipped and say so.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers.sshd import SshdServer, Unavailable, sshd_server

import wfe
from wfe import StoreError

pytest.importorskip("paramiko")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales" / "workflow.yaml"
HANG_BOUND = 120.0  # seconds: a run or a thread test past this has hung


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    try:
        with sshd_server(tmp_path_factory.mktemp("sshd")) as running:
            yield running
    except Unavailable as exc:
        pytest.skip(f"no SFTP server here: {exc}")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder on this machine (and so on the server) the stores of this module live in."""
    return tmp_path_factory.mktemp("sftp-stores")


@pytest.fixture
def store(server: SshdServer, stores: Path) -> wfe.Store:
    return wfe.open_store(server.url(stores / f"t-{uuid.uuid4().hex[:8]}"), **server.options)


def _options(server: SshdServer) -> list[str]:
    return [f"--store-option={name}={value}" for name, value in server.options.items()]


def test_a_store_opens_with_its_flags(store: wfe.Store, stores: Path) -> None:
    from wfe_sftp import SFTPIO

    assert isinstance(store.io, SFTPIO)
    assert store.io.exclusive_publish and store.io.shared and not store.io.conditional_create
    assert store.io.root.startswith(str(stores))  # the absolute path the URL names, on the server
    digest = store.blobs.put(b"over ssh")
    assert (Path(store.io.root) / "blobs" / "sha256" / digest[7:9] / digest[9:]).read_bytes() == b"over ssh"


def test_threads_share_one_store_without_hanging(store: wfe.Store) -> None:
    """8 threads at once on one store: every put and get answers (paramiko's client, shared, would hang)."""

    def work(n: int) -> None:
        for i in range(15):
            data = f"thread {n} put {i}".encode() * 1000
            digest = store.blobs.put(data)
            assert store.blobs.get(digest) == data
            store.io.write_bytes(f"runs/{n}.json", data[:50])
            assert store.io.read_bytes(f"runs/{n}.json") == data[:50]
        assert len(list(store.io.walk("runs"))) >= 1

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(work, n) for n in range(8)]
        for future in futures:
            future.result(timeout=HANG_BOUND)
    assert len(list(store.blobs)) == 8 * 15


_GENERIC_THREADS = textwrap.dedent(
    """
    import os, sys
    from concurrent.futures import ThreadPoolExecutor
    import fsspec
    from wfe.storage import StorageIO
    from wfe.store._store import Store

    host, port, user, key, known, root = sys.argv[1:7]
    fs = fsspec.filesystem("sftp", host=host, port=int(port), username=user, key_filename=key,
                           look_for_keys=False, allow_agent=False, skip_instance_cache=True)
    store = Store(StorageIO(fs, root), "sftp://generic")  # the generic path as it was: no adapter, no probe

    def work(n):
        for i in range(20):
            data = os.urandom(40000)
            assert store.blobs.get(store.blobs.put(data)) == data

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    print("finished")
    """
)


@pytest.mark.slow  # waits out the hang it shows
def test_the_generic_path_hangs_under_threads(server: SshdServer, stores: Path) -> None:
    """Evidence the adapter matters: fsspec's sftp filesystem shares one paramiko client between threads."""
    args = [sys.executable, "-c", _GENERIC_THREADS, "127.0.0.1", str(server.port), server.user,
            str(server.key_file), str(server.folder / "known_hosts"), str(stores / "generic")]  # fmt: skip
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return  # hung, as it did for the testers: the child is killed
    assert "finished" not in done.stdout, "the generic path finished 8 threads: is the adapter still needed?"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=3000), min_size=2, max_size=6))
def test_of_racing_exclusive_writes_exactly_one_wins(store: wfe.Store, payloads: list[bytes]) -> None:
    rel = f"actions/ab/{uuid.uuid4().hex}.json"
    barrier = threading.Barrier(len(payloads))

    def write(payload: bytes) -> bool:
        barrier.wait()
        return store.io.write_bytes(rel, payload, exclusive=True)

    with concurrent.futures.ThreadPoolExecutor(len(payloads)) as pool:
        won = list(pool.map(write, payloads))
    assert won.count(True) == 1
    assert store.io.read_bytes(rel) == payloads[won.index(True)]
    assert [rel for rel in store.io.walk("tmp")] == []  # the losers' staged files are gone


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=st.lists(st.binary(min_size=1, max_size=200_000), min_size=2, max_size=5))
def test_a_rewritten_record_is_always_whole(store: wfe.Store, versions: list[bytes]) -> None:
    """posix-rename replaces at once: a reader never finds the record missing or partly written."""
    rel = f"runs/{uuid.uuid4().hex}.json"
    store.io.write_bytes(rel, versions[0])
    seen: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(store.io.read_bytes(rel))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in versions[1:] * 3:
            store.io.write_bytes(rel, version)
    finally:
        done.set()
        reader.join(HANG_BOUND)
    assert set(seen) <= set(versions)
    assert store.io.read_bytes(rel) == versions[-1]


def test_a_lease_is_an_exclusive_create(store: wfe.Store) -> None:
    assert store.io.create_small("leases/a.json", b"mine")
    assert not store.io.create_small("leases/a.json", b"theirs")
    assert store.io.read_bytes("leases/a.json") == b"mine"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.sets(st.from_regex(r"[a-z0-9]{1,3}(/[a-z0-9]{1,3}){0,2}\.json", fullmatch=True), max_size=12))
def test_listings_hold_exactly_what_was_written(server: SshdServer, stores: Path, names: set[str]) -> None:
    store = wfe.open_store(server.url(stores / f"l-{uuid.uuid4().hex[:8]}"), **server.options)
    for name in names:
        store.io.write_bytes(f"runs/{name}", name.encode())
    listed = store.io.list_page("runs")
    assert [entry.rel for entry in listed.objects] == sorted(f"runs/{name}" for name in names)
    assert [entry.size for entry in listed.objects] == [len(name) for name in sorted(names)]
    assert sorted(store.io.walk("runs")) == sorted(f"runs/{name}" for name in names)


def test_opening_fails_in_one_line_for_a_bad_key_or_an_unknown_host(server: SshdServer, tmp_path: Path) -> None:
    stranger = tmp_path / "known_hosts"
    stranger.write_text("")
    with pytest.raises(StoreError, match="host key is not in known_hosts") as unknown:
        wfe.open_store(server.url(tmp_path / "s"), key_file=str(server.key_file), known_hosts=str(stranger))
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    with pytest.raises(StoreError, match=r"login refused \(key file") as refused:
        wfe.open_store(server.url(tmp_path / "s"), key_file=str(other_key), known_hosts=server.options["known_hosts"])
    with pytest.raises(StoreError, match="cannot connect") as closed:
        wfe.open_store(f"sftp://127.0.0.1:1/{tmp_path}/s", **server.options)
    for caught in (unknown, refused, closed):
        assert "\n" not in str(caught.value)


def _run(cli: Any, server: SshdServer, url: str, *extra: str) -> dict[str, Any]:
    done = cli("run", str(EXAMPLE), "--store", url, *_options(server), "--json", *extra, timeout=HANG_BOUND)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_sales_example_runs_then_reruns_all_cached(server: SshdServer, stores: Path, wfe_cli: Any) -> None:
    url = server.url(stores / f"sales-{uuid.uuid4().hex[:8]}")
    first = _run(wfe_cli, server, url)["nodes"]
    assert "ran" in {node["status"] for node in first.values()}
    second = _run(wfe_cli, server, url)["nodes"]
    ran = [node for node, record in first.items() if record["status"] == "ran"]
    assert {second[node]["status"] for node in ran} == {"cached"}
    assert {n: v["outputs"] for n, v in second.items()} == {n: v["outputs"] for n, v in first.items()}


def test_the_threads_executor_finishes(server: SshdServer, stores: Path, wfe_process: Any) -> None:
    """``--executor threads`` in its own process, bounded: a hang fails the test instead of holding CI."""
    url = server.url(stores / f"threads-{uuid.uuid4().hex[:8]}")
    try:
        first = _run(wfe_process, server, url, "--executor", "threads")["nodes"]
    except subprocess.TimeoutExpired:
        pytest.fail(f"wfe run --executor threads on SFTP did not finish in {HANG_BOUND:.0f} s")
    assert "ran" in {node["status"] for node in first.values()}
    second = _run(wfe_process, server, url, "--executor", "threads")["nodes"]
    assert {record["status"] for record in second.values()} <= {"cached", "ran"}
    computed = [node for node, record in first.items() if record["status"] == "ran"]
    assert {second[node]["status"] for node in computed} == {"cached"}


@pytest.mark.slow  # the whole conformance suite through the command line
def test_check_store_passes(server: SshdServer, stores: Path, wfe_cli: Any) -> None:
    url = server.url(stores / "check")
    done = wfe_cli("check-store", url, *_options(server), "--budget", "15m", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if "FAIL" in line], done.stdout
    assert lines[-1] == f"all properties hold on {url}"
