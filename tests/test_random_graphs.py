"""Random workflow documents of any shape: loading them, ``wfe graph`` and ``wfe run`` either succeed or
give exactly one ``error:`` line, with exit code 2, no traceback and the store untouched.

The documents are random DAGs and random graphs with cycles (self-loops included), with valid and
invalid node ids, duplicate ids, edges to unknown nodes, random ports and MIME types, file,
function and sub-workflow nodes, and random extra keys. A graph that loads must be a DAG whose
order puts every edge's source before its target; a cycle that is reported must be one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_hostile_input import cli, files_under

import wfe

FUNCTIONS = '''
import wfe

# Named apart: the function registry is one per process, and other tests register a "split" or a "seed".


@wfe.function(name="rg_seed", outputs="application/json")
def seed(**config):
    return config.get("value", 1)


@wfe.function(name="rg_step", inputs=["application/json"], outputs="application/json")
def step(value, **config):
    return [value, sorted(config)]


@wfe.function(name="rg_merge", inputs=["application/json", "application/json"], outputs="application/json")
def merge(left, right, **config):
    return [left, right]


@wfe.function(
    name="rg_describe",
    inputs=[wfe.Input("*/*", name="anything")],
    outputs=[wfe.Output("text/plain", name="text"), wfe.Output("application/json", name="size", kind="inline")],
)
def describe(anything, **config):
    text = repr(anything)[:100]
    return text, len(text)


@wfe.function(name="rg_to_bytes", inputs=[wfe.Input("text/*", name="text")], outputs="application/octet-stream")
def to_bytes(text, **config):
    return text.encode()


@wfe.function(
    name="rg_split",
    inputs=[wfe.Input("application/json", name="values")],
    outputs=[wfe.Output("application/json", name="low"), wfe.Output("application/json", name="high")],
)
def split(values, **config):
    return values, [values]
'''

SUB_WORKFLOW = {
    "name": "sub", "modules": ["random_graph_functions"],
    "inputs": [{"id": "values", "mime": "application/json"}],
    "outputs": [{"id": "out", "node": "s"}],
    "nodes": [{"id": "s", "function": "rg_step"}], "edges": [{"source": "values", "target": "s"}],
}  # fmt: skip

RANDOM = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

VALID_IDS = ["a", "b", "c", "d", "e", "f", "n.1", "x-y", "_", "Z9"]
INVALID_IDS = ["", ".", "..", "../x", "a/b", "a b", "é", "x" * 200]
node_ids = st.one_of(
    st.sampled_from(VALID_IDS * 4 + INVALID_IDS),
    st.from_regex(r"[A-Za-z0-9_.-]{1,6}", fullmatch=True),  # "." and ".." among them
)
mimes = st.sampled_from(["application/json", "text/plain", "text/csv", "application/octet-stream", "*/*", "text/*",
                         "bogus", "", "application/json; charset=utf-8"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
extra_keys = st.dictionaries(st.sampled_from(["confg", "notes", "x-extra", "", "targetport", "Source"]), json_values,
                             max_size=1)


@st.composite
def nodes(draw: st.DrawFn, node_id: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["function"] * 6 + ["file"] * 2 + ["workflow", "loop", "none", "two"]))
    node: dict[str, Any] = {"id": node_id}
    if kind in ("function", "two"):
        node["function"] = draw(st.sampled_from(["rg_seed", "rg_seed", "rg_step", "rg_merge", "rg_describe",
                                                 "rg_to_bytes", "rg_split", "nosuch", "os:system"]))
        if draw(st.booleans()):
            node["config"] = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3) | json_values)
    if kind in ("file", "two"):
        node["file"] = draw(st.sampled_from(["data.json", "data.json", "notes.txt", "missing.json", "../outside.json",
                                             "link.json", "loop.json", "a\x00b", "/etc/passwd", "sub", ".", ""]))
        if draw(st.integers(0, 5)):
            node["mime"] = draw(mimes)
    if kind == "workflow":
        node["workflow"] = draw(st.sampled_from(["sub.json", "sub.json", "missing.yaml", "../sub.json", "loop.json",
                                                 "\x00", "sha256:" + "0" * 64]))
    if kind == "loop":
        node["loop"] = draw(st.fixed_dictionaries({"workflow": st.sampled_from(["sub.json", "x.yaml"])},
                                                  optional={"max_iterations": st.integers(-1, 3),
                                                            "condition": st.sampled_from(["out", ""])}))
    return {**node, **draw(extra_keys)}


IN_DEGREE_FUNCTIONS = {
    0: ["rg_seed"] * 5 + ["file"] * 2 + ["nosuch"],
    1: ["rg_step", "rg_step", "rg_describe", "rg_split"],
    2: ["rg_merge"],
}


@st.composite
def clean_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed document, a DAG or not, whose functions fit their number of inputs: many of them run."""
    ids = draw(st.lists(st.sampled_from(VALID_IDS) | st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True),
                        min_size=1, max_size=10, unique=True))
    count = len(ids)
    pairs = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)), max_size=2 * count))
    pairs = [(min(s, t), max(s, t)) for s, t in pairs if s != t]  # a DAG: edges only from a node to one after it
    if not draw(st.integers(0, 2)):  # and a back edge or two: cycles, often with nodes downstream of them
        pairs += draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1))
                               .map(lambda pair: (max(pair), min(pair))), min_size=1, max_size=2))
    pairs = list(dict.fromkeys(pairs))
    in_degree = {index: sum(1 for _, t in pairs if t == index) for index in range(count)}
    nodes = []
    for index, node_id in enumerate(ids):
        function = draw(st.sampled_from(IN_DEGREE_FUNCTIONS.get(in_degree[index], ["rg_merge", "nosuch"])))
        if function == "file":  # mostly its own data; sometimes a file elsewhere, which it may not read
            path = draw(st.sampled_from(["data.json"] * 6 + ["../outside.json", "link.json", "/etc/hostname"]))
            nodes.append({"id": node_id, "file": path, "mime": "application/json"})
            continue
        node: dict[str, Any] = {"id": node_id, "function": function}
        if draw(st.booleans()):
            node["config"] = draw(st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                                  st.integers() | st.text(max_size=5), max_size=2))
        nodes.append(node)
    edges = [{"source": ids[s], "target": ids[t]} for s, t in pairs]
    return {"name": "random", "modules": ["random_graph_functions"], "nodes": nodes, "edges": edges}


@st.composite
def flawed_documents(draw: st.DrawFn) -> Any:
    """A document with random flaws anywhere: ids, kinds, files, edges, ports, keys."""
    count = draw(st.integers(1, 8))
    ids = [draw(node_ids) for _ in range(count)]
    acyclic = draw(st.booleans())
    pairs = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)), max_size=3 * count))
    if acyclic:  # edges only from a node to one after it: a DAG
        pairs = [(min(s, t), max(s, t)) for s, t in pairs if s != t]
    edges = []
    for source, target in pairs:
        edge: dict[str, Any] = {"source": ids[source], "target": ids[target]}
        if not draw(st.integers(0, 15)):
            edge[draw(st.sampled_from(["source", "target"]))] = "nowhere"  # an unknown node
        if not draw(st.integers(0, 3)):
            edge["mime"] = draw(mimes)
        if not draw(st.integers(0, 3)):
            edge["source_port"] = draw(st.sampled_from(["low", "high", "text", "size", "out", "nope"]))
        if not draw(st.integers(0, 3)):
            edge["target_port"] = draw(st.sampled_from(["values", "anything", "text", "nope"]))
        edges.append({**edge, **draw(extra_keys)})
    document: dict[str, Any] = {
        "name": draw(st.sampled_from(["random"] * 8 + ["", "x" * 300, 5])),
        "modules": draw(st.sampled_from([["random_graph_functions"]] * 8 + [[], ["os"], ["../x"]])),
        "nodes": [draw(nodes(node_id)) for node_id in ids],
        "edges": edges,
    }
    if not draw(st.integers(0, 7)):
        document["outputs"] = [{"id": "out", "node": draw(st.sampled_from([*ids, "nowhere"]))}]
    if not draw(st.integers(0, 7)):
        del document[draw(st.sampled_from(["name", "nodes", "edges", "modules"]))]
    return {**document, **draw(extra_keys)}


documents = st.one_of(clean_documents(), flawed_documents())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workflow folder for the module: its functions are imported (in this process) from one place."""
    folder = tmp_path_factory.mktemp("random-graphs")
    (folder / "random_graph_functions.py").write_text(FUNCTIONS)
    (folder / "data.json").write_text("[1, 2, 3]")
    (folder.parent / "outside.json").write_text('"outside the workflow\'s folder"')
    (folder / "link.json").symlink_to(folder.parent / "outside.json")
    (folder / "loop.json").symlink_to(folder / "loop.json")  # a link to itself
    (folder / "notes.txt").write_text("some notes\n")
    (folder / "sub").mkdir()
    (folder / "sub.json").write_text(json.dumps(SUB_WORKFLOW))
    return folder


_numbers = itertools.count()


def write(folder: Path, document: Any, as_json: bool) -> Path:
    workflow = folder / f"workflow-{next(_numbers)}.{'json' if as_json else 'yaml'}"
    workflow.write_text(json.dumps(document) if as_json else yaml.safe_dump(document))
    return workflow


def edge_pairs(document: Any) -> set[tuple[Any, Any]]:
    edges = document.get("edges") if isinstance(document, dict) else None
    return {(e.get("source"), e.get("target")) for e in edges or [] if isinstance(e, dict)}


def check_loaded(graph: wfe.WorkflowGraph, document: Any) -> None:
    """A loaded graph is a DAG, and its order puts every edge's source before its target."""
    order = graph.order
    position = {node_id: index for index, node_id in enumerate(order)}
    assert len(position) == len(order) == len(graph.nodes) + len(graph.inputs)
    for source, target in edge_pairs(document):
        assert position[source] < position[target], (source, target, order)


def check_cycle(message: str, document: Any) -> None:
    """A reported cycle is one: each step an edge of the document, ending where it starts."""
    steps = message.split("cycle: ", 1)[1].split(" -> ")
    assert len(steps) >= 2 and steps[0] == steps[-1], message
    pairs = edge_pairs(document)
    assert all((a, b) in pairs for a, b in itertools.pairwise(steps)), (message, pairs)


def one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.slow
@RANDOM
@given(document=documents, as_json=st.booleans())
def test_random_workflow_graphs_load_draw_and_run_or_give_one_error(
    tmp_path_factory: pytest.TempPathFactory, project: Path, document: Any, as_json: bool
) -> None:
    workflow = write(project, document, as_json)

    # The Python API: a graph that is a DAG, or one WfeError of one line.
    try:
        graph = wfe.load_workflow(workflow)
    except wfe.WfeError as exc:
        graph, failure = None, str(exc)
        assert failure and "\n" not in failure
        if "cycle: " in failure:
            check_cycle(failure, document)
    else:
        failure = None
        check_loaded(graph, document)
    if isinstance(document, dict):
        try:
            validated = wfe.WorkflowGraph.model_validate(document)
        except wfe.RecordError as exc:
            assert graph is None, exc
        else:
            check_loaded(validated, document)

    # wfe graph: the drawing, or the very error loading gave.
    code, _out, err = cli(["graph", str(workflow)])
    if failure is None:
        assert code == 0 and err == "", err
    else:
        assert one_error(code, err) == "error: " + " ".join(failure.split())

    # wfe run on a fresh store: success, or one error line and nothing stored.
    store = tmp_path_factory.mktemp("store") / "store"
    code, out, err = cli(["run", str(workflow), "--store", str(store), "--json"])
    if code == 0:
        assert graph is not None
        for node in graph.nodes:  # a file node reads only a regular file inside the workflow's folder
            assert node.file is None or (project / node.file).resolve().is_relative_to(project), node.file
            assert node.file is None or (project / node.file).is_file(), node.file
        result = json.loads(out)
        assert result["status"] == "succeeded"
        assert {node["status"] for node in result["nodes"].values()} <= {"ran", "cached"}
        return
    line = one_error(code, err)
    if failure is not None:
        assert line == "error: " + " ".join(failure.split())
    assert files_under(store) == set(), f"an error after the store was written: {line}"


def has_cycle(ids: list[str], pairs: set[tuple[str, str]]) -> bool:
    """Whether the graph has a cycle, by removing nodes with no parent left until none is left."""
    left, edges = set(ids), set(pairs)
    while True:
        free = {node for node in left if not any(target == node for _, target in edges)}
        if not free:
            return bool(left)
        left -= free
        edges = {(a, b) for a, b in edges if a in left}


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ids=st.lists(st.sampled_from(VALID_IDS), min_size=1, max_size=8, unique=True),
    pairs=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=14),
)
def test_a_graph_loads_if_and_only_if_it_has_no_cycle_and_a_cycle_reported_is_one(
    ids: list[str], pairs: list[tuple[int, int]]
) -> None:
    """Of any shape: a cycle with nodes downstream of it, several cycles, self-loops, parallel edges."""
    edges = [{"source": ids[s % len(ids)], "target": ids[t % len(ids)]} for s, t in pairs]
    document = {"name": "g", "nodes": [{"id": node_id, "function": "rg_seed"} for node_id in ids], "edges": edges}
    cyclic = has_cycle(ids, edge_pairs(document))
    try:
        graph = wfe.WorkflowGraph.model_validate(document)
    except wfe.RecordError as exc:
        assert cyclic, exc
        check_cycle(str(exc), document)
    else:
        assert not cyclic
        check_loaded(graph, document)


@pytest.mark.parametrize("outcome", ["cycle", "invalid", "not planned", "run succeeded with edges"])
def test_the_generated_documents_reach_every_outcome(project: Path, outcome: str) -> None:
    """A check on the strategy itself: it makes documents that run, that have cycles, that are refused."""

    def reaches(document: Any) -> bool:
        try:
            graph = wfe.WorkflowGraph.model_validate(document)
        except wfe.RecordError as exc:
            return outcome == ("cycle" if "cycle: " in str(exc) else "invalid")
        if outcome in ("cycle", "invalid"):
            return False
        try:
            result = wfe.run(graph, "memory://coverage", base_dir=project)
        except wfe.WfeError:
            return outcome == "not planned"
        return outcome == "run succeeded with edges" and result.ok and len(graph.edges) >= 2

    class Reached(Exception):
        pass

    # Derandomized: the same documents every time, so this check on the generator cannot come and go by chance.
    @settings(max_examples=2000, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate], derandomize=True)  # stop at the first document that reaches it: no shrinking
    @given(document=documents)
    def search(document: Any) -> None:
        if reaches(document):
            raise Reached

    with pytest.raises(Reached):
        search()
