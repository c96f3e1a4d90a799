"""The backends the conformance suite runs against when no ``--store-url`` is given.

Each entry starts its backend and yields ``(url, options)`` for
:func:`wfe.open_store`; it stops what it started when the context exits. An
entry whose requirements are missing here raises ``BackendUnavailable`` with
the reason, and the suite reports it as skipped.

The suite itself knows only the backends that need no server (memory, local
disk, and a live Supabase project when asked for). A project that starts
servers of its own adds entries by implementing the hook
``pytest_wfe_conformance_backends(config)`` in a conftest.py or plugin,
returning a list of :class:`Backend`; wfe's own tests add an S3 server and
the Supabase Storage server that way.
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
    Backend("supabase_live", _supabase_live),
]
