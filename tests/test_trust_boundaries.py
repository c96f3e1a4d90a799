"""A config is data: it cannot make wfe read or write outside the store; escaping names are refused or escaped."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from test_hostile_input import cli, files_under

import wfe
from wfe.graph._specs import FunctionSpec

TRAVERSALS = ["../../outside.txt", "/etc/passwd", "..", "a/../../b", "sha256:../../etc/passwd", "~/.ssh/id_rsa"]

FUNCTIONS = """
import wfe

@wfe.function(outputs="application/json")
def echo(*, path: str, extra: dict) -> dict:
    return {"path": path, "extra": extra}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder for the module: its functions are imported (in this process) from one place."""
    path = tmp_path_factory.mktemp("project")
    (path / "echo_functions.py").write_text(FUNCTIONS)
    return path


def project(folder: Path, config: dict[str, Any]) -> Path:
    workflow = folder / f"workflow-{len(list(folder.glob('workflow-*')))}.json"
    workflow.write_text(json.dumps({
        "name": "echo", "modules": ["echo_functions"],
        "nodes": [{"id": "echo", "function": "echo", "config": config}], "edges": [],
    }))  # fmt: skip
    return workflow


@pytest.mark.parametrize("value", TRAVERSALS)
def test_config_paths_are_just_data(tmp_path: Path, folder: Path, value: str) -> None:
    config = {"path": value, "extra": {value: value, "../key": [value]}}
    workflow = project(folder, config)
    before = files_under(tmp_path)
    code, out, err = cli(["run", str(workflow), "--store", str(tmp_path / "store"), "--json"])
    assert code == 0, err
    written = {p for p in files_under(tmp_path) - before if not p.startswith("store")}
    assert written == set(), f"wrote outside the store: {written}"
    assert {p.name for p in folder.iterdir()} <= {
        "echo_functions.py",
        "__pycache__",
        *(p.name for p in folder.glob("workflow-*")),
    }
    store = wfe.open_store(str(tmp_path / "store"))
    (artifact,) = json.loads(out)["nodes"]["echo"]["outputs"]
    assert json.loads(store.blobs.get(artifact["digest"])) == config  # handed to the function as is
    digest = store.configs.put(config)
    assert store.configs.get(digest) == config
    for rel in store.io.walk("configs"):
        assert rel.startswith("configs/") and ".." not in rel.split("/")


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "/abs", "a/../../b"])
def test_function_names_that_could_escape_are_refused_in_workflows_and_escaped_in_the_store(
    tmp_path: Path, folder: Path, name: str
) -> None:
    workflow = project(folder, {"path": "x", "extra": {}})
    document = json.loads(workflow.read_text())
    document["nodes"][0]["function"] = name
    workflow.write_text(json.dumps(document))
    store_path = tmp_path / "store"
    code, _out, err = cli(["run", str(workflow), "--store", str(store_path)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    store = wfe.open_store(str(store_path))
    with pytest.raises(wfe.NotFoundError):
        store.functions.get(name)
    spec = FunctionSpec.model_validate({**store_spec(tmp_path, folder), "name": name})
    store.functions.put(spec)  # a name is encoded into one file name under functions/
    assert store.functions.get(name).name == name
    assert all(
        rel.startswith("functions/") and "/" not in rel[len("functions/") :] for rel in store.io.walk("functions")
    )
    assert not (tmp_path / "etc").exists() and not Path("/abs.json").exists()


def store_spec(tmp: Path, folder: Path) -> dict[str, Any]:
    """A real function record, as a run stores it, to copy under another name."""
    workflow = project(folder, {"path": "x", "extra": {}})
    code, _out, err = cli(["run", str(workflow), "--store", str(tmp / "spec" / "store")])
    assert code == 0, err
    store = wfe.open_store(str(tmp / "spec" / "store"))
    return store.functions.get("echo").model_dump(mode="json")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.blobs.get("sha256:../../etc/passwd"), wfe.InvalidDigestError),
        (lambda s: s.actions.lookup("sha256:" + "../" * 21 + "x"), wfe.InvalidDigestError),
        (lambda s: s.configs.get("sha256:.."), wfe.InvalidDigestError),
        (lambda s: s.runs.get("../../runs/x"), wfe.InvalidNameError),
        (lambda s: s.runs.delete("/etc/passwd"), wfe.InvalidNameError),
    ],
    ids=["blob", "action", "config", "run", "run-delete"],
)
def test_digests_and_run_ids_with_traversal_are_refused(tmp_path: Path, call: Any, error: type[Exception]) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    store.blobs.put(b"x")
    before = files_under(tmp_path)
    with pytest.raises(error):
        call(store)
    assert files_under(tmp_path) == before


# File nodes: only regular files inside the workflow's folder, or a path the user allows ------------


def take_in(folder: Path, path: str) -> Path:
    """A workflow in ``folder`` whose one node takes in the file at ``path``."""
    workflow = folder / f"take-{len(list(folder.glob('take-*')))}.json"
    workflow.write_text(json.dumps({"name": "take", "nodes": [{"id": "sales", "file": path, "mime": "text/plain"}]}))
    return workflow


def one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file beside the project folder ``tmp_path/project``, which a workflow there must not read."""
    (tmp_path / "project").mkdir()
    path = tmp_path / "secret.txt"
    path.write_text("the secret\n")
    return path


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link", "linked-folder", "etc-passwd", "etc-shadow"])
def test_a_file_node_cannot_read_outside_its_workflows_folder(tmp_path: Path, secret: Path, how: str) -> None:
    project = tmp_path / "project"
    (project / "link.txt").symlink_to(secret)
    (project / "up").symlink_to(tmp_path, target_is_directory=True)
    path = {"dotdot": "../secret.txt", "absolute": str(secret), "link": "link.txt", "linked-folder": "up/secret.txt",
            "etc-passwd": "../" * 30 + "etc/passwd", "etc-shadow": "/etc/shadow"}[how]
    store = tmp_path / "store"
    code, _out, err = cli(["run", str(take_in(project, path)), "--store", str(store)])
    line = one_error_line(code, err)
    assert line.startswith(f"error: node 'sales': file {path!r} is outside the workflow's folder {project}"), line
    assert line.endswith("; allow it with --allow-path"), line
    assert files_under(store) == set()  # the store untouched: no blob of the secret, no run


def test_a_path_the_user_allows_may_be_read(tmp_path: Path, secret: Path) -> None:
    project = tmp_path / "project"
    workflow = take_in(project, "../secret.txt")
    store = tmp_path / "store"
    other = tmp_path / "other"
    other.mkdir()
    code, _out, err = cli(["run", str(workflow), "--store", str(store), "--allow-path", str(other)])
    assert "outside the workflow's folder" in one_error_line(code, err)  # allowing another path does not do
    for allowed in (secret, tmp_path):  # the file itself, or a folder above it
        code, out, err = cli(["run", str(workflow), "--store", str(store), "--json", "--allow-path", str(other),
                              "--allow-path", str(allowed)])
        assert code == 0, err
        (artifact,) = json.loads(out)["nodes"]["sales"]["outputs"]
        assert wfe.open_store(str(store)).blobs.get(artifact["digest"]) == b"the secret\n"
    result = wfe.run(workflow, str(tmp_path / "api-store"), allow_paths=[secret])
    assert result.ok
    with pytest.raises(wfe.WorkflowError, match="outside the workflow's folder"):
        wfe.run(workflow, str(tmp_path / "api-store"))


def test_a_rerun_reads_an_allowed_file_only_if_its_blob_is_gone_and_it_is_allowed_again(
    tmp_path: Path, secret: Path
) -> None:
    from wfe.ops._rerun import rerun

    project = tmp_path / "project"
    store = wfe.open_store(str(tmp_path / "store"))
    first = wfe.run(take_in(project, "../secret.txt"), store, allow_paths=[secret])
    assert first.ok
    assert rerun(store, first.run_id, base_dir=project).result.ok  # its blob is there: the file is not read
    store.blobs.delete(first.outputs("sales")[0].digest)
    with pytest.raises(wfe.WorkflowError, match="outside the workflow's folder"):
        rerun(store, first.run_id, base_dir=project)
    again = rerun(store, first.run_id, base_dir=project, allow_paths=[secret])
    assert again.result.ok and again.result.outputs("sales") == first.outputs("sales")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_only_a_regular_file_is_taken_in_and_anything_else_is_refused_at_once(
    tmp_path: Path, wfe_cli: Any, kind: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    allow: list[str] = []
    if kind == "fifo":
        os.mkfifo(project / "pipe")  # no writer: opening it to read would wait for ever
        path, what = "pipe", "a FIFO"
    elif kind == "device":
        path, what, allow = "/dev/zero", "a device", ["--allow-path", "/dev/zero"]  # allowed, and still refused
    else:
        (project / "sub").mkdir()
        path, what = "sub", "a folder"
    store = tmp_path / "store"
    result = wfe_cli("run", str(take_in(project, path)), "--store", str(store), *allow, timeout=60)
    line = one_error_line(result.returncode, result.stderr)
    assert line == f"error: node 'sales': file {path!r} is {what}; only a regular file can be taken in", line
    assert files_under(store) == set()  # nothing in its tmp/ either


def test_a_fifo_put_in_place_after_planning_is_refused_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run opens the file it planned without blocking and checks it again: a FIFO swapped in is refused."""
    from wfe.engine import _plan

    project = tmp_path / "project"
    project.mkdir()
    os.mkfifo(project / "pipe")
    monkeypatch.setattr(_plan, "file_path", lambda node_id, name, folder, allow_paths=(): (folder / name).resolve())

    def unblock() -> None:  # were the run to wait for a writer, this one comes and closes: an empty file
        with open(project / "pipe", "wb"):
            pass

    watchdog = threading.Timer(20, unblock)
    watchdog.start()
    try:
        with pytest.raises(wfe.WorkflowError, match="pipe' is a FIFO; only a regular file can be taken in"):
            wfe.run(take_in(project, "pipe"), str(tmp_path / "store"))
    finally:
        watchdog.cancel()
    assert not [p for p in files_under(tmp_path / "store") if p.startswith("tmp/")]
