"""Two runs side by side: the nodes whose action keys differ, and which part of the key changed.

A key is the digest of ``{function, version, config digest, input digests}``;
for each node the runs share, the parts that differ are named (a config by
its changed fields, as ``wfe explain`` names them; an input by its position,
its MIME type and the node that produced it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import WfeError
from ..ops._explain import config_diff
from ..ops._history import producers
from ..store._manifest import NodeRecord, RunManifest
from ..store._store import Store


@dataclass(frozen=True)
class Change:
    part: str  # "function", "version", "config", "config field", "input 2 (…)", "status", "outputs", "node"
    before: str  # empty where ``after`` says it all (a config field's "months: 6 -> 12")
    after: str


@dataclass
class NodeDiff:
    node_id: str
    status_a: str | None
    status_b: str | None
    changes: list[Change] = field(default_factory=list)

    @property
    def same_key(self) -> bool:
        return not any(c.part not in ("status", "outputs") for c in self.changes)


@dataclass
class Comparison:
    a: RunManifest
    b: RunManifest
    differing: list[NodeDiff]
    same: list[str]


def compare(store: Store, a: RunManifest, b: RunManifest) -> Comparison:
    """Every node of either run, split into those that differ (with what changed) and those that do not."""
    order = list(a.nodes) + [n for n in b.nodes if n not in a.nodes]
    made_a, made_b = producers(a), producers(b)
    differing, same = [], []
    for node_id in order:
        before, after = a.nodes.get(node_id), b.nodes.get(node_id)
        found = NodeDiff(node_id, before.status if before else None, after.status if after else None)
        if before is None or after is None:
            found.changes.append(Change("node", "present" if before else "absent", "present" if after else "absent"))
        else:
            found.changes.extend(_changes(store, before, after, made_a, made_b))
        (differing.append(found) if found.changes else same.append(node_id))
    return Comparison(a, b, differing, same)


def _changes(
    store: Store, before: NodeRecord, after: NodeRecord, made_a: dict[str, str], made_b: dict[str, str]
) -> list[Change]:
    changes: list[Change] = []
    if before.function != after.function:
        changes.append(Change("function", str(before.function or "file"), str(after.function or "file")))
    elif before.version != after.version:
        changes.append(Change("version", str(before.version), str(after.version)))
    if before.config != after.config:
        changes.extend(_config_changes(store, before, after))
    old = [a.digest for a in before.inputs]
    new = [a.digest for a in after.inputs]
    if len(old) != len(new):
        changes.append(Change("inputs", f"{len(old)} inputs", f"{len(new)} inputs"))
    for position, (x, y) in enumerate(zip(old, new, strict=False), start=1):
        if x != y:
            mime = after.inputs[position - 1].mime
            source = made_b.get(y) or made_a.get(x) or "?"
            changes.append(Change(f"input {position} ({mime}, from {source})", x, y))
    if before.status != after.status and {before.status, after.status} != {"ran", "cached"}:
        changes.append(Change("status", before.status, after.status))  # ran in one, a hit in the other: no change
    if [a.digest for a in before.outputs] != [a.digest for a in after.outputs]:
        changes.append(Change("outputs", _digests(before), _digests(after)))
    return changes


def _config_changes(store: Store, before: NodeRecord, after: NodeRecord) -> list[Change]:
    try:
        old = store.config(before.config, before.action_keys()) if before.config else {}
        new = store.config(after.config, after.action_keys()) if after.config else {}
    except WfeError as exc:
        return [Change("config", str(before.config), f"{after.config} ({' '.join(str(exc).split())})")]
    fields = config_diff(old, new)
    if not fields:
        return [Change("config", str(before.config), str(after.config))]
    return [Change("config field", "", field_change) for field_change in fields]


def _digests(record: NodeRecord) -> str:
    return ", ".join(a.digest[7:19] for a in record.outputs) or "none"
