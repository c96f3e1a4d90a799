"""Run history: runs, show, rerun (--force, --verify), explain, cat/put."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli
from _projects import make_project

import wfe
from wfe.ops._explain import config_diff, explain
from wfe.ops._rerun import rerun
from wfe.ops._sync import sync


def run_json(wfe_cli: Cli, workflow: Path, store: Path, *extra: str) -> dict[str, Any]:
    out = wfe_cli("run", str(workflow), "--store", str(store), "--json", *extra)
    assert out.returncode in (0, 1), out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def outputs_of(manifest: wfe.RunManifest) -> dict[str, list[str]]:
    return {node: [a.digest for a in record.outputs] for node, record in manifest.nodes.items()}


def test_sync_to_memory_then_forced_verified_rerun_matches_every_digest(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    local = wfe.open_store(str(tmp_path / "store"))
    first = wfe.run(project.workflow, local)
    assert first.ok
    memory = wfe.open_store(f"memory://replay-{uuid.uuid4().hex[:8]}")
    report = sync(local, memory)
    assert report.ok and report.copied["runs"] == 1

    outcome = rerun(memory, first.run_id, force=True, verify=True, base_dir=project.folder)

    assert outcome.ok and outcome.differences == [] and outcome.unchecked == {}
    assert sorted(outcome.compared) == sorted(first.manifest.nodes)
    replayed = outcome.result.manifest
    assert {n: r.status for n, r in replayed.nodes.items() if r.function} == {
        "parse": "ran", "double": "ran", "total": "ran"}  # recomputed, not read from the cache
    assert outputs_of(replayed) == outputs_of(first.manifest)
    assert replayed.workflow_digest == first.manifest.workflow_digest
    assert {n: r.config for n, r in replayed.nodes.items()} == {n: r.config for n, r in first.manifest.nodes.items()}
    assert memory.runs.get(outcome.result.run_id).model_extra["rerun_of"] == first.run_id  # type: ignore[index]


def test_verify_names_the_nondeterministic_node_and_nothing_else(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path, stamp=True)
    store = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store)

    out = wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir, "--force", "--verify")

    assert out.returncode == 1, out.stderr
    differs = [line for line in out.stdout.splitlines() if line.startswith("DIFFERS")]
    assert len(differs) == 1 and differs[0].startswith("DIFFERS stamp:"), out.stdout
    assert "unchecked" not in out.stdout
    assert "6 nodes compared, 1 differ" in out.stdout
    # shout's inputs changed because stamp's did; judged on its recorded inputs, it is deterministic
    as_json = json.loads(wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir,
                                 "--force", "--verify", "--json").stdout)
    assert [d["node"] for d in as_json["differences"]] == ["stamp"]


def test_rerun_without_force_comes_from_the_cache(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store)
    out = wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir, "--verify", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {info["status"] for info in result["nodes"].values()} == {"cached"}
    assert result["differences"] == [] and result["rerun_of"] == first["run_id"]


def test_rerun_pins_file_inputs_to_their_recorded_digests(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store)
    (project.folder / "numbers.txt").write_text("100 200\n")  # the file moved on; the run did not
    out = wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir, "--json")
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)["nodes"]
    assert again["numbers"]["outputs"] == first["nodes"]["numbers"]["outputs"]
    assert again["total"]["outputs"] == first["nodes"]["total"]["outputs"]

    numbers_blob = first["nodes"]["numbers"]["outputs"][0]["digest"]
    wfe.open_store(str(store)).blobs.delete(numbers_blob)
    gone = wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir)
    assert gone.returncode == 2
    assert gone.stderr.startswith("error: file node 'numbers'") and numbers_blob in gone.stderr


def test_rerun_refuses_a_function_whose_code_changed(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store)
    recorded = wfe.open_store(str(store)).runs.get(first["run_id"]).nodes["double"].version
    source = project.functions.read_text().replace("return [v * 2 for v in values]", "return [v * 3 for v in values]")
    project.functions.write_text(source)

    out = wfe_cli("rerun", first["run_id"], "--store", str(store), "--base-dir", project.dir, "--force")

    assert out.returncode == 2 and out.stdout == ""
    line = out.stderr.strip()
    assert line.startswith("error: cannot rerun") and len(out.stderr.strip().splitlines()) == 1
    assert f"'double_{project.tag}' (node 'double') was version {recorded}" in line
    assert "the code is now auto:" in line and "parse" not in line.split("(node")[0].replace("double", "")


def test_runs_lists_newest_first_with_filters(wfe_cli: Cli, tmp_path: Path) -> None:
    good = make_project(tmp_path)
    bad = make_project(tmp_path, broken=True)
    store = tmp_path / "store"
    one = run_json(wfe_cli, good.workflow, store)["run_id"]
    two = run_json(wfe_cli, bad.workflow, store)["run_id"]
    three = run_json(wfe_cli, good.workflow, store)["run_id"]

    listed = wfe_cli("runs", "--store", str(store), "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["run_id"] for r in rows] == [three, two, one]
    assert rows[0]["cached"] == 4 and rows[2]["ran"] == 4
    assert rows[1]["status"] == "failed" and rows[1]["failed"] == 1

    def ids(*args: str) -> list[str]:
        out = wfe_cli("runs", "--store", str(store), "--json", *args)
        return [json.loads(line)["run_id"] for line in out.stdout.splitlines()]

    assert ids("--status", "failed") == [two]
    assert ids("--workflow", f"numbers-{good.tag}") == [three, one]
    assert ids("--limit", "1") == [three]
    table = wfe_cli("runs", "--store", str(store)).stdout.splitlines()
    assert table[0].split()[:2] == ["RUN", "WORKFLOW"] and table[1].startswith(three)


def test_show_prints_every_node_and_its_log(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store_path = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store_path)
    store = wfe.open_store(str(store_path))
    manifest = store.runs.get(first["run_id"])
    manifest.nodes["double"].log = store.blobs.put(b"doubling 4 values\nsecond line\n")
    store.runs.put(manifest)

    shown = wfe_cli("show", first["run_id"][:20], "--store", str(store_path))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    record = manifest.nodes["double"]
    for needle in (record.action_key, record.config, record.version, record.inputs[0].digest,
                   record.outputs[0].digest, "| doubling 4 values", "| second line"):
        assert needle and needle in text
    as_json = json.loads(wfe_cli("show", "latest", "--store", str(store_path), "--json").stdout)
    assert as_json["run_id"] == first["run_id"] and set(as_json["nodes"]) == set(first["nodes"])
    missing = wfe_cli("show", "nope", "--store", str(store_path))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no run 'nope'")


def test_explain_names_the_changed_part_of_the_action_key(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = wfe.open_store(str(tmp_path / "store"))
    wfe.run(project.workflow, store)
    project.write(offset=5)
    second = wfe.run(project.workflow, store)

    parse = explain(store, second.run_id, "parse")
    assert parse.status == "ran" and parse.previous_run is not None
    assert len(parse.reasons) == 1 and "offset: 0 -> 5" in parse.reasons[0] and "label" not in parse.reasons[0]
    double = explain(store, second.run_id, "double")
    assert len(double.reasons) == 1
    assert double.reasons[0].startswith("input 1 (application/json, from node 'parse') changed")
    numbers = explain(store, second.run_id, "numbers")
    assert numbers.status == "cached" and "already in the store" in numbers.reasons[0]

    source = project.functions.read_text().replace("return sum(values)", "return sum(values) + 0")
    project.functions.write_text(source)
    import importlib
    import sys

    importlib.reload(sys.modules[f"ops_{project.tag}"])
    third = wfe.run(project.workflow, store)
    total = explain(store, third.run_id, "total")
    assert len(total.reasons) == 1 and f"function 'total_{project.tag}' changed: version" in total.reasons[0]
    assert explain(store, third.run_id, "double").status == "cached"


def test_explain_from_the_command_line(wfe_cli: Cli, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    store = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store)
    out = wfe_cli("explain", first["run_id"], "parse", "--store", str(store))
    assert out.returncode == 0 and "nothing like it had run before" in out.stdout
    forced = run_json(wfe_cli, project.workflow, store, "--force")
    out = wfe_cli("explain", forced["run_id"], "parse", "--store", str(store), "--json")
    assert "the run was forced" in json.loads(out.stdout)["reasons"][0]
    bad = wfe_cli("explain", forced["run_id"], "nosuch", "--store", str(store))
    assert bad.returncode == 2 and "has no node 'nosuch'" in bad.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1}, {"a": 2}, ["a: 1 -> 2"]),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, ["a.c: 2 -> 3"]),
        ({}, {"x": "y"}, ['x added ("y")']),
        ({"x": [1]}, {}, ["x removed (was [1])"]),
    ],
)
def test_config_diff(old: dict[str, Any], new: dict[str, Any], expected: list[str]) -> None:
    assert config_diff(old, new) == expected


def test_put_prints_an_artifact_and_cat_gives_the_bytes_back(wfe_cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "table.csv"
    data.write_text("a,b\n1,2\n")
    store = str(tmp_path / "store")
    plain = wfe_cli("put", str(data), "--store", store)
    digest = plain.stdout.strip()
    assert plain.returncode == 0 and digest.startswith("sha256:")
    typed = wfe_cli("put", str(data), "--store", store, "--json", "--mime", "text/csv; charset=utf-8")
    artifact = json.loads(typed.stdout)
    assert artifact == {"digest": digest, "mime": "text/csv; charset=utf-8", "size": 8, "name": "table.csv"}
    wfe.Artifact.model_validate(artifact)
    guessed = json.loads(wfe_cli("put", str(data), "--store", store, "--json").stdout)
    assert guessed["mime"] == "text/csv"
    assert wfe_cli("cat", digest, "--store", store).stdout == "a,b\n1,2\n"
    bad = wfe_cli("put", str(data), "--store", store, "--mime", "not a mime")
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid MIME type")


EVIL = "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('ran')\n"


@pytest.mark.parametrize("planted", ["evil folder", "standard library"])
def test_rerun_never_imports_code_from_a_folder_a_run_record_names(
    wfe_cli: Cli, tmp_path: Path, planted: str
) -> None:
    project = make_project(tmp_path)
    store_path = tmp_path / "store"
    first = run_json(wfe_cli, project.workflow, store_path)
    store = wfe.open_store(str(store_path))
    if planted == "evil folder":
        folder, module = tmp_path / "elsewhere", "evilmod"
        folder.mkdir()
        (folder / "evilmod.py").write_text(EVIL)
    else:
        import sysconfig

        folder, module = Path(sysconfig.get_paths()["stdlib"]), "this"
    document = json.loads(store.blobs.get(store.runs.get(first["run_id"]).workflow_digest))
    document["modules"] = [module]
    planted_run = f"{first['run_id'][:-6]}ffffff"
    record = store.runs.get(first["run_id"]).model_copy(update={
        "run_id": planted_run, "base_dir": str(folder),
        "workflow_digest": store.blobs.put(json.dumps(document).encode()),
    })
    store.runs.put(record)
    before = sorted(p.name for p in store_path.rglob("*"))

    out = wfe_cli("rerun", planted_run, "--store", str(store_path))  # from tmp_path: no such module there

    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot rerun {planted_run}: its workflow imports '{module}'")
    assert "--base-dir" in line
    assert not (folder / "IMPORTED").exists()
    assert sorted(p.name for p in store_path.rglob("*")) == before
    # pointed at the project's own folder, whose files the record does not name, it is refused the same way
    there = wfe_cli("rerun", planted_run, "--store", str(store_path), "--base-dir", str(project.folder))
    assert there.returncode == 2 and "not found in the folder given with --base-dir" in there.stderr


EXITS = """
import os
import wfe

@wfe.function(outputs="application/json")
def leave(*, code: int) -> int:
    os._exit(code)  # the process ends here: no record of the run's end can be written
"""


def test_a_run_whose_process_died_is_shown_as_died_not_running(
    wfe_cli: Cli, wfe_process: Cli, tmp_path: Path
) -> None:
    (tmp_path / "exits.py").write_text(EXITS)
    (tmp_path / "exits.yaml").write_text(
        "name: exits\nmodules: [exits]\nnodes: [{id: leave, function: leave, config: {code: 3}}]\nedges: []\n"
    )
    store = tmp_path / "store"
    out = wfe_process("run", "exits.yaml", "--store", str(store))  # the node ends the process
    assert out.returncode == 3
    (record,) = wfe.open_store(str(store)).runs
    assert wfe.open_store(str(store)).runs.get(record).status == "running"  # as the dead process left it

    listed = [json.loads(line) for line in wfe_cli("runs", "--store", str(store), "--json").stdout.splitlines()]
    assert [(r["run_id"], r["status"]) for r in listed] == [(record, "died")]
    assert wfe_cli("runs", "--store", str(store), "--status", "running", "--json").stdout == ""
    shown = wfe_cli("show", "latest", "--store", str(store))
    assert f"run {record}  workflow exits  died (its process" in shown.stdout
    assert json.loads(wfe_cli("show", "latest", "--store", str(store), "--json").stdout)["status"] == "died"


def test_a_run_ended_by_a_store_error_is_recorded_failed_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path)
    store = wfe.open_store(str(tmp_path / "store"))
    real_put = store.actions.put_encoded

    def put_then_fail(key: str, data: bytes, **kwargs: Any) -> bool:
        if list(store.actions):
            raise wfe.StoreError("the store went away")  # the second action entry: mid-run
        return real_put(key, data, **kwargs)

    monkeypatch.setattr(store.actions, "put_encoded", put_then_fail)
    with pytest.raises(wfe.StoreError, match="the store went away"):
        wfe.run(project.workflow, store)

    (run_id,) = store.runs
    record = store.runs.get(run_id)
    assert record.status == "failed" and record.finished is not None
