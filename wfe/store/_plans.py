"""What the last run of a workflow settled, node by node: so a rerun on a remote store checks its whole plan at once.

A chain's action keys can only be found one after another (each input is
the previous node's output), and on an object store each lookup is a round
trip. The last run of the same workflow knew them all: ``plans/<ab>/<cd…>.json``
(the digest of the workflow's name) maps each node to its action key and the
exact bytes of the action entry it found or wrote. A rerun takes it as a
prediction only: a node whose key comes out the same, and whose entry a
listing shows unchanged (the listing's ETag is the MD5 of the predicted
bytes), and whose output blobs are there, is a hit without reading its entry;
every other node goes the usual way. So a stale, foreign or damaged plan
costs time, never a wrong result.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from .._errors import Damaged, RecordError
from ..storage._base import StorageIO
from ._digest import digest_of
from ._manifest import ActionResult
from ._paths import record_path
from ._records import MAX_RECORD_BYTES

PREFIX = "plans"


class Planned(NamedTuple):
    """A node's action key and the bytes of its action entry, as the last run saw them."""

    key: str
    entry: bytes

    @property
    def md5(self) -> str:
        """What an object store's listing gives as the ETag of an object holding exactly ``entry``."""
        return hashlib.md5(self.entry, usedforsecurity=False).hexdigest()

    def result(self) -> ActionResult | None:
        try:
            return ActionResult.model_validate_json(self.entry)
        except RecordError:
            return None


def plan_path(workflow: str) -> str:
    return record_path(PREFIX, digest_of(workflow.encode("utf-8")))


class PlanStore:
    """Read and write the plan of a workflow by name; anything unreadable is no plan."""

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage

    def get(self, workflow: str) -> dict[str, Planned]:
        try:
            data = self._io.read_bytes(plan_path(workflow), MAX_RECORD_BYTES)
            document = json.loads(data)
            entries = document["entries"]
            if document.get("workflow") != workflow or not isinstance(entries, dict):
                return {}
            return {
                str(node): Planned(str(pair[0]), str(pair[1]).encode("utf-8"))
                for node, pair in entries.items()
                if isinstance(pair, list) and len(pair) == 2
            }
        except (FileNotFoundError, Damaged, ValueError, KeyError, TypeError, RecursionError):
            return {}

    def put(self, workflow: str, entries: dict[str, Planned]) -> None:
        document = {
            "workflow": workflow,
            "entries": {node: [p.key, p.entry.decode("utf-8")] for node, p in entries.items()},
        }
        self._io.write_bytes(plan_path(workflow), json.dumps(document, separators=(",", ":")).encode("utf-8"))
