"""A lease per action key, so runs that reach the same uncached action at once compute it once.

A lease is a small record at ``leases/ab/<hex>.json`` (``{"owner", "expires"}``)
created with an exclusive write, which the backend itself refuses when the
key exists: a hard link on local disk, ``If-None-Match: *`` on S3, a
create-only upload on Supabase. Backends without such a write, and stores
no other process can see, get no leases: every run computes, and the action
cache's first-write-wins keeps results consistent either way.

Leases only save work; they are never needed for correctness. A waiter
gives up after the holder's expiry (at most ``ttl`` seconds) and computes
anyway; a lease whose owner crashed is taken over once expired, and
``wfe gc`` deletes expired ones.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ._digest import hex_of
from ._errors import StoreError
from ._fsio import StorageIO

PREFIX = "leases"
DEFAULT_TTL = 300.0  # seconds a holder may compute before others stop waiting for it
POLL = 0.2  # seconds between looks at the action cache while another run holds the lease

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LeaseInfo:
    owner: str
    expires: float


def lease_path(key: str) -> str:
    hexdigest = hex_of(key)
    return f"{PREFIX}/{hexdigest[:2]}/{hexdigest[2:]}.json"


def supports_leases(storage: StorageIO) -> bool:
    """True if the backend refuses a second exclusive create and other processes share the store."""
    return bool(storage.shared and (storage.conditional_create or storage.exclusive_publish))


class Leases:
    """Acquire, wait on and release leases for one owner (a run).

    Storage errors while handling a lease are logged and treated as "no
    lease": the run goes on and computes, as it would without leases.
    """

    def __init__(self, storage: StorageIO, owner: str, *, ttl: float = DEFAULT_TTL) -> None:
        self._io = storage
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{owner}"
        self.ttl = ttl
        self.enabled = supports_leases(storage)
        self._held: set[str] = set()

    def acquire(self, key: str, now: float | None = None) -> bool:
        """Take the lease for ``key``; False if another owner holds an unexpired one.

        An expired lease is deleted and the create retried once; if another
        run takes it over in between, that run holds it (False).
        """
        if not self.enabled:
            return True
        now = time.time() if now is None else now
        rel = lease_path(key)
        data = json.dumps({"owner": self.owner, "expires": now + self.ttl}).encode()
        try:
            for _attempt in range(2):
                if self._io.write_bytes(rel, data, exclusive=True):
                    self._held.add(key)
                    return True
                current = self.holder(key)
                if current is not None and current.expires > now:
                    return False
                if current is not None:
                    log.info("lease for %s held by %s expired; taking it over", key, current.owner)
                self._io.delete(rel)
        except StoreError as exc:
            log.warning("lease for %s unavailable (%s); computing without one", key, exc)
            return True
        return False

    def holder(self, key: str) -> LeaseInfo | None:
        """The current lease for ``key``, or None if there is none (or it cannot be read)."""
        try:
            document = json.loads(self._io.read_bytes(lease_path(key)))
            return LeaseInfo(str(document["owner"]), float(document["expires"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def claim(self, key: str, cached: Callable[[], T | None]) -> T | None:
        """Own ``key``'s lease (None: compute) or wait for the holder's result (returned when it appears).

        While another owner holds the lease, ``cached()`` is polled every
        ``POLL`` seconds; when the lease is released without a result, or
        expires, this run tries to take it over. The wait never exceeds
        ``ttl`` seconds in all: then it returns None and the caller computes.
        """
        if not self.enabled:
            return None
        deadline = time.monotonic() + self.ttl
        while True:
            if self.acquire(key):
                result = cached()  # the holder may have finished just before releasing
                if result is not None:
                    self.release(key)
                return result
            log.info("action %s is being computed by another run; waiting for it", key)
            while time.monotonic() < deadline:
                time.sleep(POLL)
                result = cached()
                if result is not None:
                    return result
                current = self.holder(key)
                if current is None or current.expires <= time.time():
                    break  # released without a result, or expired: try to take it over
            else:
                log.warning("waited %.0f s for action %s; computing it here too", self.ttl, key)
                return None

    def release(self, key: str) -> None:
        """Delete our lease on ``key``, if we hold one; never someone else's."""
        if key not in self._held:
            return
        self._held.discard(key)
        current = self.holder(key)
        if current is None or current.owner != self.owner:
            return
        try:
            self._io.delete(lease_path(key))
        except StoreError as exc:
            log.warning("cannot release the lease for %s (%s); it expires by itself", key, exc)


def expired_leases(storage: StorageIO, now: float | None = None) -> Iterator[str]:
    """Paths of leases whose expiry has passed, or that cannot be read (for gc to delete)."""
    now = time.time() if now is None else now
    for rel in storage.walk(PREFIX):
        try:
            document = json.loads(storage.read_bytes(rel))
            expires = float(document["expires"])
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, TypeError):
            expires = 0.0
        if expires <= now:
            yield rel
