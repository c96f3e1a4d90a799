"""The coordinator: schedule by ready set, use the action cache, write the manifest (planning is in _plan)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from .._errors import StoreError, WfeError, WorkflowError
from ..graph._functions import load_workflow_modules
from ..graph._load import load_workflow
from ..graph._model import Artifact, WorkflowGraph
from ..store._digest import action_key, digest_of
from ..store._manifest import ActionResult, NodeRecord, NodeStatus, RunManifest
from ..store._plans import Planned, PlanStore
from ..store._records import INLINE_CONFIG, RECORD_SLICE, new_run_id
from ..store._store import Store, open_store
from . import _units as units
from ._capture import hooks_installed
from ._executors import ExecutorHandle, InlineExecutor, build_executor, wrap_executor
from ._host import hostname
from ._lease import POLL as LEASE_POLL
from ._lease import Leases, Waiting
from ._plan import PlannedNode, check_regular, plan
from ._prefetch import Known, prefetch
from ._presence import LOCAL_LOOK, Presence
from ._task import Task, TaskResult, element_bytes, run_task
from ._units import Pending
from ._writer import WriteBehind

if TYPE_CHECKING:
    from ..graph._builder import Workflow

EventHandler = Callable[[str, NodeRecord], None]
MANIFEST_INTERVAL = 2.0  # seconds between manifest checkpoints while a run goes on
POLL_INTERVAL = 0.2  # how often a waiting coordinator looks for Ctrl-C
FRESH_BYTES = 8 * 1024 * 1024  # small blobs just stored, kept to hand to nodes run in this process
FRESH_COUNT = 1024  # and at most this many of them
KEPT_BYTES = 1024 * 1024 * 1024  # final outputs made in this process, kept in the run's result (in all)

log = logging.getLogger(__name__)
__all__ = ["EventHandler", "InlineExecutor", "PlannedNode", "RunResult", "plan", "run"]




@dataclass
class RunResult:
    """A finished run: its manifest, the store it ran on, and its outputs read back by node (and port).

    ``result["node"]`` and ``result.value("node", port="p")`` decode an output
    by its MIME type; ``result.path("node")`` is a verified read-only copy on
    local disk. An unknown node or port, a node that failed or was skipped, and
    a node of several outputs without a port are one-line NotFoundErrors.

    The outputs of final nodes (ones no other node consumes) that this process
    computed in this run are kept as the bytes that were hashed into their
    digests (up to ``KEPT_BYTES`` in all), so reading them needs no read back.
    """

    manifest: RunManifest
    store: Store
    kept: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def status(self) -> str:
        return self.manifest.status

    @property
    def ok(self) -> bool:
        return self.manifest.status == "succeeded"

    def outputs(self, node_id: str) -> list[Artifact]:
        """Every output artifact of a node (none for one that failed or was skipped)."""
        from ..ops._outputs import node_record

        return node_record(self.manifest, node_id).outputs

    def output(self, node_id: str, port: str | None = None) -> Artifact:
        """The artifact of one output: ``port`` may be left out for a node with a single output."""
        from ..ops._outputs import pick_output

        return pick_output(self.manifest, node_id, port)

    def value(self, node_id: str, port: str | None = None) -> Any:
        """One output, verified and decoded by its MIME type's codec (JSON, text, bytes, or a registered codec)."""
        from ..ops._outputs import read_value

        artifact = self.output(node_id, port)
        data = self.kept.get(artifact.digest) if artifact.stored else None
        if data is not None:  # the very bytes hashed into the digest when the node stored them
            from ..graph._codecs import decode

            return decode(data, artifact.mime)
        return read_value(self.store, artifact)

    def __getitem__(self, node_id: str) -> Any:
        """``result["node"]``: the node's one output, decoded (see :meth:`value`)."""
        return self.value(node_id)

    def path(self, node_id: str, port: str | None = None) -> Path:
        """A local, read-only copy of one output, its bytes checked against the digest.

        Never the store's own file: the copy lives in a private folder of this
        process, removed when the process exits (copy it elsewhere to keep it).
        IntegrityError if the stored bytes do not match.
        """
        from ..ops._address import verified_copy

        return verified_copy(self.store, self.output(node_id, port))

    def _repr_html_(self) -> str:
        """In a notebook: the run's graph coloured by status, and its node table (as ``wfe report`` draws them)."""
        from ..report._html import run_html

        return run_html(self.store, self.manifest)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.manifest.run_id, "status": self.manifest.status, "nodes": dict(self.nodes_json())}

    def nodes_json(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(node id, its JSON summary)`` per node, one at a time (a large run need not be held twice)."""
        for node_id, record in self.manifest.nodes.items():
            yield node_id, {
                "status": record.status,
                "outputs": [o.model_dump(mode="json", exclude_none=True) for o in record.outputs],
                **({"error": record.error} if record.error else {}),
                **({"log": record.log} if record.log else {}),
            }

    def write_json(self, out: TextIO) -> None:
        """Write :meth:`to_json` as compact JSON, a slice of nodes at a time."""
        compact = (",", ":")
        head = json.dumps({"run_id": self.manifest.run_id, "status": self.manifest.status}, separators=compact)
        out.write(head[:-1] + ',"nodes":{')
        nodes = self.nodes_json()
        separator = ""
        while piece := dict(itertools.islice(nodes, RECORD_SLICE)):
            out.write(separator + json.dumps(piece, separators=compact)[1:-1])
            separator = ","
        out.write("}}\n")


def run(
    workflow: Workflow | WorkflowGraph | str | os.PathLike[str],
    store: Store | str | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    executor: Executor | str | None = None,
    jobs: int | None = None,
    force: bool = False,
    on_event: EventHandler | None = None,
    pinned_files: dict[str, Artifact] | None = None,
    allow_paths: Iterable[str | os.PathLike[str]] = (),
) -> RunResult:
    """Run a workflow (a graph or a file path) on a store; return the manifest of the run.

    ``executor`` is ``"inline"`` (the default), ``"threads"``, ``"processes"``,
    ``"dask"`` (a local cluster) or ``"dask://HOST:PORT"``, with up to ``jobs``
    workers; or a ``concurrent.futures.Executor`` the caller owns. A failing
    node fails its descendants only; the run's status is then ``failed``.
    Ctrl-C stops scheduling, lets running nodes finish, records the run as
    ``interrupted`` and raises KeyboardInterrupt; a rerun resumes from the cache.
    ``on_event(node_id, record)`` is called when a node starts running and when it settles.

    ``pinned_files`` maps file nodes to the artifact a rerun must reuse: the
    stored blob if present, else the file only if it still has that digest.

    A file node reads a regular file inside the workflow's folder (``base_dir``),
    or inside one of ``allow_paths`` (files or folders); any other is a WorkflowError
    before anything runs.

    A ``wfe.Workflow`` runs as its graph, in its ``base_dir`` unless ``base_dir`` is given.
    """
    # A ``wfe.Workflow`` can only exist once its module is imported: a run of a file or graph need not import it.
    builder = sys.modules.get("wfe.graph._builder")
    if builder is not None and isinstance(workflow, cast("type[Workflow]", builder.Workflow)):
        store = store if isinstance(store, Store) else open_store(store)
        base_dir = base_dir if base_dir is not None else workflow.base_dir
        workflow = workflow.prepare_run(store, executor)
    if isinstance(workflow, WorkflowGraph):
        graph = workflow
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(cast("str | os.PathLike[str]", workflow))  # a Workflow was made a graph above
        graph = load_workflow(path)
        folder = Path(base_dir) if base_dir is not None else path.resolve().parent
    store = store if isinstance(store, Store) else open_store(store)
    load_workflow_modules(str(folder), graph.modules)
    pinned_files = dict(pinned_files or {})
    unread = [node_id for node_id, artifact in pinned_files.items() if store.blobs.exists(artifact.digest)]
    allowed = [Path(path).resolve() for path in allow_paths]
    planned = plan(graph, folder, store, allow_paths=allowed, unread=unread)
    if executor is None or isinstance(executor, str):
        handle = build_executor(executor or "inline", jobs, shared=store.shared, url=store.url)
    else:
        handle = wrap_executor(executor, shared=store.shared, url=store.url)
    try:
        runner = _Run(graph, store, planned, folder, handle, force, on_event)
        runner.pinned_files = pinned_files
        # The run needs only its plan from here: a graph no one else holds (one loaded from a file, or handed
        # over as the command line does) is freed now, and the run's own objects reuse its memory.
        del workflow, graph, planned
        result = runner.execute()
    except BaseException:
        handle.close(cancel=True)
        raise
    handle.close()
    return result


class FreshBlobs:
    """Small blobs nodes in this process just stored, by digest; the least recently used go first past the limits.

    The bytes are the very ones hashed into their digest, so handing them to a
    node downstream is the same as reading the blob back, minus the read.
    """

    def __init__(self, budget: int | None = None, count: int | None = None) -> None:
        self.blobs: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0
        self.budget = FRESH_BYTES if budget is None else budget
        self.count = FRESH_COUNT if count is None else count

    def take(self, digest: str) -> bytes:
        """The bytes of a blob held here; it becomes the newest, so an input many nodes share stays."""
        self.blobs.move_to_end(digest)
        return self.blobs[digest]

    def add(self, blobs: dict[str, bytes]) -> None:
        for digest, data in blobs.items():
            if digest not in self.blobs:
                self.blobs[digest] = data
                self.size += len(data)
        while self.size > self.budget or len(self.blobs) > self.count:
            self.size -= len(self.blobs.popitem(last=False)[1])


class _Run:
    manifest: RunManifest
    def __init__(
        self,
        graph: WorkflowGraph,
        store: Store,
        planned: list[PlannedNode],
        folder: Path,
        executor: ExecutorHandle,
        force: bool,
        on_event: EventHandler | None,
        given: dict[str, Artifact] | None = None,
        outer: _Run | None = None,
    ) -> None:
        self.name = graph.name
        self.folder = folder
        self.given = dict(given or {})  # the artifacts of a sub-workflow's inputs
        self.outer = outer
        # Bytes that are not blobs: ephemeral outputs of this run (shared with sub-runs) and their producers.
        self.memory: dict[str, bytes] = outer.memory if outer is not None else {}
        # Small blobs nodes in this process just stored: handed to the nodes downstream directly.
        self.fresh: FreshBlobs = outer.fresh if outer is not None else FreshBlobs()
        # The outputs of this run's final nodes made in this process, for its result (not a sub-run's).
        self.kept: dict[str, bytes] = {}
        self.kept_bytes = 0
        self.producers: dict[str, str] = {}
        self.map_pending: dict[str, int] = {}
        self.store = store
        canonical = graph.canonical()
        self.canonical: bytes | None = canonical  # stored once by execute(), then dropped
        self.planned = {p.node_id: p for p in planned}
        self.order = [p.node_id for p in planned]
        self.executor = executor.executor
        self.handle = executor
        self.inline = executor.in_process
        self.stop_requested = False
        self.force = force
        self.on_event = on_event
        self.modules = tuple((str(folder.resolve()), m) for m in graph.modules)
        self.options = tuple(sorted(store.options.items()))
        children: dict[str, list[str]] = {}
        for p in planned:
            for parent in p.upstream:
                children.setdefault(parent, []).append(p.node_id)
        # Kept as tuples, and only for nodes that have children: a run holds this for its whole length.
        self.children: dict[str, tuple[str, ...]] = {node_id: tuple(c) for node_id, c in children.items()}
        del children
        self.manifest = RunManifest(
            run_id=new_run_id(),
            workflow=graph.name,
            workflow_digest=digest_of(canonical),
            base_dir=str(folder.resolve()),
            started=time.time(),
            parent=outer.manifest.run_id if outer is not None else None,
            owner=f"{hostname()}:{os.getpid()}",
        )
        self.last_checkpoint = 0.0
        self.checkpoint_every = MANIFEST_INTERVAL
        self.stale_keys: set[str] = set()
        self.pinned_files: dict[str, Artifact] = {}
        self.leases = Leases(store.io, self.manifest.run_id)  # one computation per action across runs
        self.lease_waits: dict[str, float] = {}  # node -> when to look again at another run's lease
        # On a remote store: writes go behind the computation (shared with sub-runs), and what the last
        # run of this workflow settled is checked at once before the first node starts.
        self.remote = store.io.remote
        self.writer: WriteBehind | None = (
            outer.writer if outer is not None else WriteBehind(store.io) if self.remote else None
        )
        self.known = Known()
        self.plan_found: dict[str, Planned] = {}
        self.entries: dict[str, bytes] = {}  # action key -> the bytes of its entry, where known (the next plan)
        self.settled_actions: dict[str, ActionResult] = outer.settled_actions if outer is not None else {}
        self.configs_stored: set[str] = outer.configs_stored if outer is not None else set()
        self.presence: Presence | None = outer.presence if outer is not None else None
        # While alone on the store: the actions in flight without a lease, leased all at once if another
        # run starts (see _handover); the lock orders that against nodes starting and finishing.
        self.unleased: set[str] = outer.unleased if outer is not None else set()
        self.solo_lock: threading.Lock = outer.solo_lock if outer is not None else threading.Lock()
        self.blobs_written: set[str] = outer.blobs_written if outer is not None else set()

    def execute(self) -> RunResult:
        try:
            self._begin()
        except Exception:
            # A store that fails before the first node (storing the workflow, configs, the first record) ends
            # the run as one failing later does: recorded as failed where the store still takes a record.
            self.manifest.status = "failed"
            self.manifest.finished = time.time()
            with suppress(Exception):
                self.store.runs.put(self.manifest)
            self._leave()
            raise
        return self._execute_nodes()

    def _begin(self) -> None:
        """Store what a replay needs (the workflow, functions, configs) and the run's first record."""
        functions = list({id(p.function): p.function for p in self.planned.values() if p.function}.values())
        early: list[Future[Any]] = []  # on a remote store, sent while the run finds out what is cached
        if self.canonical is not None:  # so the run can be replayed from the store alone
            if self.remote and self.outer is None:
                early.append(self.store.io.submit(self.store.blobs.put, self.canonical))
            else:
                self.store.blobs.put(self.canonical)
            self.canonical = None
        if self.remote and self.outer is None:
            early.extend(self.store.io.submit(self.store.functions.put, entry.spec) for entry in functions)
            functions = []
            try:
                if self.leases.enabled:  # alone on the store: no leases, and misses known from one listing
                    self.presence = Presence(self.store.io, self.manifest.run_id, self.leases.owner)
                    self.presence.start()
                self._prefetch()
            finally:
                errors = [error for future in early if (error := future.exception()) is not None]
            if errors:
                raise errors[0]
        elif self.outer is None and self.leases.enabled:
            # On local disk too a run alone takes no leases; when another run starts, this one's watch
            # thread leases what is in flight at once and says so (a lease there costs a link, not a round trip).
            self.presence = Presence(
                self.store.io, self.manifest.run_id, self.leases.owner, handover=self._handover, look=LOCAL_LOOK
            )
            self.presence.start()
        configs = {
            p.config_digest: p.config_json
            for node_id, p in self.planned.items()
            if p.kind not in ("input", "file") and p.config_digest not in self.configs_stored
            and not self._predicted_hit(node_id)  # a cached node's config is there: its entry names it
            and not self._carried(p)  # kept in the action entries of the node instead
        }
        self.store.io.gather(lambda item: self.store.configs.put_json(item[1], item[0]), list(configs.items()))
        self.configs_stored.update(configs)
        self.store.io.gather(lambda entry: self.store.functions.put(entry.spec), functions)
        for node_id in self.order:
            p = self.planned[node_id]
            record = self.manifest.nodes[node_id] = NodeRecord.pending(
                p.function.name if p.function else (p.inner.graph.name if p.inner else None),
                p.version or None,
                p.config_digest or None,
            )
            if p.cache != "use":
                record.cache = p.cache
        self.store.runs.put(self.manifest)
        self.last_checkpoint = time.monotonic()  # the next record is due an interval from now, not at once

    def _execute_nodes(self) -> RunResult:
        log.info("run %s: %s, %d nodes, executor %s, store %s", self.manifest.run_id, self.name,
                 len(self.order), self.handle.description, self.store.url)
        try:
            with self._sigint_stops_scheduling(), hooks_installed() if self.inline else nullcontext():
                self._loop()
        except KeyboardInterrupt:
            self._interrupted()
            raise
        except Exception:
            # An error out of the scheduling itself (a store gone, a file input that cannot be read) ends the
            # run: it is recorded as failed, not left "running"; if the store cannot take that either, the
            # record says "died" once this process is gone.
            self.manifest.status = "failed"
            with suppress(Exception):
                self._finish(failing=True)
            raise
        finally:
            self.leases.close()  # whatever ended the loop: no lease of this run outlives it
            if self.stop_requested or sys.exc_info()[0] is not None:
                self._leave()
        if self.stop_requested:
            self._interrupted()
            raise KeyboardInterrupt(f"run {self.manifest.run_id} interrupted")
        failed = any(r.status == "failed" for r in self.manifest.nodes.values())
        try:
            self._drain()  # a write behind that fails now fails the run, as one in line would have
        except Exception:
            self.manifest.status = "failed"
            with suppress(Exception):
                self._finish(failing=True)
            self._leave()
            raise
        self.manifest.status = "failed" if failed else "succeeded"
        try:
            self._finish()
        except Exception:  # the last record did not go in: the run failed, and says so if the store lets it
            self.manifest.status = "failed"
            with suppress(Exception):
                self.store.runs.put(self.manifest)
            self._leave()
            raise
        log.info("run %s %s: %s", self.manifest.run_id, self.manifest.status, self.manifest.counts())
        return RunResult(self.manifest, self.store, self.kept)

    def _prefetch(self) -> None:
        """Read the plan of this workflow's last run and confirm, at once, what it predicts (see _prefetch)."""
        try:
            self.plan_found = PlanStore(self.store.io).get(self.name)
            function_nodes = sum(1 for p in self.planned.values() if p.kind == "function")
            plan = {
                node_id: entry for node_id, entry in self.plan_found.items()
                if node_id.partition("[")[0] in self.planned  # "node[3]": an element of a mapped node
            }
            self.known = prefetch(self.store, plan, function_nodes - len(plan))
        except WfeError as exc:  # a hint only: without it every node takes the usual path
            log.warning("cannot check this workflow's last plan (%s); looking up node by node", exc)
            self.known = Known()
        self.entries.update(self.known.entries)

    def _predicted_hit(self, node_id: str) -> bool:
        planned = self.plan_found.get(node_id)
        return planned is not None and planned.key in self.known.hits

    def _interrupted(self) -> None:
        with suppress(Exception):
            self._drain()
        self.leases.release_all()  # what this run was computing, another may now take over
        self.manifest.status = "interrupted"
        self._finish()
        log.warning("run %s interrupted: %s", self.manifest.run_id, self.manifest.counts())

    @contextmanager
    def _sigint_stops_scheduling(self) -> Iterator[None]:
        """The first Ctrl-C stops scheduling and lets running nodes finish; the second aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only
            return

        def on_sigint(signum: int, frame: object) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            log.warning("interrupt: no new nodes will start; waiting for running ones (Ctrl-C again to abort)")

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _drain(self) -> None:
        """Wait for the writes behind: a run record must never name a blob that is not there yet."""
        if self.writer is not None:
            self.writer.drain()

    def _finish(self, *, failing: bool = False) -> None:
        """Write the final run record once the writes behind have landed (or, ``failing``, whatever they did)."""
        if failing:
            with suppress(Exception):
                self._drain()
        else:
            self._drain()
        self.manifest.finished = time.time()
        self.store.runs.put(self.manifest)
        if self.remote and self.outer is None:
            self._write_plan()
        self._leave()

    def _solo(self, key: str) -> bool:
        """Alone on the store (see _presence): the action ``key`` is computed without a lease, noted as such."""
        presence = self.presence
        if presence is None or not presence.solo:
            return False
        with self.solo_lock:
            if presence.solo:
                self.unleased.add(key)
                return True
        return False

    def _handover(self) -> None:
        """Another run started (called by the presence's watch thread): lease what is in flight, then share."""
        assert self.presence is not None
        with self.solo_lock:
            for key in sorted(self.unleased):
                self.leases.acquire(key)
            self.unleased.clear()
            self.presence.share(lambda: None)  # writes land in line here: none is behind

    def _let_go(self, key: str) -> None:
        """The action ``key`` is settled (its entry written) or given up: its lease goes, if it took one."""
        if key in self.unleased:
            with self.solo_lock:
                self.unleased.discard(key)
        self.leases.release(key)

    def _leave(self) -> None:
        """Remove this run's presence record, once its writes have landed (others may then trust the store)."""
        if self.presence is not None and self.outer is None:
            with suppress(Exception):
                self._drain()
            self.presence.stop()
            self.presence = None

    def _write_plan(self) -> None:
        """What this run settled, for the next run of the workflow to check at once (a hint: errors only warn)."""
        settled = ("ran", "cached")
        entries: dict[str, Planned] = {}
        for node_id, record in self.manifest.nodes.items():
            if record.status not in settled:
                continue
            if record.action_key and record.action_key in self.entries:
                entries[node_id] = Planned(record.action_key, self.entries[record.action_key])
            for index, element in enumerate(record.elements or ()):  # a mapped node's: "node[3]"
                key = element.get("action_key")
                if element.get("status") in settled and key in self.entries:
                    entries[f"{node_id}[{index}]"] = Planned(key, self.entries[key])
        if entries and entries != self.plan_found:
            try:
                PlanStore(self.store.io).put(self.name, entries)
            except WfeError as exc:
                log.warning("cannot write this workflow's plan (%s); the next run looks up node by node", exc)

    def _loop(self) -> None:
        waiting = {node_id: len(self.planned[node_id].upstream) for node_id in self.order}
        ready = deque(node_id for node_id in self.order if waiting[node_id] == 0)
        in_flight: dict[Future[TaskResult], Pending] = {}
        capacity = self.handle.capacity
        try:
            while ready or in_flight or self.lease_waits:
                if self.presence is not None and self.presence.newcomer.is_set():
                    self.presence.share(self._drain)  # another run started: from now on, leases
                ready.extend(self._leases_due())
                while ready and not self.stop_requested and (capacity is None or len(in_flight) < capacity):
                    node_id = ready.popleft()
                    submitted = self._start(node_id)
                    if submitted is None:
                        continue  # another run is computing it: looked at again shortly
                    if not submitted:
                        if self.manifest.nodes[node_id].status == "failed":
                            self._skip_descendants(node_id)
                        else:
                            self._release(node_id, waiting, ready)
                    else:
                        in_flight.update(submitted)
                if not in_flight:
                    if self.lease_waits and not self.stop_requested:
                        time.sleep(LEASE_POLL)
                        continue
                    break
                if self.stop_requested:
                    for future in in_flight:
                        future.cancel()  # queued ones never start; running ones finish and are kept
                done = [future for future in in_flight if future.done()]  # an inline task is done at once
                if not done:
                    done = list(wait(list(in_flight), timeout=POLL_INTERVAL, return_when=FIRST_COMPLETED)[0])
                for future in done:
                    pending = in_flight.pop(future)
                    node_id = pending.node_id
                    if future.cancelled():
                        self.manifest.nodes[node_id].status = "pending"
                        continue
                    if pending.element is None:
                        self._complete(node_id, pending.key, pending.inputs, future)
                    elif not units.complete_element(self, pending, future):
                        continue  # more elements of this mapped node are still running
                    if self.manifest.nodes[node_id].status in ("ran", "cached"):
                        self._release(node_id, waiting, ready)
                    else:
                        self._skip_descendants(node_id)
                self._checkpoint()
        except BaseException:
            for future in in_flight:
                future.cancel()
            for pending in in_flight.values():
                self.manifest.nodes[pending.node_id].status = "pending"
            raise

    def _release(self, node_id: str, waiting: dict[str, int], ready: deque[str]) -> None:
        for child in self.children.get(node_id, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)

    def _leases_due(self) -> list[str]:
        now = time.monotonic()
        due = [node_id for node_id, at in self.lease_waits.items() if at <= now]
        for node_id in due:
            del self.lease_waits[node_id]
        return due

    def _start(self, node_id: str) -> dict[Future[TaskResult], Pending] | None:
        """Settle a node at once (an empty result), submit its tasks, or (None) wait on another run's lease."""
        p = self.planned[node_id]
        record = self.manifest.nodes[node_id]
        record.started = time.time()
        if p.kind == "input":
            self.settle(node_id, [self.given[node_id]], "cached")
            return {}
        if p.kind == "file":
            self.settle(node_id, *self._ingest(node_id, p))
            return {}
        inputs = [self.manifest.nodes[src].outputs[index] for src, index in p.sources]
        record.inputs = inputs
        if p.kind == "map":
            return units.start_map(self, node_id, inputs)
        if p.kind in ("workflow", "loop"):
            units.run_unit(self, node_id, inputs)
            return {}
        assert p.function is not None
        spec = p.function.spec
        key = action_key(spec.name, spec.version, p.config_digest, [a.digest for a in inputs])
        record.action_key = key
        hit = self.lookup(key) if p.cache == "use" else None  # recompute and skip never look
        if hit is None and p.cache == "use" and not self.force and not self._solo(key):  # another may compute it
            claimed = self.leases.claim(key, lambda: self.lookup(key, exact=True))
            if isinstance(claimed, Waiting):
                self.lease_waits[node_id] = time.monotonic() + LEASE_POLL
                return None
            hit = claimed
        if hit is not None:
            self.settle(node_id, hit.outputs, "cached")
            return {}
        record.status = "running"
        self.emit(node_id, record)
        log.debug("node %s submitted (%s)", node_id, key)
        future = self.submit(node_id, inputs)
        if future is None:
            self._let_go(key)  # failed before it started: let another run try
            return {}
        return {future: Pending(node_id, key, inputs)}

    def _ingest(self, node_id: str, p: PlannedNode) -> tuple[list[Artifact], NodeStatus]:
        pinned = self.pinned_files.get(node_id)
        if pinned is not None and self.store.blobs.exists(pinned.digest):
            return [pinned], "cached"
        if p.file is None:  # planned not to be read, as its pinned blob was there then
            recorded = pinned.digest if pinned is not None else "a blob"
            raise WorkflowError(f"file node {node_id!r}: the run used {recorded}, which has gone from the store")
        # Planning checked it is a regular file; opened without blocking (a FIFO put there since would
        # wait for a writer) and without following a link put there since, then checked again.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            descriptor = os.open(p.file, flags)
            with os.fdopen(descriptor, "rb") as handle:
                check_regular(node_id, str(p.file), os.fstat(descriptor).st_mode)
                digest, size, created = self.store.blobs.put_new(handle)
        except StoreError:
            raise  # the store failed, not the file (StoreError is an OSError too)
        except OSError as exc:
            raise WorkflowError(f"file node {node_id!r}: cannot read {p.file}: {exc.strerror or exc}") from None
        if pinned is not None and digest != pinned.digest:
            raise WorkflowError(
                f"file node {node_id!r}: the run used {pinned.digest}, which is not in the store, "
                f"and {p.file} now holds {digest}"
            )
        return [Artifact(digest=digest, mime=p.mime or "application/octet-stream", size=size)], (
            "ran" if created else "cached"
        )

    def settle(self, node_id: str, outputs: list[Artifact], status: NodeStatus) -> None:
        record = self.manifest.nodes[node_id]
        record.outputs = outputs
        record.status = status
        record.duration = time.time() - (record.started or time.time())
        for artifact in outputs:
            if artifact.kind == "ephemeral":
                self.producers.setdefault(artifact.digest, node_id)
        self.emit(node_id, record)

    def lookup(self, key: str, *, exact: bool = False) -> ActionResult | None:
        """The cached result of an action whose stored outputs all still exist (else None, marked stale).

        Answered without a request where this run settled the action already,
        or the checks before the run confirmed it, or (unless ``exact``) the
        action cache was listed whole then and had no entry for it.
        """
        if self.force:
            return None
        hit = self.settled_actions.get(key) or self.known.hits.get(key)
        if hit is not None:
            return hit
        if not exact and self.known.action_keys is not None and key not in self.known.action_keys:
            return None
        found = self.store.actions.lookup_entry(key)
        if found is None:
            return None
        hit, data = found
        # A blob this run wrote, or is writing behind, is there for any node after it asks.
        stored = [a.digest for a in hit.outputs if a.stored and not self._written(a.digest)]
        if all(self.store.io.gather(self.store.blobs.exists, stored)):
            if self.remote:
                self.entries[key] = data
            return hit
        self.stale_keys.add(key)  # an output blob is gone: recompute and repair
        return None

    def _written(self, digest: str) -> bool:
        return digest in self.blobs_written or (self.writer is not None and self.writer.held(digest) is not None)

    def task(self, node_id: str, inputs: list[Artifact]) -> Task:
        p = self.planned[node_id]
        assert p.function is not None
        spec = p.function.spec
        fresh = self.fresh.blobs if self.inline else {}  # a worker process reads blobs itself
        writer = self.writer
        payloads = tuple(
            (a.digest, self.payload(a)) for a in inputs
            if not a.stored or a.digest in fresh or (writer is not None and writer.held(a.digest) is not None)
        )
        # In process, hand over the config too (the same canonical JSON its digest was taken of); a small one
        # to any executor, as it has no file of its own (see INLINE_CONFIG).
        config = p.config_json if self.inline or self._carried(p) else None
        return Task(
            node_id=node_id,
            function=spec.name,
            version=spec.version,
            config_digest=p.config_digest,
            inputs=tuple((a.digest, a.mime) for a in inputs),
            store_url=self.store.url,
            store_options=self.options,
            modules=self.modules,
            ref=p.function.ref,
            payloads=payloads if config is None else (*payloads, (p.config_digest, config)),
            defer=self.inline and self.writer is not None,
            keep=self.inline and self.outer is None and node_id not in self.children,
        )

    def payload(self, artifact: Artifact) -> bytes:
        """The bytes of an input that is not a blob; an ephemeral one lost to a restart is recomputed."""
        if artifact.kind == "inline":
            return element_bytes(artifact)
        if artifact.stored:
            if artifact.digest in self.fresh.blobs:
                return self.fresh.take(artifact.digest)
            held = self.writer.held(artifact.digest) if self.writer is not None else None
            return held if held is not None else self.store.blobs.get(artifact.digest)
        if artifact.digest not in self.memory:
            units.recompute(self, artifact.digest)
        return self.memory[artifact.digest]

    def submit(self, node_id: str, inputs: list[Artifact]) -> Future[TaskResult] | None:
        """Send a task to the executor; None (and the node failed) if it cannot be sent."""
        record = self.manifest.nodes[node_id]
        try:
            task = self.task(node_id, inputs)
            if self.inline:
                return self.executor.submit(run_task, task, self.store)
            return self.executor.submit(run_task, task)
        except (RuntimeError, WfeError) as exc:  # a broken executor, or an input that cannot be had
            record.status = "failed"
            record.error = f"cannot submit: {type(exc).__name__}: {exc}"
            record.duration = time.time() - (record.started or time.time())
            log.error("node %s: %s", node_id, record.error)
            self.emit(node_id, record)
            return None

    def result(self, node_id: str, future: Future[TaskResult]) -> TaskResult:
        try:
            result = future.result()
        except BaseException as exc:  # the executor itself failed (a worker died, say)
            if isinstance(exc, KeyboardInterrupt):
                raise
            started = self.manifest.nodes[node_id].started or time.time()
            result = TaskResult(node_id, None, started, 0.0, f"{type(exc).__name__}: {exc}")
        self.memory.update(result.payloads or {})
        self.fresh.add(result.fresh or {})
        for digest, data in (result.kept or {}).items():
            if self.kept_bytes + len(data) <= KEPT_BYTES and digest not in self.kept:
                self.kept[digest] = data
                self.kept_bytes += len(data)
        result.kept = None
        if result.outputs is None and result.unwritten:  # a failed node's log: still to be written
            self._behind(result.unwritten, lambda: None)
            result.unwritten = None
        return result

    def _behind(self, blobs: dict[str, bytes] | None, then: Callable[[], None]) -> None:
        """Write ``blobs``, then do ``then``: behind the run on a remote store, here and now otherwise."""

        written = self.blobs_written

        def job() -> None:
            for digest, data in (blobs or {}).items():
                if digest not in written:  # this run wrote it already, and gc keeps it while the run lives
                    self.store.blobs.put(data)
                    written.add(digest)
            then()

        if self.writer is None:
            job()
        else:
            self.writer.submit(job, blobs)

    def record_action(self, node_id: str, key: str, inputs: list[Artifact], result: TaskResult) -> None:
        """Publish the action entry (after the blobs it names), then release the action's lease.

        A node whose cache policy is ``skip`` has its blobs written (a node downstream, or
        the run's result, reads them by digest) but no entry; one whose policy is
        ``recompute`` replaces the entry, as every node of a forced run does.
        """
        p = self.planned[node_id]
        assert result.outputs is not None
        if p.cache == "skip":
            self._behind(result.unwritten, lambda: None)
            result.unwritten = None
            return
        carried = self._carried(p)
        action = ActionResult.construct(  # of parts this run made or checked
            outputs=result.outputs,
            function=p.function.name if p.function else f"workflow:{p.inner.graph.name if p.inner else ''}",
            version=p.version,
            config=p.config_digest,
            inputs=[a.digest for a in inputs],
            created=time.time(),
            duration=result.duration,
            config_json=p.config_json.decode("utf-8") if carried else None,
        )
        data = self.store.actions.encode(action)
        overwrite = self.force or p.cache == "recompute" or key in self.stale_keys
        config = None if carried or p.config_digest in self.configs_stored else (p.config_digest, p.config_json)
        if config is not None:
            self.configs_stored.add(p.config_digest)
        if self.writer is not None:  # until its entry lands, this run answers for it from memory
            self.settled_actions[key] = action

        def publish() -> None:
            if config is not None:  # the config of a node the plan predicted cached, which ran after all
                self.store.configs.put_json(config[1], config[0])
            if self.store.actions.put_encoded(key, data, overwrite=overwrite) and self.remote:
                self.entries[key] = data
            self._let_go(key)

        self._behind(result.unwritten, publish)
        result.unwritten = None

    def _complete(self, node_id: str, key: str, inputs: list[Artifact], future: Future[TaskResult]) -> None:
        record = self.manifest.nodes[node_id]
        result = self.result(node_id, future)
        record.duration = result.duration
        record.log = result.log
        if result.outputs is None:
            self._let_go(key)  # no result: another run may try
            record.status = "failed"
            record.error = result.error
            record.traceback = result.traceback
            log.info("node %s failed: %s", node_id, result.error)  # the run result and CLI show it in full
            self.emit(node_id, record)
            return
        log.info("node %s ran in %.3f s", node_id, result.duration)
        self.record_action(node_id, key, inputs, result)
        self.settle(node_id, result.outputs, "ran")
        record.duration = result.duration

    def _skip_descendants(self, node_id: str) -> None:
        stack = list(self.children.get(node_id, ()))
        while stack:
            child = stack.pop()
            record = self.manifest.nodes[child]
            if record.status == "pending":
                record.status = "skipped"
                record.error = f"upstream node {node_id!r} failed"
                self.emit(child, record)
                stack.extend(self.children.get(child, ()))

    def inner(self, graph: WorkflowGraph, planned: list[PlannedNode], folder: Path, given: dict[str, Artifact]) -> _Run:
        """A run of a sub-workflow (or a loop's iteration) inside this one, sharing its executor and memory."""
        return _Run(graph, self.store, planned, folder, self.handle, self.force, None, given, self)

    def _carried(self, p: PlannedNode) -> bool:
        """Whether the node's config goes into its action entries rather than a file of its own (see INLINE_CONFIG)."""
        return p.kind in ("function", "map") and p.cache != "skip" and len(p.config_json) <= INLINE_CONFIG

    def emit(self, node_id: str, record: NodeRecord) -> None:
        if record.status == "failed" and record.config is not None and record.config not in self.configs_stored:
            p = self.planned.get(node_id)  # a failed node writes no entry: its config is kept on its own
            if p is not None and p.config_digest == record.config:
                try:
                    self.store.configs.put_json(p.config_json, p.config_digest)
                    self.configs_stored.add(p.config_digest)
                except WfeError as exc:
                    log.warning("node %s: cannot store its config (%s)", node_id, exc)
        if self.on_event is not None:
            self.on_event(node_id, record)

    def _checkpoint(self) -> None:
        if self.writer is not None:
            self.writer.check()  # a write behind that failed fails the run now, as one in line would
        now = time.monotonic()
        if now - self.last_checkpoint >= self.checkpoint_every:
            self._drain()
            self.store.runs.put(self.manifest)
            self.last_checkpoint = time.monotonic()
            # Rewriting a large run's record takes a while: keep it to a twentieth of the run's time.
            self.checkpoint_every = max(MANIFEST_INTERVAL, 20 * (self.last_checkpoint - now))

