"""The data model: artifacts, workflow graphs, function specs, action results, run manifests."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ._digest import validate_digest
from ._errors import WorkflowError

NODE_ID_PATTERN = r"[A-Za-z0-9_.-]+"
_NODE_ID_RE = re.compile(NODE_ID_PATTERN)
_MIME_RE = re.compile(r"[A-Za-z0-9*][A-Za-z0-9!#$&^_.+*-]*/[A-Za-z0-9*][A-Za-z0-9!#$&^_.+*-]*")
MAX_NODES = 100_000


def validate_mime(value: str) -> str:
    base = value.split(";", 1)[0].strip()
    if not _MIME_RE.fullmatch(base):
        raise ValueError(f"invalid MIME type {value!r}")
    return value


def check_node_id(value: str) -> str:
    if not _NODE_ID_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid node id {value!r}: use letters, digits, '_', '.', '-'")
    return value


@functools.lru_cache(maxsize=1024)  # a workflow names a handful of types, asked about several times per node
def mime_base(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=1024)
def mime_matches(pattern: str, mime: str) -> bool:
    """True if ``mime`` matches ``pattern`` (``*/*``, ``text/*`` or exact, parameters ignored)."""
    pattern, mime = mime_base(pattern), mime_base(mime)
    if pattern in ("*/*", mime):
        return True
    major, _, minor = pattern.partition("/")
    return minor == "*" and mime.partition("/")[0] == major


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
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
def _nodes_adapter() -> TypeAdapter[list[Node]]:
    return TypeAdapter(list[Node])


@functools.cache
def _edges_adapter() -> TypeAdapter[list[Edge]]:
    return TypeAdapter(list[Edge])


CANONICAL_SLICE = 256


class LoopSpec(BaseModel):
    """Run ``workflow`` repeatedly, feeding outputs back to inputs of the same name."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(max_length=1024)
    max_iterations: int = Field(ge=1, le=100_000)  # mandatory: a loop always ends
    condition: str = Field(min_length=1)  # an output of the workflow: JSON true to go on


# Node and Edge are slotted dataclasses, not models: a 10,000-node workflow holds 10,000 of each, and a
# model instance carries a dict, a set of the fields given and a dict of extras besides (about 0.5 KB).
@pydantic_dataclass(slots=True, config=ConfigDict(extra="forbid"))
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

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_node_id(value)

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return None if value is None else validate_mime(value)

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
        if self.file is not None and self.mime is None:
            raise ValueError(f"file node {self.id!r} needs a 'mime' type")
        if self.file is not None and self.config:
            raise ValueError(f"file node {self.id!r} takes no 'config'")
        return self


@pydantic_dataclass(slots=True, config=ConfigDict(extra="forbid"))
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

    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    node: str
    port: str | None = None  # the node's output port; its only output when omitted


class WorkflowGraph(BaseModel):
    """A validated DAG of nodes. Construct with :func:`load_workflow` or directly."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=128)
    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)
    inputs: list[WorkflowInput] = Field(default_factory=list)  # what a parent passes in, as source nodes
    outputs: list[WorkflowOutput] = Field(default_factory=list)  # what a parent gets back

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
        order = _topological_order(ids, [(e.source, e.target) for e in self.edges])
        object.__setattr__(self, "_order", order)
        return self

    @property
    def order(self) -> list[str]:
        """Input and node ids in a topological order (stable: file order where free)."""
        return list(self.__dict__.get("_order") or _topological_order(
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
        from ._digest import canonical_json

        fields = self.model_dump(mode="json", exclude_none=True, exclude={"nodes", "edges"})
        lists: dict[str, tuple[TypeAdapter[Any], list[Any]]] = {
            "nodes": (_nodes_adapter(), self.nodes), "edges": (_edges_adapter(), self.edges)
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
        from ._digest import digest_of

        return digest_of(self.canonical())


def _topological_order(ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
    position = {node_id: index for index, node_id in enumerate(ids)}
    children: dict[str, list[str]] = {node_id: [] for node_id in ids}
    indegree = dict.fromkeys(ids, 0)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    import heapq

    ready = [position[i] for i in ids if indegree[i] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node_id = ids[heapq.heappop(ready)]
        order.append(node_id)
        for child in children[node_id]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) != len(ids):
        remaining = {i for i in ids if indegree[i] > 0}
        raise ValueError("cycle: " + " -> ".join(_find_cycle(remaining, children)))
    return order


def _find_cycle(remaining: set[str], children: Mapping[str, list[str]]) -> list[str]:
    """One cycle among ``remaining``, the nodes a topological sort could not order, from its least id.

    ``remaining`` also holds nodes downstream of a cycle, which may have no child there; but every one
    of them has a parent there (else it would have been ordered), so walking up from any of them
    always reaches a cycle.
    """
    parents: dict[str, list[str]] = {}
    for source in sorted(remaining):
        for target in children[source]:
            if target in remaining:
                parents.setdefault(target, []).append(source)
    index: dict[str, int] = {}
    path: list[str] = []
    node = min(remaining)
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = parents[node][0]
    cycle = path[index[node]:][::-1]  # walked up; read down
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]


class InputSpec(BaseModel):
    """One declared input of a function: a MIME pattern, delivered decoded or as a local path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mime: str
    as_path: bool = False
    name: str | None = None

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)


OutputKind = Literal["persisted", "ephemeral", "inline"]
INLINE_LIMIT = 64 * 1024  # bytes of JSON an inline output may hold


class OutputSpec(BaseModel):
    """One declared output: its MIME type, an optional port name and how it is kept.

    - ``persisted`` (default): a blob in the store.
    - ``ephemeral``: kept in memory for the run, never written; a consumer
      that needs it after a restart makes the producer run again.
    - ``inline``: a small JSON value kept in the action record itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mime: str
    name: str | None = None
    kind: OutputKind = "persisted"

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)

    @model_validator(mode="after")
    def _inline_is_json(self) -> OutputSpec:
        base = mime_base(self.mime)
        if self.kind == "inline" and not (base == "application/json" or base.endswith("+json")):
            raise ValueError(f"an inline output must be JSON, not {self.mime}")
        return self


class FunctionSpec(BaseModel):
    """What the function store records for a name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    ref: str  # "module:qualname"
    version: str
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(OutputSpec(mime=v) if isinstance(v, str) else v for v in value)
        return value

    @property
    def output_mimes(self) -> tuple[str, ...]:
        return tuple(o.mime for o in self.outputs)


class ActionResult(BaseModel):
    """The action cache's value: what an action produced."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[Artifact]
    function: str
    version: str
    config: str
    inputs: list[str]
    created: float
    duration: float = 0.0


NodeStatus = Literal["ran", "cached", "failed", "skipped", "pending", "running"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]


@pydantic_dataclass(slots=True, config=ConfigDict(extra="ignore"))
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
    model_config = ConfigDict(extra="allow")

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


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    message = str(first.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if first.get("type") in ("unexpected_keyword_argument", "extra_forbidden"):
        message = "unknown key"
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def parse_workflow(document: Any, source: str = "workflow") -> WorkflowGraph:
    """Validate a decoded workflow document, raising WorkflowError with one line."""
    if not isinstance(document, dict):
        raise WorkflowError(f"{source}: expected a mapping with 'name' and 'nodes'")
    try:
        return WorkflowGraph.model_validate(document)
    except ValidationError as exc:
        raise WorkflowError(f"{source}: {_one_line(exc)}") from None


MAX_WORKFLOW_BYTES = 64 * 1024 * 1024


def load_workflow(path: str | Path) -> WorkflowGraph:
    """Load a workflow from a YAML or JSON file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:  # read() to the end: read(n) would first allocate n bytes
            if os.fstat(handle.fileno()).st_size > MAX_WORKFLOW_BYTES:
                raise WorkflowError(f"{path}: workflow file larger than {MAX_WORKFLOW_BYTES} bytes")
            raw = handle.read()
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: workflow file larger than {MAX_WORKFLOW_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    del raw
    try:
        # JSON by json.loads, not pydantic's JSON parsing: its decoded document lives outside Python's
        # allocator, and a large workflow's run would keep that memory without reusing it.
        document = json.loads(text) if path.suffix.lower() == ".json" else _load_yaml(text)
    except RecursionError:
        raise WorkflowError(f"{path}: document nested too deeply") from None
    except Exception as exc:  # yaml and json errors carry positions; keep the first line
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise WorkflowError(f"{path}: cannot parse: {detail}") from None
    if isinstance(document, dict):  # ours: each slice of nodes and edges can replace its dicts at once
        for key, adapter in (("nodes", _nodes_adapter), ("edges", _edges_adapter)):
            items = document.get(key)
            if isinstance(items, list) and len(items) > CANONICAL_SLICE:
                _validate_in_place(items, adapter())
    return parse_workflow(document, str(path))


MAX_EXPANDED_NODES = 10_000_000  # about what the largest workflow file could write out without aliases


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing a document its aliases expand absurdly ("billion laughs").

    A document with anchors is composed first and its size counted with each alias at its
    expanded size (memoised, so in time linear in the document), before any value is built.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if "&" in text:  # no anchor, no alias: nothing to expand
            _check_expansion(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _check_expansion(root: Any) -> None:
    """Raise ValueError if the composed YAML ``root`` contains itself or expands past the limit."""

    def parts(node: Any) -> list[Any]:
        return [part for pair in node.value for part in pair] if node.id == "mapping" else node.value

    sizes: dict[int, int] = {}  # expanded size by id of each collection counted (a scalar counts 1)
    entered: set[int] = set()  # collections whose parts are being counted: one met again contains itself
    stack: list[tuple[Any, bool]] = [(root, False)] if root.id != "scalar" else []
    while stack:
        node, counted = stack.pop()
        key = id(node)
        if counted:
            entered.discard(key)
            size = sizes[key] = 1 + sum([sizes.get(id(part), 1) for part in parts(node)])
            if size > MAX_EXPANDED_NODES:
                raise ValueError(f"aliases expand the document past {MAX_EXPANDED_NODES} nodes")
        elif key in entered:
            raise ValueError("an alias refers to a node that contains it")
        elif key not in sizes:
            entered.add(key)
            stack.append((node, True))
            stack.extend([(part, False) for part in parts(node) if part.id != "scalar" and id(part) not in sizes])


def _validate_in_place(items: list[Any], adapter: TypeAdapter[Any]) -> None:
    """Replace decoded nodes or edges by their dataclasses a slice at a time.

    A large workflow then never holds its whole decoded document and its whole graph at once.
    On the first invalid slice it stops: the graph's own validation reports the problem, with
    its place in the document (the slices before it hold dataclasses, which pass as they are).
    """
    for start in range(0, len(items), CANONICAL_SLICE):
        try:
            items[start:start + CANONICAL_SLICE] = adapter.validate_python(items[start:start + CANONICAL_SLICE])
        except ValidationError:
            return

