"""The workflow model: artifacts, nodes, edges, the workflow graph and its canonical form."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from .._errors import RecordError, WorkflowError
from .._shape import (
    Field,
    Record,
    anything,
    boolean,
    integer,
    list_of,
    mapping,
    one_of,
    optional,
    record,
    slots,
    text,
)
from ..store._digest import validate_digest
from ._mime import validate_mime
from ._order import topological_order

NODE_ID_PATTERN = r"[A-Za-z0-9_.-]+"


_NODE_ID_RE = re.compile(NODE_ID_PATTERN)


MAX_NODES = 100_000


def check_node_id(value: str) -> str:
    if not _NODE_ID_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid node id {value!r}: use letters, digits, '_', '.', '-'")
    return value


def _digest(value: str) -> str:
    return validate_digest(value)


_mime = text(then=validate_mime)
_optional_mime = optional(_mime)


class Artifact(Record):
    """A reference to stored bytes: the digest names the bytes, the MIME type says what they are.

    Frozen and slotted: a run holds one per output of every node.
    """

    FIELDS = (
        Field("digest", text(then=_digest)),
        Field("mime", _mime),
        Field("size", integer(ge=0)),
        Field("name", optional(text()), None),
        Field("kind", optional(one_of("inline", "ephemeral")), None),  # None: a blob in the store
        Field("value", anything, None),  # an inline output's JSON value, kept in the action record
    )
    __slots__ = slots(FIELDS, "_plain")  # _plain: its JSON dump without nulls, made once (it never changes)
    FROZEN = True

    digest: str
    mime: str
    size: int
    name: str | None
    kind: Literal["inline", "ephemeral"] | None
    value: Any

    def __init__(self, digest: str, mime: str, size: int, name: str | None = None,
                 kind: Literal["inline", "ephemeral"] | None = None, value: Any = None) -> None:
        self._fill({"digest": digest, "mime": mime, "size": size, "name": name, "kind": kind, "value": value}, ())

    @property
    def stored(self) -> bool:
        """True if the bytes are a blob in the store (not inline, not ephemeral)."""
        return self.kind is None

    def _dump(self, json_mode: bool, exclude_none: bool, exclude: Iterable[str] | None) -> dict[str, Any]:
        if not exclude_none or exclude is not None or self.value is not None:
            return super()._dump(json_mode, exclude_none, exclude)
        try:  # a run dumps each artifact once per record naming it, and every record at each checkpoint
            plain: dict[str, Any] = object.__getattribute__(self, "_plain")
        except AttributeError:
            plain = super()._dump(json_mode, exclude_none, exclude)  # no containers in it: a copy is a dump
            object.__setattr__(self, "_plain", plain)
        return dict(plain)

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
        of a validated output spec, a length.
        """
        artifact = object.__new__(cls)
        put = object.__setattr__
        put(artifact, "digest", digest)
        put(artifact, "mime", mime)
        put(artifact, "size", size)
        put(artifact, "name", name)
        put(artifact, "kind", kind)
        put(artifact, "value", value)
        return artifact


CANONICAL_SLICE = 256

CachePolicy = Literal["use", "recompute", "skip"]
CACHE_POLICIES: tuple[CachePolicy, ...] = ("use", "recompute", "skip")


class LoopSpec(Record):
    """Run ``workflow`` repeatedly, feeding outputs back to inputs of the same name."""

    FIELDS = (
        Field("workflow", text(max_length=1024)),
        Field("max_iterations", integer(ge=1, le=100_000)),  # mandatory: a loop always ends
        Field("condition", text(min_length=1)),  # an output of the workflow: JSON true to go on
    )
    __slots__ = slots(FIELDS)

    workflow: str
    max_iterations: int
    condition: str


def _cache_policy(value: Any, where: Any) -> CachePolicy | None:
    policy = one_of(*CACHE_POLICIES)(value, where)
    return None if policy == "use" else policy


class Node(Record):
    """One step: a function with a config, or a file taken in as a source.

    Slotted: a 10,000-node workflow holds 10,000 of them.
    """

    FIELDS = (
        Field("id", text(max_length=128, then=check_node_id)),
        Field("function", optional(text(max_length=256)), None),
        Field("config", mapping(), factory=dict),
        Field("file", optional(text()), None),
        Field("mime", _optional_mime, None),
        Field("workflow", optional(text(max_length=1024)), None),  # a sub-workflow: file path or stored digest
        Field("loop", optional(record(LoopSpec)), None),
        Field("map", boolean, False),  # run the function once per element of its first input
        Field("cache", optional(_cache_policy), None),  # None: "use"; kept out of the workflow's canonical form
    )
    __slots__ = slots(FIELDS)

    id: str
    function: str | None
    config: dict[str, Any]
    file: str | None
    mime: str | None
    workflow: str | None
    loop: LoopSpec | None
    map: bool
    cache: CachePolicy | None

    @property
    def policy(self) -> CachePolicy:
        """The node's cache policy: ``"use"`` unless the workflow says ``recompute`` or ``skip``."""
        return self.cache or "use"

    def _after(self) -> None:
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


class Edge(Record):
    """``source`` feeds ``target``; ``mime`` picks which of the source's outputs."""

    FIELDS = (
        Field("source", text()),
        Field("target", text()),
        Field("mime", _optional_mime, None),
        Field("source_port", optional(text()), None),  # which named output of the source
        Field("target_port", optional(text()), None),  # which named input of the target
    )
    __slots__ = slots(FIELDS)

    source: str
    target: str
    mime: str | None
    source_port: str | None
    target_port: str | None


class WorkflowInput(Record):
    """An input of a workflow used as a sub-workflow: a source node whose artifact the parent gives."""

    FIELDS = (Field("id", text(max_length=128, then=check_node_id)), Field("mime", _mime))
    __slots__ = slots(FIELDS)

    id: str
    mime: str


class WorkflowOutput(Record):
    """An output of a workflow used as a sub-workflow: one output of one of its nodes."""

    FIELDS = (
        Field("id", text(min_length=1, max_length=128)),
        Field("node", text()),
        Field("port", optional(text()), None),  # the node's output port; its only output when omitted
    )
    __slots__ = slots(FIELDS)

    id: str
    node: str
    port: str | None


class WorkflowGraph(Record):
    """A validated DAG of nodes. Construct with :func:`load_workflow` or directly."""

    FIELDS = (
        Field("name", text(min_length=1, max_length=128)),
        Field("nodes", list_of(record(Node), min_length=1, max_length=MAX_NODES)),
        Field("edges", list_of(record(Edge)), factory=list),
        Field("modules", list_of(text()), factory=list),
        Field("inputs", list_of(record(WorkflowInput)), factory=list),  # what a parent passes in, as source nodes
        Field("outputs", list_of(record(WorkflowOutput)), factory=list),  # what a parent gets back
    )
    __slots__ = slots(FIELDS, "_extra", "_order", "_index")
    EXTRA = "allow"

    name: str
    nodes: list[Node]
    edges: list[Edge]
    modules: list[str]
    inputs: list[WorkflowInput]
    outputs: list[WorkflowOutput]

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data`` as a workflow; an invalid one is a one-line :class:`wfe.WorkflowError`."""
        try:
            self._fill(data, ())
        except RecordError as exc:
            raise WorkflowError(str(exc)) from None

    def _after(self) -> None:
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
        object.__setattr__(self, "_order", topological_order(ids, [(e.source, e.target) for e in self.edges]))

    @property
    def order(self) -> list[str]:
        """Input and node ids in a topological order (stable: file order where free)."""
        return list(getattr(self, "_order", None) or topological_order(
            [p.id for p in self.inputs] + [n.id for n in self.nodes], [(e.source, e.target) for e in self.edges]))

    def node(self, node_id: str) -> Node:
        index = getattr(self, "_index", None)
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
        lists: dict[str, list[Node] | list[Edge]] = {"nodes": self.nodes, "edges": self.edges}
        pieces = []
        for key in sorted([*fields, *lists]):
            if key in lists:
                items = lists[key]
                slices = (
                    canonical_json([item.model_dump(mode="json", exclude_none=True)
                                    for item in items[start:start + CANONICAL_SLICE]])[1:-1]  # without brackets
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
