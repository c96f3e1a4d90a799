"""A layered (Sugiyama-style) drawing of a workflow graph, left to right.

Layers by longest path from the sources; an edge that spans several layers
gets a bend point in each layer it crosses, so it routes between nodes
rather than through them; the order inside each layer is improved by a few
barycenter sweeps, which removes most crossings in workflow-shaped graphs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

NODE_WIDTH = 180.0
NODE_HEIGHT = 48.0
GAP_X = 70.0
GAP_Y = 26.0
MARGIN = 20.0
SWEEPS = 6


@dataclass
class Layout:
    """Top-left corners of node boxes and the polyline of every edge, in pixels."""

    width: float
    height: float
    nodes: dict[str, tuple[float, float]] = field(default_factory=dict)
    edges: list[tuple[str, str, list[tuple[float, float]]]] = field(default_factory=list)


def layered_layout(order: list[str], edges: list[tuple[str, str]]) -> Layout:
    """Lay out nodes (``order`` is topological) joined by ``edges`` (source, target)."""
    pairs = list(dict.fromkeys((s, t) for s, t in edges if s != t))
    layer = dict.fromkeys(order, 0)
    parents: dict[str, list[str]] = {n: [] for n in order}
    for source, target in pairs:
        parents[target].append(source)
    for node in order:
        if parents[node]:
            layer[node] = 1 + max(layer[p] for p in parents[node])

    # Chains of dummy points for long edges; every link then joins adjacent layers.
    chains: list[tuple[str, str, list[str]]] = []
    links: list[tuple[str, str]] = []
    layer_of = dict(layer)
    for index, (source, target) in enumerate(pairs):
        chain = [source]
        for step in range(layer[source] + 1, layer[target]):
            dummy = f"\0{index}.{step}"
            layer_of[dummy] = step
            chain.append(dummy)
        chain.append(target)
        links.extend(itertools.pairwise(chain))
        chains.append((source, target, chain))

    count = 1 + max(layer_of.values(), default=0)
    layers: list[list[str]] = [[] for _ in range(count)]
    for node in order:
        layers[layer[node]].append(node)
    for dummy in (d for d in layer_of if d.startswith("\0")):
        layers[layer_of[dummy]].append(dummy)
    ups: dict[str, list[str]] = {n: [] for n in layer_of}
    downs: dict[str, list[str]] = {n: [] for n in layer_of}
    for a, b in links:
        downs[a].append(b)
        ups[b].append(a)
    _sweep(layers, ups, downs)

    tallest = max(len(items) for items in layers)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y
    width = 2 * MARGIN + count * NODE_WIDTH + (count - 1) * GAP_X
    place: dict[str, tuple[float, float]] = {}
    for column, items in enumerate(layers):
        span = len(items) * NODE_HEIGHT + (len(items) - 1) * GAP_Y
        top = (height - span) / 2
        for row, node in enumerate(items):
            place[node] = (MARGIN + column * (NODE_WIDTH + GAP_X), top + row * (NODE_HEIGHT + GAP_Y))

    layout = Layout(width=width, height=height)
    layout.nodes = {n: place[n] for n in order}
    for source, target, chain in chains:
        x0, y0 = place[source]
        points = [(x0 + NODE_WIDTH, y0 + NODE_HEIGHT / 2)]
        for dummy in chain[1:-1]:
            x, y = place[dummy]
            points.append((x + NODE_WIDTH / 2, y + NODE_HEIGHT / 2))
        x1, y1 = place[target]
        points.append((x1, y1 + NODE_HEIGHT / 2))
        layout.edges.append((source, target, points))
    return layout


def _sweep(layers: list[list[str]], ups: dict[str, list[str]], downs: dict[str, list[str]]) -> None:
    position = {n: i for items in layers for i, n in enumerate(items)}

    def reorder(items: list[str], neighbours: dict[str, list[str]]) -> None:
        def key(node: str) -> tuple[float, int]:
            near = neighbours[node]
            centre = sum(position[n] for n in near) / len(near) if near else float(position[node])
            return centre, position[node]

        items.sort(key=key)
        for index, node in enumerate(items):
            position[node] = index

    for _ in range(SWEEPS):
        for items in layers[1:]:
            reorder(items, ups)
        for items in reversed(layers[:-1]):
            reorder(items, downs)
