"""``wfe report``: one self-contained HTML page about a run.

No scripts, fonts or images from elsewhere: the graph is an inline SVG laid
out by :mod:`wfe.report._layout`, coloured by node status, above a table of every
node with its status, duration, output sizes and whether it came from the
cache. The page opens the same from a mail attachment as from a CI artifact.
"""

from __future__ import annotations

import html
import time
from typing import NamedTuple

from .._errors import WfeError
from .._humanize import human_seconds, human_size
from ..graph._model import WorkflowGraph
from ..ops._history import producers, run_workflow
from ..store._manifest import NodeRecord, RunManifest
from ..store._store import Store
from ._graphviz import NEUTRAL, STATUS_COLOURS
from ._layout import NODE_HEIGHT, NODE_WIDTH, layered_layout

MAX_DRAWN_NODES = 1500


MAX_LOG_BYTES = 64 * 1024


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1b1f24;margin:0;
background:#fafbfc}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:13px}
.meta{display:flex;flex-wrap:wrap;gap:8px 28px;margin:12px 0;color:#4a5057}
.meta b{color:#1b1f24}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px;overflow:auto}
.legend{display:flex;gap:16px;margin:8px 0 0;font-size:13px;color:#4a5057}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e1e4e8;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f4f5f7;font-weight:600}
td.num{text-align:right;white-space:nowrap}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
details{margin:6px 0}pre{background:#f4f5f7;padding:8px;border-radius:6px;overflow:auto;max-height:360px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
"""


def build_report(store: Store, manifest: RunManifest) -> str:
    """The HTML page for ``manifest``; the graph comes from the run's workflow blob if it is there."""
    counts = manifest.counts()
    fill, _, text = STATUS_COLOURS.get(
        {"succeeded": "ran", "failed": "failed", "running": "running"}.get(manifest.status, "skipped"), NEUTRAL
    )
    duration = (manifest.finished - manifest.started) if manifest.finished else None
    function_nodes = [r for r in manifest.nodes.values() if r.function is not None]
    hits = sum(1 for r in function_nodes if r.status == "cached")
    output_bytes = sum(a.size for r in manifest.nodes.values() for a in r.outputs)
    title = f"{manifest.workflow} · run {manifest.run_id}"
    meta = [
        ("run", f"<code>{_e(manifest.run_id)}</code>"),
        ("started", _e(_when(manifest.started))),
        ("duration", _e(human_seconds(duration))),
        ("nodes", str(len(manifest.nodes))),
        *((status, str(counts[status])) for status in STATUS_COLOURS if counts.get(status)),
        ("cache hits", f"{hits} of {len(function_nodes)} function nodes"),
        ("outputs", _e(human_size(output_bytes))),
    ]
    rerun_of = (manifest.model_extra or {}).get("rerun_of")
    if isinstance(rerun_of, str):
        meta.append(("rerun of", f"<code>{_e(rerun_of)}</code>"))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(manifest.workflow)} "
        f'<span class="badge" style="background:{fill};color:{text}">{_e(manifest.status)}</span></h1>',
        '<div class="meta">' + "".join(f"<span>{k} <b>{v}</b></span>" for k, v in meta) + "</div>",
        "<h2>Graph</h2>",
        f'<div class="card" id="graph">{_graph_svg(store, manifest)}{_legend()}</div>',
        "<h2>Nodes</h2>",
        _table(manifest),
        _problems(manifest),
        _logs(store, manifest),
        f'<p style="color:#80858b;font-size:12px">made by wfe on {_e(_when(time.time()))}</p>',
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _edges(store: Store, manifest: RunManifest) -> tuple[list[str], list[tuple[str, str]]]:
    """Node order and edges: from the workflow blob, or else read off the inputs the manifest records."""
    try:
        graph = run_workflow(store, manifest)
        order = [n for n in graph.order if n in manifest.nodes]
        known = manifest.nodes
        return order, [(e.source, e.target) for e in graph.edges if e.source in known and e.target in known]
    except WfeError:
        made_by = producers(manifest)
        edges = [(made_by[a.digest], node_id) for node_id, r in manifest.nodes.items() for a in r.inputs
                 if a.digest in made_by and made_by[a.digest] != node_id]
        return list(manifest.nodes), edges


def _graph_svg(store: Store, manifest: RunManifest) -> str:
    if len(manifest.nodes) > MAX_DRAWN_NODES:
        return f"<p>{len(manifest.nodes)} nodes: too many to draw; see the table.</p>"
    order, edges = _edges(store, manifest)
    boxes = {}
    for node_id in order:
        record = manifest.nodes[node_id]
        took = f" ({human_seconds(record.duration)})" if record.duration is not None else ""
        tip = f"{node_id}: {record.status}{took}"
        if record.error:
            tip += f"\n{record.error}"
        boxes[node_id] = Box(record.status, record.function or "file", tip, record.function is None)
    return graph_svg(order, edges, boxes)


class Box(NamedTuple):
    """How one node is drawn: coloured by ``status``, with a second line and a tooltip."""

    status: str
    detail: str
    tip: str
    source: bool = False  # a file or input: square corners


def graph_svg(order: list[str], edges: list[tuple[str, str]], boxes: dict[str, Box]) -> str:
    """An inline SVG of the graph, laid out in layers, each node coloured by its status."""
    layout = layered_layout(order, edges)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" aria-label="workflow graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#6b7178"/></marker></defs>',
    ]
    for _source, _target, points in layout.edges:
        out.append(f'<path d="{_curve(points)}" fill="none" stroke="#8a9097" stroke-width="1.6" '
                   'marker-end="url(#arrow)"/>')
    for node_id, (x, y) in layout.nodes.items():
        box = boxes[node_id]
        fill, stroke, text = STATUS_COLOURS.get(box.status, NEUTRAL)
        radius = 3 if box.source else 9
        out.append(
            f'<g class="node" data-node="{_e(node_id)}" data-status="{_e(box.status)}"><title>{_e(box.tip)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH:.0f}" height="{NODE_HEIGHT:.0f}" rx="{radius}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{x + 12:.1f}" y="{y + 20:.1f}" fill="{text}" font-size="13" font-weight="600">'
            f"{_e(_clip(node_id, 22))}</text>"
            f'<text x="{x + 12:.1f}" y="{y + 37:.1f}" fill="{text}" font-size="11" opacity="0.9">'
            f"{_e(_clip(f'{box.detail} · {box.status}', 28))}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def run_html(store: Store, manifest: RunManifest) -> str:
    """A run for a notebook cell: its status, the graph coloured by status and the node table."""
    fill, _, text = STATUS_COLOURS.get(
        {"succeeded": "ran", "failed": "failed", "running": "running"}.get(manifest.status, "skipped"), NEUTRAL
    )
    head = (f"<div><b>{_e(manifest.workflow)}</b> run <code>{_e(manifest.run_id)}</code> "
            f'<span style="background:{fill};color:{text};padding:1px 8px;border-radius:10px">'
            f"{_e(manifest.status)}</span></div>")  # fmt: skip
    return f"<div>{head}{_graph_svg(store, manifest)}{_legend()}{_table(manifest)}</div>"


def workflow_html(graph: WorkflowGraph) -> str:
    """A workflow not yet run, for a notebook cell: its graph, every node drawn as pending."""
    if len(graph.order) > MAX_DRAWN_NODES:
        return f"<p>workflow {_e(graph.name)}: {len(graph.order)} nodes, too many to draw</p>"
    boxes = {}
    for node_id in graph.order:
        port = graph.input(node_id)
        if port is not None:
            boxes[node_id] = Box("pending", f"input {port.mime}", node_id, True)
            continue
        node = graph.node(node_id)
        detail = node.function or (f"file {node.file}" if node.file else "workflow")
        boxes[node_id] = Box("pending", detail, f"{node_id}: {detail}", node.file is not None)
    edges = [(e.source, e.target) for e in graph.edges]
    return f"<div><div>workflow <b>{_e(graph.name)}</b></div>{graph_svg(graph.order, edges, boxes)}</div>"


def _curve(points: list[tuple[float, float]]) -> str:
    (x, y), rest = points[0], points[1:]
    path = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        bend = max(20.0, (nx - x) / 2)
        path.append(f"C{x + bend:.1f},{y:.1f} {nx - bend:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(path)


def _legend() -> str:
    items = "".join(f'<span><i style="background:{fill}"></i>{status}</span>'
                    for status, (fill, _, _) in STATUS_COLOURS.items())
    return f'<div class="legend">{items}</div>'


def _pill(status: str) -> str:
    fill, _, text = STATUS_COLOURS.get(status, NEUTRAL)
    return f'<span class="pill" style="background:{fill};color:{text}">{_e(status)}</span>'


def _table(manifest: RunManifest) -> str:
    rows = []
    for node_id, record in manifest.nodes.items():
        function = (f"{_e(record.function)} <code>{_e(record.version or '')}</code>"
                    if record.function else "file")
        outputs = "<br>".join(
            f"{_e(a.mime)} · {_e(human_size(a.size))} · <code title=\"{_e(a.digest)}\">{_e(a.digest[7:19])}</code>"
            for a in record.outputs
        ) or "—"
        cache = {"cached": "hit", "ran": "miss" if record.function else "new content"}.get(record.status, "—")
        key = "—"
        if record.action_key:
            key = f'<code title="{_e(record.action_key)}">{_e(record.action_key[7:19])}</code>'
        rows.append(
            f'<tr data-node="{_e(node_id)}"><td><b>{_e(node_id)}</b></td><td>{function}</td>'
            f"<td>{_pill(record.status)}</td>"
            f'<td class="num">{_e(human_seconds(record.duration))}</td><td class="num">{len(record.inputs)}</td>'
            f'<td>{outputs}</td><td class="num">{_e(human_size(sum(a.size for a in record.outputs)))}</td>'
            f"<td>{cache}</td><td>{key}</td><td>{_e(record.error or '')}</td></tr>"
        )
    head = ("<tr><th>node</th><th>function</th><th>status</th><th>duration</th><th>inputs</th><th>outputs</th>"
            "<th>output size</th><th>cache</th><th>action key</th><th>note</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _problems(manifest: RunManifest) -> str:
    failed = [(n, r) for n, r in manifest.nodes.items() if r.status == "failed"]
    if not failed:
        return ""
    items = "".join(
        f"<details open><summary><b>{_e(n)}</b>: {_e(r.error or 'failed')}</summary>"
        f"<pre>{_e(r.traceback or '')}</pre></details>"
        for n, r in failed
    )
    return f"<h2>Failures</h2>{items}"


def _logs(store: Store, manifest: RunManifest) -> str:
    items = []
    for node_id, record in manifest.nodes.items():
        text = _log_text(store, record)
        if text:
            items.append(f"<details><summary>{_e(node_id)}</summary><pre>{_e(text)}</pre></details>")
    return f"<h2>Logs</h2>{''.join(items)}" if items else ""


def _log_text(store: Store, record: NodeRecord) -> str:
    if not record.log:
        return ""
    try:
        with store.blobs.open(record.log) as reader:
            data = reader.read(MAX_LOG_BYTES + 1)
    except WfeError as exc:
        return f"(log unavailable: {exc})"
    text = data[:MAX_LOG_BYTES].decode("utf-8", errors="replace")
    return text + ("\n… (truncated)" if len(data) > MAX_LOG_BYTES else "")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


