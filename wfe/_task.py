"""One node's work as a plain, picklable value, and the code that runs it anywhere.

A task carries names and digests, never payloads: the worker opens the
store by URL, reads its inputs by digest, runs the function, puts the
outputs and returns artifacts. Only the coordinator writes the action cache
and the run manifest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ._codecs import decode, encode
from ._errors import WfeError
from ._models import Artifact


@dataclass(frozen=True)
class Task:
    node_id: str
    function: str
    version: str
    config_digest: str
    inputs: tuple[Artifact, ...]
    store_url: str
    store_options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    modules: tuple[tuple[str, str], ...] = ()  # (folder, module) to import on the worker


@dataclass
class TaskResult:
    node_id: str
    outputs: list[Artifact] | None
    started: float
    duration: float
    error: str | None = None
    traceback: str | None = None


_STORES: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}


def _open_cached(url: str, options: tuple[tuple[str, Any], ...]) -> Any:
    key = (url, options)
    store = _STORES.get(key)
    if store is None:
        from ._store import open_store

        store = _STORES[key] = open_store(url, **dict(options))
    return store


def run_task(task: Task, store: Any = None) -> TaskResult:
    """Run one task; a failure of the function is returned, not raised."""
    started = time.time()
    clock = time.perf_counter()
    scratch: str | None = None
    try:
        from ._functions import load_workflow_modules, resolve

        if store is None:
            store = _open_cached(task.store_url, task.store_options)
        for directory, module in task.modules:
            load_workflow_modules(directory, [module])
        entry = resolve(task.function)
        spec = entry.spec
        if spec.version != task.version:
            raise WfeError(
                f"function {task.function!r} is now version {spec.version}, "
                f"but the task was planned for {task.version}"
            )
        config = store.configs.get(task.config_digest)
        args = []
        for declared, artifact in zip(spec.inputs, task.inputs):
            if declared.as_path:
                scratch = scratch or tempfile.mkdtemp(prefix="wfe-inputs-")
                target = os.path.join(scratch, artifact.digest[7:])
                if not os.path.exists(target):
                    store.blobs.export(artifact.digest, target)
                args.append(target)
            else:
                args.append(decode(store.blobs.get(artifact.digest), artifact.mime))
        value = entry.func(*args, **config)
        outputs = _store_outputs(store, spec.outputs, value)
        return TaskResult(task.node_id, outputs, started, time.perf_counter() - clock)
    except Exception as exc:
        return TaskResult(
            task.node_id,
            None,
            started,
            time.perf_counter() - clock,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _store_outputs(store: Any, mimes: tuple[str, ...], value: Any) -> list[Artifact]:
    if len(mimes) == 0:
        return []
    if len(mimes) == 1:
        values = (value,)
    else:
        if not isinstance(value, tuple) or len(value) != len(mimes):
            raise TypeError(f"expected a tuple of {len(mimes)} outputs ({', '.join(mimes)}), got {type(value).__name__}")
        values = value
    outputs = []
    for mime, item in zip(mimes, values):
        digest, size = store.blobs.put_sized(encode(item, mime))
        outputs.append(Artifact(digest=digest, mime=mime, size=size))
    return outputs
