"""The data model: artifacts, workflow graphs, function specs, action results, run manifests."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


def mime_base(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def mime_matches(pattern: str, mime: str) -> bool:
    """True if ``mime`` matches ``pattern`` (``*/*``, ``text/*`` or exact, parameters ignored)."""
    pattern, mime = mime_base(pattern), mime_base(mime)
    if pattern in ("*/*", mime):
        return True
    major, _, minor = pattern.partition("/")
    return minor == "*" and mime.partition("/")[0] == major


class Artifact(BaseModel):
    """A reference to stored bytes: the digest names the bytes, the MIME type says what they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    mime: str
    size: int = Field(ge=0)
    name: str | None = None

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        return validate_digest(value)

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)


class Node(BaseModel):
    """One step: a function with a config, or a file taken in as a source."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(max_length=128)
    function: str | None = Field(default=None, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)
    file: str | None = None
    mime: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _NODE_ID_RE.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"invalid node id {value!r}: use letters, digits, '_', '.', '-'")
        return value

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return None if value is None else validate_mime(value)

    @model_validator(mode="after")
    def _kind(self) -> Node:
        if (self.function is None) == (self.file is None):
            raise ValueError(f"node {self.id!r} needs exactly one of 'function' or 'file'")
        if self.file is not None and self.mime is None:
            raise ValueError(f"file node {self.id!r} needs a 'mime' type")
        if self.file is not None and self.config:
            raise ValueError(f"file node {self.id!r} takes no 'config'")
        return self


class Edge(BaseModel):
    """``source`` feeds ``target``; ``mime`` picks which of the source's outputs."""

    model_config = ConfigDict(extra="allow")

    source: str
    target: str
    mime: str | None = None

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return None if value is None else validate_mime(value)


class WorkflowGraph(BaseModel):
    """A validated DAG of nodes. Construct with :func:`load_workflow` or directly."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=128)
    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _graph(self) -> WorkflowGraph:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"duplicate node id {node.id!r}")
            seen.add(node.id)
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in seen:
                    raise ValueError(f"edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}")
            if edge.source == edge.target:
                raise ValueError(f"cycle: {edge.source} -> {edge.source}")
        order = _topological_order([n.id for n in self.nodes], [(e.source, e.target) for e in self.edges])
        object.__setattr__(self, "_order", order)
        return self

    @property
    def order(self) -> list[str]:
        """Node ids in a topological order (stable: file order where free)."""
        return list(self.__dict__.get("_order") or _topological_order(
            [n.id for n in self.nodes], [(e.source, e.target) for e in self.edges]))

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def canonical(self) -> bytes:
        from ._digest import canonical_json

        return canonical_json(self.model_dump(mode="json", exclude_none=True))

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
    """One cycle among ``remaining`` (every node there lies on or after a cycle)."""
    start = min(remaining)
    path: list[str] = []
    index: dict[str, int] = {}
    node = start
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = next(c for c in children[node] if c in remaining)
    return path[index[node] :] + [node]


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


class FunctionSpec(BaseModel):
    """What the function store records for a name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    ref: str  # "module:qualname"
    version: str
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[str, ...] = ()

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for mime in value:
            validate_mime(mime)
        return value


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


class NodeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: NodeStatus = "pending"
    function: str | None = None
    version: str | None = None
    config: str | None = None
    action_key: str | None = None
    inputs: list[Artifact] = Field(default_factory=list)
    outputs: list[Artifact] = Field(default_factory=list)
    started: float | None = None
    duration: float | None = None
    error: str | None = None
    traceback: str | None = None
    log: str | None = None  # digest of the captured output, if any


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_id: str
    workflow: str
    workflow_digest: str  # a blob holding the workflow's canonical JSON
    base_dir: str | None = None  # where the workflow file was: its modules and files are relative to it
    status: RunStatus = "running"
    started: float
    finished: float | None = None
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
        with path.open("rb") as handle:
            raw = handle.read(MAX_WORKFLOW_BYTES + 1)
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: workflow file larger than {MAX_WORKFLOW_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecursionError:
        raise WorkflowError(f"{path}: document nested too deeply") from None
    except Exception as exc:  # yaml and json errors carry positions; keep the first line
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise WorkflowError(f"{path}: cannot parse: {detail}") from None
    return parse_workflow(document, str(path))

