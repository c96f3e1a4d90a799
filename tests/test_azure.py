"""Azure Blob Storage through adlfs (``abfs://``), on Azurite: the generic path, used as its probe found it.

adlfs has a create-if-absent write (``pipe_file(mode="create")``: an upload
with ``If-None-Match: *``) and fsspec's generic ``mv`` (a copy, then a
delete). The probe finds both, so a store on Azure holds first-result-wins
and leases, and publishes objects by writing them in place, never by ``mv``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wfe
from wfe.engine._lease import supports_leases
from wfe.storage import _remember
from wfe.storage._generic import FsspecIO

pytest.importorskip("adlfs")

from servers.azurite import AzuriteServer, Unavailable, azurite_server

from conformance_tests.plugin import capability_lines

RANDOM_FUNCTIONS = """
import os, time
import wfe

@wfe.function(outputs="application/json")
def slow_random(*, calls: str, seconds: float) -> dict[str, object]:
    with open(calls, "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(seconds)
    return {"draw": os.urandom(8).hex()}  # another answer on every call: two calls would disagree
"""

RANDOM_WORKFLOW = """
name: random
modules: [random_functions]
nodes:
  - {id: draw, function: slow_random, config: {calls: CALLS, seconds: 2}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[AzuriteServer]:
    try:
        with azurite_server() as running:
            yield running
    except Unavailable as exc:
        pytest.skip(f"Azurite is not available here: {exc}")


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """Each test starts as a new process would: nothing learnt about any filesystem yet."""
    _remember.forget()
    yield
    _remember.forget()


def _url(server: AzuriteServer) -> str:
    return server.url(f"t-{uuid.uuid4().hex[:8]}")


def test_the_probe_finds_what_azure_blob_storage_offers(server: AzuriteServer) -> None:
    url = _url(server)
    store = wfe.open_store(url, **server.options)
    assert isinstance(store.io, FsspecIO)
    found = {row.name: row.answer for row in store.io.findings.rows}
    assert found == {
        "create_if_absent": True,  # an upload with If-None-Match: * is refused for an existing blob
        "replaces": True,
        "whole_writes": None,  # not seen before it is closed; the server's side cannot be told cheaply
        "rename_overwrites": True,
        "rename_atomic": False,  # fsspec's generic mv: a copy, then a delete
        "thread_safe": True,
        "shared": True,
        "complete_listings": None,  # 1,001 writes cost more than the probe spends
    }
    assert store.io.findings.get("create_if_absent").via == "pipe_file"  # type: ignore[union-attr]
    assert store.io.conditional_create and store.io.exclusive_publish and supports_leases(store.io)
    assert not store.io._by_rename  # never published by a copy that readers could see half done
    lines = capability_lines(store.io)
    assert lines[0] == "capabilities (probed at opening):"
    assert any(line.startswith("  create-if-absent writes") and "| yes " in line for line in lines)
    assert not any(line.startswith("lacks create-if-absent") for line in lines)
    raw = server.filesystem()
    root = url.removeprefix("abfs://")
    assert not raw.find(f"{root}/tmp")  # the probe's keys are gone
    record = json.loads(raw.cat_file(f"{root}/{_remember.RECORD}"))
    assert record["filesystem"] == "adlfs.spec.AzureBlobFileSystem"

    # Opened again in this process: nothing probed; in a new one: the record is read.
    assert wfe.open_store(url, **server.options).io.findings.source == "memo"
    _remember.forget()
    assert wfe.open_store(url, **server.options).io.findings.source == "record"


def test_first_result_wins_and_objects_are_written_in_place(server: AzuriteServer) -> None:
    store = wfe.open_store(_url(server), **server.options)
    from _races import result_of

    from wfe.store._digest import digest_of

    key = digest_of(b"an action")
    assert store.actions.put(key, result_of(1)) is True
    assert store.actions.put(key, result_of(2)) is False
    assert store.actions.get(key).function == "writer-1"
    assert store.actions.put(key, result_of(3), overwrite=True) is True  # a rewrite replaces it in place
    assert store.actions.get(key).function == "writer-3"
    digest, size, created = store.blobs.put_new(b"x" * 100)
    assert created and store.blobs.put_new(b"x" * 100) == (digest, size, False)
    assert store.blobs.get(digest) == b"x" * 100
    assert not list(store.io.walk("tmp"))  # nothing staged under tmp/ and moved


def test_racing_first_results_from_processes_one_wins(server: AzuriteServer) -> None:
    import multiprocessing

    from _races import put_first_results

    from wfe.store._digest import digest_of

    url = _url(server)
    wfe.open_store(url, **server.options)  # probed once here; the writers read the record
    keys = [digest_of(f"race {n}".encode()) for n in range(5)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(3)
    with context.Pool(3) as pool:
        won = pool.starmap(put_first_results, [(url, server.options, writer, keys, barrier) for writer in range(3)])
    assert [sum(column) for column in zip(*won, strict=True)] == [1] * len(keys)  # exactly one winner per key
    store = wfe.open_store(url, **server.options)
    for index, key in enumerate(keys):
        winner = next(writer for writer in range(3) if won[writer][index])
        assert store.actions.get(key).function == f"writer-{winner}"


def _two_runs(tmp_path: Path, url: str, options: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    calls = tmp_path / "calls.txt"
    calls.touch()
    (tmp_path / "random_functions.py").write_text(RANDOM_FUNCTIONS)
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(RANDOM_WORKFLOW.replace("CALLS", json.dumps(str(calls))))
    flags = [f"--store-option={name}={value}" for name, value in options.items()]
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", url, "--json", *flags]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(tmp_path)}) for _ in range(2)]  # fmt: skip
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results, calls.read_text().split()


def test_two_runs_at_once_compute_a_slow_random_node_once(server: AzuriteServer, tmp_path: Path) -> None:
    url = _url(server)
    results, calls = _two_runs(tmp_path, url, server.options)
    assert len(calls) == 1, calls  # one process computed it; the other waited on its lease and took its result
    digests = [[o["digest"] for o in result["nodes"]["draw"]["outputs"]] for result in results]
    assert digests[0] == digests[1]
    store = wfe.open_store(url, **server.options)
    assert list(store.io.walk("leases")) == []  # released once the result was recorded


@pytest.mark.slow
def test_check_store_passes_on_azurite_and_prints_the_table(server: AzuriteServer, wfe_cli: Any) -> None:
    options = [f"--store-option={name}={value}" for name, value in server.options.items()]
    # The whole suite takes about 6 minutes on Azurite (a state machine alone may take a minute on two busy cores).
    done = wfe_cli("check-store", _url(server), *options, "--budget", "30m", "--test-timeout", "5m")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "capabilities (probed at opening):"
    assert any(line.startswith("  create-if-absent writes") and "| yes " in line for line in lines)
    assert "all properties hold" in done.stdout
