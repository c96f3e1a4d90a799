"""The node kinds beyond a plain function: mapped nodes, sub-workflows, loops; and recomputing
ephemeral outputs a restart lost.

Caching rules:

- A mapped node runs its function once per element; each element is an
  action of its own (the element's digest is its input), so a list that
  grows by one element runs one new action. The node's output is a list of
  the element artifacts (``application/vnd.wfe.artifacts+json``).
- A sub-workflow node is one action whose version covers the inner graph
  and every function version in it; on a miss the inner workflow runs as a
  run of its own (recorded with ``parent``), its nodes cached individually.
- A loop runs its workflow as such a unit once per iteration, feeding
  outputs back to inputs of the same name, until the condition output is
  false or ``max_iterations`` is reached; each iteration is cached, so a
  rerun replays the cached ones.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .._errors import WfeError
from ..graph._codecs import ARTIFACT_LIST, decode_json, encode_json
from ..graph._mime import mime_base
from ..graph._model import Artifact
from ..store._digest import action_key, canonical_json, digest_of
from ..store._manifest import NodeRecord
from ._plan import InnerPlan, output_index
from ._task import TaskResult

if TYPE_CHECKING:
    from pathlib import Path

    from ..graph._model import WorkflowGraph
    from ..store._manifest import ActionResult, NodeStatus, RunManifest
    from ..store._store import Store
    from ._plan import PlannedNode

class Pending(NamedTuple):
    """What a task in flight was for: a node, or one element of a mapped node (made once per task)."""

    node_id: str
    key: str
    inputs: list[Artifact]
    element: int | None = None


class FreshBytes(Protocol):
    """Small blobs a run keeps to hand to the tasks it runs in process (the runner's ``FreshBlobs``)."""

    def add(self, blobs: dict[str, bytes]) -> None: ...


class RunState(Protocol):
    """What the node kinds need of the run they are part of (the runner's run is one)."""

    planned: dict[str, PlannedNode]
    manifest: RunManifest
    store: Store
    map_pending: dict[str, int]
    memory: dict[str, bytes]
    producers: dict[str, str]

    @property
    def fresh(self) -> FreshBytes: ...  # read only here: the runner's own kind of it will do

    def execute(self) -> object: ...
    def inner(
        self, graph: WorkflowGraph, planned: list[PlannedNode], folder: Path, given: dict[str, Artifact]
    ) -> RunState: ...
    def emit(self, node_id: str, record: NodeRecord) -> None: ...
    def lookup(self, key: str) -> ActionResult | None: ...
    def payload(self, artifact: Artifact) -> bytes: ...
    def submit(self, node_id: str, inputs: list[Artifact]) -> Future[TaskResult] | None: ...
    def result(self, node_id: str, future: Future[TaskResult]) -> TaskResult: ...
    def settle(self, node_id: str, outputs: list[Artifact], status: NodeStatus) -> None: ...
    def record_action(self, node_id: str, key: str, inputs: list[Artifact], result: TaskResult) -> None: ...


# mapped nodes ------------------------------------------------------------------------------

def start_map(run: RunState, node_id: str, inputs: list[Artifact]) -> dict[Future[TaskResult], Pending]:
    p = run.planned[node_id]
    record = run.manifest.nodes[node_id]
    assert p.function is not None
    spec = p.function.spec
    try:
        elements = list_elements(run, inputs[0])
    except (WfeError, ValueError) as exc:
        _fail(run, node_id, f"cannot map over {inputs[0].digest}: {exc}")
        return {}
    record.elements = []
    pending: dict[Future[TaskResult], Pending] = {}
    rest = [a.digest for a in inputs[1:]]
    for index, (element, data) in enumerate(elements):
        element_inputs = [element, *inputs[1:]]
        key = action_key(spec.name, spec.version, p.config_digest, [element.digest, *rest])
        hit = run.lookup(key) if p.cache == "use" else None
        if hit is not None:
            record.elements.append({"action_key": key, "status": "cached", "outputs": _dump(hit.outputs)})
            continue
        record.elements.append({"action_key": key, "status": "running"})
        if data is not None:  # an element to compute: its blob is stored first (a cached one's was, when it ran)
            try:
                run.store.blobs.put(data)
            except WfeError as exc:
                _fail(run, node_id, f"cannot store element {index}: {exc}")
                return {}
            run.fresh.add({element.digest: data})  # handed to its task as they are, not read back from the store
        future = run.submit(node_id, element_inputs)
        if future is None:
            return {}
        pending[future] = Pending(node_id, key, element_inputs, index)
    run.map_pending[node_id] = len(pending)
    if not pending:
        _finish_map(run, node_id)
    else:
        record.status = "running"
        run.emit(node_id, record)
    return pending


def complete_element(run: RunState, pending: Pending, future: Future[TaskResult]) -> bool:
    """Record one element's result; True once the whole mapped node is settled."""
    node_id = pending.node_id
    record = run.manifest.nodes[node_id]
    assert record.elements is not None and pending.element is not None
    result = run.result(node_id, future)
    element = record.elements[pending.element]
    if result.outputs is None:
        element.update(status="failed", error=result.error)
        if record.error is None:
            record.error = f"element {pending.element}: {result.error}"
            record.traceback = result.traceback
    else:
        run.record_action(node_id, pending.key, pending.inputs, result)
        element.update(status="ran", outputs=_dump(result.outputs))
    run.map_pending[node_id] -= 1
    if run.map_pending[node_id] > 0:
        return False
    _finish_map(run, node_id)
    return True


def _finish_map(run: RunState, node_id: str) -> None:
    record = run.manifest.nodes[node_id]
    p = run.planned[node_id]
    elements = record.elements or []
    if any(e["status"] == "failed" for e in elements):
        _fail(run, node_id, record.error or "an element failed")
        return
    outputs = []
    for index, port in enumerate(p.outputs):
        listing = [e["outputs"][index] for e in elements]
        digest, size = run.store.blobs.put_sized(canonical_json(listing))
        outputs.append(Artifact(digest=digest, mime=ARTIFACT_LIST, size=size, name=port.name))
    ran = any(e["status"] == "ran" for e in elements)
    run.settle(node_id, outputs, "ran" if ran else "cached")


def list_elements(run: RunState, artifact: Artifact) -> list[tuple[Artifact, bytes | None]]:
    """The elements of a list output: the artifacts of an artifact list, or a JSON list's items as blobs.

    Each with the bytes of a blob not stored yet (a JSON item's): stored
    only for an element that is computed, so a cached element costs no write.
    """
    if mime_base(artifact.mime) == ARTIFACT_LIST:
        return [(Artifact.model_validate(item), None) for item in decode_json(value_bytes(run, artifact))]
    items = decode_json(value_bytes(run, artifact))
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list, got {type(items).__name__}")
    elements: list[tuple[Artifact, bytes | None]] = []
    for item in items:
        data = encode_json(item)
        elements.append((Artifact.made(digest_of(data), "application/json", len(data)), data))  # nothing to check
    return elements


def value_bytes(run: RunState, artifact: Artifact) -> bytes:
    """The bytes of any artifact: from this process's memory where it has them (a blob still being
    written behind, say), else from the store."""
    return run.payload(artifact)


_ARTIFACT_FIELDS = ("digest", "mime", "size", "name", "kind")


def _dump(outputs: list[Artifact]) -> list[dict[str, Any]]:
    """``a.model_dump(mode="json", exclude_none=True)`` for each, without the serialiser for the usual artifact.

    Once per element of a mapped node: its fields are strings and an int already, so the dict is made
    directly; an inline value (any JSON) goes through the serialiser as before.
    """
    return [
        {f: v for f in _ARTIFACT_FIELDS if (v := getattr(a, f)) is not None} if a.value is None
        else a.model_dump(mode="json", exclude_none=True)
        for a in outputs
    ]


def _fail(run: RunState, node_id: str, error: str) -> None:
    record = run.manifest.nodes[node_id]
    record.status = "failed"
    record.error = error
    record.duration = time.time() - (record.started or time.time())
    run.emit(node_id, record)


# sub-workflows and loops -----------------------------------------------------------------

def run_unit(run: RunState, node_id: str, inputs: list[Artifact]) -> None:
    """Settle a sub-workflow or loop node, running its inner workflow where the cache misses."""
    p = run.planned[node_id]
    record = run.manifest.nodes[node_id]
    assert p.inner is not None
    record.subruns = []
    if p.loop is None:
        outcome = _iteration(run, node_id, p.inner, inputs)
        if outcome is not None:
            run.settle(node_id, outcome[0], "ran" if outcome[1] else "cached")
        return
    names = [o.id for o in p.inner.graph.outputs]
    current = {port.id: artifact for port, artifact in zip(p.inner.graph.inputs, inputs, strict=True)}
    any_ran = False
    outputs: list[Artifact] = []
    for iteration in range(1, p.loop.max_iterations + 1):
        outcome = _iteration(run, node_id, p.inner, [current[port.id] for port in p.inner.graph.inputs])
        if outcome is None:
            return
        outputs, ran = outcome
        any_ran = any_ran or ran
        record.iterations = iteration
        produced = dict(zip(names, outputs, strict=True))
        for port in p.inner.graph.inputs:
            if port.id in produced:
                current[port.id] = produced[port.id]
        try:
            go_on = decode_json(value_bytes(run, produced[p.loop.condition]))
        except (WfeError, ValueError) as exc:
            _fail(run, node_id, f"iteration {iteration}: cannot read condition {p.loop.condition!r}: {exc}")
            return
        if not isinstance(go_on, bool):
            _fail(run, node_id, f"iteration {iteration}: condition {p.loop.condition!r} is {go_on!r}, not true/false")
            return
        if not go_on:
            break
    run.settle(node_id, outputs, "ran" if any_ran else "cached")


def _iteration(
    run: RunState, node_id: str, inner: InnerPlan, inputs: list[Artifact]
) -> tuple[list[Artifact], bool] | None:
    """One pass of the inner workflow as a cached unit: (outputs, whether anything ran), None if it failed."""
    p = run.planned[node_id]
    record = run.manifest.nodes[node_id]
    key = action_key(f"workflow:{inner.graph.name}", inner.version, p.config_digest, [a.digest for a in inputs])
    record.action_key = key
    hit = run.lookup(key)
    if hit is not None:
        return hit.outputs, False
    sub = _inner_run(run, inner, inputs)
    assert record.subruns is not None
    record.subruns.append(sub.manifest.run_id)
    failed = [n for n, r in sub.manifest.nodes.items() if r.status == "failed"]
    if failed:
        inner_record = sub.manifest.nodes[failed[0]]
        _fail(run, node_id, f"inner run {sub.manifest.run_id}, node {failed[0]!r}: {inner_record.error}")
        record.traceback = inner_record.traceback
        return None
    outputs = [
        sub.manifest.nodes[o.node].outputs[output_index(inner, o.node, o.port)] for o in inner.graph.outputs
    ]
    duration = (sub.manifest.finished or time.time()) - sub.manifest.started
    run.record_action(node_id, key, inputs, TaskResult(node_id, outputs, sub.manifest.started, duration))
    ran = any(r.status == "ran" for r in sub.manifest.nodes.values())
    return outputs, ran


def _inner_run(run: RunState, inner: InnerPlan, inputs: list[Artifact]) -> RunState:
    given = {port.id: artifact for port, artifact in zip(inner.graph.inputs, inputs, strict=True)}
    sub = run.inner(inner.graph, inner.nodes, inner.folder, given)
    sub.execute()
    return sub


# ephemeral outputs -----------------------------------------------------------------------

def recompute(run: RunState, digest: str) -> None:
    """Run again the node that produced ephemeral ``digest`` (its bytes were lost), waiting for it."""
    producer = run.producers.get(digest)
    if producer is None:
        raise WfeError(f"ephemeral input {digest} is not in memory and its producer is unknown")
    record: NodeRecord = run.manifest.nodes[producer]
    future = run.submit(producer, record.inputs)
    if future is None:
        raise WfeError(f"cannot recompute {producer!r} for its ephemeral output: {record.error}")
    result = run.result(producer, future)
    if result.outputs is None or digest not in run.memory:
        detail = result.error or "its output came out different"
        raise WfeError(f"recomputing {producer!r} for its ephemeral output failed: {detail}")
    record.recomputed = True



