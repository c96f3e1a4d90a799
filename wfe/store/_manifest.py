"""Run records: an action's result, a node's record, the run manifest."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..graph._model import Artifact


class ActionResult(BaseModel):
    """The action cache's value: what an action produced."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    outputs: list[Artifact]
    function: str
    version: str
    config: str
    inputs: list[str]
    created: float
    duration: float = 0.0


NodeStatus = Literal["ran", "cached", "failed", "skipped", "pending", "running"]


RunStatus = Literal["running", "succeeded", "failed", "interrupted"]


@pydantic_dataclass(slots=True, config=ConfigDict(extra="ignore", defer_build=True))
class NodeRecord:
    """What happened to one node in a run.

    A slotted dataclass rather than a model: a run keeps one per node for its
    whole length, and this takes a fifth of the memory. Keys it does not know
    (from a newer wfe) are ignored when a manifest is read.
    """

    status: NodeStatus = "pending"
    function: str | None = None
    version: str | None = None
    config: str | None = None
    action_key: str | None = None
    inputs: list[Artifact] = dataclasses.field(default_factory=list)
    outputs: list[Artifact] = dataclasses.field(default_factory=list)
    started: float | None = None
    duration: float | None = None
    error: str | None = None
    traceback: str | None = None
    log: str | None = None  # digest of the captured output, if any
    elements: list[dict[str, Any]] | None = None  # a mapped node: action key, status, outputs per element
    iterations: int | None = None  # a loop node: how many iterations ran or were replayed
    subruns: list[str] | None = None  # sub-workflow and loop nodes: the run ids of their inner runs
    recomputed: bool | None = None  # an ephemeral output of it was lost and computed again for a consumer
    cache: str | None = None  # the node's cache policy, "recompute" or "skip"; absent for "use"

    @classmethod
    def pending(cls, function: str | None, version: str | None, config: str | None) -> NodeRecord:
        """A node's first record, from its plan (checked already): built without checking it again."""
        record = object.__new__(cls)
        for name, default, factory in _node_record_defaults():
            setattr(record, name, default if factory is dataclasses.MISSING else factory())
        record.function, record.version, record.config = function, version, config
        return record


@functools.cache
def _node_record_defaults() -> tuple[tuple[str, Any, Any], ...]:
    return tuple((f.name, f.default, f.default_factory) for f in dataclasses.fields(NodeRecord))


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    run_id: str
    workflow: str
    workflow_digest: str  # a blob holding the workflow's canonical JSON
    parent: str | None = None  # the run this one is a sub-workflow or loop iteration of
    base_dir: str | None = None  # where the workflow file was: its modules and files are relative to it
    status: RunStatus = "running"
    started: float
    finished: float | None = None
    owner: str | None = None  # "host:pid" of the process running it: a "running" run whose process is gone died
    nodes: dict[str, NodeRecord] = Field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.nodes.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts
