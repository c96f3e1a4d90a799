"""The workflow model: artifacts, nodes, edges, the workflow graph and its canonical form."""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .._errors import WorkflowError
from ..store._digest import validate_digest
from ._errors_line import one_line
from ._mime import validate_mime
from ._order import topological_order

NODE_ID_PATTERN = r"[A-Za-z0-9_.-]+"


_NODE_ID_RE = re.compile(NODE_ID_PATTERN)


MAX_NODES = 100_000


def check_node_id(value: str) -> str:
    if not _NODE_ID_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid node id {value!r}: use letters, digits, '_', '.', '-'")
    return value


# Every model here (and in _specs and _manifest) is built on first use (``defer_build``): a run builds only the
# few it validates or dumps on their own, not each nested one besides (tests/test_imports.py checks which).
@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid", defer_build=True))
class Artifact:
    """A reference to stored bytes: the digest names the bytes, the MIME type says what they are.

    A frozen slotted dataclass (a run holds one per output of every node), with the two
    model methods it is used through: ``Artifact.model_validate(obj)`` and ``a.model_dump()``.
    """

    digest: str
    mime: str
    size: int = Field(ge=0)
    name: str | None = None
    kind: Literal["inline", "ephemeral"] | None = None  # None: a blob in the store
    value: Any = None  # an inline output's JSON value, kept in the action record

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        return validate_digest(value)

    @property
    def stored(self) -> bool:
        """True if the bytes are a blob in the store (not inline, not ephemeral)."""
        return self.kind is None

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)

    @classmethod
    def model_validate(cls, obj: Any) -> Artifact:
        return _artifact_adapter().validate_python(obj)

    @classmethod
    def made(
        cls,
        digest: str,
        mime: str,
        size: int,
        name: str | None = None,
        kind: Literal["inline", "ephemeral"] | None = None,
        value: Any = None,
    ) -> Artifact:
        """An artifact of parts wfe has just made or checked itself, built without checking them again.

        For every output of every node: a digest it computed, the MIME type and name
        of a validated output spec, a length. Like a model's ``model_construct``.
        """
        artifact = object.__new__(cls)
        for field, value_ in (("digest", digest), ("mime", mime), ("size", size), ("name", name), ("kind", kind),
                              ("value", value)):
            object.__setattr__(artifact, field, value_)
        return artifact

    def model_dump(self, *, mode: Literal["json", "python"] = "python", exclude_none: bool = False) -> dict[str, Any]:
        return _artifact_adapter().dump_python(self, mode=mode, exclude_none=exclude_none)  # type: ignore[no-any-return]


@functools.cache
def _artifact_adapter() -> TypeAdapter[Artifact]:
    return TypeAdapter(Artifact)


@functools.cache
def nodes_adapter() -> TypeAdapter[list[Node]]:
    return TypeAdapter(list[Node])


@functools.cache
def edges_adapter() -> TypeAdapter[list[Edge]]:
    return TypeAdapter(list[Edge])


CANONICAL_SLICE = 256

CachePolicy = Literal["use", "recompute", "skip"]
CACHE_POLICIES: tuple[CachePolicy, ...] = ("use", "recompute", "skip")


class LoopSpec(BaseModel):
    """Run ``workflow`` repeatedly, feeding outputs back to inputs of the same name."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    workflow: str = Field(max_length=1024)
    max_iterations: int = Field(ge=1, le=100_000)  # mandatory: a loop always ends
    condition: str = Field(min_length=1)  # an output of the workflow: JSON true to go on


# Node and Edge are slotted dataclasses, not models: a 10,000-node workflow holds 10,000 of each, and a
# model instance carries a dict, a set of the fields given and a dict of extras besides (about 0.5 KB).
@pydantic_dataclass(slots=True, config=ConfigDict(extra="forbid", defer_build=True))
class Node:
    """One step: a function with a config, or a file taken in as a source."""

    id: str = Field(max_length=128)
    function: str | None = Field(default=None, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)
    file: str | None = None
    mime: str | None = None
    workflow: str | None = Field(default=None, max_length=1024)  # a sub-workflow: file path or stored digest
    loop: LoopSpec | None = None
    map: bool = False  # run the function once per element of its first input
    cache: CachePolicy | None = None  # None: "use"; kept out of the workflow's canonical form

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_node_id(value)

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return None if value is None else validate_mime(value)

    @field_validator("cache")
    @classmethod
    def _cache(cls, value: CachePolicy | None) -> CachePolicy | None:
        return None if value == "use" else value

    @property
    def policy(self) -> CachePolicy:
        """The node's cache policy: ``"use"`` unless the workflow says ``recompute`` or ``skip``."""
        return self.cache or "use"

    @model_validator(mode="after")
    def _kind(self) -> Node:
        kinds = [k for k in ("function", "file", "workflow", "loop") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"node {self.id!r} needs exactly one of 'function', 'file', 'workflow' or 'loop'"
                + (f" (has {', '.join(kinds)})" if kinds else "")
            )
        if self.map and self.function is None:
            raise ValueError(f"node {self.id!r}: 'map' applies to function nodes only")
        if self.cache is not None and self.function is None:
            raise ValueError(f"node {self.id!r}: 'cache' applies to function nodes only")
        if self.file is not None and self.mime is None:
            raise ValueError(f"file node {self.id!r} needs a 'mime' type")
        if self.file is not None and self.config:
            raise ValueError(f"file node {self.id!r} takes no 'config'")
        return self


@pydantic_dataclass(slots=True, config=ConfigDict(extra="forbid", defer_build=True))
class Edge:
    """``source`` feeds ``target``; ``mime`` picks which of the source's outputs."""

    source: str
    target: str
    mime: str | None = None
    source_port: str | None = None  # which named output of the source
    target_port: str | None = None  # which named input of the target

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return None if value is None else validate_mime(value)


class WorkflowInput(BaseModel):
    """An input of a workflow used as a sub-workflow: a source node whose artifact the parent gives."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str = Field(max_length=128)
    mime: str

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_node_id(value)

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)


class WorkflowOutput(BaseModel):
    """An output of a workflow used as a sub-workflow: one output of one of its nodes."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str = Field(min_length=1, max_length=128)
    node: str
    port: str | None = None  # the node's output port; its only output when omitted


class WorkflowGraph(BaseModel):
    """A validated DAG of nodes. Construct with :func:`load_workflow` or directly."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str = Field(min_length=1, max_length=128)
    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)
    inputs: list[WorkflowInput] = Field(default_factory=list)  # what a parent passes in, as source nodes
    outputs: list[WorkflowOutput] = Field(default_factory=list)  # what a parent gets back

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data`` as a workflow; an invalid one is a one-line :class:`wfe.WorkflowError`.

        ``model_validate`` comes here too (pydantic calls an overridden
        ``__init__``), and turns the error back into its ValidationError.
        """
        from pydantic import ValidationError

        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise WorkflowError(one_line(exc)) from None

    @model_validator(mode="after")
    def _graph(self) -> WorkflowGraph:
        seen: set[str] = set()
        for port in self.inputs:
            if port.id in seen:
                raise ValueError(f"duplicate input id {port.id!r}")
            seen.add(port.id)
        # A large graph repeats the same strings (each id in its edges, each function name):
        # every repeat is made to point at one string, which leaves the values as they are.
        same: dict[str, str] = {}
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"duplicate node id {node.id!r}")
            seen.add(node.id)
            same[node.id] = node.id
            if node.function is not None:
                node.function = same.setdefault(node.function, node.function)
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in seen:
                    raise ValueError(f"edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}")
            edge.source, edge.target = same.get(edge.source, edge.source), same.get(edge.target, edge.target)
            if edge.source == edge.target:
                raise ValueError(f"cycle: {edge.source} -> {edge.source}")
        input_ids = {port.id for port in self.inputs}
        for edge in self.edges:
            if edge.target in input_ids:
                raise ValueError(f"edge {edge.source!r} -> {edge.target!r}: a workflow input takes no edges")
        names: set[str] = set()
        for out in self.outputs:
            if out.node not in seen or out.node in input_ids:
                raise ValueError(f"output {out.id!r} names unknown node {out.node!r}")
            if out.id in names:
                raise ValueError(f"duplicate output id {out.id!r}")
            names.add(out.id)
        ids = [port.id for port in self.inputs] + [n.id for n in self.nodes]
        order = topological_order(ids, [(e.source, e.target) for e in self.edges])
        object.__setattr__(self, "_order", order)
        return self

    @property
    def order(self) -> list[str]:
        """Input and node ids in a topological order (stable: file order where free)."""
        return list(self.__dict__.get("_order") or topological_order(
            [p.id for p in self.inputs] + [n.id for n in self.nodes], [(e.source, e.target) for e in self.edges]))

    def node(self, node_id: str) -> Node:
        index = self.__dict__.get("_index")
        if index is None:
            index = {node.id: node for node in self.nodes}
            object.__setattr__(self, "_index", index)
        return index[node_id]  # type: ignore[no-any-return]

    def input(self, input_id: str) -> WorkflowInput | None:
        return next((port for port in self.inputs if port.id == input_id), None)

    def canonical(self) -> bytes:
        """``canonical_json(self.model_dump(mode="json", exclude_none=True))``, made a slice at a time.

        Nodes and edges are dumped ``CANONICAL_SLICE`` at a time, so a large workflow never has
        a second copy of itself as a tree of dicts in memory; the bytes are the same.
        """
        from ..store._digest import canonical_json

        if len(self.nodes) <= CANONICAL_SLICE and len(self.edges) <= CANONICAL_SLICE:  # one slice: no adapters
            return canonical_json(self.model_dump(mode="json", exclude_none=True))
        fields = self.model_dump(mode="json", exclude_none=True, exclude={"nodes", "edges"})
        lists: dict[str, tuple[TypeAdapter[Any], list[Any]]] = {
            "nodes": (nodes_adapter(), self.nodes), "edges": (edges_adapter(), self.edges)
        }
        pieces = []
        for key in sorted([*fields, *lists]):
            if key in lists:
                adapter, items = lists[key]
                slices = (
                    canonical_json(adapter.dump_python(items[start:start + CANONICAL_SLICE], mode="json",
                                                       exclude_none=True))[1:-1]  # without its brackets
                    for start in range(0, len(items), CANONICAL_SLICE)
                )
                value = b"[" + b",".join(slices) + b"]"
            else:
                value = canonical_json(fields[key])
            pieces.append(canonical_json(key) + b":" + value)
        return b"{" + b",".join(pieces) + b"}"

    def digest(self) -> str:
        from ..store._digest import digest_of

        return digest_of(self.canonical())


OutputKind = Literal["persisted", "ephemeral", "inline"]
