"""The engine end to end: caching, invalidation, repair, backends agreeing, bad input."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wfe

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales" / "workflow.yaml"

FUNCTIONS = textwrap.dedent(
    '''
    import json
    import wfe

    SCALE = 2

    def helper(x):
        return x * SCALE

    @wfe.function(inputs=["text/plain"], outputs="application/json")
    def parse(text, *, offset=0):
        return [int(v) + offset for v in text.split()]

    @wfe.function(inputs=["application/json"], outputs="application/json")
    def double(values):
        return [helper(v) for v in values]

    @wfe.function(inputs=["application/json"], outputs="application/json", version="1")
    def total(values):
        return sum(values)

    @wfe.function(inputs=["application/json", "application/json"], outputs="text/plain")
    def report(doubled, summed):
        return f"{doubled} -> {summed}\\n"

    @wfe.function(inputs=["application/json"], outputs="text/plain")
    def side(values):
        return str(len(values))

    @wfe.function(inputs=["text/plain"], outputs="text/plain")
    def count_words(text):
        return str(len(text.split()))
    '''
)

WORKFLOW = {
    "name": "numbers",
    "modules": ["numfuncs"],
    "nodes": [
        {"id": "numbers", "file": "numbers.txt", "mime": "text/plain"},
        {"id": "parse", "function": "parse", "config": {"offset": 0}},
        {"id": "double", "function": "double"},
        {"id": "total", "function": "total"},
        {"id": "report", "function": "report"},
        {"id": "side", "function": "side"},
        {"id": "words", "function": "count_words"},
    ],
    "edges": [
        {"source": "numbers", "target": "parse"},
        {"source": "parse", "target": "double"},
        {"source": "double", "target": "total"},
        {"source": "double", "target": "report"},
        {"source": "total", "target": "report"},
        {"source": "parse", "target": "side"},
        {"source": "numbers", "target": "words"},
    ],
}

Cli = Callable[..., Any]


def write_project(folder: Path, workflow: dict[str, Any] | None = None, functions: str = FUNCTIONS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "numfuncs.py").write_text(functions)
    (folder / "numbers.txt").write_text("1 2 3 4\n")
    path = folder / "workflow.json"
    path.write_text(json.dumps(workflow or WORKFLOW))
    return path


def run_json(wfe_cli: Cli, workflow: Path, store: Path | str, *extra: str) -> dict[str, Any]:
    out = wfe_cli("run", str(workflow), "--store", str(store), "--json", *extra)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {node: info["status"] for node, info in result["nodes"].items()}


def digests(result: dict[str, Any]) -> dict[str, list[str]]:
    return {node: [o["digest"] for o in info["outputs"]] for node, info in result["nodes"].items()}


def test_example_runs_then_reruns_all_cached_with_identical_digests(wfe_cli: Cli, tmp_path: Path) -> None:
    first = wfe_cli("run", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert "text/html" in first.stdout and "succeeded" in first.stdout
    assert (tmp_path / ".wfe" / "blobs").is_dir()  # the default store is ./.wfe
    cold = run_json(wfe_cli, EXAMPLE, tmp_path / ".wfe")
    warm = run_json(wfe_cli, EXAMPLE, tmp_path / ".wfe")
    assert set(statuses(warm).values()) == {"cached"}
    assert digests(warm) == digests(cold)
    mimes = {o["mime"] for info in warm["nodes"].values() for o in info["outputs"]}
    assert {"text/csv", "application/json", "text/html", "text/plain"} <= mimes


def test_store_from_environment(wfe_cli: Cli, tmp_path: Path) -> None:
    out = wfe_cli("run", str(EXAMPLE), "--json", env={"WFE_STORE": str(tmp_path / "elsewhere")})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "elsewhere" / "runs").is_dir() and not (tmp_path / ".wfe").exists()


def test_config_change_reruns_exactly_the_node_and_its_descendants(wfe_cli: Cli, tmp_path: Path) -> None:
    workflow = write_project(tmp_path / "p")
    store = tmp_path / "store"
    run_json(wfe_cli, workflow, store)
    changed = json.loads(json.dumps(WORKFLOW))
    changed["nodes"][1]["config"] = {"offset": 1}
    workflow.write_text(json.dumps(changed))
    after = statuses(run_json(wfe_cli, workflow, store))
    assert after == {"numbers": "cached", "parse": "ran", "double": "ran", "total": "ran",
                     "report": "ran", "side": "ran", "words": "cached"}


@pytest.mark.parametrize(
    ("old", "new", "reran"),
    [
        # the function's own code
        ("return [helper(v) for v in values]", "return [helper(v) for v in reversed(values)]", "double"),
        # a same-module helper it calls
        ("return x * SCALE", "return x * SCALE + 0", "double"),
        # a module constant the helper reads
        ("SCALE = 2", "SCALE = 3", "double"),
        # an explicit version bump, with no code change
        ('version="1"', 'version="2"', "total"),
    ],
)
def test_code_changes_rerun_exactly_the_node_and_descendants(
    wfe_cli: Cli, tmp_path: Path, old: str, new: str, reran: str
) -> None:
    workflow = write_project(tmp_path / "p")
    store = tmp_path / "store"
    cold = run_json(wfe_cli, workflow, store)
    assert set(statuses(cold).values()) == {"ran"}
    source = (tmp_path / "p" / "numfuncs.py").read_text()
    assert old in source
    edited = tmp_path / "p" / "numfuncs.py"
    edited.write_text(source.replace(old, new))
    # Python trusts cached bytecode whose source has the same size and mtime (whole seconds):
    # an edit within the second of the first run would be invisible to the interpreter itself.
    later = time.time() + 5
    os.utime(edited, (later, later))
    after = statuses(run_json(wfe_cli, workflow, store))
    descendants = {"double": {"double", "total", "report"}, "total": {"total", "report"}}[reran]
    ran = {node for node, status in after.items() if status == "ran"}
    # A descendant whose inputs came out identical is served from the cache: that is correct.
    assert reran in ran and ran <= descendants
    assert {n for n, s in after.items() if s == "cached"} >= set(WORKFLOW_IDS) - descendants


WORKFLOW_IDS = [n["id"] for n in WORKFLOW["nodes"]]


def test_comment_and_docstring_edits_do_not_invalidate(wfe_cli: Cli, tmp_path: Path) -> None:
    workflow = write_project(tmp_path / "p")
    store = tmp_path / "store"
    run_json(wfe_cli, workflow, store)
    source = (tmp_path / "p" / "numfuncs.py").read_text()
    (tmp_path / "p" / "numfuncs.py").write_text(
        source.replace("def double(values):\n", 'def double(values):\n    """Twice each value."""\n    # why\n')
    )
    assert set(statuses(run_json(wfe_cli, workflow, store)).values()) == {"cached"}


def test_deleted_output_blob_is_recomputed_not_an_error(wfe_cli: Cli, tmp_path: Path) -> None:
    workflow = write_project(tmp_path / "p")
    store_path = tmp_path / "store"
    cold = run_json(wfe_cli, workflow, store_path)
    store = wfe.open_store(str(store_path))
    assert store.blobs.delete(cold["nodes"]["double"]["outputs"][0]["digest"])
    warm = run_json(wfe_cli, workflow, store_path)
    assert statuses(warm)["double"] == "ran"
    assert {s for n, s in statuses(warm).items() if n != "double"} == {"cached"}
    assert digests(warm) == digests(cold)
    assert set(statuses(run_json(wfe_cli, workflow, store_path)).values()) == {"cached"}  # entry repaired


def test_memory_and_local_stores_give_the_same_digests(tmp_path: Path) -> None:
    local = wfe.run(EXAMPLE, str(tmp_path / "store"))
    memory = wfe.run(EXAMPLE, f"memory://same-digests-{tmp_path.name}")
    assert local.ok and memory.ok
    assert {n: r.outputs for n, r in local.manifest.nodes.items()} == {
        n: r.outputs for n, r in memory.manifest.nodes.items()
    }


def test_failing_node_stops_only_its_descendants(tmp_path: Path) -> None:
    functions = FUNCTIONS.replace("return sum(values)", "raise ValueError('no totals today')")
    workflow = write_project(tmp_path / "p", functions=functions.replace("numfuncs", "numfuncs"))
    (tmp_path / "p" / "failfuncs.py").write_text(functions)
    document = json.loads(workflow.read_text())
    document["modules"] = ["failfuncs"]
    workflow.write_text(json.dumps(document))
    result = wfe.run(workflow, str(tmp_path / "store"))
    status = {n: r.status for n, r in result.manifest.nodes.items()}
    assert result.status == "failed"
    assert status == {"numbers": "ran", "parse": "ran", "double": "ran", "total": "failed",
                      "report": "skipped", "side": "ran", "words": "ran"}
    record = result.manifest.nodes["total"]
    assert record.error == "ValueError: no totals today"
    assert record.traceback and "raise ValueError" in record.traceback
    stored = wfe.open_store(str(tmp_path / "store")).runs.get(result.run_id)
    assert stored.status == "failed" and stored.nodes["total"].status == "failed"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


BAD_WORKFLOWS = {
    "cycle": ({"edges": [{"source": "parse", "target": "double"}, {"source": "double", "target": "total"},
                         {"source": "total", "target": "parse"}]}, "cycle: double -> total -> parse -> double"),
    "unknown edge": ({"edges": [{"source": "parse", "target": "nowhere"}]}, "unknown node 'nowhere'"),
    "duplicate": ({"nodes": [{"id": "parse", "function": "parse"}, {"id": "parse", "function": "double"}],
                   "edges": []}, "duplicate node id 'parse'"),
    "unknown function": ({"nodes": [{"id": "a", "function": "no_such_function"}], "edges": []},
                         "node 'a': unknown function 'no_such_function'"),
    "misspelt function": ({"nodes": [{"id": "a", "function": "doubel"}], "edges": []},
                          "node 'a': unknown function 'doubel' (did you mean 'double'? registered: "),
    "misspelt config key": ({"nodes": [{"id": "a", "function": "parse", "config": {"sep": ","}}], "edges": []},
                            "node 'a': config key 'sep' is not a parameter of parse()"),
    "outside allow-list": ({"nodes": [{"id": "a", "function": "os:system"}], "edges": []},
                           "unknown function 'os:system'"),
    "module not beside workflow": ({"modules": ["os"]}, "no os.py beside the workflow"),
    "missing input": ({"nodes": [{"id": "n", "file": "numbers.txt", "mime": "text/plain"},
                                 {"id": "d", "function": "double"}],
                       "edges": [{"source": "n", "target": "d"}]},
                      "node 'd' needs an input of type application/json that no upstream node produces"),
    "bad node id": ({"nodes": [{"id": "../x", "function": "parse"}], "edges": []}, "invalid node id"),
    "misspelt node key": ({"nodes": [{"id": "a", "function": "parse", "confg": {}}], "edges": []},
                          "nodes.0.confg: unknown key"),
    "misspelt edge key": ({"edges": [{"source": "parse", "target": "double", "mmie": "application/json"}]},
                          "edges.0.mmie: unknown key"),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKFLOWS))
def test_bad_workflows_get_one_line_and_exit_2_with_store_untouched(wfe_cli: Cli, tmp_path: Path, case: str) -> None:
    workflow = write_project(tmp_path / "p")
    store = tmp_path / "store"
    run_json(wfe_cli, workflow, store)
    before = snapshot(store)
    change, message = BAD_WORKFLOWS[case]
    workflow.write_text(json.dumps({**WORKFLOW, **change}))
    out = wfe_cli("run", str(workflow), "--store", str(store))
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cat", "sha256:../../etc/passwd"], "invalid digest"),
        (["run", "WORKFLOW", "--store", "nosuchscheme://bucket/x"], "unknown store URL scheme 'nosuchscheme'"),
        (["run", "missing.yaml"], "cannot read workflow"),
        (["cat", "sha256:" + "0" * 64], "no blob sha256:" + "0" * 64),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(wfe_cli: Cli, tmp_path: Path, args: list[str], message: str) -> None:
    workflow = write_project(tmp_path / "p")
    store = tmp_path / "store"
    run_json(wfe_cli, workflow, store)
    before = snapshot(store)
    args = [str(workflow) if a == "WORKFLOW" else a for a in args]
    if "--store" not in args:
        args += ["--store", str(store)]
    out = wfe_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert snapshot(store) == before


def test_unparseable_and_non_utf8_workflow_files(wfe_cli: Cli, tmp_path: Path) -> None:
    for name, content in [("a.yaml", b"nodes: [\n"), ("b.json", b"{"), ("c.yaml", b"\xff\xfe\x00"),
                          ("d.yaml", b"- just\n- a list\n")]:
        (tmp_path / name).write_bytes(content)
        out = wfe_cli("run", name, "--store", str(tmp_path / "store"))
        assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1, out
    assert not (tmp_path / "store").exists()


def test_stored_function_entry_naming_unregistered_code_is_refused(tmp_path: Path) -> None:
    from wfe.graph._functions import resolve_spec

    store = wfe.open_store(str(tmp_path / "store"))
    forged = wfe.FunctionSpec(name="innocent", ref="os:system", version="1")
    store.functions.put(forged)
    with pytest.raises(wfe.FunctionNotAllowedError, match="'os:system', which is not registered"):
        resolve_spec(store.functions.get("innocent"))


def test_copy_of_store_directory_is_a_store(tmp_path: Path) -> None:
    result = wfe.run(EXAMPLE, str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    again = wfe.run(EXAMPLE, str(tmp_path / "b"))
    assert {r.status for r in again.manifest.nodes.values()} == {"cached"}
    assert again.manifest.nodes["report"].outputs == result.manifest.nodes["report"].outputs
