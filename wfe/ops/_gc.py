"""Garbage collection: keep what chosen runs can reach, sweep the rest.

Mark: every digest a kept run record names (its workflow, every node's
inputs, outputs and log, and any other digest-valued field) is reachable.
Configs and function records are small and are all kept.

Sweep, in an order that leaves the store consistent if interrupted: the run
records not kept, then the action-cache entries that point at a blob about
to go, then the blobs. A blob younger than the grace period is never swept,
so a writer that has put a blob but not yet written the record that refers
to it keeps its blob.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._errors import BlobNotFoundError, WfeError
from ..engine._host import process_alive
from ..engine._lease import OWNERS, expired_leases
from ..engine._scratch import scratch_owner
from ..store._digest import is_digest
from ..store._manifest import RunManifest
from ..store._store import Store
from ._history import iter_runs, shown_status
from ._progress import Progress

DEFAULT_GRACE = 3600.0
STALE_RUNNING = 24 * 3600.0  # a run still "running" after a day is taken for a crashed one
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``7d``, ``2w`` -> seconds; WfeError otherwise."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if not match:
        raise WfeError(f"invalid duration {text!r}: use a number with s, m, h, d or w (e.g. 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time: an ISO date or date-time (UTC unless it says), or an age like ``7d``."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except WfeError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WfeError(f"invalid date {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM or an age like 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def digests_in(value: Any) -> Iterator[str]:
    """Every digest-valued string anywhere in a JSON document."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if is_digest(item):
                yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass
class GcReport:
    """What gc kept and removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    kept_runs: list[str] = field(default_factory=list)
    deleted_runs: list[str] = field(default_factory=list)
    deleted_actions: list[str] = field(default_factory=list)
    deleted_blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    blobs_kept: int = 0
    young_blobs_kept: int = 0
    temporary_removed: int = 0  # staging files left by writers that were killed mid-write
    leases_removed: int = 0  # expired action leases (their runs crashed or gave up)
    live_runs: list[str] = field(default_factory=list)  # runs going on: every blob the cache names was kept
    blobs_kept_for_live_runs: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "kept_runs": list(self.kept_runs),
            "deleted_runs": list(self.deleted_runs),
            "deleted_actions": len(self.deleted_actions),
            "deleted_blobs": list(self.deleted_blobs),
            "bytes_freed": self.bytes_freed,
            "blobs_kept": self.blobs_kept,
            "young_blobs_kept": self.young_blobs_kept,
            "temporary_removed": self.temporary_removed,
            "leases_removed": self.leases_removed,
            "live_runs": list(self.live_runs),
            "blobs_kept_for_live_runs": self.blobs_kept_for_live_runs,
        }


def choose_runs(
    runs: list[RunManifest], *, keep_last: int | None, keep_since: float | None, now: float
) -> tuple[list[RunManifest], list[RunManifest]]:
    """Split runs into (kept, dropped).

    ``keep_last`` keeps the newest N runs of each workflow; ``keep_since``
    keeps runs started at or after that time; with both, a run kept by either
    is kept; with neither, every run is kept. A run still running (and
    started less than a day ago) is always kept.
    """
    if keep_last is None and keep_since is None:
        return list(runs), []
    kept_ids: set[str] = set()
    seen: dict[str, int] = {}
    for manifest in sorted(runs, key=lambda m: m.run_id, reverse=True):
        if keep_last is not None and seen.get(manifest.workflow, 0) < keep_last:
            kept_ids.add(manifest.run_id)
        seen[manifest.workflow] = seen.get(manifest.workflow, 0) + 1
        if keep_since is not None and manifest.started >= keep_since:
            kept_ids.add(manifest.run_id)
        if _live(manifest, now):
            kept_ids.add(manifest.run_id)
    kept = [m for m in runs if m.run_id in kept_ids]
    return kept, [m for m in runs if m.run_id not in kept_ids]


def _live(manifest: RunManifest, now: float) -> bool:
    return shown_status(manifest) == "running" and now - manifest.started < STALE_RUNNING


def _live_runs(store: Store, kept: list[RunManifest], seen: set[str], now: float) -> list[str]:
    """Ids of runs still running: those gc kept for it, and any that started since it listed the runs."""
    live = [m.run_id for m in kept if _live(m, now)]
    for run_id in list(store.runs):
        if run_id in seen:
            continue
        try:
            manifest = store.runs.get(run_id)
        except WfeError:
            continue  # records appear whole (staged, then published): one that cannot be read is damage
        if _live(manifest, now):
            live.append(run_id)
    return sorted(live)


def collect_garbage(
    store: Store,
    *,
    keep_last: int | None = None,
    keep_since: float | None = None,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    now: float | None = None,
    progress: Progress | None = None,
) -> GcReport:
    """Delete the runs not kept and every blob and action entry only they could reach.

    A blob whose age the backend cannot tell is treated as young (kept)
    unless ``grace`` is 0. Repeating gc is safe; ``dry_run`` deletes nothing.
    """
    if keep_last is not None and keep_last < 0:
        raise WfeError("--keep-last must be 0 or more")
    now = time.time() if now is None else now
    progress = progress or Progress()
    report = GcReport(dry_run=dry_run)
    for prefix in ("tmp", "leases"):  # a damaged store (a linked folder) stops gc before it deletes anything
        for _ in store.io.walk(prefix):  # small folders: listed whole, so a link deep inside is found too
            pass
    kept, dropped = choose_runs(list(iter_runs(store)), keep_last=keep_last, keep_since=keep_since, now=now)
    report.kept_runs = sorted(m.run_id for m in kept)
    marked: set[str] = set()
    for manifest in kept:
        marked.update(digests_in(manifest.model_dump(mode="json")))

    listing = list(store.blobs)
    progress.phase("marking blobs", len(listing))
    doomed: dict[str, int] = {}
    for digest in listing:
        progress.advance()
        if digest in marked:
            report.blobs_kept += 1
            continue
        try:
            written = store.blobs.modified(digest)
            size = store.blobs.size(digest)
        except BlobNotFoundError:
            continue
        if (written is None and grace > 0) or (written is not None and now - written < grace):
            report.young_blobs_kept += 1
            continue
        doomed[digest] = size

    progress.phase("removing runs", len(dropped))
    for manifest in dropped:
        progress.advance()
        if dry_run or store.runs.delete(manifest.run_id):
            report.deleted_runs.append(manifest.run_id)

    keys = list(store.actions)
    progress.phase("action cache", len(keys))
    stale: list[tuple[str, list[str]]] = []  # cache entries naming a blob about to go
    for key in keys:
        progress.advance()
        result = store.actions.lookup(key)
        if result is None:
            continue  # unreadable: `wfe verify --repair` deals with it
        outputs = [a.digest for a in result.outputs]
        if any(d in doomed for d in outputs):
            stale.append((key, outputs))
    # A live run may take any cache entry as a hit, and its record names the hit's outputs only when it
    # is next written: while one runs (including one that started since gc began), every blob the cache
    # names is kept, with the entry that names it.
    report.live_runs = _live_runs(store, kept, {m.run_id for m in kept} | {m.run_id for m in dropped}, now)
    for key, outputs in stale:
        if report.live_runs:
            for digest in outputs:
                if doomed.pop(digest, None) is not None:
                    report.blobs_kept_for_live_runs += 1
        elif dry_run or store.actions.delete(key):
            report.deleted_actions.append(key)

    progress.phase("removing blobs", len(doomed))
    for digest, size in doomed.items():
        progress.advance()
        if dry_run or store.blobs.delete(digest):
            report.deleted_blobs.append(digest)
            report.bytes_freed += size
    gone_scratch: set[str] = set()
    for rel in list(store.io.walk("tmp")):
        # A node's scratch folder is kept while its process lives, and goes at once when that is gone;
        # any other staging file older than the grace period belongs to a writer that died.
        folder = rel.split("/")[1] if rel.count("/") >= 2 else ""
        owner = scratch_owner(folder)
        alive = process_alive(*owner) if owner is not None else None
        if alive:
            continue
        if alive is None:
            try:
                written = store.io.modified(rel)
            except FileNotFoundError:
                continue
            if written is None or now - written < grace:
                continue
        else:
            gone_scratch.add(folder)
        if dry_run or store.io.delete(rel):
            report.temporary_removed += 1
    for folder in gone_scratch if not dry_run else ():
        store.io.prune(f"tmp/{folder}")  # its emptied folders, never through a link
    for rel in list(expired_leases(store.io, now)):  # a live lease is kept: its run is computing
        if (dry_run or store.io.delete(rel)) and not rel.startswith(OWNERS + "/"):
            report.leases_removed += 1  # a gone run's owner file goes too, but is not a lease
    report.deleted_runs.sort()
    report.deleted_blobs.sort()
    return report
