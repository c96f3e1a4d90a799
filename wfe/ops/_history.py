"""Finding runs in a store: by id, prefix or ``latest``; listing with filters; a run's workflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from .._errors import NotFoundError, StoreError
from ..graph._load import parse_workflow
from ..graph._model import WorkflowGraph
from ..store._manifest import RunManifest
from ..store._store import Store

LATEST = ("latest", "last", "@")


def resolve_run_id(store: Store, text: str) -> str:
    """The run id that ``text`` names: an exact id, ``latest``, or a unique prefix.

    Raises NotFoundError when nothing matches and when a prefix matches more
    than one run (the message lists a few of them).
    """
    text = text.strip()
    ids = list(store.runs)
    if text in ids:
        return text
    if text.lower() in LATEST:
        if not ids:
            raise NotFoundError(f"no runs in store {store.url}")
        for run_id in reversed(ids[-1000:]):  # the newest top-level run, not a sub-workflow's inner run
            try:
                if store.runs.get(run_id).parent is None:
                    return run_id
            except (NotFoundError, StoreError):
                continue
        return ids[-1]
    matches = [run_id for run_id in ids if run_id.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no run {text!r} in store {store.url} (see `wfe runs`)")
    shown = ", ".join(matches[-5:])
    raise NotFoundError(f"run prefix {text!r} matches {len(matches)} runs (e.g. {shown}); give more characters")


def load_run(store: Store, text: str) -> RunManifest:
    """The manifest of the run ``text`` names (see :func:`resolve_run_id`)."""
    return store.runs.get(resolve_run_id(store, text))


def run_workflow(store: Store, manifest: RunManifest) -> WorkflowGraph:
    """The workflow a run ran, read back from the blob its manifest names.

    Raises BlobNotFoundError if the blob is gone, IntegrityError if it is damaged.
    """
    data = store.blobs.get(manifest.workflow_digest)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:  # nested too deep to parse: damaged, not a crash
        raise StoreError(f"workflow blob {manifest.workflow_digest} is not JSON: {exc}") from None
    return parse_workflow(document, f"workflow of run {manifest.run_id}")


def shown_status(manifest: RunManifest) -> str:
    """The run's status, or ``died`` for a ``running`` run whose process on this host is gone.

    A killed process (SIGKILL, ``os._exit`` in a node, a crashed machine's reboot) cannot record its end,
    so its record stays ``running``; on the host it ran on, whether that process still exists tells.
    """
    if manifest.status != "running" or not manifest.owner:
        return manifest.status
    from ..engine._host import process_alive

    host, _, pid = manifest.owner.rpartition(":")
    return "died" if process_alive(host, pid) is False else "running"


@dataclass(frozen=True)
class RunSummary:
    """One line of ``wfe runs``."""

    run_id: str
    workflow: str
    status: str
    started: float
    duration: float | None
    ran: int
    cached: int
    failed: int
    nodes: int

    @classmethod
    def of(cls, manifest: RunManifest) -> RunSummary:
        counts = manifest.counts()
        duration = manifest.finished - manifest.started if manifest.finished is not None else None
        return cls(
            run_id=manifest.run_id,
            workflow=manifest.workflow,
            status=shown_status(manifest),
            started=manifest.started,
            duration=duration,
            ran=counts.get("ran", 0),
            cached=counts.get("cached", 0),
            failed=counts.get("failed", 0),
            nodes=len(manifest.nodes),
        )


def iter_runs(
    store: Store,
    *,
    workflow: str | None = None,
    status: str | None = None,
    newest_first: bool = True,
) -> Iterator[RunManifest]:
    """Manifests in the store, filtered; a damaged record is skipped, not fatal.

    Run ids start with their UTC start time, so sorting ids sorts by start.
    """
    ids = list(store.runs)
    if newest_first:
        ids.reverse()
    for run_id in ids:
        try:
            manifest = store.runs.get(run_id)
        except (NotFoundError, StoreError):
            continue  # deleted meanwhile, or unreadable: `wfe verify` reports those
        if workflow is not None and manifest.workflow != workflow:
            continue
        if status is not None and shown_status(manifest) != status:
            continue
        yield manifest


def producers(manifest: RunManifest) -> dict[str, str]:
    """Output digest -> id of the node that produced it in this run (first producer wins)."""
    found: dict[str, str] = {}
    for node_id, record in manifest.nodes.items():
        for artifact in record.outputs:
            found.setdefault(artifact.digest, node_id)
    return found
