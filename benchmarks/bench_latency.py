"""Runs on remote stores with a round-trip delay added: wall time and requests per node.

    python benchmarks/bench_latency.py [--delays 0,20,100] [--nodes 200,1000] [--repeat 3]
                                       [--backends s3,supabase] [--cell-timeout 300] [--direct] [--quick]
                                       [--supabase-gateway] [--output FILE]

A remote object store costs 10-100 ms a request; on loopback it costs well
under one. Here every request goes through a proxy on 127.0.0.1
(``_delay_proxy.py``) that holds each request for ``--delays`` milliseconds
before forwarding it and counts it, in front of:

- ``s3``: the loopback S3 API server the tests use (moto, ``tests/servers/s3.py``);
- ``supabase``: the real Supabase Storage server (``tests/servers/supabase_storage.py``,
  built once per machine; skipped with the reason when it cannot be had).

Four workloads of trivial nodes, the engine benchmark's (``_gen.py``): a chain
and a fan-out of ``--nodes`` nodes, each run cold (a fresh store prefix) and then
cached (the same workflow again on the same store). Each measurement is a fresh
Python process calling ``wfe.run(workflow, store)`` with the inline executor,
so no in-process cache carries over. Its time is that of ``open_store`` plus
``run``, measured in the child; importing wfe and the backend's client is left
out and reported on its own line. A cell is the median of ``--repeat`` runs,
each on a fresh prefix; requests per node are the proxy's count for the whole
child process over the node count.

Beside each run on S3, its physical limit (the ``s3 floor`` rows): the
same requests it sent, method for method and key for key (writes to the
same keys in a bucket of their own, conditional where its were; reads and
listings as they were),
sent bare with plain HTTP/1.1 and nothing between them but the run's
in-flight bound, from a fresh process. No run that sends those requests at
that bound can take less; the ratio of the two is what the engine adds
(computation, signing, and the round trips that must wait on each other).
Each store gets its own bucket: the test server lists by scanning a whole
bucket, so in a shared one each run's listings would grow with the runs
before it (S3 lists by key range).

The time is bounded: a measurement that passes ``--cell-timeout`` seconds is
killed and shown as ``> N s``, and a cell whose estimate from a smaller node
count or a shorter delay is far past it is not run (also ``> N s``, marked
``*``). A cached run whose cold run was cut short runs on a store filled
with the delay off. ``--direct`` adds rows with no proxy at all (store
straight at the server), to show what the proxy itself costs. Progress goes
to stderr as each run ends.

Prints a Markdown table and writes every figure to
``benchmarks/results/latency.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test servers

from _delay_proxy import Proxy, delay_proxy
from _gen import write
from servers.supabase_storage import Unavailable

HERE = Path(__file__).resolve().parent
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

SHAPES = ("chain", "fanout")
WORKLOADS = tuple(f"{shape} {phase}" for shape in SHAPES for phase in ("cold", "cached"))
SECRET_OPTIONS = ("key", "secret", "token")
BUCKET = "wfe-bench"
FLOOR_BACKENDS = ("s3",)  # whose requests replay bare (Supabase's uploads and moves need their bodies)
ESTIMATE_MARGIN = 1.5  # a cell is skipped when its estimate is this many times the timeout

# The measured process: reads what to run as JSON on stdin (so no secret is on its command line),
# imports first, then times open_store + run; prints one JSON line last.
CHILD = textwrap.dedent(
    """
    import importlib, json, sys, time
    spec = json.loads(sys.stdin.read())
    started = time.perf_counter()
    import wfe
    for name in spec["preload"]:
        importlib.import_module(name)
    imported = time.perf_counter()
    store = wfe.open_store(spec["url"], **spec["options"])
    result = wfe.run(spec["workflow"], store, executor="inline")
    finished = time.perf_counter()
    statuses = {}
    for record in result.manifest.nodes.values():
        statuses[record.status] = statuses.get(record.status, 0) + 1
    print(json.dumps({"import_s": imported - started, "run_s": finished - imported, "status": result.status,
                      "nodes": statuses}))
    """
)


# The physical limit of a cold run: the same requests it sent (method and key, under a fresh prefix; a PUT
# with If-None-Match where the run's had one), bare (no signing, no client library), with nothing between
# them but the in-flight bound the run had: plain keep-alive HTTP/1.1 connections, one per thread.
FLOOR_CHILD = textwrap.dedent(
    """
    import http.client, json, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    spec = json.loads(sys.stdin.read())
    local = threading.local()
    def send(item):
        method, path, conditional = item
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=120)
        headers = {"If-None-Match": "*"} if conditional else {}
        body = b"x" * spec["body"] if method == "PUT" else None
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    started = time.perf_counter()
    with ThreadPoolExecutor(spec["concurrency"]) as pool:
        statuses = list(pool.map(send, spec["requests"]))
    print(json.dumps({"run_s": time.perf_counter() - started, "errors": sum(s >= 500 for s in statuses)}))
    """
)
FLOOR_METHODS = ("GET", "HEAD", "PUT", "DELETE")
FLOOR_BODY = 256  # bytes per PUT: about a trivial node's record


@dataclass
class Backend:
    """A store behind the proxy: how to name a store on it and the options that reach it."""

    name: str
    proxy: Proxy
    url: Callable[[str], str]  # prefix -> store URL
    options: dict[str, Any]  # through the proxy
    direct_options: dict[str, Any] | None  # straight to the server (None: it cannot be reached so)
    preload: list[str]  # modules the child imports before its clock starts
    scratch_bucket: Callable[[], str] | None = None  # a new bucket, for the floor's writes (S3)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Measurement:
    """One child process: its times and the requests the proxy saw (None: killed at the timeout)."""

    run_s: float | None
    import_s: float | None = None
    process_s: float | None = None
    requests: int | None = None
    methods: dict[str, int] = field(default_factory=dict)
    folders: dict[str, int] = field(default_factory=dict)  # "METHOD folder" -> requests
    statuses: dict[str, int] = field(default_factory=dict)
    load: float | None = None  # the machine's 1-minute load average as the run ended: other work skews times
    sent: dict[tuple[str, str, bool], int] = field(default_factory=dict)  # what the floor replays (Proxy.targets)

    @property
    def timed_out(self) -> bool:
        return self.run_s is None


@contextlib.contextmanager
def s3_backend(delay_s: float) -> Iterator[Backend]:
    from servers.s3 import s3_server

    with s3_server(BUCKET) as server, delay_proxy(server.endpoint_url, delay_s) as proxy:
        buckets: dict[str, str] = {}

        def url(prefix: str) -> str:
            # A bucket per store: the test server lists by scanning the whole bucket (S3 lists by key range),
            # so in one bucket each run's listings would grow with every run before it.
            if prefix not in buckets:
                buckets[prefix] = server.make_bucket()
            return f"s3://{buckets[prefix]}/{prefix}"

        yield Backend(
            name="s3",
            proxy=proxy,
            url=url,
            options={**server.options, "endpoint_url": proxy.url},
            direct_options=dict(server.options),
            preload=["s3fs", "wfe_s3"],
            scratch_bucket=server.make_bucket,
            env=server.env,
        )


GATEWAY = "/storage/v1"  # where Supabase's API gateway serves the Storage API under a project URL


@contextlib.contextmanager
def supabase_backend(delay_s: float, *, gateway: bool = False) -> Iterator[Backend]:
    """The real Storage server, reached with ``storage_url`` (or, with ``gateway``, as a project URL).

    With ``gateway`` the store gets ``url=<proxy>`` and the proxy removes
    ``/storage/v1`` from each path, as Supabase's gateway does: for a wfe
    without the ``storage_url`` option. The requests are the same either way;
    there is no run without the proxy then.
    """
    from servers.supabase_storage import supabase_storage_server

    with supabase_storage_server(log=lambda line: print(f"  {line}", file=sys.stderr)) as server:
        server.create_bucket(BUCKET)
        with delay_proxy(server.storage_url, delay_s, strip_prefix=GATEWAY if gateway else "") as proxy:
            through = {"url": proxy.url} if gateway else {"storage_url": proxy.url}
            yield Backend(
                name="supabase",
                proxy=proxy,
                url=lambda prefix: f"supabase://{BUCKET}/{prefix}",
                options={**through, "key": server.service_key},
                direct_options=None if gateway else {"storage_url": server.storage_url, "key": server.service_key},
                preload=["wfe_supabase", "wfe_supabase._fs", "storage3", "httpx"],
            )


BACKENDS: dict[str, Callable[..., contextlib.AbstractContextManager[Backend]]] = {
    "s3": s3_backend,
    "supabase": supabase_backend,
}


def child_env(backend: Backend) -> dict[str, str]:
    env = {**os.environ, **backend.env}
    for name in ("WFE_CACHE", "WFE_STORE"):  # a local blob cache in front would hide the store's latency
        env.pop(name, None)
    return env


def redact(text: str, options: dict[str, Any]) -> str:
    for name in SECRET_OPTIONS:
        value = options.get(name)
        if value:
            text = text.replace(str(value), "***")
    return text


def folder_of(path: str, prefix: str) -> str:
    """The store folder a request went to (``blobs``, ``actions``, ...), else the API path it used."""
    marker = f"/{prefix}/"
    if marker in path:
        return path.split(marker, 1)[1].split("/", 1)[0]
    if path.rstrip("/").endswith(f"/{prefix}"):
        return "(store root)"
    return "/".join(path.split("/")[:3])  # e.g. a Supabase listing: /object/list, the prefix in its body


def measure(backend: Backend, workflow: Path, prefix: str, timeout: float, *, direct: bool = False) -> Measurement:
    """Run ``workflow`` on the store at ``prefix`` in a fresh process; what it took and asked."""
    options = (backend.direct_options or {}) if direct else backend.options
    spec = {"url": backend.url(prefix), "options": options, "workflow": str(workflow), "preload": backend.preload}
    backend.proxy.reset()
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD], input=json.dumps(spec), capture_output=True, text=True,
            timeout=timeout, env=child_env(backend), cwd=workflow.parent,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Measurement(None, requests=backend.proxy.total())
    process_s = time.perf_counter() - started
    if done.returncode != 0 or not done.stdout.strip():
        tail = redact(done.stderr.strip()[-2000:], options)
        raise RuntimeError(f"{backend.name} run of {workflow.name} failed (exit {done.returncode}):\n{tail}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "succeeded":
        raise RuntimeError(f"{backend.name} run of {workflow.name}: {result['status']} {result['nodes']}")
    paths = backend.proxy.paths()
    folders: Counter[str] = Counter()
    strip = backend.proxy.strip_prefix
    for (method, path), number in paths.items():
        if strip and path.startswith(strip + "/"):
            path = path[len(strip) :]
        folders[f"{method} {folder_of(path, prefix)}"] += number
    return Measurement(
        run_s=result["run_s"],
        import_s=result["import_s"],
        process_s=process_s,
        requests=None if direct else backend.proxy.total(),
        methods={} if direct else backend.proxy.counts(),
        folders={} if direct else dict(folders),
        statuses=result["nodes"],
        load=os.getloadavg()[0],
        sent={} if direct else backend.proxy.targets(),
    )


def floor(backend: Backend, run: Measurement, prefix: str, timeout: float) -> Measurement:
    """The requests ``run`` sent at ``prefix``, bare and all at once (``FLOOR_CHILD``).

    Reads (GET, HEAD) go where the run's went; writes (PUT, DELETE) to the
    same keys in a bucket of their own, so the store, and the time the
    server takes to list it, stay as the run left them.
    """
    from wfe.storage import CONCURRENCY

    assert backend.scratch_bucket is not None
    scratch = backend.scratch_bucket()
    requests = []
    for (method, target, conditional), number in sorted(run.sent.items()):
        if method not in FLOOR_METHODS:
            continue
        if method in ("PUT", "DELETE"):
            bucket = target.lstrip("/").split("/", 1)[0]
            target = target.replace(f"/{bucket}/", f"/{scratch}/", 1)
        requests.extend([method, target, conditional] for _ in range(number))
    spec = {"port": backend.proxy.port, "requests": requests, "concurrency": CONCURRENCY, "body": FLOOR_BODY}
    backend.proxy.reset()
    try:
        done = subprocess.run([sys.executable, "-c", FLOOR_CHILD], input=json.dumps(spec), capture_output=True,
                              text=True, timeout=timeout, check=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Measurement(None, requests=backend.proxy.total())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"{backend.name}: {result['errors']} of the floor's requests failed with 5xx")
    return Measurement(run_s=result["run_s"], requests=backend.proxy.total(), load=os.getloadavg()[0])


@dataclass
class Cell:
    """One workload at one backend, delay and size: its measurements, or why it was not run."""

    measurements: list[Measurement] = field(default_factory=list)
    skipped: str = ""

    @property
    def over(self) -> bool:
        return bool(self.skipped) or any(m.timed_out for m in self.measurements)

    def seconds(self) -> float | None:
        if self.over or not self.measurements:
            return None
        return statistics.median(m.run_s for m in self.measurements if m.run_s is not None)

    def requests(self) -> float | None:
        counted = [m.requests for m in self.measurements if m.requests is not None and not m.timed_out]
        return statistics.median(counted) if counted else None


Key = tuple[str, str, int, str]  # backend, delay label, nodes, workload


class Bench:
    """Every cell of the run, with the rules that keep it bounded in time."""

    def __init__(self, args: argparse.Namespace, workflows: dict[tuple[str, int], Path]) -> None:
        self.args = args
        self.workflows = workflows
        self.cells: dict[Key, Cell] = {}
        self.started = time.perf_counter()

    def estimate(self, key: Key) -> float | None:
        """A lower bound on a cell's seconds from one already measured with fewer nodes or less delay."""
        backend, delay, nodes, workload = key
        best: float | None = None
        for (other_backend, other_delay, other_nodes, other_workload), cell in self.cells.items():
            if (other_backend, other_workload) != (backend, workload) or other_delay == "direct" or delay == "direct":
                continue
            if int(other_delay) > int(delay) or other_nodes > nodes:
                continue
            seconds = self.args.cell_timeout if cell.over else cell.seconds()
            if seconds is None:
                continue
            guess = seconds * nodes / other_nodes
            best = guess if best is None else max(best, guess)
        return best

    def prepare(self, key: Key) -> Cell:
        cell = self.cells.setdefault(key, Cell())
        if not cell.measurements and not cell.skipped:
            guess = self.estimate(key)
            if guess is not None and guess > ESTIMATE_MARGIN * self.args.cell_timeout:
                cell.skipped = f"estimated at over {guess:.0f} s from a smaller or faster cell"
        return cell

    def run_repeat(self, backend: Backend, delay: str, nodes: int) -> None:
        """One repeat of the four workloads at this delay and size, each shape on fresh prefixes."""
        timeout = self.args.cell_timeout
        direct = delay == "direct"
        if direct and backend.direct_options is None:
            return
        backend.proxy.delay = 0.0 if direct else int(delay) / 1000
        for shape in SHAPES:
            workflow = self.workflows[(shape, nodes)]
            cold = self.prepare((backend.name, delay, nodes, f"{shape} cold"))
            cached = self.prepare((backend.name, delay, nodes, f"{shape} cached"))
            if cold.over and cached.over:
                continue
            prefix = f"lat-{uuid.uuid4().hex[:10]}"
            filled = False
            if not cold.over:
                measured = measure(backend, workflow, prefix, timeout, direct=direct)
                cold.measurements.append(measured)
                filled = not measured.timed_out
                self.say(backend.name, delay, nodes, f"{shape} cold", measured)
                if filled and not direct:
                    self.floor(backend, measured, prefix, (delay, nodes, f"{shape} cold"))
            if cached.over:
                continue
            if not filled:  # a store for the cached run, filled with the delay off
                prefix = f"lat-{uuid.uuid4().hex[:10]}"
                backend.proxy.delay, wanted = 0.0, backend.proxy.delay
                fill = measure(backend, workflow, prefix, timeout)
                backend.proxy.delay = wanted
                if fill.timed_out:
                    cached.skipped = "its store could not be filled within the timeout"
                    continue
            measured = measure(backend, workflow, prefix, timeout, direct=direct)
            if not measured.timed_out and set(measured.statuses) != {"cached"}:
                raise RuntimeError(f"a cached run ran nodes: {measured.statuses}")
            cached.measurements.append(measured)
            self.say(backend.name, delay, nodes, f"{shape} cached", measured)
            if not measured.timed_out and not direct:
                self.floor(backend, measured, prefix, (delay, nodes, f"{shape} cached"))

    def floor(self, backend: Backend, run: Measurement, prefix: str, where: tuple[str, int, str]) -> None:
        """Measure ``run``'s physical limit (:func:`floor`) into the ``"<backend> floor"`` row."""
        if backend.name not in FLOOR_BACKENDS:
            return
        delay, nodes, workload = where
        bare = floor(backend, run, prefix, self.args.cell_timeout)
        self.cells.setdefault((f"{backend.name} floor", delay, nodes, workload), Cell()).measurements.append(bare)
        self.say(f"{backend.name} floor", delay, nodes, workload, bare)

    def say(self, backend: str, delay: str, nodes: int, workload: str, m: Measurement) -> None:
        elapsed = time.perf_counter() - self.started
        what = f"> {self.args.cell_timeout:.0f} s" if m.timed_out else f"{m.run_s:.2f} s"
        per_node = "" if m.requests is None or m.timed_out else f", {m.requests / nodes:.2f} req/node"
        print(
            f"  [{elapsed:6.0f} s] {backend} {delay} ms {nodes} nodes {workload}: {what}{per_node}",
            file=sys.stderr,
            flush=True,
        )

    def text(self, key: Key) -> str:
        cell = self.cells.get(key)
        if cell is None:
            return "-"
        if cell.over:
            return f"> {self.args.cell_timeout:.0f} s" + ("*" if cell.skipped else "")
        seconds, requests = cell.seconds(), cell.requests()
        if seconds is None:
            return "-"
        shown = f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"
        return shown if requests is None else f"{shown} ({requests / key[2]:.2f})"

    def table(self, backends: list[str], delays: list[str]) -> str:
        lines = [
            "| backend | delay ms | nodes | chain cold s (req/node) | chain cached s (req/node) "
            "| fan-out cold s (req/node) | fan-out cached s (req/node) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for backend in [b for name in backends for b in (name, f"{name} floor")]:
            for delay in delays:
                for nodes in self.args.nodes:
                    if not any((backend, delay, nodes, w) in self.cells for w in WORKLOADS):
                        continue
                    label = "no proxy" if delay == "direct" else delay
                    row = [self.text((backend, delay, nodes, w)) for w in WORKLOADS]
                    lines.append(f"| {backend} | {label} | {nodes} | " + " | ".join(row) + " |")
        return "\n".join(lines)

    def imports(self) -> float | None:
        seconds = [m.import_s for c in self.cells.values() for m in c.measurements if m.import_s is not None]
        return statistics.median(seconds) if seconds else None

    def to_json(self) -> list[dict[str, Any]]:
        rows = []
        for (backend, delay, nodes, workload), cell in self.cells.items():
            requests = cell.requests()
            rows.append({
                "backend": backend,
                "delay_ms": None if delay == "direct" else int(delay),
                "proxy": delay != "direct",
                "nodes": nodes,
                "workload": workload,
                "seconds": cell.seconds(),
                "requests_per_node": None if requests is None else requests / nodes,
                "over_timeout": cell.over,
                "skipped": cell.skipped or None,
                "runs": [
                    {"run_s": m.run_s, "import_s": m.import_s, "process_s": m.process_s, "requests": m.requests,
                     "timed_out": m.timed_out, "methods": m.methods, "folders": m.folders, "statuses": m.statuses,
                     "load": m.load}
                    for m in cell.measurements
                ],
            })  # fmt: skip
        return rows


def start(stack: contextlib.ExitStack, name: str, options: dict[str, Any], attempts: int = 2) -> Backend:
    """The backend's server and proxy, entered on ``stack``; a server that fails to start is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            return stack.enter_context(BACKENDS[name](0.0, **options))
        except RuntimeError as exc:
            if attempt == attempts:
                raise
            print(f"{name}: {exc}; starting it again", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--delays", help="milliseconds added to each request, comma-separated (default 0,20,100)")
    parser.add_argument("--nodes", help="workflow sizes, comma-separated (default 200,1000)")
    parser.add_argument("--repeat", type=int, help="runs per cell, each on a fresh prefix; the median (default 3)")
    parser.add_argument("--backends", default="s3,supabase", help="comma-separated: s3, supabase")
    parser.add_argument("--cell-timeout", type=float, default=300.0, help="seconds before a run is killed")
    parser.add_argument("--direct", action="store_true", help="also run without the proxy (its own cost)")
    parser.add_argument(
        "--supabase-gateway",
        action="store_true",
        help="reach Supabase as a project URL through a gateway-like proxy (for a wfe without storage_url)",
    )
    parser.add_argument("--quick", action="store_true", help="defaults of 200 nodes, delays 0,20, one run")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "latency.json")
    args = parser.parse_args(argv)
    quick = args.quick
    args.delays = [str(int(d)) for d in (args.delays or ("0,20" if quick else "0,20,100")).split(",")]
    args.nodes = [int(n) for n in (args.nodes or ("200" if quick else "200,1000")).split(",")]
    args.repeat = args.repeat or (1 if quick else 3)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))} (known: {', '.join(BACKENDS)})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="wfe-bench-latency-"))
    workflows = {(shape, n): write(folder, shape, n) for shape in SHAPES for n in args.nodes}
    bench = Bench(args, workflows)
    delays = (["direct"] if args.direct else []) + args.delays
    unavailable: dict[str, str] = {}
    for name in args.backends:
        print(f"{name}: starting the server", file=sys.stderr, flush=True)
        try:
            options = {"gateway": True} if name == "supabase" and args.supabase_gateway else {}
            with contextlib.ExitStack() as stack:
                backend = start(stack, name, options)
                for delay in delays:
                    for nodes in args.nodes:
                        for _ in range(args.repeat):
                            bench.run_repeat(backend, delay, nodes)
        except Unavailable as exc:
            unavailable[name] = f"skipped: {exc}"
            print(f"{name}: skipped: {exc}", file=sys.stderr, flush=True)
        except (RuntimeError, OSError) as exc:  # a server that did not start, or a run that failed: the rest goes on
            unavailable[name] = f"failed: {exc}"
            print(f"{name}: failed: {exc}", file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)

    print(
        f"Runs on remote stores with a delay added to each request: median of {args.repeat} "
        f"(seconds of open_store + run; requests per node in brackets, counted at the proxy)\n"
    )
    print(bench.table(args.backends, delays))
    notes = []
    if any(cell.skipped for cell in bench.cells.values()):
        notes.append("* not run: " + "; ".join(sorted({c.skipped for c in bench.cells.values() if c.skipped})))
    loads = [m.load for c in bench.cells.values() for m in c.measurements if m.load is not None]
    if loads:
        notes.append(
            f"load average as runs ended: median {statistics.median(loads):.1f}, max {max(loads):.1f} "
            f"on {os.cpu_count()} cores (above the cores' count, other work slowed the runs)"
        )
    imports = bench.imports()
    if imports is not None:
        notes.append(f"importing wfe and the backend's client: median {imports:.2f} s per process, not in the times")
    for name, reason in unavailable.items():
        notes.append(f"{name} {reason}")
    notes.append(f"whole run: {total:.0f} s")
    print("\n" + "\n".join(f"- {note}" for note in notes))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "delays_ms": args.delays, "nodes": args.nodes, "repeat": args.repeat, "cell_timeout_s": args.cell_timeout,
        "seconds": "open_store + run in a fresh process; import of wfe and the backend excluded (import_s)",
        "unavailable": unavailable,
        "total_s": total,
        "cells": bench.to_json(),
    }, indent=1) + "\n")  # fmt: skip
    print(f"- written to {args.output}")


if __name__ == "__main__":
    main()
