"""The shortcuts a cold node takes, and that each still gives the same answer as the long way."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import wfe
import wfe._runner as runner_module
from wfe._blobs import BlobStore
from wfe._digest import digest_of
from wfe._lease import WRITE_GRACE, Leases, expired_leases, lease_path
from wfe._models import Artifact, NodeRecord, RunManifest
from wfe._records import STREAM_NODES, ConfigStore

FUNCTIONS = Path(__file__).resolve().parent / "workflows" / "executors"
KEY = digest_of(b"an action")


def fan_out(width: int) -> wfe.WorkflowGraph:
    nodes: list[dict[str, Any]] = [{"id": "seed", "function": "seed", "config": {"n": 3}}]
    nodes += [{"id": f"leaf{i}", "function": "leaf", "config": {"i": i}} for i in range(width)]
    edges = [{"source": "seed", "target": f"leaf{i}"} for i in range(width)]
    return wfe.WorkflowGraph.model_validate({"name": "fan", "modules": ["wide"], "nodes": nodes, "edges": edges})


def values(store: wfe.Store, result: Any) -> dict[str, Any]:
    return {n: json.loads(store.blobs.get(r.outputs[0].digest)) for n, r in result.manifest.nodes.items()}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often blobs and configs are read back from the store."""
    counted = {"blobs": 0, "configs": 0}
    original_get, original_config = BlobStore.get, ConfigStore.get

    def get(self: BlobStore, digest: str) -> bytes:
        counted["blobs"] += 1
        return original_get(self, digest)

    def config(self: ConfigStore, digest: str) -> dict[str, Any]:
        counted["configs"] += 1
        return original_config(self, digest)

    monkeypatch.setattr(BlobStore, "get", get)
    monkeypatch.setattr(ConfigStore, "get", config)
    return counted


def test_in_process_nodes_are_handed_small_inputs_and_configs(tmp_path: Path, reads: dict[str, int]) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(fan_out(5), store, base_dir=FUNCTIONS)
    assert result.ok and reads == {"blobs": 0, "configs": 0}  # nothing read back: handed over in memory
    assert values(store, result) == {"seed": {"n": 3}, **{f"leaf{i}": 3000 + i * i for i in range(5)}}


def test_without_the_handover_nodes_read_the_same_bytes_back(
    tmp_path: Path, reads: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "FRESH_COUNT", 0)  # keep nothing: every input is read from the store
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(fan_out(5), store, base_dir=FUNCTIONS)
    assert result.ok and reads["blobs"] == 5
    assert values(store, result) == {"seed": {"n": 3}, **{f"leaf{i}": 3000 + i * i for i in range(5)}}


def test_an_inline_run_settles_each_node_before_starting_the_next(tmp_path: Path) -> None:
    running: set[str] = set()
    most = [0]

    def on_event(node_id: str, record: NodeRecord) -> None:
        (running.add if record.status == "running" else running.discard)(node_id)
        most[0] = max(most[0], len(running))

    result = wfe.run(fan_out(20), str(tmp_path / "store"), base_dir=FUNCTIONS, on_event=on_event)
    assert result.ok and most[0] == 1  # results are not piled up in memory across a wide fan-out


@pytest.mark.parametrize("url", ["local", "memory"])
def test_a_large_run_record_is_written_in_pieces_and_reads_back_whole(tmp_path: Path, url: str) -> None:
    store = wfe.open_store(str(tmp_path / "store") if url == "local" else f"memory://records-{os.getpid()}")
    digest = digest_of(b"x")
    nodes = {
        f"n{i}": NodeRecord(status="ran", function="f\u00e9", action_key=digest, started=float(i),
                            outputs=[Artifact(digest=digest, mime="application/json", size=1)])
        for i in range(STREAM_NODES + 5)
    }
    manifest = RunManifest(run_id="20260101T000000000Z-abcdef", workflow="big", workflow_digest=digest,
                           started=1.0, nodes=nodes)
    store.runs.put(manifest)
    assert store.runs.get(manifest.run_id) == manifest
    manifest.nodes["n0"].status = "failed"  # a later checkpoint replaces the record
    store.runs.put(manifest)
    assert store.runs.get(manifest.run_id).nodes["n0"].status == "failed"


def test_a_torn_lease_counts_as_held_for_a_while_then_as_stale(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    path = Path(store.io.path(lease_path(KEY)))
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"owner": "h')  # created in place, its writer not yet done (or killed mid-write)
    now = time.time()
    assert not Leases(store.io, "other").acquire(KEY)  # never deleted from under its writer
    assert list(expired_leases(store.io, now)) == []
    assert list(expired_leases(store.io, now + WRITE_GRACE + 1)) == [lease_path(KEY)]
    os.utime(path, (now - WRITE_GRACE - 1, now - WRITE_GRACE - 1))
    taker = Leases(store.io, "taker")
    assert taker.acquire(KEY) and taker.holder(KEY).owner == taker.owner  # type: ignore[union-attr]


def test_a_small_blob_put_twice_is_stored_once(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    first, second = store.blobs.put_new(b"same"), store.blobs.put_new(b"same")
    assert first[2] and not second[2] and first[:2] == second[:2]
    assert sorted(os.listdir(store.io.path("tmp"))) == []  # the refused temp file is gone too


def test_large_bytes_are_hashed_beside_the_write_and_stored_once(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    data = os.urandom(3 << 20) * 3  # several chunks: the hash runs in a helper thread while they are written
    first, second = store.blobs.put_new(data), store.blobs.put_new(data)
    assert first == (digest_of(data), len(data), True) and second == (digest_of(data), len(data), False)
    assert store.blobs.get(first[0]) == data
    assert os.listdir(store.io.path("tmp")) == []  # the second copy's temp file is gone


def test_the_streamed_json_result_is_the_json_result(tmp_path: Path) -> None:
    import io

    result = wfe.run(fan_out(3), str(tmp_path / "store"), base_dir=FUNCTIONS)
    out = io.StringIO()
    result.write_json(out)
    assert out.getvalue().endswith("}\n") and json.loads(out.getvalue()) == result.to_json()
    assert set(result.to_json()["nodes"]) == {"seed", "leaf0", "leaf1", "leaf2"}
