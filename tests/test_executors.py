"""Executors: the same digests everywhere, tasks without payloads, Dask at scale, failures kept apart."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wfe
from wfe.engine._executors import InlineExecutor, parse_executor
from wfe.engine._task import Task

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"
FUNCTIONS = REPO / "tests" / "workflows" / "executors"
EXECUTORS = ["inline", "threads", "processes", "dask"]


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """One LocalCluster with two worker processes for the whole module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":0", scheduler_kwargs={"dashboard": False},
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture
def executor_for(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``"dask"`` means the module's cluster (by address), so each test does not start its own."""

    def pick(kind: str) -> str:
        if kind == "dask":
            return "dask://" + request.getfixturevalue("dask_address")
        return kind

    return pick


def graph(name: str, nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> wfe.WorkflowGraph:
    return wfe.WorkflowGraph(
        name=name, modules=["wide"], nodes=nodes,
        edges=[{"source": s, "target": t} for s, t in edges],
    )


def run(g: wfe.WorkflowGraph, store: wfe.Store | str, **kwargs: Any) -> wfe.RunResult:
    return wfe.run(g, store, base_dir=FUNCTIONS, jobs=kwargs.pop("jobs", 2), **kwargs)


def digests(result: wfe.RunResult) -> dict[str, list[str]]:
    return {node: [a.digest for a in r.outputs] for node, r in result.manifest.nodes.items()}


# 1. identical digests under every executor -------------------------------------------------


@pytest.mark.parametrize("kind", ["threads", "processes", "dask", "dask-local"])
def test_example_gives_identical_digests_under_every_executor(
    kind: str, executor_for: Callable[[str], str], tmp_path: Path
) -> None:
    reference = wfe.run(EXAMPLE, str(tmp_path / "inline"), executor="inline")
    # "dask-local" starts (and stops) its own one-worker cluster: the path with no address
    executor = "dask" if kind == "dask-local" else executor_for(kind)
    result = wfe.run(EXAMPLE, str(tmp_path / kind), executor=executor, jobs=1 if kind == "dask-local" else 2)
    assert result.ok and set(result.manifest.counts()) == {"ran"}
    assert digests(result) == digests(reference)


def test_example_gives_identical_digests_on_s3(executor_for: Callable[[str], str], tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    try:
        from servers.s3 import s3_server
    except ImportError:
        pytest.skip("no S3 test server in this checkout")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    reference = digests(wfe.run(EXAMPLE, str(tmp_path / "local")))
    with s3_server() as server:
        for kind in EXECUTORS:
            store = wfe.open_store(server.url(f"executors-{kind}"), **server.options)
            result = wfe.run(EXAMPLE, store, executor=executor_for(kind), jobs=2)
            assert result.ok and set(result.manifest.counts()) == {"ran"}, kind
            assert digests(result) == reference, kind


# 2. a task's size does not depend on the size of the data -----------------------------------


class RecordingExecutor(InlineExecutor):
    def __init__(self) -> None:
        self.tasks: list[Task] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.tasks.extend(a for a in args if isinstance(a, Task))
        return super().submit(fn, *args, **kwargs)


def test_task_size_is_independent_of_payload_size(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    sizes = {}
    for label, size in (("small", 10), ("large", 100 * 1024 * 1024)):
        folder = tmp_path / label
        folder.mkdir()
        with open(folder / "data.bin", "wb") as handle:
            handle.truncate(size)  # zeros: the content differs in length only
        g = graph("sizes", [
            {"id": "data", "file": str(folder / "data.bin"), "mime": "application/octet-stream"},
            {"id": "measure", "function": "measure"},
        ], [("data", "measure")])
        recorder = RecordingExecutor()
        result = run(g, store, executor=recorder, allow_paths=[folder])  # a file beside no workflow
        assert result.ok
        assert json.loads(store.blobs.get(result.outputs("measure")[0].digest)) == size
        (task,) = recorder.tasks
        assert task.inputs[0][0] == result.outputs("data")[0].digest
        sizes[label] = len(pickle.dumps(task))
    assert sizes["small"] == sizes["large"] < 2048


# 3. Dask: a LocalCluster with two workers, more than 100 nodes, then all cached ---------------


def reduction_tree(leaves: int) -> wfe.WorkflowGraph:
    """seed -> ``leaves`` leaves -> a binary tree of sums: 2 * leaves nodes."""
    nodes: list[dict[str, Any]] = [{"id": "seed", "function": "seed", "config": {"n": 7}}]
    edges: list[tuple[str, str]] = []
    level = []
    for i in range(leaves):
        nodes.append({"id": f"leaf{i}", "function": "leaf", "config": {"i": i}})
        edges.append(("seed", f"leaf{i}"))
        level.append(f"leaf{i}")
    depth = 0
    while len(level) > 1:
        depth += 1
        following = []
        for k in range(0, len(level) - 1, 2):
            node_id = f"sum{depth}.{k // 2}"
            nodes.append({"id": node_id, "function": "add"})
            edges += [(level[k], node_id), (level[k + 1], node_id)]
            following.append(node_id)
        if len(level) % 2:
            following.append(level[-1])
        level = following
    return graph("tree", nodes, edges)


def test_dask_local_cluster_runs_a_large_workflow_then_all_cached(dask_address: str, tmp_path: Path) -> None:
    g = reduction_tree(60)
    assert len(g.nodes) >= 100
    store = str(tmp_path / "store")
    first = run(g, store, executor=f"dask://{dask_address}")
    assert first.ok and first.manifest.counts() == {"ran": len(g.nodes)}
    total = json.loads(wfe.open_store(store).blobs.get(first.outputs(g.nodes[-1].id)[0].digest))
    assert total == sum(7000 + i * i for i in range(60))
    again = run(g, store, executor=f"dask://{dask_address}")
    assert again.ok and again.manifest.counts() == {"cached": len(g.nodes)}
    assert digests(again) == digests(first)


# 4. one failing node: the rest completes, the error and the node's output are kept ------------


def failing_workflow() -> wfe.WorkflowGraph:
    return graph("failing", [
        {"id": "seed", "function": "seed", "config": {"n": 1}},
        {"id": "boom", "function": "boom"},
        {"id": "after_boom", "function": "chatty", "config": {"tag": "after"}},
        {"id": "after_after", "function": "chatty", "config": {"tag": "after2"}},
        {"id": "left", "function": "chatty", "config": {"tag": "left"}},
        {"id": "left2", "function": "chatty", "config": {"tag": "left2"}},
        {"id": "right", "function": "leaf", "config": {"i": 3}},
    ], [("seed", "boom"), ("boom", "after_boom"), ("after_boom", "after_after"),
        ("seed", "left"), ("left", "left2"), ("seed", "right")])


@pytest.mark.parametrize("kind", EXECUTORS)
def test_failure_stops_descendants_only_and_keeps_the_nodes_output(
    kind: str, executor_for: Callable[[str], str], tmp_path: Path
) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    result = run(failing_workflow(), store, executor=executor_for(kind))
    statuses = {node: r.status for node, r in result.manifest.nodes.items()}
    assert statuses == {
        "seed": "ran", "boom": "failed", "after_boom": "skipped", "after_after": "skipped",
        "left": "ran", "left2": "ran", "right": "ran",
    }
    assert result.status == "failed" and not result.ok
    recorded = store.runs.get(result.run_id)  # what is kept with the run, not just returned
    assert recorded.status == "failed"
    failed = recorded.nodes["boom"]
    assert failed.error == "ValueError: bad input 43"
    assert failed.traceback is not None
    assert "Traceback (most recent call last)" in failed.traceback
    assert 'raise ValueError(f"bad input' in failed.traceback
    assert failed.log is not None
    captured = store.blobs.get(failed.log).decode()
    assert "boom: preparing the input" in captured  # print()
    assert "INFO wide: boom: info before failing" in captured  # logging below the default level
    assert "WARNING wide: boom: about to fail" in captured
    left = recorded.nodes["left"]
    assert left.log is not None and store.blobs.get(left.log).decode().splitlines() == [
        "chatty left: printed", "WARNING wide: chatty left: logged",
    ]  # each node gets its own output, even when nodes share a process
    again = run(failing_workflow(), store, executor=executor_for(kind))
    assert {n: r.status for n, r in again.manifest.nodes.items()} == {
        **statuses, "seed": "cached", "left": "cached", "left2": "cached", "right": "cached",
    }


def test_cli_failure_block_shows_error_traceback_and_output(wfe_cli: Callable[..., Any], tmp_path: Path) -> None:
    workflow = tmp_path / "failing.json"
    document = failing_workflow().model_dump(mode="json", exclude_none=True)
    workflow.write_text(json.dumps(document))
    (tmp_path / "wide.py").write_text((FUNCTIONS / "wide.py").read_text())
    done = wfe_cli("run", str(workflow), "--store", str(tmp_path / "store"), "--executor", "threads")
    assert done.returncode == 1, done.stderr
    assert "--- node boom failed ---" in done.stderr
    block = done.stderr.split("--- node boom failed ---", 1)[1]
    assert "ValueError: bad input 43" in block
    assert "WARNING wide: boom: about to fail" in block
    assert "  skipped after_boom" in done.stdout and "  ran     left2" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "error"), [("processes", "BrokenProcessPool"), ("dask", "KilledWorker")])
def test_dying_worker_process_fails_its_node_without_hanging(kind: str, error: str, tmp_path: Path) -> None:
    if kind == "dask":
        pytest.importorskip("distributed")  # its own cluster: the module's one is left unharmed
    g = graph("crashing", [
        {"id": "seed", "function": "seed"},
        {"id": "crash", "function": "crash"},
        {"id": "after", "function": "chatty", "config": {"tag": "after"}},
    ], [("seed", "crash"), ("crash", "after")])
    result = run(g, str(tmp_path / "store"), executor=kind, jobs=1)
    nodes = result.manifest.nodes
    assert result.status == "failed" and nodes["seed"].status == "ran"
    assert nodes["crash"].status == "failed" and error in (nodes["crash"].error or "")
    assert nodes["after"].status == "skipped"


def test_process_pool_replaces_itself_after_a_worker_dies() -> None:
    from concurrent.futures.process import BrokenProcessPool

    from wfe.engine._executors import RestartingProcessPool

    pool = RestartingProcessPool(1)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(os._exit, 3).result(timeout=60)
        assert pool.submit(pow, 2, 10).result(timeout=60) == 1024
    finally:
        pool.shutdown()


# refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["processes", "dask", "dask://127.0.0.1:1"])
def test_process_local_store_is_refused_for_executors_elsewhere(kind: str) -> None:
    with pytest.raises(wfe.WfeError, match=r"memory://refused exists only in this process"):
        wfe.run(EXAMPLE, "memory://refused", executor=kind)


def test_memory_store_works_with_threads() -> None:
    assert wfe.run(EXAMPLE, "memory://threads-ok", executor="threads", jobs=3).ok


@pytest.mark.parametrize("bad", ["fibers", "dask:/x", "", "threads://x"])
def test_unknown_executor_is_a_usage_error(bad: str, wfe_cli: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(wfe.WfeError, match="unknown executor"):
        parse_executor(bad)
    done = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"), "--executor", bad)
    assert done.returncode == 2 and done.stderr.startswith("error: unknown executor")
    assert not (tmp_path / "s").exists()


def test_bad_jobs_is_a_usage_error(wfe_cli: Callable[..., Any], tmp_path: Path) -> None:
    done = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"), "--jobs", "0")
    assert done.returncode == 2 and "--jobs must be a positive whole number" in done.stderr


def test_unreachable_scheduler_is_one_line(wfe_process: Callable[..., Any], tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    # A process of its own: dask reads its settings from the environment once, at import.
    done = wfe_process("run", str(EXAMPLE), "--store", str(tmp_path / "s"), "--executor", "dask://127.0.0.1:9",
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: cannot reach dask scheduler tcp://127.0.0.1:9")
    assert "Traceback" not in done.stderr


# Ctrl-C ----------------------------------------------------------------------------------------


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["inline", "threads", "processes"])
def test_ctrl_c_lets_running_nodes_finish_records_interrupted_and_rerun_resumes(
    kind: str, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    document = graph("gated", [
        {"id": "seed", "function": "seed"},
        {"id": "slow", "function": "gate", "config": {"folder": str(gates), "name": "slow"}},
        {"id": "after", "function": "chatty", "config": {"tag": "after"}},
        {"id": "other", "function": "leaf", "config": {"i": 2}},
    ], [("seed", "slow"), ("slow", "after"), ("seed", "other")]).model_dump(mode="json", exclude_none=True)
    workflow = tmp_path / "gated.json"
    workflow.write_text(json.dumps(document))
    (tmp_path / "wide.py").write_text((FUNCTIONS / "wide.py").read_text())
    store = str(tmp_path / "store")
    command = [sys.executable, "-m", "wfe", "run", str(workflow), "--store", store, "--executor", kind, "-j", "2"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(gates / "started-slow", process)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        seen = []
        while not seen or "interrupt:" not in seen[-1]:  # the coordinator has taken the signal
            line = process.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        (gates / "release").write_text("go")
        _, err = process.communicate(timeout=60)
        err = "".join(seen) + err
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    opened = wfe.open_store(store)
    (run_id,) = list(opened.runs)
    manifest = opened.runs.get(run_id)
    assert manifest.status == "interrupted"
    assert manifest.nodes["slow"].status == "ran"  # the running node finished and was kept
    assert manifest.nodes["after"].status == "pending"  # nothing new started
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "  cached  slow" in done.stdout and "  ran     after" in done.stdout


# logging and display ---------------------------------------------------------------------------


def test_log_level_and_log_file(wfe_cli: Callable[..., Any], tmp_path: Path) -> None:
    log_file = tmp_path / "wfe.log"
    done = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"), "--executor", "threads",
                   "--log-level", "info", "--log-file", str(log_file))
    assert done.returncode == 0, done.stderr
    assert "INFO wfe.engine._runner: node by_region ran" in done.stderr
    text = log_file.read_text()
    assert "wfe.engine._runner: run " in text and "succeeded" in text
    quiet = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"))
    assert "INFO" not in quiet.stderr


def test_json_output_is_only_json_and_not_a_tty_prints_node_lines(
    wfe_cli: Callable[..., Any], tmp_path: Path
) -> None:
    done = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"), "--json", "--executor", "threads")
    assert json.loads(done.stdout)["status"] == "succeeded"
    plain = wfe_cli("run", str(EXAMPLE), "--store", str(tmp_path / "s"))
    assert plain.stdout.count("  cached  ") == 7 and "\x1b[" not in plain.stdout


def test_progress_on_a_terminal_shows_counts(tmp_path: Path) -> None:
    pytest.importorskip("rich")
    import pty

    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "wfe", "run", str(EXAMPLE), "--store", str(tmp_path / "s")]
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen(command, stdout=secondary, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # the other end closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert process.wait(timeout=60) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "ran     summary" in screen
    assert "7 ran, 0 cached, 0 failed" in screen and "7/7" in screen


def test_the_inline_executors_futures_work_with_wait_and_as_completed() -> None:
    """Its futures are born finished; the standard helpers still treat them as futures, beside real ones."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait

    inline = InlineExecutor()
    ok, failed = inline.submit(lambda x: x * 2, 21), inline.submit(lambda: 1 / 0)
    assert ok.done() and ok.result() == 42 and not ok.cancel() and not ok.cancelled()
    with pytest.raises(ZeroDivisionError):
        failed.result()
    assert isinstance(failed.exception(), ZeroDivisionError)
    seen = []
    ok.add_done_callback(seen.append)  # called at once: it is done
    assert seen == [ok]
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(time.sleep, 0.2)
        done, pending = wait([slow, ok], return_when=FIRST_COMPLETED)
        assert done == {ok} and pending == {slow}
        assert set(as_completed([slow, ok, failed], timeout=10)) == {slow, ok, failed}
        assert wait([slow, ok, failed]).not_done == set()
