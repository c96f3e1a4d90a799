"""A store that fails while a run is under way: the run fails (exit 1), says why in one line, is recorded
``failed``, and leaves nothing a rerun could mistake for a result.

The store is a third-party fsspec filesystem (the generic path) that refuses
one write chosen by hypothesis (a transient fault: the next one succeeds),
or every write from one on (the store is gone). A bad URL or a missing
bucket, found before anything runs, stays a usage error (exit 2): see
tests/test_s3.py and tests/test_supabase.py.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import fsspec
from _cli import REPO, run_in_process
from faulty_fs import Faultless
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe

EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


class FailingWrites(Faultless):
    """Local disk under ``base``, whose n-th write (and, ``gone``, every later one) fails as a network would."""

    protocol = "failing-writes"
    lock = threading.Lock()
    writes = 0
    fail_at: int | None = None
    gone = False
    refused: list[str] = []  # the paths of the writes that failed

    def _write(self, path: str) -> None:
        if "/probe-" in path or "capabilities/" in path:
            return  # the capability probe at opening: it copes with failures by claiming less
        with FailingWrites.lock:
            FailingWrites.writes += 1
            at, count = FailingWrites.fail_at, FailingWrites.writes
        if at is not None and (count == at or (FailingWrites.gone and count > at)):
            FailingWrites.refused.append(path)
            raise ConnectionResetError(104, f"Connection reset by peer (writing {path})")

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        self._write(path)
        super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        self._write(rpath)
        super().put_file(lpath, rpath, *args, **kwargs)

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        self._write(path2)
        super().mv(path1, path2, *args, **kwargs)


fsspec.register_implementation(FailingWrites.protocol, FailingWrites, clobber=True)


def _run(url: str, cwd: Path, *, fail_at: int | None, gone: bool = False) -> Any:
    FailingWrites.writes, FailingWrites.fail_at, FailingWrites.gone = 0, fail_at, gone
    FailingWrites.refused = []
    try:
        return run_in_process(["run", str(EXAMPLE), "--store", url, "--json"], cwd, {"PATH": "/usr/bin:/bin"})
    finally:
        FailingWrites.fail_at = None


def _digests(stdout: str) -> dict[str, Any]:
    nodes = json.loads(stdout)["nodes"]
    return {node_id: record["outputs"] for node_id, record in nodes.items()}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fail_at=st.integers(min_value=1, max_value=60), gone=st.booleans())
def test_a_store_failing_mid_run_fails_the_run_in_one_line_and_a_rerun_completes_it(
    fail_at: int, gone: bool, tmp_path: Path
) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    url = f"{FailingWrites.protocol}://store?base={work}"
    reference = _run(f"{FailingWrites.protocol}://store?base={tempfile.mkdtemp(dir=tmp_path)}", work, fail_at=None)
    assert reference.returncode == 0, reference.stderr

    broken = _run(url, work, fail_at=fail_at, gone=gone)
    if not FailingWrites.refused:  # the fault came after the last write: nothing failed
        assert broken.returncode == 0, broken.stderr
    elif broken.returncode == 0:  # only the next run's hint failed (straight or through tmp/): a warning naming it
        assert "cannot write this workflow's plan" in broken.stderr, broken.stderr
        assert all(path.rsplit("/", 1)[-1] in broken.stderr for path in FailingWrites.refused), broken.stderr
    else:
        assert broken.returncode == 1, (broken.returncode, broken.stderr)
        assert "Traceback" not in broken.stderr
        lines = broken.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the run failed: "), broken.stderr
        assert "Connection reset by peer" in lines[0]
        store = wfe.open_store(url)
        statuses = [store.runs.get(run_id).status for run_id in store.runs]
        if not gone:  # the store took the records after the fault: none is left claiming it runs
            assert statuses and all(status == "failed" for status in statuses), statuses

    rerun = _run(url, work, fail_at=None)
    assert rerun.returncode == 0, rerun.stderr
    assert _digests(rerun.stdout) == _digests(reference.stdout)
    verify = run_in_process(["verify", "--store", url], work, {"PATH": "/usr/bin:/bin"})
    assert verify.returncode == 0, verify.stdout + verify.stderr
