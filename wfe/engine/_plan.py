"""Planning: resolve every node and wire its inputs, before anything runs.

A node's inputs come from its incoming edges. An edge may name the source's
output port (``source_port``) and the target's input port
(``target_port``); inputs it leaves open are matched by MIME type, in edge
order. A match that could go more than one way is an error naming the
candidates. Sub-workflows and loops are planned recursively, so every
error in an inner workflow is found before the outer one starts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._errors import UnknownFunctionError, WfeError, WorkflowError
from ..graph._codecs import ARTIFACT_LIST, decode_json, is_json
from ..graph._functions import Registered, load_workflow_modules, resolve
from ..graph._load import load_workflow, parse_workflow
from ..graph._mime import mime_base, mime_matches
from ..graph._model import CachePolicy, LoopSpec, Node, WorkflowGraph
from ..graph._signature import check_call
from ..store._digest import canonical_json, digest_json, digest_of, is_digest

NodeKind = Literal["input", "file", "function", "map", "workflow", "loop"]
MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class Port:
    name: str | None
    mime: str
    kind: str = "persisted"


@dataclass(frozen=True, slots=True)
class InPort:
    name: str | None
    mime: str


@dataclass
class InnerPlan:
    """A sub-workflow, planned: what a workflow or loop node runs."""

    graph: WorkflowGraph
    folder: Path
    nodes: list[PlannedNode]
    version: str  # covers the inner graph and every function version in it, recursively


@dataclass(slots=True)
class PlannedNode:
    node_id: str
    function: Registered | None
    file: Path | None  # a file node's file, checked; None if a rerun has its blob and need not read it
    mime: str | None
    config_digest: str
    # Tuples, not lists: a plan holds one of each per node, and neither changes once planned.
    sources: tuple[tuple[str, int], ...]  # (upstream node, output index) per declared input
    upstream: tuple[str, ...]
    kind: NodeKind = "function"
    outputs: list[Port] = field(default_factory=list)
    inner: InnerPlan | None = None
    loop: LoopSpec | None = None
    config_json: bytes = b""  # the canonical JSON its config digest was taken of
    cache: CachePolicy = "use"  # a function node's cache policy (see the runner's record_action)

    @property
    def version(self) -> str:
        if self.function is not None:
            return self.function.spec.version
        return self.inner.version if self.inner is not None else ""


def plan(
    graph: WorkflowGraph,
    base_dir: Path,
    store: Any = None,
    _stack: tuple[str, ...] = (),
    *,
    allow_paths: Sequence[Path] = (),
    unread: Collection[str] = (),
) -> list[PlannedNode]:
    """Resolve functions and sub-workflows and wire inputs; raise WorkflowError before anything runs.

    A file node's file must be a regular file inside ``base_dir`` or inside one of ``allow_paths``
    (resolved paths), symbolic links resolved. The file nodes named in ``unread`` are not checked:
    their file is not to be read (a rerun has their blob).
    """
    planned: dict[str, PlannedNode] = {}
    # One list of ports per function and kind, shared by its nodes (neither is changed after planning).
    ports: dict[tuple[int, NodeKind], tuple[list[InPort], list[Port]]] = {}
    incoming: dict[str, list[Any]] = {node_id: [] for node_id in graph.order}
    for edge in graph.edges:
        incoming[edge.target].append(edge)
    for node_id in graph.order:
        port = graph.input(node_id)
        if port is not None:
            outputs = [Port(node_id, port.mime)]
            planned[node_id] = PlannedNode(node_id, None, None, port.mime, "", (), (), "input", outputs)
            continue
        node = graph.node(node_id)
        upstream = tuple(dict.fromkeys(edge.source for edge in incoming[node_id]))
        if node.file is not None:
            if upstream:
                raise WorkflowError(f"file node {node_id!r} cannot have inputs (edge from {upstream[0]!r})")
            mime = node.mime or "application/octet-stream"
            path = None if node_id in unread else file_path(node_id, node.file, base_dir, allow_paths)
            planned[node_id] = PlannedNode(node_id, None, path, mime, "", (), (), "file", [Port(None, mime)])
            continue
        try:
            config_json = canonical_json(node.config)
            config_digest = digest_of(config_json)
        except (ValueError, RecursionError) as exc:
            raise WorkflowError(f"node {node_id!r}: config is not storable JSON: {exc}") from None
        entry: Registered | None = None
        inner: InnerPlan | None = None
        if node.function is not None:
            try:
                entry = resolve(node.function)
            except UnknownFunctionError as exc:
                raise UnknownFunctionError(f"node {node_id!r}: {exc}") from None
            kind: NodeKind = "map" if node.map else "function"
            check_call(node_id, entry.name, entry.func, len(entry.inputs), node.config)
            if kind == "map":
                if not entry.spec.inputs:
                    raise WorkflowError(f"mapped node {node_id!r}: {entry.name} takes no input to map over")
                if any(o.kind == "ephemeral" for o in entry.spec.outputs):
                    raise WorkflowError(f"mapped node {node_id!r}: element outputs cannot be ephemeral")
            shared = ports.get((id(entry), kind))
            if shared is None:
                shared = ports[id(entry), kind] = (
                    [InPort(i.name, i.mime) for i in entry.spec.inputs],
                    [Port(o.name, ARTIFACT_LIST) if kind == "map" else Port(o.name, o.mime, o.kind)
                     for o in entry.spec.outputs],
                )
            declared, outputs = shared
        else:
            kind = "loop" if node.loop is not None else "workflow"
            reference = node.loop.workflow if node.loop is not None else str(node.workflow)
            inner = plan_inner(node, reference, base_dir, store, _stack, allow_paths)
            declared = [InPort(p.id, p.mime) for p in inner.graph.inputs]
            outputs = [Port(o.id, _inner_output_mime(inner, o.node, o.port)) for o in inner.graph.outputs]
            if node.loop is not None:
                _check_loop(node_id, node.loop, inner, outputs)
        sources = _wire(node_id, kind, declared, incoming[node_id], planned)
        planned[node_id] = PlannedNode(
            node_id, entry, None, None, config_digest, sources, upstream, kind, outputs, inner, node.loop, config_json,
            node.policy,
        )
    return list(planned.values())


def file_path(node_id: str, name: str, folder: Path, allow_paths: Sequence[Path] = ()) -> Path:
    """The resolved path of a file node's file; WorkflowError unless it is a regular file one may read.

    That is: inside the workflow's ``folder`` or one of ``allow_paths`` once symbolic links are
    resolved (a workflow file is no licence to read the machine), and a regular file (a FIFO would
    hang the run, a device such as /dev/zero would fill the store).
    """
    try:
        path = (folder / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL in the name
        raise WorkflowError(f"node {node_id!r}: file {name!r} is no path to read: {exc}") from None
    if not any(path.is_relative_to(root) for root in (folder.resolve(), *allow_paths)):
        raise WorkflowError(
            f"node {node_id!r}: file {name!r} is outside the workflow's folder {folder.resolve()}; "
            "allow it with --allow-path"
        )
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise WorkflowError(f"node {node_id!r}: cannot read file {name!r}: {exc.strerror or exc}") from None
    check_regular(node_id, name, mode)
    return path


def check_regular(node_id: str, name: str, mode: int) -> None:
    """WorkflowError unless ``mode`` (from a stat) is a regular file's."""
    if stat.S_ISREG(mode):
        return
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    kind = next((what for test, what in kinds if test(mode)), "not a file")
    raise WorkflowError(f"node {node_id!r}: file {name!r} is {kind}; only a regular file can be taken in")


def _wire(node_id: str, kind: NodeKind, declared: list[InPort], edges: list[Any],
          planned: dict[str, PlannedNode]) -> tuple[tuple[str, int], ...]:
    """Pick the upstream output for each declared input."""
    open_candidates: list[tuple[str, int, Port]] = []
    chosen: dict[int, tuple[str, int]] = {}
    for edge in edges:
        producer = planned[edge.source]
        offered = list(enumerate(producer.outputs))
        if edge.source_port is not None:
            offered = [(i, p) for i, p in offered if p.name == edge.source_port]
            if not offered:
                names = ", ".join(str(p.name) for p in producer.outputs if p.name) or "none named"
                raise WorkflowError(f"{edge.source!r} has no output port {edge.source_port!r} (ports: {names})")
        if edge.mime is not None:
            offered = [(i, p) for i, p in offered if mime_matches(edge.mime, p.mime)]
            if not offered:
                raise WorkflowError(
                    f"edge {edge.source!r} -> {node_id!r} asks for {edge.mime}, but {edge.source!r} produces "
                    f"{', '.join(p.mime for p in producer.outputs) or 'nothing'}"
                )
        if edge.target_port is None:
            open_candidates.extend((edge.source, i, p) for i, p in offered)
            continue
        slot = next((n for n, d in enumerate(declared) if d.name == edge.target_port), None)
        if slot is None:
            names = ", ".join(str(d.name) for d in declared if d.name) or "none named"
            raise WorkflowError(f"{node_id!r} has no input port {edge.target_port!r} (ports: {names})")
        if len(offered) != 1:
            raise WorkflowError(
                f"edge {edge.source!r} -> {node_id}.{edge.target_port} is ambiguous: {edge.source!r} offers "
                f"{', '.join(_label(edge.source, p) for _, p in offered)}; name a source_port"
            )
        if slot in chosen:
            raise WorkflowError(f"input port {edge.target_port!r} of {node_id!r} is fed by two edges")
        chosen[slot] = (edge.source, offered[0][0])
    used: set[tuple[str, int]] = set()
    for slot, wanted in enumerate(declared):
        if slot in chosen:
            continue
        mapped = kind == "map" and slot == 0

        def fits(port: Port, wanted: InPort = wanted, mapped: bool = mapped) -> bool:
            if mapped:  # one element per call: the upstream is a list of them
                return mime_base(port.mime) == ARTIFACT_LIST or (is_json(port.mime) and is_json(wanted.mime))
            return mime_matches(wanted.mime, port.mime)

        matching = [(s, i, p) for s, i, p in open_candidates if (s, i) not in used and fits(p)]
        if not matching:
            offered_all = ", ".join(_label(s, p) for s, _, p in open_candidates) or "no upstream nodes"
            what = f"a list of {wanted.mime}" if mapped else wanted.mime
            raise WorkflowError(
                f"node {node_id!r} needs an input of type {what}"
                + (f" (port {wanted.name!r})" if wanted.name else "")
                + f" that no upstream node produces (upstream: {offered_all})"
            )
        if len(matching) > 1:
            rivals = [d for n, d in enumerate(declared) if n >= slot and n not in chosen
                      and any(mime_matches(d.mime, p.mime) for _, _, p in matching)]
            if len(rivals) < len(matching):
                raise WorkflowError(
                    f"node {node_id!r}: input {wanted.name or wanted.mime} is ambiguous: "
                    f"{', '.join(_label(s, p) for s, _, p in matching)} all match; "
                    "name a source_port or target_port on the edge"
                )
        source, index, _ = matching[0]
        used.add((source, index))
        chosen[slot] = (source, index)
    return tuple(chosen[slot] for slot in range(len(declared)))


def _label(source: str, port: Port) -> str:
    return f"{source}:{port.name or port.mime}"


def plan_inner(node: Node, reference: str, base_dir: Path, store: Any, stack: tuple[str, ...],
               allow_paths: Sequence[Path] = ()) -> InnerPlan:
    """Load, check and plan the workflow a sub-workflow or loop node runs."""
    if is_digest(reference):
        identity = reference
        if store is None:
            raise WorkflowError(f"node {node.id!r}: a stored sub-workflow needs a store")
        try:
            document = decode_json(store.blobs.get(reference))
        except (WfeError, ValueError) as exc:
            raise WorkflowError(f"node {node.id!r}: cannot load sub-workflow {reference}: {exc}") from None
        graph, folder = parse_workflow(document, reference), base_dir
    else:
        try:
            path = (base_dir / reference).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL in the name
            raise WorkflowError(f"node {node.id!r}: sub-workflow {reference!r} is no path to read: {exc}") from None
        identity = str(path)
        if identity in stack:
            chain = " -> ".join(Path(s).name if not is_digest(s) else s for s in (*stack, identity))
            raise WorkflowError(f"sub-workflow {reference} includes itself ({chain})")
        graph, folder = load_workflow(path), path.parent
    if identity in stack:
        raise WorkflowError(f"sub-workflow {reference} includes itself")
    if len(stack) >= MAX_NESTING:
        raise WorkflowError(f"sub-workflows nested deeper than {MAX_NESTING}")
    if not graph.outputs:
        raise WorkflowError(f"sub-workflow {reference} declares no outputs")
    graph = _with_overrides(node, graph)
    load_workflow_modules(str(folder), graph.modules)
    nodes = plan(graph, folder, store, (*stack, identity), allow_paths=allow_paths)
    version = digest_json(
        {"graph": graph.digest(), "versions": {p.node_id: p.version for p in nodes if p.version}}
    )
    return InnerPlan(graph, folder, nodes, version)


def _with_overrides(node: Node, graph: WorkflowGraph) -> WorkflowGraph:
    """The inner graph with the outer node's config (``{inner node id: {field: value}}``) merged in."""
    if not node.config:
        return graph
    ids = {n.id for n in graph.nodes}
    for key, value in node.config.items():
        if key not in ids or not isinstance(value, dict):
            raise WorkflowError(
                f"node {node.id!r}: config maps inner node ids to config fields; {key!r} is not a node of "
                f"{graph.name!r} ({', '.join(sorted(ids))})"
            )
    document = graph.model_dump(mode="json", exclude_none=True)
    for inner in document["nodes"]:
        inner["config"] = {**inner.get("config", {}), **node.config.get(inner["id"], {})}
    return parse_workflow(document, graph.name)


def _inner_output_mime(inner: InnerPlan, node_id: str, port_name: str | None) -> str:
    return inner.nodes[_node_index(inner, node_id)].outputs[output_index(inner, node_id, port_name)].mime


def _node_index(inner: InnerPlan, node_id: str) -> int:
    return next(i for i, p in enumerate(inner.nodes) if p.node_id == node_id)


def output_index(inner: InnerPlan, node_id: str, port_name: str | None) -> int:
    """Which output of inner node ``node_id`` a workflow output names."""
    ports = inner.nodes[_node_index(inner, node_id)].outputs
    if port_name is None:
        if len(ports) != 1:
            raise WorkflowError(
                f"workflow {inner.graph.name!r}: output of {node_id!r} needs a port "
                f"({', '.join(str(p.name) for p in ports)})"
            )
        return 0
    for index, port in enumerate(ports):
        if port.name == port_name:
            return index
    raise WorkflowError(f"workflow {inner.graph.name!r}: {node_id!r} has no output port {port_name!r}")


def _check_loop(node_id: str, loop: LoopSpec, inner: InnerPlan, outputs: list[Port]) -> None:
    names = [p.name for p in outputs]
    if loop.condition not in names:
        raise WorkflowError(
            f"loop {node_id!r}: condition {loop.condition!r} is not an output of {inner.graph.name!r} "
            f"({', '.join(str(n) for n in names)})"
        )
    if not is_json(outputs[names.index(loop.condition)].mime):
        raise WorkflowError(f"loop {node_id!r}: condition {loop.condition!r} must be a JSON output")
    fed_back = [p for p in inner.graph.inputs if p.id in names]
    if not fed_back:
        raise WorkflowError(f"loop {node_id!r}: no output of {inner.graph.name!r} has the name of one of its inputs")
