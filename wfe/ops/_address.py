"""One way to name a stored output: ``RUN:NODE[:PORT]`` or a digest (or a unique prefix of one).

- ``RUN`` is a run id, a unique prefix of one, or ``latest``: the newest
  top-level run that has ``NODE``.
- ``PORT`` picks one output of a node that has several; a node with one
  output needs none.
- A digest is ``sha256:`` and 64 hex characters; ``sha256:`` may be left
  out, and a prefix of at least :data:`MIN_PREFIX` hex characters names the
  one blob it starts. A prefix is found by listing the blobs that start with
  its first two characters from it on (one request on S3 for up to 1,000
  names); a full digest is never listed, only read.

Every failure is one line: NotFoundError (no such run, node, port or blob; a
node that failed or was skipped; a prefix matching several blobs, with a few
of them), InvalidDigestError (a digest or prefix that is malformed or too
short) or AddressError (text that is no address at all).
"""

from __future__ import annotations

import atexit
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import (
    AddressError,
    BlobNotFoundError,
    InvalidDigestError,
    NotFoundError,
    WfeError,
)
from ..graph._model import Artifact
from ..store._digest import PREFIX, digest_of_stream, validate_digest
from ..store._manifest import RunManifest
from ..store._store import Store, open_store
from ._outputs import listing, node_record, pick_output, read_bytes, read_value

MIN_PREFIX = 12  # hex characters a digest prefix must have
SHOWN = 5  # candidates named in an error
LATEST_SCAN = 1000  # newest runs ``latest:NODE`` looks through for one that has the node

_HEX = re.compile(r"[0-9a-f]+")
_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")


@dataclass(frozen=True)
class Address:
    """A parsed address: ``digest`` (a full digest or a hex prefix), or ``run``, ``node`` and maybe ``port``."""

    text: str
    run: str | None = None
    node: str | None = None
    port: str | None = None
    digest: str | None = None  # "sha256:<64 hex>", or the hex characters of a prefix


@dataclass(frozen=True)
class Target:
    """What an address resolved to: one output, and the run and node it came from (none for a bare digest)."""

    artifact: Artifact
    run_id: str | None = None
    node_id: str | None = None

    def describe(self) -> str:
        if self.node_id is None:
            return self.artifact.digest
        port = f":{self.artifact.name}" if self.artifact.name else ""
        return f"{self.run_id}:{self.node_id}{port}"


def parse_address(text: str) -> Address:
    """Split ``text`` into its parts; AddressError if it is no address (nothing is looked up)."""
    if not isinstance(text, str) or not text.strip():
        raise AddressError(f"invalid address {text!r}: expected RUN:NODE[:PORT] or a digest")
    text = text.strip()
    lowered = text.lower()
    if lowered.startswith(PREFIX):
        return Address(text, digest=_digest_part(text, lowered[len(PREFIX):]))
    if ":" not in text:
        if _HEX.fullmatch(lowered):
            return Address(text, digest=_digest_part(text, lowered))
        raise AddressError(
            f"invalid address {text!r}: expected RUN:NODE[:PORT] (RUN a run id, a unique prefix of one, "
            f"or 'latest') or a digest prefix of at least {MIN_PREFIX} hex characters"
        )
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        raise AddressError(f"invalid address {text!r}: expected RUN:NODE[:PORT]")
    for part in parts[1:]:
        if not _NAME.fullmatch(part):
            raise AddressError(f"invalid address {text!r}: {part!r} is not a node id or port name")
    run, node = parts[0], parts[1]
    return Address(text, run=run, node=node, port=parts[2] if len(parts) == 3 else None)


def _digest_part(text: str, hexpart: str) -> str:
    if not _HEX.fullmatch(hexpart) or len(hexpart) > 64:
        validate_digest(text)  # raises, saying what a digest is
    if len(hexpart) < MIN_PREFIX:
        raise InvalidDigestError(
            f"digest prefix {text!r} is too short: give at least {MIN_PREFIX} hex characters"
        )
    return PREFIX + hexpart if len(hexpart) == 64 else hexpart


def resolve_digest(store: Store, text: str) -> str:
    """The full digest ``text`` names: itself if complete, else the one blob its prefix starts."""
    address = parse_address(text)
    if address.digest is None:
        raise AddressError(f"{text!r} names a run's output, not a digest")
    return _full_digest(store, address)


def _full_digest(store: Store, address: Address) -> str:
    assert address.digest is not None
    if address.digest.startswith(PREFIX):
        return address.digest  # never listed: reading it says whether it is there
    matches = store.blobs.with_prefix(address.digest, SHOWN + 1)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BlobNotFoundError(f"no blob starts with {address.text!r} in store {store.url}")
    shown = ", ".join(matches[:SHOWN]) + (", …" if len(matches) > SHOWN else "")
    raise NotFoundError(
        f"digest prefix {address.text!r} matches {'more than ' if len(matches) > SHOWN else ''}"
        f"{min(len(matches), SHOWN)} blobs ({shown}); give more characters"
    )


def resolve(store: Store, text: str) -> Target:
    """The output ``text`` names in ``store`` (see the module's docstring)."""
    address = parse_address(text)
    if address.digest is not None:
        digest = _full_digest(store, address)
        size = store.blobs.size(digest)
        return Target(Artifact.model_validate({"digest": digest, "mime": "application/octet-stream", "size": size}))
    assert address.run is not None and address.node is not None
    manifest = _run_with_node(store, address.run, address.node)
    return Target(pick_output(manifest, address.node, address.port), manifest.run_id, address.node)


def resolve_node(store: Store, text: str) -> tuple[RunManifest, str]:
    """``(manifest, node id)`` of ``RUN:NODE`` (a port is refused); NotFoundError naming what exists."""
    address = parse_address(text)
    if address.node is None or address.run is None:
        raise AddressError(f"{text!r} is a digest; expected RUN:NODE")
    if address.port is not None:
        raise AddressError(f"{text!r} names a port; expected RUN:NODE")
    manifest = _run_with_node(store, address.run, address.node)
    return manifest, address.node


def _run_with_node(store: Store, run: str, node_id: str) -> RunManifest:
    """The run ``run`` names; for ``latest``, the newest top-level run that has ``node_id``."""
    from ._history import LATEST, resolve_run_id

    if run.lower() not in LATEST:
        manifest = store.runs.get(resolve_run_id(store, run))
        node_record(manifest, node_id)  # NotFoundError naming the run's nodes
        return manifest
    ids = list(store.runs)
    if not ids:
        raise NotFoundError(f"no runs in store {store.url}")
    newest: RunManifest | None = None
    seen: dict[str, str] = {}  # node id -> the newest run that has it
    for run_id in reversed(ids[-LATEST_SCAN:]):
        try:
            manifest = store.runs.get(run_id)
        except WfeError:
            continue  # deleted meanwhile, or damaged: `wfe verify` reports those
        if manifest.parent is not None:
            continue
        if node_id in manifest.nodes:
            return manifest
        newest = newest or manifest
        for name in manifest.nodes:
            seen.setdefault(name, manifest.run_id)
    if newest is None:
        raise NotFoundError(f"no top-level run in store {store.url}")
    import difflib

    close = difflib.get_close_matches(node_id, list(seen), n=1)
    guess = f"did you mean {close[0]!r} (run {seen[close[0]]})? " if close else ""
    names = list(newest.nodes)
    raise NotFoundError(
        f"no run in store {store.url} has node {node_id!r}; {guess}nodes of run {newest.run_id}: {listing(names)}"
    )


def load(address: str, store: Store | str | None = None) -> Any:
    """The value an address names, decoded by its MIME type (a bare digest has none: its bytes).

    ``store`` is a Store or a store URL (default: ``$WFE_STORE`` or ``./.wfe``).
    """
    opened = store if isinstance(store, Store) else open_store(store)
    return read_value(opened, resolve(opened, address).artifact)


_COPIES_LOCK = threading.Lock()
_COPIES: str | None = None  # this process's folder of verified copies, removed when the process exits


def _copies_folder() -> str:
    global _COPIES
    with _COPIES_LOCK:
        if _COPIES is None or not os.path.isdir(_COPIES):
            import shutil
            import tempfile

            _COPIES = os.path.realpath(tempfile.mkdtemp(prefix="wfe-results-"))
            atexit.register(shutil.rmtree, _COPIES, True)
        return _COPIES


def verified_copy(store: Store, artifact: Artifact) -> Path:
    """A read-only local file holding the output's bytes, checked against its digest.

    The file is a copy in a private folder of this process (removed when it
    exits), never the store's own file: changing it cannot damage the store.
    A copy made earlier is hashed again before it is handed out again.
    """
    import mimetypes

    hexdigest = artifact.digest[len(PREFIX):]
    extension = mimetypes.guess_extension(artifact.mime.split(";")[0].strip()) or ""
    target = Path(_copies_folder()) / f"{hexdigest}{extension}"
    if target.exists():
        with open(target, "rb") as handle:
            if digest_of_stream(handle)[0] == artifact.digest:
                return target
        target.unlink()
    if artifact.kind is None:
        store.blobs.export(artifact.digest, target)
    else:
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(read_bytes(store, artifact))
        os.replace(partial, target)
    os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return target
