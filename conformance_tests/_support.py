"""What every conformance test uses: fresh stores, raw storage access, settings, counters.

A test never reuses a store: :meth:`Conformance.fresh_store` opens an empty
store under a new sub-prefix of the backend URL for every hypothesis example
(and every state machine run) and removes it afterwards. Raw helpers read and
write the backend's files directly, behind the store's back, so the suite
checks storage independently instead of trusting the store's own answers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings

import wfe
from wfe import Store

PARTS = ("blobs", "functions", "configs", "actions", "runs")

# Profiles: "ci" keeps the whole suite on memory + local disk to about a minute on two
# cores; "soak" is for a long run against one backend (select with --conformance-profile
# soak or WFE_CONFORMANCE_PROFILE=soak).
_COMMON: dict[str, Any] = {
    "deadline": None,  # remote backends are slow and uneven; time is not a property here
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    "print_blob": True,
}
PROFILES: dict[str, settings] = {
    "ci": settings(max_examples=12, stateful_step_count=12, **_COMMON),
    "soak": settings(max_examples=400, stateful_step_count=60, **_COMMON),
}
DEFAULT_PROFILE_ENV = "WFE_CONFORMANCE_PROFILE"

F = TypeVar("F", bound=Callable[..., Any])


def with_subprefix(url: str, sub: str) -> str:
    """``url`` with one more path component, inserted before any ``?query``."""
    if "://" not in url:
        return os.path.join(url, sub)
    base, sep, query = url.partition("?")
    return f"{base.rstrip('/')}/{sub}{sep}{query}"


class Tally:
    """Counts per (backend, part): examples = fresh stores opened, steps = state machine steps.

    One per pytest session, so a suite run inside another pytest run counts apart.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], Counter[str]] = {}
        self._lock = threading.Lock()
        self.skipped: dict[str, str] = {}  # backend -> why it could not start

    def add(self, backend: str, part: str, what: str, amount: int = 1) -> None:
        with self._lock:
            self._counts.setdefault((backend, part), Counter())[what] += amount

    def snapshot(self) -> dict[tuple[str, str], Counter[str]]:
        with self._lock:
            return {key: Counter(value) for key, value in self._counts.items()}


TALLY = pytest.StashKey[Tally]()  # the session's Tally, in config.stash


@dataclass(frozen=True)
class BackendHandle:
    """A started backend: its name (for reports) and what :func:`wfe.open_store` needs."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conformance:
    """The per-test view of one backend and one settings profile."""

    backend: BackendHandle
    profile: settings
    tally: Tally = field(default_factory=Tally)

    def settings(self, *, heavy: bool = False, **overrides: Any) -> settings:
        """The profile's settings; ``heavy`` tests (big blobs, processes) run a fifth as many examples."""
        if heavy and "max_examples" not in overrides:
            overrides["max_examples"] = max(2, self.profile.max_examples // 5)
        return settings(self.profile, **overrides)

    def given(self, *, heavy: bool = False, **strategies: Any) -> Callable[[F], F]:
        """``hypothesis.given`` with this run's settings, chosen when the test runs, not at import."""

        def decorate(test: F) -> F:
            return given(**strategies)(self.settings(heavy=heavy)(test))  # type: ignore[return-value]

        return decorate

    def open(self, sub: str) -> Store:
        return wfe.open_store(with_subprefix(self.backend.url, sub), **self.backend.options)

    @contextlib.contextmanager
    def fresh_store(self, part: str) -> Iterator[Store]:
        """An empty store under a new sub-prefix; removed (best effort) afterwards."""
        store = self.new_store(part)
        try:
            yield store
        finally:
            remove_store(store)

    def new_store(self, part: str) -> Store:
        self.tally.add(self.backend.name, part, "examples")
        store = self.open(f"t-{uuid.uuid4().hex[:12]}")
        assert raw_files(store) == set(), f"a fresh store is not empty: {store!r}"
        return store

    def step(self, part: str) -> None:
        self.tally.add(self.backend.name, part, "steps")


# Raw access, behind the store's back. ``store.io`` knows the root and how a relative
# path maps to a backend path; the bytes go through the filesystem itself.


def raw_fs(store: Store) -> Any:
    if store.io.fs is not None:
        return store.io.fs
    import fsspec

    return fsspec.filesystem("file")


def raw_path(store: Store, rel: str) -> str:
    return store.io.path(rel)


def raw_read(store: Store, rel: str) -> bytes:
    data: bytes = raw_fs(store).cat_file(raw_path(store, rel))
    return data


def raw_write(store: Store, rel: str, data: bytes) -> None:
    raw_fs(store).pipe_file(raw_path(store, rel), data)


def raw_exists(store: Store, rel: str) -> bool:
    return bool(raw_fs(store).exists(raw_path(store, rel)))


BACKEND_RECORDS = "capabilities/"  # a backend's own notes on its server (S3's probe record), not the store's data


def raw_files(store: Store) -> set[str]:
    """Paths relative to the store root of every file the filesystem lists, but the backend's own records."""
    fs = raw_fs(store)
    root = store.io.root
    try:
        found = fs.find(root) if root else fs.find("")
    except FileNotFoundError:
        return set()
    prefix = fs._strip_protocol(root).rstrip("/") + "/" if root else ""
    out = set()
    for path in found:
        path = str(path)
        stripped = fs._strip_protocol(path)
        out.add(stripped[len(prefix) :] if prefix and stripped.startswith(prefix) else stripped.lstrip("/"))
    return {path for path in out if not path.startswith(BACKEND_RECORDS)}


def remove_store(store: Store) -> None:
    with contextlib.suppress(Exception):
        fs = raw_fs(store)
        if store.io.root and fs.exists(store.io.root):
            fs.rm(store.io.root, recursive=True)


def data_files(store: Store) -> set[str]:
    """Raw files outside ``tmp/`` (staging leftovers are checked separately)."""
    return {path for path in raw_files(store) if not path.startswith("tmp/")}
