"""Run records: an action's result, a node's record, the run manifest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

from .._shape import (
    Field,
    Record,
    boolean,
    dump_value,
    integer,
    list_of,
    mapping,
    number,
    one_of,
    optional,
    record,
    slots,
    text,
)
from ..graph._model import Artifact

_artifacts = list_of(record(Artifact))
_optional_text = optional(text())


class ActionResult(Record):
    """The action cache's value: what an action produced."""

    FIELDS = (
        Field("outputs", _artifacts),
        Field("function", text()),
        Field("version", text()),
        Field("config", text()),
        Field("inputs", list_of(text())),
        Field("created", number),
        Field("duration", number, 0.0),
        # A small config itself, as the canonical JSON its digest was taken of: it has no file of its own.
        Field("config_json", _optional_text, None),
    )
    __slots__ = slots(FIELDS)

    outputs: list[Artifact]
    function: str
    version: str
    config: str
    config_json: str | None
    inputs: list[str]
    created: float
    duration: float


NodeStatus = Literal["ran", "cached", "failed", "skipped", "pending", "running"]
NODE_STATUSES = ("ran", "cached", "failed", "skipped", "pending", "running")


RunStatus = Literal["running", "succeeded", "failed", "interrupted"]


class NodeRecord(Record):
    """What happened to one node in a run.

    Slotted: a run keeps one per node for its whole length. Keys it does not
    know (from a newer wfe) are ignored when a manifest is read.
    """

    FIELDS = (
        Field("status", one_of(*NODE_STATUSES), "pending"),
        Field("function", _optional_text, None),
        Field("version", _optional_text, None),
        Field("config", _optional_text, None),
        Field("action_key", _optional_text, None),
        Field("inputs", _artifacts, factory=list),
        Field("outputs", _artifacts, factory=list),
        Field("started", optional(number), None),
        Field("duration", optional(number), None),
        Field("error", _optional_text, None),
        Field("traceback", _optional_text, None),
        Field("log", _optional_text, None),  # digest of the captured output, if any
        Field("elements", optional(list_of(mapping())), None),  # a mapped node: key, status, outputs per element
        Field("iterations", optional(integer()), None),  # a loop node: how many iterations ran or were replayed
        Field("subruns", optional(list_of(text())), None),  # sub-workflow and loop nodes: their inner runs' ids
        Field("recomputed", optional(boolean), None),
        Field("cache", _optional_text, None),  # the node's cache policy, "recompute" or "skip"; absent for "use"
    )
    __slots__ = slots(FIELDS)
    EXTRA = "ignore"

    status: NodeStatus
    function: str | None
    version: str | None
    config: str | None
    action_key: str | None
    inputs: list[Artifact]
    outputs: list[Artifact]
    started: float | None
    duration: float | None
    error: str | None
    traceback: str | None
    log: str | None
    elements: list[dict[str, Any]] | None
    iterations: int | None
    subruns: list[str] | None
    recomputed: bool | None
    cache: str | None

    def _dump(self, json_mode: bool, exclude_none: bool, exclude: Iterable[str] | None) -> dict[str, Any]:
        if not exclude_none or exclude is not None:
            return super()._dump(json_mode, exclude_none, exclude)
        # The run record's own form, for every node at each checkpoint: its lists are of artifacts and strings.
        out = {name: value for name, value in zip(self._FIELD_NAMES, self._VALUES(self), strict=True)
               if value is not None}
        for name in ("inputs", "outputs"):
            out[name] = [a._dump(json_mode, True, None) for a in out[name]]
        for name in ("elements", "subruns"):
            if name in out:
                out[name] = dump_value(out[name], json_mode, True)
        return out

    def action_keys(self) -> Iterator[str]:
        """The action keys the node used: its own, or its elements' (which share the node's config)."""
        if self.action_key:
            yield self.action_key
        for element in self.elements or ():
            key = element.get("action_key")
            if isinstance(key, str):
                yield key

    @classmethod
    def pending(cls, function: str | None, version: str | None, config: str | None) -> NodeRecord:
        """A node's first record, from its plan (checked already): built without checking it again."""
        record_ = object.__new__(cls)
        for field in cls.FIELDS:
            object.__setattr__(record_, field.name, field.default if field.factory is None else field.factory())
        record_.function, record_.version, record_.config = function, version, config
        return record_


class RunManifest(Record):
    """A run's record: the workflow, its status and a record per node."""

    FIELDS = (
        Field("run_id", text()),
        Field("workflow", text()),
        Field("workflow_digest", text()),  # a blob holding the workflow's canonical JSON
        Field("parent", _optional_text, None),  # the run this one is a sub-workflow or loop iteration of
        Field("base_dir", _optional_text, None),  # where the workflow file was: modules and files are relative to it
        Field("status", one_of("running", "succeeded", "failed", "interrupted"), "running"),
        Field("started", number),
        Field("finished", optional(number), None),
        Field("owner", _optional_text, None),  # "host:pid" of its process: a "running" run whose process is gone died
        Field("nodes", mapping(record(NodeRecord)), factory=dict),
    )
    __slots__ = slots(FIELDS, "_extra")
    EXTRA = "allow"

    run_id: str
    workflow: str
    workflow_digest: str
    parent: str | None
    base_dir: str | None
    status: RunStatus
    started: float
    finished: float | None
    owner: str | None
    nodes: dict[str, NodeRecord]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node_record in self.nodes.values():
            counts[node_record.status] = counts.get(node_record.status, 0) + 1
        return counts
