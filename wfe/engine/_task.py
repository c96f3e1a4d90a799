"""One node's work as a plain, picklable value, and the code that runs it anywhere.

A task carries names and digests, never payloads: the worker opens the
store by URL, reads its inputs by digest, runs the function, puts the
outputs and returns artifacts. Only the coordinator writes the action cache
and the run manifest.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .._errors import UnknownFunctionError, WfeError
from ..graph._codecs import ARTIFACT_LIST, decode, decode_json, encode, encode_json
from ..graph._functions import load_workflow_modules, resolve
from ..graph._mime import mime_base
from ..graph._model import Artifact
from ..graph._specs import INLINE_LIMIT, OutputSpec
from ..store._digest import digest_of
from ._capture import capture_output
from ._scratch import CURRENT_SCRATCH, Scratch


@dataclass(slots=True)
class Task:
    """What a worker needs to run one node: names, digests and where the store is.

    Its pickled size does not depend on the size of the data (inputs are
    ``(digest, mime)`` pairs), which is what lets a node run anywhere that
    can reach the store.
    """

    node_id: str
    function: str
    version: str
    config_digest: str
    inputs: tuple[tuple[str, str], ...]  # (digest, mime) per declared input
    store_url: str
    store_options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    modules: tuple[tuple[str, str], ...] = ()  # (folder, module) to import on the worker
    ref: str = ""  # "module:qualname" the coordinator resolved; imported on a worker that lacks it
    log_level: int = logging.INFO  # what the node's log records are captured from
    # The bytes of inputs that are not blobs: inline values (small by definition) and ephemeral
    # outputs, which by definition exist only in the run's memory. In the coordinator's own process,
    # also the config and small blobs it has in memory, by digest, to save reading them back.
    payloads: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    # In the coordinator's process on a remote store: small blobs (outputs, the log) are not written here
    # but returned in ``TaskResult.unwritten``, for the coordinator to write behind (see _writer).
    defer: bool = False
    # In the coordinator's process, for a node no other node of the run consumes: its stored outputs' bytes
    # come back in ``TaskResult.kept``, whatever their size, for the run's result to hand to its caller.
    keep: bool = False


@dataclass
class TaskResult:
    node_id: str
    outputs: list[Artifact] | None
    started: float
    duration: float
    error: str | None = None
    traceback: str | None = None
    log: str | None = None  # digest of a text/plain blob: what the function printed and logged
    payloads: dict[str, bytes] | None = None  # the bytes of ephemeral outputs, by digest
    # Run in the coordinator's process only: the bytes of small stored outputs, by digest, so a
    # node downstream in the same process is handed them instead of reading the blob back.
    fresh: dict[str, bytes] | None = None
    # With ``Task.defer``: the small blobs the outputs and log name, by digest, not yet in the store.
    unwritten: dict[str, bytes] | None = None
    # With ``Task.keep``: the bytes of every stored output that is bytes already, by digest (see RunResult).
    kept: dict[str, bytes] | None = None


FRESH_LIMIT = 64 * 1024  # stored outputs up to this size are handed on in memory within a process


_STORES: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}


def _open_cached(url: str, options: tuple[tuple[str, Any], ...]) -> Any:
    key = (url, options)
    store = _STORES.get(key)
    if store is None:
        from ..store._store import open_store

        store = _STORES[key] = open_store(url, **dict(options))
    return store


_LOADED: set[tuple[str, str]] = set()  # (folder, module) pairs this process has imported


def _resolve(task: Task) -> Any:
    for pair in task.modules:
        if pair not in _LOADED:
            load_workflow_modules(pair[0], [pair[1]])
            _LOADED.add(pair)
    try:
        return resolve(task.function)
    except UnknownFunctionError:
        # A fresh worker has not imported the module that registered it; the coordinator did.
        module_name = task.ref.partition(":")[0]
        if not module_name:
            raise
        importlib.import_module(module_name)
        entry = resolve(task.function)
        if entry.ref != task.ref:
            raise
        return entry


def run_task(task: Task, store: Any = None) -> TaskResult:
    """Run one task; a failure of the function is returned, not raised.

    What the function prints or logs is stored as a blob and returned as
    ``TaskResult.log``, whether it succeeds or fails.
    """
    started = time.time()
    clock = time.perf_counter()
    in_process = store is not None  # the coordinator handed its own store: same process
    result: TaskResult
    scratch: Scratch | None = None
    with capture_output(task.log_level) as captured:
        try:
            if store is None:
                store = _open_cached(task.store_url, task.store_options)
            scratch = Scratch(store.io.local_path("tmp") if store.io.hard_links else None)
            entry = _resolve(task)
            spec = entry.spec
            if spec.version != task.version:
                raise WfeError(
                    f"function {task.function!r} is now version {spec.version}, "
                    f"but the task was planned for {task.version}"
                )
            payloads = dict(task.payloads)
            config_bytes = payloads.get(task.config_digest)  # handed over: in process, or a small config
            config = decode_json(config_bytes) if config_bytes is not None else store.configs.get(task.config_digest)
            args = []
            for declared, (digest, mime) in zip(spec.inputs, task.inputs, strict=False):
                if declared.as_path:  # a verified copy in the node's scratch folder
                    target = os.path.join(scratch.folder(), digest[7:])
                    if not os.path.exists(target):
                        if digest in payloads:
                            with open(target, "wb") as handle:
                                handle.write(payloads[digest])
                        else:
                            store.blobs.export(digest, target)
                    args.append(target)
                else:
                    args.append(_decode_input(store, payloads, digest, mime))
            token = CURRENT_SCRATCH.set(scratch)
            try:
                value = entry.call(*args, **config)
            finally:
                CURRENT_SCRATCH.reset(token)
            fresh: dict[str, bytes] | None = {} if in_process else None
            unwritten: dict[str, bytes] | None = {} if in_process and task.defer else None
            kept: dict[str, bytes] | None = {} if in_process and task.keep else None
            outputs, produced = _store_outputs(store, spec.outputs, value, fresh, scratch, unwritten, kept)
            result = TaskResult(task.node_id, outputs, started, time.perf_counter() - clock, payloads=produced,
                                fresh=fresh, unwritten=unwritten, kept=kept)
        except Exception as exc:
            from .._redact import redact

            logging.getLogger(__name__).debug("node %s failed", task.node_id, exc_info=True)
            result = TaskResult(
                task.node_id,
                None,
                started,
                time.perf_counter() - clock,
                error=redact(f"{type(exc).__name__}: {exc}"),  # kept in the run record: no secret in it
                traceback=redact(traceback.format_exc()),
            )
        finally:
            if scratch is not None:
                scratch.remove()
    text = captured.text()
    if text and in_process and task.defer:
        data = text.encode("utf-8", "replace")
        result.log = digest_of(data)
        result.unwritten = {**(result.unwritten or {}), result.log: data}
    elif text and store is not None:
        try:
            result.log = store.blobs.put(text.encode("utf-8", "replace"))
        except Exception as exc:  # the node's own result matters more than its log
            logging.getLogger(__name__).warning("node %s: cannot store its log: %s", task.node_id, exc)
    return result


def _decode_input(store: Any, payloads: dict[str, bytes], digest: str, mime: str) -> Any:
    data = payloads[digest] if digest in payloads else store.blobs.get(digest)
    if mime_base(mime) != ARTIFACT_LIST:
        return decode(data, mime)
    elements = []
    for item in decode_json(data):  # a mapped node's outputs: decode each element by its own type
        element = Artifact.model_validate(item)
        raw = element_bytes(element) if element.kind == "inline" else store.blobs.get(element.digest)
        elements.append(decode(raw, element.mime))
    return elements


def element_bytes(artifact: Artifact) -> bytes:
    """The bytes of an inline artifact: the canonical JSON of its value."""
    return encode_json(artifact.value)


def _store_outputs(
    store: Any,
    specs: tuple[OutputSpec, ...],
    value: Any,
    fresh: dict[str, bytes] | None = None,
    scratch: Scratch | None = None,
    unwritten: dict[str, bytes] | None = None,
    kept: dict[str, bytes] | None = None,
) -> tuple[list[Artifact], dict[str, bytes]]:
    """Put each returned value by its output's kind; return the artifacts and the ephemeral bytes.

    Small stored outputs are also added to ``fresh`` (by digest) when it is given, and, when
    ``unwritten`` is given, left to the caller to write (added to it); stored outputs encoded as
    bytes of any size are added to ``kept`` when it is given; a file of the node's own scratch
    folder is moved into the store.
    """
    if len(specs) == 0:
        return [], {}
    if len(specs) == 1:
        values = (value,)
    else:
        if not isinstance(value, tuple) or len(value) != len(specs):
            raise TypeError(
                f"expected a tuple of {len(specs)} outputs ({', '.join(o.mime for o in specs)}), "
                f"got {type(value).__name__}"
            )
        values = value
    outputs = []
    ephemeral: dict[str, bytes] = {}
    for spec, item in zip(specs, values, strict=True):
        encoded = encode(item, spec.mime)
        if spec.kind == "persisted":
            if isinstance(encoded, os.PathLike) and scratch is not None and scratch.owns(encoded):
                digest, size = store.blobs.put_moved(os.fspath(encoded))
            elif unwritten is not None and isinstance(encoded, bytes) and len(encoded) <= FRESH_LIMIT:
                digest, size = digest_of(encoded), len(encoded)
                unwritten[digest] = encoded
            else:
                digest, size = store.blobs.put_sized(encoded)
            outputs.append(Artifact.made(digest, spec.mime, size, spec.name))
            if fresh is not None and isinstance(encoded, bytes) and size <= FRESH_LIMIT:
                fresh[digest] = encoded  # the very bytes just hashed into ``digest``
            if kept is not None and isinstance(encoded, bytes):
                kept[digest] = encoded
            continue
        data = _read_all(encoded)
        if spec.kind == "inline":
            parsed = decode_json(data)
            data = encode_json(parsed)
            if len(data) > INLINE_LIMIT:
                raise ValueError(
                    f"inline output {spec.name or spec.mime} is {len(data)} bytes (at most {INLINE_LIMIT})"
                )
            outputs.append(Artifact.made(digest_of(data), spec.mime, len(data), spec.name, "inline", parsed))
        else:
            digest = digest_of(data)
            ephemeral[digest] = data
            outputs.append(Artifact.made(digest, spec.mime, len(data), spec.name, "ephemeral"))
    return outputs, ephemeral


def _read_all(encoded: Any) -> bytes:
    if isinstance(encoded, bytes):
        return encoded
    if isinstance(encoded, os.PathLike):
        with open(os.fspath(encoded), "rb") as handle:
            return handle.read()
    return bytes(encoded.read())
