"""Eight processes running overlapping workflows against one store at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from test_crash_safety import WORKFLOW, check_consistent

import wfe


def variant(folder: Path, index: int) -> Path:
    """The crash workflow with seeds shared between neighbours, so runs overlap in half their actions."""
    document = yaml.safe_load(WORKFLOW.read_text())
    for node in document["nodes"]:
        if node["id"] == "a":
            node["config"] = {"seed": index // 2, "mib": 4}
        if node["id"] == "b":
            node["config"] = {"seed": 100, "mib": 4}
    path = folder / f"workflow-{index}.yaml"
    path.write_text(yaml.safe_dump(document))
    (folder / "crash_functions.py").write_text((WORKFLOW.parent / "crash_functions.py").read_text())
    return path


def test_eight_processes_one_local_store(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    workflows = [variant(tmp_path, i) for i in range(8)]
    processes = [
        subprocess.Popen([sys.executable, "-m", "wfe", "run", str(w), "--store", str(store_path), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in workflows
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    store = wfe.open_store(str(store_path))
    check_consistent(store)
    outputs_by_key: dict[str, list[str]] = {}
    for result in results:
        manifest = store.runs.get(result["run_id"])
        assert manifest.status == "succeeded" and manifest.finished is not None
        assert {r.status for r in manifest.nodes.values()} <= {"ran", "cached"}
        for record in manifest.nodes.values():
            digests = [a.digest for a in record.outputs]
            assert outputs_by_key.setdefault(record.action_key or "", digests) == digests  # never disagree
    for key in store.actions:
        assert [a.digest for a in store.actions.get(key).outputs] == outputs_by_key[key]
