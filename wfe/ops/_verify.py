"""Checking a whole store: every blob re-hashed, every record's references followed.

Only the public parts of a :class:`Store` are used (``blobs``, ``configs``,
``actions``, ``runs``, ``functions`` and their iteration), so this works on
any backend. ``repair`` removes what can be recomputed (corrupt blobs, the
action-cache entries that point at missing or corrupt blobs, unreadable
cache and config records) so that the next run or rerun recomputes it; run
records are history and are never removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._errors import BlobNotFoundError, Damaged, IntegrityError, NotFoundError, StoreError
from ..store._blobs import BlobStore
from ..store._manifest import RunManifest
from ..store._store import Store
from ._progress import Progress

CHUNK = 1 << 20
_Note = Callable[[str, str], None]


@dataclass
class VerifyReport:
    """What ``verify`` found; ``clean`` when nothing is wrong."""

    blobs: int = 0
    bytes: int = 0
    configs: int = 0
    actions: int = 0
    runs: int = 0
    functions: int = 0
    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: dict[str, list[str]] = field(default_factory=dict)  # digest -> who refers to it
    damaged: list[str] = field(default_factory=list)  # records that cannot be read or do not match
    repaired: list[str] = field(default_factory=list)
    lost: dict[str, list[str]] = field(default_factory=dict)  # run id -> the missing blobs it names
    repaired_all: bool = False  # with ``repair``: nothing is left that a repair can mend

    @property
    def clean(self) -> bool:
        return not (self.corrupt_blobs or self.missing_blobs or self.damaged)

    def lines(self) -> list[str]:
        out = [f"corrupt blob {d}" for d in self.corrupt_blobs]
        for digest, referrers in sorted(self.missing_blobs.items()):
            more = f" (and {len(referrers) - 3} more)" if len(referrers) > 3 else ""
            out.append(f"missing blob {digest}, referenced by {', '.join(referrers[:3])}{more}")
        out.extend(f"damaged {what}" for what in self.damaged)
        out.extend(f"repaired: {what}" for what in self.repaired)
        for run_id, digests in sorted(self.lost.items()):
            out.append(f"run {run_id} names {len(digests)} blob{'s' if len(digests) > 1 else ''} missing or corrupt: "
                       f"`wfe rerun {run_id}` recomputes them")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "checked": {"blobs": self.blobs, "bytes": self.bytes, "configs": self.configs,
                        "actions": self.actions, "runs": self.runs, "functions": self.functions},
            "corrupt_blobs": list(self.corrupt_blobs),
            "missing_blobs": {d: list(r) for d, r in self.missing_blobs.items()},
            "damaged": list(self.damaged),
            "repaired": list(self.repaired),
            "repaired_all": self.repaired_all,
            "runs_to_rerun": {r: list(d) for r, d in self.lost.items()},
        }


def verify_store(store: Store, *, repair: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Re-hash every blob and follow every record's references; with ``repair``, drop what can be recomputed.

    Safe to run while others write: a blob written after the listing is
    looked up again before it is called missing.
    """
    progress = progress or Progress()
    report = VerifyReport()
    present = _check_blobs(store, report, progress)
    corrupt = set(report.corrupt_blobs)

    def usable(digest: str) -> bool:
        if digest in corrupt:
            return False
        return digest in present or store.blobs.exists(digest)

    def note_missing(digest: str, referrer: str) -> None:
        if digest in corrupt or not usable(digest):
            if digest not in corrupt:
                report.missing_blobs.setdefault(digest, []).append(referrer)
            if referrer.startswith("run "):  # history that only a rerun can restore (a corrupt blob goes on repair)
                lost = report.lost.setdefault(referrer.split()[1], [])
                if digest not in lost:
                    lost.append(digest)

    configs, bad_configs = _check_configs(store, report, progress)

    def has_config(digest: str) -> bool:
        return digest in configs or (digest not in bad_configs and store.configs.exists(digest))

    entries: dict[str, tuple[str, ...]] = {}
    bad_actions = _check_actions(store, report, progress, usable, note_missing, has_config, entries)
    recorded: dict[str, set[tuple[str, ...]]] = {}
    _check_runs(store, report, progress, note_missing, recorded)
    bad_actions.extend(_disagreeing_actions(report, entries, recorded))
    _check_functions(store, report, progress)
    if repair:
        for digest in report.corrupt_blobs:
            if store.blobs.delete(digest):
                report.repaired.append(f"deleted corrupt blob {digest}")
        for key in bad_actions:
            if store.actions.delete(key):
                report.repaired.append(f"dropped action {key}")
        for digest in bad_configs:
            if store.configs.delete(digest):
                report.repaired.append(f"dropped damaged config {digest}")
        # What is left after a repair is history: run records naming blobs that are gone, which a rerun
        # restores, and damaged run or function records, which only their writer can mend.
        report.repaired_all = not any(
            not what.startswith(("config ", "action ")) for what in report.damaged
        )
    return report


def _disagreeing_actions(
    report: VerifyReport, entries: dict[str, tuple[str, ...]], recorded: dict[str, set[tuple[str, ...]]]
) -> list[str]:
    """Cache entries whose outputs no run that computed or reused the action recorded: edited behind wfe's back.

    Every run that ran or reused an action names its outputs, so an entry all of whose runs name other
    outputs was not written by any of them. Only actions some kept run names can be checked this way.
    """
    bad = []
    for key, outputs in entries.items():
        seen = recorded.get(key)
        if seen and outputs not in seen:
            report.damaged.append(f"action {key} (its outputs are not what any run that used it recorded)")
            bad.append(key)
    return bad


def _stored_blobs(store: Store) -> BlobStore:
    """The blobs as the backend holds them: a local read cache in front must not hide a damaged original."""
    blobs = store.blobs
    return BlobStore(store.io) if type(blobs) is not BlobStore and isinstance(blobs, BlobStore) else blobs


def _check_blobs(store: Store, report: VerifyReport, progress: Progress) -> set[str]:
    blobs = _stored_blobs(store)
    digests = list(blobs)
    progress.phase("hashing blobs", len(digests))
    present: set[str] = set()
    for digest in digests:
        try:
            with blobs.open(digest) as reader:
                while chunk := reader.read(CHUNK):
                    report.bytes += len(chunk)
            present.add(digest)
            report.blobs += 1
        except IntegrityError:
            report.corrupt_blobs.append(digest)
            report.blobs += 1
        except Damaged as exc:  # a link, FIFO or device under a blob's name: never read, unusable as corrupt
            report.corrupt_blobs.append(digest)
            report.damaged.append(f"blob {digest} ({exc})")
            report.blobs += 1
        except BlobNotFoundError:
            pass  # deleted since the listing: nothing to check
        progress.advance()
    report.corrupt_blobs.sort()
    return present


def _check_configs(store: Store, report: VerifyReport, progress: Progress) -> tuple[set[str], list[str]]:
    """(readable config digests, damaged config digests)."""
    digests = list(store.configs)
    progress.phase("configs", len(digests))
    good: set[str] = set()
    bad = []
    for digest in digests:
        try:
            store.configs.get(digest)  # checks the digest of the stored JSON
            report.configs += 1
            good.add(digest)
        except NotFoundError:
            pass
        except (IntegrityError, StoreError):
            report.configs += 1
            report.damaged.append(f"config {digest}")
            bad.append(digest)
        progress.advance()
    return good, bad


def _check_actions(
    store: Store,
    report: VerifyReport,
    progress: Progress,
    usable: Callable[[str], bool],
    note_missing: _Note,
    has_config: Callable[[str], bool],
    entries: dict[str, tuple[str, ...]],
) -> list[str]:
    keys = list(store.actions)
    progress.phase("action cache", len(keys))
    bad: list[str] = []
    for key in keys:
        progress.advance()
        result = store.actions.lookup(key)
        if result is None:
            if store.actions.exists(key):
                report.actions += 1
                report.damaged.append(f"action {key} (unreadable)")
                bad.append(key)
            continue
        report.actions += 1
        entries[key] = tuple(a.digest for a in result.outputs)
        outputs = [a.digest for a in result.outputs if a.stored]
        for digest in outputs:
            note_missing(digest, f"action {key}")
        if not all(usable(d) for d in outputs):
            bad.append(key)
        if result.config_json is not None:  # a small config, kept in the entry itself
            try:
                store.configs.from_entry(result.config, result)
            except IntegrityError:
                report.damaged.append(f"action {key} (the config it carries does not match {result.config})")
                bad.append(key)
        elif not has_config(result.config):
            report.damaged.append(f"action {key} (its config {result.config} is missing)")
    return bad


def _check_runs(
    store: Store, report: VerifyReport, progress: Progress, note_missing: _Note,
    recorded: dict[str, set[tuple[str, ...]]],
) -> None:
    run_ids = list(store.runs)
    progress.phase("runs", len(run_ids))
    for run_id in run_ids:
        progress.advance()
        try:
            manifest = store.runs.get(run_id)
        except NotFoundError:
            continue
        except StoreError as exc:
            report.runs += 1
            report.damaged.append(f"run {run_id} ({exc})")
            continue
        report.runs += 1
        for digest, referrer in run_references(manifest):
            note_missing(digest, referrer)
        for record in manifest.nodes.values():
            if record.action_key and record.status in ("ran", "cached") and record.elements is None:
                recorded.setdefault(record.action_key, set()).add(tuple(a.digest for a in record.outputs))


def run_references(manifest: RunManifest) -> list[tuple[str, str]]:
    """Every blob a run record names, with a description of where it names it."""
    refs = [(manifest.workflow_digest, f"run {manifest.run_id} (its workflow)")]
    for node_id, record in manifest.nodes.items():
        where = f"run {manifest.run_id} node {node_id}"
        refs.extend((a.digest, where) for a in record.inputs if a.stored)
        refs.extend((a.digest, where) for a in record.outputs if a.stored)
        for element in record.elements or ():  # a mapped node's element outputs
            refs.extend((o["digest"], where) for o in element.get("outputs", ()) if "kind" not in o)
        if record.log:
            refs.append((record.log, f"{where} (its log)"))
    return refs


def _check_functions(store: Store, report: VerifyReport, progress: Progress) -> None:
    names = list(store.functions)
    progress.phase("functions", len(names))
    for name in names:
        progress.advance()
        try:
            store.functions.get(name)
            report.functions += 1
        except NotFoundError:
            continue
        except StoreError as exc:
            report.functions += 1
            report.damaged.append(f"function {name!r} ({exc})")
