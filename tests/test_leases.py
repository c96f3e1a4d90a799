"""Leases: two runs reaching one uncached action at once compute it once (local disk and S3)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wfe
from wfe.engine._lease import OWNERS, POLL, Leases, Waiting, lease_path, read_lease
from wfe.ops._gc import collect_garbage
from wfe.ops._verify import verify_store
from wfe.store._digest import digest_of

LEASE_WORKFLOW = Path(__file__).resolve().parent / "workflows" / "lease"
KEY = digest_of(b"some action")


def two_runs_at_once(
    tmp_path: Path, store: str, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """Start two ``wfe run`` processes together on the slow workflow; their results and the calls made."""
    calls = tmp_path / "calls.txt"
    calls.touch()
    (tmp_path / "lease_functions.py").write_text((LEASE_WORKFLOW / "lease_functions.py").read_text())
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text((LEASE_WORKFLOW / "workflow.yaml").read_text().replace("CALLS", json.dumps(str(calls))))
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", store, "--json", *extra]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
        for _ in range(2)
    ]  # fmt: skip
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results, calls.read_text().split()


def check_once(results: list[dict[str, Any]], calls: list[str]) -> None:
    assert len(calls) == 1, calls  # the slow function ran in one process only
    outputs = [{n: [o["digest"] for o in info["outputs"]] for n, info in r["nodes"].items()} for r in results]
    assert outputs[0] == outputs[1]
    assert all(r["status"] == "succeeded" for r in results)


def test_two_runs_compute_once_local(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    results, calls = two_runs_at_once(tmp_path, str(store_path))
    check_once(results, calls)
    store = wfe.open_store(str(store_path))
    assert list(store.io.walk("leases")) == []  # released after the action entry was written
    assert verify_store(store).clean


def test_a_run_alone_on_local_disk_takes_no_lease_and_hands_over_at_once_when_another_starts(tmp_path: Path) -> None:
    """The first run is inside a long node, without a lease; a second run starts: the first leases that node
    while it is still running, so the second waits for its result instead of computing it too."""
    calls, go, store_path = tmp_path / "calls.txt", tmp_path / "go", tmp_path / "store"
    calls.touch()
    (tmp_path / "lease_functions.py").write_text((LEASE_WORKFLOW / "lease_functions.py").read_text())
    workflow = tmp_path / "gated.json"
    workflow.write_text(json.dumps({
        "name": "gated", "modules": ["lease_functions"],
        "nodes": [{"id": "gated", "function": "gated", "config": {"calls": str(calls), "go": str(go)}},
                  {"id": "after", "function": "after"}],
        "edges": [{"source": "gated", "target": "after"}],
    }))  # fmt: skip
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", str(store_path), "--json",
               "--log-level", "info"]  # fmt: skip
    store = wfe.open_store(str(store_path))

    def leases() -> list[str]:  # the lease files, not the owner files or the live runs' records
        return [rel for rel in store.io.walk("leases") if rel.count("/") == 1]

    def wait_for(condition: Callable[[], bool], what: str, *processes: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert all(p.poll() is None for p in processes), f"a run ended before {what}"
            time.sleep(0.02)

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: calls.read_text().split() != [], "the first run's node to start", first)
        assert leases() == []  # alone: the node in hand took no lease
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Handed over while the node still runs (it waits for ``go``), not once it is done.
            wait_for(lambda: len(leases()) == 1, "the first run to lease its node in hand", first, second)
        finally:
            go.touch()
            results = []
            for process in (first, second):
                out, err = process.communicate(timeout=120)
                assert process.returncode == 0, err
                results.append((json.loads(out), err))
    finally:
        go.touch()
        first.kill()
    assert len(calls.read_text().split()) == 1  # computed by the first run only
    assert "another run started on this store: taking leases from now on" in results[0][1]
    assert results[1][0]["nodes"]["gated"]["status"] == "cached"
    digests = [{n: [o["digest"] for o in i["outputs"]] for n, i in r["nodes"].items()} for r, _ in results]
    assert digests[0] == digests[1]
    assert list(store.io.walk("leases")) == []  # leases, owner files and both runs' records gone
    assert verify_store(store).clean


def test_a_hand_over_leases_every_node_in_flight_and_each_is_computed_once(tmp_path: Path) -> None:
    """Threads: the first run, alone, has three nodes in flight when a second starts; it leases all three."""
    calls, go, store_path = tmp_path / "calls.txt", tmp_path / "go", tmp_path / "store"
    calls.touch()
    (tmp_path / "lease_functions.py").write_text((LEASE_WORKFLOW / "lease_functions.py").read_text())
    workflow = tmp_path / "gated.json"
    nodes = [{"id": f"g{i}", "function": "gated", "config": {"calls": str(calls), "go": str(go), "name": f"g{i}"}}
             for i in range(6)]  # fmt: skip
    workflow.write_text(json.dumps({"name": "gated", "modules": ["lease_functions"], "nodes": nodes, "edges": []}))
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", str(store_path), "--json",
               "--executor", "threads", "--jobs", "3"]  # fmt: skip
    store = wfe.open_store(str(store_path))
    started = lambda: len(calls.read_text().split())  # noqa: E731
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while started() < 3:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.02)
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while len([rel for rel in store.io.walk("leases") if rel.count("/") == 1]) < 3:
            assert time.monotonic() < deadline and first.poll() is None and second.poll() is None
            time.sleep(0.02)
        go.touch()
        results = []
        for process in (first, second):
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            results.append(json.loads(out))
    finally:
        go.touch()
        for process in (first, second):
            if process is not None:
                process.kill()
    names = sorted(line.partition(":")[0] for line in calls.read_text().split())
    assert names == [f"g{i}" for i in range(6)]  # each node computed once, by one run or the other
    digests = [{n: [o["digest"] for o in i["outputs"]] for n, i in r["nodes"].items()} for r in results]
    assert digests[0] == digests[1]
    assert list(store.io.walk("leases")) == []
    assert verify_store(store).clean


def test_two_runs_compute_once_s3(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from servers.s3 import s3_server

    with s3_server() as server:
        url = server.url(f"lease-{uuid.uuid4().hex[:8]}")
        results, calls = two_runs_at_once(
            tmp_path, url, env=server.env, extra=("--store-option", f"endpoint_url={server.endpoint_url}")
        )
        check_once(results, calls)
        store = wfe.open_store(url, **server.options)
        assert list(store.io.walk("leases")) == []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[wfe.Store]:
    yield wfe.open_store(str(tmp_path / "store"))


def test_a_held_lease_is_refused_then_released(store: wfe.Store) -> None:
    first, second = Leases(store.io, "run-1"), Leases(store.io, "run-2")
    assert first.acquire(KEY) and not second.acquire(KEY)
    second.release(KEY)  # not the holder: a no-op
    assert first.holder(KEY) is not None and first.holder(KEY).owner == first.owner  # type: ignore[union-attr]
    first.release(KEY)
    assert first.holder(KEY) is None and second.acquire(KEY)


def test_an_expired_lease_is_taken_over_and_collected(store: wfe.Store) -> None:
    crashed = Leases(store.io, "crashed", ttl=0.0)
    assert crashed.acquire(KEY, now=time.time() - 10)
    other_key = digest_of(b"other")
    assert Leases(store.io, "live").acquire(other_key)
    assert collect_garbage(store, grace=0).leases_removed == 1  # the expired one only
    assert store.io.exists(lease_path(other_key)) and not store.io.exists(lease_path(KEY))
    assert crashed.acquire(KEY, now=time.time() - 10)
    taker = Leases(store.io, "taker")
    assert taker.acquire(KEY)
    assert taker.holder(KEY).owner == taker.owner  # type: ignore[union-attr]
    assert verify_store(store).clean  # leases are no concern of verify


def claim_until_settled(leases: Leases, cached: Callable[[], object]) -> tuple[object, int]:
    """Ask as the runner does (every POLL seconds) until the answer is not WAITING; the answer and the asks."""
    asks = 1
    while isinstance(answer := leases.claim(KEY, cached), Waiting):
        asks += 1
        time.sleep(POLL)
    return answer, asks


def test_a_killed_processs_lease_is_taken_over_at_once(store: wfe.Store) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Leases(store.io, "killed")
    dead.owner = dead.owner.replace(f":{os.getpid()}:", f":{int(child.stdout)}:")  # as if taken by that process
    assert dead.acquire(KEY)
    assert not dead.holder(KEY).live(time.time())  # type: ignore[union-attr]
    assert Leases(store.io, "rerun").acquire(KEY)


def test_waiting_is_bounded(store: wfe.Store) -> None:
    """A holder that never finishes: the waiter gives up after its ttl and computes."""
    assert Leases(store.io, "stuck", ttl=60).acquire(KEY)
    answer, asks = claim_until_settled(Leases(store.io, "waiter", ttl=0.5), lambda: None)
    assert answer is None and asks > 1


def test_waiter_gets_the_holders_result(store: wfe.Store) -> None:
    holder = Leases(store.io, "holder")
    assert holder.acquire(KEY)
    answers = iter([None, None, "done"])
    assert claim_until_settled(Leases(store.io, "waiter"), lambda: next(answers)) == ("done", 4)


def test_a_released_lease_without_result_is_taken_over(store: wfe.Store) -> None:
    holder, waiter = Leases(store.io, "holder"), Leases(store.io, "waiter")
    assert holder.acquire(KEY)
    assert isinstance(waiter.claim(KEY, lambda: None), Waiting)
    holder.release(KEY)  # the holder's function failed: no result
    assert waiter.claim(KEY, lambda: None) is None
    assert waiter.holder(KEY).owner == waiter.owner  # type: ignore[union-attr]


def test_memory_stores_take_no_leases() -> None:
    store = wfe.open_store("memory://leases-" + uuid.uuid4().hex[:6])
    assert not Leases(store.io, "a").enabled
    assert Leases(store.io, "a").acquire(KEY) and Leases(store.io, "b").acquire(KEY)


def test_on_local_disk_a_lease_is_a_link_to_its_runs_owner_file(store: wfe.Store) -> None:
    leases = Leases(store.io, "run-1")
    other_key = digest_of(b"other")
    assert leases.acquire(KEY) and leases.acquire(other_key)
    owners = list(store.io.walk(OWNERS))
    assert len(owners) == 1  # one file per run, however many leases it holds
    owner_file = os.stat(store.io.path(owners[0]))
    assert os.stat(store.io.path(lease_path(KEY))).st_ino == owner_file.st_ino and owner_file.st_nlink == 3
    refused = Leases(store.io, "run-2")
    assert not refused.acquire(KEY)  # still refused like a lease of its own
    leases.close()
    refused.close()
    assert list(store.io.walk("leases")) == []  # the leases and the owner files


def test_a_runs_leases_stay_live_while_it_keeps_taking_leases(store: wfe.Store) -> None:
    start = time.time() - 100
    leases = Leases(store.io, "long-run", ttl=40)
    assert leases.acquire(KEY, now=start)  # a node that has computed for 100 s by now
    assert not leases.holder(KEY).live(time.time())  # type: ignore[union-attr]
    assert leases.acquire(digest_of(b"a later node"))  # taking another lease renews the run's owner file
    assert leases.holder(KEY).live(time.time())  # type: ignore[union-attr]
    assert not Leases(store.io, "other").acquire(KEY)


def test_gc_deletes_the_owner_file_of_a_gone_run_and_counts_only_leases(store: wfe.Store) -> None:
    crashed, live = Leases(store.io, "crashed", ttl=1), Leases(store.io, "live")
    assert crashed.acquire(KEY, now=time.time() - 10) and live.acquire(digest_of(b"other"))
    assert len(list(store.io.walk(OWNERS))) == 2
    assert collect_garbage(store, grace=0).leases_removed == 1
    remaining = list(store.io.walk(OWNERS))
    assert len(remaining) == 1 and read_lease(store.io, remaining[0]).owner == live.owner


def test_without_hard_links_each_lease_is_a_file(store: wfe.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(source: str, target: str) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # what FAT and some network filesystems say

    monkeypatch.setattr(os, "link", no_links)
    first, second = Leases(store.io, "run-1"), Leases(store.io, "run-2")
    assert first.acquire(KEY) and not second.acquire(KEY)
    document = json.loads(Path(store.io.path(lease_path(KEY))).read_bytes())
    assert document["owner"] == first.owner and "ttl" not in document
    first.close()
    assert second.acquire(KEY) and list(store.io.walk("leases")) == [lease_path(KEY)]
