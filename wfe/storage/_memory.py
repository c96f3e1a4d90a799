"""``memory://``: a store in this process's memory."""

from __future__ import annotations

import threading
from typing import IO

from ._base import SpooledStaging, Staging, StorageIO


class MemoryIO(StorageIO):
    """``memory://``: one process only; a single write appears on close."""

    atomic_upload = True
    shared = False
    exclusive_publish = True
    remote = False  # a call costs microseconds: nothing to gain from sending them together
    _publish_lock = threading.Lock()  # one process: a lock makes check-then-write one step

    def stage(self) -> Staging:
        return _LockedStaging(self, self._publish_lock)

    def _put(self, local: IO[bytes], path: str, size: int) -> None:
        # put_file on memory:// makes the file visible empty, then fills it; one pipe_file
        # swaps in the whole object at once (the bytes live in this process's memory anyway).
        local.seek(0)
        self.fs.pipe_file(path, local.read())


class _LockedStaging(SpooledStaging):
    def __init__(self, storage: StorageIO, lock: threading.Lock) -> None:
        super().__init__(storage)
        self._lock = lock

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        with self._lock:
            return super().publish(rel, exclusive=exclusive)
