"""``wfe graph`` and ``wfe report``, the report checked in a real headless browser."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli
from _projects import make_project

import wfe
from wfe.report._graphviz import STATUS_COLOURS, to_dot, to_mermaid
from wfe.report._html import build_report
from wfe.report._layout import NODE_HEIGHT, NODE_WIDTH, layered_layout

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales" / "workflow.yaml"


def failing_run(tmp_path: Path) -> tuple[wfe.Store, wfe.RunResult]:
    """A run with every colour: ran, cached (the file), failed and skipped nodes."""
    project = make_project(tmp_path, broken=True)
    store = wfe.open_store(str(tmp_path / "store"))
    wfe.run(project.workflow, store)
    project.write(offset=1, broken=True)
    result = wfe.run(project.workflow, store)
    statuses = {n: r.status for n, r in result.manifest.nodes.items()}
    assert statuses == {"numbers": "cached", "parse": "ran", "double": "ran", "total": "ran",
                        "broken": "failed", "after": "skipped"}
    return store, result


def test_mermaid_and_dot_coloured_by_a_run(wfe_cli: Cli, tmp_path: Path) -> None:
    run = json.loads(wfe_cli("run", str(EXAMPLE), "--json").stdout)
    mermaid = wfe_cli("graph", str(EXAMPLE), "--run", run["run_id"]).stdout
    assert mermaid.startswith("flowchart LR\n")
    assert mermaid.count(" --> ") == 7
    assert '[("sales<br/>sales.csv (text/csv)")]' in mermaid and '["by_region<br/>revenue_by_region"]' in mermaid
    fill = STATUS_COLOURS["ran"][0]
    assert f"classDef ran fill:{fill}" in mermaid and re.search(r"class (n\d,){6}n\d ran", mermaid)

    dot = wfe_cli("graph", "--run", "latest", "--format", "dot").stdout  # the workflow read back from the store
    assert dot.startswith('digraph "sales-report" {') and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == 7 and f'fillcolor="{fill}"' in dot and "shape=cylinder" in dot
    plain = wfe_cli("graph", str(EXAMPLE), "--format", "dot").stdout
    assert "fillcolor=\"#2e9e5b\"" not in plain
    nothing = wfe_cli("graph")
    assert nothing.returncode == 2 and nothing.stderr.startswith("error:")


def test_graph_text_escapes_awkward_labels() -> None:
    graph = wfe.WorkflowGraph.model_validate({
        "name": 'say "hi"',
        "nodes": [{"id": "a", "file": 'x"y.txt', "mime": "text/plain"}, {"id": "b.c-d", "function": "f"}],
        "edges": [{"source": "a", "target": "b.c-d", "mime": "text/plain"}],
    })
    dot = to_dot(graph, {"a": "failed"})
    assert 'digraph "say \\"hi\\"" {' in dot and '"a" -> "b.c-d" [label="text/plain"];' in dot
    mermaid = to_mermaid(graph, {"a": "failed", "b.c-d": "skipped"})
    assert "x#quot;y.txt" in mermaid and '-->|"text/plain"|' in mermaid and "class n1 skipped" in mermaid


def test_layout_places_nodes_apart_and_edges_forward() -> None:
    order = ["a", "b", "c", "d", "e", "f"]
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "e"), ("d", "f"), ("e", "f")]
    layout = layered_layout(order, edges)
    boxes = list(layout.nodes.values())
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1 :]:
            assert abs(x1 - x2) >= NODE_WIDTH or abs(y1 - y2) >= NODE_HEIGHT
        assert x1 >= 0 and x1 + NODE_WIDTH <= layout.width and y1 >= 0 and y1 + NODE_HEIGHT <= layout.height
    for source, target, points in layout.edges:
        assert layout.nodes[source][0] < layout.nodes[target][0]
        assert all(p[0] < q[0] for p, q in itertools.pairwise(points))
    long_edge = next(points for s, t, points in layout.edges if (s, t) == ("e", "f"))
    assert len(long_edge) == 3  # e and f are two layers apart: one bend point between them


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    store, result = failing_run(tmp_path)
    page = build_report(store, result.manifest)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert re.findall(r"https?://[^\"' )]+", page) == ["http://www.w3.org/2000/svg"]
    for node_id, record in result.manifest.nodes.items():
        assert f'data-node="{node_id}" data-status="{record.status}"' in page
        assert f'<tr data-node="{node_id}">' in page
    for status in ("ran", "cached", "failed", "skipped"):
        assert STATUS_COLOURS[status][0] in page
    assert "this node always fails" in page and "Traceback" in page
    assert "cache hits <b>0 of 5 function nodes</b>" in page


def test_report_command_writes_the_file(wfe_cli: Cli, tmp_path: Path) -> None:
    wfe_cli("run", str(EXAMPLE))
    out = wfe_cli("report", "latest", "-o", "page.html")
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "page.html").read_text()
    assert "sales-report" in page and "<svg" in page and page.count("<tr data-node=") == 7


# In a real browser ------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,900"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    return found


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format depth={depth} colour={colour}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        rows.append(bytes(line[c] for x in range(width) for c in (x * channels, x * channels + 1, x * channels + 2)))
    return width, height, rows


def count_colour(rows: list[bytes], hex_colour: str, tolerance: int = 6) -> int:
    target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    count = 0
    for row in rows:
        for x in range(0, len(row), 3):
            if all(abs(row[x + i] - target[i]) <= tolerance for i in range(3)):
                count += 1
    return count


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    store, result = failing_run(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(build_report(store, result.manifest))
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    assert shot.stat().st_size > 10_000
    width, height, rows = read_png(shot)
    assert (width, height) == (1280, 900)
    graph_area = rows[120:520]  # the graph sits under the title, above the table
    box = NODE_WIDTH * NODE_HEIGHT
    coloured: dict[str, Any] = {s: count_colour(graph_area, STATUS_COLOURS[s][0]) for s in ("ran", "cached", "failed")}
    # three ran boxes, one cached, one failed, each mostly filled with its colour (pills in the table are lower)
    assert coloured["ran"] > 2 * box, coloured
    assert coloured["cached"] > 0.6 * box, coloured
    assert coloured["failed"] > 0.6 * box, coloured
    assert count_colour(graph_area, STATUS_COLOURS["skipped"][0]) > 0.6 * box
