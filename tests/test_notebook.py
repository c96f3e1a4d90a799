"""In a notebook: runs and workflows draw themselves, and a rerun after editing a cell reruns what changed."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import wfe

CELL = '''
import wfe

@wfe.function(outputs="application/json")
def nb_numbers(*, count):
    return list(range(count))

@wfe.function(inputs=["application/json"], outputs="application/json")
def nb_scaled(values, *, factor=1):
    return [v * factor for v in values]

@wfe.function(inputs=["application/json"], outputs="application/json")
def nb_total(values):
    return sum(values)
'''


@pytest.fixture
def kernel() -> Iterator[types.ModuleType]:
    """A module standing for a notebook's ``__main__``: cells are run in it one after another."""
    module = types.ModuleType("notebook_kernel")
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def run_cell(kernel: types.ModuleType, source: str) -> None:
    exec(compile(source, "<cell>", "exec"), kernel.__dict__)


def build(kernel: types.ModuleType) -> wfe.Workflow:
    wf = wfe.Workflow("cells")
    values = wf.node(kernel.nb_numbers, count=4)
    wf.node(kernel.nb_total, wf.node(kernel.nb_scaled, values, factor=3))
    return wf


def statuses(result: wfe.RunResult) -> dict[str, str]:
    return {node_id: record.status for node_id, record in result.manifest.nodes.items()}


def test_a_rerun_after_editing_a_function_in_the_same_kernel_reruns_exactly_what_changed(
        kernel: types.ModuleType) -> None:  # fmt: skip
    store = wfe.open_store("memory://notebook-rerun")
    run_cell(kernel, CELL)
    first = wfe.run(build(kernel), store)
    assert first["nb_total"] == 18 and set(statuses(first).values()) == {"ran"}
    assert set(statuses(wfe.run(build(kernel), store)).values()) == {"cached"}
    # the cell defining `scaled` is edited and run again: same results for these inputs, new code
    run_cell(kernel, CELL.replace("return [v * factor for v in values]", "return [factor * v for v in values]"))
    edited = wfe.run(build(kernel), store)
    assert statuses(edited) == {"nb_numbers": "cached", "nb_scaled": "ran", "nb_total": "cached"}  # same output
    run_cell(kernel, CELL.replace("return [v * factor for v in values]", "return [v * factor + 1 for v in values]"))
    changed = wfe.run(build(kernel), store)
    assert statuses(changed) == {"nb_numbers": "cached", "nb_scaled": "ran", "nb_total": "ran"}
    assert changed["nb_total"] == 22


def _drawn(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-node="([^"]+)" data-status="([^"]+)"', html))


def test_a_run_and_a_workflow_draw_themselves_in_a_notebook(kernel: types.ModuleType) -> None:
    run_cell(kernel, CELL)
    wf = build(kernel)
    drawn: Any = wf._repr_html_()
    assert drawn.count("<svg") == 1
    assert _drawn(drawn) == {"nb_numbers": "pending", "nb_scaled": "pending", "nb_total": "pending"}
    store = wfe.open_store("memory://notebook-draw")
    wfe.run(wf, store)
    again = wfe.run(wf, store)
    page = again._repr_html_()
    assert _drawn(page) == {"nb_numbers": "cached", "nb_scaled": "cached", "nb_total": "cached"}
    assert again.run_id in page and "<table" in page and "<script" not in page


def test_the_notebook_style_example_runs_and_reruns_only_the_edited_function(tmp_path: Any) -> None:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "notebook" / "explore.py"
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.splitlines())
    first, second = outputs
    assert first[0] == "succeeded {'gadget': 1157, 'gizmo': 1222, 'widget': 1532} ['widget', 'gizmo']"
    assert first[1] == "{'sales': 'cached', 'units_by_product': 'cached', 'best_sellers': 'ran'}"
    assert second[1] == "{'sales': 'cached', 'units_by_product': 'cached', 'best_sellers': 'cached'}"
    assert first[2] == second[2] == "{'gadget': 1157, 'gizmo': 1222, 'widget': 1532}"
