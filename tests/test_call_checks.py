"""Errors before anything runs: a node's call against its function's signature, a graph made in Python."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli
from hypothesis import given
from hypothesis import strategies as st

import wfe
from wfe.graph._signature import check_call

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales"


def plain(a, b=1): ...  # type: ignore[no-untyped-def]
def keyword_only(a, *, months, title="x"): ...  # type: ignore[no-untyped-def]
def positional_only(a, b, /, c=0): ...  # type: ignore[no-untyped-def]
def star_args(*rows, limit=3): ...  # type: ignore[no-untyped-def]
def star_kwargs(a, **options): ...  # type: ignore[no-untyped-def]
def nothing(): ...  # type: ignore[no-untyped-def]


FUNCTIONS = [plain, keyword_only, positional_only, star_args, star_kwargs, nothing]
KEYS = ["a", "b", "c", "months", "monts", "title", "limit", "rows", "options", "other"]


@given(func=st.sampled_from(FUNCTIONS), inputs=st.integers(0, 4), keys=st.sets(st.sampled_from(KEYS), max_size=4))
def test_a_call_is_refused_exactly_when_python_would_refuse_it(func: Any, inputs: int, keys: set[str]) -> None:
    try:
        inspect.signature(func).bind(*range(inputs), **dict.fromkeys(keys, 0))
        python_refuses = False
    except TypeError:
        python_refuses = True
    try:
        check_call("n", func.__name__, func, inputs, keys)
        refused = False
    except wfe.WorkflowError as exc:
        refused = True
        message = str(exc)
        assert "\n" not in message and message.startswith("node 'n': ") and func.__name__ in message
    assert refused == python_refuses, (func.__name__, inputs, sorted(keys))


def test_a_misspelt_config_key_is_named_with_the_closest_parameter() -> None:
    with pytest.raises(wfe.WorkflowError) as caught:
        check_call("by_month", "keyword_only", keyword_only, 1, {"monts"})
    assert str(caught.value) == (
        "node 'by_month': config key 'monts' is not a parameter of keyword_only() (parameters: months, title); "
        "did you mean 'months'?"
    )
    with pytest.raises(wfe.WorkflowError, match=r"keyword_only\(\) needs 'months': give it in the node's config"):
        check_call("by_month", "keyword_only", keyword_only, 1, set())
    with pytest.raises(wfe.WorkflowError, match=r"plain\(\) takes 2 positional arguments but is declared with 3"):
        check_call("n", "plain", plain, 3, set())


def test_a_misspelt_config_key_fails_the_run_before_anything_runs(tmp_path: Path, wfe_cli: Cli) -> None:
    project = tmp_path / "sales"
    project.mkdir()
    for name in ("sales_functions.py", "sales.csv", "targets.json"):
        (project / name).write_bytes((EXAMPLE / name).read_bytes())
    text = (EXAMPLE / "workflow.yaml").read_text()
    assert "config: {months: 6}" in text
    (project / "workflow.yaml").write_text(text.replace("config: {months: 6}", "config: {monts: 6}"))
    store = tmp_path / "store"
    done = wfe_cli("run", str(project / "workflow.yaml"), "--store", str(store))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: node 'by_month': config key 'monts' is not a parameter of revenue_by_month() "
        "(parameters: months); did you mean 'months'?"
    ]
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]


@pytest.mark.parametrize(("nodes", "message"), [
    ([{"id": "../x", "function": "f"}], "nodes.0.id: invalid node id '../x'"),
    ([], "nodes: List should have at least 1 item"),
    ([{"id": "a", "function": "f", "confg": {}}], "nodes.0.confg: unknown key"),
    ([{"id": "a", "function": "f"}, {"id": "a", "function": "f"}], "duplicate node id 'a'"),
])  # fmt: skip
def test_a_bad_graph_made_in_python_is_a_one_line_workflow_error(nodes: list[Any], message: str) -> None:
    with pytest.raises(wfe.WorkflowError) as caught:
        wfe.WorkflowGraph(name="g", nodes=nodes)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert "pydantic" not in str(caught.value)


def test_public_classes_are_wfes_own() -> None:
    public = [getattr(wfe, name) for name in wfe.__all__ if isinstance(getattr(wfe, name), type)]
    assert len(public) > 20
    assert {cls.__module__ for cls in public} == {"wfe"}
    assert str(wfe.WorkflowError) == "<class 'wfe.WorkflowError'>"


def test_an_unknown_function_is_a_workflow_error_naming_the_node_and_the_closest_name() -> None:
    wfe.function(outputs="application/json")(lambda_free_total)
    graph = wfe.WorkflowGraph(name="g", nodes=[{"id": "sum", "function": "lambda_free_totl"}])
    with pytest.raises(wfe.WorkflowError) as caught:
        wfe.run(graph, "memory://unknown-function")
    assert isinstance(caught.value, wfe.UnknownFunctionError)
    assert str(caught.value).startswith("node 'sum': unknown function 'lambda_free_totl' (did you mean "
                                        "'lambda_free_total'? registered: ")


def lambda_free_total() -> int:
    return 0
