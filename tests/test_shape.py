"""Records checked by hand (wfe._shape): whatever a store or a user hands them, a record or a one-line RecordError.

The graph, function specs and run records are read from stores nobody vouches
for. Random JSON documents, valid records with one field made wrong, and valid
records round-tripped through JSON and pickle: the first never escape as any
other exception, the second name the field, the third come back equal.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wfe
from conformance_tests.strategies import action_results, artifacts, function_specs, node_records, run_ids
from wfe.store._manifest import ActionResult, NodeRecord, RunManifest

KINDS: list[type[Any]] = [wfe.Artifact, ActionResult, NodeRecord, RunManifest, wfe.FunctionSpec, wfe.WorkflowGraph,
                          wfe.Node, wfe.Edge]
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["digest", "mime", "size", "id", "nodes", "edges", "name", "outputs", "run_id", "status",
                         "function", "version", "config", "inputs", "created", "started", "workflow", "x"]),
        inner, max_size=8),
    max_leaves=30,
)
manifests = st.builds(
    RunManifest,
    run_id=run_ids,
    workflow=st.text(max_size=12),
    workflow_digest=st.just("sha256:" + "0" * 64),
    started=st.floats(allow_nan=False, allow_infinity=False),
    nodes=st.dictionaries(st.text(min_size=1, max_size=8), node_records, max_size=4),
)
records = st.one_of(artifacts, action_results, function_specs, node_records, manifests)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(KINDS), document=json_documents)
def test_any_json_document_is_a_record_or_one_record_error(kind: type[Any], document: Any) -> None:
    try:
        made = kind.model_validate(document)
    except wfe.RecordError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    except wfe.WorkflowError as exc:  # only the graph says so, for a document of the right shape but no DAG
        assert kind is wfe.WorkflowGraph and "\n" not in str(exc)
        return
    assert isinstance(made, kind)
    assert kind.model_validate(made.model_dump(mode="json")) == made


@settings(max_examples=200, deadline=None)
@given(record=records)
def test_a_record_comes_back_equal_from_its_json_and_from_pickle(record: Any) -> None:
    kind = type(record)
    stored = record.to_json()
    assert kind.model_validate_json(stored) == record
    assert json.loads(stored) == record.model_dump(mode="json", exclude_none=True)
    assert kind.model_validate_json(record.model_dump_json()) == record
    assert pickle.loads(pickle.dumps(record)) == record


WRONG = [None, 1.5, True, "text", [], {}, -1]


@settings(max_examples=200, deadline=None)
@given(record=records, data=st.data())
def test_a_field_of_the_wrong_kind_is_named_in_the_error(record: Any, data: st.DataObject) -> None:
    document = record.model_dump(mode="json")
    field = data.draw(st.sampled_from(sorted(document)))
    wrong = data.draw(st.sampled_from(WRONG))
    document[field] = wrong
    try:
        type(record).model_validate(document)
    except wfe.RecordError as exc:
        assert exc.where == field or exc.where.startswith(f"{field}.") or exc.where == "", exc
    # else: the wrong value is one the field takes (None for an optional field, a list for a list)


def _nested(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 1500), kind=st.sampled_from(["list", "dict"]),
       where=st.sampled_from(["inline value", "element", "extra", "config"]))
def test_a_deeply_nested_record_is_refused_or_dumps_back(depth: int, kind: str, where: str) -> None:
    """JSON parses deeper than a record can be dumped back: a hostile record is refused when read, in one line."""
    value = _nested(depth, kind)
    artifact = {"digest": "sha256:" + "4" * 64, "mime": "application/json", "size": 1}
    run = {"run_id": "r", "workflow": "w", "workflow_digest": "d", "started": 0}
    documents: dict[str, tuple[type[Any], dict[str, Any]]] = {
        "inline value": (ActionResult, {"outputs": [{**artifact, "kind": "inline", "value": value}], "function": "f",
                                        "version": "1", "config": "c", "inputs": [], "created": 0}),
        "element": (RunManifest, {**run, "nodes": {"n": {"elements": [{"deep": value}]}}}),
        "extra": (RunManifest, {**run, "deep": value}),
        "config": (wfe.Node, {"id": "n", "function": "f", "config": {"deep": value}}),
    }
    kind_of, document = documents[where]
    try:
        data = json.dumps(document)
    except RecursionError:
        return  # deeper than this process can even write it
    try:
        made = kind_of.model_validate_json(data)
    except wfe.RecordError as exc:
        assert depth >= 199 and "nested deeper than" in str(exc) and "\n" not in str(exc)
        return
    assert kind_of.model_validate_json(made.model_dump_json()) == made  # it dumps back, and reads back the same


def test_unknown_keys_are_refused_ignored_or_kept_as_each_record_says() -> None:
    artifact = {"digest": "sha256:" + "1" * 64, "mime": "text/plain", "size": 1}
    with pytest.raises(wfe.RecordError, match=r"^owner: unknown key$"):
        wfe.Artifact.model_validate({**artifact, "owner": "x"})
    assert NodeRecord.model_validate({"status": "ran", "from_a_newer_wfe": 1}) == NodeRecord(status="ran")
    manifest = RunManifest.model_validate({"run_id": "r", "workflow": "w", "workflow_digest": "d", "started": 0,
                                           "rerun_of": "old"})
    assert manifest.model_extra == {"rerun_of": "old"} and json.loads(manifest.to_json())["rerun_of"] == "old"
    with pytest.raises(wfe.RecordError, match=r"^nodes\.0\.outputs\.1\.size: should be at least 0$"):
        RunManifest.model_validate({"run_id": "r", "workflow": "w", "workflow_digest": "d", "started": 0,
                                    "nodes": {"0": {"outputs": [artifact, {**artifact, "size": -1}]}}})


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    artifact = wfe.Artifact("sha256:" + "2" * 64, "text/plain", 3)
    with pytest.raises(AttributeError, match="frozen"):
        artifact.size = 4  # type: ignore[misc]
    assert hash(artifact) == hash(wfe.Artifact.model_validate(artifact.model_dump()))
    with pytest.raises(TypeError, match="unhashable"):
        hash(NodeRecord())
