"""Capabilities found out, not assumed: the probe at opening, and the generic path using what it found.

The built-in backends declare theirs without a request (memory, local disk;
S3 probes its one capability itself). A plain fsspec filesystem is probed:
fake filesystems here break one assumption each (``mv`` that refuses an
existing target, as WebDAV with ``Overwrite: F``; fsspec's generic ``mv``,
a copy and a delete; a client that mixes up requests from threads, or hangs;
writes that never replace) and the store either still stores correctly or
refuses at opening with one line.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faulty_fs
import fsspec
import pytest
from fsspec.spec import AbstractFileSystem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from conformance_tests.plugin import capability_lines
from wfe.engine._lease import supports_leases
from wfe.storage import _findings, _probe, _remember
from wfe.storage._generic import FsspecIO, OneAtATime
from wfe.store._digest import digest_of


class ProbeFS(faulty_fs.Faultless):
    """Local disk under ``base``, with the faults the options ask for.

    ``threads``: ``safe``; ``crossed`` (one shared "wire": a request from one
    thread may be answered with another's path, as a client that is not
    thread-safe does); ``hang`` (two threads inside at once never come out).
    ``writes``: ``replace``; ``refuse`` (a write to an existing object fails).
    """

    protocol = "probe-replace"

    def __init__(self, base: str, threads: str = "safe", writes: str = "replace", **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.threads, self.writes = threads, writes
        self._wire = ""
        self._inside = 0
        self._guard = threading.Lock()

    def _enter(self, path: str) -> str:
        if self.threads == "hang":
            with self._guard:
                self._inside += 1
                busy = self._inside > 1
            if busy:
                threading.Event().wait()  # a deadlock: two threads on the client's one connection
            time.sleep(0.01)  # a request takes a while, as over a network: the probe's threads meet inside
        if self.threads == "crossed":
            self._wire = path
            time.sleep(0.002)
            return self._wire
        return path

    def _leave(self) -> None:
        if self.threads == "hang":
            with self._guard:
                self._inside -= 1

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        if self.writes == "refuse" and self.exists(path):
            raise PermissionError(f"{path} exists and may not be replaced")
        if kwargs.get("mode") == "create":  # a create-if-absent write of its own: O_EXCL
            with self.open(path, "xb") as handle:
                handle.write(value)
            return
        try:
            super().pipe_file(self._enter(path), value, *args, **kwargs)
        finally:
            self._leave()

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().cat_file(self._enter(path), *args, **kwargs)
        finally:
            self._leave()


class KeepingTargetFS(ProbeFS):
    """``mv`` refuses an existing target, as WebDAV's MOVE with ``Overwrite: F`` (HTTP 412)."""

    protocol = "probe-keep"

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        if self.exists(path2):
            raise OSError(f"412 Precondition Failed: {path2} exists")
        super().mv(path1, path2, *args, **kwargs)


class CopyingFS(ProbeFS):
    """``mv`` is fsspec's generic one: a copy, then a delete (a reader can see the copy half done)."""

    protocol = "probe-copy"
    mv = AbstractFileSystem.mv


for _cls in (ProbeFS, KeepingTargetFS, CopyingFS):
    fsspec.register_implementation(str(_cls.protocol), _cls, clobber=True)


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """Each test starts as a new process would: nothing learnt about any filesystem yet."""
    _remember.forget()
    yield
    _remember.forget()


def _answers(store: wfe.Store) -> dict[str, bool | None]:
    return {row.name: row.answer for row in _findings.findings_of(store.io).rows}


def _check_stores_correctly(store: wfe.Store) -> None:
    """Blobs from threads at once, an action result kept then rewritten, a run record put twice."""
    from _races import result_of

    values = [f"value {n}".encode() * (n + 1) for n in range(12)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(store.blobs.put, values))
    assert [store.blobs.get(d) for d in digests] == values
    key = digest_of(b"an action")
    assert store.actions.put(key, result_of(1)) is True
    assert store.actions.put(key, result_of(2)) is False
    assert store.actions.put(key, result_of(3), overwrite=True) is True
    assert store.actions.get(key).function == "writer-3"


def test_memory_and_local_disk_declare_theirs_without_a_request(tmp_path: Path) -> None:
    memory = wfe.open_store("memory://declared")
    assert _answers(memory) == {"create_if_absent": True, "whole_writes": True, "thread_safe": True,
                                "shared": False, "complete_listings": True}  # fmt: skip
    local = wfe.open_store(str(tmp_path / "store"))
    assert _answers(local) == {"create_if_absent": True, "whole_writes": True, "thread_safe": True,
                               "shared": True, "complete_listings": True}  # fmt: skip
    assert not (tmp_path / "store").exists()  # nothing written: declared, not probed
    lines = capability_lines(memory.io)
    assert lines[:2] == ["capabilities:",
                         "  capability                      | found   | how found"]  # fmt: skip
    assert "  sharing between processes       | no      | declared by MemoryIO: in this process's memory" in lines
    assert (
        lines[-1] == "lacks sharing between processes: only this process sees it: no process or distributed executors"
    )
    assert [line for line in capability_lines(local.io) if not line.startswith(" ")] == [
        "capabilities:"
    ]  # local disk lacks nothing


def test_on_s3_the_table_shows_the_probed_create_if_absent_write() -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from servers.s3 import s3_server
    from wfe_s3 import _probe as s3_probe

    s3_probe.forget()
    with s3_server() as server:
        store = wfe.open_store(server.url("table"), **server.options)
        assert _answers(store) == {"create_if_absent": True, "whole_writes": True, "thread_safe": True,
                                   "shared": True, "complete_listings": True}  # fmt: skip
        lines = capability_lines(store.io)
        assert any(line.startswith("  create-if-absent writes") and "probed at opening" in line for line in lines)
        assert not [line for line in lines if line.startswith(("lacks", "may lack"))]
    s3_probe.forget()


def test_a_plain_local_folder_is_probed_and_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_probe, "LISTING_BUDGET", 60.0)  # cheap here, however busy the machine is
    url = f"probe-replace://store?base={tmp_path}"
    store = wfe.open_store(url)
    assert isinstance(store.io, FsspecIO) and store.io.findings.source == "probed"
    found = store.io.findings
    assert _answers(store) == {
        "create_if_absent": True,  # pipe_file(mode="create"), by O_EXCL
        "replaces": True,
        "whole_writes": False,  # a file being written is there before it is closed
        "rename_overwrites": True,
        "rename_atomic": True,  # os.rename
        "thread_safe": True,
        "shared": True,
        "complete_listings": True,  # cheap here: 1,001 objects written and listed
    }
    assert found.get("create_if_absent").via == "pipe_file"  # type: ignore[union-attr]
    # A create that shows its object half-written is not a create-if-absent write a record can rely on.
    assert not store.io.conditional_create and not supports_leases(store.io)
    assert store.io._by_rename and store.io.whole_objects is True  # published by an atomic rename
    assert not list((tmp_path / "store" / "tmp").iterdir())  # the probe's keys are gone
    record = json.loads((tmp_path / "store" / _remember.RECORD).read_text())
    assert record["filesystem"].endswith("ProbeFS") and len(record["findings"]) == len(_findings.CAPABILITIES)

    assert wfe.open_store(f"probe-replace://other?base={tmp_path}").io.findings.source == "memo"  # type: ignore[attr-defined]
    _remember.forget()
    assert wfe.open_store(url).io.findings == found.__class__(found.rows, found.probed, "record")  # type: ignore[attr-defined]


def test_listings_past_a_page_are_not_probed_where_that_would_cost_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_probe, "LISTING_BUDGET", 1e-9)
    row = wfe.open_store(f"probe-replace://store?base={tmp_path}").io.findings.get("complete_listings")  # type: ignore[attr-defined]
    assert row.answer is None and row.how.startswith("not probed: 1,001 writes would take about")
    assert not list((tmp_path / "store" / "tmp").iterdir())


def test_a_listing_that_stops_at_a_page_is_found_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_probe, "LISTING_BUDGET", 60.0)
    store = wfe.open_store(f"faulty-long-listing://store?base={tmp_path}")
    row = store.io.findings.get("complete_listings")  # type: ignore[attr-defined]
    assert (row.answer, row.how) == (False, "probed: 1,001 objects written, 1,000 listed")
    assert any(line.startswith("lacks listings complete past one page") for line in capability_lines(store.io))


@pytest.mark.parametrize(
    "record",
    [
        b"{not json",
        b"[]",
        json.dumps({"format": 1, "backend": "fsspec", "filesystem": "elsewhere.FS", "findings": []}).encode(),
        b"",
    ],
)
def test_a_garbled_or_foreign_record_means_a_new_probe(tmp_path: Path, record: bytes) -> None:
    (tmp_path / "store" / "capabilities").mkdir(parents=True)
    (tmp_path / "store" / _remember.RECORD).write_bytes(record)
    store = wfe.open_store(f"probe-replace://store?base={tmp_path}")
    assert store.io.findings.source == "probed"  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "store" / _remember.RECORD).read_text())["format"] == _remember.FORMAT


def test_an_old_record_is_probed_again(tmp_path: Path) -> None:
    url = f"probe-replace://store?base={tmp_path}"
    wfe.open_store(url)
    path = tmp_path / "store" / _remember.RECORD
    record = json.loads(path.read_text())
    record["probed"] -= _remember.MAX_AGE + 60
    path.write_text(json.dumps(record))
    _remember.forget()
    assert wfe.open_store(url).io.findings.source == "probed"  # type: ignore[attr-defined]


def test_a_rename_that_keeps_its_target_is_found_and_not_relied_on(tmp_path: Path) -> None:
    store = wfe.open_store(f"probe-keep://store?base={tmp_path}")
    row = store.io.findings.get("rename_overwrites")  # type: ignore[attr-defined]
    assert row.answer is False and "412 Precondition Failed" in row.how
    assert not store.io._by_rename  # type: ignore[attr-defined]
    _check_stores_correctly(store)  # every record rewrite works: written in place, not moved onto
    assert store.io.whole_objects is False  # type: ignore[attr-defined]
    assert any(line.startswith("lacks objects that appear whole (written in place")
               for line in capability_lines(store.io))  # fmt: skip


def test_fsspecs_generic_mv_is_known_to_copy_and_not_used(tmp_path: Path) -> None:
    store = wfe.open_store(f"probe-copy://store?base={tmp_path}")
    row = store.io.findings.get("rename_atomic")  # type: ignore[attr-defined]
    assert row.answer is False and "copies, then deletes" in row.how
    assert not store.io._by_rename  # type: ignore[attr-defined]
    _check_stores_correctly(store)


def test_a_client_that_mixes_up_threads_is_used_one_request_at_a_time(tmp_path: Path) -> None:
    store = wfe.open_store(f"probe-replace://store?base={tmp_path}&threads=crossed")
    row = store.io.findings.get("thread_safe")  # type: ignore[attr-defined]
    assert row.answer is False and "with 4 threads at once" in row.how  # wrong bytes, or a file not found
    assert isinstance(store.io.fs, OneAtATime) and store.io.concurrency == 1
    _check_stores_correctly(store)  # four threads putting blobs: every one whole and right
    assert "lacks safety from threads" in "\n".join(capability_lines(store.io))


def test_a_client_that_hangs_from_threads_never_holds_the_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_probe, "THREAD_DEADLINE", 1.0)
    started = time.monotonic()
    store = wfe.open_store(f"probe-replace://store?base={tmp_path}&threads=hang")
    assert time.monotonic() - started < 10
    row = store.io.findings.get("thread_safe")  # type: ignore[attr-defined]
    assert row.answer is False and "did not finish within 1 s" in row.how
    assert isinstance(store.io.fs, OneAtATime)
    _check_stores_correctly(store)  # the store's own filesystem never sees two threads at once


def test_writes_that_never_replace_are_refused_at_opening_in_one_line(tmp_path: Path, wfe_cli: Any) -> None:
    url = f"probe-replace://store?base={tmp_path}&writes=refuse"
    with pytest.raises(wfe.StoreError, match="cannot hold a wfe store: a write does not replace an object"):
        wfe.open_store(url)
    _remember.forget()
    done = wfe_cli("runs", "--store", url)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "rewrites run records" in done.stderr


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    protocol=st.sampled_from(["probe-replace", "probe-keep", "probe-copy"]),
    threads=st.sampled_from(["safe", "crossed"]),
)
def test_whatever_the_probe_finds_the_store_stores_correctly(tmp_path: Path, protocol: str, threads: str) -> None:
    base = tmp_path / f"{protocol}-{threads}-{time.monotonic_ns()}"
    store = wfe.open_store(f"{protocol}://store?base={base}&threads={threads}")
    io: Any = store.io
    assert io._by_rename == (protocol == "probe-replace")  # only an mv seen to replace and known not to copy
    assert isinstance(io.fs, OneAtATime) == (threads == "crossed")
    _check_stores_correctly(store)
