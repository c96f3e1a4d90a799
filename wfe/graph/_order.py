"""Topological order of a graph's nodes, and the cycle that prevents one."""

from __future__ import annotations

from collections.abc import Mapping


def topological_order(ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
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
        raise ValueError("cycle: " + " -> ".join(find_cycle(remaining, children)))
    return order


def find_cycle(remaining: set[str], children: Mapping[str, list[str]]) -> list[str]:
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
