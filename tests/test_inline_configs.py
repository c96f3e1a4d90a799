"""A small config lives in the action entries of the nodes that used it; a large one, or one no entry carries, is a
file of the config store. Either way it is read back by its digest, checked, from a run record."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.ops._explain import explain
from wfe.ops._sync import sync
from wfe.ops._verify import verify_store
from wfe.store._digest import canonical_json
from wfe.store._paths import record_path
from wfe.store._records import INLINE_CONFIG
from wfe.store._store import CONFIG_ENTRIES


@wfe.function(outputs="application/json")
def echo_config(**config: Any) -> dict[str, Any]:
    return config


@wfe.function(outputs="application/json")
def fails_with_config(**config: Any) -> None:
    raise ValueError("this node fails")


@wfe.function(outputs="application/json")
def listed(*, n: int = 3) -> list[int]:
    return list(range(n))


@wfe.function(inputs=["application/json"], outputs="application/json")
def scaled(value: int, *, factor: int = 1) -> int:
    return value * factor


def config_files(store: wfe.Store) -> set[str]:
    return set(store.configs)


def node_config(store: wfe.Store, result: wfe.RunResult, node_id: str) -> dict[str, Any]:
    record = result.manifest.nodes[node_id]
    assert record.config is not None
    return store.config(record.config, record.action_keys())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Configs whose canonical JSON falls on both sides of the threshold, and right at it.
configs = st.one_of(
    st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=5),
    st.integers(INLINE_CONFIG - 40, INLINE_CONFIG + 40).map(lambda n: {"pad": "x" * (n - len('{"pad":""}'))}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs)
def test_a_config_is_carried_by_its_entry_when_small_and_a_file_when_large(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    store = wfe.open_store(str(tmp_path / f"store-{uuid.uuid4().hex[:8]}"))
    wf = wfe.Workflow("configs")
    wf.node(echo_config, id="echo", config=config)
    result = wfe.run(wf, store)
    assert result.status == "succeeded" and result["echo"] == config
    record = result.manifest.nodes["echo"]
    assert record.config is not None and record.action_key is not None
    entry = store.actions.get(record.action_key)
    small = len(canonical_json(config)) <= INLINE_CONFIG
    assert (entry.config_json is not None) == small
    assert (record.config in config_files(store)) == (not small)
    assert node_config(store, result, "echo") == config  # from wherever it is kept
    again = wfe.run(wf, store)  # cached: the same entry, the same config
    assert again.manifest.nodes["echo"].status == "cached" and node_config(store, again, "echo") == config


def test_a_failed_node_and_a_node_never_cached_keep_their_config_in_a_file(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    wf = wfe.Workflow("no-entry")
    wf.node(fails_with_config, id="failing", config={"why": "it fails"})
    wf.node(echo_config, id="uncached", cache="skip", config={"why": "no entry"})
    result = wfe.run(wf, store)
    failing, uncached = result.manifest.nodes["failing"], result.manifest.nodes["uncached"]
    assert failing.status == "failed" and uncached.status == "ran"
    assert {failing.config, uncached.config} <= config_files(store)
    assert store.config(failing.config or "") == {"why": "it fails"}
    assert store.config(uncached.config or "") == {"why": "no entry"}


def test_a_mapped_nodes_config_is_read_from_its_elements_entries_and_synced_with_its_run(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    wf = wfe.Workflow("mapped")
    values = wf.node(listed, id="values", config={"n": 4})
    wf.map(scaled, values, id="scaled", factor=3)
    result = wfe.run(wf, store)
    assert [json.loads(store.blobs.get(a["digest"])) for a in result["scaled"]] == [0, 3, 6, 9]
    assert config_files(store) == set()  # every config here is small, and every node has entries
    assert node_config(store, result, "scaled") == {"factor": 3}
    copy = wfe.open_store(str(tmp_path / "copy"))
    report = sync(store, copy, runs=[result.run_id])
    assert report.ok, report.failures
    assert node_config(copy, result, "scaled") == {"factor": 3} and verify_store(copy).clean


def test_a_config_whose_entries_are_gone_is_looked_for_in_a_bounded_number_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    wf = wfe.Workflow("wide")
    values = wf.node(listed, id="values", config={"n": 200})
    wf.map(scaled, values, id="scaled", factor=3)
    result = wfe.run(wf, store)
    record = result.manifest.nodes["scaled"]
    keys = list(record.action_keys())
    assert len(keys) == 200 and record.config is not None
    looked: list[str] = []
    lookup = type(store.actions).lookup
    monkeypatch.setattr(type(store.actions), "lookup", lambda self, key: looked.append(key) or lookup(self, key))
    for key in keys[:-1]:  # all but the last element's entry collected: the config is past the bound
        store.io.delete(record_path("actions", key))
    with pytest.raises(wfe.NotFoundError):
        store.config(record.config, keys)
    assert len(looked) == CONFIG_ENTRIES  # not one request per element
    store.io.delete(record_path("actions", keys[-1]))
    wfe.run(wf, store)  # the entries come back
    store.io.delete(record_path("actions", keys[0]))
    looked.clear()
    assert store.config(record.config, keys) == {"factor": 3} and len(looked) == 2  # the first gone, the second has it


def test_explain_names_the_field_that_changed_in_a_carried_config(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    for factor in (2, 5):
        wf = wfe.Workflow("explained")
        wf.node(echo_config, id="echo", config={"factor": factor, "same": True})
        last = wfe.run(wf, store)
    assert config_files(store) == set()  # both configs are read from the two runs' entries
    reasons = explain(store, last.run_id, "echo").reasons
    assert any("factor: 2 -> 5" in reason and "same" not in reason for reason in reasons), reasons


def test_a_tampered_carried_config_is_refused_reported_and_repaired(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    wf = wfe.Workflow("tampered")
    wf.node(echo_config, id="echo", config={"limit": 10})
    result = wfe.run(wf, store)
    record = result.manifest.nodes["echo"]
    assert record.action_key is not None and record.config is not None
    path = Path(store.io.path(record_path("actions", record.action_key)))
    entry = json.loads(path.read_bytes())
    entry["config_json"] = '{"limit":1000}'  # valid JSON, another config: the digest says so
    path.write_text(json.dumps(entry))
    with pytest.raises(wfe.IntegrityError):
        store.config(record.config, record.action_keys())
    report = verify_store(store)
    assert any("does not match" in line for line in report.damaged), report.damaged
    assert any("dropped action" in line for line in verify_store(store, repair=True).repaired)
    assert not store.actions.exists(record.action_key)  # dropped: its outputs are not trusted either
    rerun = wfe.run(wf, store)
    assert rerun.manifest.nodes["echo"].status == "ran" and node_config(store, rerun, "echo") == {"limit": 10}
    assert verify_store(store).clean


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(carried=st.text(max_size=200) | st.just('{"limit":10}'))
def test_whatever_an_entry_carries_a_config_is_what_its_digest_says_or_an_integrity_error(
    tmp_path: Path, carried: str
) -> None:
    root = tmp_path / f"store-{uuid.uuid4().hex[:8]}"
    wf = wfe.Workflow("carried")
    wf.node(echo_config, id="echo", config={"limit": 10})
    record = wfe.run(wf, str(root)).manifest.nodes["echo"]
    assert record.action_key is not None and record.config is not None
    store = wfe.open_store(str(root))  # nothing remembered from the run
    path = Path(store.io.path(record_path("actions", record.action_key)))
    entry = json.loads(path.read_bytes())
    entry["config_json"] = carried
    path.write_text(json.dumps(entry))
    if carried == '{"limit":10}':  # the very bytes the digest was taken of
        assert store.config(record.config, record.action_keys()) == {"limit": 10}
    else:
        with pytest.raises(wfe.IntegrityError):
            store.config(record.config, record.action_keys())


MODULE = textwrap.dedent(
    '''
    import os
    import wfe

    @wfe.function(outputs="application/json")
    def where(*, tag):
        return {"tag": tag, "pid": os.getpid()}
    '''
)


def test_a_worker_process_gets_a_small_config_that_has_no_file(tmp_path: Path) -> None:
    module = f"inline_cfg_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({
        "name": "workers", "modules": [module],
        "nodes": [{"id": f"w{i}", "function": "where", "config": {"tag": f"t{i}"}} for i in range(3)],
        "edges": [],
    }))  # fmt: skip
    store = wfe.open_store(str(tmp_path / "store"))
    try:
        result = wfe.run(workflow, store, executor="processes", jobs=2)
    finally:
        sys.modules.pop(module, None)
    assert result.status == "succeeded"
    outputs = {node_id: result[node_id] for node_id in ("w0", "w1", "w2")}
    assert {node_id: value["tag"] for node_id, value in outputs.items()} == {"w0": "t0", "w1": "t1", "w2": "t2"}
    assert all(value["pid"] != os.getpid() for value in outputs.values())  # computed in worker processes
    assert config_files(store) == set()
