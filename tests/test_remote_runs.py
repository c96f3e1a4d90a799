"""Runs on a remote store: plans checked at once, writes behind the computation, solo runs without leases.

What must hold however the round trips are saved: a stale or hostile plan
gives the answer the node-by-node path gives; a run killed while writes are
queued leaves no action entry that names a missing blob; two runs that
overlap compute each shared action once, whether they started together or
one found the other already running alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.engine._presence import LIVE, Presence
from wfe.ops._verify import verify_store
from wfe.storage import Listed, Page
from wfe.storage._memory import MemoryIO
from wfe.store._plans import PREFIX as PLANS
from wfe.store._plans import PlanStore

# A store in memory that says it is remote, so runs take the remote path (plans, listings, writes behind),
# and whose listings carry the MD5 of each object as its ETag, as S3's do for objects put in one request.


class RemoteMemoryIO(MemoryIO):
    remote = True
    paged_listing = True

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        page = super().list_page(prefix, start_after, limit)
        return Page(
            [Listed(o.rel, o.size, hashlib.md5(self.fs.cat_file(self.path(o.rel)), usedforsecurity=False).hexdigest())
             for o in page.objects],
            page.more,
        )


class SmallPagesRemoteMemoryIO(RemoteMemoryIO):
    """Listings of eight names a page: a few nodes take the paths a store of thousands takes on S3."""

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        return super().list_page(prefix, start_after, min(limit, 8))


class UnpagedRemoteMemoryIO(MemoryIO):
    """A remote store without paged listings: a run asks for each predicted entry and blob instead."""

    remote = True


FUNCTIONS = textwrap.dedent(
    """
    import wfe

    @wfe.function(outputs="application/json")
    def remote_seed(*, value=0):
        return value

    @wfe.function(inputs=["application/json"], outputs="application/json")
    def remote_add(x, *, i=0):
        return x + i
    """
)


def write_workflow(folder: Path, name: str = "remote") -> Path:
    """A chain of five and a fan-out of three from its middle: keys that can and cannot be predicted."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remote_functions.py").write_text(FUNCTIONS)
    nodes = [{"id": "s", "function": "remote_seed", "config": {"value": 1}}]
    edges = []
    for i in range(1, 6):
        nodes.append({"id": f"c{i}", "function": "remote_add", "config": {"i": i}})
        edges.append({"source": "s" if i == 1 else f"c{i - 1}", "target": f"c{i}"})
    for j in range(3):
        nodes.append({"id": f"f{j}", "function": "remote_add", "config": {"i": 10 + j}})
        edges.append({"source": "c3", "target": f"f{j}"})
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "modules": ["remote_functions"], "nodes": nodes, "edges": edges}))
    return path


def outcome(result: wfe.RunResult) -> dict[str, tuple[str, list[str]]]:
    return {n: (r.status, [a.digest for a in r.outputs]) for n, r in result.manifest.nodes.items()}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the module: its functions are imported once into this process.
    return write_workflow(tmp_path_factory.mktemp("project"))


def remote_memory_store(root: str, kind: type[MemoryIO] = RemoteMemoryIO) -> wfe.Store:
    fs = fsspec.filesystem("memory")
    return wfe.Store(kind(fs, root), f"memory://{root}")


def copy_tree(source: wfe.Store, root: str) -> None:
    for rel in list(source.io.walk("")):
        source.io.fs.pipe_file(f"{root}/{rel}", source.io.read_bytes(rel))


def test_a_cached_rerun_on_a_remote_store_reads_no_action_entry_and_rewrites_no_plan(workflow: Path) -> None:
    store = remote_memory_store(f"/remote-{uuid.uuid4().hex[:8]}")
    first = wfe.run(workflow, store)
    assert first.ok and PlanStore(store.io).get("remote")
    reads: list[str] = []
    real_read = store.io.read_bytes

    def counting_read(rel: str, limit: int | None = None) -> bytes:
        if not rel.startswith(("leases", "configs")):
            reads.append(rel.split("/")[0])
        return real_read(rel, limit)

    store.io.read_bytes = counting_read  # type: ignore[method-assign]
    writes: list[str] = []
    real_write = store.io.write_bytes

    def counting_write(rel: str, data: bytes, *, exclusive: bool = False) -> bool:
        writes.append(rel.split("/")[0])
        return real_write(rel, data, exclusive=exclusive)

    store.io.write_bytes = counting_write  # type: ignore[method-assign]
    second = wfe.run(workflow, store)
    assert {n: s for n, (s, _) in outcome(second).items()} == dict.fromkeys(outcome(first), "cached")
    assert outcome(second) == {n: ("cached", d) for n, (_, d) in outcome(first).items()}
    assert reads.count("actions") == 0 and reads.count(PLANS) == 1  # the entries were confirmed by a listing
    assert PLANS not in writes  # the same plan: not written again


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["drop plan", "garble plan", "swap plan entries", "plan names other bytes",
                         "drop entry", "forge entry", "garble entry", "drop blob"]),
        st.integers(min_value=0, max_value=50),
    ),
    max_size=4,
)


def _mutate(store: wfe.Store, kind: str, pick: int) -> None:
    io = store.io
    plans = [r for r in io.walk(PLANS)]
    entries = sorted(io.walk("actions"))
    blobs = sorted(r for r in io.walk("blobs") if r.count("/") == 3)
    if kind == "drop plan" and plans:
        io.delete(plans[0])
    elif kind == "garble plan" and plans:
        io.write_bytes(plans[0], b'{"workflow": "remote", "entries": {"c1": ["x", 1]}, ' * (pick % 3))
    elif kind in ("swap plan entries", "plan names other bytes") and plans:
        try:
            document = json.loads(io.read_bytes(plans[0]))
            names = sorted(document["entries"])
        except (ValueError, KeyError, TypeError):
            return  # garbled already
        if not names:
            return
        a, b = names[pick % len(names)], names[(pick + 1) % len(names)]
        if kind == "swap plan entries":
            document["entries"][a], document["entries"][b] = document["entries"][b], document["entries"][a]
        else:  # the right key, but the bytes of another node's entry: its outputs are not this node's
            document["entries"][a][1] = document["entries"][b][1]
        io.write_bytes(plans[0], json.dumps(document).encode())
    elif kind == "drop entry" and entries:
        io.delete(entries[pick % len(entries)])
    elif kind == "forge entry" and len(entries) > 1:  # an entry that names another node's outputs
        io.write_bytes(entries[pick % len(entries)], io.read_bytes(entries[(pick + 1) % len(entries)]))
    elif kind == "garble entry" and entries:
        io.write_bytes(entries[pick % len(entries)], b"not an action entry")
    elif kind == "drop blob" and blobs:
        io.delete(blobs[pick % len(blobs)])


@pytest.mark.parametrize(
    "kind", [RemoteMemoryIO, SmallPagesRemoteMemoryIO, UnpagedRemoteMemoryIO], ids=["listed", "pages", "asked"]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=MUTATIONS)
def test_a_stale_or_hostile_plan_gives_what_the_node_by_node_path_gives(
    workflow: Path, kind: type[MemoryIO], mutations: list[tuple[str, int]]
) -> None:
    root = f"/remote-{uuid.uuid4().hex[:8]}"
    store = remote_memory_store(root, kind)
    assert wfe.run(workflow, store).ok
    for change, pick in mutations:
        _mutate(store, change, pick)
    # The same store state, read node by node: a store that is not remote takes no plan and no listing.
    exact_root = f"/exact-{uuid.uuid4().hex[:8]}"
    copy_tree(store, exact_root)
    exact_store = wfe.Store(MemoryIO(fsspec.filesystem("memory"), exact_root), f"memory://{exact_root}")
    planned = wfe.run(workflow, store)
    exact = wfe.run(workflow, exact_store)
    assert outcome(planned) == outcome(exact)
    # and leaves the store as the node-by-node path does (a forged entry stays one verify reports, say)
    planned_report, exact_report = verify_store(store), verify_store(exact_store)
    assert planned_report.clean == exact_report.clean
    assert (planned_report.actions, planned_report.blobs) == (exact_report.actions, exact_report.blobs)


def test_where_listings_take_pages_a_cached_rerun_still_asks_for_few_objects(workflow: Path) -> None:
    store = remote_memory_store(f"/remote-{uuid.uuid4().hex[:8]}", SmallPagesRemoteMemoryIO)
    first = wfe.run(workflow, store)
    asked: list[str] = []
    real_exists, real_read = store.io.exists, store.io.read_bytes

    def counting_exists(rel: str) -> bool:
        asked.append(rel)
        return real_exists(rel)

    def counting_read(rel: str, limit: int | None = None) -> bytes:
        asked.append(rel)
        return real_read(rel, limit)

    store.io.exists = counting_exists  # type: ignore[method-assign]
    store.io.read_bytes = counting_read  # type: ignore[method-assign]
    second = wfe.run(workflow, store)
    assert outcome(second) == {n: ("cached", d) for n, (_, d) in outcome(first).items()}
    per_object = [rel for rel in asked if rel.startswith(("actions/", "blobs/"))]
    # The first page answered for most of the nine nodes; only what sorts after it is asked for, one by one.
    assert len(per_object) <= 6, per_object


def test_a_failed_write_behind_fails_the_run(workflow: Path) -> None:
    store = remote_memory_store(f"/remote-{uuid.uuid4().hex[:8]}")
    real_put = store.actions.put_encoded
    puts = itertools.count()

    def failing(key: str, data: bytes, **kwargs: Any) -> bool:
        if next(puts) >= 2:  # the third entry on: the store has gone
            raise wfe.StoreError("the store went away")
        return real_put(key, data, **kwargs)

    store.actions.put_encoded = failing  # type: ignore[method-assign]
    with pytest.raises(wfe.StoreError, match="the store went away"):
        wfe.run(workflow, store)
    (run_id,) = store.runs
    assert store.runs.get(run_id).status == "failed"
    assert verify_store(store).clean


# S3: the real server ------------------------------------------------------------------------------

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from servers.s3 import S3Server, s3_server  # noqa: E402
from servers.supabase_storage import Server  # noqa: E402


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


KILLER = textwrap.dedent(
    """
    import os, signal, sys, time
    import wfe_s3._io as s3io
    from wfe.engine import _writer

    real_write = s3io.S3IO.write_bytes
    def slow_write(self, rel, data, *, exclusive=False):
        time.sleep(0.05)  # a faraway server: writes fall behind the computation
        return real_write(self, rel, data, exclusive=exclusive)
    s3io.S3IO.write_bytes = slow_write

    finished = [0]
    real_submit = _writer.WriteBehind.submit
    def submit(self, job, held=None):
        # Killed once the queue is full and a good part of the work has landed: jobs are mid-way then.
        if len(self) >= self._limit - 1 and finished[0] >= 40:
            print(f"killed with {len(self)} jobs queued, {finished[0]} done", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        def counted():
            job()
            finished[0] += 1
        return real_submit(self, counted, held)
    _writer.WriteBehind.submit = submit

    from wfe.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def fan_out(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    functions = FUNCTIONS.replace("def remote_", "def fan_")
    (folder / "fan_functions.py").write_text(functions)
    nodes = [{"id": "s", "function": "fan_seed", "config": {"value": 1}}]
    nodes += [{"id": f"f{i}", "function": "fan_add", "config": {"i": i}} for i in range(n)]
    edges = [{"source": "s", "target": f"f{i}"} for i in range(n)]
    path = folder / "fan.json"
    path.write_text(json.dumps({"name": "fan", "modules": ["fan_functions"], "nodes": nodes, "edges": edges}))
    return path


@pytest.mark.slow
def test_a_run_killed_with_writes_queued_leaves_no_entry_without_its_blobs(s3: S3Server, tmp_path: Path) -> None:
    workflow = fan_out(tmp_path / "project", 400)
    url = s3.url(f"killed-{uuid.uuid4().hex[:8]}")
    args = ["run", str(workflow), "--store", url, "--json", "--store-option", f"endpoint_url={s3.endpoint_url}"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **s3.env})
    assert killed.returncode == -9 and "jobs queued" in killed.stderr, killed.stderr
    store = wfe.open_store(url, **s3.options)
    entries = list(store.actions)
    assert 40 <= len(entries) < 400  # some work landed, the queued rest did not
    for key in entries:
        assert all(store.blobs.exists(a.digest) for a in store.actions.get(key).outputs if a.stored), key
    assert verify_store(store).clean

    again = subprocess.run([sys.executable, "-m", "wfe", *args], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **s3.env})
    assert again.returncode == 0, again.stderr
    reference = wfe.run(workflow, wfe.open_store(str(tmp_path / "reference")))
    rerun = json.loads(again.stdout)["nodes"]
    assert {n: [o["digest"] for o in info["outputs"]] for n, info in rerun.items()} == {
        n: [a.digest for a in r.outputs] for n, r in reference.manifest.nodes.items()
    }


SLOW = textwrap.dedent(
    """
    import time
    import wfe

    @wfe.function(outputs="application/json")
    def slow_seed(*, calls: str):
        return 0

    @wfe.function(inputs=["application/json"], outputs="application/json")
    def slow_step(x, *, i: int, calls: str):
        with open(calls, "a") as handle:
            handle.write(f"{i}\\n")
        time.sleep(0.4)
        return x + i
    """
)


STEPS = 16  # 0.4 s each: the first run is still going when the second has started (about 1 s)


@pytest.mark.slow
def test_a_run_that_finds_another_running_alone_computes_nothing_twice(s3: S3Server, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    calls.touch()
    project = tmp_path / "project"
    project.mkdir()
    (project / "slow_functions.py").write_text(SLOW)
    nodes = [{"id": "s", "function": "slow_seed", "config": {"calls": str(calls)}}]
    nodes += [{"id": f"n{i}", "function": "slow_step", "config": {"i": i, "calls": str(calls)}} for i in range(STEPS)]
    edges = [{"source": "s" if i == 0 else f"n{i - 1}", "target": f"n{i}"} for i in range(STEPS)]
    workflow = project / "slow.json"
    workflow.write_text(json.dumps({"name": "slow", "modules": ["slow_functions"], "nodes": nodes, "edges": edges}))
    url = s3.url(f"solo-{uuid.uuid4().hex[:8]}")
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", url, "--json", "--log-level", "info",
               "--store-option", f"endpoint_url={s3.endpoint_url}"]
    env = {**os.environ, **s3.env}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while len(calls.read_text().split()) < 2:  # the first run is well into the chain, alone
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    results = []
    for process in (first, second):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append((json.loads(out), err))
    made = calls.read_text().split()
    logs = "\n".join(err for _, err in results)
    assert sorted(made) == sorted(set(made)) and len(made) == STEPS, (made, logs)  # each step once, in either run
    assert "another run started on this store: taking leases from now on" in results[0][1]
    assert "another run is live on this store" in results[1][1]
    digests = [{n: [o["digest"] for o in i["outputs"]] for n, i in r["nodes"].items()} for r, _ in results]
    assert digests[0] == digests[1]
    store = wfe.open_store(url, **s3.options)
    assert list(store.io.walk(LIVE)) == []  # both records removed
    assert verify_store(store).clean


def test_a_crashed_runs_record_does_not_keep_a_run_from_being_alone(s3: S3Server) -> None:
    store = wfe.open_store(s3.url(f"crashed-{uuid.uuid4().hex[:8]}"), **s3.options)
    gone = {"owner": f"{os.uname().nodename}:999999999:gone", "expires": time.time() + 30, "mode": "solo"}
    old = {"owner": "elsewhere:1:old", "expires": time.time() - 1, "mode": "solo"}
    store.io.write_bytes(f"{LIVE}/gone.json", json.dumps(gone).encode())
    store.io.write_bytes(f"{LIVE}/old.json", json.dumps(old).encode())
    presence = Presence(store.io, "me", "here:1:me")
    started = time.monotonic()
    presence.start(wait=30)
    try:
        assert presence.solo and time.monotonic() - started < 5
    finally:
        presence.stop()
    live = {"owner": "elsewhere:1:live", "expires": time.time() + 30, "mode": "shared"}
    store.io.write_bytes(f"{LIVE}/live.json", json.dumps(live).encode())
    shared = Presence(store.io, "me2", "here:1:me2")
    shared.start(wait=30)
    try:
        assert not shared.solo
    finally:
        shared.stop()
    assert sorted(store.io.walk(LIVE)) == sorted(f"{LIVE}/{n}.json" for n in ("gone", "old", "live"))


def test_on_s3_a_cached_rerun_confirms_its_plan_by_listing(s3: S3Server, workflow: Path) -> None:
    url = s3.url(f"plan-{uuid.uuid4().hex[:8]}")
    store = wfe.open_store(url, **s3.options)
    first = wfe.run(workflow, store)
    s3.reset_requests()
    second = wfe.run(workflow, wfe.open_store(url, **s3.options))
    assert outcome(second) == {n: ("cached", d) for n, (_, d) in outcome(first).items()}
    assert s3.count("GET", "/actions/", query="") == 0  # every entry confirmed by its ETag in a listing
    assert s3.count("HEAD", "/blobs/") == 0  # and every output by a listing
    assert not [r for r in s3.requests() if "/configs/" in r["path"]]  # a cached node's entry names its config
    # What is left is per run, not per node: the workflow blob, this run's presence and records, the
    # plan, two listings, the function records.
    assert len(s3.requests()) <= 16, s3.requests()


@pytest.mark.parametrize("page_size", [3, 1000])
def test_on_supabase_a_cached_rerun_confirms_its_plan_by_listing(
    server: Server, bucket: str, workflow: Path, page_size: int
) -> None:
    url = f"supabase://{bucket}/plan-{uuid.uuid4().hex[:8]}"
    options = {"storage_url": server.storage_url, "key": server.service_key, "list_page_size": str(page_size)}
    first = wfe.run(workflow, wfe.open_store(url, **options))
    store = wfe.open_store(url, **options)
    sent: list[httpx.Request] = []
    store.io.fs._storage.session.event_hooks["request"].append(sent.append)
    second = wfe.run(workflow, store)
    assert outcome(second) == {n: ("cached", d) for n, (_, d) in outcome(first).items()}
    asked = [f"{r.method} {r.url.path}" for r in sent]
    assert not [a for a in asked if "/actions/" in a], asked  # every entry confirmed by its ETag in a listing
    # the workflow's own (its put, refused, and its renewal); every output confirmed by a listing
    assert len([a for a in asked if "/blobs/" in a]) <= 2, asked
    assert not [a for a in asked if "/configs/" in a], asked
    listings = [a for a in asked if "/object/list-v2/" in a]
    assert listings, asked
    # per run, not per node (nine nodes): the workflow, presence and records, the plan, the listings
    assert len(sent) <= 16 + (len(listings) if page_size < 10 else 0), asked


def test_gc_and_verify_leave_plans_alone(workflow: Path) -> None:
    from wfe.ops._gc import collect_garbage

    store = remote_memory_store(f"/remote-{uuid.uuid4().hex[:8]}")
    assert wfe.run(workflow, store).ok
    collect_garbage(store, keep_last=1, grace=0)
    assert PlanStore(store.io).get("remote") and verify_store(store).clean
