"""Why a node ran instead of coming from the cache: its action key, taken apart.

An action key digests ``{function, version, config digest, input digests}``.
Compared with the nearest earlier run of the same workflow that has the
node, exactly one of those parts (or more) changed, or none did and the
cache entry itself was missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import NotFoundError, WfeError
from ..store._manifest import NodeRecord, RunManifest
from ..store._store import Store
from ._history import iter_runs, load_run, producers

POLICY_REASONS = {
    "recompute": "its cache policy is 'recompute': it runs on every run and replaces its action cache entry",
    "skip": "its cache policy is 'skip': it runs on every run and writes no action cache entry",
}


@dataclass
class Explanation:
    """What changed in a node's action key between ``previous`` and ``run``."""

    run_id: str
    node_id: str
    status: str
    previous_run: str | None = None
    reasons: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = f"node {self.node_id!r} in run {self.run_id}: {self.status}"
        if self.previous_run:
            head += f" (compared with run {self.previous_run})"
        return "\n".join([head, *(f"  - {reason}" for reason in self.reasons)])


def explain(store: Store, run: str, node_id: str) -> Explanation:
    """Explain node ``node_id`` of run ``run``; NotFoundError if the run lacks that node."""
    manifest = load_run(store, run)
    record = manifest.nodes.get(node_id)
    if record is None:
        known = ", ".join(sorted(manifest.nodes)) or "none"
        raise NotFoundError(f"run {manifest.run_id} has no node {node_id!r} (nodes: {known})")
    found = Explanation(manifest.run_id, node_id, record.status)
    if record.function is None:
        found.reasons.append(_file_reason(store, manifest, node_id, record))
        return found
    if record.status == "cached":
        found.reasons.append(f"the action cache held key {record.action_key}: the function was not called")
        return found
    if record.status in ("skipped", "pending", "running"):
        found.reasons.append(f"it did not run: {record.error or record.status}")
        return found
    policy = POLICY_REASONS.get(record.cache or "")  # a ran node whose policy made it run, whatever its key
    previous = None if policy else _previous(store, manifest, node_id)
    if policy:
        found.reasons.append(policy)
    elif previous is None:
        found.reasons.append(
            f"no earlier run of workflow {manifest.workflow!r} has node {node_id!r} with an action key: "
            "it ran because nothing like it had run before"
        )
    else:
        found.previous_run = previous.run_id
        before = previous.nodes[node_id]
        found.reasons.extend(_key_changes(store, manifest, previous, node_id, record, before))
        if not found.reasons:
            found.reasons.append(_same_key_reason(store, record, before))
    if record.status == "failed" and record.error:
        found.reasons.append(f"it failed: {record.error}")
    return found


def _previous(store: Store, manifest: RunManifest, node_id: str) -> RunManifest | None:
    for candidate in iter_runs(store, workflow=manifest.workflow):
        if candidate.run_id >= manifest.run_id:
            continue  # ids sort by start time: only earlier runs count
        before = candidate.nodes.get(node_id)
        if before is not None and before.action_key is not None:
            return candidate
    return None


def _key_changes(
    store: Store, run: RunManifest, previous: RunManifest, node_id: str, now: NodeRecord, before: NodeRecord
) -> list[str]:
    reasons: list[str] = []
    if now.function != before.function:
        reasons.append(f"the node now calls function {now.function!r} instead of {before.function!r}")
    elif now.version != before.version:
        reasons.append(f"function {now.function!r} changed: version {before.version} -> {now.version}")
    if now.config != before.config:
        reasons.append(_config_reason(store, before, now))
    now_inputs = [a.digest for a in now.inputs]
    before_inputs = [a.digest for a in before.inputs]
    if len(now_inputs) != len(before_inputs):
        reasons.append(f"it takes {len(now_inputs)} inputs now, {len(before_inputs)} before")
    made_now, made_before = producers(run), producers(previous)
    for position, (new, old) in enumerate(zip(now_inputs, before_inputs, strict=False), start=1):
        if new == old:
            continue
        source = made_now.get(new) or made_before.get(old) or "?"
        mime = now.inputs[position - 1].mime
        hint = f" (see `wfe explain {run.run_id} {source}`)" if source != "?" else ""
        reasons.append(f"input {position} ({mime}, from node {source!r}) changed: {old} -> {new}{hint}")
    return reasons


def _config_reason(store: Store, before: NodeRecord, now: NodeRecord) -> str:
    head = f"its config changed: {before.config} -> {now.config}"
    try:
        old = store.config(before.config, before.action_keys()) if before.config else {}
        new = store.config(now.config, now.action_keys()) if now.config else {}
    except WfeError:
        return head + " (a config document is no longer in the store)"
    changes = config_diff(old, new)
    return f"{head}: " + "; ".join(changes) if changes else head


def config_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Field-by-field differences of two JSON documents, dotted paths first-level down."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                changes.append(f"{where} added ({_short(new[key])})")
            elif key not in new:
                changes.append(f"{where} removed (was {_short(old[key])})")
            elif old[key] != new[key]:
                changes.extend(config_diff(old[key], new[key], where))
        return changes
    if old == new:
        return []
    return [f"{path or '(whole config)'}: {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _same_key_reason(store: Store, now: NodeRecord, before: NodeRecord) -> str:
    key = now.action_key
    if key is None:
        return "no action key was recorded"
    entry = store.actions.lookup(key)
    if entry is None:
        return (
            f"the action key is unchanged ({key}), but the cache had no entry for it when the run looked "
            "(never written because it failed before, or dropped by gc or verify --repair)"
        )
    missing = [a.digest for a in before.outputs if not store.blobs.exists(a.digest)]
    if missing:
        gone = ", ".join(missing)
        return f"the action key is unchanged ({key}), but output blobs of the cached result were gone: {gone}"
    return f"the action key is unchanged ({key}) and the cache has it: the run was forced (--force)"


def _file_reason(store: Store, manifest: RunManifest, node_id: str, record: NodeRecord) -> str:
    digest = record.outputs[0].digest if record.outputs else None
    if digest is None:
        return "a file node that produced nothing"
    if record.status == "cached":
        return f"a file node: its content {digest} was already in the store"
    previous = _previous_file(store, manifest, node_id)
    if previous is None:
        return f"a file node: its content {digest} was new to the store"
    return f"a file node: its content changed from {previous} to {digest}"


def _previous_file(store: Store, manifest: RunManifest, node_id: str) -> str | None:
    for candidate in iter_runs(store, workflow=manifest.workflow):
        before = candidate.nodes.get(node_id)
        if candidate.run_id < manifest.run_id and before is not None and before.outputs:
            return before.outputs[0].digest
    return None
