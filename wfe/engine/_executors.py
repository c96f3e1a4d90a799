"""Executors a run can use: ``inline``, ``threads``, ``processes``, ``dask[://scheduler-address]``.

Every executor is a :class:`concurrent.futures.Executor`, so the coordinator
schedules the same way whatever runs the tasks. Tasks carry digests and the
store URL, so an executor outside this process needs a store that other
processes can open (not ``memory://``); that is checked before anything runs.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures._base import FINISHED
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

from .._errors import ExecutorError

log = logging.getLogger(__name__)

KINDS = ("inline", "threads", "processes", "dask")
MAX_POOL_RESTARTS = 8  # a pool broken by a dying worker is replaced, but not forever
SHUTDOWN_GRACE = 5.0  # seconds a pool shut down without waiting is given to let its manager thread end


class InlineExecutor(Executor):
    """Runs each task at submit time, in this thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        try:
            return Finished(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            return Finished(exception=exc)


class Finished(Future[Any]):
    """A future finished when made: what running at submit time gives, without a lock and wake-up per task.

    ``concurrent.futures.wait`` and ``as_completed`` still work on it: they
    find it finished (its state says so) and never wait on its condition.
    """

    _condition = threading.Condition()  # shared: a finished future is never waited on, only looked at

    def __init__(self, result: Any = None, exception: BaseException | None = None) -> None:
        self._state = FINISHED
        self._result = result
        self._exception = exception
        self._waiters: list[Any] = []

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._exception


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``--executor`` value."""

    kind: str
    address: str | None = None

    @property
    def in_process(self) -> bool:
        """True if tasks run in this process (and may share the coordinator's store object)."""
        return self.kind in ("inline", "threads")


def parse_executor(value: str) -> ExecutorSpec:
    """``inline``, ``threads``, ``processes``, ``dask`` or ``dask://host:port``; ExecutorError otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    if text in KINDS:
        return ExecutorSpec(text)
    if text.startswith("dask://"):
        address = text[len("dask://") :]
        if not address:
            return ExecutorSpec("dask")
        if "://" not in address:  # a bare host:port means the scheduler's default protocol
            address = "tcp://" + address
        return ExecutorSpec("dask", address)
    raise ExecutorError(f"unknown executor {value!r}: use inline, threads, processes, dask or dask://HOST:PORT")


def check_jobs(jobs: int | None) -> int | None:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ExecutorError(f"--jobs must be a positive whole number, got {jobs!r}")
    return jobs


def check_store(spec: ExecutorSpec, shared: bool, url: str) -> None:
    """Refuse a store that exists in this process only with an executor that runs elsewhere."""
    if not spec.in_process and not shared:
        raise ExecutorError(
            f"store {url} exists only in this process, so the {spec.kind} executor cannot reach it; "
            "use a file, s3 or other shared store, or --executor inline|threads"
        )


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the coordinator alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class RestartingProcessPool(Executor):
    """A process pool that replaces itself when a worker dies.

    The futures in flight when a worker dies fail with ``BrokenProcessPool``
    (their nodes are recorded as failed); later submissions go to a fresh
    pool, so one crashing node cannot stall or sink the rest of the run.
    """

    def __init__(self, max_workers: int | None) -> None:
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._restarts = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        from concurrent.futures import ProcessPoolExecutor  # multiprocessing loads only when used

        return ProcessPoolExecutor(max_workers=self._max_workers, initializer=_ignore_sigint)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        from concurrent.futures.process import BrokenProcessPool

        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                if self._restarts >= MAX_POOL_RESTARTS:
                    raise
                self._restarts += 1
                log.warning("a worker process died; starting a new process pool (%d)", self._restarts)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pool = self._pool
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if not wait:
            # Let the pool's manager thread end now (it does once no task runs, which after Ctrl-C the
            # runner has waited for): left running into interpreter exit, CPython 3.11's exit hook can
            # write to the wake-up pipe the thread has just closed, a traceback on a clean exit.
            # A second Ctrl-C still interrupts the wait.
            manager = getattr(pool, "_executor_manager_thread", None)
            if isinstance(manager, threading.Thread):
                manager.join(SHUTDOWN_GRACE)


class _DaskFuture(Future[Any]):
    """A concurrent.futures Future mirroring a distributed Future (so ``wait`` works on it)."""

    def __init__(self, remote: Any) -> None:
        super().__init__()
        self.remote: Any = remote

    def cancel(self) -> bool:
        if self.remote is not None:
            self.remote.cancel()
        return super().cancel()


class DaskExecutor(Executor):
    """Runs tasks on a ``distributed`` cluster: a fresh LocalCluster, or the scheduler at ``address``."""

    def __init__(self, address: str | None, jobs: int | None) -> None:
        try:
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise ExecutorError(
                "the dask executor needs dask.distributed: pip install 'wfe[dask]'"
            ) from None
        self._cluster: Any = None
        self.client: Any = None
        self._live: set[_DaskFuture] = set()
        self._lock = threading.Lock()
        try:
            if address is None:
                workers = jobs or os.cpu_count() or 1
                log.info("starting a local dask cluster with %d worker processes", workers)
                # loopback only; the scheduler's HTTP endpoint on a free port (not 8787) and no dashboard
                self._cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                )
                self.client = distributed.Client(self._cluster)
            else:
                log.info("connecting to the dask scheduler at %s", address)
                # the connect timeout is dask's (distributed.comm.timeouts.connect, default 30 s)
                self.client = distributed.Client(address)
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            where = address or "a local cluster"
            raise ExecutorError(f"cannot reach dask scheduler {where}: {exc}") from None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        remote: Any = self.client.submit(fn, *args, pure=False, **kwargs)
        future = _DaskFuture(remote)
        with self._lock:
            self._live.add(future)  # a distributed Future that is dropped gets its task released
        remote.add_done_callback(lambda _: self._settle(future))
        return future

    def _settle(self, future: _DaskFuture) -> None:
        with self._lock:
            self._live.discard(future)
        if future.cancelled():
            return
        remote: Any = future.remote
        try:
            if remote.status == "finished":
                future.set_result(remote.result())
            elif remote.status == "cancelled":
                future.set_exception(ExecutorError("the dask task was cancelled"))
            else:
                future.set_exception(remote.exception() or ExecutorError(f"dask task {remote.status}"))
        except BaseException as exc:  # fetching the result can fail too (lost worker)
            if not future.done():
                future.set_exception(exc)
        finally:
            # the small TaskResult is copied here; let the cluster forget the task
            future.remote = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                live = list(self._live)
            for future in live:
                future.cancel()
        try:
            self.client.close()
        finally:
            self._close_cluster()

    def _close_cluster(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()


@dataclass
class ExecutorHandle:
    """An executor and whether tasks run in this process; ``close`` shuts down what was built here."""

    executor: Executor
    in_process: bool
    owned: bool = True
    description: str = ""
    # Tasks the coordinator keeps submitted at once: enough to keep every worker busy, and no more,
    # so a wide fan-out does not hold every finished node's result in memory before settling it.
    capacity: int | None = None
    _closed: bool = field(default=False, repr=False)

    def close(self, *, cancel: bool = False) -> None:
        if self.owned and not self._closed:
            self._closed = True
            self.executor.shutdown(wait=not cancel, cancel_futures=cancel)


def build_executor(spec: str | ExecutorSpec, jobs: int | None, *, shared: bool = True, url: str = "") -> ExecutorHandle:
    """Build the executor ``spec`` names with up to ``jobs`` workers (default: one per CPU).

    Raises ExecutorError for an unknown name, a bad ``jobs``, a store other
    processes cannot open with ``processes``/``dask``, a missing dask, or an
    unreachable scheduler.
    """
    parsed = spec if isinstance(spec, ExecutorSpec) else parse_executor(spec)
    check_jobs(jobs)
    check_store(parsed, shared, url)
    if parsed.kind == "inline":
        return ExecutorHandle(InlineExecutor(), True, description="inline", capacity=1)
    if parsed.kind == "threads":
        workers = jobs or min(32, (os.cpu_count() or 1) + 4)
        return ExecutorHandle(ThreadPoolExecutor(workers, thread_name_prefix="wfe"), True,
                              description=f"threads ({workers})", capacity=2 * workers)
    if parsed.kind == "processes":
        workers = jobs or os.cpu_count() or 1
        return ExecutorHandle(RestartingProcessPool(workers), False, description=f"processes ({workers})",
                              capacity=2 * workers)
    executor = DaskExecutor(parsed.address, jobs)
    return ExecutorHandle(executor, False, description=f"dask ({parsed.address or 'local cluster'})")


def wrap_executor(executor: Executor, *, shared: bool = True, url: str = "") -> ExecutorHandle:
    """Adopt an executor the caller built (and will shut down); a process pool needs a shared store."""
    in_process = isinstance(executor, (InlineExecutor, ThreadPoolExecutor))
    if not in_process and not shared:
        raise ExecutorError(
            f"store {url} exists only in this process, so a {type(executor).__name__} cannot reach it"
        )
    capacity = 1 if isinstance(executor, InlineExecutor) else None
    return ExecutorHandle(executor, in_process, owned=False, description=type(executor).__name__, capacity=capacity)
