"""The built-in backends the conformance suite runs against when no ``--store-url`` is given.

Each entry starts its backend (a server on 127.0.0.1 where one is needed) and
yields ``(url, options)`` for :func:`wfe.open_store`; it stops what it started
when the context exits. An entry whose requirements are missing here raises
``BackendUnavailable`` with the reason, and the suite reports it as skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any


class BackendUnavailable(Exception):
    """This backend cannot be started here; the message says why."""


@dataclass(frozen=True)
class Backend:
    name: str
    start: Callable[[], ContextManager[tuple[str, dict[str, Any]]]]


@contextlib.contextmanager
def _memory() -> Iterator[tuple[str, dict[str, Any]]]:
    yield f"memory://conformance-{uuid.uuid4().hex[:8]}", {}


@contextlib.contextmanager
def _local() -> Iterator[tuple[str, dict[str, Any]]]:
    folder = tempfile.mkdtemp(prefix="wfe-conformance-")
    try:
        yield folder, {}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _s3() -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"s3 needs moto[server] and s3fs: {exc}") from None
    from ._s3server import s3_server

    with s3_server() as server:
        yield server.url(f"conformance-{uuid.uuid4().hex[:8]}"), server.options


@contextlib.contextmanager
def _supabase() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local emulator of Supabase Storage's HTTP API; the real ``supabase`` client talks to it."""
    try:
        import storage3  # noqa: F401  (the storage client of the supabase package)
        import werkzeug  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"supabase needs the supabase client (pip install wfe[supabase]) and werkzeug: {exc}"
        ) from None
    from ._supabase_emulator import SupabaseStorageEmulator

    key = "eyJhbGciOiJIUzI1NiJ9.e30.wfe-fake-supabase-key"  # a recognisable fake
    with SupabaseStorageEmulator(key) as emulator:
        emulator.create_bucket("wfe-conformance")
        yield f"supabase://wfe-conformance/run-{uuid.uuid4().hex[:8]}", {"url": emulator.url, "key": key}


@contextlib.contextmanager
def _supabase_live() -> Iterator[tuple[str, dict[str, Any]]]:
    """A live Supabase project, only when asked: WFE_SUPABASE_LIVE=1 with SUPABASE_URL and SUPABASE_KEY."""
    import os

    if os.environ.get("WFE_SUPABASE_LIVE") != "1" or not (
        os.environ.get("SUPABASE_URL") and os.environ.get("SUPABASE_KEY")
    ):
        raise BackendUnavailable(
            "live Supabase project not requested: set WFE_SUPABASE_LIVE=1, SUPABASE_URL and SUPABASE_KEY "
            "(bucket from WFE_SUPABASE_BUCKET, default wfe-conformance)"
        )
    import fsspec

    bucket = os.environ.get("WFE_SUPABASE_BUCKET", "wfe-conformance")
    fs = fsspec.filesystem("supabase", skip_instance_cache=True)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    root = f"{bucket}/conformance-{uuid.uuid4().hex[:8]}"
    try:
        yield f"supabase://{root}", {}
    finally:
        with contextlib.suppress(Exception):
            fs.rm(root, recursive=True)


BUILTIN: list[Backend] = [
    Backend("memory", _memory),
    Backend("local", _local),
    Backend("s3", _s3),
    Backend("supabase", _supabase),
    Backend("supabase_live", _supabase_live),
]
