"""Work done in other processes: each opens the store by its URL, as a task on a worker would.

Workers are started with ``spawn``, so nothing is inherited: a backend whose
filesystem is not registered through an fsspec entry point must register
itself when its module is imported (the parent passes that module's name).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import threading
from typing import Any

import wfe

_POOL: concurrent.futures.ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
WORKERS = 2


def pool() -> concurrent.futures.ProcessPoolExecutor:
    """One pool per test session, started on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def shutdown_pool() -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True, cancel_futures=True)
            _POOL = None


def filesystem_module(store: wfe.Store) -> str | None:
    """The module defining the store's filesystem class, for a worker to import first."""
    fs = store.io.fs
    if fs is None:
        return None
    module = type(fs).__module__
    return None if module.startswith(("fsspec.", "wfe.")) else module


def _open(url: str, options: dict[str, Any], module: str | None) -> wfe.Store:
    if module:
        importlib.import_module(module)
    return wfe.open_store(url, **options)


def put_blobs(url: str, options: dict[str, Any], module: str | None, payloads: list[bytes]) -> list[str]:
    store = _open(url, options, module)
    return [store.blobs.put(payload) for payload in payloads]


def put_configs(url: str, options: dict[str, Any], module: str | None, configs: list[dict[str, Any]]) -> list[str]:
    store = _open(url, options, module)
    return [store.configs.put(config) for config in configs]


def put_action(url: str, options: dict[str, Any], module: str | None, key: str, result_json: str) -> bool:
    from wfe.store._manifest import ActionResult

    store = _open(url, options, module)
    return store.actions.put(key, ActionResult.model_validate_json(result_json))


def put_function(url: str, options: dict[str, Any], module: str | None, spec_json: str) -> None:
    store = _open(url, options, module)
    store.functions.put(wfe.FunctionSpec.model_validate_json(spec_json))


def put_run(url: str, options: dict[str, Any], module: str | None, manifest_json: str) -> None:
    store = _open(url, options, module)
    store.runs.put(wfe.RunManifest.model_validate_json(manifest_json))
