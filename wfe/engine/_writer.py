"""Writes that go behind the computation on a remote store, in order per node, a bounded number at once.

When a node has run, what remains is bookkeeping: its small output blobs,
its action entry, the release of its lease. On an object store each is a
round trip; waiting for them would put three or four round trips between
one node and the next. Instead each node's writes become one job, run on
the store's request threads while the run goes on:

- a job writes in order: the blobs first, then the action entry, then the
  lease goes; so an action entry is never published before every blob it
  names, and a run killed with jobs queued leaves at most blobs no entry
  names (which gc collects), never an entry pointing at nothing;
- the run drains the queue before it writes its run record (at every
  checkpoint and at the end), so a run record never names a blob that is
  not there yet;
- blobs not yet written are kept in memory (:meth:`WriteBehind.held`) for
  the nodes downstream in this process;
- at most ``limit`` jobs wait at once: past that, the run waits for the
  oldest, so memory stays bounded however fast nodes finish;
- the first error of a job is raised in the run at the next :meth:`check`
  or :meth:`drain`, and the run fails as it would have had the write been
  made in line.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from ..storage._base import StorageIO

LIMIT = 256  # jobs waiting at once


class WriteBehind:
    def __init__(self, storage: StorageIO, limit: int = LIMIT) -> None:
        self._storage = storage
        self._limit = limit
        self._jobs: deque[Future[None]] = deque()
        self._held: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None], held: dict[str, bytes] | None = None) -> None:
        """Run ``job`` behind; ``held``: blobs it writes, readable here (by digest) until it has."""
        self.check()
        while len(self._jobs) >= self._limit:
            self._wait(self._jobs.popleft())
        if held:
            with self._lock:
                self._held.update(held)

        def run() -> None:
            try:
                job()
            except BaseException as exc:
                with self._lock:
                    if self._error is None:
                        self._error = exc
                raise
            finally:
                if held:
                    with self._lock:
                        for digest in held:
                            self._held.pop(digest, None)

        self._jobs.append(self._storage.submit(run))
        while self._jobs and self._jobs[0].done():
            self._wait(self._jobs.popleft())

    def held(self, digest: str) -> bytes | None:
        """The bytes of a blob a queued job has still to write, if any."""
        with self._lock:
            return self._held.get(digest)

    def check(self) -> None:
        """Raise the first error a job met since the last check, if one has (raised once: the run then fails)."""
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def drain(self) -> None:
        """Wait for every queued job; then raise the first error, if any."""
        while self._jobs:
            self._wait(self._jobs.popleft())
        self.check()

    def _wait(self, job: Future[None]) -> None:
        job.exception()  # recorded by the job itself; raised by check()

    def __len__(self) -> int:
        return len(self._jobs)
