"""A config is data: it cannot make wfe read or write outside the store; escaping names are refused or escaped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_hostile_input import cli, files_under

import wfe
from wfe._models import FunctionSpec

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
