"""The runs list, newest first, a page at a time, reading only the run records a page shows.

Run ids begin with their UTC start time (``20261126T130501123Z-3f2a1c``), so
the sorted names under ``runs/`` are the runs in order of start: one listing
(one request per 1,000 runs on S3 and Supabase Storage) says which records a
page needs, and only those are read. A finished run's record no longer
changes, so its summary is kept in memory once read: later pages, filters and
the artifact page read each record at most once. A listing is reused for
:data:`LISTING_TTL` seconds and then brought up to date by listing only the
names after the newest one known (one request); every :data:`FULL_LISTING`
seconds the whole listing is taken again, which drops runs that gc removed.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .._errors import InvalidNameError, NotFoundError, WfeError
from ..ops._history import RunSummary
from ..store._manifest import RunManifest
from ..store._records import validate_run_id
from ..store._store import Store

PAGE_SIZE = 50
LISTING_TTL = 2.0  # seconds a listing is reused as it is
FULL_LISTING = 60.0  # seconds between whole listings (between them, only newer names are listed)
SCAN_BUDGET = 2000  # records a filtered page reads at most before it offers the next stretch
RUNS = "runs"


@dataclass(frozen=True)
class RunRow:
    """One run as the list shows it; ``problem`` is set (and the rest is blank) for a record that cannot be read."""

    run_id: str
    summary: RunSummary | None
    parent: str | None = None
    uses: tuple[tuple[str, str, str, str], ...] = ()  # (digest, node id, "produced" | "consumed", MIME type)
    problem: str | None = None


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    older: str | None  # the ``before`` of the next page, if there are older runs to look through
    scanned: int  # records looked at to fill this page
    total: int  # runs in the store


def row_of(manifest: RunManifest) -> RunRow:
    uses: list[tuple[str, str, str, str]] = []
    for node_id, record in manifest.nodes.items():
        uses.extend((a.digest, node_id, "produced", a.mime) for a in record.outputs)
        uses.extend((a.digest, node_id, "consumed", a.mime) for a in record.inputs)
    return RunRow(manifest.run_id, RunSummary.of(manifest), manifest.parent, tuple(uses))


class RunIndex:
    """A store's run ids and the summaries read so far; safe to share between request threads."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._listed = float("-inf")
        self._fully_listed = float("-inf")
        self._rows: dict[str, RunRow] = {}  # finished runs only: their records no longer change

    def ids(self) -> list[str]:
        """Every run id, oldest first (a listing at most :data:`LISTING_TTL` seconds old)."""
        now = self._clock()
        with self._lock:
            if now - self._listed < LISTING_TTL:
                return self._ids
            if now - self._fully_listed >= FULL_LISTING or not self._ids:
                self._ids = list(self.store.runs)
                self._fully_listed = now
            else:
                self._ids = self._ids + self._newer(self._ids[-1])
            self._listed = now
            return self._ids

    def _newer(self, newest: str) -> list[str]:
        found = []
        for page in self.store.io.list_prefix(f"{RUNS}/", start_after=f"{RUNS}/{newest}.json"):
            for listed in page.objects:
                name = listed.rel[len(RUNS) + 1 :]
                if "/" in name or not name.endswith(".json"):
                    continue
                try:
                    found.append(validate_run_id(name[:-5]))
                except InvalidNameError:
                    continue  # not a run record: `wfe verify` has its say on strays
        return sorted(i for i in found if i > newest)

    def forget(self, run_id: str) -> None:
        with self._lock:
            position = bisect.bisect_left(self._ids, run_id)
            if position < len(self._ids) and self._ids[position] == run_id:
                self._ids = self._ids[:position] + self._ids[position + 1 :]
            self._rows.pop(run_id, None)

    def rows(self, run_ids: list[str]) -> list[RunRow | None]:
        """The rows of ``run_ids`` (None for a run deleted since it was listed); records read concurrently."""
        with self._lock:
            known: dict[str, RunRow | None] = {i: self._rows[i] for i in run_ids if i in self._rows}
        missing = [i for i in run_ids if i not in known]
        read = self.store.io.gather(self._read, missing) if missing else []
        for run_id, row in zip(missing, read, strict=True):
            known[run_id] = row
            if row is None:
                self.forget(run_id)
            elif row.summary is not None and row.summary.status not in ("running", "died"):
                with self._lock:
                    self._rows[run_id] = row
        return [known.get(i) for i in run_ids]

    def _read(self, run_id: str) -> RunRow | None:
        try:
            return row_of(self.store.runs.get(run_id))
        except NotFoundError:
            return None
        except WfeError as exc:
            return RunRow(run_id, None, problem=" ".join(str(exc).split()))

    def workflows(self) -> list[str]:
        """Names of the workflows among the runs read so far (for the filter's suggestions)."""
        with self._lock:
            return sorted({r.summary.workflow for r in self._rows.values() if r.summary is not None})

    def page(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        before: str | None = None,
        inner: bool = False,
        size: int = PAGE_SIZE,
        budget: int = SCAN_BUDGET,
    ) -> RunPage:
        """Up to ``size`` runs older than ``before`` (or the newest), newest first, that pass the filters.

        Reads records a page's worth at a time, newest first, and stops after
        ``budget`` records without filling the page: ``older`` then says where
        to go on.
        """
        ids = self.ids()
        end = bisect.bisect_left(ids, before) if before else len(ids)
        filtered = workflow is not None or status is not None
        rows: list[RunRow] = []
        scanned = 0
        while end > 0 and len(rows) < size and scanned < budget:
            start = max(0, end - max(size - len(rows), 8))
            chunk = ids[start:end][::-1]
            for row in self.rows(chunk):
                end -= 1
                scanned += 1
                if row is not None and _passes(row, workflow, status, inner, filtered):
                    rows.append(row)
                    if len(rows) == size:
                        break
        return RunPage(rows, ids[end] if end > 0 else None, scanned, len(ids))


def _passes(row: RunRow, workflow: str | None, status: str | None, inner: bool, filtered: bool) -> bool:
    if row.summary is None:
        return not filtered  # an unreadable record is listed, as damage, when nothing is filtered
    if row.parent is not None and not inner:
        return False
    if workflow is not None and row.summary.workflow != workflow:
        return False
    return status is None or row.summary.status == status
