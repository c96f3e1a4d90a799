"""A run's outputs read back: a node's record, one output picked by port, its verified bytes and its value.

The light half of :mod:`wfe.ops._address` that ``RunResult`` needs, so a run
does not load address parsing. Every failure is one line: NotFoundError (no
such node or port; a node that was skipped or has not finished), NodeError
(a node that failed) or IntegrityError (bytes that do not match the digest).
"""

from __future__ import annotations

from typing import Any

from .._errors import BlobNotFoundError, IntegrityError, NodeError, NotFoundError
from ..graph._codecs import decode, encode_json
from ..graph._model import Artifact
from ..store._digest import digest_of
from ..store._manifest import NodeRecord, RunManifest
from ..store._store import Store


def _nodes_hint(manifest: RunManifest, node_id: str) -> str:
    import difflib  # only when a name is wrong: kept out of a run's start-up

    names = list(manifest.nodes)
    close = difflib.get_close_matches(node_id, names, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"{guess}nodes of run {manifest.run_id}: {listing(names)}"


def listing(names: list[str], limit: int = 12) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def node_record(manifest: RunManifest, node_id: str) -> NodeRecord:
    """The record of ``node_id``; NotFoundError naming the run's nodes (and the closest) if there is none."""
    record = manifest.nodes.get(node_id)
    if record is None:
        raise NotFoundError(f"run {manifest.run_id} has no node {node_id!r}; {_nodes_hint(manifest, node_id)}")
    return record


def pick_output(manifest: RunManifest, node_id: str, port: str | None = None) -> Artifact:
    """The output of ``node_id`` at ``port`` (none needed for a node with one output); one-line errors otherwise."""
    record = node_record(manifest, node_id)
    where = f"node {node_id!r} of run {manifest.run_id}"
    if record.status == "failed":
        raise NodeError(
            node_id, f"{record.error or 'no error recorded'} (run {manifest.run_id}: it has no outputs)",
            record.traceback or "",
        )
    if record.status == "skipped":
        raise NotFoundError(f"{where} was skipped ({record.error or 'an upstream node failed'}): it has no outputs")
    if record.status in ("pending", "running"):
        raise NotFoundError(f"{where} is {record.status}: it has no outputs yet")
    outputs = record.outputs
    if not outputs:
        raise NotFoundError(f"{where} has no outputs")
    ports = [a.name or "(unnamed)" for a in outputs]
    if port is None:
        if len(outputs) == 1:
            return outputs[0]
        raise NotFoundError(
            f"{where} has {len(outputs)} outputs: name a port ({', '.join(ports)}), "
            f"e.g. {manifest.run_id}:{node_id}:{ports[0]}"
        )
    for artifact in outputs:
        if artifact.name == port:
            return artifact
    named = [a.name for a in outputs if a.name]
    import difflib

    close = difflib.get_close_matches(port, named, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    if not named:
        raise NotFoundError(f"{where} has no output port {port!r}: its one output has no name; leave the port out")
    raise NotFoundError(f"{where} has no output port {port!r}; {guess}ports: {', '.join(ports)}")


def read_bytes(store: Store, artifact: Artifact) -> bytes:
    """The verified bytes of an output: a blob read from the store, or an inline value's JSON."""
    if artifact.kind == "inline":
        data = encode_json(artifact.value)
        if digest_of(data) != artifact.digest:
            raise IntegrityError(artifact.digest, f"the recorded inline value hashes to {digest_of(data)}")
        return data
    if artifact.kind == "ephemeral":
        try:
            return store.blobs.get(artifact.digest)
        except BlobNotFoundError:
            raise NotFoundError(
                f"output {artifact.name or artifact.digest} is ephemeral: it was kept in memory for its run "
                "and never stored"
            ) from None
    return store.blobs.get(artifact.digest)


def read_value(store: Store, artifact: Artifact) -> Any:
    """The output decoded by its MIME type's codec (JSON, text, bytes, or a registered codec)."""
    if artifact.kind == "inline":
        read_bytes(store, artifact)  # checks the value against its digest
        return artifact.value
    return decode(read_bytes(store, artifact), artifact.mime)
