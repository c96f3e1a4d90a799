"""Transient and fatal faults between wfe and a loopback S3 server: retried, or one clear error and a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import wfe

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from _faulty_proxy import KINDS, FaultyProxy, plain_http_server, silent_server
from servers.s3 import S3Server, s3_server
from test_crash_safety import WORKFLOW, check_consistent


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as running:
        yield running


@pytest.fixture
def proxy(server: S3Server) -> Iterator[FaultyProxy]:
    with FaultyProxy(server.endpoint_url, delay=0.5, downtime=1.5) as running:
        yield running


def small_workflow(folder: Path) -> Path:
    """The crash workflow with a 10 MiB output (a multipart upload) and a 3 MiB one."""
    document = yaml.safe_load(WORKFLOW.read_text())
    for node in document["nodes"]:
        if node["id"] == "a":
            node["config"] = {"seed": 1, "mib": 10}
        if node["id"] == "b":
            node["config"] = {"seed": 2, "mib": 3}
    (folder / "crash_functions.py").write_text((WORKFLOW.parent / "crash_functions.py").read_text())
    path = folder / "workflow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def digests(result: dict[str, object] | wfe.RunResult) -> dict[str, list[str]]:
    if isinstance(result, wfe.RunResult):
        result = result.to_json()
    nodes = result["nodes"]
    assert isinstance(nodes, dict)
    return {n: [o["digest"] for o in info["outputs"]] for n, info in nodes.items()}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every in-process run: a module is imported from one place only."""
    return small_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def reference(workflow: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    result = wfe.run(workflow, str(tmp_path_factory.mktemp("reference") / "store"))
    assert result.ok
    return digests(result)


@pytest.mark.slow
def test_transient_faults_are_retried(
    server: S3Server, proxy: FaultyProxy, workflow: Path, reference: dict[str, list[str]]
) -> None:
    proxy.configure(every=3, restart_after=25)
    options = {**server.options, "endpoint_url": proxy.url}
    store = wfe.open_store(server.url(f"faults-{uuid.uuid4().hex[:8]}"), **options)
    result = wfe.run(workflow, store)
    counts = dict(proxy.injected)
    print(f"faults injected and survived over {proxy.requests} requests: {counts}")
    assert result.ok, result.to_json()
    assert digests(result) == reference
    for kind in (*KINDS, "restart"):
        assert counts.get(kind, 0) > 0, kind
    proxy.configure()  # no more faults: check what landed, through the proxy
    check_consistent(store)


@pytest.mark.slow
def test_dead_server_fails_in_one_line_then_resumes(
    server: S3Server, proxy: FaultyProxy, tmp_path: Path, reference: dict[str, list[str]]
) -> None:
    workflow = small_workflow(tmp_path)
    url = server.url(f"dead-{uuid.uuid4().hex[:8]}")
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", url, "--json",
               "--store-option", f"endpoint_url={proxy.url}"]  # fmt: skip
    env = {**os.environ, **server.env}
    proxy.configure(die_after=20)  # the server goes away mid-run, for good
    dead = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert dead.returncode != 0
    lines = dead.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), dead.stderr
    assert "Traceback" not in dead.stderr
    proxy.configure()
    proxy.start()  # back on the same port
    store = wfe.open_store(url, **{**server.options, "endpoint_url": proxy.url})
    check_consistent(store)  # what the dead run left is whole
    finished_before = set(store.actions)
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert digests(result) == reference
    manifest = store.runs.get(result["run_id"])
    for node_id, record in manifest.nodes.items():  # resumed: only unfinished nodes ran again
        assert (record.status == "cached") == (record.action_key in finished_before), node_id
    check_consistent(store)


# Bounded waits: small bounds set by option, so each case takes seconds. The wall-clock
# ceilings are hang guards (about 3x the bound, plus interpreter start-up), not speed checks.
SMALL_BOUNDS = {"connect_timeout": "1", "read_timeout": "1", "timeout": "3", "max_attempts": "2"}
CEILING = 3 * 3 + 10


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    with silent_server() as url:
        yield url


@pytest.fixture(params=["files", "nothing"])
def plain_http_endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with plain_http_server(request.param, tmp_path) as url:
        yield url


def wfe_runs(
    endpoint: str, options: dict[str, str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    command = [sys.executable, "-m", "wfe", "runs", "--store", "s3://some-bucket/p",
               "--store-option", f"endpoint_url={endpoint}"]  # fmt: skip
    for name, value in options.items():
        command += ["--store-option", f"{name}={value}"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    return done, time.monotonic() - started


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.slow
def test_an_endpoint_that_never_answers_fails_in_one_line_naming_the_bound(
    silent_endpoint: str, server: S3Server
) -> None:
    done, took = wfe_runs(silent_endpoint, SMALL_BOUNDS, server.env)
    line = one_error_line(done)
    print(f"{took:.1f} s: {line}")
    assert took < CEILING
    assert f"S3 bucket 'some-bucket' at {silent_endpoint} did not answer" in line
    assert "connect_timeout 1 s, read_timeout 1 s, up to 2 attempts, timeout 3 s" in line


def test_a_plain_http_server_is_not_taken_for_s3(plain_http_endpoint: str, server: S3Server) -> None:
    done, took = wfe_runs(plain_http_endpoint, SMALL_BOUNDS, server.env)
    line = one_error_line(done)
    print(f"{took:.1f} s: {line}")
    assert took < CEILING
    assert f"the endpoint {plain_http_endpoint} does not answer like S3" in line
    assert "does not exist" not in line
    assert "HTTP 404" in line or "HTTP 501" in line
    assert "text/html" in line


def test_credentials_in_the_endpoint_url_are_refused_at_once(silent_endpoint: str, server: S3Server) -> None:
    secret = "Pa55-word-never-shown"
    host = silent_endpoint.removeprefix("http://")
    done, took = wfe_runs(f"http://someone:{secret}@{host}", SMALL_BOUNDS, server.env)
    line = one_error_line(done)
    assert took < CEILING
    assert secret not in done.stderr + done.stdout and "someone" not in line
    assert "key and secret options" in line and silent_endpoint in line


@pytest.mark.slow
def test_a_server_gone_silent_after_open_fails_each_operation_within_its_bound(
    server: S3Server, proxy: FaultyProxy
) -> None:
    options = {**server.options, "endpoint_url": proxy.url, **SMALL_BOUNDS}
    store = wfe.open_store(server.url(f"silent-{uuid.uuid4().hex[:8]}"), **options)
    digest = store.blobs.put(b"written before the server went silent")
    proxy.configure(hang_after=1)
    started = time.monotonic()
    with pytest.raises(wfe.StoreError, match=r"did not answer .*connect_timeout 1 s, read_timeout 1 s"):
        store.blobs.put(b"not answered")
    assert time.monotonic() - started < 3 * 3
    proxy.configure(hang_after=1, hang_body=True)  # headers and half the body, then silence
    started = time.monotonic()
    with pytest.raises(wfe.StoreError, match=r"sent nothing for 1 s \(read_timeout"):
        store.blobs.get(digest)
    assert time.monotonic() - started < 3 * 3
