"""Planning: resolve each node's function and wire its inputs by MIME type, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._digest import digest_json
from ._errors import WorkflowError
from ._functions import Registered, resolve
from ._models import WorkflowGraph, mime_matches


@dataclass
class PlannedNode:
    node_id: str
    function: Registered | None
    file: Path | None
    mime: str | None
    config_digest: str
    sources: list[tuple[str, int]]  # (upstream node, output index) per declared input
    upstream: list[str]


def plan(graph: WorkflowGraph, base_dir: Path) -> list[PlannedNode]:
    """Resolve functions and wire inputs by MIME type; raise WorkflowError before anything runs."""
    output_mimes: dict[str, tuple[str, ...]] = {}
    functions: dict[str, Registered] = {}
    for node in graph.nodes:
        if node.function is not None:
            entry = resolve(node.function)
            functions[node.id] = entry
            output_mimes[node.id] = entry.spec.outputs
        else:
            output_mimes[node.id] = (node.mime or "application/octet-stream",)
    incoming: dict[str, list[tuple[str, str | None]]] = {node.id: [] for node in graph.nodes}
    for edge in graph.edges:
        incoming[edge.target].append((edge.source, edge.mime))
    planned: list[PlannedNode] = []
    for node_id in graph.order:
        node = graph.node(node_id)
        upstream = list(dict.fromkeys(source for source, _ in incoming[node_id]))
        if node.file is not None:
            if upstream:
                raise WorkflowError(f"file node {node_id!r} cannot have inputs (edge from {upstream[0]!r})")
            path = (base_dir / node.file).resolve()
            planned.append(PlannedNode(node_id, None, path, node.mime, "", [], []))
            continue
        entry = functions[node_id]
        candidates: list[tuple[str, int, str]] = []
        for source, edge_mime in incoming[node_id]:
            matched = [
                (source, index, mime)
                for index, mime in enumerate(output_mimes[source])
                if edge_mime is None or mime_matches(edge_mime, mime)
            ]
            if edge_mime is not None and not matched:
                raise WorkflowError(
                    f"edge {source!r} -> {node_id!r} asks for {edge_mime}, but {source!r} produces "
                    f"{', '.join(output_mimes[source]) or 'nothing'}"
                )
            candidates.extend(matched)
        used: set[tuple[str, int]] = set()
        sources: list[tuple[str, int]] = []
        for declared in entry.spec.inputs:
            pick = next(
                ((s, i) for s, i, mime in candidates if (s, i) not in used and mime_matches(declared.mime, mime)),
                None,
            )
            if pick is None:
                offered = ", ".join(f"{s}:{m}" for s, _, m in candidates) or "no upstream nodes"
                raise WorkflowError(
                    f"node {node_id!r} needs an input of type {declared.mime} that no upstream node produces "
                    f"(upstream: {offered})"
                )
            used.add(pick)
            sources.append(pick)
        try:
            config_digest = digest_json(node.config)
        except (ValueError, RecursionError) as exc:
            raise WorkflowError(f"node {node_id!r}: config is not storable JSON: {exc}") from None
        planned.append(PlannedNode(node_id, entry, None, None, config_digest, sources, upstream))
    return planned
