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
from dataclasses import dataclass
from typing import Any, ContextManager


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


BUILTIN: list[Backend] = [
    Backend("memory", _memory),
    Backend("local", _local),
]
