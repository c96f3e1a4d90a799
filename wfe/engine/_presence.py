"""Whether a run is alone on its store: if it is, its uncached nodes need no lease and no second lookup.

On an object store a lease costs a round trip before a node may start, and a
lookup another: on a chain, every node pays them one after another. They buy
something only when another run could be computing the same action at the
same time. So each run on such a store says it is there, with a small record
``leases/live/<run id>.json`` (``{"owner", "expires", "mode"}``, in the lease
format, so gc collects a crashed run's record as it does a stale lease):

- A run writes its record (mode ``starting``), then lists the others. If
  there are none, it is **solo**: it takes no leases, and an action the
  action cache's listing at the start did not have is a miss without asking
  (only this run writes to the cache while it is solo).
- Otherwise it is **shared** (it writes so) and, before computing anything,
  waits until every other run says ``shared`` too, or is gone: then every
  run that may compute what it computes takes leases and asks the store.
- A solo run looks at the records every second, in a helper thread. When
  another appears, the run finishes the node in hand, waits for its writes
  behind to land (so the newcomer finds them), and says ``shared``: from
  then on it takes leases too. The newcomer waits at most the lease expiry
  (5 min, a solo run busy in one long node) and then computes anyway, as a
  run waiting on a lease does.
- A record is refreshed every 10 s while its run lives; one 30 s old, or
  whose process on this host is gone, is a crashed run's and is ignored.

On local disk the same records are kept, but the hand-over does not wait
for the node in hand: the watch thread looks every 0.1 s and, when another
run appears, takes at once a lease on every action the run is computing
without one, then says ``shared`` (writes there are made in line, so none
is behind). The newcomer waits about that long, never for a long node.

Two runs that start at once each see the other (each writes before it
lists), so both are shared: "computed once" holds for every action two runs
reach at once, as with leases alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from .._errors import Damaged, StoreError
from ..storage._base import StorageIO
from ._lease import DEFAULT_TTL, PREFIX, LeaseInfo

LIVE = f"{PREFIX}/live"
BEAT = 10.0  # seconds between refreshes of a run's record
STALE = 30.0  # a record this much older than its last refresh is a crashed run's
LOOK = 1.0  # seconds between a solo run's looks for newcomers
LOCAL_LOOK = 0.1  # the same on local disk, where a look costs a folder listing and the hand-over no round trip
WAIT_POLL = 0.2  # seconds between a newcomer's looks at a solo run's mode
UNKNOWN = "unknown"  # the mode of a record that could not be read

log = logging.getLogger(__name__)


class Presence:
    """This run's record among the live runs of a store, and whether it is alone there."""

    def __init__(
        self,
        storage: StorageIO,
        run_id: str,
        owner: str,
        *,
        handover: Callable[[], None] | None = None,
        look: float = LOOK,
    ) -> None:
        self._io = storage
        self._handover = handover  # called by the watch thread itself when another run appears
        self._look = look
        self._rel = f"{LIVE}/{run_id}.json"
        self._owner = owner
        self.mode = "starting"
        self.newcomer = threading.Event()  # set by the helper thread when another run appears
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def solo(self) -> bool:
        return self.mode == "solo"

    def start(self, wait: float = DEFAULT_TTL) -> None:
        """Say this run is here; be solo if no other run is, else shared once the others are (at most ``wait`` s)."""
        self._write()
        others = self._others()
        self.mode = "solo" if not others else "shared"
        self._write()
        if others:
            log.info("another run is live on this store (%s): taking leases", ", ".join(sorted(others)))
            self._wait_until_shared(others, time.monotonic() + wait)
        self._thread = threading.Thread(target=self._watch, name="wfe-presence", daemon=True)
        self._thread.start()

    def share(self, drain: Callable[[], None]) -> None:
        """Stop being solo: let the writes behind land (``drain``), then say so."""
        if self.mode != "solo":
            return
        drain()
        self.mode = "shared"
        self._write()
        log.info("another run started on this store: taking leases from now on")

    def stop(self) -> None:
        """The run is over: stop looking and remove the record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._look + 5)
        try:
            self._io.remove(self._rel)
        except StoreError as exc:
            log.warning("cannot remove %s (%s); it expires by itself", self._rel, exc)

    def _write(self) -> None:
        with self._lock:
            record = {"owner": self._owner, "expires": time.time() + STALE, "mode": self.mode}
            self._io.write_bytes(self._rel, json.dumps(record).encode("utf-8"))

    def _others(self) -> dict[str, str]:
        """The live runs other than this one, with the mode each says it is in."""
        found: dict[str, str] = {}
        now = time.time()
        for listed in self._io.list_page(LIVE, limit=1000).objects:
            if listed.rel == self._rel:
                continue
            mode = self._mode(listed.rel, now)
            if mode is not None:
                found[listed.rel] = mode
        return found

    def _mode(self, rel: str, now: float) -> str | None:
        """The mode the run at ``rel`` says it is in; None if it is gone or crashed."""
        try:
            document = json.loads(self._io.read_bytes(rel, 4096))
            if not LeaseInfo(str(document["owner"]), float(document["expires"])).live(now):
                return None
            return str(document.get("mode", "shared"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError, Damaged, StoreError):
            return UNKNOWN  # unreadable now: counted as a live run, and waited for, until its record says more

    def _wait_until_shared(self, others: dict[str, str], deadline: float) -> None:
        waiting = {rel for rel, mode in others.items() if mode != "shared"}
        while waiting and time.monotonic() < deadline:
            time.sleep(min(WAIT_POLL, self._look))
            now = time.time()
            waiting = {rel for rel in waiting if self._mode(rel, now) not in (None, "shared")}
        if waiting:
            log.warning("runs %s did not start taking leases in time; computing anyway", ", ".join(sorted(waiting)))

    def _watch(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self._look):
            try:
                if self.mode == "solo" and not self.newcomer.is_set() and self._others():
                    if self._handover is not None:
                        self._handover()
                    else:
                        self.newcomer.set()
                if time.monotonic() - last_beat >= BEAT:
                    self._write()
                    last_beat = time.monotonic()
            except StoreError as exc:  # the run's own requests will say what is wrong
                log.debug("presence: %s", exc)
