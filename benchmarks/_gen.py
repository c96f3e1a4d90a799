"""Generated workloads shared by the engine benchmarks: chains, fan-outs and mapped nodes of trivial nodes."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Measured as installed: Python caches compiled bytecode beside the sources (pip compiles a package
# as it installs it; an editable install's sources are cached at their first import). Where the
# environment turns that cache off, every process would compile wfe again, as no user's run does.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

FUNCTIONS = '''
import wfe

@wfe.function(outputs="application/json")
def start(*, value=0):
    return value

@wfe.function(inputs=["application/json"], outputs="application/json")
def step(x, *, i=0):
    return x + 1

@wfe.function(inputs=["application/json"], outputs="application/json")
def shifted(x, *, i=0):
    return x + i

@wfe.function(outputs="application/json")
def items(*, n=0):
    return list(range(n))

@wfe.function(outputs="application/octet-stream")
def big(*, mib=256):
    return b"\x01" * (mib * 1024 * 1024)  # non-zero: zero pages would never be touched

@wfe.function(outputs="application/octet-stream")
def big_to_path(*, mib=256):
    path = wfe.scratch_dir() / "big.bin"  # on the store's disk: moved into the store, not copied
    block = bytes(4 * 1024 * 1024)
    with open(path, "wb") as f:
        for _ in range(mib // 4):
            f.write(block)
    return path
'''


def write(folder: Path, shape: str, n: int) -> Path:
    """Write ``bench_functions.py`` and a workflow of ``n`` step nodes; return the workflow path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_functions.py").write_text(FUNCTIONS)
    nodes = [{"id": "n0", "function": "start"}]
    edges = []
    for i in range(1, n):  # fanout: every step returns 1, one blob in all; fanout_own: each its own, as elements
        nodes.append({"id": f"n{i}", "function": "shifted" if shape == "fanout_own" else "step", "config": {"i": i}})
        edges.append({"source": f"n{i - 1}" if shape == "chain" else "n0", "target": f"n{i}"})
    if shape == "map":  # one node mapped over a JSON list of n items: n actions, one per element
        nodes = [{"id": "items", "function": "items", "config": {"n": n}}, {"id": "each", "function": "step",
                                                                             "map": True}]
        edges = [{"source": "items", "target": "each"}]
    if shape == "big":
        nodes, edges = [{"id": "big", "function": "big", "config": {"mib": n}}], []
    if shape == "big_path":
        nodes, edges = [{"id": "big", "function": "big_to_path", "config": {"mib": n}}], []
    path = folder / f"{shape}-{n}.json"
    path.write_text(json.dumps({"name": f"{shape}-{n}", "modules": ["bench_functions"], "nodes": nodes,
                                "edges": edges}))
    return path
