"""A hostile store: entries planted behind wfe's back get one clear line, never a hang, a traceback or a
write, read or delete outside the store.

A local store is filled by running the example twice (the second time on changed data, so gc has
something to collect), copied for each case, and one hostile entry (or, under hypothesis, a few) is
planted: a folder that is a symbolic link out of the store, a blob that is a link to an outside file
named after that file's digest, a run record that is a link to /dev/zero, a FIFO, a sparse 1 GiB
record, deeply nested JSON, a record whose name and contents disagree. Then every command that reads
a store runs against it. What can hang or eat memory runs as a real ``python -m wfe`` with a timeout
and an address-space limit; the rest runs in-process through the CLI entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe._errors import StoreError
from wfe.cli import main
from wfe.engine._lease import lease_path, read_lease
from wfe.storage._base import StorageIO
from wfe.storage._local import LocalIO
from wfe.store._records import MAX_RECORD_BYTES

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "sales"
EXAMPLE_MODULE = "sales_functions"
FOLDERS = ("runs", "leases", "tmp", "blobs", "actions", "configs", "functions")
COMMANDS = ("runs", "show", "verify", "gc", "cat", "run", "sync", "explain", "report", "graph")
TIMEOUT = 20.0  # seconds a command may take here before it counts as hung (each takes well under 1)
ADDRESS_SPACE = 1536 * 1024 * 1024  # a command's whole address space: reading 1 GiB would not fit
NEWEST_RUN = "29991231T235959999Z-ffffff"  # sorts after every real run: `latest` meets it first
SECRET = b"root:x:0:0:outside the store, never to be read, copied or deleted\n"
DEEP = b"[" * 100_000 + b"]" * 100_000
OLD = time.time() - 7200  # older than any grace period


@dataclass(frozen=True)
class Template:
    """A filled store and what the cases need to know about it."""

    store: Path
    workflow: Path
    latest: str  # the newest run
    older: str  # the run gc --keep-last 1 drops
    action_key: str  # a node of the latest run: by_region
    by_region: str  # its output digest, read by attainment
    report: str  # a blob of the latest run


@dataclass
class Outcome:
    code: int | None  # None: did not finish in time
    out: str
    err: str
    seconds: float


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("hostile")
    project = base / "project"
    shutil.copytree(EXAMPLE_DIR, project)
    store = base / "template"
    workflow = project / "workflow.yaml"
    assert cli(["run", str(workflow), "--store", str(store)]).code == 0
    with (project / "sales.csv").open("a") as csv:
        csv.write("2026-01-04,north,gadget,3,19.5\n")
    assert cli(["run", str(workflow), "--store", str(store)]).code == 0
    opened = wfe.open_store(str(store))
    older, latest = list(opened.runs)
    manifest = opened.runs.get(latest)
    node = manifest.nodes["by_region"]
    assert node.action_key is not None
    return Template(store, workflow, latest, older, node.action_key, node.outputs[0].digest,
                    manifest.nodes["report"].outputs[0].digest)


# -- running commands


def cli(args: list[str]) -> Outcome:
    """``wfe ARGS`` in this process; anything escaping the entry point counts as a traceback.

    The example's module is imported from this file's copy of it for the call only: other tests
    in this process run the example from elsewhere, and wfe refuses a module imported from
    another folder.
    """
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    saved_module, saved_path = sys.modules.pop(EXAMPLE_MODULE, None), list(sys.path)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
        except BaseException:  # a crash is what these tests look for
            err.write(traceback.format_exc())
            code = 99
        finally:
            sys.modules.pop(EXAMPLE_MODULE, None)
            if saved_module is not None:
                sys.modules[EXAMPLE_MODULE] = saved_module
            sys.path[:] = saved_path
    return Outcome(code, out.getvalue(), err.getvalue(), time.monotonic() - started)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def cli_process(args: list[str], cwd: Path) -> Outcome:
    """``python -m wfe ARGS`` with a timeout and a bounded address space."""
    env = {k: v for k, v in os.environ.items() if k not in ("WFE_STORE", "WFE_CACHE")}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wfe", *args], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=TIMEOUT, preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""), time.monotonic() - started)
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def command(name: str, t: Template, store: Path, work: Path, digest: str | None = None) -> list[str]:
    s = ["--store", str(store)]
    return {
        "runs": ["runs", *s],
        "show": ["show", "latest", *s],
        "verify": ["verify", "-q", *s],
        "gc": ["gc", "--keep-last", "1", "--grace", "0s", "-q", *s],
        "cat": ["cat", digest or t.report, "-o", str(work / "cat.out"), *s],
        "run": ["run", str(t.workflow), *s],
        "sync": ["sync", "-q", str(store), str(work / "destination")],
        "explain": ["explain", "latest", "by_month", *s],
        "report": ["report", "latest", "-o", str(work / "report.html"), *s],
        "graph": ["graph", "--run", "latest", *s],
    }[name]


def assert_clean(outcome: Outcome, what: str) -> None:
    """Finished, an exit code of 0, 1 or 2, no traceback, and any error one line starting ``error:``."""
    assert outcome.code is not None, f"{what}: hung (killed after {TIMEOUT:.0f} s)"
    assert outcome.code in (0, 1, 2), f"{what}: exit {outcome.code}\n{outcome.err[-3000:]}"
    assert "Traceback" not in outcome.err, f"{what}: traceback\n{outcome.err[-3000:]}"
    errors = [line for line in outcome.err.splitlines() if "error" in line.lower() and "warning" not in line.lower()]
    assert all(line.startswith("error: ") for line in errors), f"{what}: {errors}"
    assert len([line for line in errors if line.startswith("error: ")]) <= 1, f"{what}: {errors}"
    if outcome.code == 2:
        assert outcome.err.splitlines()[-1:] and outcome.err.splitlines()[-1].startswith("error: "), what


# -- planting


def fresh_copy(t: Template, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    shutil.copytree(t.store, store, symlinks=True)
    return store


def outside_folder(work: Path) -> Path:
    """A folder outside the store holding an old sentinel file."""
    outside = work / "outside"
    outside.mkdir(exist_ok=True)
    sentinel = outside / "sentinel.txt"
    sentinel.write_bytes(SECRET)
    os.utime(sentinel, (OLD, OLD))
    return outside


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder`` (not following links): its bytes and modification time."""
    found = {}
    for directory, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                found[str(path.relative_to(folder))] = (b"<not a file>", 0)
                continue
            found[str(path.relative_to(folder))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def digest_path(store: Path, digest: str) -> Path:
    hexdigest = digest.split(":", 1)[1]
    return store / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]


def action_path(store: Path, key: str) -> Path:
    hexdigest = key.split(":", 1)[1]
    return store / "actions" / hexdigest[:2] / f"{hexdigest[2:]}.json"


def link_folder(t: Template, store: Path, work: Path, folder: str) -> Path:
    """Move ``folder`` out of the store, next to a sentinel, and leave a symbolic link to it in its place."""
    outside = outside_folder(work)
    target = outside / folder
    if (store / folder).exists():
        shutil.move(str(store / folder), str(target))
    else:
        target.mkdir()
    (target / "sentinel.txt").write_bytes(SECRET)  # where gc or a run would find it, too
    os.utime(target / "sentinel.txt", (OLD, OLD))
    for path in target.rglob("*"):  # everything out there looks abandoned to gc
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    (store / folder).symlink_to(target, target_is_directory=True)
    return outside


def plant_secret_blob(t: Template, store: Path, work: Path) -> tuple[Path, str]:
    outside = outside_folder(work)
    digest = "sha256:" + hashlib.sha256(SECRET).hexdigest()
    path = digest_path(store, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "sentinel.txt")
    return outside, digest


def plant_deep_lease(t: Template, store: Path) -> None:
    """A lease on an action the next run must compute (its entry is gone), nested past any parser."""
    action_path(store, t.action_key).unlink()
    lease = store / lease_path(t.action_key)
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_bytes(DEEP)
    os.utime(lease, (OLD, OLD))


def plant(kind: str, t: Template, store: Path, work: Path) -> Path | None:
    """Plant one hostile entry of ``kind``; the outside folder to watch, if any."""
    newest = store / "runs" / f"{NEWEST_RUN}.json"
    if kind.startswith("link:"):
        return link_folder(t, store, work, kind.partition(":")[2])
    if kind == "secret blob":
        return plant_secret_blob(t, store, work)[0]
    if kind == "deep lease":
        plant_deep_lease(t, store)
    elif kind == "deep record":
        newest.write_bytes(b'{"run_id": ' + DEEP + b"}")
    elif kind == "deep action":
        action_path(store, t.action_key).write_bytes(b'{"outputs": ' + DEEP + b"}")
    elif kind == "misnamed record":  # the older run's record under the newest run's name
        shutil.copyfile(store / "runs" / f"{t.older}.json", newest)
    elif kind == "zero record":
        newest.symlink_to("/dev/zero")
    elif kind == "fifo record":
        os.mkfifo(newest)
    elif kind == "fifo blob":  # read by attainment, which must now run again
        digest_path(store, t.by_region).unlink()
        os.mkfifo(digest_path(store, t.by_region))
        action_path(store, t.action_key).unlink()
        for entry in (store / "actions").rglob("*.json"):
            if t.by_region in entry.read_text():
                entry.unlink()
    elif kind == "huge record":
        newest.write_bytes(b'{"run_id": "')
        os.truncate(newest, 1 << 30)  # sparse: costs nothing on disk
    else:
        raise AssertionError(kind)
    return None


# -- the tests


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_linked_out_of_the_store_is_refused_by_every_command(
    template: Template, tmp_path: Path, folder: str
) -> None:
    for name in COMMANDS:
        work = tmp_path / name
        store = fresh_copy(template, work)
        outside = link_folder(template, store, work, folder)
        before = snapshot(outside)
        outcome = cli(command(name, template, store, work))
        assert_clean(outcome, f"{name} with {folder}/ linked out")
        assert snapshot(outside) == before, f"{name} changed files outside the store through {folder}/"
        if name == "verify" and folder not in ("leases", "tmp"):
            assert outcome.code != 0, f"verify called a store with {folder}/ linked out clean"
        if outcome.code == 2 and "store damaged" in outcome.err:
            assert "symbolic link" in outcome.err and folder in outcome.err


def test_a_blob_linked_to_an_outside_file_is_damage_never_data(template: Template, tmp_path: Path) -> None:
    store = fresh_copy(template, tmp_path)
    outside, digest = plant_secret_blob(template, store, tmp_path)
    before = snapshot(outside)

    shown = cli_process(["cat", digest, "--store", str(store)], tmp_path)
    assert_clean(shown, "cat")
    assert shown.code != 0 and SECRET.decode() not in shown.out
    assert "symbolic link" in shown.err and digest.split(":")[1][2:] in shown.err

    checked = cli(["verify", "--store", str(store)])
    assert_clean(checked, "verify")
    assert checked.code == 1 and digest in checked.out

    copied = cli(["sync", "-q", str(store), str(tmp_path / "destination")])
    assert_clean(copied, "sync")
    assert not digest_path(tmp_path / "destination", digest).exists()

    for name in ("gc", "run", "runs", "show"):
        assert_clean(cli(command(name, template, store, tmp_path, digest)), name)
    assert snapshot(outside) == before


# The commands that meet each entry (every one that resolves `latest` reads the newest run record:
# show stands for explain, report and graph too); a process each costs half a second.
RECORD_READERS = ("runs", "show", "verify", "gc", "sync", "report")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "names"),
    [pytest.param(kind, RECORD_READERS, id=kind) for kind in ("zero record", "fifo record", "huge record")]
    + [pytest.param("fifo blob", ("cat", "verify", "gc", "sync", "run"), id="fifo blob")],
)
def test_entries_that_are_no_regular_files_never_hang_or_fill_memory(
    template: Template, tmp_path: Path, kind: str, names: tuple[str, ...]
) -> None:
    def one(name: str) -> tuple[str, Outcome]:
        work = tmp_path / name
        store = fresh_copy(template, work)
        plant(kind, template, store, work)
        return name, cli_process(command(name, template, store, work, template.by_region), work)

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(pool.map(one, names))
    for name, outcome in outcomes.items():
        assert_clean(outcome, f"{name} with a {kind}")
        assert outcome.seconds < TIMEOUT / 2, f"{name} with a {kind} took {outcome.seconds:.1f} s"
    assert outcomes["verify"].code == 1  # and says what is damaged
    if kind == "fifo blob":
        assert outcomes["cat"].code == 2 and "not a regular file" in outcomes["cat"].err


@pytest.mark.parametrize("kind", ["deep lease", "deep record", "deep action"])
def test_deeply_nested_json_is_a_damaged_entry_not_a_crash(template: Template, tmp_path: Path, kind: str) -> None:
    for name in COMMANDS:
        work = tmp_path / name
        store = fresh_copy(template, work)
        plant(kind, template, store, work)
        outcome = cli(command(name, template, store, work))
        assert_clean(outcome, f"{name} with a {kind}")
        if name == "run":
            assert outcome.code == 0, outcome.err
            runs = wfe.open_store(str(store)).runs
            assert all(runs.get(r).status != "running" for r in runs if r != NEWEST_RUN)
    if kind == "deep lease":
        lease = read_lease(LocalIO(None, str(store)), lease_path(template.action_key))
        assert lease.owner == "unreadable" and not lease.live(time.time())


def test_sync_never_overwrites_a_record_with_one_filed_under_another_name(
    template: Template, tmp_path: Path
) -> None:
    source = fresh_copy(template, tmp_path / "source")
    destination = fresh_copy(template, tmp_path / "destination")
    kept = (destination / "runs" / f"{template.latest}.json").read_bytes()
    # The older run's record, edited, filed under a third name but naming the latest run inside.
    document = json.loads((source / "runs" / f"{template.older}.json").read_text())
    document["run_id"] = template.latest
    (source / "runs" / f"{NEWEST_RUN}.json").write_text(json.dumps(document))
    function = json.loads((source / "functions" / "summary.json").read_text())
    function_kept = (destination / "functions" / "summary.json").read_bytes()
    function["version"] = "planted"
    (source / "functions" / "planted.json").write_text(json.dumps(function))

    outcome = cli(["sync", "-q", str(source), str(destination)])
    assert_clean(outcome, "sync")
    assert (destination / "runs" / f"{template.latest}.json").read_bytes() == kept
    assert (destination / "functions" / "summary.json").read_bytes() == function_kept
    assert outcome.code == 1  # and it says which records it did not copy
    checked = cli(["verify", "--store", str(source)])
    assert checked.code == 1 and NEWEST_RUN in checked.out


CHEAP_KINDS = [f"link:{f}" for f in FOLDERS] + ["secret blob", "deep lease", "deep record", "deep action",
                                                  "misnamed record"]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kinds=st.lists(st.sampled_from(CHEAP_KINDS), min_size=1, max_size=3, unique=True),
    names=st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=3),
)
def test_any_mix_of_hostile_entries_and_commands(
    template: Template, tmp_path_factory: pytest.TempPathFactory, kinds: list[str], names: list[str]
) -> None:
    work = tmp_path_factory.mktemp("mix")
    store = fresh_copy(template, work)
    links = [k for k in kinds if k.startswith("link:")]
    kinds = [k for k in kinds if not k.startswith("link:")] + links[:1]  # one outside folder per case
    outside = [plant(kind, template, store, work) for kind in kinds]
    watched = {p: snapshot(p) for p in outside if p is not None}
    for name in names:
        assert_clean(cli(command(name, template, store, work)), f"{name} with {kinds}")
        for path, before in watched.items():
            assert snapshot(path) == before, f"{name} with {kinds} changed files outside the store"


# -- the rule on LocalIO itself


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[LocalIO, Path]]:
    root = tmp_path / "store"
    (root / "runs").mkdir(parents=True)
    yield LocalIO(None, str(root)), tmp_path


def test_walk_of_a_linked_folder_is_one_line_naming_it(local: tuple[LocalIO, Path]) -> None:
    storage, tmp = local
    outside_folder(tmp)
    (Path(storage.root) / "leases").symlink_to(tmp / "outside", target_is_directory=True)
    with pytest.raises(StoreError, match=r"store damaged: '.*leases' is a symbolic link; remove it"):
        list(storage.walk("leases"))
    for act in (lambda: storage.delete("leases/sentinel.txt"), lambda: storage.write_bytes("leases/x", b"x"),
                lambda: storage.read_bytes("leases/sentinel.txt"), lambda: storage.exists("leases/sentinel.txt")):
        with pytest.raises(StoreError, match="symbolic link"):
            act()
    assert [p.name for p in (tmp / "outside").iterdir()] == ["sentinel.txt"]
    assert (tmp / "outside" / "sentinel.txt").read_bytes() == SECRET


def test_a_record_read_is_bounded_without_loading_it(local: tuple[LocalIO, Path]) -> None:
    storage, _tmp = local
    path = Path(storage.root) / "runs" / "big.json"
    path.write_bytes(b"{")
    os.truncate(path, MAX_RECORD_BYTES + 1)
    with pytest.raises(StoreError, match="store damaged"):
        storage.read_bytes("runs/big.json", MAX_RECORD_BYTES)
    os.truncate(path, 10)
    assert storage.read_bytes("runs/big.json", 10) == b"{" + b"\0" * 9


@pytest.mark.parametrize("backend", ["memory", "s3", "supabase"])
def test_remote_record_reads_are_bounded_in_the_same_single_request(
    backend: str, request: pytest.FixtureRequest
) -> None:
    storage, requests = _remote(backend, request)
    storage.write_bytes("runs/small.json", b"{}")
    storage.write_bytes("runs/empty.json", b"")
    storage.write_bytes("runs/big.json", b"x" * 1001)
    requests.clear()
    assert storage.read_bytes("runs/small.json", 1000) == b"{}"
    if backend == "s3":
        assert requests == ["get_object"]
    assert storage.read_bytes("runs/empty.json", 1000) == b""
    assert storage.read_bytes("runs/big.json") == b"x" * 1001  # no limit: blobs are read whole
    with pytest.raises(StoreError, match="more than"):
        storage.read_bytes("runs/big.json", 1000)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("runs/missing.json", 1000)


def _remote(backend: str, request: pytest.FixtureRequest) -> tuple[StorageIO, list[str]]:
    """A store's StorageIO on ``backend`` and the S3 requests it makes (S3 only), torn down after the test."""
    name = f"bounded-{uuid.uuid4().hex[:8]}"
    requests: list[str] = []
    if backend == "memory":
        return wfe.open_store(f"memory://{name}").io, requests
    if backend == "s3":
        pytest.importorskip("s3fs")
        pytest.importorskip("moto.server")
        from servers.s3 import s3_server

        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        server = s3_server()
        running = server.__enter__()
        request.addfinalizer(lambda: server.__exit__(None, None, None))
        storage = wfe.open_store(running.url(name), **running.options).io
        call_s3 = storage.fs._call_s3

        async def counted(method: str, *args: object, **kwargs: object) -> object:
            requests.append(method)
            return await call_s3(method, *args, **kwargs)

        storage.fs._call_s3 = counted
        request.addfinalizer(lambda: vars(storage.fs).pop("_call_s3", None))  # the filesystem is shared
        return storage, requests
    pytest.importorskip("wfe_supabase")
    from servers.supabase_fixtures import new_bucket, server_or_skip

    server = server_or_skip()
    bucket = new_bucket(server, "bounded")
    return wfe.open_store(f"supabase://{bucket}/{name}", storage_url=server.storage_url,
                          key=server.service_key).io, requests  # fmt: skip
