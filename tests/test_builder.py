"""The workflow builder: the same graph, digest and cache as a workflow file, one-line errors, script functions."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO / "examples" / "sales"


def _load_build() -> Any:
    spec = importlib.util.spec_from_file_location("sales_build", EXAMPLE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digests(result: wfe.RunResult) -> dict[str, list[str]]:
    return {node_id: [a.digest for a in record.outputs] for node_id, record in result.manifest.nodes.items()}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_the_sales_example_built_in_python_gives_the_outputs_and_cache_of_its_workflow_file(
        tmp_path: Path, wfe_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    from_file = wfe.run(EXAMPLE_DIR / "workflow.yaml", str(tmp_path / "file-store"))
    built = _load_build().build()
    from_builder = wfe.run(built, str(tmp_path / "builder-store"))
    assert from_file.status == from_builder.status == "succeeded"
    assert _digests(from_builder) == _digests(from_file)
    assert from_builder.manifest.workflow_digest == from_file.manifest.workflow_digest

    copy = tmp_path / "copy"
    shutil.copytree(EXAMPLE_DIR, copy, ignore=shutil.ignore_patterns("*.yaml", "build.py", "__pycache__"))
    built.to_yaml(copy / "built.yaml")
    done = wfe_cli("run", str(copy / "built.yaml"), "--store", str(tmp_path / "file-store"), "--json")
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout)["nodes"]
    assert {record["status"] for node_id, record in nodes.items() if node_id not in ("sales", "targets")} == {"cached"}
    assert {node_id: [a["digest"] for a in r["outputs"]] for node_id, r in nodes.items()} == _digests(from_file)


# Functions for random graphs: JSON in and out, named ports, a list to map over.

@wfe.function(outputs="application/json")
def numbers(*, count: int = 3) -> list[int]:
    return list(range(count))


@wfe.function(inputs=["application/json", "application/json"], outputs="application/json")
def pair(left: Any, right: Any) -> list[Any]:
    return [left, right]


@wfe.function(inputs=[wfe.Input("application/json", name="values")],
              outputs=[wfe.Output("application/json", name="low"), wfe.Output("application/json", name="high")])
def halves(values: list[Any]) -> tuple[list[Any], list[Any]]:
    return values[: len(values) // 2], values[len(values) // 2:]


@wfe.function(inputs=["application/json"], outputs="application/json")
def wrap(value: Any) -> list[Any]:
    return [value]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# Any key but the three that name the node's own settings (``id``, ``cache``, ``config``: those go in ``config=``);
# ``fn``, ``items`` and ``sub`` are config keys like any other.
CONFIG = st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("id", "cache", "config")) | st.sampled_from(["fn", "items", "sub"]), JSON, max_size=3)


@st.composite
def built_workflows(draw: st.DrawFn) -> wfe.Workflow:
    wf = wfe.Workflow(draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)))
    handles = [wf.file(draw(st.sampled_from(["a.json", "b/c.json", "d e.csv"])), mime="application/json")]
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["source", "pair", "halves", "map", "wrap"]))
        node_id = draw(st.none() | st.from_regex(r"n[0-9]{1,3}", fullmatch=True).filter(lambda i: i not in wf._ids))
        config = draw(CONFIG)
        upstream = st.sampled_from(handles)
        if kind == "source":
            handle = wf.node(numbers, id=node_id, **config)
        elif kind == "pair":
            handle = wf.node(pair, draw(upstream), draw(upstream), id=node_id, **config)
        elif kind == "halves":
            handle = wf.node(halves, values=draw(upstream), id=node_id, **config)
            handles.append(handle[draw(st.sampled_from(["low", "high"]))])
        elif kind == "map":
            handle = wf.map(wrap, draw(upstream), id=node_id, **config)
        else:
            handle = wf.node(wrap, draw(upstream), id=node_id, **config)
        handles.append(handle)
    if draw(st.booleans()):
        wf.output("out", handles[-1])
    return wf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wf=built_workflows())
def test_random_built_workflows_load_back_from_yaml_and_json_with_the_same_digest(wf: wfe.Workflow) -> None:
    digest = wf.digest()
    with tempfile.TemporaryDirectory() as folder:
        for suffix, write in ((".yaml", wf.to_yaml), (".json", wf.to_json)):
            path = Path(folder) / f"workflow{suffix}"
            write(path)
            assert wfe.load_workflow(path).digest() == digest


def test_default_node_ids_are_function_names_made_unique() -> None:
    wf = wfe.Workflow("ids")
    first = wf.node(numbers)
    second = wf.node(numbers, count=5)
    third = wf.map(wrap, second)
    assert [first.id, second.id, third.id] == ["numbers", "numbers_2", "wrap"]
    graph = wf.graph()
    assert graph.node("numbers_2").config == {"count": 5} and graph.node("wrap").map


def test_named_ports_become_source_and_target_ports_and_the_workflow_runs(tmp_path: Path) -> None:
    wf = wfe.Workflow("ports", base_dir=tmp_path)
    split = wf.node(halves, values=wf.node(numbers, count=4))
    joined = wf.node(pair, split["low"], split["high"])
    edges = [(e.source, e.target, e.source_port, e.target_port) for e in wf.graph().edges]
    assert edges == [("numbers", "halves", None, "values"), ("halves", "pair", "low", None),
                     ("halves", "pair", "high", None)]
    result = wfe.run(wf, str(tmp_path / "store"))
    assert result.status == "succeeded"
    assert json.loads(result.store.blobs.get(result.outputs(joined.id)[0].digest)) == [[0, 1], [2, 3]]


def test_a_built_sub_workflow_and_loop_run_by_digest_and_their_file_names_the_digest(tmp_path: Path) -> None:
    inner = wfe.Workflow("inner")
    values = inner.input("values", mime="application/json")
    inner.output("high", inner.node(halves, values=values)["high"])
    outer = wfe.Workflow("outer", base_dir=tmp_path)
    sub = outer.workflow(inner, values=outer.node(numbers, count=6))
    outer.node(wrap, sub)
    store = wfe.open_store(str(tmp_path / "store"))
    result = wfe.run(outer, store)
    assert result.status == "succeeded"
    assert json.loads(store.blobs.get(result.outputs("wrap")[0].digest)) == [[3, 4, 5]]
    assert f"workflow: '{inner.digest()}'" in outer.to_yaml() or f"workflow: {inner.digest()}" in outer.to_yaml()
    (tmp_path / "outer.yaml").write_text(outer.to_yaml())
    again = wfe.run(tmp_path / "outer.yaml", store)
    assert again.manifest.workflow_digest == result.manifest.workflow_digest
    assert {r.status for r in again.manifest.nodes.values()} == {"cached"}


def _other_handle() -> Any:
    return wfe.Workflow("other").node(numbers)


BUILDER_ERRORS: dict[str, Callable[[wfe.Workflow], Any]] = {
    "a function named by a string": lambda wf: wf.node("numbers"),
    "a callable that is no function": lambda wf: wf.node(len),
    "a node of another workflow": lambda wf: wf.node(wrap, _other_handle()),
    "a handle given to a config field": lambda wf: wf.node(numbers, count=wf.node(numbers)),
    "a config that is no JSON": lambda wf: wf.node(numbers, count=object()),
    "a duplicate node id": lambda wf: (wf.node(numbers, id="x"), wf.node(numbers, id="x")),
    "an invalid node id": lambda wf: wfe.run(wf.node(numbers, id="no spaces").workflow, wf._store),
    "an invalid MIME type": lambda wf: wfe.run((wf.file("a.csv", mime="csv"), wf)[1], wf._store),
    "an output port that does not exist": lambda wf: wfe.run((wf.node(wrap, wf.node(numbers)["nope"]), wf)[1],
                                                               wf._store),
    "a sub-workflow that is not a workflow": lambda wf: wf.workflow(42),  # type: ignore[arg-type]
    "an output of no node": lambda wf: wf.output("out", "numbers"),  # type: ignore[arg-type]
    "a config key given twice": lambda wf: wf.node(numbers, config={"count": 1}, count=2),
    "a config that is no mapping": lambda wf: wf.node(numbers, config=[("count", 1)]),  # type: ignore[arg-type]
    "a config key that is no string": lambda wf: wf.map(wrap, wf.node(numbers), config={1: 2}),
}


@pytest.mark.parametrize("case", list(BUILDER_ERRORS))
def test_each_builder_error_is_one_line_and_writes_nothing_to_the_store(case: str, tmp_path: Path) -> None:
    wf = wfe.Workflow("errors", base_dir=tmp_path)
    wf._store = str(tmp_path / "store")  # type: ignore[attr-defined]
    with pytest.raises(wfe.WfeError) as caught:
        BUILDER_ERRORS[case](wf)
    assert isinstance(caught.value, wfe.WorkflowError)
    assert "\n" not in str(caught.value) and str(caught.value)
    assert _files(tmp_path / "store") == []


SCRIPT = textwrap.dedent(
    '''
    import json, sys
    import wfe

    @wfe.function(outputs="application/json")
    def numbers(*, count):
        return list(range(count))

    def total(values):  # a plain function: the builder registers it
        return sum(values)

    wfe.function(inputs=["application/json"], outputs="application/json")(total)

    def build():
        wf = wfe.Workflow("script")
        wf.node(total, wf.node(numbers, count=10))
        return wf

    if __name__ == "__main__":
        report = {}
        for executor in sys.argv[2:]:
            try:
                result = wfe.run(build(), sys.argv[1], executor=executor, jobs=2)
                report[executor] = {n: [r.status, [a.digest for a in r.outputs]]
                                    for n, r in result.manifest.nodes.items()}
            except wfe.WfeError as exc:
                report[executor] = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(report))
    '''
)


def test_functions_of_a_script_run_under_threads_and_processes_and_dask_refuses_them_before_running(
        tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    store = tmp_path / "store"
    done = subprocess.run([sys.executable, "script.py", str(store), "threads", "processes"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["threads"]["total"][0] == "ran" and report["processes"]["total"][0] == "cached"
    assert report["threads"]["total"][1] == report["processes"]["total"][1]
    fresh = tmp_path / "fresh"
    done = subprocess.run([sys.executable, "script.py", str(fresh), "processes", "dask"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["processes"]["total"][0] == "ran"
    assert report["dask"]["error"] == "ExecutorError"
    assert "is defined in __main__" in report["dask"]["message"] and "\n" not in report["dask"]["message"]


def test_a_script_function_under_dask_writes_nothing_to_the_store(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "script.py", str(tmp_path / "store"), "dask"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dask"]["error"] == "ExecutorError"
    assert _files(tmp_path / "store") == []


@wfe.function(outputs="application/json")
def tb_start(*, guess: float) -> float:
    return guess


@wfe.function(inputs=[wfe.Input("application/json", name="estimate")],
              outputs=[wfe.Output("application/json", name="estimate")])  # fmt: skip
def tb_newton_step(estimate: float, *, target: float) -> float:
    return (estimate + target / estimate) / 2


@wfe.function(inputs=[wfe.Input("application/json", name="before"), wfe.Input("application/json", name="after")],
              outputs=[wfe.Output("application/json", name="keep_going")])  # fmt: skip
def tb_not_converged(before: float, after: float, *, tolerance: float) -> bool:
    return abs(after - before) > tolerance


def test_a_built_loop_iterates_and_its_workflow_file_reruns_all_cached(tmp_path: Path) -> None:
    step = wfe.Workflow("newton-step")
    estimate = step.input("estimate", mime="application/json")
    stepped = step.node(tb_newton_step, estimate, id="step", target=2.0)
    check = step.node(tb_not_converged, before=estimate, after=stepped, id="check", tolerance=0.1)
    step.output("estimate", stepped)
    step.output("keep_going", check)
    sqrt = wfe.Workflow("sqrt2", base_dir=tmp_path)
    guess = sqrt.node(tb_start, id="guess", guess=1.0)
    sqrt.loop(step, guess, id="refine", max_iterations=20, condition="keep_going", check={"tolerance": 1e-6})
    store = wfe.open_store(str(tmp_path / "store"))
    built = wfe.run(sqrt, store)
    assert built.status == "succeeded"
    # the override, not the inner default of 0.1, decided when to stop
    assert abs(built.value("refine", port="estimate") - 2 ** 0.5) < 1e-9
    assert built.manifest.nodes["refine"].iterations >= 4
    (tmp_path / "sqrt.yaml").write_text(sqrt.to_yaml())
    again = wfe.run(tmp_path / "sqrt.yaml", store)
    assert again.manifest.workflow_digest == built.manifest.workflow_digest
    assert {r.status for r in again.manifest.nodes.values()} == {"cached"}


@settings(max_examples=30, deadline=None)
@given(
    config=st.dictionaries(
        st.sampled_from(["id", "cache", "config", "count", "fn", "inputs", "x"]),
        st.one_of(st.integers(-5, 5), st.text(max_size=5), st.booleans(), st.none()),
        max_size=4,
    )
)
def test_any_config_key_even_a_reserved_word_reaches_the_node_through_config(config: dict[str, Any]) -> None:
    wf = wfe.Workflow("reserved")
    first = wf.node(numbers, id="first", config=config)
    second = wf.map(wrap, first, id="second", config=config)
    nodes = {node["id"]: node for node in wf.document()["nodes"]}
    assert nodes[first.id].get("config", {}) == config == nodes[second.id].get("config", {})
    assert nodes[first.id].get("cache", "use") == "use"  # a config key named cache is no policy
