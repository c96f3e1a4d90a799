"""Store operations: verify (and --repair), gc, sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli
from _projects import blob_file, make_project

import wfe
from wfe.cli._bars import terminal_progress
from wfe.ops._gc import collect_garbage, parse_duration, parse_since
from wfe.ops._progress import Progress
from wfe.ops._rerun import rerun
from wfe.ops._sync import sync
from wfe.ops._verify import run_references, verify_store
from wfe.store._blobs import BlobStore
from wfe.store._paths import blob_path, record_path


def referenced(store: wfe.Store, run_id: str) -> set[str]:
    return {digest for digest, _ in run_references(store.runs.get(run_id))}


# verify ----------------------------------------------------------------------------------------


def test_verify_finds_a_flipped_byte_and_a_missing_blob_and_repair_then_rerun_cleans(
    wfe_cli: Cli, tmp_path: Path
) -> None:
    project = make_project(tmp_path)
    root = tmp_path / "store"
    first = json.loads(wfe_cli("run", str(project.workflow), "--store", str(root), "--json").stdout)
    doubled = first["nodes"]["double"]["outputs"][0]["digest"]
    summed = first["nodes"]["total"]["outputs"][0]["digest"]
    assert wfe_cli("verify", "--store", str(root)).returncode == 0

    damaged = blob_file(root, doubled)
    data = bytearray(damaged.read_bytes())
    data[0] ^= 0x01
    damaged.write_bytes(bytes(data))
    blob_file(root, summed).unlink()

    found = wfe_cli("verify", "--store", str(root))
    assert found.returncode == 1
    assert f"corrupt blob {doubled}" in found.stdout
    assert f"missing blob {summed}, referenced by" in found.stdout
    report = json.loads(wfe_cli("verify", "--store", str(root), "--json").stdout)
    assert report["corrupt_blobs"] == [doubled] and list(report["missing_blobs"]) == [summed]

    repaired = wfe_cli("verify", "--store", str(root), "--repair")
    assert repaired.returncode == 0, repaired.stdout  # all a repair can mend is mended
    assert repaired.stdout.splitlines()[-1].startswith("repaired:")
    assert f"run {first['run_id']} names 2 blobs missing or corrupt: `wfe rerun {first['run_id']}`" \
        in repaired.stdout
    assert f"repaired: deleted corrupt blob {doubled}" in repaired.stdout
    assert repaired.stdout.count("repaired: dropped action") == 2  # the entries of double and total
    later = wfe_cli("verify", "--store", str(root))  # the run's outputs are still gone: said, with the way back
    assert later.returncode == 1 and f"`wfe rerun {first['run_id']}` recomputes them" in later.stdout
    after_repair = json.loads(wfe_cli("verify", "--store", str(root), "--json").stdout)
    assert after_repair["corrupt_blobs"] == [] and set(after_repair["missing_blobs"]) == {doubled, summed}
    assert set(after_repair["runs_to_rerun"][first["run_id"]]) == {doubled, summed}

    again = wfe_cli("rerun", first["run_id"], "--store", str(root), "--verify", cwd=project.folder)
    assert again.returncode == 0, again.stdout + again.stderr
    clean = wfe_cli("verify", "--store", str(root))
    assert clean.returncode == 0 and clean.stdout.startswith("clean:"), clean.stdout


def test_verify_reads_past_a_local_cache(tmp_path: Path) -> None:
    store = wfe.open_store(f"memory://cached-{uuid.uuid4().hex[:8]}", cache=str(tmp_path / "cache"))
    assert type(store.blobs) is not BlobStore  # the read cache is in front
    digest = store.blobs.put(b"original bytes")
    assert store.blobs.get(digest) == b"original bytes"  # now held by the cache too
    store.io.fs.pipe_file(store.io.path(blob_path(digest)), b"damaged bytes!")  # behind the store's back
    assert verify_store(store).corrupt_blobs == [digest]


# gc --------------------------------------------------------------------------------------------


def test_gc_keep_last_frees_only_what_older_runs_used(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    root = tmp_path / "store"
    run_ids = []
    for offset in (0, 1, 2):  # three configs: parse and everything after it differ each time
        project.write(offset=offset)
        out = wfe_cli("run", str(project.workflow), "--store", str(root), "--json")
        run_ids.append(json.loads(out.stdout)["run_id"])
    store = wfe.open_store(str(root))
    newest = referenced(store, run_ids[2])
    only_older = (referenced(store, run_ids[0]) | referenced(store, run_ids[1])) - newest
    assert only_older and newest
    sizes = {d: store.blobs.size(d) for d in only_older}
    before = set(store.blobs)

    dry = json.loads(wfe_cli("gc", "--keep-last", "1", "--grace", "0", "--store", str(root), "--dry-run",
                             "--json").stdout)
    assert set(dry["deleted_blobs"]) == only_older and set(store.blobs) == before
    out = wfe_cli("gc", "--keep-last", "1", "--grace", "0", "--store", str(root), "--json")
    report = json.loads(out.stdout)

    assert set(report["deleted_blobs"]) == only_older
    assert report["bytes_freed"] == sum(sizes.values())
    assert set(store.blobs) == newest
    assert list(store.runs) == [run_ids[2]]
    assert report["deleted_actions"] == 6  # parse, double, total of each older run
    text = wfe_cli("verify", "--store", str(root))
    assert text.returncode == 0 and text.stdout.startswith("clean:"), text.stdout
    again = wfe_cli("rerun", run_ids[2], "--store", str(root), "--json", cwd=project.folder)
    assert {n["status"] for n in json.loads(again.stdout)["nodes"].values()} == {"cached"}


def test_gc_keeps_a_concurrent_writers_young_blobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    root = tmp_path / "store"
    store = wfe.open_store(str(root))
    wfe.run(project.workflow, store)
    old = store.blobs.put(b"left behind by a crashed writer long ago")
    os.utime(blob_file(root, old), (time.time() - 7200, time.time() - 7200))
    young = store.blobs.put(b"just written, its run record not yet")
    during: list[str] = []
    real_modified = store.blobs.modified

    def writer_meanwhile(digest: str) -> float | None:
        if not during:  # another process writes while gc is looking at blob ages
            during.append(store.blobs.put(b"written while gc runs"))
        return real_modified(digest)

    monkeypatch.setattr(store.blobs, "modified", writer_meanwhile)
    report = collect_garbage(store, keep_last=0)

    assert report.deleted_blobs == [old]
    assert store.blobs.exists(young) and store.blobs.exists(during[0])
    assert report.young_blobs_kept >= 1


def test_gc_needs_a_keep_rule_and_parses_ages(wfe_cli: Cli, tmp_path: Path) -> None:
    out = wfe_cli("gc", "--store", str(tmp_path / "s"))
    assert out.returncode == 2 and out.stderr.startswith("error:")
    assert parse_duration("90") == 90 and parse_duration("1h") == 3600 and parse_duration("2d") == 172800
    assert parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("2026-01-02") == 1767312000.0
    bad = wfe_cli("gc", "--keep-since", "last tuesday", "--store", str(tmp_path / "s"))
    assert bad.returncode == 2 and "invalid date" in bad.stderr


def test_gc_keep_since_keeps_recent_runs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = wfe.open_store(str(tmp_path / "store"))
    old = wfe.run(project.workflow, store)
    project.write(offset=3)
    new = wfe.run(project.workflow, store)
    report = collect_garbage(store, keep_since=new.manifest.started, grace=0)
    assert report.deleted_runs == [old.run_id] and list(store.runs) == [new.run_id]
    assert verify_store(store).clean


# sync ------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def counting_puts(store: wfe.Store, monkeypatch: pytest.MonkeyPatch, fail_after: int | None) -> Counter[str]:
    """Count blob copies arriving in ``store``; raise after ``fail_after`` of them."""
    counts: Counter[str] = Counter()
    real = type(store.blobs).put_new

    def put_new(data: Any) -> tuple[str, int, bool]:
        if fail_after is not None and sum(counts.values()) >= fail_after:
            raise Interrupted("connection lost")
        digest, size, created = real(store.blobs, data)
        counts[digest] += 1
        return digest, size, created

    monkeypatch.setattr(store.blobs, "put_new", put_new)
    return counts


def test_sync_interrupted_then_resumed_copies_nothing_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, stamp=True)
    source = wfe.open_store(str(tmp_path / "store"))
    for offset in (0, 1):
        project.write(offset=offset, stamp=True)
        assert wfe.run(project.workflow, source).ok
    everything = set(source.blobs)
    destination = wfe.open_store(f"memory://sync-{uuid.uuid4().hex[:8]}")

    first = counting_puts(destination, monkeypatch, fail_after=len(everything) // 2)
    with pytest.raises(Interrupted):
        sync(source, destination)
    assert sum(first.values()) == len(everything) // 2
    assert list(destination.runs) == [] and list(destination.actions) == []  # records come after their blobs

    second = counting_puts(destination, monkeypatch, fail_after=None)
    report = sync(source, destination)

    assert report.ok
    assert not set(first) & set(second)  # what had arrived was not copied again
    assert set(first) | set(second) == everything
    assert max((first + second).values()) == 1
    assert report.copied["blobs"] == len(everything) - len(first) and report.present["blobs"] == len(first)
    assert list(destination.runs) == list(source.runs)
    assert set(destination.actions) == set(source.actions)
    assert set(destination.configs) == set(source.configs) and set(destination.functions) == set(source.functions)
    third = counting_puts(destination, monkeypatch, fail_after=None)
    assert sum(sync(source, destination).copied.values()) == 0 and not third
    assert verify_store(destination).clean


def test_sync_selected_runs_copies_only_what_they_need(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    source = wfe.open_store(str(tmp_path / "store"))
    first = wfe.run(project.workflow, source)
    project.write(offset=7)
    second = wfe.run(project.workflow, source)
    destination = wfe.open_store(str(tmp_path / "copy"))

    report = sync(source, destination, runs=[second.run_id])

    assert report.ok and list(destination.runs) == [second.run_id]
    assert set(destination.blobs) == referenced(source, second.run_id)
    assert not set(destination.blobs) >= referenced(source, first.run_id)
    assert verify_store(destination).clean
    assert rerun(destination, second.run_id, force=True, verify=True, base_dir=project.folder).ok


def test_sync_skips_a_corrupt_source_blob_and_the_run_that_needs_it(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    source = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(project.workflow, source)
    bad = result.outputs("total")[0].digest
    path = blob_file(tmp_path / "store", bad)
    path.write_bytes(path.read_bytes() + b"!")
    destination = wfe.open_store(str(tmp_path / "copy"))

    report = sync(source, destination)

    assert not report.ok and any(bad in f for f in report.failures)
    assert not destination.blobs.exists(bad) and list(destination.runs) == []
    assert verify_store(destination).clean


def test_sync_reports_an_action_entry_it_cannot_read_in_the_source(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    source = wfe.open_store(str(tmp_path / "store"))
    wfe.run(project.workflow, source)
    keys = sorted(source.actions)
    damaged = tmp_path / "store" / record_path("actions", keys[0])
    damaged.write_text("{not json")
    destination = wfe.open_store(str(tmp_path / "copy"))

    report = sync(source, destination)

    assert report.failures == [f"action {keys[0]}: not readable in the source (damaged, or deleted meanwhile)"]
    assert sorted(destination.actions) == keys[1:] and report.copied["actions"] == len(keys) - 1
    assert verify_store(destination).clean


def test_sync_command_line(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    src, dst = tmp_path / "store", tmp_path / "copy"
    wfe_cli("run", str(project.workflow), "--store", str(src))
    out = wfe_cli("sync", str(src), str(dst))
    assert out.returncode == 0 and out.stdout.startswith("copied 5 blobs"), out.stdout
    out = wfe_cli("sync", str(src), str(dst), "--json")
    assert json.loads(out.stdout)["copied"] == {"blobs": 0, "configs": 0, "functions": 0, "actions": 0, "runs": 0}
    same = wfe_cli("sync", str(src), str(src))
    assert same.returncode == 2 and "same store" in same.stderr


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    pytest.importorskip("s3fs")
    from servers.s3 import s3_server

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as server:
        yield server


def test_local_to_s3_to_memory_then_offline_replay(wfe_cli: Cli, tmp_path: Path, s3: Any) -> None:
    project = make_project(tmp_path)
    local = wfe.open_store(str(tmp_path / "store"))
    first = wfe.run(project.workflow, local)
    url = s3.url(f"sync-{uuid.uuid4().hex[:8]}")
    options = [arg for key, value in s3.options.items() for arg in ("--destination-option", f"{key}={value}")]
    out = wfe_cli("sync", str(tmp_path / "store"), url, *options, env=s3.env)
    assert out.returncode == 0 and out.stdout.startswith("copied 5 blobs"), out.stdout + out.stderr
    remote = wfe.open_store(url, **s3.options)
    offline = wfe.open_store(f"memory://offline-{uuid.uuid4().hex[:8]}")
    assert sync(remote, offline).ok
    outcome = rerun(offline, first.run_id, force=True, verify=True, base_dir=project.folder)
    assert outcome.ok and len(outcome.compared) == len(first.manifest.nodes)
    assert verify_store(remote).clean


# progress --------------------------------------------------------------------------------------


def test_progress_is_silent_off_a_terminal() -> None:
    progress = terminal_progress()
    assert type(progress) is Progress  # pytest captures stderr: not a terminal
    with progress:
        progress.phase("x", 2)
        progress.advance()


def test_gc_keeps_a_live_nodes_scratch_folder_and_removes_a_dead_ones_at_once(tmp_path: Path) -> None:
    """A node's scratch files are kept however old while its process lives; a killed node's go, folder and all."""
    import sys

    from wfe.engine._host import hostname

    store = wfe.open_store(str(tmp_path / "store"))
    store.blobs.put(b"make the folders")
    tmp = tmp_path / "store" / "tmp"
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, check=True).stdout)
    files = {
        "live": tmp / f"node_{os.getpid()}_0a1b2c3d_{hostname()}" / "written-long-ago.bin",
        "dead": tmp / f"node_{dead_pid}_0a1b2c3d_{hostname()}" / "sub" / "written-just-now.bin",
        "elsewhere-old": tmp / "node_123_0a1b2c3d_another-host" / "old.bin",  # cannot tell: the age decides
        "elsewhere-new": tmp / "node_124_0a1b2c3d_another-host" / "new.bin",
    }
    for label, path in files.items():
        path.parent.mkdir(parents=True)
        path.write_bytes(label.encode())
        if label != "dead" and label != "elsewhere-new":
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert collect_garbage(store, keep_last=1, grace=3600, dry_run=True).temporary_removed == 2
    assert all(path.exists() for path in files.values())
    assert collect_garbage(store, keep_last=1, grace=3600).temporary_removed == 2
    assert {label for label, path in files.items() if path.exists()} == {"live", "elsewhere-new"}
    assert not files["dead"].parent.parent.exists()  # the dead node's folder goes whole


def test_gc_removes_staging_files_of_dead_writers_only_after_the_grace_period(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    store.blobs.put(b"make the folders")
    stale = tmp_path / "store" / "tmp" / "put-killed-writer"
    fresh = tmp_path / "store" / "tmp" / "put-live-writer"
    stale.write_bytes(b"half a blob")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    report = collect_garbage(store, keep_last=1, grace=3600)
    assert report.temporary_removed == 1
    assert not stale.exists() and fresh.exists()


LIVE_FUNCTIONS = """
import os, time
from pathlib import Path
import wfe

@wfe.function(outputs="application/json")
def numbers():
    return [1, 2, 3]

@wfe.function(inputs=["application/json"], outputs="text/plain")
def slow(values, *, round, wait):
    if wait:
        Path("started").write_text("")
        deadline = time.monotonic() + 60
        while not Path("go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return f"round {round}: {sum(values)}"

@wfe.function(inputs=["application/json", "text/plain"], outputs="text/plain")
def report(values, text):
    return f"{text} of {values}"
"""


def _live_workflow(folder: Path, round: int, wait: bool) -> Path:
    workflow = folder / "live.json"
    workflow.write_text(json.dumps({
        "name": "live", "modules": ["live_functions"],
        "nodes": [{"id": "numbers", "function": "numbers"},
                  {"id": "slow", "function": "slow", "config": {"round": round, "wait": wait}},
                  {"id": "report", "function": "report"}],
        "edges": [{"source": "numbers", "target": "slow"}, {"source": "slow", "target": "report"},
                  {"source": "numbers", "target": "report"}],
    }))  # fmt: skip
    return workflow


def test_gc_never_deletes_a_cached_blob_a_live_run_took_as_a_hit(wfe_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "live_functions.py").write_text(LIVE_FUNCTIONS)
    root = tmp_path / "store"
    first = json.loads(wfe_cli("run", str(_live_workflow(tmp_path, 1, False)), "--store", str(root), "--json").stdout)
    numbers = first["nodes"]["numbers"]["outputs"][0]["digest"]
    long_ago = time.time() - 7200
    for path in root.rglob("*"):
        os.utime(path, (long_ago, long_ago))  # all of it older than any grace period

    second = subprocess.Popen(
        [sys.executable, "-m", "wfe", "run", str(_live_workflow(tmp_path, 2, True)), "--store", str(root), "--json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the second run took `numbers` from the cache and is inside `slow`
        assert (tmp_path / "started").exists()
        store = wfe.open_store(str(root))
        report = collect_garbage(store, keep_last=1, grace=0)
        assert report.deleted_runs == [first["run_id"]]
        assert store.blobs.exists(numbers)
        assert len(report.live_runs) == 1
    finally:
        (tmp_path / "go").write_text("")
        out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    result = json.loads(out)
    assert result["nodes"]["numbers"]["status"] == "cached" and result["nodes"]["report"]["status"] == "ran"
    assert wfe_cli("verify", "--store", str(root)).returncode == 0


def test_verify_finds_an_action_entry_edited_to_name_another_blob_and_repair_drops_it(
    wfe_cli: Cli, tmp_path: Path
) -> None:
    project = make_project(tmp_path)
    root = tmp_path / "store"
    first = json.loads(wfe_cli("run", str(project.workflow), "--store", str(root), "--json").stdout)
    store = wfe.open_store(str(root))
    key = store.runs.get(first["run_id"]).nodes["total"].action_key
    assert key is not None
    entry = store.actions.lookup(key)
    assert entry is not None
    planted = store.blobs.put(b"999")  # a valid blob, just not what `total` computed
    forged = entry.model_copy(update={"outputs": [entry.outputs[0].model_copy(update={"digest": planted, "size": 3})]})
    store.actions.put(key, forged, overwrite=True)

    found = wfe_cli("verify", "--store", str(root))
    assert found.returncode == 1
    assert f"damaged action {key} (its outputs are not what any run that used it recorded)" in found.stdout
    assert wfe_cli("verify", "--store", str(root), "--repair").returncode == 0
    again = json.loads(wfe_cli("run", str(project.workflow), "--store", str(root), "--json").stdout)
    assert again["nodes"]["total"]["status"] == "ran"
    assert again["nodes"]["total"]["outputs"] == first["nodes"]["total"]["outputs"]
    assert wfe_cli("verify", "--store", str(root)).returncode == 0


def test_a_put_of_a_blob_already_there_makes_it_young_so_gc_keeps_it(wfe_cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "store"
    source = tmp_path / "data.bin"
    source.write_bytes(b"stored two hours ago, put again now")
    first = wfe_cli("put", str(source), "--store", str(root))
    digest = first.stdout.strip()
    long_ago = time.time() - 7200
    os.utime(blob_file(root, digest), (long_ago, long_ago))

    again = wfe_cli("put", str(source), "--store", str(root))
    assert again.returncode == 0 and again.stdout.strip() == digest
    report = json.loads(wfe_cli("gc", "--keep-last", "0", "--store", str(root), "--json").stdout)

    assert report["deleted_blobs"] == [] and report["young_blobs_kept"] == 1
    assert wfe.open_store(str(root)).blobs.get(digest) == source.read_bytes()
