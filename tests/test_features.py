"""Flexible data kinds, named ports, sub-workflows, controlled iteration and dynamic mapping."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from _cli import run_in_process

import wfe

FEATURES = Path(__file__).resolve().parent / "workflows" / "features"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(FEATURES, folder)
    return folder


def run(project: Path, workflow: str, store: Path, calls: Path, env: dict[str, str] | None = None,
        expect: int = 0) -> dict[str, Any]:
    """``wfe run --json``; in a process of its own when ``expect`` says a node kills it."""
    args = ["run", str(project / workflow), "--store", str(store), "--json"]
    full_env = {**os.environ, "WFE_TEST_CALLS": str(calls), **(env or {})}
    if expect < 0:
        out = subprocess.run([sys.executable, "-m", "wfe", *args], capture_output=True, text=True, timeout=300,
                             env=full_env)
    else:
        out = run_in_process(args, project, full_env)
    assert out.returncode == expect, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def calls(path: Path, name: str | None = None) -> list[Any]:
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return entries if name is None else [value for fn, value in entries if fn == name]


def edit(path: Path, change: Any) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def test_mapped_node_caches_each_element(project: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "calls"
    first = run(project, "map.yaml", store, log)
    assert sorted(calls(log, "square")) == list(range(1, 101))
    manifest = wfe.open_store(str(store)).runs.get(first["run_id"])
    assert len(manifest.nodes["squares"].elements) == 100
    total_digest = first["nodes"]["sum"]["outputs"][0]["digest"]
    assert json.loads(wfe.open_store(str(store)).blobs.get(total_digest)) == sum(i * i for i in range(1, 101))

    blobs = {path: path.stat().st_mtime_ns for path in (store / "blobs").rglob("*") if path.is_file()}
    time.sleep(0.01)
    again = run(project, "map.yaml", store, log)
    assert calls(log) == [] and {n["status"] for n in again["nodes"].values()} == {"cached"}
    # a cached element costs no write: its input blob is neither written again nor renewed (the workflow's
    # blob and the mapped node's list are: put again, as a cached plain node's outputs are not)
    after = {path: path.stat().st_mtime_ns for path in (store / "blobs").rglob("*") if path.is_file()}
    assert after.keys() == blobs.keys()
    assert len([path for path in blobs if after[path] != blobs[path]]) <= 2

    edit(project / "map.yaml", lambda d: d["nodes"][0]["config"].update(count=101))
    grown = run(project, "map.yaml", store, log)
    made = calls(log)
    assert made == [["numbers", 101], ["square", 101], ["total", 101]]  # one new element, then the collect node
    manifest = wfe.open_store(str(store)).runs.get(grown["run_id"])
    statuses = [e["status"] for e in manifest.nodes["squares"].elements]
    assert statuses.count("ran") == 1 and statuses.count("cached") == 100


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_mapped_node_under_parallel_executors(project: Path, tmp_path: Path, executor: str) -> None:
    store, log = tmp_path / "store", tmp_path / "calls"
    inline = run(project, "map.yaml", tmp_path / "inline", log)
    parallel = subprocess.run(
        [sys.executable, "-m", "wfe", "run", str(project / "map.yaml"), "--store", str(store), "--json",
         "--executor", executor, "--jobs", "2"], capture_output=True, text=True, timeout=300)
    assert parallel.returncode == 0, parallel.stderr
    assert json.loads(parallel.stdout)["nodes"]["sum"]["outputs"] == inline["nodes"]["sum"]["outputs"]


def test_iteration_replays_cached_iterations(project: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "calls"
    first = run(project, "sqrt.yaml", store, log)
    steps_first = calls(log, "newton_step")
    assert 2 <= len(steps_first) < 20
    estimate = json.loads(wfe.open_store(str(store)).blobs.get(first["nodes"]["refine"]["outputs"][0]["digest"]))
    assert abs(estimate - 2 ** 0.5) < 1e-3
    manifest = wfe.open_store(str(store)).runs.get(first["run_id"])
    assert manifest.nodes["refine"].iterations == len(steps_first)

    again = run(project, "sqrt.yaml", store, log)
    assert calls(log) == [] and {n["status"] for n in again["nodes"].values()} == {"cached"}

    edit(project / "sqrt.yaml", lambda d: d["nodes"][1]["config"]["check"].update(tolerance=1e-12))
    tighter = run(project, "sqrt.yaml", store, log)
    made = calls(log)
    steps = [v for fn, v in made if fn == "newton_step"]
    manifest = wfe.open_store(str(store)).runs.get(tighter["run_id"])
    # the iterations already computed are replayed from the cache: only the extra ones run the step
    assert len(steps) == manifest.nodes["refine"].iterations - len(steps_first) > 0
    assert steps[0] == pytest.approx(json.loads(json.dumps(estimate)))


def test_loop_stops_at_its_maximum(project: Path, tmp_path: Path) -> None:
    edit(project / "sqrt.yaml", lambda d: d["nodes"][1]["loop"].update(max_iterations=2))
    edit(project / "sqrt.yaml", lambda d: d["nodes"][1]["config"]["check"].update(tolerance=0))
    result = run(project, "sqrt.yaml", tmp_path / "store", tmp_path / "calls")
    manifest = wfe.open_store(str(tmp_path / "store")).runs.get(result["run_id"])
    assert manifest.nodes["refine"].iterations == 2 and len(calls(tmp_path / "calls", "newton_step")) == 2


def test_sub_workflow_is_computed_once_for_two_parents(project: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "calls"
    a = run(project, "parent_a.yaml", store, log)
    assert calls(log, "split") == [50]
    b = run(project, "parent_b.yaml", store, log)
    assert calls(log, "split") == []  # the sub-workflow unit came from the cache
    assert b["nodes"]["cleaned"]["status"] == "cached"
    assert b["nodes"]["cleaned"]["outputs"] == a["nodes"]["cleaned"]["outputs"]
    high = json.loads(wfe.open_store(str(store)).blobs.get(a["nodes"]["cleaned"]["outputs"][0]["digest"]))
    assert high == list(range(50, 81))

    # the unit's key covers the inner graph: editing it reruns the inner node
    edit(project / "clean.yaml", lambda d: d["nodes"][0]["config"].update(pivot=60))
    changed = run(project, "parent_a.yaml", store, log)
    assert calls(log, "split") == [60] and changed["nodes"]["cleaned"]["status"] == "ran"


def test_named_ports_and_inline_outputs(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = run(project, "ports.yaml", store, tmp_path / "calls")
    opened = wfe.open_store(str(store))
    assert json.loads(opened.blobs.get(result["nodes"]["n_high"]["outputs"][0]["digest"])) == 7  # 4..10
    inline = result["nodes"]["split"]["outputs"][2]
    assert not opened.blobs.exists(inline["digest"])  # stored in the action record, not as a blob
    manifest = opened.runs.get(result["run_id"])
    action = opened.actions.get(manifest.nodes["split"].action_key or "")
    assert action.outputs[2].value == 10
    assert set(run(project, "ports.yaml", store, tmp_path / "calls")["nodes"][n]["status"]
               for n in ("items", "split", "n_high")) == {"cached"}


def test_ephemeral_output_is_never_stored_and_recomputed_after_a_crash(project: Path, tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "calls"
    run(project, "ephemeral.yaml", store, log, env={"WFE_TEST_DIE_IN": "checksum"}, expect=-9)
    assert calls(log, "expand") == [50]
    resumed = run(project, "ephemeral.yaml", store, log)
    made = calls(log)
    assert ["expand", 50] in made and ["checksum", 0] in made  # the producer is recomputed for its consumer
    opened = wfe.open_store(str(store))
    big = resumed["nodes"]["big"]["outputs"][0]
    assert not opened.blobs.exists(big["digest"])
    assert big["size"] == 50 * 4 * 1000
    final = run(project, "ephemeral.yaml", store, log)
    assert calls(log) == [] and {n["status"] for n in final["nodes"].values()} == {"cached"}


BAD = {
    "loop without a maximum": ("sqrt.yaml", lambda d: d["nodes"][1]["loop"].pop("max_iterations"),
                               "max_iterations"),
    "missing port": ("ports.yaml", lambda d: d["edges"][1].update(source_port="middle"),
                     "'split' has no output port 'middle' (ports: low, high, count)"),
    "ambiguous match": ("ports.yaml", lambda d: d["edges"][1].pop("source_port"),
                        "ambiguous"),
    "sub-workflow includes itself": ("clean.yaml", lambda d: d["nodes"].append(
        {"id": "again", "workflow": "clean.yaml"}), "includes itself"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_new_constructs_validate(project: Path, tmp_path: Path, case: str) -> None:
    name, change, message = BAD[case]
    edit(project / name, change)
    target = "parent_a.yaml" if name == "clean.yaml" else name
    out = run_in_process(["run", str(project / target), "--store", str(tmp_path / "s")], project, dict(os.environ))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr


def test_inner_runs_are_recorded_but_listed_only_on_request(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    outer = run(project, "parent_a.yaml", store, tmp_path / "calls")
    manifest = wfe.open_store(str(store)).runs.get(outer["run_id"])
    (inner_id,) = manifest.nodes["cleaned"].subruns or []
    assert wfe.open_store(str(store)).runs.get(inner_id).parent == outer["run_id"]

    def cli(*args: str) -> str:
        out = run_in_process([*args, "--store", str(store)], project, dict(os.environ))
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert outer["run_id"] in cli("runs") and inner_id not in cli("runs")
    assert inner_id in cli("runs", "--all")
    assert cli("show", "latest").startswith(f"run {outer['run_id']}")
