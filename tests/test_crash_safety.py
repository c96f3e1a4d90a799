"""SIGKILL ``wfe run`` at many points; the store stays consistent and the next run finishes the job."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wfe

WORKFLOW = Path(__file__).resolve().parent / "workflows" / "crash" / "workflow.yaml"

# Runs the CLI in a child process that kills itself with SIGKILL at the n-th pass through one point.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import wfe.storage._local as fsio
    import wfe.store._records as records

    point, target = sys.argv[1], int(sys.argv[2])
    seen = [0]

    def hit():
        seen[0] += 1
        return seen[0] == target

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "blob-write":          # half of a blob's bytes are on disk when the process dies
        original_write = fsio._LocalStaging.write
        def write(self, data):
            if len(data) > 1024 * 1024 and hit():
                original_write(self, memoryview(data)[: len(data) // 2])
                die()
            return original_write(self, data)
        fsio._LocalStaging.write = write
    elif point == "before-action":     # the output blobs are published, the action entry is not
        original_put = records.ActionCache.put_encoded
        def put(self, *args, **kwargs):
            if hit():
                die()
            return original_put(self, *args, **kwargs)
        records.ActionCache.put_encoded = put
    elif point == "manifest-write":    # the manifest's new version is staged, not yet published
        original_publish = fsio.LocalIO.publish_temp
        def publish(self, temp, final, *, exclusive):
            if final.startswith(self.root + "/runs/") and hit():
                die()
            return original_publish(self, temp, final, exclusive=exclusive)
        fsio.LocalIO.publish_temp = publish

    from wfe.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def run_cli(store: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", KILLER, *prefix, "run", str(WORKFLOW), "--store", str(store), "--json"]
        if prefix else [sys.executable, "-m", "wfe", "run", str(WORKFLOW), "--store", str(store), "--json"],
        capture_output=True, text=True, timeout=300,
    )


def check_consistent(store: wfe.Store) -> None:
    """What ``wfe verify`` checks: every blob hashes to its name, every record points at real blobs."""
    for digest in store.blobs:
        with store.blobs.open(digest) as handle:
            hasher = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == digest
    for key in store.actions:
        for artifact in store.actions.get(key).outputs:
            assert store.blobs.exists(artifact.digest), f"action {key} points at missing {artifact.digest}"
    for run_id in store.runs:
        manifest = store.runs.get(run_id)  # parses: never a half-written record
        for record in manifest.nodes.values():
            if record.status in ("ran", "cached"):
                assert all(store.blobs.exists(a.digest) for a in record.outputs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    out = run_cli(tmp_path_factory.mktemp("reference") / "store")
    assert out.returncode == 0, out.stderr
    return {n: [o["digest"] for o in info["outputs"]] for n, info in json.loads(out.stdout)["nodes"].items()}


CASES = [("blob-write", n) for n in (1, 2, 3)] + [("before-action", n) for n in (1, 2, 3, 4, 5)] + [
    ("manifest-write", n) for n in (1, 2)
]


@pytest.mark.parametrize(("point", "nth"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_kill_then_rerun(tmp_path: Path, reference: dict[str, list[str]], point: str, nth: int) -> None:
    store_path = tmp_path / "store"
    killed = run_cli(store_path, point, str(nth))
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    store = wfe.open_store(str(store_path))
    check_consistent(store)
    finished_before = set(store.actions)
    rerun = run_cli(store_path)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert {n: [o["digest"] for o in info["outputs"]] for n, info in result["nodes"].items()} == reference
    manifest = store.runs.get(result["run_id"])
    for node_id, record in manifest.nodes.items():
        # recompute only what had not finished: a node whose action was recorded is served from the cache
        assert (record.status == "cached") == (record.action_key in finished_before), node_id
    check_consistent(store)
