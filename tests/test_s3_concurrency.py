"""Eight processes running overlapping workflows against one S3 store at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_concurrency import variant
from test_crash_safety import check_consistent

import wfe

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from servers.s3 import s3_server


@pytest.mark.slow
def test_eight_processes_one_s3_store(tmp_path: Path) -> None:
    workflows = [variant(tmp_path, i) for i in range(8)]
    with s3_server() as server:
        url = server.url(f"many-{uuid.uuid4().hex[:8]}")
        env = {**os.environ, **server.env}
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "wfe", "run", str(w), "--store", url, "--json",
                 "--store-option", f"endpoint_url={server.endpoint_url}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
            for w in workflows
        ]  # fmt: skip
        results = []
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            results.append(json.loads(out))
        store = wfe.open_store(url, **server.options)
        check_consistent(store)  # every blob hashes to its name: none partial or corrupt
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
        assert list(store.io.walk("leases")) == []  # every lease released
        uploads = server.filesystem().call_s3("list_multipart_uploads", Bucket=server.bucket).get("Uploads", [])
        assert uploads == []  # no upload left half done
