"""supabase:// against the real Supabase Storage server: what a crash and a sync leave behind.

- ``wfe run`` killed with SIGKILL part-way through an upload of an output blob,
  before an action entry is written, with writes queued behind the run, or
  part-way through an upload of its run record leaves a store that verifies
  clean, where every action entry's blobs exist and every run record parses;
  the next run finishes the job with the digests of an uninterrupted run and
  recomputes only the nodes whose action had not been recorded.
- ``wfe sync`` copies a store from local disk to Supabase and back record for
  record; a second sync copies nothing; a blob damaged in the source is named
  in the report and neither it nor a record that names it is copied.

The workflow is the crash-safety one (tests/workflows/crash) with smaller
blobs, big enough that outputs are uploaded as the node ends, while the small
ones and the action entries are written behind the run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli, run_in_process
from _faulty_proxy import FaultyProxy, _Handler
from servers.supabase_storage import Server

import wfe
from wfe.ops._verify import verify_store
from wfe.store._paths import blob_path

CRASH = Path(__file__).resolve().parent / "workflows" / "crash"
SALES = Path(__file__).resolve().parent.parent / "examples" / "sales" / "workflow.yaml"

# Runs the CLI in a child process that kills itself with SIGKILL at the n-th pass through one point.
KILLER = textwrap.dedent(
    """
    import os, signal, sys, threading
    import h11
    import httpcore._sync.http11 as http11
    import wfe.store._records as records
    from wfe.engine import _writer

    point, target = sys.argv[1], int(sys.argv[2])
    seen = [0]
    lock = threading.Lock()

    def hit():
        with lock:
            seen[0] += 1
            return seen[0] == target

    def die(what):
        os.write(2, f"killed at {point} {target}: {what}\\n".encode())  # fd 2: a node's own output is captured
        os.kill(os.getpid(), signal.SIGKILL)

    if point in ("blob-upload", "run-record", "last-run-record"):
        # half of the request body is on the wire when the process dies: the server sees the connection drop
        original_send = http11.HTTP11Connection._send_request_body
        def send(self, request):
            path = request.url.target.decode()
            length = int(dict((k.lower(), v) for k, v in request.headers).get(b"content-length", b"0"))
            if point == "blob-upload":
                # an output blob: staged before its move, or (small enough) uploaded in place create-only
                chosen = ("/tmp/" in path or "/blobs/" in path) and length > 256 * 1024
            else:
                chosen = "/runs/" in path
                if chosen and point == "last-run-record":  # the one that says how the run ended
                    request.stream = list(request.stream)
                    chosen = b'"status":"succeeded"' in b"".join(request.stream)
            if chosen and hit():
                sent = 0
                for chunk in request.stream:
                    part = chunk[: length // 2 - sent]
                    self._send_event(h11.Data(data=part))
                    sent += len(part)
                    if sent >= length // 2:
                        die(f"{sent} of {length} bytes sent to {path}")
            return original_send(self, request)
        http11.HTTP11Connection._send_request_body = send
    elif point == "before-action":
        # the blobs an action entry names are written, the entry is not
        original_put = records.ActionCache.put_encoded
        def put(self, *args, **kwargs):
            if hit():
                die("an action entry not yet written")
            return original_put(self, *args, **kwargs)
        records.ActionCache.put_encoded = put
    elif point == "writes-queued":
        # the jobs before this one have landed; this one (small blobs, then the entry) waits in the queue
        original_submit = _writer.WriteBehind.submit
        def submit(self, job, held=None):
            if not hit():
                return original_submit(self, job, held)
            self.drain()
            original_submit(self, threading.Event().wait, held)
            die(f"{len(self)} jobs queued")
        _writer.WriteBehind.submit = submit

    from wfe.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)

Digests = dict[str, list[str]]
LocalStore = tuple[Path, dict[Path, Digests]]  # a store's folder, and the outputs of each workflow run in it


def open_remote(server: Server, url: str) -> wfe.Store:
    return wfe.open_store(url, storage_url=server.storage_url, key=server.service_key)


def digests(result: dict[str, Any]) -> Digests:
    return {node: [o["digest"] for o in info["outputs"]] for node, info in result["nodes"].items()}


def crash_workflow(folder: Path, mib: int) -> Path:
    """The crash-safety workflow with blobs of ``mib`` MiB instead of 24, beside its own copy of its functions."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CRASH / "crash_functions.py", folder)
    text = (CRASH / "workflow.yaml").read_text()
    assert text.count("mib: 24") == 2
    (folder / "workflow.yaml").write_text(text.replace("mib: 24", f"mib: {mib}"))
    return folder / "workflow.yaml"


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crash_workflow(tmp_path_factory.mktemp("crash"), 1)


@pytest.fixture(scope="module")
def reference(workflow: Path, tmp_path_factory: pytest.TempPathFactory) -> Digests:
    folder = tmp_path_factory.mktemp("reference")
    out = run_in_process(["run", str(workflow), "--store", str(folder / "store"), "--json"], folder, dict(os.environ))
    assert out.returncode == 0, out.stderr
    return digests(json.loads(out.stdout))


def check_consistent(store: wfe.Store) -> None:
    """What ``wfe verify`` checks, and the two promises it rests on, asked directly."""
    report = verify_store(store)
    assert report.clean, report.lines()
    for key in store.actions:
        for artifact in store.actions.get(key).outputs:
            assert not artifact.stored or store.blobs.exists(artifact.digest), f"{key} names missing {artifact.digest}"
    for run_id in store.runs:
        manifest = store.runs.get(run_id)  # parses: never a half-written record
        for node_id, record in manifest.nodes.items():
            if record.status in ("ran", "cached"):
                assert all(store.blobs.exists(a.digest) for a in record.outputs if a.stored), (run_id, node_id)


# (point, pass, how many action entries the killed run can have recorded, how many run records it leaves)
KILLS = [
    ("blob-upload", 2, range(2), 1),  # b's output half uploaded; a's entry may have landed behind
    ("writes-queued", 3, range(2, 3), 1),  # a's and b's jobs have landed, print_a's (its output too) waits
]
SLOW_KILLS = [
    ("before-action", 3, range(3), 1),  # print_a's entry not written; a's and b's may be
    ("run-record", 1, range(1), 0),  # the run's first record half uploaded, before any node
    ("last-run-record", 1, range(5, 6), 1),  # its last: every entry is there, the record stays a checkpoint's
]


@pytest.mark.parametrize(
    ("point", "nth", "entries", "records"),
    [*KILLS, *(pytest.param(*case, marks=pytest.mark.slow) for case in SLOW_KILLS)],
    ids=[f"{case[0]}-{case[1]}" for case in [*KILLS, *SLOW_KILLS]],
)
def test_a_run_killed_mid_way_leaves_the_store_consistent_and_the_next_run_finishes_the_job(
    server: Server,
    bucket: str,
    wfe_cli: Cli,
    workflow: Path,
    reference: Digests,
    point: str,
    nth: int,
    entries: range,
    records: int,
) -> None:
    url = f"supabase://{bucket}/store"
    args = ["run", str(workflow), "--store", url, "--store-option", f"storage_url={server.storage_url}", "--json"]
    env = {**os.environ, "SUPABASE_KEY": server.service_key}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(nth), *args], capture_output=True, text=True, timeout=120, env=env
    )
    assert killed.returncode == -9 and f"killed at {point} {nth}:" in killed.stderr, (killed.returncode, killed.stderr)
    store = open_remote(server, url)
    check_consistent(store)
    recorded = set(store.actions)
    assert len(recorded) in entries and len(list(store.runs)) == records

    rerun = wfe_cli(*args, env={"SUPABASE_KEY": server.service_key})
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert digests(result) == reference
    manifest = store.runs.get(result["run_id"])
    for node_id, record in manifest.nodes.items():
        # recomputed only where the action had not been recorded: a recorded one is served from the cache
        assert (record.status == "cached") == (record.action_key in recorded), (node_id, record.status)
    check_consistent(store)


def contents(store: wfe.Store) -> dict[str, Any]:
    """Every record of ``store``, read, and the names of its blobs."""
    return {
        "runs": {run_id: store.runs.get(run_id) for run_id in store.runs},
        "actions": {key: store.actions.get(key) for key in store.actions},
        "configs": sorted(store.configs),
        "functions": {name: store.functions.get(name) for name in store.functions},
        "blobs": sorted(store.blobs),
    }


def sync_cli(wfe_cli: Cli, server: Server, source: str, destination: str) -> tuple[int, dict[str, Any]]:
    """``wfe sync SOURCE DESTINATION --json``, one of them on the server; the exit code and the report."""
    remote = "--source-option" if source.startswith("supabase://") else "--destination-option"
    out = wfe_cli("sync", source, destination, remote, f"storage_url={server.storage_url}", "--json",
                  env={"SUPABASE_KEY": server.service_key})  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.fixture
def local_store(wfe_cli: Cli, tmp_path: Path) -> LocalStore:
    """A store on local disk with a run of the sales example and one of the crash workflow (5 MiB blobs)."""
    root = tmp_path / "local"
    runs = {}
    for workflow in (SALES, crash_workflow(tmp_path / "crash", 5)):
        out = wfe_cli("run", str(workflow), "--store", str(root), "--json")
        assert out.returncode == 0, out.stderr
        runs[workflow] = digests(json.loads(out.stdout))
    return root, runs


def test_wfe_sync_copies_a_local_store_to_supabase_and_back_record_for_record(
    server: Server, bucket: str, wfe_cli: Cli, tmp_path: Path, local_store: LocalStore
) -> None:
    root, runs = local_store
    url, copy = f"supabase://{bucket}/synced", tmp_path / "copy"
    original = contents(wfe.open_store(str(root)))
    counts = {kind: len(original[kind]) for kind in ("blobs", "configs", "functions", "actions", "runs")}

    for source, destination in ((str(root), url), (url, str(copy))):
        code, report = sync_cli(wfe_cli, server, source, destination)
        assert code == 0 and report["failures"] == [] and report["copied"] == counts, report
    remote, local_copy = open_remote(server, url), wfe.open_store(str(copy))
    assert contents(remote) == original and contents(local_copy) == original
    for store in (wfe.open_store(str(root)), remote, local_copy):
        check_consistent(store)

    for source, destination in ((str(root), url), (url, str(copy))):  # again: everything is there already
        code, report = sync_cli(wfe_cli, server, source, destination)
        assert code == 0 and set(report["copied"].values()) == {0} and report["already_present"] == counts, report

    for store_args in (["--store", url, "--store-option", f"storage_url={server.storage_url}"], ["--store", str(copy)]):
        for workflow, expected in runs.items():
            out = wfe_cli("run", str(workflow), *store_args, "--json", env={"SUPABASE_KEY": server.service_key})
            assert out.returncode == 0, out.stderr
            result = json.loads(out.stdout)
            assert {info["status"] for info in result["nodes"].values()} == {"cached"}, (store_args, workflow)
            assert digests(result) == expected


def test_blobs_damaged_in_the_source_are_reported_and_neither_they_nor_the_records_naming_them_are_copied(
    server: Server, bucket: str, wfe_cli: Cli, tmp_path: Path, local_store: LocalStore
) -> None:
    root, runs = local_store
    url, copy = f"supabase://{bucket}/damaged", tmp_path / "copy"
    assert sync_cli(wfe_cli, server, str(root), url)[0] == 0
    crash = next(outputs for workflow, outputs in runs.items() if workflow != SALES)
    bad = {crash["print_a"][0], crash["mixed"][0]}  # one read in one piece, one streamed (5 MiB)
    for digest in bad:
        key = f"damaged/{blob_path(digest)}"
        data = bytearray(server.download(bucket, key))
        data[len(data) // 2] ^= 0x01
        server.upload(bucket, key, bytes(data))  # the same size, one bit flipped, behind the store's back
    remote = contents(open_remote(server, url))
    naming = {key for key, entry in remote["actions"].items() if {a.digest for a in entry.outputs} & bad}
    crash_run = next(run_id for run_id, manifest in remote["runs"].items() if manifest.workflow == "crash")
    assert len(naming) == 2

    code, report = sync_cli(wfe_cli, server, url, str(copy))

    assert code == 1
    expected = [f"blob {digest}: integrity check failed for {digest}" for digest in sorted(bad)]
    expected += [f"action {key}: an output blob did not arrive" for key in sorted(naming)]
    expected += [f"run {crash_run}: not copied, 2 blobs it names did not arrive"]
    failures = report["failures"]
    assert len(failures) == len(expected) and all(any(f.startswith(e) for f in failures) for e in expected), failures
    local_copy = contents(wfe.open_store(str(copy)))
    assert local_copy["blobs"] == sorted(set(remote["blobs"]) - bad)
    assert local_copy["actions"] == {key: entry for key, entry in remote["actions"].items() if key not in naming}
    assert local_copy["runs"] == {run_id: run for run_id, run in remote["runs"].items() if run_id != crash_run}
    check_consistent(wfe.open_store(str(copy)))


class _LosingHandler(_Handler):
    """Loses the connection under some requests: before the server sees one, or after it answered."""

    wbufsize = 1 << 20  # an answer waits here until the request is done, so it can be dropped whole

    def _lose(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        turn = self.owner.next_loss(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        if turn == "before":
            self.rfile.read(length)
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._forward()
            if turn == "after":  # the server did it; the client never hears
                self.connection.shutdown(socket.SHUT_RDWR)
        if turn:
            self.wfile = io.BytesIO()  # the answer in the buffer goes nowhere
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _lose


class _LosingProxy(FaultyProxy):
    handler = _LosingHandler

    def __init__(self, upstream: str, every: int, budget: int) -> None:
        super().__init__(upstream)
        self.loss_every, self.loss_budget = every, budget
        self.lost: dict[str, int] = {"before": 0, "after": 0}
        self.once: set[str] = set()
        self.counted = 0

    def next_loss(self, request: str) -> str:
        """``before``, ``after`` or no loss for this request (a request sent again is never lost again)."""
        with self._lock:
            self.counted += 1
            if self.counted % self.loss_every or request in self.once:
                return ""
            self.once.add(request)
            turn = ("before", "after")[(self.counted // self.loss_every) % 2]
            if self.lost[turn] >= self.loss_budget:
                return ""
            self.lost[turn] += 1
            return turn


def test_a_connection_lost_before_the_answer_is_sent_again_and_the_run_is_the_same(
    server: Server, bucket: str, wfe_cli: Cli, workflow: Path, reference: Digests
) -> None:
    """Every 5th request loses its connection, before the server sees it or after it answered (uploads, moves)."""
    url = f"supabase://{bucket}/lossy"
    with _LosingProxy(server.storage_url, every=5, budget=6) as proxy:
        args = ["run", str(workflow), "--store", url, "--store-option", f"storage_url={proxy.url}", "--json"]
        out = wfe_cli(*args, env={"SUPABASE_KEY": server.service_key})
        lost = dict(proxy.lost)
    assert out.returncode == 0, out.stderr
    assert lost["before"] >= 2 and lost["after"] >= 2, lost
    assert digests(json.loads(out.stdout)) == reference
    store = open_remote(server, url)
    check_consistent(store)
    assert not [rel for rel in store.io.walk("tmp")], "a staged upload was left behind"
    rerun = wfe_cli(*args[:5], f"storage_url={server.storage_url}", "--json", env={"SUPABASE_KEY": server.service_key})
    assert rerun.returncode == 0, rerun.stderr
    assert {info["status"] for info in json.loads(rerun.stdout)["nodes"].values()} == {"cached"}
