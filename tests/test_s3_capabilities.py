"""S3 capabilities probed, not assumed: does the endpoint refuse a second create-only PUT?

Against moto directly (which honours ``If-None-Match``) and through a loopback
proxy that strips the header on its way to moto, as a server that ignores it
(s3rver, older MinIO and Ceph releases) would.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wfe
from wfe.engine._lease import supports_leases
from wfe.store._digest import digest_of
from wfe.store._manifest import ActionResult

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from _faulty_proxy import FaultyProxy, _Handler
from servers.s3 import S3Server, s3_server
from wfe_s3 import S3IO, _probe

from conformance_tests.plugin import capability_lines, lacking_lines

LACKS = (
    "lacks create-if-absent writes (the endpoint ignores If-None-Match): "
    "first-result-wins and leases are not held on this store"
)


class _WithoutIfNoneMatch(_Handler):
    """Forwards each request with its If-None-Match header taken out."""

    def _forward(self) -> None:
        del self.headers["If-None-Match"]
        super()._forward()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class IgnoringProxy(FaultyProxy):
    """An endpoint in front of moto that ignores ``If-None-Match``: a second create-only PUT replaces the object."""

    handler = _WithoutIfNoneMatch


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as running:
        yield running


@pytest.fixture(scope="module")
def proxy(server: S3Server) -> Iterator[IgnoringProxy]:
    running = IgnoringProxy(server.endpoint_url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """Each test starts as a new process would: nothing learnt about any endpoint yet."""
    _probe.forget()
    yield
    _probe.forget()


def _prefix() -> str:
    return f"caps-{uuid.uuid4().hex[:8]}"


def _ignoring(server: S3Server, proxy: IgnoringProxy) -> dict[str, str]:
    return {**server.options, "endpoint_url": proxy.url}


def _record_key(server: S3Server, prefix: str) -> str:
    return f"{server.bucket}/{prefix}/{_probe.RECORD}"


def _record(server: S3Server, prefix: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(server.filesystem().cat_file(_record_key(server, prefix)))
    return found


def _probes(server: S3Server) -> int:
    return server.count("PUT", f"/{_probe.PROBE_PREFIX}")


def _result(name: str) -> ActionResult:
    return ActionResult(outputs=[], function=name, version="1", config=digest_of(b"{}"), inputs=[], created=1.0)


def test_on_s3_the_probe_finds_conditional_writes_and_later_opens_read_the_record(server: S3Server) -> None:
    prefix = _prefix()
    url = server.url(prefix)
    server.reset_requests()
    store = wfe.open_store(url, **server.options)
    assert store.io.conditional_create is True and store.io.capability_notes == {}
    assert supports_leases(store.io)
    assert capability_lines(store.io)[0] == "capabilities:" and lacking_lines(store.io) == []
    # two create-only PUTs of one fresh key, the second refused; the key deleted; the answer written down
    assert _probes(server) == 2 and server.count("DELETE", f"/{_probe.PROBE_PREFIX}") == 1
    assert not server.filesystem().find(f"{server.bucket}/{prefix}/tmp")
    record = _record(server, prefix)
    assert record["conditional_create"] is True
    assert (record["endpoint"], record["bucket"]) == (server.endpoint_url, server.bucket)

    # The same process, any prefix in the bucket: no request at all.
    server.reset_requests()
    wfe.open_store(server.url(_prefix()), **server.options)
    assert server.requests() == []

    # Another process: the bucket check and one read of the record, no probe.
    server.reset_requests()
    code = "import sys, wfe; print(wfe.open_store(sys.argv[1], endpoint_url=sys.argv[2]).io.conditional_create)"
    child = subprocess.run([sys.executable, "-c", code, url, server.endpoint_url], capture_output=True, text=True,
                           env={**os.environ, **server.env}, timeout=120)  # fmt: skip
    assert child.returncode == 0 and child.stdout.strip() == "True", child.stderr
    sent = [(r["method"], r["path"]) for r in server.requests()]
    assert sent == [("HEAD", f"/{server.bucket}"), ("GET", f"/{_record_key(server, prefix)}")]

    # What this process learnt forgotten: only the record is read again.
    _probe.forget()
    server.reset_requests()
    assert wfe.open_store(url, **server.options).io.conditional_create is True
    assert [(r["method"], r["path"]) for r in server.requests()] == [("GET", f"/{_record_key(server, prefix)}")]


def test_an_endpoint_that_ignores_if_none_match_is_found_out(
    server: S3Server, proxy: IgnoringProxy, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = _prefix()
    server.reset_requests()
    with caplog.at_level(logging.INFO, logger="wfe_s3"):
        store = wfe.open_store(server.url(prefix), **_ignoring(server, proxy))
        wfe.open_store(server.url(prefix), **_ignoring(server, proxy))  # said once per process, not per open
    assert store.io.conditional_create is False
    assert store.io.capability_notes == {"conditional_create": "the endpoint ignores If-None-Match"}
    assert type(store.io).conditional_create is True  # the instance, not the class: moto itself still claims it
    assert not supports_leases(store.io)
    assert lacking_lines(store.io) == [LACKS]
    row = "| no      | probed at opening: the endpoint ignores If-None-Match"
    lines = capability_lines(store.io)
    assert any(line.startswith("  create-if-absent writes ") and line.endswith(row) for line in lines)
    said = [r for r in caplog.records if "ignores If-None-Match" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "\n" not in said[0].getMessage() and "the later result replaces the earlier" in said[0].getMessage()
    assert _probes(server) == 2
    assert _record(server, prefix)["conditional_create"] is False

    # First result wins, one at a time: the existence check the generic path makes.
    key = digest_of(b"one action")
    assert store.actions.put(key, _result("first")) is True
    assert store.actions.put(key, _result("second")) is False
    assert store.actions.get(key).function == "first"

    # Racing puts of one key: both return, and the entry is one of theirs, whole.
    for attempt in range(8):
        key = digest_of(f"race {attempt}".encode())
        barrier = threading.Barrier(2)

        def put(name: str, key: str = key, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return bool(store.actions.put(key, _result(name)))

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            won = list(pool.map(put, ["left", "right"]))
        assert any(won)
        assert store.actions.get(key).function in {"left", "right"}

    # A blob streamed in twice is still put once (the S3 staging path checks first too).
    digest, _, created = store.blobs.put_new(io.BytesIO(b"streamed"))
    assert created and store.blobs.put_new(io.BytesIO(b"streamed")) == (digest, 8, False)


def test_a_record_is_trusted_for_a_day_then_probed_again(
    server: S3Server, proxy: IgnoringProxy, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = _prefix()
    raw = server.filesystem()

    def remember(conditional_create: bool, age: float) -> None:
        record = {"format": 1, "backend": "s3", "endpoint": proxy.url, "bucket": server.bucket,
                  "conditional_create": conditional_create, "probed": time.time() - age}  # fmt: skip
        raw.pipe_file(_record_key(server, prefix), json.dumps(record).encode())
        _probe.forget()
        server.reset_requests()

    remember(False, 60)  # a fresh record is taken at its word: no probe
    with caplog.at_level(logging.INFO, logger="wfe_s3"):
        assert wfe.open_store(server.url(prefix), **_ignoring(server, proxy)).io.conditional_create is False
    assert _probes(server) == 0
    assert [r.levelno for r in caplog.records if "ignores If-None-Match" in r.getMessage()] == [logging.INFO]

    # The server was said to refuse create-only writes, the day before yesterday: asked again, and found out.
    remember(True, _probe.MAX_AGE + 60)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wfe_s3"):
        assert wfe.open_store(server.url(prefix), **_ignoring(server, proxy)).io.conditional_create is False
    assert _probes(server) == 2
    assert [r.levelno for r in caplog.records if "ignores If-None-Match" in r.getMessage()] == [logging.WARNING]
    record = _record(server, prefix)
    assert record["conditional_create"] is False and time.time() - record["probed"] < 60


def _valid(server: S3Server, proxy: IgnoringProxy, **changes: Any) -> bytes:
    record = {"format": 1, "backend": "s3", "endpoint": proxy.url, "bucket": server.bucket,
              "conditional_create": True, "probed": time.time(), **changes}  # fmt: skip
    return json.dumps(record).encode()


RECORDS: dict[str, Any] = {
    "not JSON": lambda server, proxy: b"{conditional_create: true",
    "not UTF-8": lambda server, proxy: b"\xff\xfe\x00{",
    "a list": lambda server, proxy: b"[true]",
    "deeply nested": lambda server, proxy: b"[" * 3000 + b"]" * 3000,
    "empty": lambda server, proxy: b"",
    "another format": lambda server, proxy: _valid(server, proxy, format=2),
    "another backend": lambda server, proxy: _valid(server, proxy, backend="supabase"),
    "another endpoint": lambda server, proxy: _valid(server, proxy, endpoint=server.endpoint_url),
    "another bucket": lambda server, proxy: _valid(server, proxy, bucket="elsewhere"),
    "a string for a flag": lambda server, proxy: _valid(server, proxy, conditional_create="false"),
    "no time": lambda server, proxy: _valid(server, proxy, probed=None),
    "a time in the future": lambda server, proxy: _valid(server, proxy, probed=time.time() + 7 * 86400),
    "too large": lambda server, proxy: _valid(server, proxy, padding="x" * 10_000),
}


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_a_garbled_or_foreign_record_means_a_new_probe(server: S3Server, proxy: IgnoringProxy, kind: str) -> None:
    # Each of these records claims (or could be misread to claim) that create-only writes are refused.
    prefix = _prefix()
    server.filesystem().pipe_file(_record_key(server, prefix), RECORDS[kind](server, proxy))
    server.reset_requests()
    store = wfe.open_store(server.url(prefix), **_ignoring(server, proxy))
    assert store.io.conditional_create is False
    assert _probes(server) == 2
    record = _record(server, prefix)
    assert (record["endpoint"], record["conditional_create"]) == (proxy.url, False)


def test_a_garbled_record_on_s3_is_replaced_by_what_the_probe_finds(server: S3Server) -> None:
    prefix = _prefix()
    server.filesystem().pipe_file(_record_key(server, prefix), b"\x00garbage")
    assert wfe.open_store(server.url(prefix), **server.options).io.conditional_create is True
    assert _record(server, prefix)["conditional_create"] is True


def test_a_probe_that_cannot_write_claims_nothing_and_opens_all_the_same(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = S3IO._put_object

    def read_only(self: S3IO, rel: str, data: bytes, *, exclusive: bool) -> bool:
        if rel.startswith(("tmp/", "capabilities/")):
            raise wfe.StoreError(f"write {rel!r} failed: Access Denied")
        return bool(real(self, rel, data, exclusive=exclusive))

    monkeypatch.setattr(S3IO, "_put_object", read_only)
    prefix = _prefix()
    store = wfe.open_store(server.url(prefix), **server.options)
    assert store.io.conditional_create is False
    assert store.io.capability_notes["conditional_create"].startswith("the probe failed: StoreError: write")
    assert not server.filesystem().exists(_record_key(server, prefix))  # the next process asks again


def test_a_refusal_the_client_reads_as_an_error_is_not_relied_on(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    fs = wfe.open_store(server.url(_prefix()), **server.options).io.fs  # the filesystem every store here shares
    _probe.forget()
    real = fs._call_s3

    async def without_condition(method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await real(method, *args, **kwargs)
        except FileExistsError:
            # HTTP 412 without the <Condition> element S3 adds, as some servers answer: s3fs reads it as an error.
            answer = {"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions you "
                                "specified did not hold"}, "ResponseMetadata": {"HTTPStatusCode": 412}}  # fmt: skip
            raise translate_boto_error(ClientError(answer, "PutObject")) from None

    monkeypatch.setattr(fs, "_call_s3", without_condition)
    prefix = _prefix()
    store = wfe.open_store(server.url(prefix), **server.options)
    assert store.io.conditional_create is False  # a duplicate put would fail, not return False, if it were relied on
    assert "HTTP 412 that does not name If-None-Match" in store.io.capability_notes["conditional_create"]
    assert store.blobs.put_new(b"twice")[2] is True and store.blobs.put_new(b"twice")[2] is False
    assert not server.filesystem().exists(_record_key(server, prefix))


def test_gc_verify_and_sync_leave_the_record_alone(server: S3Server, tmp_path: Path) -> None:
    from wfe.ops._gc import collect_garbage
    from wfe.ops._sync import sync
    from wfe.ops._verify import verify_store

    prefix = _prefix()
    store = wfe.open_store(server.url(prefix), **server.options)
    store.blobs.put(b"unreferenced")
    report = collect_garbage(store, keep_last=0, grace=0)
    assert len(report.deleted_blobs) == 1
    assert _record(server, prefix)["conditional_create"] is True  # not taken for garbage
    assert verify_store(store).clean
    copy = wfe.open_store(str(tmp_path / "copy"))
    assert sync(store, copy).ok
    assert not [p for p in (tmp_path / "copy").rglob("*") if "capabilit" in p.name]  # another store probes its own


@pytest.mark.slow
def test_check_store_says_what_the_server_lacks_in_one_line(
    server: S3Server, proxy: IgnoringProxy, tmp_path: Path, wfe_cli: Any
) -> None:
    options = [f"--store-option={name}={value}" for name, value in _ignoring(server, proxy).items()]
    # Only the properties that rest on create-if-absent writes: the whole suite takes minutes through the proxy.
    only = ["-k", "first_result_wins or concurrent_action_puts"]
    done = wfe_cli("check-store", server.url(_prefix()), *options, *only)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "capabilities:"
    assert [line for line in lines if line.startswith("lacks")] == [LACKS]
    assert any(line.startswith("actions") and " ok " in line and "2 skipped" in line for line in lines), done.stdout
    assert f"  skipped 2: the backend {LACKS}" in lines, done.stdout  # the properties that rest on it, and why
