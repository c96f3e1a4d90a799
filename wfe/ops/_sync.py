"""Copying a store, or some of its runs, into another store on any backend.

Order matters for readers of the destination: blobs first (each verified as
it is read from the source and re-hashed as it is written), then configs and
functions, then action-cache entries whose outputs have all arrived, and run
records last, only when every blob they name is there. So an interrupted
sync leaves no record pointing at missing data, and running it again copies
only what has not arrived yet: what the destination already holds is never
copied twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import BlobNotFoundError, Damaged, IntegrityError, NotFoundError, StoreError
from ..store._manifest import RunManifest
from ..store._store import Store
from ._gc import digests_in
from ._history import resolve_run_id
from ._progress import Progress
from ._verify import run_references

SMALL_BLOB = 4 * 1024 * 1024  # copied in one piece; larger blobs stream with flat memory
KINDS = ("blobs", "configs", "functions", "actions", "runs")


@dataclass
class SyncReport:
    """How many items of each kind were copied, how many were already there, and what failed."""

    copied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    present: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, object]:
        return {"copied": dict(self.copied), "already_present": dict(self.present), "bytes": self.bytes,
                "failures": list(self.failures)}


def sync(
    source: Store, destination: Store, *, runs: list[str] | None = None, progress: Progress | None = None
) -> SyncReport:
    """Copy into ``destination`` what it lacks of ``source`` (everything, or what ``runs`` need).

    A corrupt or vanished source blob is reported in ``failures`` and the
    records that need it are left behind; everything else is still copied.
    """
    progress = progress or Progress()
    report = SyncReport()
    if runs is None:
        run_ids = list(source.runs)
        manifests = _manifests(source, run_ids, report)
        blob_digests = list(source.blobs)
        config_digests = list(source.configs)
        function_names = list(source.functions)
        action_keys = list(source.actions)
    else:
        run_ids = list(dict.fromkeys(resolve_run_id(source, r) for r in runs))
        manifests = _manifests(source, run_ids, report)
        wanted: set[str] = set()
        for manifest in manifests:
            wanted.update(digests_in(manifest.model_dump(mode="json")))
        # A mapped node's elements are actions of their own.
        action_keys = sorted({k for m in manifests for r in m.nodes.values() for k in r.action_keys()})
        action_keys = [k for k in action_keys if source.actions.exists(k)]
        carried: set[str] = set()  # small configs, kept in the entries copied with them
        for key in action_keys:
            result = source.actions.lookup(key)
            if result is not None:
                wanted.update(a.digest for a in result.outputs if a.stored)
                if result.config_json is not None:
                    carried.add(result.config)
        # A node that never ran (skipped, or its run stopped first) may have no config stored: copied if there.
        settled = ("ran", "cached", "failed")
        named = {r.config for m in manifests for r in m.nodes.values() if r.config and r.status in settled}
        named |= {r.config for m in manifests for r in m.nodes.values()
                  if r.config and r.status not in settled and source.configs.exists(r.config)}  # fmt: skip
        config_digests = sorted(named - carried)
        function_names = sorted({r.function for m in manifests for r in m.nodes.values() if r.function})
        blob_digests = sorted(d for d in wanted if source.blobs.exists(d))

    arrived = _copy_blobs(source, destination, blob_digests, report, progress)
    _copy_configs(source, destination, config_digests, report, progress)
    _copy_functions(source, destination, function_names, report, progress)
    _copy_actions(source, destination, action_keys, arrived, report, progress)
    _copy_runs(destination, manifests, arrived, report, progress)
    return report


def _manifests(source: Store, run_ids: list[str], report: SyncReport) -> list[RunManifest]:
    found = []
    for run_id in run_ids:
        try:
            found.append(source.runs.get(run_id))
        except (NotFoundError, StoreError) as exc:
            report.failures.append(f"run {run_id}: {exc}")
    return found


def _copy_blobs(
    source: Store, destination: Store, digests: list[str], report: SyncReport, progress: Progress
) -> set[str]:
    """Copy missing blobs; return the set of digests the destination now holds (of those asked for)."""
    have = set(destination.blobs)
    arrived: set[str] = set()
    progress.phase("blobs", len(digests))
    for digest in digests:
        progress.advance()
        if digest in have:
            report.present["blobs"] += 1
            arrived.add(digest)
            continue
        try:
            written, size = _copy_blob(source, destination, digest)
        except (IntegrityError, BlobNotFoundError, Damaged) as exc:  # Damaged: a link or FIFO, never copied
            report.failures.append(f"blob {digest}: {exc}")
            continue
        if written != digest:  # the destination hashed something else: never leave it under a wrong name
            destination.blobs.delete(written)
            report.failures.append(f"blob {digest}: arrived as {written}")
            continue
        report.copied["blobs"] += 1
        report.bytes += size
        arrived.add(digest)
    return arrived


def _copy_blob(source: Store, destination: Store, digest: str) -> tuple[str, int]:
    """Copy one blob, verified as read; small ones in one piece, large ones streamed."""
    with source.blobs.open(digest) as reader:  # raises IntegrityError at the end if the bytes are bad
        head = reader.read(SMALL_BLOB + 1)
        if len(head) <= SMALL_BLOB:
            if reader.read(1):  # a short read before the end: stream it instead
                head = b""
            else:
                written, size, _created = destination.blobs.put_new(head)
                return written, size
    with source.blobs.open(digest) as reader:
        written, size, _created = destination.blobs.put_new(reader)
    return written, size


def _copy_configs(
    source: Store, destination: Store, digests: list[str], report: SyncReport, progress: Progress
) -> None:
    have = set(destination.configs)
    progress.phase("configs", len(digests))
    for digest in digests:
        progress.advance()
        if digest in have:
            report.present["configs"] += 1
            continue
        try:
            written = destination.configs.put(source.configs.get(digest))
        except (NotFoundError, IntegrityError, StoreError) as exc:
            report.failures.append(f"config {digest}: {exc}")
            continue
        if written != digest:
            report.failures.append(f"config {digest}: arrived as {written}")
            continue
        report.copied["configs"] += 1


def _copy_functions(
    source: Store, destination: Store, names: list[str], report: SyncReport, progress: Progress
) -> None:
    # A function record the destination already has is its own to keep: only absent names are copied.
    have = set(destination.functions)
    progress.phase("functions", len(names))
    for name in names:
        progress.advance()
        if name in have:
            report.present["functions"] += 1
            continue
        try:
            destination.functions.put(source.functions.get(name))
        except (NotFoundError, StoreError) as exc:
            report.failures.append(f"function {name!r}: {exc}")
            continue
        report.copied["functions"] += 1


def _copy_actions(
    source: Store, destination: Store, keys: list[str], arrived: set[str], report: SyncReport, progress: Progress
) -> None:
    have = set(destination.actions)
    progress.phase("action cache", len(keys))
    for key in keys:
        progress.advance()
        if key in have:
            report.present["actions"] += 1
            continue
        result = source.actions.lookup(key)
        if result is None:  # nothing to copy, but say so: an entry lost on the way is not a quiet miss
            report.failures.append(f"action {key}: not readable in the source (damaged, or deleted meanwhile)")
            continue
        if not all(a.digest in arrived or destination.blobs.exists(a.digest) for a in result.outputs if a.stored):
            report.failures.append(f"action {key}: an output blob did not arrive")
            continue
        destination.actions.put(key, result)
        report.copied["actions"] += 1


def _copy_runs(
    destination: Store, manifests: list[RunManifest], arrived: set[str], report: SyncReport, progress: Progress
) -> None:
    progress.phase("runs", len(manifests))
    for manifest in manifests:
        progress.advance()
        try:
            if destination.runs.get(manifest.run_id) == manifest:
                report.present["runs"] += 1
                continue
        except NotFoundError:
            pass
        except StoreError:
            pass  # a damaged copy: replace it
        needed = {digest for digest, _ in run_references(manifest)}
        missing = sorted(d for d in needed if d not in arrived and not destination.blobs.exists(d))
        if missing:
            report.failures.append(f"run {manifest.run_id}: not copied, {len(missing)} blobs it names did not arrive")
            continue
        destination.runs.put(manifest)
        report.copied["runs"] += 1
