"""The S3 backend against a real S3 API server process on 127.0.0.1."""

from __future__ import annotations

import io
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

import pytest
from wfe_s3 import S3IO, MiB

import wfe
from wfe.store._digest import digest_of
from wfe.store._paths import blob_path

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from servers.s3 import FAKE_SECRET, S3Server, s3_server

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as running:
        yield running


@pytest.fixture
def store(server: S3Server) -> wfe.Store:
    return wfe.open_store(server.url(f"t-{uuid.uuid4().hex[:8]}"), **server.options)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Multipart from 5 MiB on, so multipart paths run on small blobs."""
    monkeypatch.setattr(S3IO, "part_size", 5 * MiB)
    return 5 * MiB


def _key(store: wfe.Store, digest: str) -> str:
    return store.io.path(blob_path(digest))


def _uploads(server: S3Server) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = (
        server.filesystem().call_s3("list_multipart_uploads", Bucket=server.bucket).get("Uploads", [])
    )
    return uploads


def test_round_trip_single_put(server: S3Server, store: wfe.Store) -> None:
    digest = store.blobs.put(b"hello s3")
    assert store.blobs.get(digest) == b"hello s3"
    assert server.filesystem().cat_file(_key(store, digest)) == b"hello s3"
    assert store.blobs.put_new(b"hello s3")[2] is False


def test_s3a_is_the_same_backend(server: S3Server, store: wfe.Store) -> None:
    digest = store.blobs.put(b"through s3a")
    again = wfe.open_store(store.url.replace("s3://", "s3a://", 1), **server.options)
    assert isinstance(again.io, S3IO) and again.blobs.get(digest) == b"through s3a"


def test_round_trip_multipart_stream(server: S3Server, store: wfe.Store, small_parts: int) -> None:
    data = os.urandom(2 * small_parts + 12345)
    server.reset_requests()
    digest, size, created = store.blobs.put_new(io.BytesIO(data))
    assert (digest, size, created) == (digest_of(data), len(data), True)
    parts = server.count("PUT", query=None) - server.count("PUT", query="")
    assert parts == 3  # three upload_part calls, no single PUT
    with store.blobs.open(digest) as handle:
        assert handle.read() == data
    assert server.filesystem().cat_file(_key(store, digest)) == data
    assert _uploads(server) == []


def test_bytes_larger_than_a_part_go_multipart(server: S3Server, store: wfe.Store, small_parts: int) -> None:
    data = os.urandom(small_parts + 1)
    server.reset_requests()
    digest = store.blobs.put(data)
    assert server.count("POST", query="uploads") == 1
    assert store.blobs.get(digest) == data


def test_empty_blob_reads_as_empty(server: S3Server, store: wfe.Store) -> None:
    digest = store.blobs.put(b"")
    assert store.blobs.get(digest) == b""
    with store.blobs.open(digest) as handle:
        assert handle.read() == b""
    assert store.io.read_bytes(blob_path(digest)) == b""


def test_exclusive_write_never_overwrites(server: S3Server, store: wfe.Store) -> None:
    rel = "records/one"
    assert store.io.write_bytes(rel, b"first", exclusive=True) is True
    assert store.io.write_bytes(rel, b"second", exclusive=True) is False
    assert store.io.read_bytes(rel) == b"first"
    assert store.io.write_bytes(rel, b"third") is True
    assert store.io.read_bytes(rel) == b"third"


def test_conditional_complete_refuses_an_existing_key(
    server: S3Server, store: wfe.Store, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers racing: the second completes after the first and is refused by If-None-Match."""
    data = os.urandom(small_parts + 10)
    digest = digest_of(data)
    raw = server.filesystem()
    raw.pipe_file(_key(store, digest), data)
    monkeypatch.setattr(S3IO, "exists", lambda self, rel: False)  # as if the HEAD ran before the other publish
    assert store.io.write_bytes(blob_path(digest), b"x" * (small_parts + 10), exclusive=True) is False
    assert raw.cat_file(_key(store, digest)) == data
    assert _uploads(server) == []


def test_failed_part_aborts_the_upload(
    server: S3Server, store: wfe.Store, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * small_parts)
    fs = store.io.fs
    real_call = fs._call_s3
    calls = {"parts": 0}

    async def failing_call(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "upload_part":
            calls["parts"] += 1
            if calls["parts"] == 2:
                raise ConnectionResetError("connection reset by peer")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", failing_call)
    with pytest.raises(wfe.StoreError):
        store.blobs.put(io.BytesIO(data))
    monkeypatch.undo()
    assert not server.filesystem().exists(_key(store, digest_of(data)))
    assert _uploads(server) == []


def test_delete_reports_missing(store: wfe.Store) -> None:
    digest = store.blobs.put(b"gone soon")
    assert store.blobs.delete(digest) is True
    assert store.blobs.delete(digest) is False
    with pytest.raises(wfe.BlobNotFoundError):
        store.blobs.get(digest)


def test_iterates_its_own_prefix_only(server: S3Server) -> None:
    first = wfe.open_store(server.url("iter-a"), **server.options)
    second = wfe.open_store(server.url("iter-b"), **server.options)
    digest = first.blobs.put(b"only in a")
    second.blobs.put(b"only in b")
    assert list(first.blobs) == [digest]


def test_tampered_object_fails_verification(server: S3Server, store: wfe.Store) -> None:
    digest = store.blobs.put(b"original bytes")
    server.filesystem().pipe_file(_key(store, digest), b"tampered bytes")
    with pytest.raises(wfe.IntegrityError):
        store.blobs.get(digest)
    with pytest.raises(wfe.IntegrityError), store.blobs.open(digest) as handle:
        handle.read()


def test_options_map_to_s3fs() -> None:
    options = S3IO.filesystem_options(
        {"endpoint": "http://127.0.0.1:9", "region": "eu-west-1", "aws_access_key_id": "AKIAFAKE",
         "secret": "fake", "anon": "false", "addressing_style": "path"}
    )  # fmt: skip
    assert options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}
    assert options["key"] == "AKIAFAKE" and options["anon"] is False
    assert options["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert options["use_listings_cache"] is False and options["skip_instance_cache"] is False
    with pytest.raises(wfe.StoreURLError, match="unknown S3 store option 'endpoitn'"):
        S3IO.filesystem_options({"endpoitn": "x"})
    with pytest.raises(wfe.StoreURLError, match="anon"):
        S3IO.filesystem_options({"anon": "maybe"})


def test_url_without_bucket_is_rejected() -> None:
    with pytest.raises(wfe.StoreURLError):
        wfe.open_store("s3://", endpoint_url="http://127.0.0.1:9")


def test_secrets_stay_out_of_reprs(server: S3Server, store: wfe.Store) -> None:
    shown = repr(store) + repr(store.io) + repr(store.blobs)
    assert FAKE_SECRET not in shown and server.options["key"] not in shown


def test_missing_bucket_is_one_line(server: S3Server, tmp_path: Path) -> None:
    result = _cli(server, "run", str(EXAMPLE), "--store", "s3://no-such-bucket/x", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: S3 bucket 'no-such-bucket' at {server.endpoint_url} does not exist"
    ]


def test_bad_credentials_are_one_line(tmp_path: Path) -> None:
    with s3_server(check_keys=True) as strict:
        result = _cli(strict, "run", str(EXAMPLE), "--store", strict.url("x"), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "access denied" in lines[0]
    assert FAKE_SECRET not in result.stderr


def _cli(server: S3Server, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.env}
    env.pop("WFE_STORE", None)
    env.pop("WFE_CACHE", None)
    return subprocess.run(
        [sys.executable, "-m", "wfe", *args, "--store-option", f"endpoint_url={server.endpoint_url}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_example_workflow_end_to_end(server: S3Server, tmp_path: Path) -> None:
    """``wfe run … --store s3://…`` twice: every node runs, then every node is cached."""
    url = server.url(f"example-{uuid.uuid4().hex[:8]}")
    first = _cli(server, "run", str(EXAMPLE), "--store", url, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    first_nodes = json.loads(first.stdout)["nodes"]
    assert {node["status"] for node in first_nodes.values()} <= {"ran", "cached"}
    assert any(node["status"] == "ran" for node in first_nodes.values())
    second = _cli(server, "run", str(EXAMPLE), "--store", url, "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    second_nodes = json.loads(second.stdout)["nodes"]
    computed = [node_id for node_id, node in first_nodes.items() if node["status"] == "ran"]
    assert {second_nodes[node_id]["status"] for node_id in computed} == {"cached"}
    assert {n: v["outputs"] for n, v in second_nodes.items()} == {n: v["outputs"] for n, v in first_nodes.items()}
    store = wfe.open_store(url, **server.options)
    for node in second_nodes.values():
        for output in node["outputs"]:
            assert len(store.blobs.get(output["digest"])) == output["size"]


_KILLED_WRITER = textwrap.dedent(
    """
    import io, os, sys, time
    import wfe
    from wfe.store._digest import digest_of
    from wfe_s3 import S3IO

    S3IO.part_size = 5 * 1024 * 1024
    data = os.urandom(4 * S3IO.part_size)
    store = wfe.open_store(sys.argv[1], endpoint_url=sys.argv[2], key="wfe-test-access-key", secret="x")
    real_call = store.io.fs._call_s3
    sent = []

    async def call(method, *args, **kwargs):
        result = await real_call(method, *args, **kwargs)
        if method == "upload_part":
            sent.append(1)
            if len(sent) == 2:  # the upload is well under way: report, then stall until killed
                print(digest_of(data), flush=True)
                time.sleep(600)
        return result

    store.io.fs._call_s3 = call
    store.blobs.put(io.BytesIO(data))
    """
)


def test_killed_put_leaves_nothing_behind(server: S3Server, tmp_path: Path) -> None:
    url = server.url(f"killed-{uuid.uuid4().hex[:8]}")
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    env = {**os.environ, **server.env}
    writer = subprocess.Popen(
        [sys.executable, str(script), url, server.endpoint_url], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert writer.stdout is not None
        digest = writer.stdout.readline().strip()
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert wfe.store._digest.is_digest(digest)
    store = wfe.open_store(url, **server.options)
    assert not server.filesystem().exists(_key(store, digest))
    assert not store.blobs.exists(digest)
    abandoned = [u for u in _uploads(server) if u["Key"].startswith(store.io.prefix + "/")]
    assert len(abandoned) == 1
    assert isinstance(store.io, S3IO)
    assert store.io.abort_stale_uploads(older_than=0) == 1
    assert [u for u in _uploads(server) if u["Key"].startswith(store.io.prefix + "/")] == []
    assert store.io.abort_stale_uploads(older_than=0) == 0


_MEASURE = textwrap.dedent(
    """
    import json, os, sys, time
    import wfe
    from wfe_s3 import S3IO

    size = int(sys.argv[3])
    block = os.urandom(1024 * 1024)

    class Source:
        # size bytes made on the fly, so the source itself holds one block
        def __init__(self):
            self.left = size
        def read(self, n=-1):
            n = self.left if n is None or n < 0 else min(n, self.left)
            out = (block * (n // len(block) + 1))[:n]
            self.left -= n
            return out

    store = wfe.open_store(sys.argv[1], endpoint_url=sys.argv[2], key="wfe-test-access-key", secret="x")
    store.blobs.put(b"warm up")
    def status(field):
        # VmHWM is this program's own high-water mark; ru_maxrss would carry over the
        # parent's from before exec
        with open('/proc/self/status') as lines:
            return next(int(l.split()[1]) * 1024 for l in lines if l.startswith(field + ':'))

    baseline = status('VmRSS')
    started = time.perf_counter()
    digest = store.blobs.put(Source())
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    read = 0
    with store.blobs.open(digest) as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            read += len(chunk)
    get_s = time.perf_counter() - started
    peak = status('VmHWM')
    print(json.dumps({"size": size, "read": read, "baseline": baseline, "peak": peak,
                      "part_size": S3IO.part_size, "max_concurrency": S3IO.max_concurrency,
                      "put_s": put_s, "get_s": get_s}))
    """
)


def measure_put_get(server: S3Server, size: int, tmp_path: Path) -> dict[str, Any]:
    """Put and stream back ``size`` bytes in a fresh process; its peak RSS and baseline."""
    script = tmp_path / "measure.py"
    script.write_text(_MEASURE)
    url = server.url(f"memory-{uuid.uuid4().hex[:8]}")
    result = subprocess.run(
        [sys.executable, str(script), url, server.endpoint_url, str(size)],
        capture_output=True, text=True, env={**os.environ, **server.env}, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    measured: dict[str, Any] = json.loads(result.stdout)
    return measured


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_1gib_blob_memory_stays_flat(tmp_path: Path) -> None:
    """Put 1 GiB and stream it back: the writing process grows by less than 150 MiB (about 95 here)."""
    with s3_server() as own:  # its own server, so the emulator's copy is freed afterwards
        measured = measure_put_get(own, 1024 * MiB, tmp_path)
    assert measured["read"] == 1024 * MiB
    assert measured["peak"] - measured["baseline"] < 150 * MiB, measured


def test_a_put_of_a_blob_already_there_renews_its_age(store: wfe.Store) -> None:
    digest = store.blobs.put(b"put once, then again later")
    before = store.blobs.modified(digest)
    assert before is not None
    time.sleep(1.1)  # S3 keeps modification times to the second
    fresh = wfe.open_store(store.url, **store.options)  # another process's store: it has not put this blob
    assert fresh.blobs.put(b"put once, then again later") == digest
    after = fresh.blobs.modified(digest)
    assert after is not None and after > before
    assert fresh.blobs.get(digest) == b"put once, then again later"
