"""The shortcuts a cold node takes, and that each still gives the same answer as the long way."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

import wfe
import wfe.engine._runner as runner_module
from wfe._errors import WorkflowError
from wfe.engine._lease import WRITE_GRACE, Leases, expired_leases, lease_path
from wfe.graph._load import load_workflow
from wfe.graph._model import CANONICAL_SLICE, Artifact
from wfe.ops._verify import verify_store
from wfe.store._blobs import BlobStore
from wfe.store._digest import canonical_json, digest_of
from wfe.store._manifest import ActionResult, NodeRecord, RunManifest
from wfe.store._paths import blob_path
from wfe.store._records import RECORD_SLICE, STREAM_NODES, ConfigStore

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


def test_an_input_many_nodes_share_stays_in_memory_past_the_count(
    tmp_path: Path, reads: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "FRESH_COUNT", 3)  # far fewer than the leaves, which each add an output
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(fan_out(12), store, base_dir=FUNCTIONS)
    assert result.ok and reads["blobs"] == 0  # the seed's output is used by every leaf: the last to be dropped
    assert values(store, result) == {"seed": {"n": 3}, **{f"leaf{i}": 3000 + i * i for i in range(12)}}


def test_without_the_handover_nodes_read_the_same_bytes_back(
    tmp_path: Path, reads: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "FRESH_COUNT", 0)  # keep nothing: every input is read from the store
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(fan_out(5), store, base_dir=FUNCTIONS)
    assert result.ok and reads["blobs"] == 5
    assert values(store, result) == {"seed": {"n": 3}, **{f"leaf{i}": 3000 + i * i for i in range(5)}}


def test_a_runs_final_outputs_are_handed_back_without_a_read_and_only_those(
    tmp_path: Path, reads: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(fan_out(3), store, base_dir=FUNCTIONS)
    assert [result[f"leaf{i}"] for i in range(3)] == [3000 + i * i for i in range(3)] and reads["blobs"] == 0
    assert result["seed"] == {"n": 3} and reads["blobs"] == 1  # consumed by other nodes: not kept, read back
    assert set(result.kept) == {result.output(f"leaf{i}").digest for i in range(3)}
    again = wfe.run(fan_out(3), store, base_dir=FUNCTIONS)  # all cached: nothing computed here, nothing kept
    assert again.kept == {} and again["leaf2"] == 3004 and reads["blobs"] == 2
    monkeypatch.setattr(runner_module, "KEPT_BYTES", 0)
    rerun = wfe.run(fan_out(3), store, base_dir=FUNCTIONS, force=True)
    assert rerun.kept == {} and rerun["leaf1"] == 3001 and reads["blobs"] == 3


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


def test_a_small_blob_this_store_put_lately_is_looked_for_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many nodes returning one value: the repeats cost a look, not a write; a blob gone meanwhile is written."""
    store = wfe.open_store(str(tmp_path / "store"))
    temps: list[str] = []
    create_temp = type(store.io).create_temp
    monkeypatch.setattr(type(store.io), "create_temp", lambda io: temps.append("t") or create_temp(io))
    digest = store.blobs.put(b"1")
    assert [store.blobs.put_new(b"1")[2] for _ in range(5)] == [False] * 5 and len(temps) == 1
    os.unlink(store.io.path(blob_path(digest)))  # removed behind the store's back
    assert store.blobs.put_new(b"1")[2] and store.blobs.get(digest) == b"1" and len(temps) == 2
    other = wfe.open_store(str(tmp_path / "store"))  # a store that never put it: writes, and is refused
    assert not other.blobs.put_new(b"1")[2] and len(temps) == 3


def test_large_bytes_are_hashed_beside_the_write_and_stored_once(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    data = os.urandom(3 << 20) * 3  # several chunks: the hash runs in a helper thread while they are written
    first, second = store.blobs.put_new(data), store.blobs.put_new(data)
    assert first == (digest_of(data), len(data), True) and second == (digest_of(data), len(data), False)
    assert store.blobs.get(first[0]) == data
    assert os.listdir(store.io.path("tmp")) == []  # the second copy's temp file is gone


@pytest.mark.parametrize("leaves", [3, RECORD_SLICE * 2 + 1])  # one slice of node summaries, and several
def test_the_streamed_json_result_is_the_json_result(tmp_path: Path, leaves: int) -> None:
    import io

    result = wfe.run(fan_out(leaves), str(tmp_path / "store"), base_dir=FUNCTIONS)
    out = io.StringIO()
    result.write_json(out)
    assert out.getvalue().endswith("}\n") and json.loads(out.getvalue()) == result.to_json()
    assert set(result.to_json()["nodes"]) == {"seed", *(f"leaf{i}" for i in range(leaves))}


def large_document(n: int) -> dict[str, Any]:
    """A workflow of more nodes than one validation slice, with every kind of node and edge field."""
    nodes: list[dict[str, Any]] = [{"id": "data", "file": "data.csv", "mime": "text/csv"}]
    nodes += [{"id": f"n{i}", "function": "step" if i % 3 else "other", "config": {"i": i, "s": "é" * (i % 4)}}
              for i in range(1, n)]
    nodes[-1]["map"] = True
    edges: list[dict[str, Any]] = [{"source": "data", "target": "n1", "mime": "text/csv"}]
    edges += [{"source": f"n{i - 1}", "target": f"n{i}", "source_port": None if i % 2 else "out"}
              for i in range(2, n)]
    return {"name": "large", "modules": ["m"], "nodes": nodes, "edges": edges,
            "inputs": [{"id": "x", "mime": "text/plain"}], "outputs": [{"id": "last", "node": f"n{n - 1}"}],
            "note": "a key of the graph's own"}


@pytest.mark.parametrize("n", [1, 2, CANONICAL_SLICE, CANONICAL_SLICE + 1, 3 * CANONICAL_SLICE + 7])
def test_the_graph_made_a_slice_at_a_time_has_the_canonical_bytes_of_the_whole(n: int) -> None:
    document = large_document(n) if n > 1 else {"name": "one", "nodes": [{"id": "a", "function": "f"}]}
    graph = wfe.WorkflowGraph.model_validate(document)
    assert graph.canonical() == canonical_json(graph.model_dump(mode="json", exclude_none=True))
    assert graph.digest() == digest_of(canonical_json(graph.model_dump(mode="json", exclude_none=True)))


def test_a_large_workflow_file_validates_in_slices_to_the_same_graph(tmp_path: Path) -> None:
    document = large_document(3 * CANONICAL_SLICE + 7)
    path = tmp_path / "large.json"
    path.write_text(json.dumps(document))
    loaded = load_workflow(path)
    assert loaded == wfe.WorkflowGraph.model_validate(document)
    assert [n.id for n in loaded.nodes] == [n["id"] for n in document["nodes"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"confg": {}}, "nodes.700.confg: unknown key"),
        ({"id": "../x"}, "nodes.700.id: invalid node id '../x'"),
        ({"file": "x.csv"}, "nodes.700: node 'n700' needs exactly one of 'function', 'file', 'workflow' or 'loop'"),
    ],
)
def test_a_bad_node_in_a_later_slice_is_reported_at_its_place_in_the_file(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    document = large_document(3 * CANONICAL_SLICE + 7)
    document["nodes"][700].update(change)
    path = tmp_path / "large.yaml"  # YAML and JSON take the same path once decoded
    path.write_text(json.dumps(document))
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_artifacts_keep_the_model_methods_they_are_used_through() -> None:
    data = {"digest": KEY, "mime": "application/json", "size": 2, "name": "out"}
    artifact = Artifact.model_validate(data)
    assert artifact.model_dump(mode="json", exclude_none=True) == data
    assert artifact == Artifact(**data) and hash(artifact) == hash(Artifact(**data))
    with pytest.raises(wfe.RecordError, match=r"^digest: invalid digest"):
        Artifact.model_validate({**data, "digest": "sha256:../../etc/passwd"})
    with pytest.raises(wfe.RecordError, match=r"^owner: unknown key$"):
        Artifact.model_validate({**data, "owner": "someone"})
    with pytest.raises(AttributeError, match="frozen"):
        artifact.size = 3  # type: ignore[misc]


def test_a_run_record_slow_to_write_is_rewritten_less_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfe.store._records import RunStore

    puts: list[int] = []
    original = RunStore.put

    def slow_put(self: RunStore, manifest: RunManifest) -> None:
        time.sleep(0.05)  # a store this slow to take a record would otherwise spend the run rewriting it
        puts.append(sum(r.status in ("ran", "cached") for r in manifest.nodes.values()))
        original(self, manifest)

    monkeypatch.setattr(RunStore, "put", slow_put)
    monkeypatch.setattr(runner_module, "MANIFEST_INTERVAL", 0.0)  # a checkpoint after every node, were it fixed
    result = wfe.run(fan_out(30), str(tmp_path / "store"), base_dir=FUNCTIONS)
    assert result.ok
    assert puts[0] == 0 and puts[-1] == 31  # the record as the run starts, and whole at its end
    assert 3 <= len(puts) <= 4  # one checkpoint while it ran: the next was due a second after it


def test_local_store_failures_are_one_line_store_errors_and_leave_no_temp_file(tmp_path: Path) -> None:
    """The local store's per-node writes and reads: an OS failure that is not "missing" or "exists" is a StoreError."""
    store = wfe.open_store(str(tmp_path / "store"))
    digest = store.blobs.put(b"kept")
    root = Path(store.io.path(""))
    for folder in ("actions", "leases"):
        (root / folder).write_text("a file where a folder belongs")  # every path under it fails: not a directory
    result = ActionResult(outputs=[Artifact(digest=digest, mime="application/json", size=4)], function="f",
                              version="1", config=digest, inputs=[], created=1.0)
    failures = {
        "write": lambda: store.actions.put(KEY, result),
        "read": lambda: store.actions.lookup(KEY),
        "create": lambda: store.io.create_small(lease_path(KEY), b"{}"),
        "delete": lambda: store.io.delete(lease_path(KEY)),
    }
    for operation, call in failures.items():
        expected = rf"^({operation}|publish) '.*' failed: \[Errno \d+\] Not a directory"
        with pytest.raises(wfe.StoreError, match=expected) as caught:
            call()
        assert "\n" not in str(caught.value) and isinstance(caught.value.__cause__, NotADirectoryError)
    assert os.listdir(root / "tmp") == [] and store.blobs.get(digest) == b"kept"  # the refused write left nothing
    with pytest.raises(FileNotFoundError):
        store.io.read_bytes("configs/missing.json")  # missing stays a builtin: callers turn it into their own miss
    assert store.io.delete("configs/missing.json") is False


@pytest.mark.parametrize(("kind", "value"), [(None, None), ("inline", {"a": [1, "é"]}), ("ephemeral", None)])
def test_unchecked_constructors_make_what_validation_makes(kind: Any, value: Any) -> None:
    """``Artifact.made`` and ``NodeRecord.pending`` skip validation of parts wfe made: same objects, same JSON."""
    digest = digest_of(b"out")
    made = Artifact.made(digest, "application/json", 3, "out", kind, value)
    checked = Artifact(digest=digest, mime="application/json", size=3, name="out", kind=kind, value=value)
    assert made == checked and made.model_dump(mode="json") == checked.model_dump(mode="json")
    assert made.stored == (kind is None)
    with pytest.raises(AttributeError, match="frozen"):
        made.size = 4  # type: ignore[misc]
    first, second = NodeRecord.pending("f", "1", digest), NodeRecord.pending("f", "1", digest)
    assert first == NodeRecord(function="f", version="1", config=digest)
    first.outputs.append(made)
    assert second.outputs == []  # each record has lists of its own
    manifest = RunManifest(run_id="20260101T000000000Z-abcdef", workflow="w", workflow_digest=digest, started=1.0,
                           nodes={"a": first, "b": second})
    assert RunManifest.model_validate_json(manifest.to_json()) == manifest


GRAPHS_ALIVE = '''
import gc

import wfe
from wfe.graph._model import WorkflowGraph


@wfe.function(outputs="application/json")
def graphs_alive():
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, WorkflowGraph) and o.name == "freed-graph")
'''


def test_a_run_from_a_file_or_the_command_line_frees_its_graph_once_planned(tmp_path: Path) -> None:
    """A large workflow's nodes, edges and configs need not stay in memory while its plan runs."""
    import contextlib
    import io

    from wfe.cli import main

    (tmp_path / "graphs_alive.py").write_text(GRAPHS_ALIVE)
    workflow = tmp_path / "freed.json"
    workflow.write_text(json.dumps({"name": "freed-graph", "modules": ["graphs_alive"],
                                    "nodes": [{"id": "count", "function": "graphs_alive"}]}))
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(workflow, store)
    assert values(store, result) == {"count": 0}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", str(workflow), "--store", str(tmp_path / "cli-store"), "--json"]) == 0
    digest = json.loads(out.getvalue())["nodes"]["count"]["outputs"][0]["digest"]
    assert json.loads(wfe.open_store(str(tmp_path / "cli-store")).blobs.get(digest)) == 0
    graph = load_workflow(workflow)  # a graph its caller keeps is left alone, of course
    assert values(store, wfe.run(graph, store, force=True, base_dir=tmp_path)) == {"count": 1}


SCRATCH_FUNCTIONS = '''
import os
import tempfile
from pathlib import Path

import wfe


@wfe.function(outputs=["application/octet-stream", "application/json"])
def written(*, how="own", outside=""):
    folder = wfe.scratch_dir()
    path = folder / "out.bin"
    if how == "own":  # mkstemp: a file only its owner may read, until the store takes it
        (folder / "sub").mkdir()
        fd, name = tempfile.mkstemp(dir=folder / "sub")
        os.write(fd, b"scratch bytes " * 1000)
        os.close(fd)
        path = Path(name)
    elif how == "hardlink":  # a second name for a file elsewhere: must be copied, not moved
        os.link(outside, path)
    else:  # a symbolic link to a file elsewhere: the same
        path.symlink_to(outside)
    return path, {"ino": os.stat(path).st_ino, "folder": str(folder)}


@wfe.function(inputs=[wfe.Input("application/octet-stream", as_path=True)], outputs="application/json")
def read_by_path(path):
    return {"bytes": Path(path).read_text(), "in_scratch": Path(path).parent == wfe.scratch_dir(), "path": path}
'''


@pytest.fixture(scope="module")
def scratch_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scratch-module")
    (folder / "scratch_functions.py").write_text(SCRATCH_FUNCTIONS)
    return folder


def scratch_run(folder: Path, store: wfe.Store, **config: str) -> tuple[wfe.Artifact, dict[str, Any]]:
    graph = wfe.WorkflowGraph.model_validate({"name": "scratch", "modules": ["scratch_functions"],
                                              "nodes": [{"id": "w", "function": "written", "config": config}]})
    result = wfe.run(graph, store, base_dir=folder, force=True)
    assert result.ok, result.manifest.nodes["w"].error
    blob, info = result.outputs("w")
    return blob, json.loads(store.blobs.get(info.digest))


def test_a_file_in_the_scratch_folder_is_moved_into_the_store_not_copied(tmp_path: Path, scratch_module: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    blob, info = scratch_run(scratch_module, store)
    stored = os.stat(store.io.path(blob_path(blob.digest)))
    assert stored.st_ino == info["ino"] and stored.st_nlink == 1  # the very file the function wrote
    assert stat.S_IMODE(stored.st_mode) == 0o644 & ~current_umask()  # as if the store had written it
    assert store.blobs.get(blob.digest) == b"scratch bytes " * 1000
    assert not os.path.exists(info["folder"]) and os.path.dirname(info["folder"]) == store.io.path("tmp")
    with pytest.raises(wfe.WfeError, match="running as a node"):
        wfe.scratch_dir()


@pytest.mark.parametrize("how", ["hardlink", "symlink"])
def test_a_scratch_file_that_is_another_files_second_name_is_copied(
    tmp_path: Path, scratch_module: Path, how: str
) -> None:
    outside = tmp_path / "users-file.bin"
    outside.write_bytes(b"the user's own bytes")
    store = wfe.open_store(str(tmp_path / "store"))
    blob, _ = scratch_run(scratch_module, store, how=how, outside=str(outside))
    assert os.stat(store.io.path(blob_path(blob.digest))).st_ino != os.stat(outside).st_ino
    outside.write_bytes(b"changed later by its owner")  # the stored blob does not change with it
    assert store.blobs.get(blob.digest) == b"the user's own bytes" and verify_store(store).clean


def test_on_a_store_without_local_files_the_scratch_folder_is_a_temporary_one(scratch_module: Path) -> None:
    store = wfe.open_store("memory://scratch-" + os.urandom(4).hex())
    blob, info = scratch_run(scratch_module, store)
    assert store.blobs.get(blob.digest) == b"scratch bytes " * 1000 and not os.path.exists(info["folder"])


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_input_asked_for_as_a_path_is_a_verified_copy_in_the_nodes_scratch_folder(
    tmp_path: Path, scratch_module: Path
) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    digest = store.blobs.put(b"given by path")
    graph = wfe.WorkflowGraph.model_validate({
        "name": "by-path", "modules": ["scratch_functions"],
        "inputs": [{"id": "data", "mime": "application/octet-stream"}],
        "nodes": [{"id": "read", "function": "read_by_path"}], "edges": [{"source": "data", "target": "read"}],
    })
    runner = runner_module._Run(graph, store, runner_module.plan(graph, scratch_module, store), scratch_module,
                                runner_module.build_executor("inline", None), False, None,
                                given={"data": wfe.Artifact(digest=digest, mime="application/octet-stream", size=13)})
    result = runner.execute()
    seen = json.loads(store.blobs.get(result.outputs("read")[0].digest))
    assert seen["bytes"] == "given by path" and seen["in_scratch"] and not os.path.exists(seen["path"])
