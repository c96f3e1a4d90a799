"""Per-node cache policy: ``use`` (the default), ``recompute`` (runs, replaces its entry), ``skip`` (runs, no entry).

The policy is no part of the action key (the same computation is the same key)
nor, when it is the default, of the workflow digest.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest

import wfe
from wfe.graph._load import load_workflow, parse_workflow
from wfe.storage._memory import MemoryIO

REPO = Path(__file__).resolve().parent.parent

CALLS: list[str] = []  # one name per call of the functions below
STAMP = [0]  # what policy_source returns besides its range: changed between runs to change its output


@wfe.function(outputs="application/json", version="1")
def policy_source(*, n: int = 3) -> list[int]:
    CALLS.append("policy_source")
    return [*range(n), STAMP[0]]


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def policy_double(values: list[int]) -> list[int]:
    CALLS.append("policy_double")
    return [2 * v for v in values]


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def policy_total(values: list[int]) -> int:
    CALLS.append("policy_total")
    return sum(values)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()
    STAMP[0] = 7


def chain(folder: Path, *, source: str = "use", double: str = "use", mapped: bool = False) -> wfe.Workflow:
    """source -> double (mapped over the source's list, if ``mapped``) -> total, with the policies given."""
    wf = wfe.Workflow("policy", base_dir=folder)
    values = wf.node(policy_source, id="source", cache=source)
    if mapped:
        doubled = wf.map(policy_twice, values, id="double", cache=double)
        wf.node(policy_total_of_list, doubled, id="total")
    else:
        doubled = wf.node(policy_double, values, id="double", cache=double)
        wf.node(policy_total, doubled, id="total")
    return wf


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def policy_twice(value: int) -> int:
    CALLS.append("policy_double")
    return 2 * value


@wfe.function(inputs=[wfe.Input(wfe.ARTIFACT_LIST)], outputs="application/json", version="1")
def policy_total_of_list(values: list[int]) -> int:
    CALLS.append("policy_total")
    return sum(values)


def calls(name: str) -> int:
    return CALLS.count(name)


def statuses(result: wfe.RunResult) -> dict[str, str]:
    return {node_id: record.status for node_id, record in result.manifest.nodes.items()}


def keys(result: wfe.RunResult) -> dict[str, str | None]:
    return {node_id: record.action_key for node_id, record in result.manifest.nodes.items()}


def remote_memory_store() -> wfe.Store:
    """A store in memory that says it is remote: entries and blobs are written behind the run."""

    class RemoteMemoryIO(MemoryIO):
        remote = True

    root = f"/policy-{uuid.uuid4().hex[:8]}"
    return wfe.Store(RemoteMemoryIO(fsspec.filesystem("memory"), root), f"memory://{root}")


def local_store(tmp_path: Path) -> wfe.Store:
    return wfe.open_store(str(tmp_path / "store"))


STORES = [pytest.param(local_store, id="local"), pytest.param(lambda tmp_path: remote_memory_store(), id="remote")]


@pytest.mark.parametrize("make_store", STORES)
def test_a_node_that_uses_the_cache_runs_once_over_two_runs(tmp_path: Path, make_store: Any) -> None:
    store = make_store(tmp_path)
    first = wfe.run(chain(tmp_path), store)
    second = wfe.run(chain(tmp_path), store)
    assert first.ok and second.ok
    assert statuses(second) == {"source": "cached", "double": "cached", "total": "cached"}
    assert CALLS == ["policy_source", "policy_double", "policy_total"]
    assert set(store.actions) == set(keys(first).values())
    assert all(record.cache is None for record in second.manifest.nodes.values())


@pytest.mark.parametrize("make_store", STORES)
def test_a_recompute_node_runs_on_every_run_and_replaces_its_entry(tmp_path: Path, make_store: Any) -> None:
    store = make_store(tmp_path)
    first = wfe.run(chain(tmp_path, double="recompute"), store)
    key = first.manifest.nodes["double"].action_key
    assert key is not None
    created = store.actions.get(key).created
    second = wfe.run(chain(tmp_path, double="recompute"), store)
    assert first.ok and second.ok
    assert statuses(second) == {"source": "cached", "double": "ran", "total": "cached"}
    assert (calls("policy_source"), calls("policy_double"), calls("policy_total")) == (1, 2, 1)
    assert keys(second) == keys(first)
    assert store.actions.get(key).created > created
    assert set(store.actions) == set(keys(first).values())
    assert second.manifest.nodes["double"].cache == "recompute"
    assert store.runs.get(second.run_id).nodes["double"].cache == "recompute"


def test_a_recomputed_node_whose_output_changed_feeds_the_new_output_downstream(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    first = wfe.run(chain(tmp_path, source="recompute"), store)
    STAMP[0] = 10
    second = wfe.run(chain(tmp_path, source="recompute"), store)
    assert statuses(second) == {"source": "ran", "double": "ran", "total": "ran"}
    assert second["source"] == [0, 1, 2, 10] and second["total"] == 2 * 13
    source_key = first.manifest.nodes["source"].action_key
    assert source_key is not None and second.manifest.nodes["source"].action_key == source_key
    assert store.actions.get(source_key).outputs == second.outputs("source")  # the entry was replaced

    third = wfe.run(chain(tmp_path), store)  # the same key under the default policy: the replaced entry
    assert statuses(third) == {"source": "cached", "double": "cached", "total": "cached"}
    assert third["total"] == 2 * 13


@pytest.mark.parametrize("make_store", STORES)
def test_a_skip_node_runs_on_every_run_and_writes_no_action_entry(tmp_path: Path, make_store: Any) -> None:
    store = make_store(tmp_path)
    first = wfe.run(chain(tmp_path, double="skip"), store)
    second = wfe.run(chain(tmp_path, double="skip"), store)
    assert first.ok and second.ok
    assert statuses(first) == {"source": "ran", "double": "ran", "total": "ran"}
    assert statuses(second) == {"source": "cached", "double": "ran", "total": "cached"}
    assert (calls("policy_source"), calls("policy_double"), calls("policy_total")) == (1, 2, 1)
    skipped = first.manifest.nodes["double"].action_key
    assert skipped is not None and keys(second) == keys(first)
    assert skipped not in set(store.actions)
    assert set(store.actions) == {first.manifest.nodes[n].action_key for n in ("source", "total")}
    assert all(store.blobs.exists(a.digest) for a in second.outputs("double"))  # read downstream by digest
    assert second["double"] == [0, 2, 4, 14]
    assert store.runs.get(second.run_id).nodes["double"].cache == "skip"

    third = wfe.run(chain(tmp_path), store)  # the same key under the default policy: nothing cached to use
    assert statuses(third) == {"source": "cached", "double": "ran", "total": "cached"}
    assert skipped in set(store.actions)


def test_a_mapped_node_follows_its_policy_element_by_element(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    first = wfe.run(chain(tmp_path, double="skip", mapped=True), store)
    elements = {e["action_key"] for e in first.manifest.nodes["double"].elements or []}
    assert first.ok and len(elements) == 4 and calls("policy_double") == 4
    assert not elements & set(store.actions)

    second = wfe.run(chain(tmp_path, mapped=True), store)
    assert statuses(second)["double"] == "ran" and calls("policy_double") == 8
    assert elements <= set(store.actions)

    third = wfe.run(chain(tmp_path, double="recompute", mapped=True), store)
    assert third.ok and calls("policy_double") == 12
    assert [e["status"] for e in third.manifest.nodes["double"].elements or []] == ["ran"] * 4
    assert statuses(third)["total"] == "cached"

    fourth = wfe.run(chain(tmp_path, mapped=True), store)
    assert statuses(fourth)["double"] == "cached" and calls("policy_double") == 12


def test_the_policy_is_no_part_of_the_action_key_nor_of_the_function_call(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    runs = [wfe.run(chain(tmp_path, source=policy, double=policy), store) for policy in ("use", "recompute", "skip")]
    assert keys(runs[0]) == keys(runs[1]) == keys(runs[2])
    assert [run["total"] for run in runs] == [2 * 10] * 3


def test_the_policy_in_a_workflow_file_and_in_the_builder_give_one_workflow_digest(tmp_path: Path) -> None:
    built = chain(tmp_path, source="recompute", double="skip")
    text = built.to_yaml()
    assert "cache: recompute" in text and "cache: skip" in text
    (tmp_path / "policy.yaml").write_text(text)
    assert load_workflow(tmp_path / "policy.yaml").digest() == built.digest()
    document = json.loads(built.to_json())
    assert [n.get("cache") for n in document["nodes"]] == ["recompute", "skip", None]
    assert built.digest() != chain(tmp_path).digest()

    spelt_out = json.loads(chain(tmp_path).to_json())
    for node in spelt_out["nodes"]:
        node["cache"] = "use"
    assert parse_workflow(spelt_out).digest() == chain(tmp_path).digest() == chain(tmp_path, double="use").digest()


def test_the_default_policy_leaves_the_digests_of_existing_workflows_as_they_were() -> None:
    before = {  # computed with wfe as it was before nodes had a cache policy
        "examples/sales/workflow.yaml":
            "sha256:5528e55589d1e2e3c9930dfdb17ed7cb4e0abea61c974ab137bba1bf41993fab",
        "tests/workflows/features/map.yaml":
            "sha256:9e0dc732b9096f22a5f643cb93bb666151aa46fb98cf85fcedc4a10479028e44",
        "tests/workflows/features/ports.yaml":
            "sha256:7806aaab4d440b5282e9a7f84738f7a4a67ecefe50f15abb0c8d0e2f1aba22fc",
    }
    for path, digest in before.items():
        graph = load_workflow(REPO / path)
        assert b'"cache"' not in graph.canonical()
        assert graph.digest() == digest, path


def test_an_invalid_policy_is_a_one_line_workflow_error(tmp_path: Path) -> None:
    document = {"name": "bad", "nodes": [{"id": "a", "function": "policy_source", "cache": "sometimes"}]}
    with pytest.raises(wfe.WorkflowError) as in_file:
        parse_workflow(document)
    assert "'use', 'recompute' or 'skip'" in str(in_file.value) and "\n" not in str(in_file.value)

    file_node = {"name": "bad", "nodes": [{"id": "f", "file": "x.csv", "mime": "text/csv", "cache": "skip"}]}
    with pytest.raises(wfe.WorkflowError, match="'cache' applies to function nodes only") as on_file:
        parse_workflow(file_node)
    assert "\n" not in str(on_file.value)

    wf = wfe.Workflow("bad", base_dir=tmp_path)
    for policy in ("never", True, None):
        with pytest.raises(wfe.WorkflowError, match="cache must be 'use', 'recompute' or 'skip'") as built:
            wf.node(policy_source, id="source", cache=policy)
        assert "\n" not in str(built.value)


def test_a_run_record_written_before_the_policy_existed_reads_as_use(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    result = wfe.run(chain(tmp_path, double="skip"), store)
    path = tmp_path / "store" / "runs" / f"{result.run_id}.json"
    record = json.loads(path.read_text())
    assert record["nodes"]["double"]["cache"] == "skip" and "cache" not in record["nodes"]["total"]
    del record["nodes"]["double"]["cache"]
    path.write_text(json.dumps(record))
    assert store.runs.get(result.run_id).nodes["double"].cache is None


@pytest.mark.parametrize("policy", ["recompute", "skip"])
def test_explain_says_a_node_ran_because_of_its_policy(tmp_path: Path, policy: str) -> None:
    from wfe.ops._explain import explain

    store = local_store(tmp_path)
    wfe.run(chain(tmp_path, double=policy), store)
    second = wfe.run(chain(tmp_path, double=policy), store)
    told = explain(store, second.run_id, "double")
    assert told.status == "ran"
    assert told.reasons == [f"its cache policy is {policy!r}: it runs on every run and "
                            + ("replaces its action cache entry" if policy == "recompute" else
                               "writes no action cache entry")]
    assert explain(store, second.run_id, "total").status == "cached"  # the others are told as before
