"""A lease per action key, so runs that reach the same uncached action at once compute it once.

A lease is a small record at ``leases/<hex>.json`` (``{"owner", "expires"}``)
created with an exclusive write, which the backend itself refuses when the
key exists: ``O_EXCL`` on local disk, ``If-None-Match: *`` on S3, a
create-only move on Supabase (the lease is uploaded aside, then moved). Backends without such a write, and stores
no other process can see, get no leases: every run computes, and the action
cache's first-write-wins keeps results consistent either way.

On local disk a lease is a hard link, made with one system call, to a
file its run writes once (``leases/owners/<token>.json``): a new file per
action would cost a run about twice as much, most of it in making the
file. Such a lease says ``"ttl"`` as well, and stays live until ``ttl``
seconds after its owner file was last touched, which the run does as it
takes leases; a run's leases thus expire together, ``ttl`` after it last
took one. Elsewhere each lease is its own small file.

Leases only save work; they are never needed for correctness. A waiter
never blocks its run (it asks again between other work), gives up after
at most ``ttl`` seconds and computes anyway. A lease whose owner crashed is
stale once expired, or at once if the owner was a process on this host
that no longer exists; a stale lease is taken over, and ``wfe gc``
deletes stale ones (and the owner files of runs that are gone).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .._errors import Damaged, NoHardLink, StoreError
from ..storage._base import StorageIO
from ..store._digest import hex_of
from ..store._records import MAX_RECORD_BYTES
from ._host import hostname, process_alive

PREFIX = "leases"


OWNERS = f"{PREFIX}/owners"  # one file per run, which that run's leases on local disk are hard links to


DEFAULT_TTL = 300.0  # seconds a holder may compute before others stop waiting for it


POLL = 0.2  # seconds between looks at the action cache while another run holds the lease


WRITE_GRACE = 10.0  # seconds an unparsable lease (being written, or torn by a crash) counts as held


log = logging.getLogger(__name__)


T = TypeVar("T")


class Waiting:
    """What :meth:`Leases.claim` returns while another run holds the lease."""

    def __repr__(self) -> str:
        return "WAITING"


WAITING = Waiting()


@dataclass(frozen=True)
class LeaseInfo:
    owner: str  # host:pid:run
    expires: float

    def live(self, now: float) -> bool:
        """Unexpired, and (if taken on this host) its process still exists: a killed run's lease is stale."""
        if self.expires <= now:
            return False
        host, _, rest = self.owner.partition(":")
        return process_alive(host, rest.partition(":")[0]) is not False


def lease_path(key: str) -> str:
    # One flat folder: leases live only while their action computes, so it stays small, and a
    # fresh store is spared a fan-out folder per lease (a mkdir costs as much as several files).
    return f"{PREFIX}/{hex_of(key)}.json"


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
        self.owner = f"{hostname()}:{os.getpid()}:{owner}"
        self.ttl = ttl
        self.enabled = supports_leases(storage)
        self._held: dict[str, float] = {}  # key -> our lease's expiry
        self._deadlines: dict[str, float] = {}  # key -> when to stop waiting for another owner
        self._linking = self.enabled and storage.hard_links
        self._owner_file: str | None = None  # what our leases link to, once the first is taken
        self._touched = 0.0  # when the owner file's time was last set

    @property
    def owner(self) -> str:
        """``host:pid:run``: who holds the leases this object takes."""
        return self._owner

    @owner.setter
    def owner(self, value: str) -> None:
        self._owner = value
        self._owner_json = json.dumps(value)  # as it goes into every lease, encoded once

    def acquire(self, key: str, now: float | None = None) -> bool:
        """Take the lease for ``key``; False if another owner holds an unexpired one.

        An expired lease is deleted and the create retried once; if another
        run takes it over in between, that run holds it (False).
        """
        if not self.enabled:
            return True
        now = time.time() if now is None else now
        rel = lease_path(key)
        try:
            for _attempt in range(2):
                if self._create(rel, now):
                    self._held[key] = now + self.ttl
                    return True
                current = self.holder(key)
                if current is not None and current.owner == self.owner:
                    self._held[key] = current.expires  # ours already (the same action twice in one run)
                    return True
                if current is not None and current.live(now):
                    return False
                if current is not None:
                    log.info("lease for %s held by %s is stale; taking it over", key, current.owner)
                self._io.delete(rel)
        except StoreError as exc:
            log.warning("lease for %s unavailable (%s); computing without one", key, exc)
            return True
        return False

    def _create(self, rel: str, now: float) -> bool:
        """Create the lease at ``rel`` unless it exists: a link to our owner file, or a file of its own."""
        if self._linking:
            try:
                return self._link(rel, now)
            except NoHardLink as exc:  # a filesystem without hard links: a file per lease from now on
                log.debug("leases as files, not links: %s", exc)
                self._linking = False
                self._drop_owner_file()
        data = f'{{"owner": {self._owner_json}, "expires": {now + self.ttl!r}}}'.encode()  # json.dumps' bytes
        return self._io.create_small(rel, data)

    def _link(self, rel: str, now: float) -> bool:
        owner_file = self._owner_file
        try:
            if owner_file is None:
                owner_file = self._new_owner_file(now)
            elif now - self._touched >= self.ttl / 4:  # keep every lease we hold from expiring
                self._io.touch(owner_file, now)
                self._touched = now
            return self._io.link_new(owner_file, rel)
        except (FileNotFoundError, NoHardLink):
            # Our owner file was collected (it looked stale), or has all the links it can take.
            return self._io.link_new(self._new_owner_file(now), rel)

    def _new_owner_file(self, now: float) -> str:
        rel = f"{OWNERS}/{os.urandom(8).hex()}.json"
        data = f'{{"owner": {self._owner_json}, "expires": {now + self.ttl!r}, "ttl": {self.ttl!r}}}'.encode()
        self._io.create_small(rel, data)
        self._io.touch(rel, now)
        previous, self._owner_file, self._touched = self._owner_file, rel, now
        if previous is not None:  # the leases linked to it keep its contents
            self._io.delete(previous)
        return rel

    def holder(self, key: str) -> LeaseInfo | None:
        """The current lease for ``key``, or None if there is none."""
        try:
            return read_lease(self._io, lease_path(key))
        except FileNotFoundError:
            return None

    def claim(self, key: str, cached: Callable[[], T | None]) -> T | Waiting | None:
        """Decide, without blocking, what to do about an uncached action.

        Returns None if this run now holds the lease (compute it), the result
        from ``cached()`` if it appeared (another run computed it), or
        :data:`WAITING` if another run holds an unexpired lease: ask again
        after ``POLL`` seconds. A lease released without a result, or expired,
        is taken over. After ``ttl`` seconds of asking, None: compute anyway.
        Not blocking matters: a coordinator holding leases of its own must
        not stall on another's, or two runs could wait on each other.
        """
        if not self.enabled:
            return None
        now = time.monotonic()
        first = key not in self._deadlines
        deadline = self._deadlines.setdefault(key, now + self.ttl)
        if not first:
            result = cached()
            if result is not None:
                del self._deadlines[key]
                return result
            current = self.holder(key)
            if current is not None and current.live(time.time()) and now < deadline:
                return WAITING
        if self.acquire(key):
            del self._deadlines[key]
            result = cached()  # the holder may have finished just before we took the lease
            if result is not None:
                self.release(key)
            return result
        if now >= deadline:
            del self._deadlines[key]
            log.warning("waited %.0f s for action %s; computing it here too", self.ttl, key)
            return None
        if first:
            log.info("action %s is being computed by another run; waiting for it", key)
        return WAITING

    def release(self, key: str) -> None:
        """Delete our lease on ``key``, if we hold one; never someone else's."""
        expires = self._held.pop(key, None)
        if expires is None:
            return
        try:
            # Before our expiry no one can have taken it over (and we are alive): no need to read it first.
            current = None if time.time() < expires else self.holder(key)
            if current is None or current.owner == self.owner:
                self._io.remove(lease_path(key))
        except StoreError as exc:
            log.warning("cannot release the lease for %s (%s); it expires by itself", key, exc)

    def release_all(self) -> None:
        """Release every lease this owner holds (on interrupt)."""
        for key in list(self._held):
            self.release(key)

    def close(self) -> None:
        """Release every lease still held and delete the owner file: the run is over."""
        self.release_all()
        self._drop_owner_file()

    def _drop_owner_file(self) -> None:
        if self._owner_file is not None:
            try:
                self._io.delete(self._owner_file)
            except StoreError as exc:
                log.warning("cannot delete %s (%s); wfe gc will", self._owner_file, exc)
            self._owner_file = None


def expired_leases(storage: StorageIO, now: float | None = None) -> Iterator[str]:
    """Paths of leases that are stale (expired, or their process gone) or unreadable: for gc to delete."""
    now = time.time() if now is None else now
    for rel in storage.walk(PREFIX):
        try:
            lease = read_lease(storage, rel)
        except FileNotFoundError:
            continue
        if not lease.live(now):
            yield rel


def read_lease(storage: StorageIO, rel: str) -> LeaseInfo:
    """The lease at ``rel`` (FileNotFoundError if none).

    A lease is created in place, so it can be read empty or half written for
    an instant: one that cannot be parsed counts as live for ``WRITE_GRACE``
    seconds after it was last modified, and as expired after that. So does
    one that is no lease at all (a link, a FIFO, too large, nested too deep
    to parse): it is never followed or read whole, and gc then deletes it.
    """
    try:
        data: bytes | None = storage.read_bytes(rel, MAX_RECORD_BYTES)
    except Damaged:
        data = None
    try:
        if data is None:
            raise ValueError("not a lease")
        document = json.loads(data)
        lease = LeaseInfo(str(document["owner"]), float(document["expires"]))
        if "ttl" not in document:
            return lease
        # A link to an owner file: live until ``ttl`` after the owner last touched it.
        touched = storage.modified(rel)
        return LeaseInfo(lease.owner, max(lease.expires, (touched or 0.0) + float(document["ttl"])))
    except (ValueError, KeyError, TypeError, RecursionError):
        try:
            modified = storage.modified(rel)
        except (FileNotFoundError, StoreError):
            modified = None
        return LeaseInfo("unreadable", (modified or 0.0) + WRITE_GRACE)
