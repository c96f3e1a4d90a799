"""A workflow graph as Mermaid or Graphviz DOT text, optionally coloured by a run's node status."""

from __future__ import annotations

from collections.abc import Mapping

from ..graph._model import WorkflowGraph

# fill, stroke, text; shared with the HTML report so both read the same
STATUS_COLOURS: dict[str, tuple[str, str, str]] = {
    "ran": ("#2e9e5b", "#1f6e3f", "#ffffff"),
    "cached": ("#3b7dd8", "#28589c", "#ffffff"),
    "failed": ("#d64545", "#9c2f2f", "#ffffff"),
    "skipped": ("#b0b5bb", "#80858b", "#1b1f24"),
    "running": ("#e0a030", "#a87620", "#1b1f24"),
    "pending": ("#e6e8eb", "#a0a5ab", "#1b1f24"),
}
NEUTRAL = ("#f4f5f7", "#6b7178", "#1b1f24")
FORMATS = ("mermaid", "dot")


def node_label(graph: WorkflowGraph, node_id: str) -> str:
    """Two lines: the id, then what the node is (function, file, sub-workflow, loop, input)."""
    port = graph.input(node_id)
    if port is not None:
        return f"{node_id}\ninput ({port.mime})"
    node = graph.node(node_id)
    if node.function is not None:
        detail = f"map {node.function} over each element" if node.map else node.function
    elif node.loop is not None:
        detail = f"loop {node.loop.workflow} while {node.loop.condition}, at most {node.loop.max_iterations}"
    elif node.workflow is not None:
        detail = f"workflow {node.workflow}"
    else:
        detail = f"{node.file} ({node.mime})"
    return f"{node_id}\n{detail}"


def is_source(graph: WorkflowGraph, node_id: str) -> bool:
    """Files and workflow inputs: drawn as data, not as steps."""
    return graph.input(node_id) is not None or graph.node(node_id).file is not None


def edge_pairs(graph: WorkflowGraph) -> list[tuple[str, str, str | None]]:
    """(source, target, label) per edge, duplicates of a pair merged into one label."""
    merged: dict[tuple[str, str], list[str]] = {}
    for edge in graph.edges:
        labels = merged.setdefault((edge.source, edge.target), [])
        ports = f"{edge.source_port or ''}→{edge.target_port or ''}" if edge.source_port or edge.target_port else ""
        for label in (edge.mime, ports):
            if label and label not in labels:
                labels.append(label)
    return [(s, t, ", ".join(labels) or None) for (s, t), labels in merged.items()]


def to_mermaid(graph: WorkflowGraph, statuses: Mapping[str, str] | None = None) -> str:
    """A ``flowchart LR``; node ids are replaced by ``n0, n1, …`` because Mermaid ids are narrow."""
    ids = {node_id: f"n{index}" for index, node_id in enumerate(graph.order)}
    lines = ["flowchart LR"]
    for node_id in graph.order:
        label = _mermaid_text(node_label(graph, node_id))
        opening, closing = ("[(", ")]") if is_source(graph, node_id) else ("[", "]")
        lines.append(f'  {ids[node_id]}{opening}"{label}"{closing}')
    for source, target, mime in edge_pairs(graph):
        arrow = f'-->|"{_mermaid_text(mime)}"|' if mime else "-->"
        lines.append(f"  {ids[source]} {arrow} {ids[target]}")
    if statuses:
        used = sorted({s for s in statuses.values() if s in STATUS_COLOURS})
        for status in used:
            fill, stroke, text = STATUS_COLOURS[status]
            lines.append(f"  classDef {status} fill:{fill},stroke:{stroke},color:{text}")
        for status in used:
            members = ",".join(ids[n] for n in graph.order if statuses.get(n) == status)
            lines.append(f"  class {members} {status}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid reads entity codes inside quoted labels; a raw quote would end the label.
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;").replace(
        "\n", "<br/>"
    )


def to_dot(graph: WorkflowGraph, statuses: Mapping[str, str] | None = None) -> str:
    """A Graphviz ``digraph`` (render with ``dot -Tsvg``)."""
    lines = [
        f"digraph {_dot_string(graph.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#f4f5f7"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node_id in graph.order:
        attributes = [f"label={_dot_string(node_label(graph, node_id))}"]
        if is_source(graph, node_id):
            attributes.append("shape=cylinder")
        status = (statuses or {}).get(node_id)
        if status is not None:
            fill, stroke, text = STATUS_COLOURS.get(status, NEUTRAL)
            attributes += [f'fillcolor="{fill}"', f'color="{stroke}"', f'fontcolor="{text}"',
                           f"tooltip={_dot_string(status)}"]
        lines.append(f"  {_dot_string(node_id)} [{', '.join(attributes)}];")
    for source, target, label in edge_pairs(graph):
        extra = f" [label={_dot_string(label)}]" if label else ""
        lines.append(f"  {_dot_string(source)} -> {_dot_string(target)}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render(graph: WorkflowGraph, fmt: str, statuses: Mapping[str, str] | None = None) -> str:
    """The graph in ``fmt`` (``mermaid`` or ``dot``); ValueError for another format."""
    if fmt == "mermaid":
        return to_mermaid(graph, statuses)
    if fmt == "dot":
        return to_dot(graph, statuses)
    raise ValueError(f"unknown graph format {fmt!r} (use {' or '.join(FORMATS)})")
