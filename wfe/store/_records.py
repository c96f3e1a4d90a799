"""The JSON record stores: configs, action cache, run records, function specs.

Every record is read bounded by :data:`MAX_RECORD_BYTES` (a bigger one is
damaged, and is never loaded whole) and parsed bounded in depth (a
RecursionError caught): a hostile record is a StoreError or a miss, never a
traceback. A record must also be what its name says: a run
record filed under another run's id, or a function record under another
name, is damaged, so nothing copies it over the record it names.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from .._errors import Damaged, InvalidNameError, NotFoundError, RecordError, StoreError
from .._shape import compact_json
from ..graph._specs import FunctionSpec
from ..storage._base import StorageIO
from ._digest import canonical_json, digest_of
from ._manifest import ActionResult, RunManifest
from ._names import decode_name, encode_name
from ._paths import digest_from_record_path, record_path

MAX_RECORD_BYTES = 256 * 1024 * 1024  # the most a record may hold; reads stop one byte past it
MEMO_BYTES = 16 * 1024 * 1024  # configs kept in memory per process once read and verified
# A run keeps a config of at most this many bytes (canonical JSON) in the action entries of the nodes that
# used it, not in a file of its own: one file (or request) less per node. Bigger ones, and the config of a
# node that failed or is never cached, are files in the config store as before.
INLINE_CONFIG = 1024


def load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise StoreError(f"{what} is not valid JSON: {exc}") from None


class ConfigStore:
    """Node configs (JSON objects), each version kept under the digest of its canonical JSON.

    ``put`` is idempotent and returns the digest; ``get`` raises NotFoundError
    on a miss; ``delete`` returns False if there was nothing to delete.
    """

    PREFIX = "configs"

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage
        self._seen: dict[str, bytes] = {}
        self._seen_bytes = 0

    def put(self, config: dict[str, Any]) -> str:
        if not isinstance(config, dict):
            raise TypeError(f"a config is a JSON object (dict), not {type(config).__name__}")
        data = canonical_json(config)
        digest = digest_of(data)
        self.put_json(data, digest)
        return digest

    def put_json(self, data: bytes, digest: str) -> None:
        """Store a config already in canonical JSON whose digest the caller took (the planner does)."""
        rel = record_path(self.PREFIX, digest)
        # Where the write itself refuses an existing config, one request instead of two.
        if self._io.conditional_create or self._io.create_only_upload or not self._io.exists(rel):
            self._io.write_new(rel, data)

    def _remember(self, digest: str, data: bytes) -> None:
        # Content-addressed: the bytes under a digest never change, so keeping them is always right.
        if digest not in self._seen and self._seen_bytes + len(data) <= MEMO_BYTES:
            self._seen[digest] = data
            self._seen_bytes += len(data)

    def get(self, digest: str) -> dict[str, Any]:
        value: dict[str, Any] = load_json(self.get_json(digest), f"config {digest}")
        return value

    def get_json(self, digest: str) -> bytes:
        """The stored canonical JSON of config ``digest``, checked against it."""
        data = self._seen.get(digest)
        if data is None:
            rel = record_path(self.PREFIX, digest)
            try:
                data = self._io.read_bytes(rel, MAX_RECORD_BYTES)
            except FileNotFoundError:
                raise NotFoundError(f"no config {digest}") from None
            if digest_of(data) != digest:
                from .._errors import IntegrityError

                raise IntegrityError(digest, "config record does not match its digest")
            self._remember(digest, data)
        return data

    def from_entry(self, digest: str, entry: ActionResult | None) -> bytes | None:
        """The canonical JSON of config ``digest`` carried by an action entry, checked; None if it carries none."""
        if entry is None or entry.config != digest or entry.config_json is None:
            return None
        data = entry.config_json.encode("utf-8")
        if digest_of(data) != digest:
            from .._errors import IntegrityError

            raise IntegrityError(digest, "config carried by an action entry does not match its digest")
        self._remember(digest, data)
        return data

    def exists(self, digest: str) -> bool:
        return self._io.exists(record_path(self.PREFIX, digest))

    def delete(self, digest: str) -> bool:
        self._seen_bytes -= len(self._seen.pop(digest, b""))
        return self._io.delete(record_path(self.PREFIX, digest))

    def __iter__(self) -> Iterator[str]:
        for rel in self._io.walk(self.PREFIX):
            digest = digest_from_record_path(self.PREFIX, rel)
            if digest is not None:
                yield digest


class ActionCache:
    """Action key -> :class:`ActionResult`.

    ``put`` writes only if the key is absent (the first result wins, so two
    runs never disagree) unless ``overwrite`` is set to repair an entry whose
    blobs are gone. ``lookup`` returns None on a miss; ``get`` raises
    NotFoundError. ``delete`` returns False if there was nothing to delete.
    """

    PREFIX = "actions"

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage
        self.unreadable: set[str] = set()  # keys whose entry a lookup found but could not read: put replaces them

    def put(self, key: str, result: ActionResult, *, overwrite: bool = False) -> bool:
        return self.put_encoded(key, self.encode(result), overwrite=overwrite)

    @staticmethod
    def encode(result: ActionResult) -> bytes:
        """The bytes :meth:`put` stores for ``result``."""
        return result.to_json()

    def put_encoded(self, key: str, data: bytes, *, overwrite: bool = False) -> bool:
        """:meth:`put` for a result :meth:`encode` made already."""
        rel = record_path(self.PREFIX, key)
        overwrite = overwrite or key in self.unreadable  # an entry nothing can read is repaired, not kept
        backend_refuses = self._io.conditional_create or self._io.exclusive_publish
        if not overwrite and not backend_refuses and self._io.exists(rel):
            return False  # an exclusive write would not know: check first
        written = self._io.write_bytes(rel, data, exclusive=not overwrite)
        self.unreadable.discard(key)
        return written

    def lookup(self, key: str) -> ActionResult | None:
        found = self.lookup_entry(key)
        return None if found is None else found[0]

    def lookup_entry(self, key: str) -> tuple[ActionResult, bytes] | None:
        """Like :meth:`lookup`, with the entry's bytes as stored."""
        rel = record_path(self.PREFIX, key)
        try:
            data = self._io.read_bytes(rel, MAX_RECORD_BYTES)
        except FileNotFoundError:
            return None
        except Damaged:  # a link, FIFO or huge file is an unreadable entry too
            self.unreadable.add(key)
            return None
        try:
            return ActionResult.model_validate_json(data), data
        except RecordError:
            self.unreadable.add(key)
            return None  # an unreadable entry is a miss; the next put repairs it

    def get(self, key: str) -> ActionResult:
        result = self.lookup(key)
        if result is None:
            raise NotFoundError(f"no action {key}")
        return result

    def exists(self, key: str) -> bool:
        return self._io.exists(record_path(self.PREFIX, key))

    def delete(self, key: str) -> bool:
        return self._io.delete(record_path(self.PREFIX, key))

    def __iter__(self) -> Iterator[str]:
        for rel in self._io.walk(self.PREFIX):
            digest = digest_from_record_path(self.PREFIX, rel)
            if digest is not None:
                yield digest


_RUN_ID_RE = re.compile(r"[0-9]{8}T[0-9]{6}[0-9]{3}Z-[0-9a-f]{6}")


def new_run_id(now: float | None = None) -> str:
    """Sortable by start time: ``20261126T130501123Z-3f2a1c``."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"
    return f"{stamp}-{os.urandom(3).hex()}"


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise InvalidNameError(f"invalid run id {run_id!r}")
    return run_id


STREAM_NODES = 1000  # run records of this many nodes or more are written piece by piece
RECORD_SLICE = 256  # node records serialised per call: the cost of a call is shared, the memory stays small


def _manifest_pieces(manifest: RunManifest) -> Iterator[bytes]:
    """The manifest's JSON in pieces: its fields, then its node records a slice at a time."""
    head = json.dumps(manifest.model_dump(mode="json", exclude_none=True, exclude={"nodes"}), ensure_ascii=False)
    yield head[:-1].encode("utf-8") + b', "nodes": {'
    items = iter(manifest.nodes.items())
    first = True
    while piece := dict(itertools.islice(items, RECORD_SLICE)):
        if not first:
            yield b","
        first = False
        dumped = {node: record.model_dump(mode="json", exclude_none=True) for node, record in piece.items()}
        yield compact_json(dumped).encode("utf-8")[1:-1]  # sans braces
    yield b"}}"


class RunStore:
    """Run manifests under ``runs/<run-id>.json``; ``put`` overwrites (a run is updated as it goes)."""

    PREFIX = "runs"

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage

    def _path(self, run_id: str) -> str:
        return f"{self.PREFIX}/{validate_run_id(run_id)}.json"

    def put(self, manifest: RunManifest) -> None:
        rel = self._path(manifest.run_id)
        if len(manifest.nodes) < STREAM_NODES:
            self._io.write_bytes(rel, manifest.to_json())
            return
        # A large run's record is written a slice of nodes at a time: never a second copy of it in memory.
        staging = self._io.stage()
        try:
            for piece in _manifest_pieces(manifest):
                staging.write(piece)
            staging.publish(rel, exclusive=False)
        finally:
            staging.discard()

    def get(self, run_id: str) -> RunManifest:
        try:
            data = self._io.read_bytes(self._path(run_id), MAX_RECORD_BYTES)
        except FileNotFoundError:
            raise NotFoundError(f"no run {run_id}") from None
        try:
            manifest = RunManifest.model_validate_json(data)
        except RecordError as exc:
            raise StoreError(f"run record {run_id} is damaged: {exc}") from None
        if manifest.run_id != run_id:
            raise StoreError(f"run record {run_id} is damaged: it holds run {manifest.run_id!r}")
        return manifest

    def exists(self, run_id: str) -> bool:
        return self._io.exists(self._path(run_id))

    def delete(self, run_id: str) -> bool:
        return self._io.delete(self._path(run_id))

    def __iter__(self) -> Iterator[str]:
        """Run ids, oldest first."""
        ids = []
        for rel in self._io.walk(self.PREFIX):
            name = rel.rsplit("/", 1)[-1]
            if rel.count("/") == 1 and name.endswith(".json") and _RUN_ID_RE.fullmatch(name[:-5]):
                ids.append(name[:-5])
        return iter(sorted(ids))


class FunctionStore:
    """Function name -> :class:`FunctionSpec`, under ``functions/<encoded name>.json``.

    A spec is a record of what ran, not a way to run code: resolving it goes
    through the allow-list in :mod:`wfe.graph._functions`. ``put`` overwrites.
    """

    PREFIX = "functions"

    def __init__(self, storage: StorageIO) -> None:
        self._io = storage

    def _path(self, name: str) -> str:
        return f"{self.PREFIX}/{encode_name(name)}.json"

    def put(self, spec: FunctionSpec) -> None:
        data = canonical_json(spec.model_dump(mode="json"))
        rel = self._path(spec.name)
        try:
            if self._io.read_bytes(rel, MAX_RECORD_BYTES) == data:
                return
        except (FileNotFoundError, Damaged):  # replaced below: a record is published, never written through
            pass
        self._io.write_bytes(rel, data)

    def get(self, name: str) -> FunctionSpec:
        try:
            data = self._io.read_bytes(self._path(name), MAX_RECORD_BYTES)
        except FileNotFoundError:
            raise NotFoundError(f"no function {name!r} in the function store") from None
        try:
            spec = FunctionSpec.model_validate_json(data)
        except RecordError as exc:
            raise StoreError(f"function record {name!r} is damaged: {exc}") from None
        if spec.name != name:
            raise StoreError(f"function record {name!r} is damaged: it holds function {spec.name!r}")
        return spec

    def exists(self, name: str) -> bool:
        return self._io.exists(self._path(name))

    def delete(self, name: str) -> bool:
        return self._io.delete(self._path(name))

    def __iter__(self) -> Iterator[str]:
        for rel in self._io.walk(self.PREFIX):
            base = rel.rsplit("/", 1)[-1]
            if rel.count("/") == 1 and base.endswith(".json"):
                try:
                    yield decode_name(base[: -len(".json")])
                except InvalidNameError:
                    continue



